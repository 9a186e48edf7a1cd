package vrrp

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/config"
)

func mustParse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(src), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

// TestEngineReload: an unchanged configuration changes nothing (no
// transition, the VIP stays); a new instance starts beside the running one;
// a changed instance restarts alone; a removed one stops.
func TestEngineReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		vi1 := instanceConf("VI_1", 1, 200, "")
		a := startRouter(t, lan, "10.0.0.1", vi1)
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		transitions := func(r *router) uint64 { return r.engine.Status()[0].Transitions }
		ta, tb := transitions(a), transitions(b)

		check := func(name, conf string, want ReloadReport) {
			t.Helper()
			got := a.engine.Reload(mustParse(t, conf))
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: report (-want +got):\n%s", name, diff)
			}
		}
		check("unchanged", vi1, ReloadReport{Kept: []string{"VI_1"}})
		lan.advance(300 * time.Millisecond) // six adverts: the backup must not notice
		if transitions(a) != ta || transitions(b) != tb || !a.host.holds("10.0.0.101/24") {
			t.Fatalf("an unchanged reload moved something: transitions a %d->%d, b %d->%d", ta, transitions(a), tb, transitions(b))
		}

		two := vi1 + instanceConf("VI_2", 2, 200, "")
		check("added", two, ReloadReport{Kept: []string{"VI_1"}, Started: []string{"VI_2"}})
		lan.waitFor(t, "VI_2 master", 2*time.Second, func() bool { return a.state("VI_2") == Master })
		if transitions(a) != ta || transitions(b) != tb {
			t.Error("starting VI_2 disturbed VI_1")
		}

		changed := strings.Replace(vi1, "priority 200", "priority 150", 1) + instanceConf("VI_2", 2, 200, "")
		check("changed", changed, ReloadReport{Kept: []string{"VI_2"}, Restarted: []string{"VI_1"}})
		lan.waitFor(t, "VI_1 master again at 150", 3*time.Second, func() bool {
			st := a.engine.Status()
			return a.state("VI_1") == Master && st[0].Priority == 150
		})

		check("removed", changed[:strings.Index(changed, "vrrp_instance VI_2")], ReloadReport{Kept: []string{"VI_1"}, Stopped: []string{"VI_2"}})
		if a.host.holds("10.0.0.102/24") {
			t.Error("the removed instance's VIP is still there")
		}
		if len(a.engine.Status()) != 1 {
			t.Errorf("status lists %d instances after removing one of two", len(a.engine.Status()))
		}
	})
}

// TestReloadRemovalRetried: an instance a reload stops while the kernel
// refuses to remove its VIP keeps being retried until the VIP is gone; a
// restarted instance whose new self installs the same VIP takes it over,
// and the old one's retries stop (they would remove the new master's VIP).
func TestReloadRemovalRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		vi1, vi2 := instanceConf("VI_1", 1, 200, ""), instanceConf("VI_2", 2, 200, "")
		a := startRouter(t, lan, "10.0.0.1", vi1+vi2)
		lan.waitFor(t, "both master", 2*time.Second, func() bool { return a.state("VI_1") == Master && a.state("VI_2") == Master })

		a.host.failDeletes(3)
		a.engine.Reload(mustParse(t, vi1))
		lan.waitFor(t, "the stopped VI_2's VIP removed", 10*time.Second, func() bool { return !a.host.holds("10.0.0.102/24") })

		a.host.failDeletes(1 << 30)
		changed := strings.Replace(vi1, "priority 200", "priority 150", 1)
		if rep := a.engine.Reload(mustParse(t, changed)); len(rep.Restarted) != 1 {
			t.Fatalf("reload: %+v, want VI_1 restarted", rep)
		}
		lan.waitFor(t, "VI_1 master again", 3*time.Second, func() bool { return a.state("VI_1") == Master })
		a.host.failDeletes(0)
		lan.advance(time.Second) // several retry periods of the old VI_1
		if !a.host.holds("10.0.0.101/24") {
			t.Error("the restarted VI_1 is master but its VIP was removed by its old self's retries")
		}
	})
}
