package bfd

import (
	"math/rand/v2"
	"time"

	"tandem/internal/realtime"
)

// minIdleTx is the floor of the transmit interval while a session is not
// Up: RFC 5880 section 6.8.3 requires bfd.DesiredMinTxInterval of at
// least one second then; keepalived's idle_tx is that value (its minimum
// and default are 1000 ms).
const minIdleTx = time.Second

// session is one BFD session's state machine (RFC 5880 section 6.8), with
// no sockets, goroutines or clock of its own: the caller passes the time
// to every method, and asks Due when to call Run next. Control packets to
// send come back from Run; state changes queue up for takeEvents.
type session struct {
	cfg Config
	rng *rand.Rand

	// The state variables of RFC 5880 section 6.8.1.
	state, remoteState State
	localDisc          uint32
	remoteDisc         uint32
	localDiag          uint8
	remoteDiag         uint8
	remoteMinRx        time.Duration // bfd.RemoteMinRxInterval
	remoteDemand       bool
	// remoteMinTx and remoteMult are the last received Desired Min TX
	// Interval and Detect Mult: they make the detection time (6.8.4).
	remoteMinTx time.Duration
	remoteMult  uint8

	// usedTx and usedRx are the Desired Min TX and Required Min RX
	// intervals the timers run on; they differ from what the packets
	// advertise while a Poll Sequence for a change is under way (6.8.3:
	// a larger TX interval and a smaller RX interval take effect only
	// when the Final comes back).
	usedTx, usedRx time.Duration
	polling        bool          // our Poll Sequence is under way: P on every packet
	pollTx, pollRx time.Duration // the intervals that Poll announces
	finalDue       bool          // a Poll was received: send F at once
	polledAt       time.Time     // when that Poll was received

	lastTx   time.Time // when the last periodic packet went out
	nextTx   time.Time // when the next periodic packet is due
	detectAt time.Time // zero: no detection timer running
	// graced: the running detection time was extended once because it
	// ran out late (Run); a received packet clears it.
	graced bool

	// events queue up until takeEvents.
	events []Event
	// Counters for Status.
	flaps      uint64
	lateDetect uint64 // detection times extended for running out late
	lastChange time.Time
}

func newSession(cfg Config, disc uint32, rng *rand.Rand, now time.Time) *session {
	s := &session{
		cfg:         cfg,
		rng:         rng,
		state:       Down,
		remoteState: Down,
		localDisc:   disc,
		remoteMinRx: time.Microsecond, // 6.8.1: initialized to 1
		lastChange:  now,
	}
	s.usedTx, s.usedRx = s.advertisedTx(), cfg.MinRx
	s.nextTx = now // the first packet goes out at once
	return s
}

// advertisedTx is bfd.DesiredMinTxInterval: min_tx while Up, idle_tx
// (at least a second) otherwise.
func (s *session) advertisedTx() time.Duration {
	if s.state == Up {
		return s.cfg.MinTx
	}
	return max(s.cfg.IdleTx, minIdleTx)
}

// txInterval is the negotiated periodic interval (6.8.7): the larger of
// our desired TX and the neighbor's required RX.
func (s *session) txInterval() time.Duration { return max(s.usedTx, s.remoteMinRx) }

// detection is the detection time in asynchronous mode (6.8.4): the
// neighbor's multiplier times the larger of our required RX and its
// desired TX. Zero before anything was received.
func (s *session) detection() time.Duration {
	return time.Duration(s.remoteMult) * max(s.usedRx, s.remoteMinTx)
}

// sending reports whether periodic packets go out (6.8.7): not in the
// passive role before the neighbor's discriminator is known (6.1), not
// when the neighbor asks for no packets (RemoteMinRxInterval zero), not
// while the neighbor's Demand mode is in effect.
func (s *session) sending() bool {
	switch {
	case s.cfg.Passive && s.remoteDisc == 0:
		return false
	case s.remoteMinRx == 0:
		return false
	case s.remoteDemand && s.state == Up && s.remoteState == Up:
		return false
	}
	return true
}

// jittered is the interval to the next periodic packet: reduced by a
// random 0-25%, or 10-25% when the multiplier is 1 (6.8.7).
func (s *session) jittered() time.Duration {
	iv := s.txInterval()
	lo, hi := 75, 100
	if s.cfg.Multiplier == 1 {
		hi = 90
	}
	pct := lo + s.rng.IntN(hi-lo+1)
	return iv * time.Duration(pct) / 100
}

// Due is when Run must next be called: the earlier of the next packet and
// the end of the detection time.
func (s *session) Due() time.Time {
	var due time.Time
	if s.finalDue {
		return s.polledAt
	}
	if s.state != AdminDown && s.sending() {
		due = s.nextTx
	}
	if !s.detectAt.IsZero() && (due.IsZero() || s.detectAt.Before(due)) {
		due = s.detectAt
	}
	return due
}

// Run handles the timers due at now: the detection time first (6.8.4),
// then transmission (6.8.7). It returns the packet to send, if any.
//
// A detection time that ran out while this process was not running
// (realtime.Stalled: its timer is handled late) measured time when
// nothing could be received: a stalled kernel or a paused VM takes no
// packets in and, where the neighbor shares the host, sends none. Once
// per detection time it is extended by one of the neighbor's intervals,
// for the packet a neighbor that is alive sends as soon as it runs
// again; the engine reads its sockets before its timers, so a packet
// that arrived meanwhile has already restarted it. On time, it runs
// out as RFC 5880 says.
func (s *session) Run(now time.Time) *Packet {
	if !s.detectAt.IsZero() && !now.Before(s.detectAt) {
		if iv := s.detection() / time.Duration(max(s.remoteMult, 1)); !s.graced && realtime.Stalled(now.Sub(s.detectAt), iv) {
			s.graced = true
			s.lateDetect++
			s.detectAt = now.Add(iv)
		} else {
			s.detectAt, s.graced = time.Time{}, false
			// 6.8.1: RemoteDiscr is reset when a detection time passes
			// with nothing received; the neighbor is then taken as Down.
			s.remoteDisc, s.remoteState = 0, Down
			if s.state == Init || s.state == Up {
				s.setState(Down, DiagExpired, now)
			}
		}
	}
	if s.state == AdminDown {
		return nil
	}
	if s.finalDue {
		// A Final goes out as soon as practicable, outside the
		// periodic schedule (6.8.7).
		s.finalDue = false
		return s.packet(true)
	}
	if !s.sending() || now.Before(s.nextTx) {
		return nil
	}
	s.lastTx = now
	s.nextTx = now.Add(s.jittered())
	return s.packet(false)
}

// packet builds the control packet the state variables describe.
func (s *session) packet(final bool) *Packet {
	return &Packet{
		Diag:          s.localDiag,
		State:         s.state,
		Poll:          s.polling && !final, // never P and F together (6.8.7)
		Final:         final,
		DetectMult:    s.cfg.Multiplier,
		MyDisc:        s.localDisc,
		YourDisc:      s.remoteDisc,
		DesiredMinTx:  micros(s.advertisedTx()),
		RequiredMinRx: micros(s.cfg.MinRx),
	}
}

func micros(d time.Duration) uint32 { return uint32(min(d/time.Microsecond, 1<<32-1)) }

// Receive acts on a packet that passed Decode and the socket checks and
// belongs to this session (RFC 5880 section 6.8.6 from "If the A bit is
// set"), received at at. The error is a *DropError.
func (s *session) Receive(p *Packet, at time.Time) error {
	if p.Auth {
		return dropf(DropAuth, "type %d", p.AuthType)
	}
	s.remoteDisc = p.MyDisc
	s.remoteState = p.State
	s.remoteDemand = p.Demand
	s.remoteDiag = p.Diag
	s.remoteMult = p.DetectMult
	s.remoteMinTx = time.Duration(p.DesiredMinTx) * time.Microsecond
	oldIv := s.txInterval()
	s.remoteMinRx = time.Duration(p.RequiredMinRx) * time.Microsecond
	if p.Final && s.polling {
		s.polling = false
		s.usedTx, s.usedRx = s.pollTx, s.pollRx
		// A change made while that Poll ran gets a Poll of its own
		// (6.8.3: one Poll Sequence at a time).
		s.startPoll(s.advertisedTx(), s.cfg.MinRx, s.pollTx, s.pollRx)
	}
	if s.state == AdminDown {
		return nil
	}
	if p.Poll {
		s.finalDue, s.polledAt = true, at
	}
	switch {
	case p.State == AdminDown:
		if s.state != Down {
			s.setState(Down, DiagNeighborDown, at)
		}
	case s.state == Down && p.State == Down:
		s.setState(Init, DiagNone, at)
	case s.state == Down && p.State == Init,
		s.state == Init && (p.State == Init || p.State == Up):
		s.setState(Up, DiagNone, at)
	case s.state == Up && p.State == Down:
		s.setState(Down, DiagNeighborDown, at)
	}
	// The detection timer runs in every state: in Init and Up its end
	// takes the session Down, in any state it forgets the neighbor's
	// discriminator (6.8.1), which stops a passive session (6.8.17).
	s.detectAt, s.graced = at.Add(s.detection()), false
	// A shorter interval takes effect at once (keepalived and FRR do
	// the same), so that going Up does not wait out an idle period.
	if s.txInterval() < oldIv {
		s.advanceTx()
	}
	return nil
}

// advanceTx brings the next periodic packet forward to one interval
// after the last, when the interval has shrunk.
func (s *session) advanceTx() {
	if s.lastTx.IsZero() {
		return
	}
	if next := s.lastTx.Add(s.jittered()); next.Before(s.nextTx) {
		s.nextTx = next
	}
}

// setState moves the session and adjusts the timers whose value depends
// on being Up: bfd.DesiredMinTxInterval goes from idle_tx to min_tx when
// the session comes Up, which starts a Poll Sequence (6.8.3), and back
// when it leaves Up, which needs none.
func (s *session) setState(to State, diag uint8, at time.Time) {
	from := s.state
	s.state, s.localDiag = to, diag
	s.lastChange = at
	if from == Up {
		s.flaps++
		s.polling = false
		s.usedTx, s.usedRx = s.advertisedTx(), s.cfg.MinRx
	}
	if to == Up {
		s.startPoll(s.cfg.MinTx, s.cfg.MinRx, max(s.cfg.IdleTx, minIdleTx), s.cfg.MinRx)
	}
	s.events = append(s.events, Event{
		Name: s.cfg.Name, From: from, To: to, Diag: diag, At: at,
		Neighbor: s.cfg.Neighbor, Multihop: s.cfg.Multihop, Detection: s.detection(),
	})
}

// startPoll begins a Poll Sequence for a change of the advertised
// intervals from (oldTx, oldRx) to (tx, rx) while Up (6.8.3): a faster TX
// and a slower RX take effect at once, the others when the Final arrives.
// While a Poll runs no other starts: the Final of the running one starts
// the next if the intervals changed meanwhile.
func (s *session) startPoll(tx, rx, oldTx, oldRx time.Duration) {
	s.usedTx = min(s.usedTx, tx)
	s.usedRx = max(s.usedRx, rx)
	if s.polling || (tx == oldTx && rx == oldRx) {
		return
	}
	s.polling, s.pollTx, s.pollRx = true, tx, rx
}

// Reconfigure takes new timers and options for the same neighbor (the
// caller restarts the session when the neighbor, source or hop mode
// changes). While Up, an interval change runs a Poll Sequence and the
// session stays Up.
func (s *session) Reconfigure(cfg Config) {
	old := s.cfg
	s.cfg = cfg
	if s.state == Up {
		s.startPoll(cfg.MinTx, cfg.MinRx, old.MinTx, old.MinRx)
	} else {
		s.usedTx, s.usedRx = s.advertisedTx(), cfg.MinRx
	}
	s.advanceTx()
}

// AdminDown takes the session administratively down (6.8.16) and returns
// the packet that tells the neighbor so; the session sends nothing more.
func (s *session) AdminDown(now time.Time) *Packet {
	if s.state != AdminDown {
		s.setState(AdminDown, DiagAdminDown, now)
	}
	s.detectAt = time.Time{}
	return s.packet(false)
}

// takeEvents returns the state changes since the last call.
func (s *session) takeEvents() []Event {
	ev := s.events
	s.events = nil
	return ev
}
