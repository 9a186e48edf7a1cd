package check

import (
	"encoding/json"
	"strconv"
)

// Inherit takes over, before Start, the state of the checkers of old that
// a reload left unchanged: same virtual server, real server and checker
// configuration, in the same place. Their real servers keep their health
// and weight instead of starting again from the initial state, so a reload
// does not flap them in the data plane (keepalived migrate_checkers).
func (c *Core) Inherit(old *Core) {
	prev := map[string]*ckState{}
	for _, ck := range old.cks {
		prev[ckKey(ck)] = ck
	}
	for _, ck := range c.cks {
		o := prev[ckKey(ck)]
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

// ckKey identifies a checker across configurations: its virtual server,
// real server, position and whole configuration (positions in the file
// excluded, as the JSON form excludes them).
func ckKey(ck *ckState) string {
	pos := 0
	for i, x := range ck.rs.cks {
		if x == ck {
			pos = i
		}
	}
	b, err := json.Marshal(struct {
		VS, RS  any
		Checker any
	}{ck.spec.VS.Name() + "/" + ck.spec.VS.Protocol, ck.spec.Target.Addr.String() + "#" + strconv.Itoa(pos), ck.spec.Checker})
	if err != nil {
		panic(err) // plain data: cannot happen short of a bug
	}
	return string(b)
}

// Inherit takes over the state of old's checkers (see Core.Inherit); old
// must have stopped running.
func (s *Scheduler) Inherit(old *Scheduler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old.mu.Lock()
	defer old.mu.Unlock()
	s.core.Inherit(old.core)
}
