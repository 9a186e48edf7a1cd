// Package daemon wires a configuration to the running parts: the VRRP
// engine, the status API, and (as they land) health checks and the data
// plane; it owns start and stop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"tandem/internal/api"
	"tandem/internal/bfd"
	"tandem/internal/config"
	"tandem/internal/firewall"
	"tandem/internal/notify"
	"tandem/internal/vrrp"
)

// Options say what to run.
type Options struct {
	ConfigFile string
	ConfigID   string
	Socket     string
	// Dataplane is auto, ipvs, nft, xdp or none (health checks only).
	Dataplane string
	// BPFDir is where the xdp data plane pins its maps and links, a
	// directory per network namespace under it, on a BPF file system
	// (xdp.DefaultPinDir when empty).
	BPFDir string
	// PlainSockets runs TCP_CHECK on plain sockets instead of io_uring
	// (check.Options.PlainSockets).
	PlainSockets bool
	// Reloads asks for a reload (SIGHUP): the file is read again and the
	// difference applied.
	Reloads <-chan os.Signal
	// HTTP is the address of the optional HTTP listener (/metrics,
	// /status.json, the status page); empty: none.
	HTTP string
	// HistoryInterval is how often the status page's charts sample
	// (api.DefaultHistoryInterval when zero).
	HistoryInterval time.Duration
	// Dumps asks for keepalived's state dumps: SIGUSR1 (state), SIGUSR2
	// (statistics), SIGRTMIN+2 (JSON), written to DumpDir (default /tmp).
	Dumps   <-chan os.Signal
	DumpDir string
	Version string
	Log     *slog.Logger
	// NewBFD starts the BFD engine the bfd_instance blocks run on; nil:
	// bfd.New's (tests give a fake).
	NewBFD func(*slog.Logger) (bfd.Sessions, error)
	// newSpeaker starts the bgp block's speaker; nil: bgp.Start's
	// (tests give a fake).
	newSpeaker func(context.Context, *config.BGP, *slog.Logger) (bgpSpeaker, error)
}

// Daemon is a running Tandem.
type Daemon struct {
	opts    Options
	engine  *vrrp.Engine
	static  *staticKeeper // static_ipaddress, _routes, _rules: where they go (netio, as the VIPs), and who puts them back
	started time.Time
	// notes runs notify scripts and alert mails in the background, for
	// every configuration the daemon runs; run waits for it at exit.
	notes  *notify.Runner
	events *notify.EventLog
	bal    *balancer // nil without virtual servers
	files  uint64    // RLIMIT_NOFILE, which sizes the listeners' caps
	// syncd runs IPVS's connection-sync daemons (lvs_sync_daemon).
	syncd *syncFollower
	// ct runs conntrackd (conntrack_sync).
	ct *ctFollower
	// bgp announces the servable VIPs over BGP (the bgp block).
	bgp *bgpFollower
	// bfd is the BFD sessions, nil until a configuration has
	// bfd_instance blocks; set under mu (and reloadMu).
	bfd *bfdHub
	// processRR is the SCHED_RR priority the whole process was moved
	// to (scheduleProcess), 0 while none; under reloadMu once running.
	processRR int

	mu      sync.Mutex
	cfg     *config.Config  // the running configuration
	fx      *effects        // cfg's
	masters map[string]bool // instances in MASTER, for ha_suspend

	// ctx is Run's; trackers started by a reload run in it.
	ctx context.Context
	// balCtx is the balancers'. It ends after ctx, once the BGP speaker
	// has taken this director out of rotation: the data plane forwards
	// until the routers have moved the traffic away.
	balCtx   context.Context
	reloadMu sync.Mutex  // one reload at a time
	stopped  bool        // under reloadMu: run is stopping; reloads are refused
	trackers *trackerSet // under reloadMu
	balDone  chan struct{}
}

// ConfigError is a configuration that cannot run; its Diagnostics say why.
type ConfigError struct{ Diagnostics config.Diagnostics }

func (e *ConfigError) Error() string {
	var msgs []string
	for _, d := range e.Diagnostics {
		if d.Severity == config.Error {
			msgs = append(msgs, d.String())
		}
	}
	return "configuration has errors:\n" + strings.Join(msgs, "\n")
}

// errStopping refuses a reload that comes once the daemon has begun to
// stop (through the socket, which closes last, or a late SIGHUP).
var errStopping = errors.New("tandem is stopping: reload refused")

// notifyWait is how long the daemon waits at exit for the notify scripts
// and alert mails in progress (the instances' STOP ones among them) before
// it kills the scripts and abandons the mails.
const notifyWait = 5 * time.Second

// Run loads the configuration, starts everything and runs until ctx is
// done; then it stops everything it started and removes what it added.
func Run(ctx context.Context, opts Options) error {
	// One Tandem per network namespace, settled before anything is
	// touched: a refused second run must change nothing, and the crash
	// clean-up below would remove the running one's VIPs and tables.
	unlock, err := lockNamespace(opts)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := load(opts)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

// load reads the configuration and prepares a Daemon for it; nothing runs
// yet.
func load(opts Options) (*Daemon, error) {
	log := opts.Log
	files := raiseFileLimit(log)
	cfg, diags := config.Load(opts.ConfigFile, config.Options{ConfigID: opts.ConfigID})
	for _, d := range diags {
		if d.Severity != config.Error {
			log.Warn(d.Msg, "pos", d.Pos.String())
		}
	}
	if diags.HasErrors() {
		return nil, &ConfigError{Diagnostics: diags}
	}
	if err := checkNamespace(cfg); err != nil {
		return nil, err
	}
	applyUmask(cfg)
	return &Daemon{opts: opts, cfg: cfg, fx: newEffects(cfg, log), started: time.Now(), files: files,
		notes: notify.NewRunner(notify.DefaultScriptTimeout, log), events: notify.NewEventLog(256), masters: map[string]bool{},
		syncd: newSyncFollower(opts.Dataplane, openSyncer, log), ct: newCTFollower(opts.Socket, log),
		bgp: newBGPFollower(log, opts.newSpeaker)}, nil
}

// run starts everything for d's configuration and runs until ctx is done;
// then it stops everything it started, removes what it added, and waits
// (up to notifyWait) for the notifications still running.
func (d *Daemon) run(ctx context.Context) error {
	log, cfg, fx, opts := d.opts.Log, d.cfg, d.fx, d.opts
	// Deferred first, so that it waits for what everything stopped below
	// has still to say.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyWait)
		defer cancel()
		if err := d.notes.Close(ctx); err != nil {
			log.Warn("notifications still running at exit: scripts killed, mails abandoned", "waited", notifyWait, "err", err)
		}
	}()
	// The FIFOs are open before the first state is written to them
	// (keepalived opens them in vrrp_complete_init); closed last, after
	// the instances' STOP lines.
	var err error
	if fx.fifos, err = notify.OpenFIFOs(&cfg.Global.Ops, fx.users, log); err != nil {
		return err
	}
	defer d.closeFIFOs()
	// Before the engines start their protocol threads, which then run
	// above the rest of the process.
	d.scheduleProcess(&cfg.Global)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() { d.watchRTTime(watchCtx) })
	defer watching.Wait()
	defer stopWatch()
	host := vrrp.NewHost()
	defer func() {
		if err := host.Close(); err != nil {
			log.Warn("host settings not restored", "err", err)
		}
	}()
	d.static = &staticKeeper{k: host, log: log}
	d.static.set(cfg)
	installStatic(host, cfg, log)
	// Removed last, once the instances have let their VIPs go, as
	// keepalived's VRRP process clears its static entries at exit; the
	// configuration a reload installed is the one removed.
	defer func() {
		d.mu.Lock()
		cur := d.cfg
		d.mu.Unlock()
		for _, err := range removeStatic(host, cur) {
			log.Error("static entry not removed", "err", err)
		}
	}()
	// Deleted static entries are put back until the stop, which ends this
	// before it removes them.
	keepCtx, stopKeeping := context.WithCancel(ctx)
	var keeping sync.WaitGroup
	keeping.Go(func() {
		if err := d.static.run(keepCtx); err != nil {
			log.Error("deleted static entries are no longer put back", "err", err)
		}
	})
	defer keeping.Wait()
	defer stopKeeping()
	// keepalived's no-accept drop rules: the engine keeps them; their
	// table goes once the engine has stopped (or failed to start).
	fw := firewall.New(log)
	defer func() {
		if err := fw.Close(); err != nil {
			log.Error("firewall table not removed", "err", err)
		}
	}()
	eng, err := vrrp.NewEngine(cfg, host, log, d.stateChanged, vrrp.WithFirewall(fw), vrrp.WithBeforeTakeover(d.ct.takeover))
	if err != nil {
		return err
	}
	d.engine = eng
	// A reload (asked through the socket, or SIGHUP) waits until
	// everything below has started.
	d.reloadMu.Lock()
	started := sync.OnceFunc(d.reloadMu.Unlock)
	defer started()
	srv, err := api.Listen(opts.Socket, d, log, connCap(d.files, maxSocketConns))
	if err != nil {
		eng.Close() // it has opened its sockets but started nothing
		return err
	}
	defer srv.Close()
	closeHTTP, err := d.listenHTTP()
	if err != nil {
		eng.Close()
		return err
	}
	defer closeHTTP()
	d.ctx = ctx
	balCtx, stopBalancer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBalancer()
	d.balCtx = balCtx
	// The sessions start before the trackers that follow them, and stop
	// (AdminDown to every neighbor) once the instances have.
	if err := d.applyBFD(nil, cfg); err != nil {
		eng.Close()
		return err
	}
	defer d.closeBFD()
	if d.trackers, err = startTrackers(ctx, cfg, fx.users, d.bfdHub(), eng, log); err != nil {
		eng.Close()
		return err
	}
	// The sync daemons start as backup: every instance starts outside
	// MASTER. They stop last, once the instances have let go.
	if warning, err := d.syncd.configure(cfg.Global.LVSSyncDaemon); err != nil {
		d.trackers.stop()
		eng.Close()
		return err
	} else if warning != "" {
		log.Warn(warning)
	}
	defer d.syncd.stop()
	// conntrackd starts as backup, as the instances do, and stops last.
	if c := cfg.ConntrackSync; c != nil {
		if err := d.ct.apply(config.Delta[*config.ConntrackSync]{Change: config.Added, New: c}); err != nil {
			d.trackers.stop()
			eng.Close()
			return err
		}
	}
	defer d.ct.stop()
	// The BGP speaker starts before the balancer, whose first reconcile
	// says which VIPs it may announce.
	if err := d.bgp.apply(ctx, cfg, config.Diff(&config.Config{}, cfg)); err != nil {
		d.bgp.shutdown(context.Background())
		d.trackers.stop()
		eng.Close()
		return err
	}
	// At stop, the routes carry GRACEFUL_SHUTDOWN for
	// graceful_shutdown_delay and are withdrawn before the data plane
	// goes (RFC 8326); the VRRP instances stop meanwhile.
	gshutDone := make(chan struct{})
	go func() {
		defer close(gshutDone)
		select {
		case <-ctx.Done():
		case <-balCtx.Done(): // run returned early
		}
		d.bgp.shutdown(context.Background())
		stopBalancer()
	}()
	defer func() { stopBalancer(); <-gshutDone }()
	if err := d.startBalancer(cfg, fx, true); err != nil {
		d.trackers.stop()
		eng.Close()
		return err
	}
	started()
	// The loops below end with ctx; run waits for them after it has
	// stopped (a reload they started by then is refused).
	var loops sync.WaitGroup
	defer loops.Wait()
	if opts.Reloads != nil {
		loops.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-opts.Reloads:
					_ = sdNotify("RELOADING=1")
					res, err := d.Reload()
					_ = sdNotify("READY=1")
					if err != nil {
						log.Error("reload refused; the running configuration is unchanged", "err", err)
					} else {
						log.Info("reloaded", "kept", res.Kept, "updated", res.Updated, "started", res.Started, "stopped", res.Stopped, "restarted", res.Restarted)
					}
				}
			}
		})
	}
	if opts.Dumps != nil {
		loops.Go(func() { d.dumps(ctx, opts.Dumps) })
	}
	log.Info("tandem running", "config", opts.ConfigFile, "instances", len(cfg.Instances), "socket", opts.Socket, "file_limit", d.files)
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("systemd not told we are ready", "err", err)
	}
	err = eng.Run(ctx)
	_ = sdNotify("STOPPING=1") // best effort: systemd sees the exit anyway
	d.reloadMu.Lock()          // no reload half-way through the stop, nor after it
	defer d.reloadMu.Unlock()
	d.stopped = true
	d.trackers.stop()
	<-gshutDone
	if d.balDone != nil {
		<-d.balDone
	}
	log.Info("tandem stopped")
	return err
}

// dumps writes keepalived's signal dumps on request.
func (d *Daemon) dumps(ctx context.Context, sigs <-chan os.Signal) {
	dir := d.opts.DumpDir
	if dir == "" {
		dir = os.TempDir()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			name := dumpJSON
			switch sig {
			case syscall.SIGUSR1:
				name = dumpData
			case syscall.SIGUSR2:
				name = dumpStats
			}
			if err := d.dump(dir, name); err != nil {
				d.opts.Log.Error("state dump not written", "file", name, "err", err)
			} else {
				d.opts.Log.Info("state dumped", "file", filepath.Join(dir, name))
			}
		}
	}
}

// startBalancer starts health checks and the data plane if cfg has
// virtual servers; atStart is false when a reload adds the first virtual
// server (lvs_flush acts at start only).
func (d *Daemon) startBalancer(cfg *config.Config, fx *effects, atStart bool) error {
	bal, err := newBalancer(cfg, fx, d.opts.Dataplane, d, d.opts.Log, atStart)
	if err != nil || bal == nil {
		return err
	}
	d.mu.Lock()
	d.bal = bal
	d.mu.Unlock()
	if hub := d.bfdHub(); hub != nil {
		// BFD_CHECKs start from the sessions' states as they are.
		hub.replay(bal.sched.SetBFD)
	}
	d.balDone = make(chan struct{})
	go func() {
		defer close(d.balDone)
		bal.run(d.balCtx)
	}()
	return nil
}

// Reload re-reads the configuration file and applies the difference: VRRP
// instances whose configuration is unchanged keep running untouched, health
// checks keep their state, and the data plane gets only the changes. A
// configuration with errors leaves the running one as it is.
func (d *Daemon) Reload() (api.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	log := d.opts.Log
	var res api.ReloadResult
	if d.stopped {
		// Its parts have stopped: the balancer's loop would never take
		// the new configuration.
		return res, errStopping
	}
	cfg, diags := config.Load(d.opts.ConfigFile, config.Options{ConfigID: d.opts.ConfigID})
	for _, dg := range diags {
		if dg.Severity != config.Error {
			res.Warnings = append(res.Warnings, dg.String())
		}
	}
	if diags.HasErrors() {
		// A refused parse may have taken hundreds of MB (a hostile file
		// at the parser's limits); the runtime would keep them from the
		// system for minutes.
		debug.FreeOSMemory()
		return res, &ConfigError{Diagnostics: diags}
	}
	// The new configuration's effects are in force from here on: for the
	// state changes the engine's reload causes, and for every consumer
	// below.
	applyUmask(cfg)
	fx := newEffects(cfg, log)
	d.mu.Lock()
	old, oldFx := d.cfg, d.fx
	d.mu.Unlock()
	if cfg.Global.NetNamespace != old.Global.NetNamespace {
		// keepalived.conf(5): "the namespace cannot be changed on a
		// configuration reload".
		res.Warnings = append(res.Warnings, fmt.Sprintf("net_namespace cannot change on a reload: still running in %q", old.Global.NetNamespace))
	}
	if err := reloadFIFOs(oldFx, fx, old, cfg, log); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	d.mu.Lock()
	d.cfg, d.fx = cfg, fx
	d.mu.Unlock()
	// Static entries first: a new instance may send from a new static
	// address.
	diff := config.Diff(old, cfg)
	// What cfg no longer has is no longer put back, before it goes.
	d.static.set(cfg)
	for _, err := range reloadStatic(d.static.k, diff) {
		res.Errors = append(res.Errors, err.Error())
	}
	d.scheduleProcess(&cfg.Global)
	rep := d.engine.Reload(cfg)
	writeStatesOnReload(fx, cfg, rep, d.engine.Status())
	res.Kept, res.Updated, res.Started, res.Stopped, res.Restarted = rep.Kept, rep.Updated, rep.Started, rep.Stopped, rep.Restarted
	for _, e := range rep.Errors {
		res.Errors = append(res.Errors, e.Error())
	}
	// BFD sessions change as config.Diff says, before the trackers that
	// follow them.
	if err := d.applyBFD(old, cfg); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	d.trackers.bfd = d.bfdHub()
	// Trackers follow the new configuration as config.Diff says, after
	// the engine's reload so that the instances it re-created get the
	// trackers' status too.
	if err := d.trackers.reload(old, cfg, fx.users); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	// The sync daemons restart only if their settings changed, and
	// switch if the instance they follow did.
	if warning, err := d.syncd.configure(cfg.Global.LVSSyncDaemon); err != nil {
		res.Errors = append(res.Errors, err.Error())
	} else if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	// conntrackd restarts only if conntrack_sync changed.
	if err := d.ct.apply(diff.ConntrackSync); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	// BGP sessions change as config.Diff says, before the balancer's
	// reconcile says which VIPs are servable.
	if err := d.bgp.apply(d.ctx, cfg, diff); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	d.mu.Lock()
	bal, master := d.bal, len(d.masters) > 0
	d.mu.Unlock()
	var err error
	if bal != nil {
		err = bal.reload(cfg, fx)
	} else {
		err = d.startBalancer(cfg, fx, false)
		bal = d.balancer()
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	if bal != nil {
		bal.suspend(master)
	}
	d.events.Add(notify.Event{Time: time.Now(), Kind: "reload", Object: d.opts.ConfigFile,
		Message: fmt.Sprintf("kept %d, updated %d, started %d, stopped %d, restarted %d instances", len(res.Kept), len(res.Updated), len(res.Started), len(res.Stopped), len(res.Restarted))})
	return res, nil
}

// stateChanged runs the notify scripts and alerts of an instance or sync
// group entering a state, and records it in the event log.
func (d *Daemon) stateChanged(sc vrrp.StateChange) {
	if sc.PriorityChange {
		d.priorityChanged(sc)
		return
	}
	st := notify.State(sc.State.String())
	d.mu.Lock()
	g, fx := &d.cfg.Global, d.fx
	d.mu.Unlock()
	if sc.MasterRxLowerPri {
		// vrrp_notify.c send_event_notify: the script, then the FIFOs.
		d.notes.MasterRxLowerPri(fx.users, sc.Instance)
		fx.fifos.MasterRxLowerPri(sc.Instance.Name, sc.Priority)
		return
	}
	// keepalived: an instance's smtp_alert, else smtp_alert_vrrp, else
	// smtp_alert.
	alert := func(own bool) bool {
		return fx.mailer != nil && (own || config.First(false, g.SMTPAlertVRRP, g.SMTPAlert))
	}
	var kind, name string
	var mail func(context.Context) error
	if sc.Group != nil {
		kind, name = "group", sc.Group.Name
		d.ct.setState(name, true, sc.State)
		d.notes.Group(fx.users, sc.Group, st)
		fx.fifos.Group(sc.Group.Name, st)
		if alert(sc.Group.SMTPAlert) {
			mail = func(ctx context.Context) error { return fx.mailer.Group(ctx, name, st) }
		}
	} else {
		kind, name = "instance", sc.Instance.Name
		d.followMastership(name, sc.State == vrrp.Master)
		// STOP is the daemon's own shutdown: the sync daemons stop
		// with it (syncFollower.stop), not through a backup daemon.
		if sc.State != vrrp.Stop {
			d.syncd.setState(name, sc.State == vrrp.Master)
		}
		d.ct.setState(name, false, sc.State)
		d.notes.Instance(fx.users, sc.Instance, st, sc.Priority)
		fx.fifos.Instance(sc.Instance, st, sc.Priority)
		if alert(sc.Instance.SMTPAlert) {
			mail = func(ctx context.Context) error { return fx.mailer.Instance(ctx, name, st) }
		}
	}
	d.events.Add(notify.Event{Time: sc.At, Kind: "vrrp", Object: kind + " " + name, Message: "entering " + string(st), Reason: sc.Reason.String()})
	if mail != nil {
		d.notes.Mail(kind+" "+name, mail)
	}
}

// priorityChanged reports an instance's priority change
// (notify_priority_changes): keepalived runs no script for it and writes
// `INSTANCE "NAME" MASTER_PRIORITY|BACKUP_PRIORITY PRIO` to the notify
// FIFOs; Tandem also records it in the event log.
func (d *Daemon) priorityChanged(sc vrrp.StateChange) {
	st := notify.BackupPriority
	if sc.State == vrrp.Master {
		st = notify.MasterPriority
	}
	d.mu.Lock()
	fx := d.fx
	d.mu.Unlock()
	fx.fifos.Priority(sc.Instance.Name, st, sc.Priority)
	d.events.Add(notify.Event{Time: sc.At, Kind: "vrrp", Object: "instance " + sc.Instance.Name, Message: fmt.Sprintf("%s %d", st, sc.Priority)})
}

// followMastership runs the checks of ha_suspend virtual servers only
// while this director is master of some instance (keepalived.conf(5)
// ha_suspend).
func (d *Daemon) followMastership(instance string, master bool) {
	d.mu.Lock()
	bal := d.bal
	was := len(d.masters) > 0
	if master {
		d.masters[instance] = true
	} else {
		delete(d.masters, instance)
	}
	is := len(d.masters) > 0
	d.mu.Unlock()
	if bal != nil && was != is {
		bal.suspend(is)
	}
}

// balancer is the running balancer, nil without virtual servers (a reload
// may start one).
func (d *Daemon) balancer() *balancer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bal
}

// Table implements api.Source.
func (d *Daemon) Table() (api.Table, error) {
	if bal := d.balancer(); bal != nil {
		return bal.table()
	}
	return api.Table{Dataplane: DataplaneNone, Services: []api.TableService{}}, nil
}

// Handover implements api.Source: the VRRP engine hands the instances
// over (vrrp.Engine.Handover).
func (d *Daemon) Handover(req api.HandoverRequest) (api.HandoverResult, error) {
	var to netip.Addr
	if req.To != "" {
		a, err := netip.ParseAddr(req.To)
		if err != nil {
			return api.HandoverResult{}, fmt.Errorf("--to %q is not an IP address", req.To)
		}
		to = a
	}
	done, err := d.engine.Handover(req.Instances, to)
	return api.HandoverResult{Instances: done}, err
}

// Drain implements api.Source: the BGP speaker takes this director out
// of the routers' rotation, or puts it back.
func (d *Daemon) Drain(req api.DrainRequest) (api.DrainResult, error) {
	// Not run's context: a stop meanwhile runs its own graceful
	// shutdown, with its full delay.
	vips, err := d.bgp.drain(context.Background(), req.Undo)
	return api.DrainResult{VIPs: vips}, err
}

// Status implements api.Source.
func (d *Daemon) Status() api.Status {
	st := api.Status{Version: d.opts.Version, Config: d.opts.ConfigFile, Started: d.started, Instances: []api.InstanceStatus{}}
	for _, in := range d.engine.Status() {
		is := api.InstanceStatus{
			Name: in.Name, State: in.State.String(), VRID: in.VRID, Interface: in.Interface, VMAC: in.VMAC,
			Priority: in.Priority, EffectivePriority: in.EffectivePriority, Since: in.Since,
			SyncGroup: in.SyncGroup, AdvertsSent: in.AdvertsSent, AdvertsReceived: in.AdvertsReceived,
			Dropped: in.Dropped, Transitions: in.Transitions, LateExpiries: in.LateExpiries, VIPs: []string{},
		}
		if in.Reason.Kind != vrrp.ReasonNone {
			is.Reason = in.Reason.String()
		}
		if in.MasterIP.IsValid() {
			is.MasterIP = in.MasterIP.String()
		}
		is.DrainingUntil = in.DrainingUntil
		for _, v := range in.VIPs {
			is.VIPs = append(is.VIPs, v.String())
		}
		st.Instances = append(st.Instances, is)
	}
	if bal := d.balancer(); bal != nil {
		st.Dataplane = bal.name
		st.VirtualServers, st.DataplaneOps = bal.status()
	}
	st.SyncDaemon = d.syncd.status()
	st.Conntrackd = d.ct.status()
	st.BFD = d.bfdStatus()
	st.BGP = d.bgp.status()
	st.Events = []api.Event{}
	for _, e := range d.events.Events() {
		st.Events = append(st.Events, api.Event(e))
	}
	return st
}
