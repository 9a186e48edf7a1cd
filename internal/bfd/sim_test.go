package bfd

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"tandem/internal/clock"
)

// simEnd is one end of a simulated session: a session driven by a fake
// clock, its packets carried over a simLink.
type simEnd struct {
	name   string
	s      *session
	link   *simLink
	peer   *simEnd
	timer  clock.Timer
	sent   int
	events []Event
	// rx is when each packet was received, for detection checks.
	rx []time.Time
}

// simLink carries encoded packets between two ends with a fixed delay;
// drop decides per packet whether it is lost.
type simLink struct {
	clk   *clock.Fake
	delay time.Duration
	drop  func() bool
}

var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func simConfig(name string, tx, rx time.Duration, mult uint8) Config {
	return Config{Name: name, Neighbor: netip.MustParseAddr("192.0.2.1"), MinTx: tx, MinRx: rx, IdleTx: time.Second, Multiplier: mult, TTL: 255}
}

// newSim builds two ends with these configurations, connected, not yet
// started.
func newSim(t *testing.T, a, b Config, seed uint64) (*simLink, *simEnd, *simEnd) {
	t.Helper()
	l := &simLink{clk: clock.NewFake(simStart), delay: 100 * time.Microsecond, drop: func() bool { return false }}
	rng := rand.New(rand.NewPCG(seed, 1))
	ea := &simEnd{name: "a", link: l, s: newSession(a, 0x1111, rng, simStart)}
	eb := &simEnd{name: "b", link: l, s: newSession(b, 0x2222, rng, simStart)}
	ea.peer, eb.peer = eb, ea
	ea.schedule()
	eb.schedule()
	return l, ea, eb
}

func (e *simEnd) schedule() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	due := e.s.Due()
	if due.IsZero() {
		return
	}
	e.timer = e.link.clk.AfterFunc(due.Sub(e.link.clk.Now()), e.run)
}

func (e *simEnd) collect() { e.events = append(e.events, e.s.takeEvents()...) }

func (e *simEnd) run() {
	e.timer = nil
	if p := e.s.Run(e.link.clk.Now()); p != nil {
		e.send(p)
	}
	e.collect()
	e.schedule()
}

// send carries p through the wire format to the peer.
func (e *simEnd) send(p *Packet) {
	e.sent++
	b, err := p.Append(nil)
	if err != nil {
		panic(err)
	}
	if e.link.drop() {
		return
	}
	peer := e.peer
	e.link.clk.AfterFunc(e.link.delay, func() {
		q, err := Decode(b)
		if err != nil {
			panic(err)
		}
		now := e.link.clk.Now()
		peer.rx = append(peer.rx, now)
		if err := peer.s.Receive(q, now); err != nil {
			panic(err)
		}
		peer.collect()
		peer.schedule()
	})
}

// runUntil advances the clock until cond holds or limit passes; it
// reports whether cond held.
func (l *simLink) runUntil(limit time.Duration, cond func() bool) bool {
	end := l.clk.Now().Add(limit)
	for !cond() {
		if !l.clk.StepUntil(end) {
			return cond()
		}
	}
	return true
}

func bothUp(a, b *simEnd) func() bool {
	return func() bool { return a.s.state == Up && b.s.state == Up }
}

// upSim returns a session of a and b that is Up.
func upSim(t *testing.T, a, b Config, seed uint64) (*simLink, *simEnd, *simEnd) {
	t.Helper()
	l, ea, eb := newSim(t, a, b, seed)
	if !l.runUntil(10*time.Second, bothUp(ea, eb)) {
		t.Fatalf("not Up after 10s: a %s b %s", ea.s.state, eb.s.state)
	}
	ea.events, eb.events = nil, nil
	return l, ea, eb
}

func TestSimUpWithinThreePackets(t *testing.T) {
	// One passive end: the three-way handshake is exactly Down, Init, Up.
	pas := simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3)
	pas.Passive = true
	l, a, b := newSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), pas, 1)
	if !l.runUntil(10*time.Second, bothUp(a, b)) {
		t.Fatalf("not Up: a %s b %s", a.s.state, b.s.state)
	}
	if n := a.sent + b.sent; n > 3 {
		t.Errorf("Up after %d packets (a %d, b %d), want at most 3", n, a.sent, b.sent)
	}
	// Both active: each end is Up after sending at most two packets.
	l, a, b = newSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3), 2)
	if !l.runUntil(10*time.Second, bothUp(a, b)) {
		t.Fatalf("not Up: a %s b %s", a.s.state, b.s.state)
	}
	if a.sent > 2 || b.sent > 2 {
		t.Errorf("Up after a %d and b %d packets, want at most 2 each", a.sent, b.sent)
	}
	for _, e := range []*simEnd{a, b} {
		var path []State
		for _, ev := range e.events {
			path = append(path, ev.To)
		}
		if len(path) != 2 || path[0] != Init || path[1] != Up {
			t.Errorf("%s went %v, want [Init Up]", e.name, path)
		}
	}
}

func TestSimPassiveWaitsForNeighbor(t *testing.T) {
	pas := simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3)
	pas.Passive = true
	l, a, b := newSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), pas, 3)
	l.drop = func() bool { return true } // a's packets never arrive
	l.runUntil(5*time.Second, func() bool { return false })
	if b.sent != 0 {
		t.Fatalf("passive end sent %d packets with nothing received", b.sent)
	}
	if a.sent < 4 {
		t.Fatalf("active end sent %d packets in 5s at idle 1s, want at least 4", a.sent)
	}
	l.drop = func() bool { return false }
	if !l.runUntil(5*time.Second, bothUp(a, b)) {
		t.Fatalf("not Up once the link works: a %s b %s", a.s.state, b.s.state)
	}
	// The neighbor goes away: the passive end forgets it and stops.
	l.drop = func() bool { return true }
	l.runUntil(5*time.Second, func() bool { return false })
	sent := b.sent
	l.runUntil(5*time.Second, func() bool { return false })
	if b.sent != sent {
		t.Errorf("passive end still sends %d packets after the neighbor left", b.sent-sent)
	}
}

func TestSimComesUpUnderLoss(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		l, a, b := newSim(t, simConfig("a", 5*time.Millisecond, 5*time.Millisecond, 3), simConfig("b", 5*time.Millisecond, 5*time.Millisecond, 3), seed)
		rng := rand.New(rand.NewPCG(seed, 99))
		l.drop = func() bool { return rng.IntN(100) < 30 }
		if !l.runUntil(60*time.Second, bothUp(a, b)) {
			t.Fatalf("seed %d: not Up after 60s at 30%% loss: a %s b %s", seed, a.s.state, b.s.state)
		}
	}
}

func TestSimDownAfterDetectionTime(t *testing.T) {
	l, a, b := upSim(t, simConfig("a", 5*time.Millisecond, 5*time.Millisecond, 3), simConfig("b", 5*time.Millisecond, 5*time.Millisecond, 3), 4)
	l.runUntil(time.Second, func() bool { return false }) // settle: Poll done
	if a.s.polling || b.s.polling {
		t.Fatal("Poll sequence still under way after 1s")
	}
	if d := b.s.detection(); d != 15*time.Millisecond {
		t.Fatalf("detection time %v, want 15ms", d)
	}
	cut := l.clk.Now()
	l.drop = func() bool { return true }
	if !l.runUntil(time.Second, func() bool { return b.s.state == Down }) {
		t.Fatal("b not Down 1s after the link was cut")
	}
	ev := b.events[len(b.events)-1]
	last := b.rx[len(b.rx)-1]
	if ev.To != Down || ev.Diag != DiagExpired {
		t.Fatalf("event %+v, want Down with diag 1", ev)
	}
	if !ev.At.Equal(last.Add(15*time.Millisecond)) || ev.At.Sub(cut) > 15*time.Millisecond {
		t.Errorf("Down at %v after the last packet (cut %v before), want exactly the detection time",
			ev.At.Sub(last), ev.At.Sub(cut))
	}
	if b.s.flaps != 1 {
		t.Errorf("flaps %d, want 1", b.s.flaps)
	}
}

func TestSimTimerChangeByPollWithoutFlap(t *testing.T) {
	for _, tc := range []struct {
		name           string
		newTx, newRx   time.Duration
		wantAtx, wantB time.Duration // a's tx interval, b's detection time
	}{
		{"slower", 50 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond},
		{"faster", 2 * time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, a, b := upSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3), 5)
			l.runUntil(time.Second, func() bool { return false })
			cfg := a.s.cfg
			cfg.MinTx, cfg.MinRx = tc.newTx, tc.newRx
			a.s.Reconfigure(cfg)
			a.schedule()
			if !a.s.polling {
				t.Fatal("no Poll sequence started")
			}
			l.runUntil(2*time.Second, func() bool { return false })
			if len(a.events)+len(b.events) != 0 {
				t.Fatalf("state changes during the timer change: a %+v b %+v", a.events, b.events)
			}
			if a.s.polling {
				t.Error("Poll sequence never completed")
			}
			if iv := a.s.txInterval(); iv != tc.wantAtx {
				t.Errorf("a's tx interval %v, want %v", iv, tc.wantAtx)
			}
			if d := b.s.detection(); d != tc.wantB {
				t.Errorf("b's detection time %v, want %v", d, tc.wantB)
			}
		})
	}
}

func TestSimNeighborAdminDown(t *testing.T) {
	l, a, b := upSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3), 6)
	a.send(a.s.AdminDown(l.clk.Now()))
	a.collect()
	a.schedule()
	l.runUntil(3*time.Second, func() bool { return false })
	if len(b.events) != 1 || b.events[0].To != Down || b.events[0].Diag != DiagNeighborDown {
		t.Fatalf("b's events %+v, want one change to Down with diag 3", b.events)
	}
	if len(a.events) != 1 || a.events[0].To != AdminDown || a.events[0].Diag != DiagAdminDown {
		t.Fatalf("a's events %+v, want one change to AdminDown with diag 7", a.events)
	}
	sent := a.sent
	l.runUntil(3*time.Second, func() bool { return false })
	if a.sent != sent || a.s.state != AdminDown {
		t.Errorf("AdminDown end sent %d more packets, state %s", a.sent-sent, a.s.state)
	}
	if b.s.state != Down {
		t.Errorf("b went %s while the neighbor is AdminDown", b.s.state)
	}
}

// TestSimNeighborRestart: the neighbor's process restarts (a new session
// with a new discriminator, starting Down): the Up end goes Down with
// diag 3 and both come back Up.
func TestSimNeighborRestart(t *testing.T) {
	l, a, b := upSim(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3), simConfig("b", 10*time.Millisecond, 10*time.Millisecond, 3), 7)
	b.timer.Stop()
	nb := &simEnd{name: "b2", link: l, peer: a, s: newSession(b.s.cfg, 0x3333, rand.New(rand.NewPCG(8, 8)), l.clk.Now())}
	a.peer = nb
	nb.schedule()
	if !l.runUntil(5*time.Second, bothUp(a, nb)) {
		t.Fatalf("not Up again: a %s b %s", a.s.state, nb.s.state)
	}
	if len(a.events) == 0 || a.events[0].To != Down || a.events[0].Diag != DiagNeighborDown {
		t.Errorf("a's events %+v, want Down with diag 3 first", a.events)
	}
}
