package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"tandem/internal/api"
	"tandem/internal/bgp"
	"tandem/internal/check"
	"tandem/internal/clock"
	"tandem/internal/config"
)

// bgpSpeaker is what the daemon uses of bgp.Speaker; tests give a fake.
type bgpSpeaker interface {
	AddNeighbor(context.Context, *config.BGPNeighbor) error
	RemoveNeighbor(context.Context, netip.Addr) error
	ResetNeighbor(ctx context.Context, addr netip.Addr, why string) error
	Announce(context.Context, netip.Prefix, bgp.Attrs) error
	Withdraw(context.Context, netip.Prefix) error
	Announced() []netip.Prefix
	GracefulShutdown(context.Context, time.Duration) error
	Status(context.Context) ([]bgp.Neighbor, error)
	Close()
}

// startSpeaker is the speaker tandem run uses.
func startSpeaker(ctx context.Context, b *config.BGP, log *slog.Logger) (bgpSpeaker, error) {
	return bgp.Start(ctx, b, log, clock.Real)
}

// bgpFollower announces over BGP the VIPs this director can serve (the
// bgp block): a VIP's host route is announced while one of its virtual
// servers has quorum and the data plane holds the rules, and withdrawn
// otherwise, so that the routers send its traffic only to directors that
// forward it. At stop it takes the director out of rotation gracefully
// (RFC 8326) before the data plane goes.
type bgpFollower struct {
	log  *slog.Logger
	open func(context.Context, *config.BGP, *slog.Logger) (bgpSpeaker, error)

	// mu guards the fields below; it is held across the speaker's
	// calls, so that announcements reach it in the order they were
	// decided.
	mu  sync.Mutex
	cfg *config.Config // the running configuration
	sp  bgpSpeaker     // nil without a bgp block
	// ready are the VIPs that can be served here, as the balancer last
	// said (servableVIPs).
	ready map[netip.Addr]bool
	// attrs are the attributes the announced routes carry.
	attrs bgp.Attrs
	// stopping: the graceful shutdown has begun; nothing is announced
	// any more.
	stopping bool
	// drained: tandem drain took this director out of rotation; nothing
	// is announced until tandem drain --undo.
	drained bool
}

// errNoBGP refuses tandem drain without a bgp block.
var errNoBGP = errors.New("no bgp block: this director announces nothing, so there is nothing to drain")

// newBGPFollower follows the bgp block with speakers open starts (nil:
// bgp.Start's).
func newBGPFollower(log *slog.Logger, open func(context.Context, *config.BGP, *slog.Logger) (bgpSpeaker, error)) *bgpFollower {
	if open == nil {
		open = startSpeaker
	}
	return &bgpFollower{log: log, open: open, cfg: &config.Config{}}
}

// apply makes the speaker cfg's, as config.Diff says (at start, the diff
// from an empty configuration): a new router id or AS restarts it, a
// neighbor added, removed or changed opens, closes or restarts that
// session alone, and the routes follow the new announce list and
// attributes.
func (f *bgpFollower) apply(ctx context.Context, cfg *config.Config, d config.ConfigDiff) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return nil
	}
	f.cfg = cfg
	var errs []error
	if d.BGP.Gone() && f.sp != nil {
		// A NOTIFICATION Cease to every router: they drop the routes at
		// once.
		f.sp.Close()
		f.sp, f.attrs = nil, bgp.Attrs{}
	}
	switch {
	case d.BGP.Arrived():
		sp, err := f.open(ctx, d.BGP.New, f.log)
		if err != nil {
			return err
		}
		f.sp = sp
	case f.sp != nil:
		for _, n := range d.BGPNeighbors {
			if n.Gone() {
				errs = append(errs, f.sp.RemoveNeighbor(ctx, n.Old.Addr))
			}
			if n.Arrived() {
				errs = append(errs, f.sp.AddNeighbor(ctx, n.New))
			}
		}
	}
	errs = append(errs, f.sync(ctx))
	return errors.Join(errs...)
}

// setReady takes the VIPs that can be served now and announces or
// withdraws what changed.
func (f *bgpFollower) setReady(ready map[netip.Addr]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = ready
	if err := f.sync(context.Background()); err != nil {
		f.log.Error("bgp: routes not updated; retried at the next change", "err", err)
	}
}

// sync announces the host routes of the ready VIPs the bgp block names
// and withdraws the others (under mu). New attributes re-announce every
// route.
func (f *bgpFollower) sync(ctx context.Context) error {
	if f.sp == nil || f.stopping || f.drained {
		return nil
	}
	want := map[netip.Prefix]bool{}
	for vip := range f.cfg.BGPAnnounced() {
		if f.ready[vip] {
			want[netip.PrefixFrom(vip, vip.BitLen())] = true
		}
	}
	attrs := bgp.AttrsOf(f.cfg.BGP)
	again := !slices.Equal(attrs.Communities, f.attrs.Communities) || !equalPtr(attrs.MED, f.attrs.MED)
	f.attrs = attrs
	var errs []error
	have := f.sp.Announced()
	for _, p := range have {
		switch {
		case !want[p]:
			if err := f.sp.Withdraw(ctx, p); err != nil {
				errs = append(errs, err)
				continue
			}
			f.log.Info("bgp: VIP withdrawn", "vip", p.Addr())
		case again:
			errs = append(errs, f.sp.Announce(ctx, p, attrs))
		}
	}
	for p := range want {
		if slices.Contains(have, p) {
			continue
		}
		if err := f.sp.Announce(ctx, p, attrs); err != nil {
			errs = append(errs, err)
			continue
		}
		f.log.Info("bgp: VIP announced", "vip", p.Addr())
	}
	return errors.Join(errs...)
}

func equalPtr[T comparable](a, b *T) bool { return a == b || a != nil && b != nil && *a == *b }

// shutdown takes this director out of rotation: the routes carry
// GRACEFUL_SHUTDOWN for graceful_shutdown_delay, then are withdrawn, and
// the sessions close. Nothing is announced after it has begun.
func (f *bgpFollower) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.stopping = true
	sp, cfg := f.sp, f.cfg.BGP
	f.mu.Unlock()
	if sp == nil {
		return
	}
	if err := sp.GracefulShutdown(ctx, time.Duration(cfg.GracefulShutdownDelay)); err != nil {
		f.log.Error("bgp: graceful shutdown", "err", err)
	}
	sp.Close()
}

// drain takes this director out of the routers' rotation as a stop does
// (GRACEFUL_SHUTDOWN for graceful_shutdown_delay, then the withdraw) but
// keeps running, forwarding what still arrives, until undo puts it back:
// then the servable VIPs are announced again. It returns the VIPs
// withdrawn or announced.
func (f *bgpFollower) drain(ctx context.Context, undo bool) ([]string, error) {
	f.mu.Lock()
	sp, cfg := f.sp, f.cfg.BGP
	switch {
	case f.stopping:
		f.mu.Unlock()
		return nil, errStopping
	case sp == nil:
		f.mu.Unlock()
		return nil, errNoBGP
	case undo:
		defer f.mu.Unlock()
		if !f.drained {
			return nil, errors.New("not drained")
		}
		f.drained = false
		err := f.sync(ctx)
		return prefixAddrs(sp.Announced()), err
	case f.drained:
		f.mu.Unlock()
		return nil, errors.New("already drained")
	}
	f.drained = true
	f.mu.Unlock()
	was := prefixAddrs(sp.Announced())
	f.log.Info("bgp: draining: routes marked GRACEFUL_SHUTDOWN, then withdrawn", "vips", was, "delay", cfg.GracefulShutdownDelay)
	return was, sp.GracefulShutdown(ctx, time.Duration(cfg.GracefulShutdownDelay))
}

// prefixAddrs is the addresses of host routes, as text.
func prefixAddrs(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Addr().String())
	}
	slices.Sort(out)
	return out
}

// bfdDown resets the BGP sessions whose bfd names session, which went
// down (RFC 5882 section 4.3: BFD's verdict ends the session, without
// waiting for the hold timer).
func (f *bgpFollower) bfdDown(session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sp == nil || f.cfg.BGP == nil {
		return
	}
	for _, n := range f.cfg.BGP.Neighbors {
		if n.BFD != session {
			continue
		}
		if err := f.sp.ResetNeighbor(context.Background(), n.Addr, "BFD session "+session+" down"); err != nil {
			f.log.Warn("bgp: session not reset after BFD down", "neighbor", n.Addr, "bfd", session, "err", err)
		}
	}
}

// status is the speaker's part of the status document (nil: no bgp
// block).
func (f *bgpFollower) status() *api.BGPStatus {
	f.mu.Lock()
	sp, cfg, stopping, drained := f.sp, f.cfg, f.stopping, f.drained
	f.mu.Unlock()
	if sp == nil || cfg.BGP == nil {
		return nil
	}
	st := &api.BGPStatus{RouterID: cfg.BGP.RouterID.String(), LocalAS: cfg.BGP.LocalAS, ShuttingDown: stopping, Drained: drained,
		Neighbors: []api.BGPNeighborStatus{}, VIPs: []api.BGPVIPStatus{}}
	ns, err := sp.Status(context.Background())
	if err != nil {
		f.log.Warn("bgp: sessions' status not read", "err", err)
	}
	for _, n := range ns {
		ns := api.BGPNeighborStatus{Address: n.Addr.String(), State: n.State, Since: n.Since,
			PrefixesSent: n.Sent, PrefixesReceived: n.Received, LastError: n.LastError}
		if i := slices.IndexFunc(cfg.BGP.Neighbors, func(c *config.BGPNeighbor) bool { return c.Addr == n.Addr }); i >= 0 {
			ns.RemoteAS = cfg.BGP.Neighbors[i].RemoteAS
		}
		st.Neighbors = append(st.Neighbors, ns)
	}
	announced, named := sp.Announced(), cfg.BGPAnnounced()
	for _, vip := range cfg.VIPs() {
		if _, ok := named[vip]; ok {
			st.VIPs = append(st.VIPs, api.BGPVIPStatus{VIP: vip.String(), Announced: slices.Contains(announced, netip.PrefixFrom(vip, vip.BitLen()))})
		}
	}
	return st
}

// servableVIPs are the VIPs this director can serve: those of the
// virtual servers with quorum (snap is cfg.VirtualServers' health, in
// order), when the data plane holds the rules (planeOK: the last
// reconcile succeeded). A VIP shared by several virtual servers (ports 80
// and 443) is servable while one of them is: withdrawing it for one
// port's lost quorum would cut the others, on every director alike.
func servableVIPs(cfg *config.Config, snap []check.VSStatus, planeOK bool) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	if !planeOK {
		return out
	}
	for vip, vss := range cfg.BGPAnnounced() {
		for _, vs := range vss {
			if i := slices.Index(cfg.VirtualServers, vs); i >= 0 && i < len(snap) && snap[i].QuorumUp {
				out[vip] = true
			}
		}
	}
	return out
}
