package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lab"
)

var tandemBin string

func TestMain(m *testing.M) { os.Exit(lab.RunWithTandem(m, &tandemBin)) }

// TestGenerate: a seed gives one schedule, which survives the file that
// -replay reads; no director takes part in two faults at once; quiet gaps
// longer than the window follow most faults.
func TestGenerate(t *testing.T) {
	const w = 700 * time.Millisecond
	a := generate(42, 3, 2, 100*time.Millisecond, 5*time.Minute, w, kinds)
	b := generate(42, 3, 2, 100*time.Millisecond, 5*time.Minute, w, kinds)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different schedules:\n%s", diff)
	}
	if c := generate(43, 3, 2, 100*time.Millisecond, 5*time.Minute, w, kinds); cmp.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
	if len(a.Events) < 30 {
		t.Fatalf("%d events in 5 minutes; want at least 30", len(a.Events))
	}
	seen := map[kind]bool{}
	quiet := 0
	for i, e := range a.Events {
		seen[e.Kind] = true
		for _, f := range a.Events[:i] {
			if f.end() <= time.Duration(e.At) {
				continue
			}
			for _, x := range e.Targets {
				for _, y := range f.Targets {
					if x == y {
						t.Errorf("%v overlaps %v on %s", e, f, dirName(x))
					}
				}
			}
		}
		if i > 0 && time.Duration(e.At) > lastEnd(a.Events[:i])+w {
			quiet++
		}
	}
	for _, k := range kinds {
		if !seen[k] {
			t.Errorf("no %s in 5 minutes", k)
		}
	}
	if quiet < len(a.Events)/2 {
		t.Errorf("%d of %d faults follow a quiet gap longer than the window; want most", quiet, len(a.Events))
	}

	only := generate(42, 2, 1, 100*time.Millisecond, time.Minute, w, []kind{pause})
	for _, e := range only.Events {
		if e.Kind != pause {
			t.Fatalf("-kinds pause drew %v", e)
		}
	}

	f := filepath.Join(t.TempDir(), "s.json")
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, js, 0o644); err != nil {
		t.Fatal(err)
	}
	back, seedOnly, err := loadReplay(f)
	if err != nil || seedOnly {
		t.Fatalf("loadReplay: %v, seed only %v", err, seedOnly)
	}
	if diff := cmp.Diff(a, back); diff != "" {
		t.Fatalf("schedule changed through its file:\n%s", diff)
	}
	if s, seedOnly, err := loadReplay("42"); err != nil || !seedOnly || s.Seed != 42 {
		t.Fatalf(`loadReplay("42") = %v, %v, %v`, s.Seed, seedOnly, err)
	}
}

// TestGenerateDelay: -kinds delay draws delays of one director, 1-5 s
// long, each packet held 20-300 ms with a jitter of at most a quarter of
// that; they survive the schedule file, and a file whose jitter exceeds
// its delay is refused.
func TestGenerateDelay(t *testing.T) {
	const w = 700 * time.Millisecond
	s := generate(7, 2, 2, 100*time.Millisecond, 2*time.Minute, w, []kind{delay})
	if len(s.Events) < 10 {
		t.Fatalf("%d delays in 2 minutes; want at least 10", len(s.Events))
	}
	distinct := map[dur]bool{}
	for _, e := range s.Events {
		d, j := time.Duration(e.Delay), time.Duration(e.Jitter)
		if e.Kind != delay || len(e.Targets) != 1 || e.Dur < dur(time.Second) || e.Dur > dur(5*time.Second) ||
			d < 20*time.Millisecond || d > 300*time.Millisecond || j < 0 || j > d/4+time.Millisecond {
			t.Errorf("drawn: %v", e)
		}
		if !strings.Contains(e.String(), fmt.Sprintf("delay %v ± %v", d, j)) {
			t.Errorf("%q does not say its delay %v and jitter %v", e.String(), d, j)
		}
		distinct[e.Delay] = true
	}
	if len(distinct) < len(s.Events)/2 {
		t.Errorf("%d distinct delays among %d events: not drawn", len(distinct), len(s.Events))
	}

	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"kind":"delay"`) || !strings.Contains(string(js), `"delay":"`) ||
		!strings.Contains(string(js), `"jitter":"`) {
		t.Fatalf("schedule file without the delays: %s", js)
	}
	f := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(f, js, 0o644); err != nil {
		t.Fatal(err)
	}
	back, _, err := loadReplay(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Fatalf("delays changed through the file:\n%s", diff)
	}

	s.Events[0].Jitter = s.Events[0].Delay + 1
	js, _ = json.Marshal(s)
	if err := os.WriteFile(f, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadReplay(f); err == nil || !strings.Contains(err.Error(), "jitter") {
		t.Errorf("a delay with more jitter than delay: loadReplay = %v", err)
	}
}

func lastEnd(es []event) time.Duration {
	var m time.Duration
	for _, e := range es {
		m = max(m, e.end())
	}
	return m
}

// TestChecker judges hand-made samples.
func TestChecker(t *testing.T) {
	all := holdings{vip: true, route: true, rule: true}
	obs := func(s1, s2 string, k1, k2 holdings) []observation {
		st := func(s string) map[string]string {
			if s == "" {
				return nil
			}
			return map[string]string{"VI_1": s}
		}
		return []observation{
			{states: st(s1), kernel: map[string]holdings{"VI_1": k1}},
			{states: st(s2), kernel: map[string]holdings{"VI_1": k2}},
		}
	}
	ms := time.Millisecond
	tests := []struct {
		name    string
		judge   bool
		samples [][]observation
		want    []string // substrings of the violations, in order
	}{
		{"one master holding all", true, [][]observation{obs("MASTER", "BACKUP", all, holdings{})}, nil},
		{"two masters, both holding", true, [][]observation{obs("MASTER", "MASTER", all, all)},
			[]string{"2 directors MASTER dir1,dir2", "VIP held by dir1,dir2", "route", "rule"}},
		{"no master", true, [][]observation{obs("BACKUP", "FAULT", holdings{}, holdings{})},
			[]string{"0 directors MASTER"}},
		{"a backup keeps the VIP", true, [][]observation{obs("MASTER", "BACKUP", all, holdings{vip: true})},
			[]string{"VIP held by dir1,dir2 while MASTER is dir1"}},
		{"a draining backup keeps all, silenced", true, [][]observation{obs("MASTER", "BACKUP"+draining, all, all)}, nil},
		{"a master without its rule", true, [][]observation{obs("MASTER", "BACKUP", holdings{vip: true, route: true}, holdings{})},
			[]string{"rule held by none while MASTER is dir1"}},
		{"the lower priority is master", true, [][]observation{obs("BACKUP", "MASTER", holdings{}, all)},
			[]string{"MASTER is dir2, not dir1, which has the highest priority"}},
		{"not judged in the window", false, [][]observation{obs("MASTER", "MASTER", all, all)}, nil},
		{"a stale report is not judged", true, [][]observation{obs("MASTER", "", all, all)}, nil},
		{"a lasting split brain is one violation of each kind", true, [][]observation{
			obs("MASTER", "MASTER", all, holdings{vip: true}), obs("MASTER", "MASTER", all, holdings{vip: true}),
		}, []string{"2 directors MASTER", "VIP held by dir1,dir2", "route held by dir1 while MASTER is dir1,dir2", "rule held by dir1 while"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker([]string{"VI_1"}, []int{0})
			for i, s := range tt.samples {
				c.sample(time.Duration(i)*20*ms, tt.judge, s)
			}
			vs := c.violations()
			if len(vs) != len(tt.want) {
				t.Fatalf("got %d violations %v, want %d %q", len(vs), vs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(vs[i].What, w) {
					t.Errorf("violation %d = %q, want it to say %q", i, vs[i].What, w)
				}
			}
		})
	}
	c := newChecker([]string{"VI_1"}, []int{0})
	for i, s := range [][]observation{
		obs("MASTER", "MASTER", all, all), obs("MASTER", "MASTER", all, all), obs("MASTER", "BACKUP", all, holdings{}),
	} {
		c.sample(time.Duration(i)*20*ms, true, s)
	}
	if vs := c.violations(); len(vs) == 0 || vs[0].Samples != 2 || vs[0].Lasted != 20*ms {
		t.Errorf("two samples of split brain 20 ms apart: got %v", vs)
	}
	c = newChecker([]string{"VI_1"}, []int{0})
	c.stopped(time.Second, "dir1", map[string]holdings{"VI_1": {route: true}})
	c.stopped(time.Second, "dir2", map[string]holdings{"VI_1": {}})
	if vs := c.violations(); len(vs) != 1 || !strings.Contains(vs[0].What, "dir1 stopped cleanly (SIGTERM) but left VI_1: route") {
		t.Errorf("a route left after a clean stop: got %v", vs)
	}
}

// chaosT runs a schedule in the lab for a test.
func chaosT(t *testing.T, sch schedule, sabotage bool) result {
	t.Helper()
	lab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := chaos(ctx, sch, options{tandem: tandemBin, margin: 350 * time.Millisecond, sabotage: sabotage, log: lab.TestWriter(t), logDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printTable(&b, res)
	t.Log("\n" + b.String())
	return res
}

// TestChaos runs 30 s of a fixed seed's faults on two directors (all but
// CPU starvation, which would load the machine the other tests share) and
// wants no violation.
func TestChaos(t *testing.T) {
	const advert = 100 * time.Millisecond
	var allowed []kind
	for _, k := range kinds {
		if k != starve {
			allowed = append(allowed, k)
		}
	}
	sch := generate(20261206, 2, 2, advert, 30*time.Second, window(advert, 2, 350*time.Millisecond), allowed)
	res := chaosT(t, sch, false)
	if len(res.Violations) > 0 {
		var b strings.Builder
		printSchedule(&b, sch)
		t.Errorf("%d violations:\n%s", len(res.Violations), b.String())
	}
	n := 0
	for _, c := range res.Executed {
		n += c
	}
	if n < 5 || res.Judged < 100 {
		t.Errorf("%d faults injected, %d samples judged: too few for the run to mean anything", n, res.Judged)
	}
	for _, a := range res.Avail {
		if a.Requests < 100 || a.OK == 0 {
			t.Errorf("%s: %d requests, %d answered: the client did not run", a.VIP, a.Requests, a.OK)
		}
	}
}

// TestChaosCatchesSplitBrain cuts two directors off from each other and,
// with sabotage, never heals them while the run believes it has: both
// stay MASTER with the VIP, and the checker must say so.
func TestChaosCatchesSplitBrain(t *testing.T) {
	sch := schedule{Seed: 1, Directors: 2, VIPs: 1, Advert: dur(100 * time.Millisecond), Duration: dur(6 * time.Second),
		Kinds:  []kind{split},
		Events: []event{{At: dur(2 * time.Second), Kind: split, Targets: []int{0, 1}, Dur: dur(time.Second)}}}
	res := chaosT(t, sch, true)
	var masters, vip bool
	for _, v := range res.Violations {
		masters = masters || strings.Contains(v.What, "2 directors MASTER dir1,dir2")
		vip = vip || strings.Contains(v.What, "VIP held by dir1,dir2")
		if v.At < 3*time.Second+res.Window {
			t.Errorf("violation %v before the heal's window ended (%v)", v, 3*time.Second+res.Window)
		}
	}
	if !masters || !vip {
		t.Errorf("split brain left in place: violations %v; want two masters and the VIP on both", res.Violations)
	}
}
