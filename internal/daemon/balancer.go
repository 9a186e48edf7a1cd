package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"tandem/internal/api"
	"tandem/internal/check"
	"tandem/internal/config"
	"tandem/internal/lvs"
	"tandem/internal/lvs/ipvs"
	"tandem/internal/lvs/nft"
	"tandem/internal/lvs/xdp"
	"tandem/internal/notify"
)

// Data planes `tandem run --dataplane` accepts.
const (
	DataplaneAuto = "auto"
	DataplaneIPVS = "ipvs"
	DataplaneNFT  = "nft"
	DataplaneXDP  = "xdp"
	DataplaneNone = "none"
)

// kernel is a data-plane backend with what the daemon needs beyond
// lvs.Kernel.
type kernel interface {
	lvs.Kernel
	Close() error
}

// balancer keeps the data plane in step with the health checks: check
// events change the pool, and every change is reconciled into the kernel.
type balancer struct {
	cfg      *config.Config
	log      *slog.Logger
	name     string // the data plane in use
	kernel   kernel // nil with --dataplane none: health checks only
	rec      *lvs.Reconciler
	sched    *check.Scheduler
	checks   chan check.Event
	reloads  chan reloadReq
	notes    *notify.Runner
	eventLog *notify.EventLog
	// plainSockets: TCP_CHECK without io_uring (--no-io-uring).
	plainSockets bool
	// ready hears, after each reconcile, which VIPs can be served
	// (servableVIPs): the BGP speaker announces those.
	ready func(map[netip.Addr]bool)

	// fx are cfg's effects; only the loop (run) uses and swaps them.
	fx *effects

	mu   sync.Mutex
	pool *lvs.Pool
	ops  uint64 // data-plane operations applied since start

	// kmu serializes the kernel's callers: the loop's reconciles and
	// reloads, and the API's table reads. Neither backend is safe for
	// concurrent use (nftables caches the ruleset it last read or wrote;
	// IPVS rewrites its state file when it lists services).
	kmu sync.Mutex
}

// openKernel picks the data plane: auto takes kernel IPVS where the kernel
// has it, else nftables; xdp is only taken when asked for (it forwards
// DR only). It returns the backend, its name and which services it may
// touch (nftables and XDP: all of their own tables and maps; IPVS: the
// ones Tandem created, never an operator's).
func openKernel(dataplane string, log *slog.Logger, xopts ...xdp.Option) (kernel, string, func(lvs.ServiceKey) bool, error) {
	all := func(lvs.ServiceKey) bool { return true }
	switch dataplane {
	case DataplaneNone:
		return nil, DataplaneNone, nil, nil
	case DataplaneAuto, DataplaneIPVS:
		k, err := ipvs.New()
		if err == nil {
			return k, DataplaneIPVS, k.Owns, nil
		}
		if dataplane == DataplaneIPVS || !errors.Is(err, ipvs.ErrUnavailable) {
			return nil, "", nil, fmt.Errorf("data plane ipvs: %w", err)
		}
		log.Info("kernel IPVS is not available; using nftables", "dataplane", DataplaneNFT)
		fallthrough
	case DataplaneNFT:
		k, err := nft.New()
		if err != nil {
			return nil, "", nil, fmt.Errorf("data plane nftables: %w", err)
		}
		return k, DataplaneNFT, all, nil
	case DataplaneXDP:
		k, err := xdp.New(append([]xdp.Option{xdp.WithLogger(log)}, xopts...)...)
		if err != nil {
			return nil, "", nil, fmt.Errorf("data plane xdp: %w", err)
		}
		return k, DataplaneXDP, all, nil
	}
	return nil, "", nil, fmt.Errorf("--dataplane %q: use auto, ipvs, nft, xdp or none", dataplane)
}

func newBalancer(cfg *config.Config, fx *effects, dataplane string, d *Daemon, log *slog.Logger, atStart bool) (*balancer, error) {
	root := d.opts.BPFDir
	if root == "" {
		root = xdp.DefaultPinDir
	}
	if len(cfg.VirtualServers) == 0 {
		if atStart {
			removeXDP(root, log)
		}
		return nil, nil
	}
	k, name, owns, err := openKernel(dataplane, log, xdp.WithPinRoot(root))
	if err != nil {
		return nil, err
	}
	if atStart && name != DataplaneXDP {
		removeXDP(root, log)
	}
	b := &balancer{cfg: cfg, log: log, name: name, kernel: k, checks: make(chan check.Event, 1024), reloads: make(chan reloadReq),
		notes: d.notes, fx: fx, eventLog: d.events, pool: lvs.NewPool(), plainSockets: d.opts.PlainSockets,
		ready: d.bgp.setReady}
	if k != nil {
		b.rec = lvs.NewReconciler(k, owns)
		b.startPlane(cfg, atStart)
	}
	b.sched, err = check.NewScheduler(cfg.VirtualServers, log, b.checkOptions(cfg, fx))
	if err != nil {
		if k != nil {
			k.Close()
		}
		return nil, err
	}
	return b, nil
}

// removeXDP takes away the XDP data plane a crashed Tandem left in this
// network namespace, which would go on forwarding by stale tables ahead
// of the data plane this run uses.
func removeXDP(root string, log *slog.Logger) {
	found, err := xdp.Remove(root)
	switch {
	case err != nil:
		log.Error("cannot remove the XDP data plane a previous run left", "dir", root, "err", err)
	case found:
		log.Warn("removed the XDP data plane a previous run left (it forwarded ahead of this run's data plane)", "dir", root)
	}
}

// checkOptions are the health-check scheduler's options for cfg, whose
// MISC_CHECK scripts run as fx says.
func (b *balancer) checkOptions(cfg *config.Config, fx *effects) check.Options {
	env := check.Env{TrackFiles: cfg.TrackFiles, Scripts: fx.users, Log: b.log}
	return check.Options{Env: env, Events: b.checks, PlainSockets: b.plainSockets}
}

// run runs the checks and applies their events until ctx ends; then it
// removes every service it programmed. Reloads are applied in this loop
// too, between events.
func (b *balancer) run(ctx context.Context) {
	stop, done := b.startChecks(ctx)
	b.initial(ctx)
	b.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			stop()
			b.drain(done)
			b.close()
			return
		case r := <-b.reloads:
			next, err := check.NewScheduler(r.cfg.VirtualServers, b.log, b.checkOptions(r.cfg, r.fx))
			if err != nil {
				r.done <- err // the running checks go on untouched
				continue
			}
			stop()
			b.drain(done)
			diff := config.Diff(b.cfg, r.cfg)
			next.Inherit(b.sched, diff)
			b.swap(r.cfg, diff, next)
			b.fx = r.fx
			b.kmu.Lock()
			b.configurePlane(r.cfg)
			b.kmu.Unlock()
			stop, done = b.startChecks(ctx)
			b.reconcile(ctx)
			r.done <- nil
		case ev := <-b.checks:
			b.apply(ev)
			// Take every event already queued before touching the kernel.
			for more := true; more; {
				select {
				case ev := <-b.checks:
					b.apply(ev)
				default:
					more = false
				}
			}
			b.reconcile(ctx)
		}
	}
}

// initial applies the scheduler's first events, the state every real
// server starts in (up, as keepalived starts its checkers, unless alpha)
// and then each virtual server's quorum, so that the first reconcile
// programs the pool the checks start from rather than an empty one. A
// Tandem restarted after a crash then finds the data plane its
// predecessor left as it should be, and changes nothing, instead of
// taking every real server out until their events come.
func (b *balancer) initial(ctx context.Context) {
	for left := len(b.cfg.VirtualServers); left > 0; {
		select {
		case <-ctx.Done():
			return
		case ev := <-b.checks:
			b.apply(ev)
			if ev.Initial && (ev.Kind == check.QuorumUp || ev.Kind == check.QuorumDown) {
				left--
			}
		}
	}
}

// startChecks runs the scheduler until the returned stop is called; done
// is closed when it has returned.
func (b *balancer) startChecks(ctx context.Context) (stop func(), done chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() {
		defer close(done)
		b.sched.Run(ctx)
	}()
	return cancel, done
}

// drain applies the events of a stopping scheduler until it has returned.
func (b *balancer) drain(done chan struct{}) {
	for {
		select {
		case ev := <-b.checks:
			b.apply(ev)
		case <-done:
			return
		}
	}
}

// swap moves the balancer to a new configuration and scheduler, carrying
// the pool over to the real servers and virtual servers the reload d
// kept (config.Diff), so that the next reconcile changes only what the new
// configuration changed.
func (b *balancer) swap(cfg *config.Config, d config.ConfigDiff, next *check.Scheduler) {
	kept := func(c config.Change) bool { return c == config.Unchanged || c == config.InPlace }
	b.mu.Lock()
	defer b.mu.Unlock()
	pool := lvs.NewPool()
	for _, vs := range d.VirtualServers {
		if !kept(vs.Change) {
			continue
		}
		for _, rs := range vs.RealServers {
			if w, in := b.pool.Weights[rs.Old]; in && kept(rs.Change) {
				pool.Weights[rs.New] = w
			}
		}
		if in, kept := b.pool.Sorry[vs.Old]; kept {
			pool.Sorry[vs.New] = in
		}
	}
	b.cfg, b.pool, b.sched = cfg, pool, next
}

// reload hands a new configuration to the loop and waits for it to be
// applied: unchanged checkers keep their state, and the data plane is
// reconciled, so only what changed changes in the kernel.
func (b *balancer) reload(cfg *config.Config, fx *effects) error {
	r := reloadReq{cfg: cfg, fx: fx, done: make(chan error, 1)}
	b.reloads <- r
	return <-r.done
}

type reloadReq struct {
	cfg  *config.Config
	fx   *effects
	done chan error
}

// apply records one check event in the pool and runs its notifications.
func (b *balancer) apply(ev check.Event) {
	b.mu.Lock()
	switch ev.Kind {
	case check.RealServerUp, check.WeightChanged:
		b.pool.Weights[ev.RS] = ev.Weight
	case check.RealServerDown:
		if ev.Inhibit {
			b.pool.Weights[ev.RS] = 0
		} else {
			delete(b.pool.Weights, ev.RS)
		}
	case check.SorryServerIn:
		b.pool.Sorry[ev.VS] = true
	case check.SorryServerOut:
		if ss := ev.VS.SorryServer; ss != nil && ss.Inhibit {
			b.pool.Sorry[ev.VS] = false
		} else {
			delete(b.pool.Sorry, ev.VS)
		}
	}
	b.mu.Unlock()
	if ev.Initial {
		return
	}
	obj := "virtual_server " + ev.VS.Name()
	if ev.RS != nil {
		obj += " real_server " + rsName(ev.RS)
	}
	b.eventLog.Add(notify.Event{Time: ev.Time, Kind: "check", Object: obj, Message: ev.Kind.String() + ": " + ev.Reason})
	fx := b.fx
	switch ev.Kind {
	case check.RealServerUp, check.RealServerDown:
		up := ev.Kind == check.RealServerUp
		b.notes.RealServer(fx.users, ev.VS, ev.RS, up)
		fx.fifos.RealServer(ev.VS, ev.RS, up)
		if ev.RS.SMTPAlert && fx.mailer != nil {
			b.notes.Mail(obj, func(ctx context.Context) error { return fx.mailer.RealServer(ctx, ev.VS, ev.RS, up, ev.Reason) })
		}
	case check.QuorumUp, check.QuorumDown:
		up := ev.Kind == check.QuorumUp
		b.notes.VirtualServer(fx.users, ev.VS, up)
		fx.fifos.VirtualServer(ev.VS, up)
		if ev.VS.SMTPAlert && fx.mailer != nil {
			b.notes.Mail(obj, func(ctx context.Context) error { return fx.mailer.VirtualServer(ctx, ev.VS, up, ev.Reason) })
		}
	}
}

func rsName(rs *config.RealServer) string {
	if rs == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", rs.IP, rs.Port)
}

// reconcile drives the kernel to the pool's desired state, then tells
// ready which VIPs can be served.
func (b *balancer) reconcile(ctx context.Context) {
	if b.rec == nil {
		return
	}
	b.mu.Lock()
	cfg, sched := b.cfg, b.sched
	d, err := lvs.FromConfig(cfg, b.pool)
	b.mu.Unlock()
	if b.ready != nil {
		defer func() { b.ready(servableVIPs(cfg, sched.Snapshot(), err == nil)) }()
	}
	if err != nil {
		b.log.Error("desired data-plane state", "err", err)
		return
	}
	d = b.desired(d)
	b.kmu.Lock()
	rep, err := b.rec.Reconcile(ctx, d)
	b.kmu.Unlock()
	if err != nil {
		b.log.Error("data plane not updated; retried at the next change", "err", err)
	}
	b.mu.Lock()
	b.ops += uint64(len(rep.Ops))
	b.mu.Unlock()
	if len(rep.Ops) > 0 {
		b.log.Info("data plane updated", "dataplane", b.name, "ops", len(rep.Ops))
	}
}

// close removes what the balancer programmed.
func (b *balancer) close() {
	if b.kernel == nil {
		return
	}
	b.kmu.Lock()
	defer b.kmu.Unlock()
	if err := b.stopPlane(); err != nil {
		b.log.Error("data plane not cleaned up", "err", err)
	}
}

// suspend and resume follow VRRP mastership for ha_suspend virtual servers.
func (b *balancer) suspend(master bool) {
	b.mu.Lock()
	sched := b.sched
	b.mu.Unlock()
	if master {
		sched.Resume()
	} else {
		sched.Suspend()
	}
}

// status is the virtual servers' part of the status document.
func (b *balancer) status() (vss []api.VirtualServerStatus, ops uint64) {
	b.mu.Lock()
	cfg, sched, ops := b.cfg, b.sched, b.ops
	b.mu.Unlock()
	snap := sched.Snapshot()
	out := make([]api.VirtualServerStatus, 0, len(snap))
	for i, vs := range cfg.VirtualServers {
		if i >= len(snap) {
			break
		}
		h := snap[i]
		v := api.VirtualServerStatus{Name: vs.Name(), Port: vs.Port, Protocol: vs.Protocol.String(), Scheduler: vs.Scheduler.String(),
			Method: vs.Method.String(), Quorum: h.Quorum, QuorumOK: h.QuorumUp, SorryServer: h.SorryServerIn, RealServers: []api.RealServerStatus{}}
		if vs.IP.IsValid() {
			v.VIP = vs.IP.String()
		}
		for _, r := range h.RealServers {
			rs := api.RealServerStatus{IP: r.Addr.Addr().String(), Port: int(r.Addr.Port()), Weight: r.Weight, Healthy: r.Healthy, Checkers: []api.CheckerStatus{}}
			for _, c := range r.Checkers {
				rs.Checkers = append(rs.Checkers, api.CheckerStatus{Type: c.Type.String(), LastResult: c.LastResult, LastError: c.LastError, LastChange: c.LastChange,
					LastRun: c.LastRun, Latency: c.Latency.Seconds()})
			}
			v.RealServers = append(v.RealServers, rs)
		}
		out = append(out, v)
	}
	return out, ops
}

// forwardNames are ipvsadm's names of the forwarding methods.
var forwardNames = map[lvs.Method]string{lvs.NAT: "Masq", lvs.DR: "Route", lvs.TUN: "Tunnel"}

// table reads the data plane's live table back from the kernel, with the
// counters the backend keeps.
func (b *balancer) table() (api.Table, error) {
	t := api.Table{Dataplane: b.name, Services: []api.TableService{}}
	if b.kernel == nil {
		return t, nil
	}
	b.kmu.Lock()
	defer b.kmu.Unlock()
	svcs, err := b.kernel.Services()
	if err != nil {
		return t, err
	}
	stats, err := b.stats()
	if err != nil {
		return t, err
	}
	for _, s := range svcs {
		ts := api.TableService{Protocol: strings.ToUpper(s.Protocol.String()), Scheduler: string(s.Scheduler),
			Flags: s.Flags.String(), Persistence: s.PersistenceTimeout, Dests: []api.TableDest{}}
		if s.FWMark != 0 {
			ts.Protocol, ts.Address = "FWM", strconv.FormatUint(uint64(s.FWMark), 10)
		} else {
			ts.Address = netip.AddrPortFrom(s.VIP, s.Port).String()
		}
		dests, err := b.kernel.Dests(s.Key())
		if err != nil {
			return t, err
		}
		for _, d := range dests {
			m := d.Method
			if m == lvs.MethodUnset {
				m = s.Method
			}
			td := stats[s.Key()][d.Addr]
			td.Address, td.Forward, td.Weight = d.Addr.String(), forwardNames[m], d.Weight
			ts.Dests = append(ts.Dests, td)
		}
		t.Services = append(t.Services, ts)
	}
	return t, nil
}

// stats reads the backend's per-real-server counters (lvs.Kernel.Counters:
// IPVS's active and inactive connections, or the connections nftables
// scheduled), all services' in one call, so that a status of 10,000
// services costs what the backend needs for all of them (nftables: one
// dump), not one read per counter.
func (b *balancer) stats() (map[lvs.ServiceKey]map[netip.AddrPort]api.TableDest, error) {
	all, err := b.kernel.Counters()
	if err != nil {
		return nil, err
	}
	out := make(map[lvs.ServiceKey]map[netip.AddrPort]api.TableDest, len(all))
	for key, ds := range all {
		m := make(map[netip.AddrPort]api.TableDest, len(ds))
		for _, d := range ds {
			m[d.Addr] = api.TableDest{ActiveConn: d.ActiveConns, InActConn: d.InactiveConns, Packets: d.Packets, Bytes: d.Bytes}
		}
		out[key] = m
	}
	return out, nil
}
