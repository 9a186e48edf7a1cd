package main

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// holdings is what the kernel of one director has of one instance's
// state: the VIP, the virtual route, the virtual rule.
type holdings struct {
	vip, route, rule bool
}

func (h holdings) any() bool { return h.vip || h.route || h.rule }

func (h holdings) String() string {
	var s []string
	if h.vip {
		s = append(s, "VIP")
	}
	if h.route {
		s = append(s, "route")
	}
	if h.rule {
		s = append(s, "rule")
	}
	return strings.Join(s, "+")
}

// observation is one director at one sampling instant: the states its
// status API last reported (nil when that report is older than the
// freshness limit: stopped, paused, or too slow to answer) and what its
// kernel holds, per instance name.
type observation struct {
	states map[string]string
	kernel map[string]holdings
}

// violation is one broken invariant: the first sample that showed it in a
// quiet period and how long it lasted (up to the period's end).
type violation struct {
	At       time.Duration `json:"at_ns"` // since the run's start
	Instance string        `json:"instance,omitempty"`
	What     string        `json:"what"`
	Lasted   time.Duration `json:"lasted_ns"`
	Samples  int           `json:"samples"`
	seq      int           // the order in which it was first seen
}

func (v violation) String() string {
	s := fmt.Sprintf("+%v", v.At.Round(time.Millisecond))
	if v.Instance != "" {
		s += " " + v.Instance
	}
	return s + fmt.Sprintf(": %s (seen in %d samples over %v)", v.What, v.Samples, v.Lasted.Round(time.Millisecond))
}

// checker evaluates the invariants on each sample. It is not safe for
// concurrent use: one sampling loop feeds it.
//
// Between a fault and window after the last heal anything may happen
// (both sides of a partition are rightly MASTER). From then until the next
// fault starts, for every instance:
//   - exactly one director reports MASTER, the one with the highest
//     priority;
//   - the VIP, the virtual route and the virtual rule are on that
//     director's kernel and on no other (never on two).
//
// A sample in which some running director's status is not fresh is not
// judged (counted in unjudged).
type checker struct {
	insts    []string
	rightful []int

	open     map[string]*violation
	found    []violation
	judged   int
	unjudged int

	seq int // violations numbered as first seen

	lastMaster    map[string]int // per instance, the last single master seen (-1: none yet)
	masterChanges int
}

// newChecker judges the instances named by insts; rightful[i] is the
// director that should be insts[i]'s master when all are up: the one with
// the highest priority (they all preempt).
func newChecker(insts []string, rightful []int) *checker {
	c := &checker{insts: insts, rightful: rightful, open: map[string]*violation{}, lastMaster: map[string]int{}}
	for _, in := range insts {
		c.lastMaster[in] = -1
	}
	return c
}

// sample feeds one sampling instant at (since the run's start). judge is
// false while a fault is active or within the window after the last heal.
func (c *checker) sample(at time.Duration, judge bool, obs []observation) {
	c.countMasters(obs)
	if !judge {
		c.closePeriod()
		return
	}
	for _, o := range obs {
		if o.states == nil {
			c.unjudged++
			return
		}
	}
	c.judged++
	for i, in := range c.insts {
		var masters, vip, route, rule []int
		for d, o := range obs {
			if o.states[in] == "MASTER" {
				masters = append(masters, d)
			}
			if strings.HasSuffix(o.states[in], draining) {
				// A drain keeps what AddVIPs installed, silenced,
				// for handover_drain: not a second holder.
				continue
			}
			h := o.kernel[in]
			if h.vip {
				vip = append(vip, d)
			}
			if h.route {
				route = append(route, d)
			}
			if h.rule {
				rule = append(rule, d)
			}
		}
		switch {
		case len(masters) != 1:
			c.flag(at, in, "masters", fmt.Sprintf("%d directors MASTER %s (want 1; states %s)", len(masters), names(masters), statesOf(obs, in)))
		case masters[0] != c.rightful[i]:
			c.flag(at, in, "masters", fmt.Sprintf("MASTER is %s, not %s, which has the highest priority (states %s)",
				dirName(masters[0]), dirName(c.rightful[i]), statesOf(obs, in)))
		}
		for _, x := range []struct {
			what    string
			holders []int
		}{{"VIP", vip}, {"route", route}, {"rule", rule}} {
			if len(x.holders) > 1 || !slices.Equal(x.holders, masters) {
				c.flag(at, in, x.what, fmt.Sprintf("%s held by %s while MASTER is %s", x.what, names(x.holders), names(masters)))
			}
		}
	}
	// A condition not seen in this sample has ended.
	for key, v := range c.open {
		if v.At+v.Lasted < at {
			c.found = append(c.found, *v)
			delete(c.open, key)
		}
	}
}

// flag records condition key of instance in at at; the same condition in
// consecutive samples is one violation that lasts.
func (c *checker) flag(at time.Duration, in, key, what string) {
	k := in + "/" + key
	if v, ok := c.open[k]; ok {
		v.Lasted = at - v.At
		v.Samples++
		return
	}
	c.seq++
	c.open[k] = &violation{At: at, Instance: in, What: what, Samples: 1, seq: c.seq}
}

// stopped records a violation outside sampling: a director that stopped
// cleanly left state behind.
func (c *checker) stopped(at time.Duration, node string, left map[string]holdings) {
	var parts []string
	for in, h := range left {
		if h.any() {
			parts = append(parts, in+": "+h.String())
		}
	}
	if len(parts) > 0 {
		sort.Strings(parts)
		c.seq++
		c.found = append(c.found, violation{At: at, seq: c.seq, What: fmt.Sprintf("%s stopped cleanly (SIGTERM) but left %s", node, strings.Join(parts, ", ")), Samples: 1})
	}
}

func (c *checker) closePeriod() {
	for k, v := range c.open {
		c.found = append(c.found, *v)
		delete(c.open, k)
	}
}

// violations are all recorded so far, in time order; it closes the open ones.
func (c *checker) violations() []violation {
	c.closePeriod()
	out := slices.Clone(c.found)
	slices.SortFunc(out, func(a, b violation) int { return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.seq, b.seq)) })
	return out
}

// countMasters counts changes of the single master of each instance, as the
// fresh reports show them.
func (c *checker) countMasters(obs []observation) {
	for _, in := range c.insts {
		m := -1
		for d, o := range obs {
			if o.states[in] == "MASTER" {
				if m >= 0 {
					m = -2 // several: not a single master
					break
				}
				m = d
			}
		}
		if m < 0 {
			continue
		}
		if last := c.lastMaster[in]; last != m {
			if last >= 0 {
				c.masterChanges++
			}
			c.lastMaster[in] = m
		}
	}
}

func names(ds []int) string {
	if len(ds) == 0 {
		return "none"
	}
	var s []string
	for _, d := range ds {
		s = append(s, dirName(d))
	}
	return strings.Join(s, ",")
}

func statesOf(obs []observation, in string) string {
	var s []string
	for d, o := range obs {
		s = append(s, dirName(d)+"="+o.states[in])
	}
	return strings.Join(s, " ")
}
