package check

import (
	"maps"

	"tandem/internal/config"
)

// Inherit takes over, before Start, the state of the checkers of old that
// the reload d (config.Diff of old's configuration and c's) kept: the same
// checker (type and target) of the same real server, unchanged or with
// settings changed in place (timeouts, retries, URLs). Their real servers
// keep their health and weight instead of starting again from the initial
// state, so a reload does not flap them in the data plane: no warm-up, no
// alpha reset, no spurious down/up (keepalived migrate_checkers).
func (c *Core) Inherit(old *Core, d config.ConfigDiff) {
	kept := map[*config.Checker]*config.Checker{} // new -> old
	for _, vs := range d.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, ck := range rs.Checkers {
				if ck.Change == config.Unchanged || ck.Change == config.InPlace {
					kept[ck.New] = ck.Old
				}
			}
		}
	}
	type at struct {
		ck     *config.Checker
		target Target
	}
	prev := map[at]*ckState{}
	for _, ck := range old.cks {
		prev[at{ck.spec.Checker, ck.spec.Target}] = ck
	}
	for _, ck := range c.cks {
		o := prev[at{kept[ck.spec.Checker], ck.spec.Target}]
		if o == nil {
			continue
		}
		ck.up, ck.hasRun, ck.retryIt, ck.offset = o.up, o.hasRun, o.retryIt, o.offset
		ck.lastOK, ck.lastErr, ck.lastChange, ck.lastRun, ck.latency = o.lastOK, o.lastErr, o.lastChange, o.lastRun, o.latency
	}
	for _, vs := range c.vss {
		for _, rs := range vs.rss {
			rs.weight = int64(rs.cfg.Weight)
			for _, ck := range rs.cks {
				rs.weight += ck.offset
			}
			rs.alive = rs.allUp()
		}
	}
}

// Inherit takes over the state of old's checkers (see Core.Inherit); old
// must have stopped running.
func (s *Scheduler) Inherit(old *Scheduler, d config.ConfigDiff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old.mu.Lock()
	defer old.mu.Unlock()
	s.core.Inherit(old.core, d)
	s.bfd = maps.Clone(old.bfd)
}
