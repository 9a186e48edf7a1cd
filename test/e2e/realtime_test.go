package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// TestRealtimeLoop: with vrrp_rt_priority (7) and bfd_rt_priority (5)
// every thread of the process runs SCHED_RR, one below the lower of the
// two, and the VRRP loop on one thread of its own at 7, which waits on its sockets
// and timers itself; a notify script, and a program it starts, run under
// the normal policy (SCHED_OTHER). On that loop a pair elects its master,
// the backup hears the master's adverts, and takes over when the master
// is killed.
func TestRealtimeLoop(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	dir := t.TempDir()
	out := filepath.Join(dir, "policy")
	// /proc/PID/sched's policy line: 0 is SCHED_OTHER, 2 SCHED_RR.
	notify := writeScript(t, dir, "policy.sh", fmt.Sprintf(`#!/bin/sh
{ grep '^policy ' /proc/$$/sched; sh -c 'grep "^policy " /proc/$$/sched'; } > %[1]s.tmp && mv -f %[1]s.tmp %[1]s
`, out))
	conf := func(name string, prio int, extra string) string {
		text := strings.Replace(vrrpConf(3, prio, "0.05", extra), "global_defs {\n", "global_defs {\n    vrrp_rt_priority 7\n    bfd_rt_priority 5\n", 1)
		return writeConf(t, name, text)
	}
	ka1 := startTandem(t, l, "ka1", conf("rt-ka1.conf", 100, "    notify_master "+notify+"\n"))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	ka2 := startTandem(t, l, "ka2", conf("rt-ka2.conf", 90, ""))
	waitFor(t, "ka2 BACKUP", 10*time.Second, func() bool { return ka2.state("VI_1") == "BACKUP" })
	var policies []byte
	waitFor(t, "the notify script's report", 10*time.Second, func() bool {
		var err error
		policies, err = os.ReadFile(out)
		return err == nil
	})
	lines := strings.Split(strings.TrimSpace(string(policies)), "\n")
	if len(lines) != 2 {
		t.Fatalf("notify script reported %q; want two policy lines", policies)
	}
	for i, line := range lines {
		if f := strings.Fields(line); len(f) != 3 || f[2] != "0" {
			t.Errorf("%s runs %q; want policy 0 (SCHED_OTHER)", []string{"the notify script", "a program the script started"}[i], line)
		}
	}
	for _, d := range []*daemon{ka1, ka2} {
		if !strings.Contains(d.proc.Output(), "VRRP loop waits on its sockets and timers itself") {
			t.Errorf("%s: the loop does not wait on its own:\n%s", d.node, d.proc.Output())
		}
		rr, all := rrThreads(t, d.proc.Pid())
		slices.Sort(rr)
		if len(rr) != all || len(rr) < 2 || rr[len(rr)-1] != 7 || rr[len(rr)-2] != 4 || rr[0] != 4 {
			t.Errorf("%s: real-time threads' priorities %v of %d threads; want all, one at 7 and the rest at 4", d.node, rr, all)
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

// rrThreads lists the SCHED_RR priorities of pid's threads, and counts
// its threads.
func rrThreads(t *testing.T, pid int) (rr []int, all int) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // ended since
		}
		all++
		if a.Policy == unix.SCHED_RR {
			rr = append(rr, int(a.Priority))
		}
	}
	return rr, all
}
