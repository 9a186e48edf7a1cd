package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// TestRealtimeLoop: with vrrp_rt_priority the VRRP loop runs on one
// thread of its own at SCHED_RR, which waits on its sockets and timers
// itself (no other thread of the process is real-time); on that loop a
// pair elects its master, the backup hears the master's adverts, and
// takes over when the master is killed.
func TestRealtimeLoop(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(name string, prio int) string {
		text := strings.Replace(vrrpConf(3, prio, "0.05", ""), "global_defs {\n", "global_defs {\n    vrrp_rt_priority 7\n", 1)
		return writeConf(t, name, text)
	}
	ka1 := startTandem(t, l, "ka1", conf("rt-ka1.conf", 100))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	ka2 := startTandem(t, l, "ka2", conf("rt-ka2.conf", 90))
	waitFor(t, "ka2 BACKUP", 10*time.Second, func() bool { return ka2.state("VI_1") == "BACKUP" })
	for _, d := range []*daemon{ka1, ka2} {
		if !strings.Contains(d.proc.Output(), "VRRP loop waits on its sockets and timers itself") {
			t.Errorf("%s: the loop does not wait on its own:\n%s", d.node, d.proc.Output())
		}
		if rr := rrThreads(t, d.proc.Pid()); len(rr) != 1 || rr[0] != 7 {
			t.Errorf("%s: real-time threads' priorities %v; want one thread at 7", d.node, rr)
		}
	}
	// The backup stays backup while the master advertises: it hears
	// every advert on its own loop (1 s is 20 adverts).
	time.Sleep(time.Second)
	if got := ka2.instance(t, "VI_1"); got.State != "BACKUP" || got.AdvertsReceived < 10 {
		t.Fatalf("ka2 after 1 s under a master: %s, %d adverts received", got.State, got.AdvertsReceived)
	}
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "ka2 MASTER", 5*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	t.Logf("takeover %v after the master was killed", took)
}

// rrThreads lists the SCHED_RR priorities of pid's threads.
func rrThreads(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err == nil && a.Policy == unix.SCHED_RR {
			out = append(out, int(a.Priority))
		}
	}
	return out
}
