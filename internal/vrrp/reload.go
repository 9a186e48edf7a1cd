package vrrp

import (
	"encoding/json"
	"errors"
	"slices"

	"tandem/internal/config"
)

// ReloadReport says what a reload did to the instances.
type ReloadReport struct {
	// Kept are untouched: same configuration, same state, no packet lost.
	Kept []string
	// Started are new; Stopped are gone (a master among them said
	// goodbye with priority 0); Restarted changed and were stopped and
	// started again.
	Started, Stopped, Restarted []string
	// Errors are instances of the new configuration that could not start
	// (their interface is missing, say); the others run.
	Errors []error
}

type reloadReq struct {
	cfg  *config.Config
	done chan ReloadReport
}

// errStopped is returned by Reload on an engine that no longer runs.
var errStopped = errors.New("vrrp engine is not running")

// Reload applies a new configuration, touching only what changed: an
// instance whose configuration (and sync group) is the same keeps running
// as it is; a changed one is restarted; new ones start and removed ones
// stop. It must be called while Run runs.
func (e *Engine) Reload(cfg *config.Config) ReloadReport {
	r := reloadReq{cfg: cfg, done: make(chan ReloadReport, 1)}
	select {
	case e.reloads <- r:
	case <-e.done:
		return ReloadReport{Errors: []error{errStopped}}
	}
	return <-r.done
}

// identity is everything about an instance that a running one cannot take
// on without a restart: its whole configuration, the multicast groups it
// would use, and its sync group's definition.
func identity(cfg *config.Config, ic *config.Instance) string {
	var group *config.SyncGroup
	for _, g := range cfg.SyncGroups {
		if slices.Contains(g.Members, ic.Name) {
			group = g
		}
	}
	b, err := json.Marshal(struct {
		Instance *config.Instance
		Group    *config.SyncGroup
		G4, G6   string
	}{ic, group, cfg.Global.VRRPMcastGroup4.String(), cfg.Global.VRRPMcastGroup6.String()})
	if err != nil {
		// The model is plain data; this cannot happen short of a bug.
		panic(err)
	}
	return string(b)
}

// reload runs in the loop.
func (e *Engine) reload(cfg *config.Config) ReloadReport {
	var rep ReloadReport
	old := map[string]*instance{}
	for _, in := range e.insts {
		old[in.cfg.Name] = in
	}
	wanted := map[string]bool{}
	for _, ic := range cfg.Instances {
		wanted[ic.Name] = true
	}
	var next, fresh []*instance
	keepGroups := map[string]*group{}
	for _, ic := range cfg.Instances {
		in := old[ic.Name]
		if in != nil && identity(e.cfg, in.cfg) == identity(cfg, ic) {
			e.mu.Lock()
			in.cfg = ic // equal content; the new model's pointers from now on
			e.mu.Unlock()
			if in.group != nil {
				keepGroups[in.group.cfg.Name] = in.group
			}
			next = append(next, in)
			rep.Kept = append(rep.Kept, ic.Name)
			continue
		}
		if in != nil {
			e.stopInstance(in)
			rep.Restarted = append(rep.Restarted, ic.Name)
		} else {
			rep.Started = append(rep.Started, ic.Name)
		}
		n, err := e.newInstance(cfg, ic)
		if err != nil {
			rep.Errors = append(rep.Errors, err)
			continue
		}
		next = append(next, n)
		fresh = append(fresh, n)
	}
	for name, in := range old {
		if !wanted[name] {
			e.stopInstance(in)
			rep.Stopped = append(rep.Stopped, name)
		}
	}
	// A group is kept only if all its members were.
	for name, g := range keepGroups {
		for _, m := range g.members {
			if !slices.Contains(rep.Kept, m.cfg.Name) {
				delete(keepGroups, name)
			}
		}
	}
	e.mu.Lock()
	e.cfg, e.insts = cfg, next
	e.groups = buildGroups(cfg, next, keepGroups)
	e.mu.Unlock()
	for _, in := range fresh {
		e.startReader(in)
		e.handle(in, Start{})
	}
	return rep
}

// stopInstance stops one instance as Run's shutdown does.
func (e *Engine) stopInstance(in *instance) {
	now := e.clock.Now()
	for _, a := range in.m.Handle(now, Shutdown{}) {
		e.do(in, a, now)
	}
	if in.installed {
		e.remove(in) // arms a retry if the kernel refused
	}
	in.close()
	if in.unremoved {
		e.retiring = append(e.retiring, in)
	}
}
