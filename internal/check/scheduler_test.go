package check

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tandem/internal/config"
)

// TestSchedulerRun runs the shell against real listeners: one server up,
// one whose port is closed (goes down), on a pool of two workers for 40
// checkers; then it stops, and goleak (TestMain) checks nothing is left.
func TestSchedulerRun(t *testing.T) {
	up := netip.MustParseAddrPort(rawServer(t, func(net.Conn) {}))
	down := netip.MustParseAddrPort(closedPort(t, "tcp"))
	tm := timing(0.05, 0.01, 1, 0.05, false)
	tm.ConnectTimeout = config.Duration(time.Second)
	vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80, Quorum: 1}
	for _, ap := range []netip.AddrPort{up, down} {
		rs := &config.RealServer{IP: ap.Addr(), Port: int(ap.Port()), Weight: 3}
		for range 20 {
			rs.Checkers = append(rs.Checkers, &config.Checker{Type: config.CheckTCP, Timing: tm})
		}
		vs.RealServers = append(vs.RealServers, rs)
	}
	events := make(chan Event)
	s, _ := startScheduler(t, vs, Options{Concurrency: 2, Events: events})

	timeout := time.After(5 * time.Second)
	var initial int
	for {
		select {
		case e := <-events:
			if e.Initial {
				initial++
				continue
			}
			if e.Kind != RealServerDown || e.RS.Port != int(down.Port()) {
				t.Fatalf("unexpected event %v %v", e.Kind, e.Reason)
			}
			if initial != 3 {
				t.Errorf("%d initial events, want 3 (2 servers, quorum)", initial)
			}
			snap := s.Snapshot()[0]
			if !snap.RealServers[0].Healthy || snap.RealServers[1].Healthy || snap.Weight != 3 {
				t.Errorf("snapshot %+v", snap)
			}
			ck := snap.RealServers[1].Checkers
			var failed bool
			for _, c := range ck {
				failed = failed || (c.LastResult == ResultFailed && c.LastError != "")
			}
			if !failed {
				t.Errorf("no failed checker in %+v", ck)
			}
			return
		case <-timeout:
			t.Fatal("no down event within 5s")
		}
	}
}

// startScheduler builds a scheduler for vs and runs it until stop is
// called or the test ends.
func startScheduler(t *testing.T, vs *config.VirtualServer, opts Options) (s *Scheduler, stop func()) {
	t.Helper()
	s, err := NewScheduler([]*config.VirtualServer{vs}, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return s, stop
}

// TestSchedulerSuspend: with ha_suspend the shell runs nothing until
// Resume.
func TestSchedulerSuspend(t *testing.T) {
	down := netip.MustParseAddrPort(closedPort(t, "tcp"))
	tm := timing(0.02, 0.01, 0, 0, false)
	vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80, Quorum: 1, HASuspend: true,
		RealServers: []*config.RealServer{{IP: down.Addr(), Port: int(down.Port()), Weight: 1,
			Checkers: []*config.Checker{{Type: config.CheckTCP, Timing: tm}}}}}
	events := make(chan Event, 16)
	s, err := NewScheduler([]*config.VirtualServer{vs}, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	for len(events) > 0 {
		if e := <-events; !e.Initial {
			t.Fatalf("event while suspended: %v", e.Kind)
		}
	}
	s.Resume()
	select {
	case e := <-events:
		if e.Kind != RealServerDown {
			t.Errorf("got %v, want real_server_down", e.Kind)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no check after Resume")
	}
}
