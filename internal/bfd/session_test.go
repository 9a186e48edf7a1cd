package bfd

import (
	"math/rand/v2"
	"testing"
	"time"
)

// upSession returns a session that is Up with a neighbor whose Required
// Min RX is 1 µs, so the TX interval is our own.
func upSession(t *testing.T, cfg Config) (*session, time.Time) {
	t.Helper()
	now := simStart
	s := newSession(cfg, 0x1111, rand.New(rand.NewPCG(1, 2)), now)
	for _, st := range []State{Down, Up} {
		p := &Packet{State: st, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}
		if st == Down {
			p.YourDisc = 0
		}
		if err := s.Receive(p, now); err != nil {
			t.Fatal(err)
		}
	}
	if s.state != Up {
		t.Fatalf("state %s, want Up", s.state)
	}
	s.takeEvents()
	return s, now
}

func TestSessionJitter(t *testing.T) {
	for _, tc := range []struct {
		mult   uint8
		lo, hi int // percent of the interval
	}{{3, 75, 100}, {1, 75, 90}} {
		s, now := upSession(t, simConfig("j", 100*time.Millisecond, 100*time.Millisecond, tc.mult))
		s.Run(now)
		minP, maxP := 1000, 0
		for range 2000 {
			now = s.Due()
			if s.Run(now) == nil {
				t.Fatal("no packet at the due time")
			}
			s.Receive(&Packet{State: Up, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}, now)
			pct := int(s.nextTx.Sub(now) * 100 / (100 * time.Millisecond))
			minP, maxP = min(minP, pct), max(maxP, pct)
		}
		if minP != tc.lo || maxP != tc.hi {
			t.Errorf("multiplier %d: intervals %d-%d%%, want %d-%d%%", tc.mult, minP, maxP, tc.lo, tc.hi)
		}
	}
}

// TestSessionPollKeepsSafeTimers: during a Poll sequence a larger TX
// interval and a smaller RX interval wait for the Final (RFC 5880
// section 6.8.3); the opposite changes apply at once.
func TestSessionPollKeepsSafeTimers(t *testing.T) {
	s, now := upSession(t, simConfig("p", 10*time.Millisecond, 10*time.Millisecond, 3))
	fin := &Packet{State: Up, Final: true, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}
	s.Receive(fin, now) // completes the Poll of going Up
	cfg := s.cfg
	cfg.MinTx, cfg.MinRx = 50*time.Millisecond, 5*time.Millisecond
	s.Reconfigure(cfg)
	if s.usedTx != 10*time.Millisecond || s.usedRx != 10*time.Millisecond {
		t.Fatalf("before the Final: used tx %v rx %v, want the old 10ms both", s.usedTx, s.usedRx)
	}
	p := s.Run(now)
	if p == nil || !p.Poll || p.DesiredMinTx != 50000 || p.RequiredMinRx != 5000 {
		t.Fatalf("packet %+v, want P with the new intervals", p)
	}
	s.Receive(fin, now)
	if s.polling || s.usedTx != 50*time.Millisecond || s.usedRx != 5*time.Millisecond {
		t.Fatalf("after the Final: polling %v used tx %v rx %v", s.polling, s.usedTx, s.usedRx)
	}
	cfg.MinTx, cfg.MinRx = 20*time.Millisecond, 30*time.Millisecond
	s.Reconfigure(cfg)
	if s.usedTx != 20*time.Millisecond || s.usedRx != 30*time.Millisecond {
		t.Errorf("faster TX / slower RX: used tx %v rx %v, want 20ms 30ms at once", s.usedTx, s.usedRx)
	}
}

// TestSessionFinalAnswersPoll: a received Poll is answered at once with
// F (and without P), outside the periodic schedule.
func TestSessionFinalAnswersPoll(t *testing.T) {
	s, now := upSession(t, simConfig("f", 10*time.Millisecond, 10*time.Millisecond, 3))
	s.Run(now)
	next := s.nextTx
	s.Receive(&Packet{State: Up, Poll: true, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}, now)
	if d := s.Due(); d.After(now) {
		t.Fatalf("due %v after the Poll, want now", d.Sub(now))
	}
	p := s.Run(now)
	if p == nil || !p.Final || p.Poll {
		t.Fatalf("packet %+v, want F without P", p)
	}
	if s.nextTx != next {
		t.Errorf("the Final moved the periodic schedule")
	}
}

func TestSessionDropsAuth(t *testing.T) {
	s, now := upSession(t, simConfig("a", 10*time.Millisecond, 10*time.Millisecond, 3))
	err := s.Receive(&Packet{State: Down, Auth: true, AuthType: 1, DetectMult: 3, MyDisc: 9, YourDisc: 0x1111}, now)
	if de, ok := err.(*DropError); !ok || de.Reason != DropAuth {
		t.Fatalf("error %v, want DropAuth", err)
	}
	if s.state != Up || s.remoteDisc != 0x2222 {
		t.Errorf("an authenticated packet changed the session: %s, remote %#x", s.state, s.remoteDisc)
	}
}

// TestSessionPassiveAnswersPoll: a passive session that has sent nothing
// yet answers a Poll at once.
func TestSessionPassiveAnswersPoll(t *testing.T) {
	cfg := simConfig("p", 10*time.Millisecond, 10*time.Millisecond, 3)
	cfg.Passive = true
	now := simStart.Add(time.Second)
	s := newSession(cfg, 0x1111, rand.New(rand.NewPCG(1, 2)), simStart)
	if d := s.Due(); !d.IsZero() {
		t.Fatalf("passive session due at %v before hearing from the neighbor", d)
	}
	s.Receive(&Packet{State: Down, Poll: true, DetectMult: 3, MyDisc: 0x2222, DesiredMinTx: 1000000, RequiredMinRx: 1000000}, now)
	if d := s.Due(); d.IsZero() || d.After(now) {
		t.Fatalf("due %v after a Poll at %v, want now", d, now)
	}
	if p := s.Run(now); p == nil || !p.Final || p.State != Init {
		t.Fatalf("packet %+v, want F in Init", p)
	}
}

// TestSessionOnePollAtATime: a change made while a Poll runs waits for
// its Final, then gets a Poll of its own (RFC 5880 section 6.8.3).
func TestSessionOnePollAtATime(t *testing.T) {
	s, now := upSession(t, simConfig("p", 10*time.Millisecond, 10*time.Millisecond, 3))
	fin := &Packet{State: Up, Final: true, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}
	s.Receive(fin, now) // completes the Poll of going Up
	cfg := s.cfg
	cfg.MinTx = 50 * time.Millisecond
	s.Reconfigure(cfg) // Poll 1: slower TX
	cfg.MinRx = 5 * time.Millisecond
	s.Reconfigure(cfg) // during Poll 1: faster RX, must wait
	s.Receive(fin, now)
	if !s.polling || s.usedTx != 50*time.Millisecond || s.usedRx != 10*time.Millisecond {
		t.Fatalf("after Poll 1's Final: polling %v, used tx %v rx %v; want a second Poll, tx 50ms, rx still 10ms",
			s.polling, s.usedTx, s.usedRx)
	}
	s.Receive(fin, now)
	if s.polling || s.usedRx != 5*time.Millisecond {
		t.Fatalf("after Poll 2's Final: polling %v, used rx %v; want done, 5ms", s.polling, s.usedRx)
	}
}

// TestSessionLateDetectionExtendedOnce: a detection time that runs out
// on time takes the session Down; one that is handled late (the process
// or the machine stalled) is extended by one of the neighbor's intervals,
// once, and a packet within that keeps the session Up and makes the next
// late expiry eligible again.
func TestSessionLateDetectionExtendedOnce(t *testing.T) {
	up := &Packet{State: Up, DetectMult: 3, MyDisc: 0x2222, YourDisc: 0x1111, DesiredMinTx: 1, RequiredMinRx: 1}
	const iv = 10 * time.Millisecond
	cfg := simConfig("l", iv, iv, 3)

	s, _ := upSession(t, cfg)
	s.Run(s.detectAt)
	if s.state != Down || s.lateDetect != 0 {
		t.Fatalf("on time: %s, %d late detections; want Down, 0", s.state, s.lateDetect)
	}

	s, _ = upSession(t, cfg)
	late := s.detectAt.Add(20 * time.Millisecond)
	s.Run(late)
	if s.state != Up || s.lateDetect != 1 || !s.detectAt.Equal(late.Add(iv)) {
		t.Fatalf("20 ms late: %s, %d late detections, detection at +%v; want Up, 1, one interval later", s.state, s.lateDetect, s.detectAt.Sub(late))
	}
	if err := s.Receive(up, late.Add(iv/2)); err != nil {
		t.Fatal(err)
	}
	s.Run(s.detectAt.Add(20 * time.Millisecond))
	if s.state != Up || s.lateDetect != 2 {
		t.Fatalf("late again after a packet: %s, %d late detections; want Up, 2", s.state, s.lateDetect)
	}
	s.Run(s.detectAt.Add(20 * time.Millisecond))
	if s.state != Down || s.lateDetect != 2 {
		t.Errorf("late twice without a packet: %s, %d late detections; want Down, 2", s.state, s.lateDetect)
	}
}
