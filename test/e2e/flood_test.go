package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// hold opens n connections with dial and keeps them open until the test
// ends; every other one sends a keep-alive request first, the rest send
// nothing, as a client exhausting the listener would. It returns how
// many it opened.
func hold(t *testing.T, n int, dial func() (net.Conn, error)) int {
	t.Helper()
	opened := 0
	for i := range n {
		c, err := dial()
		if err != nil {
			continue // a full backlog: what is held is enough
		}
		t.Cleanup(func() { c.Close() })
		opened++
		if i%2 == 0 {
			io.WriteString(c, "GET /status.json HTTP/1.1\r\nHost: tandem\r\n\r\n")
		}
	}
	return opened
}

// openFiles is how many descriptors process pid has open.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestConnectionFlood: a local client holding thousands of idle and
// keep-alive connections to --http and to the status socket, more than
// the descriptor limit the daemon is started with (1024; it raises it only
// with CAP_SYS_RESOURCE),
// does not starve VRRP: the daemon holds a bounded number of them, the
// status socket still answers, the track script keeps running (instead of
// failing to start: FAULT), adverts keep flowing, and a stop still hands
// over to the backup and removes the VIP.
func TestConnectionFlood(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is needed to start tandem with a small descriptor limit")
	}
	l := lab.NewT(t, lab.Seed001().Spec())
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	check := writeScript(t, dir, "check.sh", fmt.Sprintf("#!/bin/sh\necho run >> %s\n", runs))
	conf := fmt.Sprintf(`global_defs {
    vrrp_mcast_group4 224.100.100.100
}
vrrp_script chk {
    script "%s"
    interval 0.2
    fall 2
    rise 2
    weight 0
}
vrrp_instance VI_1 {
    state BACKUP
    interface ens33
    virtual_router_id 88
    priority 100
    advert_int 1
    track_script {
        chk
    }
    virtual_ipaddress {
        192.168.1.100/24 dev ens33 label ens33:1
    }
}
`, check)
	const httpAddr = "127.0.0.1:9400" // in ka1's namespace
	ka1 := startTandemVia(t, l, "ka1", writeConf(t, "ka1.conf", conf), []string{prlimit, "--nofile=1024:1024"}, "--http", httpAddr)
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", vrrpConf(2, 90, "1", "")))
	waitFor(t, "ka1 MASTER, ka2 BACKUP", 15*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })

	const flood = 1500 // per listener; 3000 in all, against a limit of 1024
	var onHTTP int
	if err := l.Do("ka1", func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		onHTTP = hold(t, flood, func() (net.Conn, error) { return d.Dial("tcp", httpAddr) })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	onSocket := hold(t, flood, func() (net.Conn, error) { return d.Dial("unix", ka1.socket) })
	t.Logf("holding %d connections to --http and %d to the status socket", onHTTP, onSocket)
	if onHTTP+onSocket < 1024 {
		t.Fatalf("only %d connections opened: not a flood", onHTTP+onSocket)
	}

	var runsBefore int
	waitFor(t, "the status socket answering under the flood", 10*time.Second, func() bool {
		b, _ := os.ReadFile(runs)
		runsBefore = strings.Count(string(b), "\n")
		_, err := ka1.status()
		return err == nil
	})
	n := openFiles(t, ka1.proc.Pid())
	t.Logf("ka1 has %d descriptors open under the flood", n)
	if n >= 1024 {
		t.Errorf("ka1 has %d descriptors open under the flood: the connections it holds are not capped", n)
	}
	adverts := ka2.instance(t, "VI_1").AdvertsReceived
	waitFor(t, "the track script running on", 10*time.Second, func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "\n") >= runsBefore+5
	})
	waitFor(t, "ka2 hearing adverts", 10*time.Second, func() bool { return ka2.instance(t, "VI_1").AdvertsReceived >= adverts+2 })
	if s1, s2 := ka1.state("VI_1"), ka2.state("VI_1"); s1 != "MASTER" || s2 != "BACKUP" {
		t.Errorf("under the flood: ka1 %s, ka2 %s; want MASTER and BACKUP", s1, s2)
	}

	if err := ka1.proc.Stop(20 * time.Second); err != nil {
		t.Errorf("stopping ka1 under the flood: %v", err)
	}
	waitFor(t, "ka2 MASTER", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	if holds(t, l, "ka1", "ens33", vip001) {
		t.Errorf("ka1 kept the VIP after its stop: both directors hold it")
	}
	if err := ka1.proc.Wait(); err != nil {
		t.Errorf("ka1's exit: %v\n%s", err, ka1.proc.Output())
	}
}
