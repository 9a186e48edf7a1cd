package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"tandem/internal/api"
	"tandem/internal/bfd"
	"tandem/internal/config"
	"tandem/internal/realtime"
	"tandem/internal/track"
)

// errNoBFD is a track_bfd tracker built while no BFD engine runs: the
// engine starts before the trackers whenever a bfd_instance exists.
var errNoBFD = errors.New("track_bfd: the BFD engine is not running")

// startBFD is the BFD engine tandem run uses (Options.NewBFD nil).
func startBFD(log *slog.Logger) (bfd.Sessions, error) {
	e, err := bfd.New(log, bfd.Options{})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// bfdConfigs is the sessions of cfg as the engine takes them.
func bfdConfigs(cfg *config.Config) []bfd.Config {
	out := make([]bfd.Config, 0, len(cfg.BFDInstances))
	for _, b := range cfg.BFDInstances {
		// max_hops -1 is keepalived's "not checked", stored there as
		// UCHAR_MAX (bfd_scheduler.c), which bfd.Config.MaxHops means too.
		hops := uint8(255)
		if b.MaxHops >= 0 {
			hops = uint8(b.MaxHops)
		}
		out = append(out, bfd.Config{
			Name: b.Name, Neighbor: b.Neighbor, Source: b.Source,
			MinRx: time.Duration(b.MinRx), MinTx: time.Duration(b.MinTx), IdleTx: time.Duration(b.IdleTx),
			Multiplier: uint8(b.Multiplier), Passive: b.Passive, TTL: uint8(b.TTL), MaxHops: hops, Multihop: b.Multihop,
		})
	}
	return out
}

// bfdHub holds the daemon's BFD sessions and hands each state change to
// what follows the session: track_bfd trackers (subscribe), the VRRP
// instances' fast_failover_bfd (peerDown) and BFD_CHECK (checks).
type bfdHub struct {
	s   bfd.Sessions
	log *slog.Logger
	// peerDown is the VRRP engine's PeerDown; checks gives a session's
	// state to the health checks (called under mu). Both are set before
	// run and not after.
	peerDown func(session string, peer netip.Addr)
	checks   func(session string, up bool)
	done     chan struct{}

	mu sync.Mutex // up and subs; held while calling checks
	// up is each session's last known state (absent: not Up).
	up   map[string]bool
	subs map[string][]chan bool
}

func newBFDHub(s bfd.Sessions, log *slog.Logger) *bfdHub {
	return &bfdHub{s: s, log: log, up: map[string]bool{}, subs: map[string][]chan bool{}, done: make(chan struct{})}
}

// run applies the sessions' events until the engine closes its channel.
func (h *bfdHub) run() {
	defer close(h.done)
	for ev := range h.s.Events() {
		h.handle(ev)
	}
}

// handle gives one state change to every follower of its session. A
// session that goes from Up to Down lost its neighbor: fast_failover_bfd
// acts on that only (not on a Down that was never Up, nor on AdminDown,
// which is a session stopped on purpose, RFC 5880 section 6.8.16).
func (h *bfdHub) handle(ev bfd.Event) {
	up := ev.To == bfd.Up
	h.log.Info("BFD session changed", "session", ev.Name, "neighbor", ev.Neighbor, "from", ev.From.String(), "to", ev.To.String(), "diag", ev.Diag)
	h.mu.Lock()
	h.up[ev.Name] = up
	for _, c := range h.subs[ev.Name] {
		latest(c, up)
	}
	if h.checks != nil {
		h.checks(ev.Name, up)
	}
	h.mu.Unlock()
	if ev.From == bfd.Up && ev.To == bfd.Down && h.peerDown != nil {
		h.peerDown(ev.Name, ev.Neighbor)
	}
}

// latest puts v in the one-slot channel c, replacing what the reader has
// not taken yet: a follower needs the session's state, not its history.
func latest(c chan bool, v bool) {
	select {
	case <-c:
	default:
	}
	c <- v
}

// subscribe returns a channel holding session's current state at once
// and each later one; cancel ends the subscription.
func (h *bfdHub) subscribe(session string) (<-chan bool, func()) {
	c := make(chan bool, 1)
	h.mu.Lock()
	c <- h.up[session]
	h.subs[session] = append(h.subs[session], c)
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		subs := h.subs[session]
		for i, s := range subs {
			if s == c {
				h.subs[session] = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
	}
}

// replay gives to every session's last known state, for health checks
// that start after the sessions did. It runs under the hub's lock, as
// handle gives checks each change, so a change is never overtaken by an
// older state.
func (h *bfdHub) replay(to func(session string, up bool)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.up {
		to(k, v)
	}
}

// close stops the sessions (AdminDown to every neighbor) and waits for
// their last events.
func (h *bfdHub) close() error {
	err := h.s.Close()
	<-h.done
	return err
}

// bfdTracker is a track_bfd tracker: the session's state as a
// track.Update. keepalived counts a session as down until it is first
// seen Up (vrrp_track.c initialise_track_bfd_state: bfd_up starts
// false), so the first Update, sent at once, is the state the hub knows.
type bfdTracker struct {
	hub  *bfdHub
	name string
}

func (t *bfdTracker) Run(ctx context.Context, out chan<- track.Update) error {
	c, cancel := t.hub.subscribe(t.name)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case up := <-c:
			select {
			case out <- track.Update{Kind: track.KindBFD, Name: t.name, OK: up}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// applyBFD makes the running sessions cfg's: at start (old nil) and on a
// reload whose config.Diff changes a bfd_instance, never otherwise. The
// engine is started for the first configuration that has sessions.
func (d *Daemon) applyBFD(old, cfg *config.Config) error {
	if hub := d.bfdHub(); hub != nil && old != nil && !old.Global.BFDThread.Equal(cfg.Global.BFDThread) {
		d.scheduleBFD(hub.s, cfg.Global.BFDThread)
	}
	if old != nil && !slices.ContainsFunc(config.Diff(old, cfg).BFDInstances, func(c config.Delta[*config.BFDInstance]) bool {
		return c.Change != config.Unchanged
	}) {
		return nil
	}
	hub := d.bfdHub()
	if hub == nil {
		if len(cfg.BFDInstances) == 0 {
			return nil
		}
		newBFD := d.opts.NewBFD
		if newBFD == nil {
			newBFD = startBFD
		}
		s, err := newBFD(d.opts.Log)
		if err != nil {
			return fmt.Errorf("bfd: %w", err)
		}
		d.scheduleBFD(s, cfg.Global.BFDThread)
		hub = newBFDHub(s, d.opts.Log)
		hub.peerDown = d.bfdPeerDown
		hub.checks = d.bfdCheck
		go hub.run()
		d.mu.Lock()
		d.bfd = hub
		d.mu.Unlock()
	}
	if err := hub.s.Apply(bfdConfigs(cfg)); err != nil {
		return fmt.Errorf("bfd: %w", err)
	}
	return nil
}

// bfdPeerDown is a session gone from Up to Down: the VRRP instances'
// fast_failover_bfd and the BGP sessions that name it hear it.
func (d *Daemon) bfdPeerDown(session string, peer netip.Addr) {
	d.engine.PeerDown(session, peer)
	d.bgp.bfdDown(session)
}

// bfdHub is the running sessions, nil if none were ever configured.
func (d *Daemon) bfdHub() *bfdHub {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bfd
}

// bfdCheck gives a session's state to the BFD_CHECKs of the running
// balancer.
func (d *Daemon) bfdCheck(session string, up bool) {
	if bal := d.balancer(); bal != nil {
		bal.mu.Lock()
		sched := bal.sched
		bal.mu.Unlock()
		sched.SetBFD(session, up)
	}
}

// closeBFD stops the sessions, if any ran.
func (d *Daemon) closeBFD() {
	if hub := d.bfdHub(); hub != nil {
		if err := hub.close(); err != nil {
			d.opts.Log.Warn("BFD sessions not closed cleanly", "err", err)
		}
	}
}

// bfdStatus is the sessions' part of the status document (nil: none).
func (d *Daemon) bfdStatus() []api.BFDSessionStatus {
	hub := d.bfdHub()
	if hub == nil {
		return nil
	}
	var out []api.BFDSessionStatus
	for _, s := range hub.s.Status() {
		b := api.BFDSessionStatus{Name: s.Name, Neighbor: s.Neighbor.String(), State: s.State.String(),
			LocalDiag: s.LocalDiag, RemoteDiag: s.RemoteDiag, Detection: s.Detection.Seconds(), TxInterval: s.TxInterval.Seconds(),
			Flaps: s.Flaps, LastChange: s.LastChange, LateDetections: s.LateDetections, Sent: s.Sent, Received: s.Received, Dropped: s.Dropped}
		if s.Source.IsValid() {
			b.Source = s.Source.String()
		}
		out = append(out, b)
	}
	return out
}

// scheduleBFD sets bfd_rt_priority and its friends (t) on the engine's
// thread, as the VRRP engine does vrrp_*'s on its own; bfd_no_swap locks
// the whole process (mlockall is process-wide). What the system refuses
// is logged in one line and the engine runs as it can. A setting a reload
// drops is not undone, as keepalived does not lower a priority either.
func (d *Daemon) scheduleBFD(s bfd.Sessions, t config.ThreadSched) {
	if t.NoSwap {
		if err := realtime.LockMemory(); err != nil {
			d.opts.Log.Warn("bfd_no_swap: the process is not locked in memory", "err", err)
		}
	}
	if t.RTPriority == 0 && t.Nice == 0 && len(t.CPUs) == 0 {
		return
	}
	err := s.OnThread(func() error {
		return realtime.Apply(realtime.Thread{Priority: t.RTPriority, Nice: t.Nice, CPUs: t.CPUs, RTTimeLimit: time.Duration(t.RLimitRTTime)})
	})
	if err != nil {
		d.opts.Log.Warn("BFD thread scheduling not (fully) applied; the thread keeps what the system allowed",
			"bfd_rt_priority", t.RTPriority, "bfd_priority", t.Nice, "bfd_cpu_affinity", t.CPUs, "err", err)
		return
	}
	d.opts.Log.Info("BFD thread scheduled", "bfd_rt_priority", t.RTPriority, "bfd_priority", t.Nice, "bfd_cpu_affinity", t.CPUs)
}
