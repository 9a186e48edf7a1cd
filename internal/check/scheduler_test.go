package check

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
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

// TestSchedulerRunsAllAtOnce: every checker is in flight at once against
// servers that never answer, as in keepalived, rather than 256 at a time
// (which let only 1,072 of 2,000 such servers be marked down within a
// minute). The HTTP_GETs of 400 real servers all connect to one listener
// that accepts and never answers; the test waits until each of them has
// connected and compares the peak of connections open at once with 400.
// With the old cap of 256 the others connected only as the first ones
// timed out (the peak measured 256-307).
func TestSchedulerRunsAllAtOnce(t *testing.T) {
	const n = 400
	srv := newHoldServer(t)
	tm := timing(60, 1, 0, 0, false)
	tm.ConnectTimeout = config.Duration(20 * time.Second)
	vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80, Quorum: 1}
	for i := range n {
		vs.RealServers = append(vs.RealServers, &config.RealServer{
			IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 80, Weight: 1,
			Checkers: []*config.Checker{{Type: config.CheckHTTP, ConnectIP: srv.addr.Addr(), ConnectPort: int(srv.addr.Port()), Timing: tm,
				HTTP: &config.HTTPCheck{URLs: []*config.URL{{Path: "/", StatusCodes: []config.StatusRange{{Min: 200, Max: 200}}}}}}},
		})
	}
	startScheduler(t, vs, Options{Events: make(chan Event, 2*n), Rand: func(time.Duration) time.Duration { return 0 }})
	accepted, peak := srv.wait(n, 60*time.Second)
	if accepted < n {
		t.Fatalf("%d of %d checkers connected within 60s", accepted, n)
	}
	if peak != n {
		t.Errorf("at most %d of %d checks were in flight at once, want all", peak, n)
	}
}

// holdServer accepts connections and never answers; it counts them and
// the most open at once.
type holdServer struct {
	addr                 netip.AddrPort
	mu                   sync.Mutex
	cond                 *sync.Cond
	accepted, open, peak int // under mu
}

func newHoldServer(t *testing.T) *holdServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holdServer{addr: netip.MustParseAddrPort(l.Addr().String())}
	h.cond = sync.NewCond(&h.mu)
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			conns = append(conns, c)
			h.accepted++
			h.open++
			h.peak = max(h.peak, h.open)
			h.cond.Broadcast()
			h.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c) // until the checker gives up
				h.mu.Lock()
				h.open--
				h.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		h.mu.Unlock()
		wg.Wait()
	})
	return h
}

// wait returns the connections accepted and the peak once n have been
// accepted, or when timeout has passed.
func (h *holdServer) wait(n int, timeout time.Duration) (accepted, peak int) {
	expired := false
	t := time.AfterFunc(timeout, func() {
		h.mu.Lock()
		expired = true
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer t.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for !expired && h.accepted < n {
		h.cond.Wait()
	}
	return h.accepted, h.peak
}

func TestConcurrencyFor(t *testing.T) {
	for _, tt := range []struct {
		n      int
		nofile uint64
		want   int
	}{
		{n: 2000, nofile: 1 << 20, want: 2000}, // every checker at once
		{n: 2000, nofile: 20000, want: 2000},   // this machine's limit
		{n: 2000, nofile: 1500, want: 1500 - fdReserve},
		{n: 2000, nofile: 1024, want: minConcurrency}, // the reserve takes it all
		{n: 10, nofile: 1024, want: 10},
		{n: 0, nofile: 1 << 20, want: 1},
	} {
		if got := concurrencyFor(tt.n, tt.nofile); got != tt.want {
			t.Errorf("concurrencyFor(%d, %d) = %d, want %d", tt.n, tt.nofile, got, tt.want)
		}
	}
}

// failures counts the "check failed" lines logged through it.
type failures struct{ n atomic.Int64 }

func (f *failures) Enabled(context.Context, slog.Level) bool { return true }
func (f *failures) WithAttrs([]slog.Attr) slog.Handler       { return f }
func (f *failures) WithGroup(string) slog.Handler            { return f }
func (f *failures) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "check failed" {
		f.n.Add(1)
	}
	return nil
}

// With log_all_failures every failed check is logged, the retries before
// the server goes down too; without, none is (the health change is).
func TestLogAllFailures(t *testing.T) {
	down := netip.MustParseAddrPort(closedPort(t, "tcp"))
	for _, logAll := range []bool{false, true} {
		vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
		vs.RealServers = []*config.RealServer{{IP: down.Addr(), Port: int(down.Port()), Weight: 1,
			Checkers: []*config.Checker{{Type: config.CheckTCP, Timing: timing(0.05, 0.01, 2, 0, false), LogAll: logAll}}}}
		var logged failures
		events := make(chan Event, 16)
		s, err := NewScheduler([]*config.VirtualServer{vs}, slog.New(&logged), Options{Concurrency: 1, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { s.Run(ctx) })
		timeout := time.After(5 * time.Second)
		for wait := true; wait; {
			select {
			case e := <-events:
				wait = e.Initial || e.Kind != RealServerDown
			case <-timeout:
				t.Fatal("no down event within 5 s")
			}
		}
		cancel()
		wg.Wait()
		// retry 2: three failures in a row take the server down.
		if n := logged.n.Load(); logAll && n < 3 || !logAll && n != 0 {
			t.Errorf("log_all_failures %v: %d failures logged before the server went down, want %s", logAll, n, map[bool]string{false: "none", true: "3"}[logAll])
		}
	}
}
