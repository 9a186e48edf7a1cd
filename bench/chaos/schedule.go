package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"
)

// kind is a fault the schedule injects.
type kind string

const (
	crash     kind = "crash"     // SIGKILL the process group; restart after Dur
	stop      kind = "stop"      // SIGTERM (clean stop); restart after Dur
	pause     kind = "pause"     // SIGSTOP; SIGCONT after Dur
	partition kind = "partition" // detach the director's switch port; reattach after Dur
	split     kind = "split"     // drop traffic between two directors only (nftables in both)
	flap      kind = "flap"      // its link down and up Count times within Dur
	loss      kind = "loss"      // drop Percent% of its packets, both ways (nftables numgen)
	delay     kind = "delay"     // hold its packets Delay ± Jitter, both ways (lab.Delay: NFQUEUE)
	starve    kind = "starve"    // stress-ng with Count CPU hogs for Dur
)

// kinds in the order the report lists them; weights is how often the
// generator draws each.
var (
	kinds   = []kind{crash, stop, pause, partition, split, flap, loss, delay, starve}
	weights = map[kind]int{crash: 3, stop: 2, pause: 3, partition: 3, split: 3, flap: 2, loss: 2, delay: 2, starve: 1}
)

// event is one fault: it starts At after the run's start and is healed Dur
// later. Targets are director indexes (two for split, none for starve).
type event struct {
	At      dur   `json:"at"`
	Kind    kind  `json:"kind"`
	Targets []int `json:"targets,omitempty"`
	Dur     dur   `json:"dur"`
	Count   int   `json:"count,omitempty"`   // flap: flaps; starve: CPU hogs
	Percent int   `json:"percent,omitempty"` // loss
	Delay   dur   `json:"delay,omitempty"`   // delay: each packet's, both ways
	Jitter  dur   `json:"jitter,omitempty"`  // delay: ± this much, uniformly
}

func (e event) String() string {
	s := fmt.Sprintf("+%-8v %-9s", time.Duration(e.At).Round(time.Millisecond), e.Kind)
	for _, t := range e.Targets {
		s += " " + dirName(t)
	}
	s += fmt.Sprintf(" for %v", time.Duration(e.Dur).Round(time.Millisecond))
	switch e.Kind {
	case flap:
		s += fmt.Sprintf(" (%d flaps)", e.Count)
	case starve:
		s += fmt.Sprintf(" (%d CPU hogs)", e.Count)
	case loss:
		s += fmt.Sprintf(" (%d%% loss)", e.Percent)
	case delay:
		s += fmt.Sprintf(" (delay %v ± %v)", time.Duration(e.Delay).Round(time.Millisecond), time.Duration(e.Jitter).Round(time.Millisecond))
	}
	return s
}

// end is when e is healed, relative to the run's start.
func (e event) end() time.Duration { return time.Duration(e.At + e.Dur) }

// dur is a time.Duration that reads and writes as "1.5s" in JSON, so a
// schedule file can be edited by hand.
type dur time.Duration

func (d dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x, err := time.ParseDuration(s)
	*d = dur(x)
	return err
}

// schedule is a run's whole plan: what -replay reads back.
type schedule struct {
	Seed      uint64  `json:"seed"`
	Directors int     `json:"directors"`
	VIPs      int     `json:"vips"`
	Advert    dur     `json:"advert"`
	Duration  dur     `json:"duration"`
	Kinds     []kind  `json:"kinds"`
	Events    []event `json:"events"`
}

// generate draws a schedule from seed: the same seed and settings give
// the same schedule. Faults mostly come one at a time, each followed by a
// quiet gap longer than the convergence window, so that every heal is
// checked; a quarter of them overlap the previous one on other
// directors. A director takes part in one fault at a time.
func generate(seed uint64, directors, vips int, advert, length, window time.Duration, allowed []kind) schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := schedule{Seed: seed, Directors: directors, VIPs: vips, Advert: dur(advert), Duration: dur(length), Kinds: allowed}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	var bag []kind
	for _, k := range allowed {
		if k == split && directors < 2 {
			continue
		}
		for range weights[k] {
			bag = append(bag, k)
		}
	}
	if len(bag) == 0 {
		return s
	}
	busyUntil := make([]time.Duration, directors) // per director
	starveUntil := time.Duration(0)
	lastEnd := time.Duration(0)
	at := window + time.Second // the start's own convergence first
	for at < length {
		k := bag[r.IntN(len(bag))]
		free := []int{}
		for d, u := range busyUntil {
			if u <= at {
				free = append(free, d)
			}
		}
		e := event{At: dur(at), Kind: k}
		need := 1
		switch k {
		case split:
			need = 2
		case starve:
			need = 0
		}
		if len(free) < need || (k == starve && starveUntil > at) {
			at += 100 * time.Millisecond
			continue
		}
		for range need {
			i := r.IntN(len(free))
			e.Targets = append(e.Targets, free[i])
			free = slices.Delete(free, i, i+1)
		}
		slices.Sort(e.Targets)
		switch k {
		case crash, stop:
			e.Dur = dur(between(300*time.Millisecond, 3*time.Second))
		case pause:
			e.Dur = dur(between(100*time.Millisecond, 2*time.Second))
		case partition, split:
			e.Dur = dur(between(500*time.Millisecond, 4*time.Second))
		case flap:
			e.Dur = dur(between(200*time.Millisecond, 2*time.Second))
			e.Count = 1 + r.IntN(4)
		case loss:
			e.Dur = dur(between(time.Second, 5*time.Second))
			e.Percent = 10 + r.IntN(61)
		case delay:
			e.Dur = dur(between(time.Second, 5*time.Second))
			d := between(20*time.Millisecond, 300*time.Millisecond).Round(time.Millisecond)
			e.Delay = dur(d)
			e.Jitter = dur(between(0, d/4).Round(time.Millisecond))
		case starve:
			e.Dur = dur(between(time.Second, 4*time.Second))
			e.Count = 2 + r.IntN(5)
			starveUntil = e.end()
		}
		for _, t := range e.Targets {
			// A restart takes a moment beyond the scheduled end.
			busyUntil[t] = e.end() + time.Second
		}
		s.Events = append(s.Events, e)
		lastEnd = max(lastEnd, e.end())
		if r.IntN(4) == 0 {
			// Overlap: the next fault starts while this one lasts.
			at += time.Duration(r.Int64N(int64(e.Dur) + 1))
		} else {
			at = lastEnd + between(window+500*time.Millisecond, window+3*time.Second)
		}
	}
	return s
}

// loadReplay reads -replay: a schedule file, or a seed (then the schedule
// is generated again from it with the run's other flags).
func loadReplay(arg string) (s schedule, seedOnly bool, err error) {
	if seed, err := strconv.ParseUint(arg, 10, 64); err == nil {
		return schedule{Seed: seed}, true, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return s, false, fmt.Errorf("-replay %s: %w", arg, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("-replay %s: %w", arg, err)
	}
	if s.Directors < 2 || s.Directors > 3 || s.VIPs < 1 || s.Advert <= 0 {
		return s, false, fmt.Errorf("-replay %s: want directors 2 or 3, vips >= 1 and advert > 0 (have %d, %d, %v)",
			arg, s.Directors, s.VIPs, time.Duration(s.Advert))
	}
	for i, e := range s.Events {
		if !slices.Contains(kinds, e.Kind) {
			return s, false, fmt.Errorf("-replay %s: event %d: unknown kind %q", arg, i, e.Kind)
		}
		if e.Kind == delay && (e.Jitter < 0 || e.Jitter > e.Delay) {
			return s, false, fmt.Errorf("-replay %s: event %d: want 0 <= jitter <= delay (have %v, %v)",
				arg, i, time.Duration(e.Jitter), time.Duration(e.Delay))
		}
		for _, t := range e.Targets {
			if t < 0 || t >= s.Directors {
				return s, false, fmt.Errorf("-replay %s: event %d: no director %d", arg, i, t)
			}
		}
	}
	return s, false, nil
}

func dirName(i int) string { return "dir" + strconv.Itoa(i+1) }
