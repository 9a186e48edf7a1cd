// Package daemon wires a configuration to the running parts: the VRRP
// engine, the status API, and (as they land) health checks and the data
// plane; it owns start and stop.
package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"tandem/internal/api"
	"tandem/internal/config"
	"tandem/internal/notify"
	"tandem/internal/vrrp"
)

// Options say what to run.
type Options struct {
	ConfigFile string
	ConfigID   string
	Socket     string
	// Dataplane is auto, ipvs, nft or none (health checks only).
	Dataplane string
	Version   string
	Log       *slog.Logger
}

// Daemon is a running Tandem.
type Daemon struct {
	opts    Options
	cfg     *config.Config
	engine  *vrrp.Engine
	started time.Time
	scripts *notify.Scripts
	mailer  *notify.Mailer
	events  *notify.EventLog
	bal     *balancer // nil without virtual servers

	mu      sync.Mutex
	masters map[string]bool // instances in MASTER, for ha_suspend
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

// Run loads the configuration, starts everything and runs until ctx is
// done; then it stops everything it started and removes what it added.
func Run(ctx context.Context, opts Options) error {
	log := opts.Log
	cfg, diags := config.Load(opts.ConfigFile, config.Options{ConfigID: opts.ConfigID})
	for _, d := range diags {
		if d.Severity != config.Error {
			log.Warn(d.Msg, "pos", d.Pos.String())
		}
	}
	if diags.HasErrors() {
		return &ConfigError{Diagnostics: diags}
	}
	d := &Daemon{opts: opts, cfg: cfg, started: time.Now(), mailer: notify.NewMailer(&cfg.Global, log), events: notify.NewEventLog(256), masters: map[string]bool{}}
	var err error
	if d.scripts, err = notify.NewScripts(&cfg.Global, notify.DefaultScriptTimeout, log); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.scripts.Close(ctx); err != nil {
			log.Warn("notify scripts still running at exit", "err", err)
		}
	}()
	host := vrrp.NewHost()
	defer host.Close()
	eng, err := vrrp.NewEngine(cfg, host, log, d.stateChanged)
	if err != nil {
		return err
	}
	d.engine = eng
	srv, err := api.Listen(opts.Socket, d, log)
	if err != nil {
		eng.Close() // it has opened its sockets but started nothing
		return err
	}
	defer srv.Close()
	trackCtx, stopTrackers := context.WithCancel(ctx)
	waitTrackers, err := startTrackers(trackCtx, cfg, eng, log)
	if err != nil {
		stopTrackers()
		eng.Close()
		return err
	}
	if d.bal, err = newBalancer(cfg, opts.Dataplane, d, log); err != nil {
		stopTrackers()
		waitTrackers()
		eng.Close()
		return err
	}
	var balDone chan struct{}
	if d.bal != nil {
		balDone = make(chan struct{})
		go func() {
			defer close(balDone)
			d.bal.run(ctx)
		}()
	}
	log.Info("tandem running", "config", opts.ConfigFile, "instances", len(cfg.Instances), "socket", opts.Socket)
	err = eng.Run(ctx)
	stopTrackers()
	waitTrackers()
	if balDone != nil {
		<-balDone
	}
	log.Info("tandem stopped")
	return err
}

// stateChanged runs the notify scripts and alerts of an instance or sync
// group entering a state, and records it in the event log.
func (d *Daemon) stateChanged(sc vrrp.StateChange) {
	st := notify.State(sc.State.String())
	g := &d.cfg.Global
	// keepalived: an instance's smtp_alert, else smtp_alert_vrrp, else
	// smtp_alert.
	alert := func(own bool) bool { return own || config.First(false, g.SMTPAlertVRRP, g.SMTPAlert) }
	var kind, name string
	var mail func(context.Context) error
	if sc.Group != nil {
		kind, name = "group", sc.Group.Name
		d.scripts.Group(sc.Group, st)
		if alert(sc.Group.SMTPAlert) {
			mail = func(ctx context.Context) error { return d.mailer.Group(ctx, name, st) }
		}
	} else {
		kind, name = "instance", sc.Instance.Name
		d.followMastership(name, sc.State == vrrp.Master)
		d.scripts.Instance(sc.Instance, st, sc.Priority)
		if alert(sc.Instance.SMTPAlert) {
			mail = func(ctx context.Context) error { return d.mailer.Instance(ctx, name, st) }
		}
	}
	d.events.Add(notify.Event{Time: sc.At, Kind: "vrrp", Object: kind + " " + name, Message: "entering " + string(st)})
	if mail != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := mail(ctx); err != nil {
				d.opts.Log.Warn("alert mail not sent", kind, name, "err", err)
			}
		}()
	}
}

// followMastership runs the checks of ha_suspend virtual servers only
// while this director is master of some instance (keepalived.conf(5)
// ha_suspend).
func (d *Daemon) followMastership(instance string, master bool) {
	if d.bal == nil {
		return
	}
	d.mu.Lock()
	was := len(d.masters) > 0
	if master {
		d.masters[instance] = true
	} else {
		delete(d.masters, instance)
	}
	is := len(d.masters) > 0
	d.mu.Unlock()
	if was != is {
		d.bal.suspend(is)
	}
}

// Table implements api.Source.
func (d *Daemon) Table() (api.Table, error) {
	if d.bal == nil {
		return api.Table{Dataplane: DataplaneNone, Services: []api.TableService{}}, nil
	}
	return d.bal.table()
}

// Status implements api.Source.
func (d *Daemon) Status() api.Status {
	st := api.Status{Version: d.opts.Version, Config: d.opts.ConfigFile, Started: d.started, Instances: []api.InstanceStatus{}}
	for _, in := range d.engine.Status() {
		is := api.InstanceStatus{
			Name: in.Name, State: in.State.String(), VRID: in.VRID, Interface: in.Interface,
			Priority: in.Priority, EffectivePriority: in.EffectivePriority, Since: in.Since,
			SyncGroup: in.SyncGroup, AdvertsSent: in.AdvertsSent, AdvertsReceived: in.AdvertsReceived,
			Dropped: in.Dropped, Transitions: in.Transitions, VIPs: []string{},
		}
		if in.MasterIP.IsValid() {
			is.MasterIP = in.MasterIP.String()
		}
		for _, v := range in.VIPs {
			is.VIPs = append(is.VIPs, v.String())
		}
		st.Instances = append(st.Instances, is)
	}
	if d.bal != nil {
		st.Dataplane = d.bal.name
		st.VirtualServers = d.bal.status()
	}
	st.Events = []api.Event{}
	for _, e := range d.events.Events() {
		st.Events = append(st.Events, api.Event(e))
	}
	return st
}
