package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"time"

	"tandem/internal/config"
	"tandem/internal/fdlimit"
)

// fdReserve is how many file descriptors the checks leave to the rest of
// the daemon (VRRP sockets, netlink, the status listener, script pipes)
// when the scheduler sizes its concurrency from RLIMIT_NOFILE.
const fdReserve = 1024

// minConcurrency is the concurrency a scheduler keeps however low the
// descriptor limit is, so that checks still run (slowly) rather than never.
const minConcurrency = 64

// Options configure a Scheduler.
type Options struct {
	// Concurrency bounds the checks running at once. The default (0) is
	// every checker at once, as keepalived runs them, bounded by the
	// descriptors RLIMIT_NOFILE leaves (concurrencyFor): each running
	// check holds at most one socket or one process group. A check due
	// while the bound is reached waits, in due order. TCP_CHECKs run
	// through io_uring have a bound of the same size of their own.
	Concurrency int
	// PlainSockets runs TCP_CHECK on the Go runtime's sockets, one worker
	// each, instead of in batches through io_uring. Without it io_uring is
	// used when the kernel allows (Linux 6.1 or later, io_uring not
	// disabled by sysctl or seccomp).
	PlainSockets bool
	// Env is passed to every checker (track files for FILE_CHECK).
	Env Env
	// Rand returns a random duration in [0, max], for the warmup spread;
	// nil uses math/rand/v2.
	Rand func(max time.Duration) time.Duration
	// Events receives the scheduler's events in order. The scheduler
	// queues events while the receiver is slow, so checks are never held
	// up by it.
	Events chan<- Event
}

// Scheduler is the shell around Core: it runs due checks on a bounded pool
// of workers and feeds their results back.
type Scheduler struct {
	log      *slog.Logger
	opts     Options
	checkers []Checker
	// specs are the checkers' places, for the failures log_all_failures
	// logs.
	specs []Spec

	mu   sync.Mutex
	core *Core
	// Under mu: events not yet delivered, running checks handed back by a
	// failed io_uring thread, when Run's timer fires (zero: not armed),
	// and whether Run is stopping (results are then dropped).
	events   []Event
	requeued []ID
	armed    time.Time
	stopped  bool
	wake     chan struct{}
	ringWake chan struct{} // the io_uring thread's, once started (under mu)
	// bfd is the last state SetBFD gave each session (under mu), applied
	// to the core once Run has started it and carried over by Inherit.
	bfd     map[string]bool
	running bool // under mu: the core has been started
}

// NewScheduler builds a checker for every checker of vss. log receives a
// line per health change (nil: discard).
func NewScheduler(vss []*config.VirtualServer, log *slog.Logger, opts Options) (*Scheduler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Events == nil {
		return nil, errors.New("check: Options.Events is nil")
	}
	s := &Scheduler{log: log, opts: opts, core: NewCore(vss, opts.Rand), wake: make(chan struct{}, 1)}
	s.specs = s.core.Specs()
	for _, sp := range s.specs {
		if sp.Checker.BFD != nil {
			// A BFD_CHECK is told its session's state (SetBFD); it
			// never runs.
			s.checkers = append(s.checkers, nil)
			continue
		}
		ck, err := New(sp.Checker, sp.Target, opts.Env)
		if err != nil {
			return nil, fmt.Errorf("virtual server %s real server %s: %w", sp.VS.Name(), sp.Target.Addr, err)
		}
		s.checkers = append(s.checkers, ck)
	}
	if s.opts.Concurrency <= 0 {
		nofile, err := fdlimit.Current()
		if err != nil {
			return nil, fmt.Errorf("check: RLIMIT_NOFILE: %w", err)
		}
		s.opts.Concurrency = concurrencyFor(len(s.checkers), nofile)
	}
	return s, nil
}

// concurrencyFor is the default concurrency for n checkers under a
// descriptor limit of nofile: all of them, as keepalived runs every check
// at once (a fixed cap of 256 let only 1,072 of 2,000 never-answering
// servers be marked down within a minute), but no more than the
// descriptors left after fdReserve.
func concurrencyFor(n int, nofile uint64) int {
	budget := minConcurrency
	if nofile > fdReserve+minConcurrency {
		budget = int(min(nofile-fdReserve, math.MaxInt32))
	}
	return max(1, min(n, budget))
}

type done struct {
	id  ID
	res Result
	at  time.Time
}

// Run runs the checks until ctx ends. It returns only after every worker
// and every check it started has finished. The events of Start come first;
// on return, the omega shutdown events (Core.Stop) are delivered if the
// receiver takes them within a second.
//
// Run starts the checks of LaneMain on its workers; the TCP_CHECKs in
// LaneRing are started by the io_uring thread. Results are fed to the
// core where they arrive, so Run wakes only for its own due checks,
// events to deliver and a due time earlier than its timer.
func (s *Scheduler) Run(ctx context.Context) {
	// A check runs on a goroutine of its own once it gets a slot, so that
	// a scheduler sized for thousands of checks keeps no idle workers.
	slots := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()

	s.mu.Lock()
	s.stopped = false
	now := time.Now()
	s.events = append(s.events, s.core.Start(now)...)
	s.running = true
	for name, up := range s.bfd {
		s.events = append(s.events, s.core.SetBFD(now, name, up)...)
	}
	s.mu.Unlock()
	if ring := s.startRing(); ring != nil {
		defer ring.stop()
	}
	var pending []ID
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		next, armed := s.core.Next(LaneMain)
		timer.Stop()
		s.armed = time.Time{}
		if armed {
			d := batchDelay(time.Until(next))
			timer.Reset(d)
			s.armed = time.Now().Add(d)
		}
		var evc chan<- Event
		var ev Event
		if len(s.events) > 0 {
			evc, ev = s.opts.Events, s.events[0]
		}
		pending = append(pending, s.requeued...)
		s.requeued = nil
		s.mu.Unlock()
		var slotc chan struct{}
		if len(pending) > 0 {
			slotc = slots
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.stopped = true
			evs := append(s.events, s.core.Stop(time.Now())...)
			s.events = nil
			s.mu.Unlock()
			s.flush(evs)
			return
		case slotc <- struct{}{}:
			id := pending[0]
			pending = pending[1:]
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := s.checkers[id].Check(ctx)
				s.complete([]done{{id, r, time.Now()}})
				<-slots
			}()
		case evc <- ev:
			s.mu.Lock()
			s.events = s.events[1:] // only Run removes events
			s.mu.Unlock()
		case <-timer.C:
			s.mu.Lock()
			pending = append(pending, s.core.Due(LaneMain, time.Now())...)
			s.mu.Unlock()
		case <-s.wake:
		}
	}
}

// batchDelay rounds a wait up to a multiple of batchWindow, so that the
// checks due within the window start together.
func batchDelay(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + batchWindow - d%batchWindow
}

// startRing moves the TCP_CHECKs io_uring can run to LaneRing and starts
// its thread, unless PlainSockets is set or there are none; nil when not
// started (when the kernel cannot, logged).
func (s *Scheduler) startRing() *tcpRing {
	if s.opts.PlainSockets {
		return nil
	}
	jobs := map[ID]ringJob{}
	for id, c := range s.checkers {
		if t, ok := c.(*TCP); ok {
			if j, ok := t.ringJob(ID(id)); ok {
				jobs[ID(id)] = j
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	ring, err := startTCPRing(s, jobs)
	if err != nil {
		s.log.Info("TCP_CHECK runs on plain sockets", "reason", err)
		return nil
	}
	s.log.Info("TCP_CHECK runs through io_uring", "checkers", len(jobs))
	return ring
}

// complete feeds results to the core, queues the events and logs the
// health changes; it wakes Run when there are events or a check is now due
// before Run's timer.
func (s *Scheduler) complete(ds []done) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	n := len(s.events)
	for _, d := range ds {
		// log_all_failures (checker_log_all_failures): every failed
		// check is logged, the retries too, not only the one that takes
		// the server down (keepalived.conf(5)).
		if sp := s.specs[d.id]; !d.res.OK && sp.Checker.LogAll {
			s.log.Warn("check failed", "vs", sp.VS.Name(), "rs", sp.Target.Addr, "checker", sp.Checker.Type, "err", d.res.Err)
		}
		s.events = append(s.events, s.core.Complete(d.at, d.id, d.res)...)
	}
	evs := s.events[n:]
	next, ok := s.core.Next(LaneMain)
	wake := len(evs) > 0 || ok && (s.armed.IsZero() || next.Before(s.armed))
	s.logChanges(evs)
	s.mu.Unlock()
	if wake {
		s.poke()
	}
}

// logChanges logs the health changes among evs.
func (s *Scheduler) logChanges(evs []Event) {
	for _, e := range evs {
		s.log.Info("health change", "event", e.Kind, "vs", e.VS.Name(), "rs", rsName(e), "weight", e.Weight, "reason", e.Reason)
	}
}

// requeue takes back the TCP_CHECKs of a failed io_uring thread: those
// running are run again by the workers, the others go back to LaneMain.
func (s *Scheduler) requeue(running []ID, all map[ID]ringJob, err error) {
	s.log.Warn("io_uring failed: TCP_CHECK continues on plain sockets", "err", err)
	s.mu.Lock()
	for id := range all {
		s.core.SetLane(id, LaneMain)
	}
	s.requeued = append(s.requeued, running...)
	s.mu.Unlock()
	s.poke()
}

// flush delivers the last events, giving up after a second.
func (s *Scheduler) flush(queue []Event) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for i, e := range queue {
		select {
		case s.opts.Events <- e:
		case <-t.C:
			s.log.Warn("shutdown events dropped: receiver not reading", "dropped", len(queue)-i)
			return
		}
	}
}

func rsName(e Event) string {
	if e.RS == nil {
		return ""
	}
	return netip.AddrPortFrom(e.RS.IP, uint16(e.RS.Port)).String()
}

// SetBFD tells the BFD_CHECKs of session name whether it is Up.
func (s *Scheduler) SetBFD(name string, up bool) {
	s.mu.Lock()
	if s.bfd == nil {
		s.bfd = map[string]bool{}
	}
	s.bfd[name] = up
	var evs []Event
	if s.running && !s.stopped {
		evs = s.core.SetBFD(time.Now(), name, up)
		s.events = append(s.events, evs...)
		s.logChanges(evs)
	}
	s.mu.Unlock()
	if len(evs) > 0 {
		s.poke()
	}
}

// Suspend stops the checks of ha_suspend virtual servers (this director is
// not the VRRP master).
func (s *Scheduler) Suspend() {
	s.mu.Lock()
	s.core.Suspend()
	s.mu.Unlock()
	s.poke()
}

// Resume restarts them (this director became master).
func (s *Scheduler) Resume() {
	s.mu.Lock()
	s.core.Resume(time.Now())
	s.mu.Unlock()
	s.poke()
}

// Snapshot is the current health state, for the status API.
func (s *Scheduler) Snapshot() []VSStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.Snapshot()
}

func (s *Scheduler) poke() {
	s.mu.Lock()
	rw := s.ringWake
	s.mu.Unlock()
	for _, c := range []chan struct{}{s.wake, rw} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
