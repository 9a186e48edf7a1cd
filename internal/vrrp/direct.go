package vrrp

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/clock"
	"tandem/internal/netio"
)

// directConn is a Conn the loop can wait on and read itself (netio.Conn).
type directConn interface {
	FD() (int, error)
	RecvNow(buf []byte) (netio.Packet, bool, error)
}

// direct is the loop's own wait, for a loop on a real-time thread
// (vrrp_rt_priority, max_auto_priority): raising one thread helps only if
// nothing on the path from a packet or a timer to that thread runs on
// another. With the Go runtime's timers, poller and reader goroutines,
// the wake-ups of a timer or an advert pass through threads of normal
// priority, which a loaded machine starves (measured: bench/failover's
// stress case makes as many false takeovers with the loop thread raised
// as without). So the loop waits in ppoll(2) itself, on its sockets and an
// eventfd, until the nearest timer deadline; reads its sockets itself
// (RecvNow); and fires its timers itself. Everything else (trackers,
// reloads, gratuitous ARP pacing) still comes as events, and pokes the
// eventfd.
type direct struct {
	efd int
	// mu guards closed against pokes racing the close: a poke after it
	// must not write to a descriptor number reused since.
	mu     sync.RWMutex
	closed bool
	fds    []unix.PollFd
	buf    []byte
	// failed logs a socket's read error once.
	failed map[*instance]bool
}

// newDirect returns the direct wait if the loop can use it: the real
// clock, and sockets it can read itself; nil otherwise.
func (e *Engine) newDirect() *direct {
	if e.clock != clock.Real {
		return nil
	}
	for _, in := range e.insts {
		if _, ok := in.conn.(directConn); !ok {
			return nil
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		e.log.Warn("VRRP loop: no eventfd; timers and adverts reach the loop through the Go runtime", "err", err)
		return nil
	}
	e.log.Info("VRRP loop waits on its sockets and timers itself, on its own thread")
	return &direct{efd: efd, buf: make([]byte, 65536), failed: map[*instance]bool{}}
}

// poke wakes the loop; any goroutine may call it.
func (d *direct) poke() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.closed {
		one := [8]byte{1} // any non-zero count wakes the reader
		unix.Write(d.efd, one[:])
	}
}

func (d *direct) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	unix.Close(d.efd)
}

// readsDirect registers in's socket with the direct loop, if there is
// one and it can read it; otherwise in gets a reader goroutine.
func (e *Engine) readsDirect(in *instance) bool {
	dc, ok := in.conn.(directConn)
	if e.direct.Load() == nil || !ok {
		return false
	}
	fd, err := dc.FD()
	if err != nil {
		return false
	}
	in.direct, in.fd = true, fd
	return true
}

// loopDirect is loop's body on a direct loop: wait, read every socket,
// handle the events posted, fire the timers due, again.
func (e *Engine) loopDirect(ctx context.Context, d *direct, delayed clock.Timer) error {
	go func() {
		for {
			select {
			case <-ctx.Done():
				e.send(loopEvent{stop: true})
				return
			case r := <-e.reloads:
				e.send(loopEvent{reload: &r})
			}
		}
	}()
	for {
		d.wait(e.insts, e.untilNextTimer())
		e.readDirect(d)
		for drained := false; !drained; {
			select {
			case le := <-e.events:
				switch {
				case le.stop:
					return e.end(delayed)
				case le.reload != nil:
					le.reload.done <- e.reload(le.reload.cfg)
				default:
					e.received(le)
				}
			default:
				drained = true
			}
		}
		e.fireDue()
	}
}

// untilNextTimer is how long until the nearest instance timer; < 0: none.
func (e *Engine) untilNextTimer() time.Duration {
	var next time.Time
	for _, in := range e.insts {
		if !in.closed && !in.deadline.IsZero() && (next.IsZero() || in.deadline.Before(next)) {
			next = in.deadline
		}
	}
	if next.IsZero() {
		return -1
	}
	return max(next.Sub(e.clock.Now()), 0)
}

// wait blocks in ppoll(2) until a socket of insts is readable, a poke
// comes, or timeout (< 0: none) passes.
func (d *direct) wait(insts []*instance, timeout time.Duration) {
	d.fds = append(d.fds[:0], unix.PollFd{Fd: int32(d.efd), Events: unix.POLLIN})
	for _, in := range insts {
		if in.direct && !in.closed {
			d.fds = append(d.fds, unix.PollFd{Fd: int32(in.fd), Events: unix.POLLIN})
		}
	}
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(timeout.Nanoseconds())
		ts = &t
	}
	// EINTR (the Go runtime's preemption signals) just ends the wait
	// early: the loop looks at everything and waits again.
	unix.Ppoll(d.fds, ts, nil)
	var drain [8]byte
	unix.Read(d.efd, drain[:])
}

// readDirect reads and handles every packet queued on the direct sockets.
func (e *Engine) readDirect(d *direct) {
	for _, in := range slices.Clone(e.insts) {
		dc, ok := in.conn.(directConn)
		for ok && in.direct && !in.closed {
			p, got, err := dc.RecvNow(d.buf)
			if err != nil && !errors.Is(err, unix.EBADF) && !d.failed[in] {
				d.failed[in] = true
				in.log.Error("vrrp receive failed", "err", err)
			}
			if err != nil || !got {
				break
			}
			e.dispatch(e.packetEvent(in, p))
		}
	}
}

// fireDue fires the instance timers whose deadline has come.
func (e *Engine) fireDue() {
	now := e.clock.Now()
	for _, in := range slices.Clone(e.insts) {
		if in.closed || in.deadline.IsZero() || now.Before(in.deadline) {
			continue
		}
		// Fired: handling it arms the next timer, if any; a held expiry
		// (holdExpiry) sets the deadline back, to come back at the next
		// turn of the loop, its lateness counted once.
		due := in.deadline
		in.deadline = time.Time{}
		held := in.firedGen == in.gen
		in.firedGen = in.gen
		e.dispatch(loopEvent{inst: in, ev: TimerFired{Gen: in.gen}, due: due, held: held})
	}
}
