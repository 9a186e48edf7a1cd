package daemon

import (
	"fmt"
	"log/slog"
	"sync"

	"tandem/internal/api"
	"tandem/internal/config"
	"tandem/internal/ctsync"
	"tandem/internal/vrrp"
)

// ctSyncer is what ctFollower needs of a ctsync.Sync (faked in tests).
type ctSyncer interface {
	Start() error
	Stop()
	SetRole(ctsync.Role)
	Takeover()
	Status() ctsync.Status
}

// ctFollower runs the conntrackd of conntrack_sync and switches it on the
// transitions of the instance or sync group the block names. It records
// every instance's and group's role from the start, so that a conntrackd
// started by a reload begins in its object's current role.
type ctFollower struct {
	log *slog.Logger
	// open makes the conntrackd for a block (ctsync.New, or a fake).
	open func(*config.ConntrackSync) (ctSyncer, error)

	mu    sync.Mutex
	cfg   *config.ConntrackSync
	s     ctSyncer // nil without conntrack_sync
	roles map[string]ctsync.Role
}

func newCTFollower(socket string, log *slog.Logger) *ctFollower {
	return &ctFollower{log: log, roles: map[string]ctsync.Role{},
		open: func(c *config.ConntrackSync) (ctSyncer, error) { return ctsync.New(c, socket, log) }}
}

// ctKey names an instance or a sync group in roles.
func ctKey(name string, group bool) string {
	if group {
		return "sync_group " + name
	}
	return "instance " + name
}

// follows is the key of the object c follows.
func (c *ctFollower) follows() string {
	if c.cfg.SyncGroup != "" {
		return ctKey(c.cfg.SyncGroup, true)
	}
	return ctKey(c.cfg.Instance, false)
}

// apply takes conntrack_sync's change (config.Diff): conntrackd reads its
// configuration once, so a changed block restarts it; an unchanged one
// leaves it running. A conntrackd that cannot start (not installed) is an
// error, and nothing runs.
func (c *ctFollower) apply(d config.Delta[*config.ConntrackSync]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.Change == config.Unchanged {
		return nil
	}
	if d.Gone() && c.s != nil {
		c.s.Stop()
		c.s, c.cfg = nil, nil
		c.log.Info("conntrackd stopped", "change", d.Change.String())
	}
	if !d.Arrived() {
		return nil
	}
	s, err := c.open(d.New)
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		return fmt.Errorf("conntrack_sync at %s: %w", d.New.Pos, err)
	}
	c.s, c.cfg = s, d.New
	s.SetRole(c.roles[c.follows()])
	return nil
}

// setState records an instance's or sync group's new state and, if
// conntrackd follows it, switches conntrackd: MASTER, FAULT, and BACKUP
// for the others (INIT). STOP is Tandem's own shutdown, where stop ends
// conntrackd.
func (c *ctFollower) setState(name string, group bool, st vrrp.State) {
	if st == vrrp.Stop {
		return
	}
	role := ctsync.Backup
	switch st {
	case vrrp.Master:
		role = ctsync.Master
	case vrrp.Fault:
		role = ctsync.Fault
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := ctKey(name, group)
	c.roles[key] = role
	if c.s != nil && c.follows() == key {
		c.s.SetRole(role)
	}
}

// takeover is the VRRP engine's hook before instance in adds its
// addresses as the new master (vrrp.WithBeforeTakeover): if conntrackd
// follows it, or its sync group, the replicated flows are committed
// first.
func (c *ctFollower) takeover(in *config.Instance) {
	c.mu.Lock()
	s := c.s
	follows := s != nil && (c.cfg.Instance == in.Name || c.cfg.SyncGroup != "" && c.cfg.SyncGroup == in.SyncGroup)
	c.mu.Unlock()
	if follows {
		s.Takeover()
	}
}

// stop ends conntrackd and removes its files.
func (c *ctFollower) stop() {
	if err := c.apply(config.Delta[*config.ConntrackSync]{Change: config.Removed}); err != nil {
		c.log.Error("conntrackd", "err", err)
	}
}

// status is conntrackd's part of the status document; nil without
// conntrack_sync.
func (c *ctFollower) status() *api.ConntrackdStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s == nil {
		return nil
	}
	st := c.s.Status()
	return &api.ConntrackdStatus{Follows: c.follows(), Running: st.Running, Restarts: st.Restarts, Error: st.Err,
		Role: st.Role, Command: st.Command, CommandError: st.CommandErr, CommandTime: st.CommandAt}
}
