package bfd

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pairLab is two nodes, a and b, on one segment, with IPv4 and IPv6
// addresses: a is 10.77.0.1 / fd77::1 / fe80::ff:fe00:1, b is .2 / ::2 /
// fe80::ff:fe00:2 (link-local from the MACs).
func pairLab(t testing.TB) *lab.Lab {
	t.Helper()
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "a", Sysctls: keepV6, Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Addrs: []netip.Prefix{
			netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("fd77::1/64")}}}},
		{Name: "b", Sysctls: keepV6, Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Addrs: []netip.Prefix{
			netip.MustParsePrefix("10.77.0.2/24"), netip.MustParsePrefix("fd77::2/64")}}}},
	}})
}

// keepV6 keeps IPv6 addresses on an interface that goes down, as the
// IPv4 ones are kept, so a cut link comes back usable.
var keepV6 = map[string]string{"net.ipv6.conf.eth0.keep_addr_on_down": "1"}

// engineIn starts an engine whose thread lives in node's namespace; it is
// closed when t ends (unless the test closed it).
func engineIn(t testing.TB, l *lab.Lab, node string) *Engine {
	t.Helper()
	return engineWith(t, l, node, Options{})
}

// engineWith is engineIn with opts (whose OnThread it sets).
func engineWith(t testing.TB, l *lab.Lab, node string, opts Options) *Engine {
	t.Helper()
	h := l.NSHandle(t, node)
	opts.OnThread = func() error { return netns.Set(h) }
	e, err := New(lab.TestLogger(t).With("node", node), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// watcher records an engine's events as they come.
type watcher struct {
	e      *Engine
	mu     sync.Mutex
	events []Event
	seen   map[string]int // per name: how many of its events waitFor consumed
	closed chan struct{}
}

func watch(e *Engine) *watcher {
	w := &watcher{e: e, seen: map[string]int{}, closed: make(chan struct{})}
	go func() {
		defer close(w.closed)
		for ev := range e.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		}
	}()
	return w
}

// of returns name's events.
func (w *watcher) of(name string) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Event
	for _, ev := range w.events {
		if ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor waits for name's next change to state to, after those an
// earlier waitFor returned, and returns it.
func (w *watcher) waitFor(t testing.TB, name string, to State, within time.Duration) Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := w.of(name)
		for i := w.seen[name]; i < len(evs); i++ {
			if evs[i].To == to {
				w.seen[name] = i + 1
				return evs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not go %s within %v; events %+v; status %+v", name, to, within, evs, w.e.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cfgTo(name, nb string, tx time.Duration, mult uint8) Config {
	return Config{Name: name, Neighbor: netip.MustParseAddr(nb), MinTx: tx, MinRx: tx, IdleTx: time.Second, Multiplier: mult, TTL: 255}
}

// The engine tests use 50 ms x 5 (250 ms detection): the machine that
// runs them is shared and loaded, and these tests are about behaviour,
// not speed (see TestEngineDetectionLatency for that).
const testTx, testMult = 50 * time.Millisecond, 5

func TestEnginePairUpDownAndReconfigure(t *testing.T) {
	l := pairLab(t)
	a, b := engineIn(t, l, "a"), engineIn(t, l, "b")
	wa, wb := watch(a), watch(b)
	mh := cfgTo("mh", "10.77.0.2", testTx, testMult)
	mh.Multihop, mh.MaxHops = true, 255
	mhb := cfgTo("mh", "10.77.0.1", testTx, testMult)
	mhb.Multihop, mhb.MaxHops = true, 255
	v4, v6 := cfgTo("v4", "10.77.0.2", testTx, testMult), cfgTo("v6", "fd77::2", testTx, testMult)
	if err := a.Apply([]Config{v4, v6, mh}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply([]Config{cfgTo("v4", "10.77.0.1", testTx, testMult), cfgTo("v6", "fd77::1", testTx, testMult), mhb}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v4", "v6", "mh"} {
		wa.waitFor(t, name, Up, 10*time.Second)
		wb.waitFor(t, name, Up, 10*time.Second)
	}
	st := a.Status()
	if len(st) != 3 || st[0].Name != "mh" || st[1].Name != "v4" || st[2].Name != "v6" {
		t.Fatalf("status not sorted by name: %+v", st)
	}
	for _, s := range st {
		if s.State != Up || s.Sent == 0 || s.Received == 0 || !s.Source.IsValid() {
			t.Errorf("status %+v, want Up with traffic and a source", s)
		}
	}

	// Timers change in place (Poll/Final): no state change on either side.
	before := len(wa.of("v4")) + len(wb.of("v4"))
	slow := cfgTo("v4", "10.77.0.2", 2*testTx, testMult)
	if err := a.Apply([]Config{slow, v6, mh}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sa, sb := a.Status()[1], b.Status()[1]
		if sa.TxInterval == 2*testTx && sb.Detection == testMult*2*testTx {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timers not changed: a %+v b %+v", sa, sb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := len(wa.of("v4")) + len(wb.of("v4")); after != before {
		t.Fatalf("v4 changed state during the timer change: a %+v b %+v", wa.of("v4"), wb.of("v4"))
	}

	// Cutting the link takes every session Down on detection time, on
	// both sides; they come back when it is restored.
	if err := l.SetLink("a", "eth0", false); err != nil {
		t.Fatal(err)
	}
	names := []string{"v4", "v6", "mh"}
	for _, name := range names {
		for _, w := range []*watcher{wa, wb} {
			if ev := w.waitFor(t, name, Down, 10*time.Second); ev.Diag != DiagExpired {
				t.Errorf("%s Down with diag %d, want 1", name, ev.Diag)
			}
		}
	}
	if err := l.SetLink("a", "eth0", true); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		wa.waitFor(t, name, Up, 20*time.Second)
		wb.waitFor(t, name, Up, 20*time.Second)
	}

	// Removing a session sends AdminDown: the neighbor goes Down, diag 3.
	if err := a.Apply([]Config{slow, mh}); err != nil {
		t.Fatal(err)
	}
	if ev := wb.waitFor(t, "v6", Down, 10*time.Second); ev.Diag != DiagNeighborDown {
		t.Errorf("v6 Down with diag %d after removal, want 3", ev.Diag)
	}
	if st := a.Status(); len(st) != 2 {
		t.Errorf("a has %d sessions after removing one, want 2", len(st))
	}
	// A changed source restarts that session only: AdminDown, then Up
	// again, while mh goes on.
	mhEvents := len(wa.of("mh")) + len(wb.of("mh"))
	withSrc := slow
	withSrc.Source = netip.MustParseAddr("10.77.0.1")
	if err := a.Apply([]Config{withSrc, mh}); err != nil {
		t.Fatal(err)
	}
	if ev := wb.waitFor(t, "v4", Down, 10*time.Second); ev.Diag != DiagNeighborDown {
		t.Errorf("v4 Down with diag %d on restart, want 3", ev.Diag)
	}
	wb.waitFor(t, "v4", Up, 10*time.Second)
	if n := len(wa.of("mh")) + len(wb.of("mh")); n != mhEvents {
		t.Errorf("mh changed state when v4 restarted: %+v %+v", wa.of("mh"), wb.of("mh"))
	}
	// While a runs, its ports are taken.
	if err := l.Do("a", func() error { _, err := openListener(false, true); return err }); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second listener on 4784 while the engine runs: %v, want EADDRINUSE", err)
	}
	// Close sends AdminDown on the rest and closes Events.
	a.Close()
	<-wa.closed
	for _, name := range []string{"mh", "v4"} {
		if ev := wb.waitFor(t, name, Down, 10*time.Second); ev.Diag != DiagNeighborDown {
			t.Errorf("%s Down with diag %d after Close, want 3", name, ev.Diag)
		}
	}
	if err := a.Apply(nil); err != ErrClosed {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	// Its sockets are free: port 3784 and 4784 can be bound again.
	if err := l.Do("a", func() error {
		for _, mh := range []bool{false, true} {
			ln, err := openListener(false, mh)
			if err != nil {
				return err
			}
			unix.Close(ln.fd)
		}
		return nil
	}); err != nil {
		t.Errorf("after Close: %v", err)
	}
}

// TestEngineGTSM: a single hop session drops packets that arrive with a
// TTL below 255 (RFC 5881 section 5); with max_hops it accepts them.
func TestEngineGTSM(t *testing.T) {
	l := pairLab(t)
	a, b := engineIn(t, l, "a"), engineIn(t, l, "b")
	wb := watch(b)
	low := cfgTo("s", "10.77.0.2", testTx, testMult)
	low.TTL = 254
	if err := a.Apply([]Config{low}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply([]Config{cfgTo("s", "10.77.0.1", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Status()[0].Dropped < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no drops at TTL 254: %+v", b.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := b.Status()[0]; s.State != Down || s.Received != 0 {
		t.Fatalf("b accepted TTL 254 packets: %+v", s)
	}
	lenient := cfgTo("s", "10.77.0.1", testTx, testMult)
	lenient.MaxHops = 1
	if err := b.Apply([]Config{lenient}); err != nil {
		t.Fatal(err)
	}
	wb.waitFor(t, "s", Up, 10*time.Second)
	// Strict again: b drops a's packets and goes Down; a's TTL changed
	// in place to 255 brings it back.
	if err := b.Apply([]Config{cfgTo("s", "10.77.0.1", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	wb.waitFor(t, "s", Down, 10*time.Second)
	low.TTL = 255
	if err := a.Apply([]Config{low}); err != nil {
		t.Fatal(err)
	}
	wb.waitFor(t, "s", Up, 10*time.Second)
}

// TestEngineLinkLocal: sessions to link-local IPv6 neighbors, named with
// their zone, come Up (the zone picks the interface to send on and to
// accept packets from).
func TestEngineLinkLocal(t *testing.T) {
	l := pairLab(t)
	a, b := engineIn(t, l, "a"), engineIn(t, l, "b")
	wa, wb := watch(a), watch(b)
	if err := a.Apply([]Config{cfgTo("ll", "fe80::ff:fe00:2%eth0", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply([]Config{cfgTo("ll", "fe80::ff:fe00:1%eth0", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, "ll", Up, 10*time.Second)
	wb.waitFor(t, "ll", Up, 10*time.Second)
}

// TestEngineEventsWaitForSlowReader: with a one-event channel and no
// reader, state changes queue inside the engine and come out later, all
// of them, in order.
func TestEngineEventsWaitForSlowReader(t *testing.T) {
	l := pairLab(t)
	a, b := engineWith(t, l, "a", Options{EventBuffer: 1}), engineIn(t, l, "b")
	if err := a.Apply([]Config{cfgTo("s", "10.77.0.2", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply([]Config{cfgTo("s", "10.77.0.1", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "Up", func(s Status) bool { return s.State == Up })
	if err := l.SetLink("b", "eth0", false); err != nil {
		t.Fatal(err)
	}
	down := waitStatus(t, a, "Down", func(s Status) bool { return s.State == Down })
	w := watch(a)
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := w.of("s")
		if n := len(evs); n > 0 && evs[n-1].To == Down && down.Flaps == 1 {
			if evs[0].From != Down {
				t.Fatalf("first event %+v, want from Down", evs[0])
			}
			for i := 1; i < n; i++ {
				if evs[i].From != evs[i-1].To {
					t.Fatalf("events out of order or missing: %+v", evs)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %+v after Up and Down (flaps %d)", evs, down.Flaps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEngineRejectsBadConfig(t *testing.T) {
	e, err := New(lab.TestLogger(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ok := cfgTo("x", "127.0.0.1", 10*time.Millisecond, 3)
	noMult := ok
	noMult.Multiplier = 0
	mixed := ok
	mixed.Source = netip.MustParseAddr("::1")
	samePeer := ok
	samePeer.Name = "y"
	for _, cfgs := range [][]Config{{noMult}, {mixed}, {ok, ok}, {ok, samePeer}, {{Name: "n"}}} {
		if err := e.Apply(cfgs); err == nil {
			t.Errorf("Apply(%+v) accepted", cfgs)
		}
	}
	if st := e.Status(); len(st) != 0 {
		t.Errorf("sessions after rejected configs: %+v", st)
	}
}

// TestListenerReportsTTLDestinationAndStamp: the listener hands each
// packet's TTL, destination address and kernel arrival time to the
// engine (IP_RECVTTL, IP_PKTINFO, SO_TIMESTAMPNS and their IPv6 forms).
func TestListenerReportsTTLDestinationAndStamp(t *testing.T) {
	l := pairLab(t)
	for _, tc := range []struct {
		v6       bool
		nb, from string
	}{{false, "10.77.0.1", "10.77.0.2"}, {true, "fd77::1", "fd77::2"}} {
		err := l.Do("a", func() error {
			ln, err := openListener(tc.v6, false)
			if err != nil {
				return err
			}
			defer unix.Close(ln.fd)
			cfg := cfgTo("x", tc.nb, testTx, testMult)
			cfg.TTL = 200
			tx, err := openSender(cfg, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				return err
			}
			defer tx.close()
			if tx.local.Port() < srcPortMin {
				t.Errorf("source port %d outside %d-%d", tx.local.Port(), srcPortMin, srcPortMax)
			}
			before := time.Now()
			if err := tx.send([]byte("probe")); err != nil {
				return err
			}
			buf, oob := make([]byte, 64), make([]byte, oobSize)
			pfd := []unix.PollFd{{Fd: int32(ln.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 5000); err != nil {
				return err
			}
			n, m, err := ln.read(buf, oob)
			if err != nil {
				return err
			}
			after := time.Now()
			if string(buf[:n]) != "probe" || m.ttl != 200 || m.dst != netip.MustParseAddr(tc.nb) || m.src != netip.MustParseAddr(tc.nb) || m.ifindex == 0 {
				t.Errorf("v6 %v: read %q %+v, want the probe with TTL 200 to and from %s on an interface", tc.v6, buf[:n], m, tc.nb)
			}
			if m.stamp.Before(before.Add(-time.Millisecond).Round(0)) || m.stamp.After(after.Round(0)) {
				t.Errorf("v6 %v: kernel stamp %v not between send %v and read %v", tc.v6, m.stamp, before, after)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestEngineLateLoopKeepsSession: when the engine's loop is held up for
// longer than the detection time while the neighbor keeps sending, the
// packets waiting in the socket count (read before the timers run, with
// their kernel arrival times) and the session stays Up. b asks a for a
// packet a second (min_rx 1 s, so 5 s detection) so that a's silence
// during the stall does not take b Down.
func TestEngineLateLoopKeepsSession(t *testing.T) {
	l := pairLab(t)
	var mu sync.Mutex
	var latest time.Duration
	a := engineWith(t, l, "a", Options{Late: func(by time.Duration) {
		mu.Lock()
		latest = max(latest, by)
		mu.Unlock()
	}})
	b := engineIn(t, l, "b")
	wa := watch(a)
	if err := a.Apply([]Config{cfgTo("s", "10.77.0.2", testTx, testMult)}); err != nil {
		t.Fatal(err)
	}
	patient := cfgTo("s", "10.77.0.1", testTx, testMult)
	patient.MinRx = time.Second
	if err := b.Apply([]Config{patient}); err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, "s", Up, 10*time.Second)
	st := waitStatus(t, a, "Up at the configured timers", func(s Status) bool { return s.State == Up && s.Detection == testMult*testTx })
	n := len(wa.of("s"))
	// 2 s: longer than a's detection time (250 ms) and its TX interval
	// (1 s, b's min_rx), shorter than b's detection time (5 s).
	const stall = 2 * time.Second
	a.do(func() { time.Sleep(stall) })
	after := waitStatus(t, a, "packets read after the stall", func(s Status) bool { return s.Received > st.Received+testMult })
	if evs := wa.of("s"); len(evs) != n || after.State != Up {
		t.Fatalf("the session changed state across a stall of the loop: %+v", evs[n:])
	}
	// The stall was reported to the Late hook (the real-time escalation's
	// input): the timers due during it ran at least a detection time late.
	mu.Lock()
	defer mu.Unlock()
	if latest < stall-time.Second {
		t.Errorf("Late reported at most %v after a stall of %v", latest, stall)
	}
}

// TestEngineOnThread: OnThread runs its function on the engine's own
// thread (the same one each time, not the caller's), returns its error,
// and refuses once the engine is closed.
func TestEngineOnThread(t *testing.T) {
	e, err := New(lab.TestLogger(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tids [2]int
	for i := range tids {
		if err := e.OnThread(func() error { tids[i] = unix.Gettid(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	runtime.LockOSThread()
	own := unix.Gettid()
	runtime.UnlockOSThread()
	if tids[0] != tids[1] || tids[0] == own {
		t.Errorf("OnThread ran on threads %v; the caller is %d", tids, own)
	}
	refused := errors.New("refused")
	if err := e.OnThread(func() error { return refused }); err != refused {
		t.Errorf("OnThread returned %v, want the function's error", err)
	}
	e.Close()
	if err := e.OnThread(func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("OnThread after Close: %v, want ErrClosed", err)
	}
}
