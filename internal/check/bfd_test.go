package check

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
)

// bfdVS is a virtual server whose real servers 10.0.0.1 and 10.0.0.2 each
// have a BFD_CHECK of session B; 10.0.0.2 also has a TCP_CHECK.
func bfdVS(alpha bool) *config.VirtualServer {
	vs := vsWith(2, timing(5, 1, 0, 0, false))
	bfdCk := func() *config.Checker {
		return &config.Checker{Type: config.CheckBFD, BFD: &config.BFDCheck{Name: "B"}, Timing: config.Timing{Alpha: alpha}}
	}
	vs.RealServers[0].Checkers = []*config.Checker{bfdCk()}
	vs.RealServers[1].Checkers = append(vs.RealServers[1].Checkers, bfdCk())
	return vs
}

// TestCoreBFD: a BFD_CHECK follows its session's state changes, runs no
// check and has no timer; repeats and other sessions change nothing.
func TestCoreBFD(t *testing.T) {
	c := NewCore([]*config.VirtualServer{bfdVS(false)}, func(time.Duration) time.Duration { return 0 })
	var evs []tev
	add := func(es []Event) {
		for _, e := range es {
			evs = append(evs, tevOf(e))
		}
	}
	add(c.Start(t0))
	// Only the TCP_CHECK (ID 1) is armed.
	if ids := c.Due(LaneMain, t0); len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("due at start: %v, want the TCP_CHECK only", ids)
	}
	add(c.Complete(t0, 1, ok))
	evs = nil
	add(c.SetBFD(t0.Add(sec(1)), "B", false))
	add(c.SetBFD(t0.Add(sec(2)), "B", false)) // a repeat
	add(c.SetBFD(t0.Add(sec(3)), "C", true))  // another session
	add(c.SetBFD(t0.Add(sec(4)), "B", true))
	want := []tev{
		{At: sec(1), Kind: RealServerDown, RS: "10.0.0.1", Reason: "BFD_CHECK: bfd B down"},
		{At: sec(1), Kind: RealServerDown, RS: "10.0.0.2", Reason: "BFD_CHECK: bfd B down"},
		{At: sec(1), Kind: QuorumDown, Reason: "BFD_CHECK: bfd B down"},
		{At: sec(4), Kind: RealServerUp, RS: "10.0.0.1", Weight: 1, Reason: "BFD_CHECK: ok"},
		{At: sec(4), Kind: QuorumUp, Weight: 1, Reason: "BFD_CHECK: ok"},
		{At: sec(4), Kind: RealServerUp, RS: "10.0.0.2", Weight: 1, Reason: "BFD_CHECK: ok"},
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if next, ok := c.Next(LaneMain); !ok || next != t0.Add(sec(5)) {
		t.Errorf("next run %v %v, want the TCP_CHECK's at 5s only", next, ok)
	}
}

// TestCoreBFDAlpha: with alpha the real server starts down and comes up
// with the session.
func TestCoreBFDAlpha(t *testing.T) {
	vs := bfdVS(true)
	vs.RealServers = vs.RealServers[:1]
	c := NewCore([]*config.VirtualServer{vs}, nil)
	if evs := c.Start(t0); evs[0].Kind != RealServerDown {
		t.Fatalf("initial %v, want down", evs[0].Kind)
	}
	evs := c.SetBFD(t0, "B", true)
	if len(evs) == 0 || evs[0].Kind != RealServerUp {
		t.Errorf("events %+v, want the real server up", evs)
	}
}

// TestSchedulerBFD: a state given before Run is applied after the initial
// events, and one given while running arrives as an event; the BFD_CHECK
// is never run (no network: nothing to run).
func TestSchedulerBFD(t *testing.T) {
	vs := bfdVS(false)
	vs.RealServers = vs.RealServers[:1]
	ch := make(chan Event, 16)
	s, err := NewScheduler([]*config.VirtualServer{vs}, nil, Options{Events: ch, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBFD("B", false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next := func() Event {
		t.Helper()
		select {
		case e := <-ch:
			return e
		case <-time.After(time.Minute):
			t.Fatal("no event")
		}
		return Event{}
	}
	rs := netip.MustParseAddr("10.0.0.1")
	for _, want := range []struct {
		kind    EventKind
		initial bool
	}{{RealServerUp, true}, {QuorumUp, true}, {RealServerDown, false}, {QuorumDown, false}} {
		if e := next(); e.Kind != want.kind || e.Initial != want.initial || e.RS != nil && e.RS.IP != rs {
			t.Fatalf("event %v initial %v, want %v initial %v", e.Kind, e.Initial, want.kind, want.initial)
		}
	}
	s.SetBFD("B", true)
	if e := next(); e.Kind != RealServerUp || e.Reason != "BFD_CHECK: ok" {
		t.Errorf("event %v %q, want the real server up", e.Kind, e.Reason)
	}
}
