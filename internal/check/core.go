package check

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"tandem/internal/config"
)

// Core is the scheduler's pure state machine. It holds no goroutines, reads
// no clock and touches no network: the shell tells it the time and the
// results and carries out what it returns. Its rules are keepalived's:
//
//   - A checker's first run is at a random point in [0, warmup] after Start
//     (check_api.c start_checker_threads), then every delay_loop after the
//     previous run ended.
//   - A checker starts up, or down with alpha. A success brings it up at
//     once. A failure of an up checker is retried up to retry times,
//     delay_before_retry apart; it goes down on the (retry+1)-th failure in
//     a row. A down checker is not retried (check_tcp.c tcp_epilog, and the
//     same epilog in every checker). FILE_CHECK follows its file at once
//     (track_file.c), without retries.
//   - A real server is alive while all its checkers are up; its weight is
//     the configured one plus what MISC_CHECK (misc_dynamic) and FILE_CHECK
//     set, clamped to [0, 2^31-1] (check_data.h real_weight).
//   - Quorum (ipwrapper.c update_quorum_state): with W the sum of the
//     weights of alive servers, quorum is gained when W >= quorum +
//     hysteresis, lost when W == 0 or W < quorum - hysteresis. Losing it
//     puts the sorry server in (and the alive servers out); gaining it
//     reverses that.
//   - ha_suspend virtual servers check only while resumed (a VRRP master).
type Core struct {
	vss    []*vsState
	cks    []*ckState
	timers [lanes]timerHeap
	epoch  time.Time // the timers' keys count from here
	rnd    func(max time.Duration) time.Duration
}

// ID names a checker in a Core: its index in Specs.
type ID int

// Lane is one of the core's timer queues. Every checker is in LaneMain
// unless moved: the scheduler moves the TCP_CHECKs it runs through
// io_uring to LaneRing, whose thread keeps its own time.
type Lane int

const (
	LaneMain Lane = iota
	LaneRing
	lanes
)

// Spec is one checker with where it sits in the configuration.
type Spec struct {
	ID      ID
	VS      *config.VirtualServer
	RS      *config.RealServer
	Checker *config.Checker
	// Target is the real server's address and port.
	Target Target
}

type vsState struct {
	cfg       *config.VirtualServer
	rss       []*rsState
	quorumUp  bool
	sorryIn   bool
	suspended bool
}

type rsState struct {
	cfg    *config.RealServer
	vs     *vsState
	cks    []*ckState
	alive  bool
	weight int64 // configured weight plus the checkers' offsets
}

type ckState struct {
	spec    Spec
	rs      *rsState
	up      bool
	hasRun  bool
	retryIt int
	offset  int64 // what this checker adds to the real server's weight
	running bool
	// stale marks a run started before a Suspend: its result is dropped.
	stale bool

	lastOK     bool
	lastErr    string
	lastChange time.Time
	lastRun    time.Time
	latency    time.Duration

	next    time.Time
	lane    Lane
	heapIdx int // in timers[lane]; -1 when no timer is armed
}

// NewCore builds the state of every checker of vss. rnd returns a random
// duration in [0, max] for the warmup spread; nil uses math/rand/v2.
func NewCore(vss []*config.VirtualServer, rnd func(max time.Duration) time.Duration) *Core {
	if rnd == nil {
		rnd = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return time.Duration(rand.Int64N(int64(max) + 1))
		}
	}
	c := &Core{rnd: rnd}
	for _, vcfg := range vss {
		vs := &vsState{cfg: vcfg, suspended: vcfg.HASuspend}
		c.vss = append(c.vss, vs)
		for _, rcfg := range vcfg.RealServers {
			rs := &rsState{cfg: rcfg, vs: vs, weight: int64(rcfg.Weight)}
			vs.rss = append(vs.rss, rs)
			for _, kcfg := range rcfg.Checkers {
				ck := &ckState{
					spec: Spec{
						ID: ID(len(c.cks)), VS: vcfg, RS: rcfg, Checker: kcfg,
						Target: Target{Addr: netip.AddrPortFrom(rcfg.IP, uint16(rcfg.Port))},
					},
					rs:      rs,
					up:      !kcfg.Timing.Alpha,
					heapIdx: -1,
				}
				rs.cks = append(rs.cks, ck)
				c.cks = append(c.cks, ck)
			}
			rs.alive = rs.allUp()
		}
	}
	return c
}

// Specs lists every checker; a Spec's ID is its index.
func (c *Core) Specs() []Spec {
	out := make([]Spec, len(c.cks))
	for i, ck := range c.cks {
		out[i] = ck.spec
	}
	return out
}

// Start arms every checker not suspended by ha_suspend and returns the
// initial state of every real server and virtual server as events (with
// Initial set), so a consumer can program the data plane from them alone.
func (c *Core) Start(now time.Time) []Event {
	var evs []Event
	for _, vs := range c.vss {
		for _, rs := range vs.rss {
			evs = append(evs, rs.event(now, rs.kind(), "initial state"))
		}
		// check_data.c set_quorum_states, then update_quorum_state(init).
		vs.quorumUp = vs.weightSum() >= int64(vs.cfg.Quorum+vs.cfg.Hysteresis)
		kind := QuorumDown
		if vs.quorumUp {
			kind = QuorumUp
		} else if vs.cfg.SorryServer != nil {
			vs.sorryIn = true
			evs = append(evs, vs.event(now, SorryServerIn, "initial state"))
		}
		evs = append(evs, vs.event(now, kind, "initial state"))
		if !vs.suspended {
			c.armAll(now, vs)
		}
	}
	for i := range evs {
		evs[i].Initial = true
	}
	return evs
}

// Due returns the checkers of lane whose timer has expired at now, marks
// them running and disarms them; each must be answered with Complete.
func (c *Core) Due(lane Lane, now time.Time) []ID {
	var ids []ID
	h := &c.timers[lane]
	for len(*h) > 0 && !(*h)[0].ck.next.After(now) {
		ck := heap.Pop(h).(*ckState)
		ck.running = true
		ids = append(ids, ck.spec.ID)
	}
	return ids
}

// Next is when the earliest timer of lane expires; ok is false when none
// is armed.
func (c *Core) Next(lane Lane) (t time.Time, ok bool) {
	if len(c.timers[lane]) == 0 {
		return time.Time{}, false
	}
	return c.timers[lane][0].ck.next, true
}

// SetLane moves checker id to lane, keeping its timer.
func (c *Core) SetLane(id ID, lane Lane) {
	ck := c.cks[id]
	if ck.lane == lane {
		return
	}
	armed := ck.heapIdx >= 0
	c.disarm(ck)
	ck.lane = lane
	if armed {
		c.arm(ck, ck.next)
	}
}

// Complete records the result of a run of checker id that ended at now,
// arms its next run and returns the events it causes.
func (c *Core) Complete(now time.Time, id ID, r Result) []Event {
	ck := c.cks[id]
	if !ck.running {
		return nil
	}
	ck.running = false
	if ck.stale {
		ck.stale = false
		if !ck.rs.vs.suspended {
			c.arm(ck, now.Add(c.rnd(time.Duration(ck.timing().Warmup))))
		}
		return nil
	}
	ck.lastRun, ck.latency, ck.lastOK, ck.lastErr = now, r.Latency, r.OK, ""
	if r.Err != nil {
		ck.lastErr = r.Err.Error()
	}
	t := ck.timing()
	delay := time.Duration(t.DelayLoop)
	retry := t.Retry
	if ck.spec.Checker.Type == config.CheckFile {
		retry = 0
	}
	var evs []Event
	switch {
	case r.OK:
		ck.retryIt = 0
		evs = c.setOffset(now, ck, r)
		if !ck.up {
			evs = append(evs, c.setUp(now, ck, true)...)
		}
	case ck.up && ck.retryIt < retry:
		ck.retryIt++
		delay = time.Duration(t.DelayBeforeRetry)
	case ck.up:
		ck.retryIt = 0
		evs = c.setUp(now, ck, false)
	}
	ck.hasRun = true
	c.arm(ck, now.Add(delay))
	return evs
}

// Suspend stops the checkers of ha_suspend virtual servers (keepalived
// disables them while this director does not hold the virtual address).
// Real-server state is kept; results of runs in flight are dropped.
func (c *Core) Suspend() {
	for _, vs := range c.vss {
		if !vs.cfg.HASuspend || vs.suspended {
			continue
		}
		vs.suspended = true
		for _, rs := range vs.rss {
			for _, ck := range rs.cks {
				c.disarm(ck)
				if ck.running {
					ck.stale = true
				}
			}
		}
	}
}

// Resume restarts the checkers of ha_suspend virtual servers, each after
// a fresh random warmup delay.
func (c *Core) Resume(now time.Time) {
	for _, vs := range c.vss {
		if vs.cfg.HASuspend && vs.suspended {
			vs.suspended = false
			c.armAll(now, vs)
		}
	}
}

// Stop returns, for virtual servers with omega, the events of a shutdown:
// every alive real server down, then quorum down (keepalived.conf(5)
// omega: the down notifiers run on daemon shutdown). Timers are disarmed.
func (c *Core) Stop(now time.Time) []Event {
	var evs []Event
	for _, vs := range c.vss {
		for _, rs := range vs.rss {
			for _, ck := range rs.cks {
				c.disarm(ck)
			}
			if vs.cfg.Omega && rs.alive {
				rs.alive = false
				evs = append(evs, rs.event(now, RealServerDown, "shutdown"))
			}
		}
		if vs.cfg.Omega && vs.quorumUp {
			vs.quorumUp = false
			evs = append(evs, vs.event(now, QuorumDown, "shutdown"))
		}
	}
	return evs
}

func (c *Core) armAll(now time.Time, vs *vsState) {
	for _, rs := range vs.rss {
		for _, ck := range rs.cks {
			if ck.spec.Checker.BFD != nil {
				continue // driven by SetBFD, never run
			}
			if ck.running {
				ck.stale = true // arms itself when it completes
				continue
			}
			c.arm(ck, now.Add(c.rnd(time.Duration(ck.timing().Warmup))))
		}
	}
}

func (c *Core) arm(ck *ckState, at time.Time) {
	if c.epoch.IsZero() {
		c.epoch = at
	}
	ck.next = at
	h := &c.timers[ck.lane]
	if ck.heapIdx >= 0 {
		(*h)[ck.heapIdx].key = at.Sub(c.epoch)
		heap.Fix(h, ck.heapIdx)
		return
	}
	heap.Push(h, timer{key: at.Sub(c.epoch), ck: ck})
}

func (c *Core) disarm(ck *ckState) {
	if ck.heapIdx >= 0 {
		heap.Remove(&c.timers[ck.lane], ck.heapIdx)
	}
}

func (ck *ckState) timing() config.Timing { return ck.spec.Checker.Timing }

func (ck *ckState) reason() string {
	if ck.lastErr != "" {
		return ck.spec.Checker.Type.String() + ": " + ck.lastErr
	}
	return ck.spec.Checker.Type.String() + ": ok"
}

// SetBFD gives the BFD_CHECKs following session name its state: a
// checker is up while the session is Up (check_bfd.c
// bfd_check_handle_event). It runs no check and arms no timer: the
// session's state changes are its results. Retries do not apply (a BFD
// session has its own detection time); a checker told what it already
// shows changes nothing once it has been told once.
func (c *Core) SetBFD(now time.Time, name string, up bool) []Event {
	var evs []Event
	for _, ck := range c.cks {
		b := ck.spec.Checker.BFD
		if b == nil || b.Name != name || ck.up == up && ck.hasRun {
			continue
		}
		ck.hasRun, ck.lastRun, ck.lastOK, ck.lastErr = true, now, up, ""
		if !up {
			ck.lastErr = "bfd " + name + " down"
		}
		if ck.up != up {
			evs = append(evs, c.setUp(now, ck, up)...)
		}
	}
	return evs
}

// setOffset applies the weight a successful MISC_CHECK or FILE_CHECK asks
// for (keepalived update_svr_wgt).
func (c *Core) setOffset(now time.Time, ck *ckState, r Result) []Event {
	var off int64
	switch {
	case r.Weight != nil:
		off = int64(*r.Weight) - int64(ck.rs.cfg.Weight)
	case r.WeightDelta != nil:
		off = int64(*r.WeightDelta)
	}
	return c.changeOffset(now, ck, off)
}

func (c *Core) changeOffset(now time.Time, ck *ckState, off int64) []Event {
	if off == ck.offset {
		return nil
	}
	rs := ck.rs
	old := realWeight(rs.weight)
	rs.weight += off - ck.offset
	ck.offset = off
	if realWeight(rs.weight) == old || !rs.alive {
		return nil
	}
	evs := []Event{rs.event(now, WeightChanged, ck.reason())}
	return append(evs, c.updateQuorum(now, rs.vs, ck.reason())...)
}

// setUp moves a checker up or down and the real server with it.
func (c *Core) setUp(now time.Time, ck *ckState, up bool) []Event {
	ck.up = up
	ck.lastChange = now
	var evs []Event
	if !up {
		// A down checker's weight contribution is dropped (check_misc.c,
		// track_file.c), so the server comes back at its configured weight.
		rs := ck.rs
		rs.weight -= ck.offset
		ck.offset = 0
	}
	rs := ck.rs
	if alive := rs.allUp(); alive != rs.alive {
		rs.alive = alive
		evs = append(evs, rs.event(now, rs.kind(), ck.reason()))
		evs = append(evs, c.updateQuorum(now, rs.vs, ck.reason())...)
	}
	return evs
}

// updateQuorum is keepalived's update_quorum_state after a change.
func (c *Core) updateQuorum(now time.Time, vs *vsState, reason string) []Event {
	sum := vs.weightSum()
	q, h := int64(vs.cfg.Quorum), int64(vs.cfg.Hysteresis)
	var evs []Event
	switch {
	case !vs.quorumUp && sum >= q+h:
		vs.quorumUp = true
		if vs.sorryIn {
			vs.sorryIn = false
			evs = append(evs, vs.event(now, SorryServerOut, reason))
		}
		evs = append(evs, vs.event(now, QuorumUp, reason))
	case vs.quorumUp && (sum == 0 || sum < q-h):
		vs.quorumUp = false
		if vs.cfg.SorryServer != nil && !vs.sorryIn {
			vs.sorryIn = true
			evs = append(evs, vs.event(now, SorryServerIn, reason))
		}
		evs = append(evs, vs.event(now, QuorumDown, reason))
	}
	return evs
}

func (rs *rsState) allUp() bool {
	for _, ck := range rs.cks {
		if !ck.up {
			return false
		}
	}
	return true
}

func (rs *rsState) kind() EventKind {
	if rs.alive {
		return RealServerUp
	}
	return RealServerDown
}

func (rs *rsState) event(now time.Time, k EventKind, reason string) Event {
	e := Event{Time: now, Kind: k, VS: rs.vs.cfg, RS: rs.cfg, Reason: reason}
	switch {
	case rs.alive:
		e.Weight = realWeight(rs.weight)
	case rs.cfg.Inhibit:
		e.Inhibit = true // weight 0, kept in the pool
	}
	return e
}

func (vs *vsState) event(now time.Time, k EventKind, reason string) Event {
	return Event{Time: now, Kind: k, VS: vs.cfg, Weight: int(vs.weightSum()), Reason: reason}
}

// weightSum is keepalived's weigh_live_realservers.
func (vs *vsState) weightSum() int64 {
	var n int64
	for _, rs := range vs.rss {
		if rs.alive {
			n += int64(realWeight(rs.weight))
		}
	}
	return n
}

// realWeight clamps a weight to what IPVS takes (check_data.h real_weight).
func realWeight(w int64) int {
	return int(min(max(w, 0), math.MaxInt32))
}

// timerHeap orders armed checkers by their next run. The key (the next
// run as a duration since the core's epoch) sits in the heap's own array,
// so ordering thousands of checkers touches no checker state.
type timerHeap []timer

type timer struct {
	key time.Duration
	ck  *ckState
}

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].key == h[j].key {
		return h[i].ck.spec.ID < h[j].ck.spec.ID // deterministic order
	}
	return h[i].key < h[j].key
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ck.heapIdx, h[j].ck.heapIdx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(timer)
	t.ck.heapIdx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	ck := old[len(old)-1].ck
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	ck.heapIdx = -1
	return ck
}
