package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"tandem/internal/config"
)

// DefaultConcurrency is how many checks a Scheduler runs at once unless
// told otherwise. Each running check holds at most one socket or one
// process group, so it also bounds the checkers' sockets and processes.
const DefaultConcurrency = 256

// Options configure a Scheduler.
type Options struct {
	// Concurrency bounds the checks running at once (default
	// DefaultConcurrency). A check due while all workers are busy waits
	// for one, in due order.
	Concurrency int
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

	mu   sync.Mutex
	core *Core
	wake chan struct{}
}

// NewScheduler builds a checker for every checker of vss. log receives a
// line per health change (nil: discard).
func NewScheduler(vss []*config.VirtualServer, log *slog.Logger, opts Options) (*Scheduler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Events == nil {
		return nil, errors.New("check: Options.Events is nil")
	}
	s := &Scheduler{log: log, opts: opts, core: NewCore(vss, opts.Rand), wake: make(chan struct{}, 1)}
	for _, sp := range s.core.Specs() {
		ck, err := New(sp.Checker, sp.Target, opts.Env)
		if err != nil {
			return nil, fmt.Errorf("virtual server %s real server %s: %w", sp.VS.Name(), sp.Target.Addr, err)
		}
		s.checkers = append(s.checkers, ck)
	}
	return s, nil
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
func (s *Scheduler) Run(ctx context.Context) {
	jobs := make(chan ID)
	results := make(chan done)
	var wg sync.WaitGroup
	for range min(s.opts.Concurrency, max(len(s.checkers), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				r := s.checkers[id].Check(ctx)
				select {
				case results <- done{id, r, time.Now()}:
				case <-ctx.Done():
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)

	s.mu.Lock()
	queue := s.core.Start(time.Now())
	s.mu.Unlock()
	var pending []ID
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		next, armed := s.core.Next()
		s.mu.Unlock()
		timer.Stop()
		if armed {
			timer.Reset(time.Until(next))
		}
		var jobc chan ID
		var job ID
		if len(pending) > 0 {
			jobc, job = jobs, pending[0]
		}
		var evc chan<- Event
		var ev Event
		if len(queue) > 0 {
			evc, ev = s.opts.Events, queue[0]
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			queue = append(queue, s.core.Stop(time.Now())...)
			s.mu.Unlock()
			s.flush(queue)
			return
		case jobc <- job:
			pending = pending[1:]
		case evc <- ev:
			queue = queue[1:]
		case d := <-results:
			s.mu.Lock()
			evs := s.core.Complete(d.at, d.id, d.res)
			s.mu.Unlock()
			for _, e := range evs {
				s.log.Info("health change", "event", e.Kind, "vs", e.VS.Name(), "rs", rsName(e), "weight", e.Weight, "reason", e.Reason)
			}
			queue = append(queue, evs...)
		case <-timer.C:
			s.mu.Lock()
			pending = append(pending, s.core.Due(time.Now())...)
			s.mu.Unlock()
		case <-s.wake:
		}
	}
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
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
