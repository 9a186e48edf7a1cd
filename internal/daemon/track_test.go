package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	osuser "os/user"
	"path/filepath"
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
    sync_group_tracking_weight
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
	parse := func(src string) *config.Config { return lab.ParseConfig(t, src) }
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

func (f *fakeEngine) Track(instance, name string, weight int, fault bool, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, trackCall{instance, name, weight, fault})
}

func (f *fakeEngine) recorded() []trackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
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
// vrrp_script chk, which appends the name of the user it runs as to runs
// each time it runs and exits with status code; user is script_user; extra goes in chk's block, refs and vi2Refs in
// VI_1's and VI_2's track_script.
type trackConf struct {
	runs, sh, user       string
	extra, refs, vi2Refs string
	code                 int
	vi2VRID, vi2Priority int
}

func newTrackConf(t *testing.T, code int) *trackConf {
	t.Helper()
	dir := t.TempDir()
	runs := dir + "/runs"
	u, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	return &trackConf{runs: runs, sh: lab.WriteScript(t, dir, "chk.sh", fmt.Sprintf("id -un >> %s\nexit $1\n", runs)),
		user: u.Username, refs: "chk", vi2Refs: "chk", code: code, vi2VRID: 2, vi2Priority: 100}
}

func (c *trackConf) String() string {
	return fmt.Sprintf(`global_defs {
    script_user %s
}
vrrp_script chk {
    script "%s %d"
    interval 3600
    %s
}
`, c.user, c.sh, c.code, c.extra) + trackingInstance("VI_1", 1, 100, c.refs) + trackingInstance("VI_2", c.vi2VRID, c.vi2Priority, c.vi2Refs)
}

// trackingInstance is a vrrp_instance tracking the scripts refs.
func trackingInstance(name string, vrid, priority int, refs string) string {
	return fmt.Sprintf(`vrrp_instance %s {
    interface eth0
    dont_track_primary
    virtual_router_id %d
    priority %d
    virtual_ipaddress {
        10.0.0.%d/24
    }
    %s
}
`, name, vrid, priority, vrid, trackScript(refs))
}

// trackScript is a track_script block of refs, none without.
func trackScript(refs string) string {
	if refs == "" {
		return ""
	}
	return "track_script {\n        " + refs + "\n    }"
}

// chkRun is c's trackers, run as the daemon runs them until the test
// ends, and what they told the engine.
type chkRun struct {
	c   *trackConf
	s   *trackerSet
	eng *fakeEngine
	cfg *config.Config
}

// runChk starts c's trackers and waits until chk's first result has
// reached the engine as first.
func runChk(t *testing.T, c *trackConf, first trackCall) *chkRun {
	t.Helper()
	r := &chkRun{c: c, eng: &fakeEngine{}, cfg: lab.ParseConfig(t, c.String())}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startTrackers(ctx, r.cfg, script.NewUsers(&r.cfg.Global, lab.TestLogger(t)), nil, r.eng, lab.TestLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.s = s
	t.Cleanup(func() {
		cancel()
		s.stop()
	})
	r.eng.waitCall(t, first)
	return r
}

// reload applies c, as edit leaves it, as the daemon's Reload does, and
// returns what the engine had been told when the reload returned.
func (r *chkRun) reload(t *testing.T, edit func(c *trackConf)) []trackCall {
	t.Helper()
	edit(r.c)
	cfg := lab.ParseConfig(t, r.c.String())
	if err := r.s.reload(r.cfg, cfg, script.NewUsers(&cfg.Global, lab.TestLogger(t))); err != nil {
		t.Fatal(err)
	}
	r.cfg = cfg
	return r.eng.recorded()
}

// reloadKeeping is reload, checking that chk's tracker is the one that ran
// before and that the script was not run again.
func (r *chkRun) reloadKeeping(t *testing.T, edit func(c *trackConf)) []trackCall {
	t.Helper()
	before := r.s.scriptTracker("chk")
	calls := r.reload(t, edit)
	if r.s.scriptTracker("chk") != before {
		t.Error("the reload replaced vrrp_script chk's tracker")
	}
	if n := runsAfterReload(t, r.c); n != 1 {
		t.Errorf("chk ran %d times, want once (the reload ran it again)", n)
	}
	return calls
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
	return len(strings.Fields(string(b)))
}

// scriptTracker is s's running tracker of the vrrp_script name.
func (s *trackerSet) scriptTracker(name string) *running {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.ws[watchKey{track.KindScript, name}]; w != nil {
		return w.run
	}
	return nil
}

// last is the last of calls for instance's use of chk.
func last(calls []trackCall, instance string) trackCall {
	for i := len(calls) - 1; i >= 0; i-- {
		if c := calls[i]; c.instance == instance && c.name == trackerName(track.KindScript, "chk") {
			return c
		}
	}
	return trackCall{}
}

// A reload that changes nothing of a tracked script, nor of who tracks
// it, leaves its tracker running as it was: the same tracker, the script
// not run again. Trackers used to be stopped and started on every reload.
func TestReloadKeepsTracker(t *testing.T) {
	c := newTrackConf(t, 0)
	c.extra = "weight 10"
	r := runChk(t, c, trackCall{"VI_1", "vrrp_script chk", 10, false})
	// An instance changes; the tracker does not.
	r.reloadKeeping(t, func(c *trackConf) { c.vi2Priority = 90 })
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
	fault := trackCall{"VI_2", "vrrp_script chk", 0, true}
	r := runChk(t, c, fault)
	calls := r.reloadKeeping(t, func(c *trackConf) {
		c.extra = "weight 0\n    rise 3\n    fall 3"
		c.vi2VRID = 12
	})
	if n := len(slices.DeleteFunc(calls, func(c trackCall) bool { return c != fault })); n != 2 {
		t.Errorf("VI_2 told of chk's fault %d times by the end of the reload, want 2 (at start, and as re-created)", n)
	}
	for _, call := range r.eng.recorded() {
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
	r := runChk(t, c, trackCall{"VI_1", "vrrp_script chk", 10, false})
	calls := r.reloadKeeping(t, func(c *trackConf) { c.refs = "chk weight 30" })
	if got, want := last(calls, "VI_1"), (trackCall{"VI_1", "vrrp_script chk", 30, false}); got != want {
		t.Errorf("at the end of the reload VI_1 has %+v, want %+v", got, want)
	}
}

// A tracked script a reload removes stops, and its instances lose its
// contribution at once.
func TestReloadRemovesTracker(t *testing.T) {
	c := newTrackConf(t, 0)
	c.extra = "weight 10"
	r := runChk(t, c, trackCall{"VI_1", "vrrp_script chk", 10, false})
	// chk stays defined; nobody tracks it.
	calls := r.reload(t, func(c *trackConf) { c.refs, c.vi2Refs = "", "" })
	for _, inst := range []string{"VI_1", "VI_2"} {
		if got, want := last(calls, inst), (trackCall{inst, "vrrp_script chk", 0, false}); got != want {
			t.Errorf("at the end of the reload %s has %+v, want %+v", inst, got, want)
		}
	}
	if r.s.scriptTracker("chk") != nil {
		t.Error("vrrp_script chk still has a tracker")
	}
}

// A script whose identity a reload changes from outside its definition
// (global_defs script_user) is run again as the new user by a new tracker:
// Diff sees the vrrp_script unchanged, but what it would run is not.
func TestReloadScriptUserRestartsTracker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the script runs as another user")
	}
	if _, err := osuser.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody to run scripts as: %v", err)
	}
	c := newTrackConf(t, 0)
	// nobody must reach the script and the file it writes.
	for _, p := range []string{filepath.Dir(filepath.Dir(c.runs)), filepath.Dir(c.runs)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(c.runs, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(c.runs, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	c.user = "root"
	c.extra = "weight 10"
	r := runChk(t, c, trackCall{"VI_1", "vrrp_script chk", 10, false})
	before := r.s.scriptTracker("chk")
	r.reload(t, func(c *trackConf) { c.user = "nobody" })
	if r.s.scriptTracker("chk") == before {
		t.Error("vrrp_script chk kept its tracker, which runs it as root")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		b, err := os.ReadFile(c.runs)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(b)); slices.Equal(got, []string{"root", "nobody"}) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("chk ran as %q, want root then nobody", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTrackGroupTrackers: the instances of a track_group track the
// interface of each static entry naming the group (an address's dev, a
// route's dev, a rule's iif) with weight 0, so that the interface going
// down puts them in FAULT; entries with no_track, without an interface or
// without a group add nothing, and an interface an instance tracked with a
// weight becomes a fault (keepalived add_vrrp_to_interface).
func TestTrackGroupTrackers(t *testing.T) {
	cfg := lab.ParseConfig(t, `track_group TG {
    group {
        VI_1
        VI_2
    }
}
static_ipaddress {
    192.0.2.1/24 dev eth1 track_group TG
    192.0.2.2/24 dev eth5
}
static_routes {
    198.51.100.0/24 via 192.0.2.254 dev eth2 track_group TG
    203.0.113.0/24 via 192.0.2.254 track_group TG
}
static_rules {
    from 192.0.2.0/24 table 100 iif eth3 track_group TG
    from 192.0.2.0/24 table 101 iif eth4 no_track track_group TG
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    track_interface {
        eth1 weight 10
    }
    virtual_ipaddress {
        10.0.0.1/24
    }
}
`+instances("VI_2", "VI_3"))
	ws := trackers(cfg)
	got := map[string]map[string]int{} // interface -> instance -> weight
	for k, w := range ws {
		if k.kind != track.KindInterface {
			continue
		}
		got[k.name] = map[string]int{}
		for _, u := range w.users {
			if _, dup := got[k.name][u.instance]; dup {
				t.Errorf("interface %s: instance %s tracks it twice", k.name, u.instance)
			}
			got[k.name][u.instance] = u.ref.Weight
		}
	}
	want := map[string]map[string]int{
		"eth0": {"VI_1": 0, "VI_2": 0, "VI_3": 0}, // their own interfaces
		"eth1": {"VI_1": 0, "VI_2": 0},
		"eth2": {"VI_1": 0, "VI_2": 0},
		"eth3": {"VI_1": 0, "VI_2": 0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("interface watches (-want +got):\n%s", d)
	}
	// A tracked static entry's interface going down is a fault of each
	// instance of the group, whose reason names the group; its coming
	// back is none.
	sink := &detailSink{}
	set := &trackerSet{eng: sink, log: slog.New(slog.DiscardHandler), ws: ws}
	eth2 := ws[watchKey{track.KindInterface, "eth2"}]
	set.apply(eth2, track.Update{Kind: track.KindInterface, Name: "eth2", OK: false})
	set.apply(eth2, track.Update{Kind: track.KindInterface, Name: "eth2", OK: true})
	wantCalls := []string{
		"VI_1 track_interface eth2 0 true track_group TG: track_interface eth2 down",
		"VI_2 track_interface eth2 0 true track_group TG: track_interface eth2 down",
		"VI_1 track_interface eth2 0 false track_group TG: track_interface eth2 up",
		"VI_2 track_interface eth2 0 false track_group TG: track_interface eth2 up",
	}
	if d := cmp.Diff(wantCalls, sink.calls); d != "" {
		t.Errorf("engine told (-want +got):\n%s", d)
	}
}

// detailSink records the engine's Track calls with their detail.
type detailSink struct{ calls []string }

func (s *detailSink) Track(instance, name string, weight int, fault bool, detail string) {
	s.calls = append(s.calls, fmt.Sprintf("%s %s %d %t %s", instance, name, weight, fault, detail))
}

// instances is a minimal vrrp_instance block for each name, on eth0.
func instances(names ...string) string {
	var b strings.Builder
	for i, n := range names {
		fmt.Fprintf(&b, "vrrp_instance %s {\n interface eth0\n virtual_router_id %d\n priority 100\n virtual_ipaddress {\n  10.0.1.%d/24\n }\n}\n", n, 100+i, i+1)
	}
	return b.String()
}
