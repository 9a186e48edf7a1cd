package bfd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is the error of a call on an engine after Close.
var ErrClosed = errors.New("bfd: engine closed")

// Options tunes an Engine.
type Options struct {
	// OnThread runs on the engine's OS thread before it opens any
	// socket. That thread is locked to the engine's goroutine for its
	// whole life and ends with it, so whatever OnThread changes stays
	// with the engine: it is where bfd_rt_priority (SCHED_RR) and
	// bfd_no_swap belong, and where tests enter a network namespace. An
	// error makes New fail.
	OnThread func() error
	// Late, when set, is called on the engine's thread with how late
	// the latest-running timer of a loop pass ran (its due time to the
	// time it ran): the input of keepalived's max_auto_priority
	// escalation, as vrrp's realtime has it.
	Late func(by time.Duration)
	// EventBuffer is the capacity of the Events channel (default 1024).
	// When the reader falls behind, further events wait, in order,
	// inside the engine.
	EventBuffer int
}

// Engine runs BFD sessions: one goroutine, on a locked OS thread, owns
// every session and socket; the methods hand it work and wait for the
// answer. It implements Sessions.
type Engine struct {
	log *slog.Logger
	// wake is an eventfd that tells the loop a request or Close is
	// waiting; wakeMu keeps it from being written once closed (its
	// number could by then name another file).
	wakeMu     sync.RWMutex
	wake       int
	wakeClosed bool
	reqs       chan func()
	quit       chan struct{}
	done       chan struct{}
	events     chan Event
	once       sync.Once

	// Owned by the loop goroutine.
	sessions  map[string]*entry
	byDisc    map[uint32]*entry
	listeners map[listenKey]*listener
	pending   []Event
	rng       *rand.Rand
	late      func(time.Duration)
}

var _ Sessions = (*Engine)(nil)

type listenKey struct{ v6, multihop bool }

// entry is a running session with its socket and counters.
type entry struct {
	s                   *session
	tx                  *sender
	sent, recv, dropped uint64
	lastDropLog         time.Time
}

// New starts an engine with no sessions.
func New(log *slog.Logger, opts Options) (*Engine, error) {
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("bfd: eventfd: %w", err)
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 1024
	}
	e := &Engine{
		log:       log,
		wake:      wake,
		reqs:      make(chan func(), 16),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		events:    make(chan Event, opts.EventBuffer),
		sessions:  map[string]*entry{},
		byDisc:    map[uint32]*entry{},
		listeners: map[listenKey]*listener{},
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		late:      opts.Late,
	}
	started := make(chan error, 1)
	go e.run(opts.OnThread, started)
	if err := <-started; err != nil {
		<-e.done
		return nil, err
	}
	return e, nil
}

// Events delivers every state change in order; Close closes it.
func (e *Engine) Events() <-chan Event { return e.events }

// OnThread runs fn on the engine's locked OS thread (bfd.Sessions).
func (e *Engine) OnThread(fn func() error) error {
	var err error
	if derr := e.do(func() { err = fn() }); derr != nil {
		return derr
	}
	return err
}

// do runs fn on the engine's goroutine and waits for it.
func (e *Engine) do(fn func()) error {
	ran := make(chan struct{})
	select {
	case e.reqs <- func() { fn(); close(ran) }:
	case <-e.done:
		return ErrClosed
	}
	e.kick()
	select {
	case <-ran:
		return nil
	case <-e.done:
		return ErrClosed
	}
}

func (e *Engine) kick() {
	e.wakeMu.RLock()
	defer e.wakeMu.RUnlock()
	if !e.wakeClosed {
		one := [8]byte{1}
		unix.Write(e.wake, one[:])
	}
}

func (e *Engine) closeWake() {
	e.wakeMu.Lock()
	defer e.wakeMu.Unlock()
	e.wakeClosed = true
	unix.Close(e.wake)
}

// Apply makes the running sessions those of cfgs (see Sessions).
func (e *Engine) Apply(cfgs []Config) error {
	seen := map[string]bool{}
	// A packet with Your Discriminator zero finds its session by these
	// (RFC 5880 section 6.8.6): two sessions must not share them.
	type peerKey struct {
		nb, src  netip.Addr
		multihop bool
	}
	peers := map[peerKey]string{}
	for _, c := range cfgs {
		if err := validate(c); err != nil {
			return err
		}
		if seen[c.Name] {
			return fmt.Errorf("bfd %s: defined twice", c.Name)
		}
		seen[c.Name] = true
		k := peerKey{c.Neighbor, c.Source, c.Multihop}
		if other, dup := peers[k]; dup {
			return fmt.Errorf("bfd %s: same neighbor %s, source and hop mode as %s", c.Name, c.Neighbor, other)
		}
		peers[k] = c.Name
	}
	var err error
	if derr := e.do(func() { err = e.apply(cfgs) }); derr != nil {
		return derr
	}
	return err
}

func validate(c Config) error {
	switch {
	case c.Name == "":
		return errors.New("bfd: session without a name")
	case !c.Neighbor.IsValid():
		return fmt.Errorf("bfd %s: no neighbor address", c.Name)
	case c.Source.IsValid() && c.Source.Unmap().Is4() != c.Neighbor.Unmap().Is4():
		return fmt.Errorf("bfd %s: source %s and neighbor %s are of different families", c.Name, c.Source, c.Neighbor)
	case c.Multiplier == 0:
		return fmt.Errorf("bfd %s: multiplier 0", c.Name)
	case c.MinTx <= 0:
		return fmt.Errorf("bfd %s: min_tx must be positive", c.Name)
	}
	return nil
}

// restartNeeded: a session keeps its state across a change of timers,
// passive, TTL and max_hops, but not of its addresses or hop mode.
func restartNeeded(a, b Config) bool {
	return a.Neighbor != b.Neighbor || a.Source != b.Source || a.Multihop != b.Multihop
}

func (e *Engine) apply(cfgs []Config) error {
	now := time.Now()
	want := map[string]Config{}
	for _, c := range cfgs {
		want[c.Name] = c
	}
	for name, en := range e.sessions {
		if c, ok := want[name]; !ok || restartNeeded(en.s.cfg, c) {
			e.stop(en, now)
		}
	}
	var errs []error
	for _, c := range cfgs {
		en := e.sessions[c.Name]
		if en == nil {
			if err := e.start(c, now); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if en.s.cfg == c {
			continue
		}
		if ttlOf(c) != ttlOf(en.s.cfg) {
			if err := en.tx.setTTL(ttlOf(c), c.Neighbor.Unmap().Is6()); err != nil {
				errs = append(errs, fmt.Errorf("bfd %s: %w", c.Name, err))
			}
		}
		en.s.Reconfigure(c)
		e.log.Info("bfd session reconfigured", "bfd", c.Name, "min_tx", c.MinTx, "min_rx", c.MinRx, "multiplier", c.Multiplier)
	}
	e.closeUnusedListeners()
	return errors.Join(errs...)
}

func (e *Engine) start(c Config, now time.Time) error {
	key := listenKey{v6: c.Neighbor.Unmap().Is6(), multihop: c.Multihop}
	if e.listeners[key] == nil {
		l, err := openListener(key.v6, key.multihop)
		if err != nil {
			return fmt.Errorf("bfd %s: %w", c.Name, err)
		}
		e.listeners[key] = l
	}
	tx, err := openSender(c, e.rng)
	if err != nil {
		return err
	}
	disc := e.rng.Uint32()
	for disc == 0 || e.byDisc[disc] != nil {
		disc = e.rng.Uint32()
	}
	en := &entry{s: newSession(c, disc, e.rng, now), tx: tx}
	e.sessions[c.Name], e.byDisc[disc] = en, en
	e.log.Info("bfd session started", "bfd", c.Name, "neighbor", c.Neighbor, "local", tx.local, "multihop", c.Multihop,
		"min_tx", c.MinTx, "min_rx", c.MinRx, "multiplier", c.Multiplier, "passive", c.Passive)
	return nil
}

// stop sends AdminDown (RFC 5880 section 6.8.16) and frees the session.
func (e *Engine) stop(en *entry, now time.Time) {
	e.transmit(en, en.s.AdminDown(now))
	e.collect(en)
	en.tx.close()
	delete(e.sessions, en.s.cfg.Name)
	delete(e.byDisc, en.s.localDisc)
	e.log.Info("bfd session stopped", "bfd", en.s.cfg.Name)
}

func (e *Engine) closeUnusedListeners() {
	for k, l := range e.listeners {
		used := false
		for _, en := range e.sessions {
			used = used || (listenKey{v6: en.s.cfg.Neighbor.Unmap().Is6(), multihop: en.s.cfg.Multihop} == k)
		}
		if !used {
			unix.Close(l.fd)
			delete(e.listeners, k)
		}
	}
}

// Status reports every session, sorted by name.
func (e *Engine) Status() []Status {
	var out []Status
	if e.do(func() {
		for _, en := range e.sessions {
			s := en.s
			out = append(out, Status{
				Name: s.cfg.Name, Neighbor: s.cfg.Neighbor, Source: en.tx.local.Addr(),
				State: s.state, RemoteDiag: s.remoteDiag, LocalDiag: s.localDiag,
				Detection: s.detection(), TxInterval: s.txInterval(),
				Flaps: s.flaps, LastChange: s.lastChange, LateDetections: s.lateDetect,
				Sent: en.sent, Received: en.recv, Dropped: en.dropped,
			})
		}
	}) != nil {
		return nil
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Close sends AdminDown on every session, releases the sockets, closes
// the Events channel and waits for the engine's goroutine to end.
func (e *Engine) Close() error {
	e.once.Do(func() {
		close(e.quit)
		e.kick()
	})
	<-e.done
	return nil
}

// run is the engine's loop, on its own locked OS thread: read what the
// sockets hold, run the timers that are due, deliver events, and sleep in
// ppoll until the next timer, a packet or a request.
func (e *Engine) run(onThread func() error, started chan<- error) {
	// Never unlocked: if onThread changed the thread (its namespace, its
	// scheduling class), the thread must end with the goroutine rather
	// than go back to Go's pool.
	runtime.LockOSThread()
	defer close(e.done)
	defer e.closeWake()
	if onThread != nil {
		if err := onThread(); err != nil {
			started <- fmt.Errorf("bfd: engine thread: %w", err)
			return
		}
	}
	started <- nil
	buf, oob := make([]byte, 512), make([]byte, oobSize)
	var fds []unix.PollFd
	for {
		select {
		case <-e.quit:
			e.shutdown()
			return
		default:
		}
		e.serveRequests()
		e.receive(buf, oob)
		next := e.runTimers()
		e.flushEvents()
		fds = fds[:0]
		fds = append(fds, unix.PollFd{Fd: int32(e.wake), Events: unix.POLLIN})
		for _, l := range e.listeners {
			fds = append(fds, unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN})
		}
		var ts *unix.Timespec
		if len(e.pending) > 0 {
			// The reader is behind: try again soon.
			next = minDue(next, time.Now().Add(10*time.Millisecond))
		}
		if !next.IsZero() {
			t := unix.NsecToTimespec(max(time.Until(next), 0).Nanoseconds())
			ts = &t
		}
		if _, err := unix.Ppoll(fds, ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
			e.log.Error("bfd: ppoll", "err", err)
			time.Sleep(time.Millisecond)
		}
		if fds[0].Revents != 0 {
			var b [8]byte
			unix.Read(e.wake, b[:])
		}
	}
}

func minDue(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func (e *Engine) serveRequests() {
	for {
		select {
		case fn := <-e.reqs:
			fn()
		default:
			return
		}
	}
}

// receive reads every listener until it is empty. It runs before the
// timers, so that packets that arrived while the loop was late count,
// with their kernel arrival time, before a detection time is judged.
func (e *Engine) receive(buf, oob []byte) {
	for _, l := range e.listeners {
		for {
			n, m, err := l.read(buf, oob)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					e.log.Debug("bfd: read", "err", err)
				}
				break
			}
			e.handle(l, buf[:n], m)
		}
	}
}

// arrival converts a kernel timestamp (wall clock) into a time on the
// process's monotonic clock: now less the packet's age.
func arrival(stamp time.Time) time.Time {
	now := time.Now()
	if stamp.IsZero() {
		return now
	}
	age := now.Round(0).Sub(stamp)
	return now.Add(-max(age, 0))
}

func (e *Engine) handle(l *listener, b []byte, m rxMeta) {
	p, err := Decode(b)
	if err != nil {
		if en := e.lookupAddr(l, m); en != nil {
			e.drop(en, err)
		} else {
			e.log.Debug("bfd: packet dropped", "from", m.src, "err", err)
		}
		return
	}
	var en *entry
	if p.YourDisc != 0 {
		// Your Discriminator selects the session (RFC 5880 section
		// 6.8.6); the source must still be its neighbor.
		en = e.byDisc[p.YourDisc]
		if en != nil && (en.s.cfg.Neighbor.WithZone("").Unmap() != m.src || en.s.cfg.Multihop != l.multihop) {
			en = nil
		}
	} else {
		en = e.lookupAddr(l, m)
	}
	if en == nil {
		e.log.Debug("bfd: packet dropped", "from", m.src, "multihop", l.multihop,
			"err", dropf(DropNoSession, "your discriminator %#x", p.YourDisc))
		return
	}
	if !ttlOK(en.s.cfg, m.ttl) {
		e.drop(en, dropf(DropTTL, "ttl %d, want at least %d", m.ttl, ttlOf(en.s.cfg)-int(en.s.cfg.MaxHops)))
		return
	}
	if err := en.s.Receive(p, arrival(m.stamp)); err != nil {
		e.drop(en, err)
		return
	}
	en.recv++
	e.collect(en)
}

// lookupAddr finds the session of a packet by its addresses: the
// neighbor it came from, the hop mode of the port it came to, the source
// address when the session has one and the interface when the neighbor
// is link-local with a zone.
func (e *Engine) lookupAddr(l *listener, m rxMeta) *entry {
	for _, en := range e.sessions {
		c := en.s.cfg
		if c.Neighbor.WithZone("").Unmap() == m.src && c.Multihop == l.multihop && (!c.Source.IsValid() || c.Source.WithZone("").Unmap() == m.dst) &&
			(en.tx.scope == 0 || int(en.tx.scope) == m.ifindex) {
			return en
		}
	}
	return nil
}

func (e *Engine) drop(en *entry, err error) {
	en.dropped++
	// One line per second at most: a flood of bad packets must not
	// flood the log.
	if now := time.Now(); now.Sub(en.lastDropLog) >= time.Second {
		en.lastDropLog = now
		e.log.Warn("bfd: packet dropped", "bfd", en.s.cfg.Name, "err", err, "dropped", en.dropped)
	}
}

// runTimers runs every session whose timer is due and returns the
// earliest next deadline.
func (e *Engine) runTimers() time.Time {
	now := time.Now()
	var next time.Time
	var late time.Duration
	for _, en := range e.sessions {
		if due := en.s.Due(); !due.IsZero() && !due.After(now) {
			late = max(late, now.Sub(due))
			e.transmit(en, en.s.Run(now))
			e.collect(en)
		}
		if due := en.s.Due(); !due.IsZero() {
			next = minDue(next, due)
		}
	}
	if e.late != nil && late > 0 {
		e.late(late)
	}
	return next
}

func (e *Engine) transmit(en *entry, p *Packet) {
	if p == nil {
		return
	}
	b, err := p.Append(make([]byte, 0, headerLen))
	if err == nil {
		err = en.tx.send(b)
	}
	if err != nil {
		// ECONNREFUSED comes back after an ICMP port unreachable from a
		// neighbor that is not listening (yet): expected, not counted.
		if !errors.Is(err, unix.ECONNREFUSED) {
			e.log.Debug("bfd: send", "bfd", en.s.cfg.Name, "err", err)
		}
		return
	}
	en.sent++
}

func (e *Engine) collect(en *entry) {
	for _, ev := range en.s.takeEvents() {
		lvl := slog.LevelInfo
		if ev.From == Up {
			lvl = slog.LevelWarn
		}
		e.log.Log(context.Background(), lvl, "bfd session state", "bfd", ev.Name, "from", ev.From, "to", ev.To, "diag", ev.Diag,
			"neighbor", ev.Neighbor, "detection", ev.Detection)
		e.pending = append(e.pending, ev)
	}
}

func (e *Engine) flushEvents() {
	for len(e.pending) > 0 {
		select {
		case e.events <- e.pending[0]:
			e.pending = e.pending[1:]
		default:
			return
		}
	}
}

// shutdown sends AdminDown on every session, closes every socket and the
// Events channel. Requests still queued find the engine closed.
func (e *Engine) shutdown() {
	now := time.Now()
	for _, en := range e.sessions {
		e.stop(en, now)
	}
	e.closeUnusedListeners()
	e.flushEvents()
	if len(e.pending) > 0 {
		e.log.Warn("bfd: events not read at close", "dropped", len(e.pending))
	}
	close(e.events)
}
