package vrrp

import (
	"errors"
	"fmt"
	"slices"

	"tandem/internal/config"
)

// ReloadReport says what a reload did to the instances.
type ReloadReport struct {
	// Kept are untouched: same configuration, same state, no packet lost.
	Kept []string
	// Updated took on changed settings in place (priority, advert_int,
	// preemption, addresses, routes and rules, notify, garp, ...) with no
	// state transition.
	Updated []string
	// Started are new; Stopped are gone (a master among them said
	// goodbye with priority 0); Restarted changed what makes them the
	// virtual router they are (config.Diff: VRID, interface, family,
	// socket, sync group membership) and were stopped and started again.
	Started, Stopped, Restarted []string
	// Errors are instances of the new configuration that could not start
	// (their interface is missing, say) or take on their new settings;
	// the others run.
	Errors []error
}

type reloadReq struct {
	cfg  *config.Config
	done chan ReloadReport
}

// errStopped is returned by Reload on an engine that no longer runs.
var errStopped = errors.New("vrrp engine is not running")

// Reload applies a new configuration as config.Diff classifies it: an
// unchanged instance keeps running as it is, one changed in place takes on
// its new settings without a state transition, one whose identity changed
// is restarted; new ones start and removed ones stop. It must be called
// while Run runs.
func (e *Engine) Reload(cfg *config.Config) ReloadReport {
	r := reloadReq{cfg: cfg, done: make(chan ReloadReport, 1)}
	select {
	case e.reloads <- r:
	case <-e.done:
		return ReloadReport{Errors: []error{errStopped}}
	}
	return <-r.done
}

// reload runs in the loop.
func (e *Engine) reload(cfg *config.Config) ReloadReport {
	var rep ReloadReport
	diff := config.Diff(e.cfg, cfg)
	// max_auto_priority, min_auto_priority_delay and the thread's
	// scheduling change in place; a loop started without any keeps its
	// shared thread, and says so.
	e.rt.reconfigure(&cfg.Global)
	if !e.rt.ownThread && e.rt.wanted() {
		e.log.Warn("VRRP thread scheduling added by a reload takes effect at the next start: the loop runs on a shared thread")
	}
	// Announcements already booked keep their times; new ones follow the
	// new intervals.
	e.pacer = newGarpPacer(cfg)
	old := map[string]*instance{}
	for _, in := range e.insts {
		old[in.cfg.Name] = in
	}
	var next, fresh []*instance
	// Instances still waiting for their interface are new to the diff
	// (they never ran) and are tried again here.
	var waiting []*config.Instance
	running := map[string]bool{} // kept or updated
	for _, d := range diff.Instances {
		change := d.Change
		if d.Old != nil && old[d.Old.Name] == nil {
			// It did not start under the old configuration (its
			// interface was missing, say): it is new to the engine.
			change = config.Added
			if d.New == nil {
				continue
			}
		}
		switch change {
		case config.Removed:
			e.stopInstance(old[d.Old.Name])
			rep.Stopped = append(rep.Stopped, d.Old.Name)
			continue
		case config.Unchanged, config.InPlace:
			in := old[d.New.Name]
			if d.Change == config.Unchanged {
				e.mu.Lock()
				in.cfg = d.New // equal content; the new model's pointers from now on
				e.mu.Unlock()
				rep.Kept = append(rep.Kept, d.New.Name)
			} else if err := e.update(in, d); err != nil {
				rep.Errors = append(rep.Errors, err)
			} else {
				rep.Updated = append(rep.Updated, d.New.Name)
			}
			running[d.New.Name] = true
			next = append(next, in)
			continue
		case config.Recreated:
			e.stopInstance(old[d.Old.Name])
			rep.Restarted = append(rep.Restarted, d.New.Name)
		default:
			rep.Started = append(rep.Started, d.New.Name)
		}
		n, err := e.newInstance(cfg, d.New)
		if waitsForInterface(cfg, d.New, err) {
			waiting = append(waiting, d.New)
			continue
		}
		if err != nil {
			rep.Errors = append(rep.Errors, err)
			continue
		}
		next = append(next, n)
		fresh = append(fresh, n)
	}
	// A group keeps its coordinator (and state) if the diff kept it and
	// all its members run on.
	keepGroups := map[string]*group{}
	for _, gd := range diff.SyncGroups {
		if gd.Change != config.Unchanged && gd.Change != config.InPlace {
			continue
		}
		for _, g := range e.groups {
			if g.cfg.Name == gd.New.Name && allRunning(g, running) {
				keepGroups[g.cfg.Name] = g
			}
		}
	}
	e.mu.Lock()
	e.cfg, e.insts = cfg, next
	e.groups = buildGroups(cfg, next, keepGroups)
	e.waiting = waiting
	for name := range e.early {
		if !slices.ContainsFunc(waiting, func(ic *config.Instance) bool { return ic.Name == name }) {
			delete(e.early, name)
		}
	}
	e.mu.Unlock()
	if e.waitTimer != nil {
		e.waitTimer.Stop()
	}
	e.armWaiting()
	for _, in := range fresh {
		e.startReader(in)
		if e.started { // else vrrp_startup_delay's end starts it
			e.handle(in, Start{Reason: Reason{Kind: ReasonReload}})
		}
	}
	// The firewall follows the new configuration: addresses and instances
	// gone, settings changed (which rebuilds its table).
	e.updateFirewall()
	return rep
}

func allRunning(g *group, running map[string]bool) bool {
	for _, m := range g.members {
		if !running[m.cfg.Name] {
			return false
		}
	}
	return true
}

// update gives a running instance the settings of d.New, with no state
// transition (see Reconfigure). While it holds its addresses, routes and
// rules, those the reload removed (or changed) go and those it added (or
// changed) come, one by one, and new addresses are announced; the others
// are not touched.
func (e *Engine) update(in *instance, d config.InstanceDelta) error {
	mc := machineConfig(d.New, in.conn.Src())
	if err := mc.validate(); err != nil {
		return fmt.Errorf("vrrp_instance %s: %w", d.New.Name, err)
	}
	if in.installed {
		// New addresses are dropped before they are added; the old ones
		// leave the drop set once they are gone (the reload's last update).
		e.updateFirewall(d.New)
		e.applyKernel(in, d)
	}
	e.mu.Lock()
	in.cfg = d.New
	e.mu.Unlock()
	in.configure(d.New)
	e.handle(in, Reconfigure{Config: mc})
	return nil
}

// applyKernel applies the address, route and rule changes of d to an
// instance that has them installed: removals first, in cleanup's order
// (rules, routes, addresses), then additions in install's.
func (e *Engine) applyKernel(in *instance, d config.InstanceDelta) {
	iface := in.cfg.Interface // the same in both: it is part of the identity
	addrs := append(append([]config.Delta[*config.IPAddress](nil), d.VIPs...), d.ExcludedVIPs...)
	for _, r := range d.Rules {
		if r.Gone() {
			in.stale = append(in.stale, staleObject{key: r.Key, what: "virtual rule", del: func(k Kernel) error { return k.DelRule(r.Old) }})
		}
	}
	for _, r := range d.Routes {
		if r.Gone() {
			in.stale = append(in.stale, staleObject{key: r.Key, what: "virtual route", del: func(k Kernel) error { return k.DelRoute(iface, r.Old) }})
		}
	}
	for _, a := range addrs {
		if a.Gone() {
			in.stale = append(in.stale, staleObject{key: a.Key, what: "virtual address", del: func(k Kernel) error { return k.DelAddress(iface, in.placed(a.Old)) }})
		}
	}
	e.dropStale(in)
	// An object the new configuration has again (added back, or a
	// re-created one under the same key) is its now, not stale.
	in.stale = slices.DeleteFunc(in.stale, func(s staleObject) bool {
		return slices.ContainsFunc(addrs, func(a config.Delta[*config.IPAddress]) bool { return a.Key == s.key && a.New != nil }) ||
			slices.ContainsFunc(d.Routes, func(r config.Delta[*config.Route]) bool { return r.Key == s.key && r.New != nil }) ||
			slices.ContainsFunc(d.Rules, func(r config.Delta[*config.Rule]) bool { return r.Key == s.key && r.New != nil })
	})
	var added []*config.IPAddress
	for _, a := range addrs {
		if a.Arrived() {
			logErr(in, "virtual address not added", e.kernel.AddAddress(iface, in.placed(a.New)))
			added = append(added, a.New)
		}
	}
	for _, r := range d.Routes {
		if r.Arrived() {
			logErr(in, "virtual route not added", e.kernel.AddRoute(iface, r.New))
		}
	}
	for _, r := range d.Rules {
		if r.Arrived() {
			logErr(in, "virtual rule not added", e.kernel.AddRule(r.New))
		}
	}
	// The new addresses are claimed as becoming master claims them
	// (garp_master_repeat); the others' neighbours already know us.
	e.announce(in, added, d.New.Garp.MasterRepeat)
}

// staleObject is an address, route or rule of an instance's earlier
// configuration, to delete from the kernel (see instance.stale).
type staleObject struct {
	key  config.Key
	what string
	del  func(Kernel) error
}

// deleteStale deletes the instance's stale objects and reports whether
// all went; those the kernel refused stay listed.
func (in *instance) deleteStale(k Kernel) bool {
	in.stale = slices.DeleteFunc(in.stale, func(s staleObject) bool {
		err := s.del(k)
		if err != nil {
			in.log.Warn(s.what+" not removed", "key", s.key, "err", err)
		}
		return err == nil
	})
	return len(in.stale) == 0
}

// dropStale deletes the instance's stale objects, retrying with backoff
// what the kernel refuses: a VIP a reload removed must not stay on the
// master.
func (e *Engine) dropStale(in *instance) {
	if in.deleteStale(e.kernel) {
		in.staleRetry.reset()
		return
	}
	e.retryLater(&in.staleRetry, in, "addresses, routes or rules a reload removed", loopEvent{inst: in, stale: true})
}

func logErr(in *instance, msg string, err error) {
	if err != nil {
		in.log.Error(msg, "err", err)
	}
}

// stopInstance stops one instance as Run's shutdown does.
func (e *Engine) stopInstance(in *instance) {
	now := e.clock.Now()
	for _, a := range in.m.Handle(now, Shutdown{Reason: Reason{Kind: ReasonReload}}) {
		e.do(in, a, now)
	}
	if in.installed {
		e.remove(in) // arms a retry if the kernel refused
	}
	e.closeInstance(in)
	if in.unremoved {
		e.retiring = append(e.retiring, in)
	}
}
