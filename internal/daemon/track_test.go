package daemon

import (
	"context"
	"fmt"
	"os"
	osuser "os/user"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/script"
	"tandem/internal/track"
)

func parseConf(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(src), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

// TestUntracked: a reload that stops an instance tracking an object (its
// own track_script or its sync group's) names that contribution, so that
// the instance, which runs on in place, drops it; objects still tracked
// and instances that never tracked them are not named.
func TestUntracked(t *testing.T) {
	const base = `vrrp_script chk {
    script "/bin/true"
    weight 10
}
vrrp_script grp {
    script "/bin/true"
}
vrrp_sync_group G {
    group {
        VI_1
    }
    track_script {
        grp
    }
}
vrrp_instance VI_1 {
    interface eth0
    dont_track_primary
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.1/24
    }
    track_script {
        chk
    }
}
vrrp_instance VI_2 {
    interface eth0
    dont_track_primary
    virtual_router_id 2
    priority 100
    virtual_ipaddress {
        10.0.0.2/24
    }
    track_script {
        chk
    }
}
`
	parse := func(src string) *config.Config { return parseConf(t, src) }
	old := parse(base)
	for _, tc := range []struct {
		name string
		edit func(string) string
		want map[string][]string
	}{
		{"nothing", func(s string) string { return s }, nil},
		{"weight only", func(s string) string { return strings.Replace(s, "weight 10", "weight 20", 1) }, nil},
		{"one instance's track_script", func(s string) string {
			return strings.Replace(s, "    track_script {\n        chk\n    }\n}\nvrrp_instance VI_2", "}\nvrrp_instance VI_2", 1)
		}, map[string][]string{"VI_1": {"vrrp_script chk"}}},
		{"the group's", func(s string) string { return strings.Replace(s, "    track_script {\n        grp\n    }\n", "", 1) },
			map[string][]string{"VI_1": {"vrrp_script grp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.edit(base)
			got := untracked(old, parse(src))
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("untracked (-want +got):\n%s", d)
			}
		})
	}
}

// trackCall is one call of the engine's Track.
type trackCall struct {
	instance, name string
	weight         int
	fault          bool
}

// fakeEngine records what the trackers tell the engine.
type fakeEngine struct {
	mu    sync.Mutex
	calls []trackCall
}

func (f *fakeEngine) Track(instance, name string, weight int, fault bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, trackCall{instance, name, weight, fault})
}

func (f *fakeEngine) recorded() []trackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// last is the last call for instance's use of the vrrp_script name.
func (f *fakeEngine) last(instance, name string) (trackCall, bool) {
	calls := f.recorded()
	for i := len(calls) - 1; i >= 0; i-- {
		if c := calls[i]; c.instance == instance && c.name == trackerName(track.KindScript, name) {
			return c, true
		}
	}
	return trackCall{}, false
}

// waitCall waits until the engine has been told want.
func (f *fakeEngine) waitCall(t *testing.T, want trackCall) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !slices.Contains(f.recorded(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("engine not told %+v within %v; told %+v", want, waitLimit, f.recorded())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// trackConf is a configuration whose instances VI_1 and VI_2 track the
// vrrp_script chk, which appends a line to runs each time it runs and
// exits with status code; extra goes in chk's block, refs and vi2Refs in
// VI_1's and VI_2's track_script.
type trackConf struct {
	runs, sh             string
	extra, refs, vi2Refs string
	code                 int
	vi2VRID, vi2Priority int
}

func newTrackConf(t *testing.T, code int) *trackConf {
	t.Helper()
	dir := t.TempDir()
	runs := dir + "/runs"
	return &trackConf{runs: runs, sh: lab.WriteScript(t, dir, "chk.sh", fmt.Sprintf("echo run >> %s\nexit $1\n", runs)),
		refs: "chk", vi2Refs: "chk", code: code, vi2VRID: 2, vi2Priority: 100}
}

func (c *trackConf) String() string {
	u, _ := osuser.Current()
	return fmt.Sprintf(`global_defs {
    script_user %s
}
vrrp_script chk {
    script "%s %d"
    interval 3600
    %s
}
vrrp_instance VI_1 {
    interface eth0
    dont_track_primary
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.1/24
    }
    %s
}
vrrp_instance VI_2 {
    interface eth0
    dont_track_primary
    virtual_router_id %d
    priority %d
    virtual_ipaddress {
        10.0.0.2/24
    }
    %s
}
`, u.Username, c.sh, c.code, c.extra, trackScript(c.refs), c.vi2VRID, c.vi2Priority, trackScript(c.vi2Refs))
}

// trackScript is a track_script block of refs, none without.
func trackScript(refs string) string {
	if refs == "" {
		return ""
	}
	return "track_script {\n        " + refs + "\n    }"
}

// runTrackers starts the trackers of c as the daemon does, until the test
// ends.
func runTrackers(t *testing.T, c *trackConf) (*trackerSet, *fakeEngine, *config.Config) {
	t.Helper()
	cfg := parseConf(t, c.String())
	eng := &fakeEngine{}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startTrackers(ctx, cfg, script.NewUsers(&cfg.Global, lab.TestLogger(t)), eng, lab.TestLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		s.stop()
	})
	return s, eng, cfg
}

// reloadTrackers applies c to s as the daemon's Reload does.
func reloadTrackers(t *testing.T, s *trackerSet, old *config.Config, c *trackConf) *config.Config {
	t.Helper()
	cfg := parseConf(t, c.String())
	if err := s.reload(old, cfg, script.NewUsers(&cfg.Global, lab.TestLogger(t))); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runsAfterReload is how many times the script has run, a while after a
// reload (and none of these tests' scripts runs twice on its own: their
// interval is an hour). The wait bounds nothing the tests assert: a
// restarted tracker runs its script at once, and it would have to be
// slower than this to go unseen.
func runsAfterReload(t *testing.T, c *trackConf) int {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	b, err := os.ReadFile(c.runs)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

// scriptTracker is s's running tracker of the vrrp_script name.
func scriptTracker(s *trackerSet, name string) *running {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.ws[watchKey{track.KindScript, name}]; w != nil {
		return w.run
	}
	return nil
}

// A reload that changes nothing of a tracked script, nor of who tracks
// it, leaves its tracker running as it was: the same tracker, the script
// not run again. Trackers used to be stopped and started on every reload.
func TestReloadKeepsTracker(t *testing.T) {
	c := newTrackConf(t, 0)
	c.extra = "weight 10"
	s, eng, cfg := runTrackers(t, c)
	eng.waitCall(t, trackCall{"VI_1", "vrrp_script chk", 10, false})
	before := scriptTracker(s, "chk")
	c.vi2Priority = 90 // an instance changes; the tracker does not
	reloadTrackers(t, s, cfg, c)
	if scriptTracker(s, "chk") != before {
		t.Error("the reload replaced vrrp_script chk's tracker")
	}
	if n := runsAfterReload(t, c); n != 1 {
		t.Errorf("chk ran %d times, want once (the reload ran it again)", n)
	}
}

// A failing tracked script (weight 0: its instances are in FAULT) whose
// rise and fall a reload changes stays failing: its instances are never
// told it passes, and it is not run again for the reload. An instance the
// reload re-creates (VI_2, another VRID) starts without any contribution
// in the engine: it is told the fault by the reload itself, before it
// could leave FAULT, not when the script next reports.
func TestReloadKeepsFailingScript(t *testing.T) {
	c := newTrackConf(t, 1)
	c.extra = "weight 0\n    rise 2\n    fall 2"
	s, eng, cfg := runTrackers(t, c)
	eng.waitCall(t, trackCall{"VI_1", "vrrp_script chk", 0, true})
	before := scriptTracker(s, "chk")
	c.extra = "weight 0\n    rise 3\n    fall 3"
	c.vi2VRID = 12
	reloadTrackers(t, s, cfg, c)
	// No wait: the reload has told it when it returns.
	if n := countCalls(eng, trackCall{"VI_2", "vrrp_script chk", 0, true}); n != 2 {
		t.Errorf("VI_2 told of chk's fault %d times by the end of the reload, want 2 (at start, and as re-created)", n)
	}
	if scriptTracker(s, "chk") != before {
		t.Error("the reload replaced vrrp_script chk's tracker")
	}
	if n := runsAfterReload(t, c); n != 1 {
		t.Errorf("chk ran %d times, want once (the reload ran it again)", n)
	}
	for _, call := range eng.recorded() {
		if !call.fault {
			t.Errorf("engine told %+v: the instance would leave FAULT", call)
		}
	}
}

// A track weight changed by a reload (track_script { chk weight N }: a
// weight of the reference) applies at once, from the script's last result,
// without running the script again.
func TestReloadTrackWeight(t *testing.T) {
	c := newTrackConf(t, 0)
	c.refs = "chk weight 10"
	s, eng, cfg := runTrackers(t, c)
	eng.waitCall(t, trackCall{"VI_1", "vrrp_script chk", 10, false})
	c.refs = "chk weight 30"
	reloadTrackers(t, s, cfg, c)
	// No wait: the reload has applied it when it returns.
	if got, want := lastOf(eng, "VI_1"), (trackCall{"VI_1", "vrrp_script chk", 30, false}); got != want {
		t.Errorf("after the reload VI_1 has %+v, want %+v", got, want)
	}
	if n := runsAfterReload(t, c); n != 1 {
		t.Errorf("chk ran %d times, want once (the reload ran it again)", n)
	}
}

// A tracked script a reload removes stops, and its instances lose its
// contribution at once.
func TestReloadRemovesTracker(t *testing.T) {
	c := newTrackConf(t, 0)
	c.extra = "weight 10"
	s, eng, cfg := runTrackers(t, c)
	eng.waitCall(t, trackCall{"VI_1", "vrrp_script chk", 10, false})
	// chk stays defined; nobody tracks it.
	c.refs, c.vi2Refs = "", ""
	reloadTrackers(t, s, cfg, c)
	for _, inst := range []string{"VI_1", "VI_2"} {
		if got, want := lastOf(eng, inst), (trackCall{inst, "vrrp_script chk", 0, false}); got != want {
			t.Errorf("after the reload %s has %+v, want %+v", inst, got, want)
		}
	}
	if scriptTracker(s, "chk") != nil {
		t.Error("vrrp_script chk still has a tracker")
	}
}

func countCalls(eng *fakeEngine, want trackCall) int {
	n := 0
	for _, c := range eng.recorded() {
		if c == want {
			n++
		}
	}
	return n
}

func lastOf(eng *fakeEngine, instance string) trackCall {
	c, _ := eng.last(instance, "chk")
	return c
}
