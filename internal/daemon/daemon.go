// Package daemon wires a configuration to the running parts: the VRRP
// engine, the status API, and (as they land) health checks and the data
// plane; it owns start and stop.
package daemon

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"tandem/internal/api"
	"tandem/internal/config"
	"tandem/internal/vrrp"
)

// Options say what to run.
type Options struct {
	ConfigFile string
	ConfigID   string
	Socket     string
	Version    string
	Log        *slog.Logger
}

// Daemon is a running Tandem.
type Daemon struct {
	opts    Options
	cfg     *config.Config
	engine  *vrrp.Engine
	started time.Time
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
	d := &Daemon{opts: opts, cfg: cfg, started: time.Now()}
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
	log.Info("tandem running", "config", opts.ConfigFile, "instances", len(cfg.Instances), "socket", opts.Socket)
	err = eng.Run(ctx)
	log.Info("tandem stopped")
	return err
}

func (d *Daemon) stateChanged(sc vrrp.StateChange) {
	if sc.Group != nil {
		d.opts.Log.Info("sync group state change", "group", sc.Group.Name, "state", sc.State)
	}
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
	return st
}
