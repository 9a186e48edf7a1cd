package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func timing(loop, dbr float64, retry int, warmup float64, alpha bool) config.Timing {
	return config.Timing{
		DelayLoop: config.Duration(sec(loop)), ConnectTimeout: config.Duration(sec(1)),
		Retry: retry, DelayBeforeRetry: config.Duration(sec(dbr)), Warmup: config.Duration(sec(warmup)), Alpha: alpha,
	}
}

// vsWith builds a virtual server with n real servers (10.0.0.1..n, weight
// 1), each with one TCP_CHECK of the given timing.
func vsWith(n int, tm config.Timing) *config.VirtualServer {
	vs := &config.VirtualServer{IP: netip.MustParseAddr("192.0.2.1"), Port: 80, Quorum: 1, Weight: 1}
	for i := range n {
		vs.RealServers = append(vs.RealServers, &config.RealServer{
			IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Port: 80, Weight: 1,
			Checkers: []*config.Checker{{Type: config.CheckTCP, Timing: tm}},
		})
	}
	return vs
}

type run struct {
	id ID
	at time.Duration
}

// sim drives a Core in virtual time from t0 to t0+until: every due checker
// is answered by health(id, elapsed) at once. It returns the events (with
// times relative to t0) and the runs.
func sim(c *Core, until time.Duration, health func(ID, time.Duration) Result) (evs []tev, runs []run) {
	for _, e := range c.Start(t0) {
		evs = append(evs, tevOf(e))
	}
	for {
		next, ok := c.Next(LaneMain)
		if !ok || next.Sub(t0) > until {
			return evs, runs
		}
		for _, id := range c.Due(LaneMain, next) {
			el := next.Sub(t0)
			runs = append(runs, run{id, el})
			for _, e := range c.Complete(next, id, health(id, el)) {
				evs = append(evs, tevOf(e))
			}
		}
	}
}

// tev is an Event reduced to what tests compare.
type tev struct {
	At      time.Duration
	Kind    EventKind
	RS      string
	Weight  int
	Inhibit bool
	Reason  string
}

func tevOf(e Event) tev {
	t := tev{At: e.Time.Sub(t0), Kind: e.Kind, Weight: e.Weight, Inhibit: e.Inhibit, Reason: e.Reason}
	if e.RS != nil {
		t.RS = e.RS.IP.String()
	}
	return t
}

var (
	ok   = Result{OK: true}
	fail = Result{Err: errors.New("connection refused")}
)

func TestRetryAndRecovery(t *testing.T) {
	tests := []struct {
		name     string
		retry    int
		downFrom time.Duration // the server fails from here...
		upFrom   time.Duration // ...until here
		want     []tev
	}{
		{
			// Checks at 0,10,20; fails at 30, retried at 31 and 32:
			// down after retry+1 = 3 failures. Back up at the first
			// success after 60 (62, since checks follow 32 by 10 s).
			name: "retry 2", retry: 2, downFrom: sec(25), upFrom: sec(60),
			want: []tev{
				{At: sec(32), Kind: RealServerDown, RS: "10.0.0.1", Reason: "TCP_CHECK: connection refused"},
				{At: sec(32), Kind: QuorumDown, Reason: "TCP_CHECK: connection refused"},
				{At: sec(62), Kind: RealServerUp, RS: "10.0.0.1", Weight: 1, Reason: "TCP_CHECK: ok"},
				{At: sec(62), Kind: QuorumUp, Weight: 1, Reason: "TCP_CHECK: ok"},
			},
		},
		{
			name: "retry 0 goes down on the first failure", retry: 0, downFrom: sec(25), upFrom: sec(45),
			want: []tev{
				{At: sec(30), Kind: RealServerDown, RS: "10.0.0.1", Reason: "TCP_CHECK: connection refused"},
				{At: sec(30), Kind: QuorumDown, Reason: "TCP_CHECK: connection refused"},
				{At: sec(50), Kind: RealServerUp, RS: "10.0.0.1", Weight: 1, Reason: "TCP_CHECK: ok"},
				{At: sec(50), Kind: QuorumUp, Weight: 1, Reason: "TCP_CHECK: ok"},
			},
		},
		{
			// A failure streak shorter than retry+1 changes nothing, and a
			// success resets the count.
			name: "short blip is absorbed", retry: 3, downFrom: sec(25), upFrom: sec(32),
			want: []tev{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCore([]*config.VirtualServer{vsWith(1, timing(10, 1, tt.retry, 0, false))}, nil)
			evs, _ := sim(c, sec(100), func(_ ID, el time.Duration) Result {
				if el >= tt.downFrom && el < tt.upFrom {
					return fail
				}
				return ok
			})
			if diff := cmp.Diff(tt.want, evs[2:]); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDelayBeforeRetrySpacing(t *testing.T) {
	c := NewCore([]*config.VirtualServer{vsWith(1, timing(10, 2.5, 3, 0, false))}, nil)
	_, runs := sim(c, sec(60), func(_ ID, el time.Duration) Result {
		if el >= sec(15) {
			return fail
		}
		return ok
	})
	var got []time.Duration
	for _, r := range runs {
		got = append(got, r.at)
	}
	// 0,10: ok. 20 fails; retries 22.5, 25, 27.5 (the 4th failure: down);
	// then only every delay_loop, no retries while down.
	want := []time.Duration{0, sec(10), sec(20), sec(22.5), sec(25), sec(27.5), sec(37.5), sec(47.5), sec(57.5)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("run times (-want +got):\n%s", diff)
	}
}

func TestWarmupSpread(t *testing.T) {
	const n = 3000
	warmup := sec(30)
	rng := rand.New(rand.NewPCG(1, 2))
	c := NewCore([]*config.VirtualServer{vsWith(n, timing(60, 1, 1, 30, false))}, func(max time.Duration) time.Duration {
		return time.Duration(rng.Int64N(int64(max) + 1))
	})
	c.Start(t0)
	var buckets [3]int
	seen := 0
	for {
		next, armed := c.Next(LaneMain)
		if !armed || next.Sub(t0) > warmup {
			break
		}
		for _, id := range c.Due(LaneMain, next) {
			el := next.Sub(t0)
			if el < 0 || el > warmup {
				t.Fatalf("first run of %d at %v, outside [0, %v]", id, el, warmup)
			}
			buckets[min(int(el/sec(10)), 2)]++
			seen++
			c.Complete(next, id, ok)
		}
	}
	if seen != n {
		t.Fatalf("%d checkers ran within warmup, want %d", seen, n)
	}
	for i, b := range buckets {
		if b < n/4 {
			t.Errorf("bucket %d (%v..%v) has %d first runs of %d: not spread", i, sec(float64(10*i)), sec(float64(10*i+10)), b, n)
		}
	}
}

func TestAlpha(t *testing.T) {
	c := NewCore([]*config.VirtualServer{vsWith(1, timing(5, 1, 3, 0, true))}, nil)
	evs, runs := sim(c, sec(22), func(_ ID, el time.Duration) Result {
		if el < sec(12) {
			return fail
		}
		return ok
	})
	want := []tev{
		{Kind: RealServerDown, RS: "10.0.0.1", Reason: "initial state"},
		{Kind: QuorumDown, Reason: "initial state"},
		{At: sec(15), Kind: RealServerUp, RS: "10.0.0.1", Weight: 1, Reason: "TCP_CHECK: ok"},
		{At: sec(15), Kind: QuorumUp, Weight: 1, Reason: "TCP_CHECK: ok"},
	}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A checker that is down is not retried: runs stay delay_loop apart.
	for i := 1; i < len(runs); i++ {
		if d := runs[i].at - runs[i-1].at; d != sec(5) {
			t.Errorf("run %d is %v after the previous, want 5s", i, d)
		}
	}
}

func TestAllCheckersMustBeUp(t *testing.T) {
	vs := vsWith(1, timing(10, 1, 0, 0, false))
	rs := vs.RealServers[0]
	rs.Checkers = append(rs.Checkers, &config.Checker{Type: config.CheckHTTP, Timing: timing(10, 1, 0, 0, false)})
	c := NewCore([]*config.VirtualServer{vs}, nil)
	httpErr := Result{Err: errors.New("status 503")}
	evs, _ := sim(c, sec(45), func(id ID, el time.Duration) Result {
		switch {
		case id == 0 && el >= sec(10) && el < sec(30): // TCP down 10..30
			return fail
		case id == 1 && el >= sec(20) && el < sec(40): // HTTP down 20..40
			return httpErr
		}
		return ok
	})
	want := []tev{
		{At: sec(10), Kind: RealServerDown, RS: "10.0.0.1", Reason: "TCP_CHECK: connection refused"},
		{At: sec(10), Kind: QuorumDown, Reason: "TCP_CHECK: connection refused"},
		{At: sec(40), Kind: RealServerUp, RS: "10.0.0.1", Weight: 1, Reason: "HTTP_GET: ok"},
		{At: sec(40), Kind: QuorumUp, Weight: 1, Reason: "HTTP_GET: ok"},
	}
	if diff := cmp.Diff(want, evs[2:]); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	snap := c.Snapshot()[0].RealServers[0]
	if !snap.Healthy || len(snap.Checkers) != 2 || snap.Checkers[1].LastChange != t0.Add(sec(40)) {
		t.Errorf("snapshot %+v", snap)
	}
}

// TestQuorumHysteresis walks four servers of weight 1 down and up again
// with quorum 3, hysteresis 1: quorum is lost below 2 and regained at 4.
func TestQuorumHysteresis(t *testing.T) {
	vs := vsWith(4, timing(10, 1, 0, 0, false))
	vs.Quorum, vs.Hysteresis = 3, 1
	vs.SorryServer = &config.SorryServer{IP: netip.MustParseAddr("10.9.9.9"), Port: 80}
	c := NewCore([]*config.VirtualServer{vs}, nil)
	if q := c.Snapshot()[0].Quorum; q != 3 {
		t.Errorf("snapshot quorum %d, want 3", q)
	}
	// Server i (1-based) is down from 10*i s to 50+10*i s: the alive
	// count goes 4,3,2,1,0? no: at most three are down at once.
	evs, _ := sim(c, sec(95), func(id ID, el time.Duration) Result {
		i := time.Duration(id)
		if id < 3 && el >= sec(10)*(i+1) && el < sec(40)+sec(10)*(i+1) {
			return fail
		}
		return ok
	})
	var got []tev
	for _, e := range evs {
		if e.RS == "" {
			got = append(got, tev{At: e.At, Kind: e.Kind, Weight: e.Weight})
		}
	}
	want := []tev{
		{Kind: QuorumUp, Weight: 4},
		// 10: 3 alive, 20: 2 alive (not < 3-1), 30: 1 alive: lost.
		{At: sec(30), Kind: SorryServerIn, Weight: 1},
		{At: sec(30), Kind: QuorumDown, Weight: 1},
		// 50: 2, 60: 3 (< 3+1), 70: 4: regained.
		{At: sec(70), Kind: SorryServerOut, Weight: 4},
		{At: sec(70), Kind: QuorumUp, Weight: 4},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("virtual-server events (-want +got):\n%s", diff)
	}
}

func TestSorryServerAtStart(t *testing.T) {
	vs := vsWith(2, timing(10, 1, 0, 0, true))
	vs.SorryServer = &config.SorryServer{IP: netip.MustParseAddr("10.9.9.9"), Port: 80}
	c := NewCore([]*config.VirtualServer{vs}, nil)
	var kinds []EventKind
	for _, e := range c.Start(t0) {
		if !e.Initial {
			t.Errorf("start event %v not marked Initial", e.Kind)
		}
		kinds = append(kinds, e.Kind)
	}
	want := []EventKind{RealServerDown, RealServerDown, SorryServerIn, QuorumDown}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("start events (-want +got):\n%s", diff)
	}
}

func TestInhibitOnFailure(t *testing.T) {
	vs := vsWith(2, timing(10, 1, 0, 0, false))
	vs.RealServers[0].Inhibit = true
	c := NewCore([]*config.VirtualServer{vs}, nil)
	evs, _ := sim(c, sec(15), func(ID, time.Duration) Result { return fail })
	want := []tev{
		{Kind: RealServerDown, RS: "10.0.0.1", Inhibit: true, Reason: "TCP_CHECK: connection refused"},
		{Kind: RealServerDown, RS: "10.0.0.2", Reason: "TCP_CHECK: connection refused"},
		{Kind: QuorumDown, Reason: "TCP_CHECK: connection refused"},
	}
	if diff := cmp.Diff(want, evs[3:]); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestDynamicWeight(t *testing.T) {
	vs := vsWith(1, timing(10, 1, 0, 0, false))
	vs.Quorum = 3
	vs.RealServers[0].Weight = 5
	vs.RealServers[0].Checkers[0].Type = config.CheckMisc
	c := NewCore([]*config.VirtualServer{vs}, nil)
	w := func(n int) Result { return Result{OK: true, Weight: &n} }
	script := []Result{w(7), w(7), w(2), ok, fail, w(9)} // one per 10 s
	evs, _ := sim(c, sec(55), func(_ ID, el time.Duration) Result { return script[el/sec(10)] })
	want := []tev{
		{At: 0, Kind: WeightChanged, RS: "10.0.0.1", Weight: 7, Reason: "MISC_CHECK: ok"},
		{At: sec(20), Kind: WeightChanged, RS: "10.0.0.1", Weight: 2, Reason: "MISC_CHECK: ok"},
		{At: sec(20), Kind: QuorumDown, Weight: 2, Reason: "MISC_CHECK: ok"},
		// exit 0 under misc_dynamic restores the configured weight.
		{At: sec(30), Kind: WeightChanged, RS: "10.0.0.1", Weight: 5, Reason: "MISC_CHECK: ok"},
		{At: sec(30), Kind: QuorumUp, Weight: 5, Reason: "MISC_CHECK: ok"},
		{At: sec(40), Kind: RealServerDown, RS: "10.0.0.1", Reason: "MISC_CHECK: connection refused"},
		{At: sec(40), Kind: QuorumDown, Reason: "MISC_CHECK: connection refused"},
		{At: sec(50), Kind: RealServerUp, RS: "10.0.0.1", Weight: 9, Reason: "MISC_CHECK: ok"},
		{At: sec(50), Kind: QuorumUp, Weight: 9, Reason: "MISC_CHECK: ok"},
	}
	if diff := cmp.Diff(want, evs[2:]); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestHASuspend(t *testing.T) {
	vs := vsWith(1, timing(10, 1, 0, 0, false))
	vs.HASuspend = true
	c := NewCore([]*config.VirtualServer{vs}, nil)
	c.Start(t0)
	if _, ok := c.Next(LaneMain); ok {
		t.Fatal("ha_suspend checker armed before Resume")
	}
	c.Resume(t0.Add(sec(5)))
	ids := c.Due(LaneMain, t0.Add(sec(5)))
	if len(ids) != 1 {
		t.Fatalf("due after Resume: %v", ids)
	}
	// Suspended while running: the result is dropped, nothing is armed.
	c.Suspend()
	if evs := c.Complete(t0.Add(sec(6)), ids[0], fail); evs != nil {
		t.Errorf("events from a suspended run: %v", evs)
	}
	if _, ok := c.Next(LaneMain); ok {
		t.Error("suspended checker re-armed")
	}
	if !c.Snapshot()[0].Suspended || !c.Snapshot()[0].RealServers[0].Healthy {
		t.Errorf("snapshot %+v", c.Snapshot()[0])
	}
	c.Resume(t0.Add(sec(7)))
	if next, ok := c.Next(LaneMain); !ok || next != t0.Add(sec(7)) {
		t.Errorf("next after Resume = %v, %v", next, ok)
	}
}

func TestOmegaStop(t *testing.T) {
	plain := vsWith(1, timing(10, 1, 0, 0, false))
	omega := vsWith(1, timing(10, 1, 0, 0, false))
	omega.Omega = true
	c := NewCore([]*config.VirtualServer{plain, omega}, nil)
	c.Start(t0)
	var got []EventKind
	for _, e := range c.Stop(t0) {
		if e.VS != omega {
			t.Errorf("stop event for a virtual server without omega: %v", e)
		}
		got = append(got, e.Kind)
	}
	if diff := cmp.Diff([]EventKind{RealServerDown, QuorumDown}, got); diff != "" {
		t.Errorf("stop events (-want +got):\n%s", diff)
	}
	if _, ok := c.Next(LaneMain); ok {
		t.Error("timers armed after Stop")
	}
}

// TestHoursOfFlapping runs 50 servers for 12 virtual hours against a
// deterministic flapping pattern and checks the schedule's invariants: runs
// are delay_loop or delay_before_retry apart, never more than retry retries
// in a row, and the state follows keepalived's rule.
func TestHoursOfFlapping(t *testing.T) {
	const n, retry = 50, 2
	tm := timing(6, 1.5, retry, 6, false)
	rng := rand.New(rand.NewPCG(3, 4))
	c := NewCore([]*config.VirtualServer{vsWith(n, tm)}, func(max time.Duration) time.Duration {
		return time.Duration(rng.Int64N(int64(max) + 1))
	})
	healthy := func(id ID, el time.Duration) bool {
		// Each server is down for a stretch whose length and phase depend
		// on its ID: from a few seconds (absorbed by retries) to minutes.
		period := sec(float64(300 + 7*int(id)))
		return (el+sec(float64(id)))%period >= sec(float64(2+int(id)%40))
	}
	last := map[ID]time.Duration{}
	fails := map[ID]int{}
	streak := map[run]int{} // failures in a row at each run
	up := map[ID]bool{}
	for i := range n {
		up[ID(i)] = true
	}
	evs, runs := sim(c, 12*time.Hour, func(id ID, el time.Duration) Result {
		if prev, ok := last[id]; ok {
			gap := el - prev
			if gap != sec(6) && gap != sec(1.5) {
				t.Fatalf("checker %d: %v between runs at %v", id, gap, el)
			}
			if gap == sec(1.5) && fails[id] == 0 {
				t.Fatalf("checker %d: retry spacing after a success at %v", id, el)
			}
		}
		last[id] = el
		defer func() { streak[run{id, el}] = fails[id] }()
		if healthy(id, el) {
			fails[id] = 0
			return ok
		}
		fails[id]++
		return fail
	})
	if len(runs) < n*12*3600/6 {
		t.Errorf("only %d runs in 12 h", len(runs))
	}
	downs := 0
	for _, e := range evs {
		if e.RS == "" || e.At == 0 {
			continue
		}
		var id ID
		fmt.Sscanf(e.RS, "10.0.0.%d", &id)
		id--
		switch e.Kind {
		case RealServerDown:
			downs++
			if f := streak[run{id, e.At}]; !up[id] || f != retry+1 {
				t.Fatalf("server %d down at %v (up=%v) after %d failures, want %d", id, e.At, up[id], f, retry+1)
			}
			up[id] = false
		case RealServerUp:
			if up[id] || streak[run{id, e.At}] != 0 {
				t.Fatalf("server %d up at %v (up=%v) without a success", id, e.At, up[id])
			}
			up[id] = true
		}
	}
	if downs == 0 {
		t.Error("no server ever went down")
	}
	for _, r := range c.Snapshot()[0].RealServers {
		for _, ck := range r.Checkers {
			if ck.Retries > retry {
				t.Errorf("%v: %d retries", r.Addr, ck.Retries)
			}
		}
	}
}
