package check

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"tandem/internal/uring"
)

// batchWindow is how long the scheduler lets due checks gather before it
// starts them together. A check starts at most this late; in exchange
// thousands of checks a second cost a few hundred wake-ups instead of one
// each.
const batchWindow = 5 * time.Millisecond

// ringJob is one TCP_CHECK for the io_uring thread.
type ringJob struct {
	id      ID
	addr    netip.AddrPort
	timeout time.Duration
}

// ringJob returns the job for this check when io_uring can run it: no
// bindto, bind_port, bind_if, fwmark or IPv6 zone, which need system calls
// on the socket between its creation and its connect.
func (t *TCP) ringJob(id ID) (ringJob, bool) {
	c := t.cfg
	if c.BindTo.IsValid() || c.BindPort != 0 || c.BindIf != "" || c.FWMark != 0 || t.addr.Addr().Zone() != "" {
		return ringJob{}, false
	}
	return ringJob{id: id, addr: t.addr, timeout: timeout(c)}, true
}

// tcpRing runs the TCP_CHECKs of LaneRing through io_uring, from one
// goroutine locked to its OS thread that keeps its own time: when the
// next of its checks is due it takes the due checks from the core and
// starts them all in one call that opens, connects (under a linked
// timeout) and, later, closes each socket in a direct descriptor slot.
// While connects are in flight it waits in io_uring_enter; otherwise on a
// timer, so that an idle ring holds no thread in a system call. Run is not
// involved per check.
type tcpRing struct {
	s      *Scheduler
	jobs   map[ID]ringJob
	wake   chan struct{} // the core's times changed (Resume)
	quit   chan struct{}
	exited chan struct{}
}

// startTCPRing sets the ring up, with as many sockets at most in flight
// as the scheduler's concurrency (up to 4096), proves it with one connect to a
// loopback listener (a kernel whose io_uring mishandles a connect in
// progress fails here, not on real servers), moves the jobs' checkers to
// LaneRing and starts the thread. The error says why io_uring cannot be
// used.
func startTCPRing(s *Scheduler, jobs map[ID]ringJob) (*tcpRing, error) {
	e := &tcpRing{s: s, jobs: jobs, wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	// io_uring takes at most 32768 submission entries, four per slot.
	slots := min(s.opts.Concurrency, 4096)
	started := make(chan error, 1)
	go func() {
		// The ring is bound to this thread. The thread goes back to the
		// runtime once the ring is closed rather than exiting with the
		// goroutine: a child started earlier from it with a parent-death
		// signal (PR_SET_PDEATHSIG follows the thread) would be killed.
		runtime.LockOSThread()
		defer close(e.exited)
		defer runtime.UnlockOSThread()
		r, err := uring.New(uint32(4*slots), slots)
		if err == nil {
			err = selfTest(r)
			if err != nil {
				r.Close()
			}
		}
		started <- err
		if err == nil {
			e.loop(r)
		}
	}()
	if err := <-started; err != nil {
		<-e.exited
		return nil, err
	}
	s.mu.Lock()
	for id := range jobs {
		s.core.SetLane(id, LaneRing)
	}
	s.ringWake = e.wake
	s.mu.Unlock()
	e.wake <- struct{}{} // the thread looked at LaneRing before it had checks
	return e, nil
}

// selfTest connects once to a listener on 127.0.0.1 (skipped when there is
// no loopback address, as in a namespace whose lo is down).
func selfTest(r *uring.Ring) error {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil
	}
	defer l.Close()
	var res int32 = 1
	r.Connect(0, netip.MustParseAddrPort(l.Addr().String()), time.Second, 1)
	for deadline := time.Now().Add(2 * time.Second); res == 1 && time.Now().Before(deadline); {
		if err := r.Enter(1, 100*time.Millisecond); err != nil {
			return err
		}
		r.Reap(func(user uint64, v int32) {
			if user == 1 {
				res = v
			}
		})
	}
	r.CloseSlot(0)
	if err := r.Enter(0, 0); err != nil {
		return err
	}
	if res != 0 {
		return fmt.Errorf("%w: a loopback connect gave %v", uring.ErrUnsupported, errnoErr(res))
	}
	return nil
}

// stop ends the thread and waits for it; what is in flight is cancelled
// by the kernel when the ring closes.
func (e *tcpRing) stop() {
	close(e.quit)
	<-e.exited
}

type flight struct {
	busy  bool
	job   ringJob
	start time.Time
	err   error // the socket could not be made
}

func (e *tcpRing) loop(r *uring.Ring) {
	defer r.Close()
	free := make([]int, r.Slots())
	for i := range free {
		free[i] = len(free) - 1 - i
	}
	flights := make([]flight, r.Slots())
	var queue []ringJob
	var closed []int // slots whose close is queued: reused once submitted
	inFlight := 0
	sleep := time.NewTimer(time.Hour)
	defer sleep.Stop()
	for {
		select {
		case <-e.quit:
			return
		default:
		}
		now := time.Now()
		e.s.mu.Lock()
		var next time.Time
		armed := false
		if !e.s.stopped {
			for _, id := range e.s.core.Due(LaneRing, now) {
				queue = append(queue, e.jobs[id])
			}
			next, armed = e.s.core.Next(LaneRing)
		}
		e.s.mu.Unlock()
		for len(queue) > 0 && len(free) > 0 {
			s := free[len(free)-1]
			free = free[:len(free)-1]
			flights[s] = flight{busy: true, job: queue[0], start: now}
			r.Connect(s, queue[0].addr, queue[0].timeout, uint64(s)+1)
			queue = queue[1:]
			inFlight++
		}
		if err := r.Enter(0, 0); err != nil {
			e.fail(flights, queue, err)
			return
		}
		free = append(free, closed...)
		closed = closed[:0]
		now = time.Now()
		var results []done
		r.Reap(func(user uint64, res int32) {
			if user == 0 {
				return // a timeout's or a close's completion
			}
			s := int(user&^uring.SocketFailed) - 1
			f := &flights[s]
			if user&uring.SocketFailed != 0 {
				f.err = fmt.Errorf("socket: %w", errnoErr(res))
				return
			}
			results = append(results, done{id: f.job.id, at: now, res: f.result(res, now)})
			*f = flight{}
			r.CloseSlot(s)
			closed = append(closed, s)
			inFlight--
		})
		if len(results) > 0 {
			e.s.complete(results)
		}
		wait := time.Hour
		if armed {
			wait = batchDelay(next.Sub(now))
		}
		switch {
		case len(closed) > 0 || len(queue) > 0 && len(free) > 0:
			continue // submit the closes before sleeping; start what waits
		case inFlight > 0:
			// Connects under way: wait in the kernel for the first to
			// end, or for the next due time.
			if err := r.Enter(1, wait); err != nil {
				e.fail(flights, queue, err)
				return
			}
			continue
		}
		sleep.Reset(wait)
		select {
		case <-sleep.C:
		case <-e.wake:
			sleep.Stop()
		case <-e.quit:
			return
		}
	}
}

// result is the outcome of the connect that completed with res.
func (f *flight) result(res int32, now time.Time) Result {
	err := f.err
	if err == nil && res != 0 {
		err = errnoErr(res)
		if errors.Is(err, syscall.ECANCELED) {
			err = fmt.Errorf("timeout after %v", f.job.timeout)
		}
	}
	if err != nil {
		err = fmt.Errorf("connect %s: %w", f.job.addr, err)
	}
	return Result{OK: err == nil, Err: err, Latency: now.Sub(f.start)}
}

// fail hands the running checks back to the workers and the others to
// LaneMain: the ring failed, which cannot happen short of a kernel or
// memory failure.
func (e *tcpRing) fail(flights []flight, queue []ringJob, err error) {
	var ids []ID
	for _, f := range flights {
		if f.busy {
			ids = append(ids, f.job.id)
		}
	}
	for _, j := range queue {
		ids = append(ids, j.id)
	}
	e.s.requeue(ids, e.jobs, err)
}

// errnoErr turns a negative errno from a completion into an error.
func errnoErr(res int32) error {
	return syscall.Errno(-res)
}
