package daemon

import (
	"log/slog"
	"reflect"

	"tandem/internal/config"
	"tandem/internal/notify"
	"tandem/internal/vrrp"
)

// fifoConfigs are the notify FIFO settings that, changed by a reload,
// make Tandem close its FIFOs and open them again (restarting their
// scripts, as keepalived does at each reload).
func fifoConfigs(o *config.Ops) [3]config.FIFO {
	out := [3]config.FIFO{o.NotifyFIFO, o.VRRPNotifyFIFO, o.LVSNotifyFIFO}
	for i := range out {
		out[i].Pos = config.Pos{}
	}
	return out
}

// reloadFIFOs gives fx the FIFOs of its configuration: old's, untouched,
// when their settings are the same (a reader keeps its FIFO), else new ones
// opened once old's are closed (they may share a path).
func reloadFIFOs(old, fx *effects, oldCfg, cfg *config.Config, log *slog.Logger) error {
	if reflect.DeepEqual(fifoConfigs(&oldCfg.Global.Ops), fifoConfigs(&cfg.Global.Ops)) {
		fx.fifos = old.fifos
		return nil
	}
	old.fifos.Close()
	var err error
	fx.fifos, err = notify.OpenFIFOs(&cfg.Global.Ops, fx.users, log)
	return err
}

// closeFIFOs closes the running configuration's FIFOs, at exit.
func (d *Daemon) closeFIFOs() {
	d.mu.Lock()
	fx := d.fx
	d.mu.Unlock()
	fx.fifos.Close()
}

// writeStatesOnReload writes, after a reload, the state of every instance
// and sync group the reload left in its state to the VRRP FIFOs, when
// fifo_write_vrrp_states_on_reload is set (keepalived.conf(5);
// vrrp_scheduler.c writes them for instances and groups whose state did not
// change; those that changed wrote theirs as they changed).
func writeStatesOnReload(fx *effects, cfg *config.Config, rep vrrp.ReloadReport, st []vrrp.InstanceStatus) {
	if !cfg.Global.FIFOWriteStatesOnReload || fx.fifos == nil {
		return
	}
	same := map[string]bool{}
	for _, n := range append(append([]string{}, rep.Kept...), rep.Updated...) {
		same[n] = true
	}
	byName := map[string]*config.Instance{}
	for _, in := range cfg.Instances {
		byName[in.Name] = in
	}
	groups := map[string][]vrrp.State{}
	for _, s := range st {
		if s.SyncGroup != "" {
			groups[s.SyncGroup] = append(groups[s.SyncGroup], s.State)
		}
	}
	for _, g := range cfg.SyncGroups {
		if gs, ok := groupState(groups[g.Name]); ok {
			fx.fifos.Group(g.Name, notify.State(gs.String()))
		}
	}
	for _, s := range st {
		if in := byName[s.Name]; in != nil && same[s.Name] {
			fx.fifos.Instance(in, notify.State(s.State.String()), s.EffectivePriority)
		}
	}
}

// groupState is a sync group's state from its members' (keepalived
// vrrp_sync.c): FAULT if one is faulty, MASTER if all are masters, BACKUP
// if all are backups; members in between have no group state to report.
func groupState(members []vrrp.State) (vrrp.State, bool) {
	if len(members) == 0 {
		return 0, false
	}
	all := members[0]
	for _, m := range members {
		if m == vrrp.Fault {
			return vrrp.Fault, true
		}
		if m != all {
			return 0, false
		}
	}
	return all, all == vrrp.Master || all == vrrp.Backup
}
