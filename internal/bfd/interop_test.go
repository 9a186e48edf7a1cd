package bfd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/lab"
)

// The interop tests run a real peer in node b of a pairLab and the engine
// in node a.

const bfddPath = "/usr/lib/frr/bfdd"

// frrDir makes a directory FRR's daemons, which drop to the frr user,
// can write their pid file and sockets in; removed when t ends.
func frrDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(bfddPath); err != nil {
		t.Skipf("%s missing (Debian package frr): %v", bfddPath, err)
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skipf("vtysh missing (Debian package frr): %v", err)
	}
	u, err := user.Lookup("frr")
	if err != nil {
		t.Skipf("no frr user (Debian package frr): %v", err)
	}
	dir, err := os.MkdirTemp("", "tandem-bfdd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bfdd is FRR's bfdd running alone (no zebra) in a lab node, with its
// own configuration, pid file, control and vty sockets.
type bfdd struct {
	l    *lab.Lab
	node string
	dir  string
	proc *lab.Proc
}

func startBfdd(t *testing.T, l *lab.Lab, node, dir, conf string) *bfdd {
	t.Helper()
	path := filepath.Join(dir, "bfdd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &bfdd{l: l, node: node, dir: dir}
	b.start(t)
	return b
}

func (b *bfdd) start(t *testing.T) {
	t.Helper()
	p, err := b.l.Start(b.node, bfddPath, "-f", filepath.Join(b.dir, "bfdd.conf"), "-i", filepath.Join(b.dir, "bfdd.pid"),
		"--vty_socket", b.dir, "-z", filepath.Join(b.dir, "zserv.api"), "--bfdctl", filepath.Join(b.dir, "bfdd.sock"),
		"-u", "frr", "-g", "frr", "-A", "127.0.0.1", "-P", "0", "--log", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	b.proc = p
	// Wait for the vty socket: bfdd is ready to answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.vtysh("show bfd peers json"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bfdd not answering on its vty after 10s; output:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bfdd) vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", b.dir, "-d", "bfdd"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %q: %w: %s", cmds, err, out)
	}
	return string(out), nil
}

// frrPeer is the part of `show bfd peers json` the tests read.
type frrPeer struct {
	Peer                  string `json:"peer"`
	Status                string `json:"status"`
	Multihop              bool   `json:"multihop"`
	RemoteTransmitInteval int    `json:"remote-transmit-interval"`
	RemoteReceiveInterval int    `json:"remote-receive-interval"`
	TransmitInterval      int    `json:"transmit-interval"`
	Uptime                int    `json:"uptime"`
}

func (b *bfdd) peers(t *testing.T) []frrPeer {
	t.Helper()
	out, err := b.vtysh("show bfd peers json")
	if err != nil {
		t.Fatal(err)
	}
	var ps []frrPeer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("show bfd peers json: %v: %s", err, out)
	}
	return ps
}

// waitPeer waits until bfdd's peer satisfies ok.
func (b *bfdd) waitPeer(t *testing.T, what string, ok func(frrPeer) bool) frrPeer {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ps := b.peers(t)
		if len(ps) == 1 && ok(ps[0]) {
			return ps[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("bfdd: %s not reached in 15s: %+v; output:\n%s", what, ps, b.proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func frrConf(peer string, tx time.Duration, mult int) string {
	ms := tx.Milliseconds()
	return fmt.Sprintf("bfd\n peer %s\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier %d\n !\n!\n", peer, ms, ms, mult)
}

// withBfdd runs bfdd with peer (its `peer` line) in node b and the
// engine with cfg in node a.
func withBfdd(t *testing.T, peer string, cfg Config) (*lab.Lab, *bfdd, *Engine, *watcher) {
	t.Helper()
	dir := frrDir(t)
	l := pairLab(t)
	b := startBfdd(t, l, "b", dir, frrConf(peer, testTx, testMult))
	e := engineIn(t, l, "a")
	w := watch(e)
	if err := e.Apply([]Config{cfg}); err != nil {
		t.Fatal(err)
	}
	return l, b, e, w
}

func TestInteropFRR(t *testing.T) {
	cfg := cfgTo("frr", "10.77.0.2", testTx, testMult)
	l, peer, e, w := withBfdd(t, "10.77.0.1 local-address 10.77.0.2", cfg)
	w.waitFor(t, "frr", Up, 15*time.Second)
	up := peer.waitPeer(t, "up", func(p frrPeer) bool { return p.Status == "up" })

	// Our timer change, by Poll: bfdd learns it, no one flaps.
	slow := cfg
	slow.MinTx, slow.MinRx = 2*testTx, 2*testTx
	if err := e.Apply([]Config{slow}); err != nil {
		t.Fatal(err)
	}
	peer.waitPeer(t, "our new intervals", func(p frrPeer) bool {
		return p.RemoteTransmitInteval == int(2*testTx/time.Millisecond) && p.RemoteReceiveInterval == int(2*testTx/time.Millisecond)
	})
	// bfdd's timer change, by its Poll: our detection time follows.
	if out, err := peer.vtysh("configure terminal", "bfd", "peer 10.77.0.1 local-address 10.77.0.2", "transmit-interval 150", "receive-interval 150"); err != nil {
		t.Fatal(err, out)
	}
	waitStatus(t, e, "bfdd's new transmit interval", func(s Status) bool { return s.Detection == testMult*150*time.Millisecond })
	if evs := w.of("frr"); len(evs) != 1 {
		t.Fatalf("state changes during the timer changes: %+v", evs)
	}
	if now := peer.peers(t)[0]; now.Status != "up" || now.Uptime < up.Uptime {
		t.Fatalf("bfdd's session restarted during the timer changes: before %+v, now %+v", up, now)
	}

	// bfdd killed: Down on detection time, diag 1.
	peer.killAndWait(t, w, "frr")

	// bfdd back: Up again; then the link cut: Down again.
	peer.start(t)
	w.waitFor(t, "frr", Up, 20*time.Second)
	peer.waitPeer(t, "up again", func(p frrPeer) bool { return p.Status == "up" })
	if err := l.SetLink("b", "eth0", false); err != nil {
		t.Fatal(err)
	}
	if ev := w.waitFor(t, "frr", Down, 15*time.Second); ev.Diag != DiagExpired {
		t.Errorf("Down with diag %d after the link cut, want 1", ev.Diag)
	}
	if err := l.SetLink("b", "eth0", true); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "frr", Up, 20*time.Second)
	// Our session removed: bfdd sees AdminDown and goes down.
	if err := e.Apply(nil); err != nil {
		t.Fatal(err)
	}
	peer.waitPeer(t, "down after our AdminDown", func(p frrPeer) bool { return p.Status == "down" })
}

func TestInteropFRRMultihop(t *testing.T) {
	cfg := cfgTo("mh", "10.77.0.2", testTx, testMult)
	cfg.Multihop, cfg.MaxHops = true, 254
	_, peer, _, w := withBfdd(t, "10.77.0.1 multihop local-address 10.77.0.2", cfg)
	w.waitFor(t, "mh", Up, 15*time.Second)
	peer.waitPeer(t, "multihop up", func(p frrPeer) bool { return p.Status == "up" && p.Multihop })
	peer.killAndWait(t, w, "mh")
}

// killAndWait SIGKILLs bfdd and waits for name to go Down on the
// detection time (diag 1), logging how long that took.
func (b *bfdd) killAndWait(t *testing.T, w *watcher, name string) {
	t.Helper()
	killed := time.Now()
	if err := syscall.Kill(b.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev := w.waitFor(t, name, Down, 15*time.Second)
	t.Logf("bfdd SIGKILLed: %s Down %v later (detection time %v)", name, time.Since(killed).Round(time.Millisecond), ev.Detection)
	if ev.Diag != DiagExpired {
		t.Errorf("%s Down with diag %d, want 1", name, ev.Diag)
	}
	b.proc.Wait()
}

// waitStatus waits until the engine's only session satisfies ok.
func waitStatus(t testing.TB, e *Engine, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := e.Status()
		if len(st) == 1 && ok(st[0]) {
			return st[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached in 15s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInteropKeepalived(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skipf("keepalived missing (Debian package keepalived): %v", err)
	}
	if out, _ := exec.Command(bin, "-v").CombinedOutput(); !strings.Contains(string(out), " BFD") {
		t.Skipf("this keepalived is built without BFD: %s", out)
	}
	l := pairLab(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	ms := testTx.Milliseconds()
	if err := os.WriteFile(conf, fmt.Appendf(nil, `global_defs {
	router_id peer
}
bfd_instance tandem {
	neighbor_ip 10.77.0.1
	source_ip 10.77.0.2
	min_rx %d
	min_tx %d
	idle_tx 1000
	multiplier %d
}
`, ms, ms, testMult), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := func(n string) string { return filepath.Join(dir, n+".pid") }
	start := func() *lab.Proc {
		p, err := l.Start("b", bin, "-n", "-l", "-D", "-f", conf, "-p", pid("main"), "-r", pid("vrrp"), "-c", pid("check"), "-b", pid("bfd"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ka := start()
	e := engineIn(t, l, "a")
	w := watch(e)
	if err := e.Apply([]Config{cfgTo("ka", "10.77.0.2", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "ka", Up, 20*time.Second)
	waitOutput(t, ka, "(tandem) Entering Up state")
	st := waitStatus(t, e, "keepalived's min_tx in the detection time", func(s Status) bool { return s.Detection == testMult*testTx })
	t.Logf("Up with keepalived: %+v", st)

	// keepalived stopped (SIGTERM, its graceful stop): Down.
	stopped := time.Now()
	if err := ka.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ev := w.waitFor(t, "ka", Down, 15*time.Second)
	t.Logf("keepalived stopped: Down %v later with diag %d", time.Since(stopped).Round(time.Millisecond), ev.Diag)
	ka.Wait()

	// Back, then crashed (its whole process group SIGKILLed): Down on
	// detection time.
	ka = start()
	w.waitFor(t, "ka", Up, 20*time.Second)
	waitOutput(t, ka, "(tandem) Entering Up state")
	if err := ka.Kill(); err != nil {
		t.Fatal(err)
	}
	if ev := w.waitFor(t, "ka", Down, 15*time.Second); ev.Diag != DiagExpired {
		t.Errorf("Down with diag %d after keepalived's crash, want 1", ev.Diag)
	}
}

// waitOutput waits for s in p's output.
func waitOutput(t *testing.T, p *lab.Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in the output after 15s:\n%s", s, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInteropFRRIPv6(t *testing.T) {
	_, peer, _, w := withBfdd(t, "fd77::1 local-address fd77::2", cfgTo("v6", "fd77::2", testTx, testMult))
	w.waitFor(t, "v6", Up, 15*time.Second)
	peer.waitPeer(t, "up over IPv6", func(p frrPeer) bool { return p.Status == "up" })
	peer.killAndWait(t, w, "v6")
}
