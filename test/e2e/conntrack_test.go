package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tandem/internal/ctsync"
	"tandem/internal/lab"
)

// natConns is how many long-lived connections TestNATConntrackFailover
// keeps through the VIP (the measure: 200).
var (
	natConns  = flag.Int("nat-conns", 200, "TestNATConntrackFailover: client connections through the VIP")
	natAdvert = flag.String("nat-advert", "0.1", "TestNATConntrackFailover: the directors' advert_int (VRRPv3, seconds)")
)

// natPort is the NAT pair's service port.
var natPort = lab.NATPairVIP.Port()

// natPairConf is director n's configuration (1 is the master) at advert
// -nat-advert.
func natPairConf(n int, withSync bool) string {
	return lab.NATPairConf{Sync: withSync, Advert: *natAdvert}.Conf(fmt.Sprintf("dir%d", n))
}

// echoServer answers every read with the same bytes, in node, until the
// test ends.
func echoServer(t *testing.T, l *lab.Lab, node string) {
	t.Helper()
	stop, err := l.Serve(node, fmt.Sprintf(":%d", natPort), func(c net.Conn) { _, _ = io.Copy(c, c) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// flow is one client connection sending a request every 50 ms and
// waiting for its echo.
type flow struct {
	conn net.Conn
	mu   sync.Mutex
	last time.Time // last answer
	// stall is the longest time between two answers after start.
	stall time.Duration
	err   error
	n     int
}

func (f *flow) run(ctx context.Context) {
	req := make([]byte, 16)
	resp := make([]byte, 16)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		copy(req, fmt.Sprintf("req %12d", i))
		_ = f.conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, err := f.conn.Write(req)
		if err == nil {
			_, err = io.ReadFull(f.conn, resp)
		}
		if err == nil && !bytes.Equal(req, resp) {
			err = fmt.Errorf("answer %q to %q", resp, req)
		}
		now := time.Now()
		f.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				f.err = err
			}
			f.mu.Unlock()
			return
		}
		if !f.last.IsZero() {
			f.stall = max(f.stall, now.Sub(f.last))
		}
		f.last = now
		f.n++
		f.mu.Unlock()
	}
}

// conntrackdCount is how many of the natPort flows d's conntrackd holds
// in its external cache (the peer's flows); -1 if it cannot tell.
func conntrackdCount(l *lab.Lab, d *daemon) int {
	n, err := l.ConntrackdFlows(context.Background(), d.node, ctsync.FilesFor(d.socket).Conf, natPort)
	if err != nil {
		return -1
	}
	return n
}

// TestNATConntrackFailover: two Tandem NAT directors on nftables, conntrackd
// replicating the master's connection tracking over their own link
// (conntrack_sync). A client keeps natConns TCP connections through the VIP,
// each sending a request every 50 ms; the master crashes (SIGKILL and its
// switch ports cut, so its kernel cannot keep forwarding) and the
// connections must go on through the new master, which committed the
// replicated entries with their NAT mappings. Without conntrack_sync (the
// control) the new master schedules the flows' next packets afresh and
// has no mapping for the real servers' replies: connections break.
func TestNATConntrackFailover(t *testing.T) {
	if _, err := exec.LookPath("conntrackd"); err != nil {
		t.Skip("conntrackd not installed (Debian package conntrackd)")
	}
	for _, tc := range []struct {
		name string
		sync bool
	}{{"conntrack_sync", true}, {"control without conntrack_sync", false}} {
		t.Run(tc.name, func(t *testing.T) {
			kept, total, stall := natFailover(t, tc.sync)
			t.Logf("NAT failover (%s): %d of %d connections kept, longest stall %v", tc.name, kept, total, stall.Round(time.Millisecond))
			if tc.sync && kept*1000 < total*995 {
				t.Errorf("with conntrack_sync %d of %d connections kept, want >= 99.5%%", kept, total)
			}
			if !tc.sync && kept == total {
				t.Errorf("without conntrack_sync all %d connections were kept: the test does not show what conntrackd does", total)
			}
		})
	}
}

func natFailover(t *testing.T, withSync bool) (kept, total int, stall time.Duration) {
	l := lab.NewT(t, lab.NATPairSpec())
	echoServer(t, l, "rs1")
	echoServer(t, l, "rs2")
	d1 := startTandem(t, l, "dir1", writeConf(t, "dir1.conf", natPairConf(1, withSync)), "--dataplane", "nft")
	d2 := startTandem(t, l, "dir2", writeConf(t, "dir2.conf", natPairConf(2, withSync)), "--dataplane", "nft")
	waitFor(t, "dir1 MASTER", 20*time.Second, func() bool { return d1.state("VI_1") == "MASTER" })
	waitFor(t, "dir2 BACKUP", 20*time.Second, func() bool { return d2.state("VI_1") == "BACKUP" })
	for _, d := range []*daemon{d1, d2} {
		waitFor(t, d.node+"'s real servers healthy", 20*time.Second, func() bool {
			return !slices.ContainsFunc(lab.NATPairReals, func(r lab.Host) bool { return !d.healthy(lab.NATPairVIP.String(), r.Addr.String()) })
		})
		if withSync {
			waitFor(t, d.node+"'s conntrackd running", 20*time.Second, func() bool {
				st, err := d.status()
				return err == nil && st.Conntrackd != nil && st.Conntrackd.Running
			})
		}
	}
	var flows []*flow
	if err := l.Do("client", func() error {
		for range *natConns {
			c, err := net.DialTimeout("tcp4", lab.NATPairVIP.String(), 5*time.Second)
			if err != nil {
				return err
			}
			flows = append(flows, &flow{conn: c})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, f := range flows {
			f.conn.Close()
		}
		wg.Wait()
	}()
	for _, f := range flows {
		wg.Go(func() { f.run(ctx) })
	}
	answered := func(f *flow) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.n > 0 }
	waitFor(t, "every connection answered", 20*time.Second, func() bool { return !slices.ContainsFunc(flows, func(f *flow) bool { return !answered(f) }) })
	if withSync {
		waitFor(t, "dir2's conntrackd to hold the flows", 30*time.Second, func() bool { return conntrackdCount(l, d2) >= len(flows) })
	}
	// The crash: dir1 cut off every switch, and tandem (and with it
	// conntrackd, PR_SET_PDEATHSIG) killed.
	crash := time.Now()
	if err := l.Crash("dir1", d1.proc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dir2 MASTER", 10*time.Second, func() bool { return d2.state("VI_1") == "MASTER" })
	t.Logf("dir2 MASTER %v after the crash", time.Since(crash).Round(time.Millisecond))
	// Long enough for TCP's retransmissions (200 ms, 400 ms, ...) to
	// reach the new master, then every flow must still be answering.
	time.Sleep(5 * time.Second)
	end := time.Now()
	cancel()
	logged := 0
	for _, f := range flows {
		f.mu.Lock()
		switch {
		// Kept: still answering at the end (every 50 ms).
		case f.err == nil && end.Sub(f.last) < time.Second:
			kept++
			stall = max(stall, f.stall)
		case logged < 5:
			t.Logf("lost: err %v, last answer %v after the crash", f.err, f.last.Sub(crash).Round(time.Millisecond))
			logged++
		}
		f.mu.Unlock()
	}
	if withSync {
		st, err := d2.status()
		if err != nil || st.Conntrackd == nil {
			t.Fatalf("dir2 status: %v", err)
		}
		t.Logf("dir2 conntrackd: %+v", *st.Conntrackd)
		if st.Conntrackd.Role != "MASTER" || st.Conntrackd.CommandError != "" {
			t.Errorf("dir2's conntrackd after the failover: %+v", *st.Conntrackd)
		}
	}
	return kept, len(flows), stall
}

// conntrackdPID finds the conntrackd running with conf (0: none).
func conntrackdPID(t *testing.T, conf string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) == "conntrackd" && slices.Contains(args, conf) && !slices.Contains(args, "-k") {
			return pid
		}
	}
	return 0
}

// TestConntrackdLifecycle: the conntrackd Tandem runs for conntrack_sync
// is restarted when it dies (SIGKILL leaves its lock file and socket
// behind, which Tandem clears), shows in the status, and is stopped with
// its files removed when Tandem stops.
func TestConntrackdLifecycle(t *testing.T) {
	if _, err := exec.LookPath("conntrackd"); err != nil {
		t.Skip("conntrackd not installed (Debian package conntrackd)")
	}
	l := lab.NewT(t, lab.NATPairSpec())
	d := startTandem(t, l, "dir1", writeConf(t, "dir1.conf", natPairConf(1, true)), "--dataplane", "nft")
	files := ctsync.FilesFor(d.socket)
	running := func(restarts int) func() bool {
		return func() bool {
			st, err := d.status()
			return err == nil && st.Conntrackd != nil && st.Conntrackd.Running && st.Conntrackd.Restarts == restarts
		}
	}
	waitFor(t, "conntrackd running", 20*time.Second, running(0))
	waitFor(t, "dir1 MASTER, conntrackd switched", 20*time.Second, func() bool {
		st, err := d.status()
		return err == nil && st.Conntrackd.Role == "MASTER" && st.Conntrackd.Command == "conntrackd -B"
	})
	pid := conntrackdPID(t, files.Conf)
	if pid == 0 {
		t.Fatal("no conntrackd process found")
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "conntrackd restarted", 20*time.Second, running(1))
	if p := conntrackdPID(t, files.Conf); p == 0 || p == pid {
		t.Errorf("conntrackd pid %d after the restart (was %d)", p, pid)
	}
	// The new conntrackd gets the MASTER commands again.
	waitFor(t, "the MASTER commands on the new conntrackd", 20*time.Second, func() bool {
		st, err := d.status()
		return err == nil && st.Conntrackd.Command == "conntrackd -B" && st.Conntrackd.CommandTime.After(killed)
	})
	var text bytes.Buffer
	cmd := exec.Command(tandemBin, "status", "--socket", d.socket)
	cmd.Stdout = &text
	if err := cmd.Run(); err != nil || !strings.Contains(text.String(), "conntrackd: running (following instance VI_1, MASTER, 1 restarts); last command conntrackd -B: ok") {
		t.Errorf("tandem status: %v\n%s", err, text.String())
	}
	// A second Tandem in the namespace is refused before it touches
	// anything: conntrackd, its files, the first Tandem go on.
	pid = conntrackdPID(t, files.Conf)
	secondSock := filepath.Join(filepath.Dir(d.socket), "second.sock")
	second, err := l.Start("dir1", tandemBin, "run", "-f", d.conf, "--socket", secondSock, "--dataplane", "nft")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a second tandem in dir1 kept running")
	}
	if second.Wait() == nil || !strings.Contains(second.Output(), "another tandem") {
		t.Errorf("second tandem: %v\n%s", second.Wait(), second.Output())
	}
	if p := conntrackdPID(t, files.Conf); p != pid || conntrackdPID(t, ctsync.FilesFor(secondSock).Conf) != 0 {
		t.Errorf("conntrackd %d after a second tandem was refused (was %d)", p, pid)
	}
	if st, err := d.status(); err != nil || !st.Conntrackd.Running {
		t.Errorf("first tandem after the second was refused: %v", err)
	}
	// A reload that leaves conntrack_sync alone leaves conntrackd alone;
	// one that changes it restarts conntrackd with the new settings.
	pid = conntrackdPID(t, files.Conf)
	reload := func(conf string) {
		t.Helper()
		if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tandemBin, "reload", "--socket", d.socket).CombinedOutput()
		if err != nil {
			t.Fatalf("tandem reload: %v\n%s", err, out)
		}
	}
	reload(natPairConf(1, true) + "# a comment\n")
	if p := conntrackdPID(t, files.Conf); p != pid {
		t.Errorf("conntrackd %d after a reload that changed nothing of it (was %d)", p, pid)
	}
	reload(strings.Replace(natPairConf(1, true), "    peer 10.7.9.3\n", "    peer 10.7.9.3\n    port 3781\n", 1))
	waitFor(t, "conntrackd restarted by the reload", 20*time.Second, func() bool {
		p := conntrackdPID(t, files.Conf)
		b, _ := os.ReadFile(files.Conf)
		return p != 0 && p != pid && strings.Contains(string(b), "Port 3781")
	})
	waitFor(t, "the new conntrackd running as MASTER", 20*time.Second, func() bool {
		st, err := d.status()
		return err == nil && st.Conntrackd != nil && st.Conntrackd.Running && st.Conntrackd.Command == "conntrackd -B"
	})
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p := conntrackdPID(t, files.Conf); p != 0 {
		t.Errorf("conntrackd %d still running after tandem stopped", p)
	}
	for _, p := range []string{files.Conf, files.Socket, files.Lock, files.Log} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after tandem stopped: %v", p, err)
		}
	}
}
