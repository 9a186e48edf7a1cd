package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/api"
	"tandem/internal/bfd"
	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/script"
)

// fakeSessions is a bfd.Sessions that records what it is asked and emits
// the events a test gives it.
type fakeSessions struct {
	events chan bfd.Event

	mu      sync.Mutex
	applied [][]bfd.Config
	// onThread counts OnThread calls; the function is not run (it would
	// change the test's own thread).
	onThread int
	status   []bfd.Status
	closed   bool
}

func newFakeSessions() *fakeSessions { return &fakeSessions{events: make(chan bfd.Event, 16)} }

func (f *fakeSessions) Apply(cfgs []bfd.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, slices.Clone(cfgs))
	return nil
}

func (f *fakeSessions) Events() <-chan bfd.Event { return f.events }

func (f *fakeSessions) OnThread(func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onThread++
	return nil
}

func (f *fakeSessions) threadCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.onThread
}

func (f *fakeSessions) Status() []bfd.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.status)
}

func (f *fakeSessions) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.events)
	}
	return nil
}

func (f *fakeSessions) applies() [][]bfd.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

func (f *fakeSessions) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// change is session name's state change from one state to another.
func change(name string, from, to bfd.State) bfd.Event {
	return bfd.Event{Name: name, From: from, To: to, Neighbor: netip.MustParseAddr("10.0.0.2")}
}

// TestBFDConfigs: bfd_instance blocks become the engine's sessions with
// keepalived's meanings (max_hops -1: not checked).
func TestBFDConfigs(t *testing.T) {
	cfg := lab.ParseConfig(t, "bfd_instance B {\n neighbor_ip 10.0.0.2\n source_ip 10.0.0.1\n min_rx 2.5\n idle_tx 2000\n multiplier 3\n passive\n ttl 10\n max_hops -1\n multihop\n}\nbfd_instance C {\n neighbor_ip fd00::2\n max_hops 2\n}\n")
	want := []bfd.Config{
		{Name: "B", Neighbor: netip.MustParseAddr("10.0.0.2"), Source: netip.MustParseAddr("10.0.0.1"), MinRx: 2500 * time.Microsecond,
			MinTx: 10 * time.Millisecond, IdleTx: 2 * time.Second, Multiplier: 3, Passive: true, TTL: 10, MaxHops: 255, Multihop: true},
		{Name: "C", Neighbor: netip.MustParseAddr("fd00::2"), MinRx: 10 * time.Millisecond, MinTx: 10 * time.Millisecond,
			IdleTx: time.Second, Multiplier: 5, TTL: 64, MaxHops: 2},
	}
	if d := cmp.Diff(want, bfdConfigs(cfg), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("sessions (-want +got):\n%s", d)
	}
}

// TestBFDHubRoutes: a session that goes from Up to Down is a lost peer
// for fast_failover_bfd; one that never came up, or was stopped
// (AdminDown), is not. Every change reaches the health checks.
func TestBFDHubRoutes(t *testing.T) {
	f := newFakeSessions()
	h := newBFDHub(f, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	var peers []string
	var checks []string
	h.peerDown = func(s string, p netip.Addr) { mu.Lock(); peers = append(peers, s+" "+p.String()); mu.Unlock() }
	h.checks = func(s string, up bool) {
		mu.Lock()
		checks = append(checks, s+" "+map[bool]string{true: "up", false: "down"}[up])
		mu.Unlock()
	}
	go h.run()
	for _, ev := range []bfd.Event{
		change("A", bfd.Down, bfd.Init), change("A", bfd.Init, bfd.Down), // never up
		change("B", bfd.Down, bfd.Up), change("B", bfd.Up, bfd.AdminDown), // stopped
		change("C", bfd.Init, bfd.Up), change("C", bfd.Up, bfd.Down), // lost
	} {
		f.events <- ev
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"C 10.0.0.2"}; !slices.Equal(peers, want) {
		t.Errorf("peer down %q, want %q", peers, want)
	}
	if want := []string{"A down", "A down", "B up", "B down", "C up", "C down"}; !slices.Equal(checks, want) {
		t.Errorf("checks %q, want %q", checks, want)
	}
}

// TestBFDTrackers: track_bfd gives the instances the session's state as
// the tracker path gives any tracked object: with weight 0 a session not
// (yet) Up is a FAULT (keepalived counts a session down until it is first
// Up), with a weight the priority changes; sync group tracking applies to
// every member.
func TestBFDTrackers(t *testing.T) {
	cfg := lab.ParseConfig(t, "bfd_instance B {\n neighbor_ip 10.0.0.2\n}\nbfd_instance C {\n neighbor_ip 10.0.0.3\n weight 20\n}\n"+
		trackingInstance("VI_1", 1, 100, "")+trackingInstance("VI_2", 2, 100, "")+
		"vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n track_bfd {\n C\n }\n}\n")
	cfg.Instances[0].TrackBFD = []config.TrackRef{{Name: "B"}}
	f := newFakeSessions()
	h := newBFDHub(f, slog.New(slog.DiscardHandler))
	go h.run()
	defer func() { _ = h.close() }()
	eng := &fakeEngine{}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startTrackers(ctx, cfg, script.NewUsers(&cfg.Global, lab.TestLogger(t)), h, eng, lab.TestLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); s.stop() }()
	eng.waitCall(t, trackCall{"VI_1", "bfd_instance B", 0, true})
	eng.waitCall(t, trackCall{"VI_2", "bfd_instance C", 0, false})
	f.events <- change("B", bfd.Down, bfd.Up)
	eng.waitCall(t, trackCall{"VI_1", "bfd_instance B", 0, false})
	f.events <- change("C", bfd.Down, bfd.Up)
	eng.waitCall(t, trackCall{"VI_1", "bfd_instance C", 20, false})
	eng.waitCall(t, trackCall{"VI_2", "bfd_instance C", 20, false})
	f.events <- change("B", bfd.Up, bfd.Down)
	eng.waitCall(t, trackCall{"VI_1", "bfd_instance B", 0, true})
}

// startBFDDaemon runs conf (no VRRP instance: nothing is sent) with
// sessions f and returns it once its socket answers.
func startBFDDaemon(t *testing.T, conf string, f *fakeSessions) *testDaemon {
	t.Helper()
	return startDaemon(t, conf, lab.TestLogger(t), func(o *Options) {
		o.NewBFD = func(*slog.Logger) (bfd.Sessions, error) { return f, nil }
	})
}

// bfdConf is a bfd_instance B (min_rx given) and a virtual server whose
// real server 192.0.2.10 is checked by BFD_CHECK B.
func bfdConf(minRx string) string {
	return "bfd_instance B {\n neighbor_ip 10.0.0.2\n min_rx " + minRx + "\n}\n" +
		"virtual_server 192.0.2.1 80 {\n protocol TCP\n lb_algo rr\n real_server 192.0.2.10 80 {\n  BFD_CHECK {\n   name B\n  }\n }\n}\n"
}

// TestDaemonBFD: the daemon applies the sessions at start, again on a
// reload only when config.Diff says a bfd_instance changed, routes a
// session's state to its BFD_CHECK, and closes the sessions at stop.
func TestDaemonBFD(t *testing.T) {
	f := newFakeSessions()
	td := startBFDDaemon(t, bfdConf("10"), f)
	if a := f.applies(); len(a) != 1 || len(a[0]) != 1 || a[0][0].MinRx != 10*time.Millisecond {
		t.Fatalf("applied at start: %+v", a)
	}
	healthy := func() bool {
		vss := td.d.Status().VirtualServers
		return len(vss) == 1 && len(vss[0].RealServers) == 1 && vss[0].RealServers[0].Healthy
	}
	waitFor(t, "the real server up (not alpha)", healthy)
	f.events <- change("B", bfd.Up, bfd.Down)
	waitFor(t, "the real server down with its session", func() bool { return !healthy() })
	f.events <- change("B", bfd.Down, bfd.Up)
	waitFor(t, "the real server up again", healthy)

	f.mu.Lock()
	f.status = []bfd.Status{{Name: "B", Neighbor: netip.MustParseAddr("10.0.0.2"), State: bfd.Up, Detection: 50 * time.Millisecond, Flaps: 1, Sent: 9}}
	f.mu.Unlock()
	want := []api.BFDSessionStatus{{Name: "B", Neighbor: "10.0.0.2", State: "Up", Detection: 0.05, Flaps: 1, Sent: 9}}
	if d := cmp.Diff(want, td.d.Status().BFD); d != "" {
		t.Errorf("status of the sessions (-want +got):\n%s", d)
	}

	td.reload(t, bfdConf("10")+"\n")
	if n := len(f.applies()); n != 1 {
		t.Errorf("a reload that changes no session applied them again (%d applies)", n)
	}
	td.reload(t, bfdConf("5"))
	if a := f.applies(); len(a) != 2 || a[1][0].MinRx != 5*time.Millisecond {
		t.Errorf("applied after min_rx 5: %+v", a)
	}
	td.stop(t)
	if !f.isClosed() {
		t.Error("sessions not closed at stop")
	}
}

// waitFor waits until cond holds, failing after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDaemonBFDAddedByReload: a reload that brings the first bfd_instance
// starts the engine then, and its BFD_CHECK follows the session; one that
// removes every bfd_instance leaves the engine with no session.
func TestDaemonBFDAddedByReload(t *testing.T) {
	f := newFakeSessions()
	var started atomic.Int32
	vsOnly := "virtual_server 192.0.2.1 80 {\n protocol TCP\n lb_algo rr\n real_server 192.0.2.10 80 {\n }\n}\n"
	td := startDaemon(t, vsOnly, lab.TestLogger(t), func(o *Options) {
		o.NewBFD = func(*slog.Logger) (bfd.Sessions, error) { started.Add(1); return f, nil }
	})
	if started.Load() != 0 || td.d.bfdHub() != nil {
		t.Fatalf("BFD engine started %d times for a configuration without sessions", started.Load())
	}
	td.reload(t, bfdConf("10"))
	if a := f.applies(); started.Load() != 1 || len(a) != 1 || len(a[0]) != 1 {
		t.Fatalf("after the reload: engine started %d times, applied %+v", started.Load(), a)
	}
	f.events <- change("B", bfd.Up, bfd.Down)
	waitFor(t, "the new BFD_CHECK's real server down", func() bool {
		vss := td.d.Status().VirtualServers
		return len(vss) == 1 && len(vss[0].RealServers) == 1 && !vss[0].RealServers[0].Healthy
	})
	td.reload(t, vsOnly)
	if a := f.applies(); started.Load() != 1 || len(a) != 2 || len(a[1]) != 0 {
		t.Errorf("after removing the sessions: engine started %d times, applied %+v", started.Load(), a)
	}
}

// TestDaemonBFDThread: bfd_cpu_affinity and its friends are set on the
// engine's thread when it starts, again on a reload only when they change,
// and not at all when none is given.
func TestDaemonBFDThread(t *testing.T) {
	f := newFakeSessions()
	td := startBFDDaemon(t, bfdConf("10"), f)
	if n := f.threadCalls(); n != 0 {
		t.Errorf("no bfd_* scheduling given, %d OnThread calls", n)
	}
	td.stop(t)

	f = newFakeSessions()
	// bfd_cpu_affinity, not bfd_rt_priority: that would make the whole
	// test binary real-time (the daemon's process scheduling).
	cpus := func(cpu string) string { return "global_defs {\n bfd_cpu_affinity " + cpu + "\n}\n" + bfdConf("10") }
	td = startBFDDaemon(t, cpus("0"), f)
	if n := f.threadCalls(); n != 1 {
		t.Errorf("bfd_cpu_affinity at start: %d OnThread calls, want 1", n)
	}
	td.reload(t, cpus("0")+"\n")
	if n := f.threadCalls(); n != 1 {
		t.Errorf("unchanged bfd_cpu_affinity on reload: %d OnThread calls, want 1", n)
	}
	td.reload(t, cpus("0 1"))
	if n := f.threadCalls(); n != 2 {
		t.Errorf("changed bfd_cpu_affinity on reload: %d OnThread calls, want 2", n)
	}
	td.stop(t)
}
