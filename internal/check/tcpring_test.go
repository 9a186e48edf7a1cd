package check

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/uring"
)

// requireRing skips when this kernel cannot run io_uring as Tandem uses it.
func requireRing(t *testing.T) {
	t.Helper()
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r, err := uring.New(4, 1)
		if err == nil {
			r.Close()
		}
		errc <- err
	}()
	if err := <-errc; errors.Is(err, uring.ErrUnsupported) {
		t.Skipf("io_uring cannot run here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestTCPRing runs TCP_CHECKs through the scheduler with and without
// io_uring: an open server (whose every connection must be closed at
// once, the server reading EOF), a closed port, a server that never
// answers (the connect in flight until connect_timeout), and a checker
// with bindto, which io_uring does not run. Concurrency 2 makes the ring queue checks beyond
// its slots.
func TestTCPRing(t *testing.T) {
	for _, plain := range []bool{false, true} {
		name := "io_uring"
		if plain {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			if !plain {
				requireRing(t)
			}
			var accepted, eofs atomic.Int64
			open := netip.MustParseAddrPort(rawServer(t, func(c net.Conn) {
				accepted.Add(1)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(io.Discard, c); err == nil {
					eofs.Add(1)
				}
			}))
			closed := netip.MustParseAddrPort(closedPort(t, "tcp"))
			silent := lab.FullListener(t)
			tm := timing(1, 0.01, 0, 0, false)
			vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80, Quorum: 1}
			var bindto *config.Checker
			for _, ap := range []netip.AddrPort{open, closed, open} {
				ck := &config.Checker{Type: config.CheckTCP, Timing: tm}
				vs.RealServers = append(vs.RealServers, &config.RealServer{IP: ap.Addr(), Port: int(ap.Port()), Weight: 1,
					Checkers: []*config.Checker{ck, {Type: config.CheckTCP, Timing: tm}}})
				bindto = ck
			}
			bindto.BindTo = netip.MustParseAddr("127.0.0.1")
			// A server that never answers: the connect stays in flight
			// until connect_timeout.
			slow := &config.Checker{Type: config.CheckTCP, Timing: tm}
			slow.Timing.ConnectTimeout = config.Duration(300 * time.Millisecond)
			vs.RealServers = append(vs.RealServers, &config.RealServer{IP: silent.Addr(), Port: int(silent.Port()), Weight: 1,
				Checkers: []*config.Checker{slow}})
			s, stop := startScheduler(t, vs, Options{Concurrency: 2, Events: make(chan Event, 64), PlainSockets: plain})
			// The first round: 2 open servers × 2 checkers. Each
			// connection is closed at once (the server reads EOF), long
			// before the next round a second later.
			waitFor(t, 3*time.Second, func() bool { return accepted.Load() >= 4 })
			waitFor(t, 500*time.Millisecond, func() bool { return eofs.Load() >= 4 })
			waitFor(t, 3*time.Second, func() bool {
				for _, rs := range s.Snapshot()[0].RealServers {
					for _, c := range rs.Checkers {
						if c.LastResult == ResultNone {
							return false
						}
					}
				}
				return true
			})
			s.mu.Lock()
			lanes := map[Lane]int{}
			for _, ck := range s.core.cks {
				lanes[ck.lane]++
			}
			s.mu.Unlock()
			snap := s.Snapshot()[0]
			stop()

			wantRing := 6 // all but the bindto checker
			if plain {
				wantRing = 0
			}
			if lanes[LaneRing] != wantRing || lanes[LaneMain] != 7-wantRing {
				t.Errorf("checkers per lane %v, want %d in LaneRing", lanes, wantRing)
			}
			if !snap.RealServers[0].Healthy || !snap.RealServers[2].Healthy {
				t.Errorf("open servers not healthy: %+v", snap.RealServers)
			}
			down := snap.RealServers[1]
			if down.Healthy || !strings.Contains(down.Checkers[1].LastError, "connection refused") {
				t.Errorf("closed port: %+v", down)
			}
			if !plain && !strings.HasPrefix(down.Checkers[1].LastError, "connect "+closed.String()+": ") {
				t.Errorf("io_uring error %q, want it to start with the address", down.Checkers[1].LastError)
			}
			if quiet := snap.RealServers[3]; quiet.Healthy || !strings.Contains(quiet.Checkers[0].LastError, "timeout") ||
				quiet.Checkers[0].Latency < 300*time.Millisecond {
				t.Errorf("silent server: %+v, want down on a timeout after 300ms", quiet)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
	}
}

// TestFlightResult maps completions to results: a success, a refused
// connect, the linked timeout, and a socket that could not be made.
func TestFlightResult(t *testing.T) {
	ap := netip.MustParseAddrPort("192.0.2.9:80")
	start := time.Now()
	f := flight{job: ringJob{addr: ap, timeout: 300 * time.Millisecond}, start: start}
	for _, tt := range []struct {
		res     int32
		sockErr error
		want    string
	}{
		{res: 0},
		{res: -int32(syscall.ECONNREFUSED), want: "connect 192.0.2.9:80: connection refused"},
		{res: -int32(syscall.ECANCELED), want: "connect 192.0.2.9:80: timeout after 300ms"},
		{res: -int32(syscall.ECANCELED), sockErr: errors.New("socket: too many open files"), want: "connect 192.0.2.9:80: socket: too many open files"},
	} {
		f.err = tt.sockErr
		r := f.result(tt.res, start.Add(time.Millisecond))
		if r.OK != (tt.want == "") || r.Latency != time.Millisecond {
			t.Errorf("res %d: %+v", tt.res, r)
		}
		if tt.want != "" && (r.Err == nil || r.Err.Error() != tt.want) {
			t.Errorf("res %d: err %v, want %q", tt.res, r.Err, tt.want)
		}
	}
}

// TestRequeue: when the ring fails, its running checks go to the workers
// and its armed ones back to LaneMain.
func TestRequeue(t *testing.T) {
	vs := vsWith(2, timing(1, 1, 0, 0, false))
	s, err := NewScheduler([]*config.VirtualServer{vs}, slog.New(slog.DiscardHandler), Options{Events: make(chan Event, 8)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.core.Start(now)
	jobs := map[ID]ringJob{}
	for id := range s.checkers {
		s.core.SetLane(ID(id), LaneRing)
		jobs[ID(id)] = ringJob{id: ID(id)}
	}
	if _, ok := s.core.Next(LaneMain); ok {
		t.Fatal("LaneMain armed after moving every checker")
	}
	due := s.core.Due(LaneRing, now)
	if len(due) != 2 {
		t.Fatalf("due %v, want both", due)
	}
	s.core.Complete(now, due[0], Result{OK: true})
	s.requeue(due[1:], jobs, errors.New("boom"))
	if len(s.requeued) != 1 || s.requeued[0] != due[1] {
		t.Errorf("requeued %v, want [%d]", s.requeued, due[1])
	}
	if _, ok := s.core.Next(LaneRing); ok {
		t.Error("LaneRing still armed")
	}
	if next, ok := s.core.Next(LaneMain); !ok || !next.Equal(now.Add(time.Second)) {
		t.Errorf("LaneMain next %v %v, want the completed checker in 1s", next, ok)
	}
}
