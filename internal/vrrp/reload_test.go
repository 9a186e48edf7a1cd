package vrrp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/lab"
)

// TestEngineReload: an unchanged configuration changes nothing (no
// transition, the VIP stays); a new instance starts beside the running one;
// a priority change is applied in place, with no transition; a removed one
// stops.
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
			got := a.engine.Reload(lab.ParseConfig(t, conf))
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
		check("changed", changed, ReloadReport{Kept: []string{"VI_2"}, Updated: []string{"VI_1"}})
		lan.advance(300 * time.Millisecond)
		if st := a.engine.Status(); st[0].Priority != 150 || st[0].EffectivePriority != 150 {
			t.Errorf("VI_1 priority %d (effective %d) after the reload, want 150", st[0].Priority, st[0].EffectivePriority)
		}
		if transitions(a) != ta || transitions(b) != tb || a.state("VI_1") != Master {
			t.Errorf("a priority change moved VI_1: transitions a %d->%d, b %d->%d", ta, transitions(a), tb, transitions(b))
		}

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
		a.engine.Reload(lab.ParseConfig(t, vi1))
		lan.waitFor(t, "the stopped VI_2's VIP removed", 10*time.Second, func() bool { return !a.host.holds("10.0.0.102/24") })

		a.host.failDeletes(1 << 30)
		// A new VRID is a new virtual router; the VIP stays the same.
		changed := strings.Replace(vi1, "virtual_router_id 1\n", "virtual_router_id 7\n", 1)
		if rep := a.engine.Reload(lab.ParseConfig(t, changed)); len(rep.Restarted) != 1 {
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

// pair is a master a (priority 200) and a backup b (100) of VI_1.
type pair struct {
	lan        *fakeLAN
	a, b       *router
	aAddr      netip.Addr
	confA      string
	confB      string
	ta0, tb0   uint64
	deletions0 int
}

func startPair(t *testing.T) *pair {
	p := &pair{lan: newLAN(), aAddr: netip.MustParseAddr("10.0.0.1"),
		confA: instanceConf("VI_1", 1, 200, ""), confB: instanceConf("VI_1", 1, 100, "")}
	p.a = startRouter(t, p.lan, "10.0.0.1", p.confA)
	p.b = startRouter(t, p.lan, "10.0.0.2", p.confB)
	p.lan.waitFor(t, "a master", 2*time.Second, func() bool { return p.a.state("VI_1") == Master && p.b.state("VI_1") == Backup })
	p.ta0, p.tb0 = p.transitions(p.a), p.transitions(p.b)
	p.deletions0 = p.a.host.deletions("10.0.0.101/24")
	return p
}

func (p *pair) transitions(r *router) uint64 { return r.engine.Status()[0].Transitions }

// reload edits both routers' configurations with edit and reloads them,
// one after the other as an operator would, expecting VI_1 updated in
// place where the edit changed something and kept elsewhere.
func (p *pair) reload(t *testing.T, edit func(string) string) {
	t.Helper()
	for _, x := range []struct {
		r    *router
		conf *string
	}{{p.a, &p.confA}, {p.b, &p.confB}} {
		want := ReloadReport{Kept: []string{"VI_1"}}
		if c := edit(*x.conf); c != *x.conf {
			*x.conf, want = c, ReloadReport{Updated: []string{"VI_1"}}
		}
		rep := x.r.engine.Reload(lab.ParseConfig(t, *x.conf))
		if !cmp.Equal(want, rep, cmpopts.EquateEmpty()) {
			t.Fatalf("reload report %+v, want %+v", rep, want)
		}
	}
}

// steady checks that nothing moved since the pair started: no transition
// on either router, a master holding the VIP it never dropped.
func (p *pair) steady(t *testing.T) {
	t.Helper()
	if ta, tb := p.transitions(p.a), p.transitions(p.b); ta != p.ta0 || tb != p.tb0 {
		t.Errorf("transitions a %d->%d, b %d->%d; want none", p.ta0, ta, p.tb0, tb)
	}
	if p.a.state("VI_1") != Master || !p.a.host.holds("10.0.0.101/24") || p.a.host.deletions("10.0.0.101/24") != p.deletions0 {
		t.Errorf("a is %v, holds the VIP %v, VIP deleted %d times (was %d)", p.a.state("VI_1"),
			p.a.host.holds("10.0.0.101/24"), p.a.host.deletions("10.0.0.101/24"), p.deletions0)
	}
}

// TestReloadInPlace: each in-place change is taken on by the running
// instances with no transition on either router and the VIP never
// removed, and is in effect: the adverts carry the new priority and
// interval, an added VIP is installed and announced, a removed one goes.
func TestReloadInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := startPair(t)

		since := p.lan.clock.Now()
		p.reload(t, func(s string) string { return strings.Replace(s, "priority 200", "priority 230", 1) })
		p.lan.advance(300 * time.Millisecond)
		// The advert of the reload's instant went before it.
		ads := p.lan.adverts(t, p.aAddr, since.Add(time.Millisecond))
		if len(ads) < 5 || slices.ContainsFunc(ads, func(m *Message) bool { return m.Priority != 230 }) {
			t.Errorf("priority: %d adverts from a since the reload, priorities %v; want all 230", len(ads), priorities(ads))
		}
		p.steady(t)

		since = p.lan.clock.Now()
		p.reload(t, func(s string) string { return strings.Replace(s, "advert_int 0.05", "advert_int 0.1", 1) })
		p.lan.advance(time.Second)
		ads = p.lan.adverts(t, p.aAddr, since.Add(100*time.Millisecond))
		if len(ads) < 8 || len(ads) > 10 || slices.ContainsFunc(ads, func(m *Message) bool { return m.AdvertInt != 100*time.Millisecond }) {
			t.Errorf("advert_int: %d adverts from a in 900 ms; want 9 at 100 ms", len(ads))
		}
		p.steady(t)

		arps := p.a.host.arpCount()
		p.reload(t, func(s string) string {
			return strings.Replace(s, "10.0.0.101/24\n", "10.0.0.101/24\n        10.0.0.150/24\n", 1)
		})
		p.lan.advance(300 * time.Millisecond)
		if !p.a.host.holds("10.0.0.150/24") || p.b.host.holds("10.0.0.150/24") {
			t.Errorf("VIP added: master holds it %v, backup %v; want true, false", p.a.host.holds("10.0.0.150/24"), p.b.host.holds("10.0.0.150/24"))
		}
		if p.a.host.arpCount() == arps {
			t.Error("VIP added: not announced")
		}
		if ads := p.lan.adverts(t, p.aAddr, p.lan.clock.Now().Add(-100*time.Millisecond)); len(ads) == 0 || len(ads[0].Addrs) != 2 {
			t.Errorf("VIP added: the adverts do not list it: %v", ads)
		}
		p.steady(t)

		p.reload(t, func(s string) string { return strings.Replace(s, "        10.0.0.150/24\n", "", 1) })
		p.lan.advance(300 * time.Millisecond)
		if p.a.host.holds("10.0.0.150/24") {
			t.Error("VIP removed: still on the master")
		}
		p.steady(t)

		p.reload(t, func(s string) string {
			return strings.Replace(s, "advert_int 0.1", "advert_int 0.1\n    nopreempt\n    notify_master /bin/true\n    smtp_alert\n    garp_master_repeat 2", 1)
		})
		p.lan.advance(time.Second)
		p.steady(t)
	})
}

// TestReloadPriorityPreempts: a priority change that makes the backup win
// moves the VIP exactly once, as an RFC 5798 preemption: the old master
// keeps sending its normal adverts (never priority 0) until it hears the
// new one. Both ways: the backup raised above the master, and the master
// lowered below the backup.
func TestReloadPriorityPreempts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p *pair) (*router, string)
	}{
		{"backup raised", func(p *pair) (*router, string) {
			return p.b, strings.Replace(p.confB, "priority 100", "priority 250", 1)
		}},
		{"master lowered", func(p *pair) (*router, string) {
			return p.a, strings.Replace(p.confA, "priority 200", "priority 50", 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := startPair(t)
				since := p.lan.clock.Now()
				r, conf := tc.edit(p)
				if rep := r.engine.Reload(lab.ParseConfig(t, conf)); !slices.Equal(rep.Updated, []string{"VI_1"}) {
					t.Fatalf("reload: %+v, want VI_1 updated", rep)
				}
				p.lan.waitFor(t, "b master", 2*time.Second, func() bool { return p.b.state("VI_1") == Master && p.a.state("VI_1") == Backup })
				// Make-before-break: a keeps the VIP, unannounced,
				// for its drain (garp_master_delay 5 s + 1 s).
				if !p.a.host.holds("10.0.0.101/24") || !p.a.host.quiet("10.0.0.101") {
					t.Errorf("a does not drain the VIP: holds %v, silenced %v", p.a.host.holds("10.0.0.101/24"), p.a.host.quiet("10.0.0.101"))
				}
				p.lan.advance(7 * time.Second)
				if ta, tb := p.transitions(p.a), p.transitions(p.b); ta != p.ta0+1 || tb != p.tb0+1 {
					t.Errorf("transitions a %d->%d, b %d->%d; want one each", p.ta0, ta, p.tb0, tb)
				}
				if p.a.host.holds("10.0.0.101/24") || p.a.host.quiet("10.0.0.101") || !p.b.host.holds("10.0.0.101/24") {
					t.Errorf("VIP on a %v, on b %v; want b only", p.a.host.holds("10.0.0.101/24"), p.b.host.holds("10.0.0.101/24"))
				}
				ads := p.lan.adverts(t, p.aAddr, since)
				if len(ads) == 0 || slices.ContainsFunc(ads, func(m *Message) bool { return m.Priority == 0 }) {
					t.Errorf("the old master's adverts since the reload: priorities %v; want some, none 0", priorities(ads))
				}
			})
		})
	}
}

func priorities(ms []*Message) []uint8 {
	var out []uint8
	for _, m := range ms {
		out = append(out, m.Priority)
	}
	return out
}

// TestReloadRemovedVIPRetried: a VIP a reload removes from a master while
// the kernel refuses to delete it is retried until it goes; the master
// and its other VIP are not touched.
func TestReloadRemovedVIPRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		two := strings.Replace(instanceConf("VI_1", 1, 200, ""), "10.0.0.101/24\n", "10.0.0.101/24\n        10.0.0.150/24\n", 1)
		a := startRouter(t, lan, "10.0.0.1", two)
		lan.waitFor(t, "a master with both VIPs", 2*time.Second, func() bool {
			return a.state("VI_1") == Master && a.host.holds("10.0.0.150/24")
		})
		tr := a.engine.Status()[0].Transitions
		a.host.failDeletes(3)
		if rep := a.engine.Reload(lab.ParseConfig(t, instanceConf("VI_1", 1, 200, ""))); !slices.Equal(rep.Updated, []string{"VI_1"}) {
			t.Fatalf("reload: %+v, want VI_1 updated", rep)
		}
		lan.waitFor(t, "the removed VIP deleted", 10*time.Second, func() bool { return !a.host.holds("10.0.0.150/24") })
		if a.state("VI_1") != Master || !a.host.holds("10.0.0.101/24") || a.engine.Status()[0].Transitions != tr {
			t.Errorf("the retries disturbed the master: %v, VIP held %v, transitions %d->%d", a.state("VI_1"), a.host.holds("10.0.0.101/24"), tr, a.engine.Status()[0].Transitions)
		}
	})
}

// TestReloadRetriesFailedStart: an instance that could not start (its
// interface missing) is started by the next reload of the same
// configuration, and one removed before it ever ran is simply dropped.
func TestReloadRetriesFailedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		vi1 := instanceConf("VI_1", 1, 200, "")
		a := startRouter(t, lan, "10.0.0.1", vi1)
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		two := vi1 + strings.Replace(instanceConf("VI_2", 2, 200, ""), "eth0", "eth9", 1)
		three := two + strings.Replace(instanceConf("VI_3", 3, 200, ""), "eth0", "eth9", 1)
		a.host.mu.Lock()
		a.host.missing = map[string]bool{"eth9": true}
		a.host.mu.Unlock()
		if rep := a.engine.Reload(lab.ParseConfig(t, three)); len(rep.Errors) != 2 {
			t.Fatalf("reload with eth9 missing: %+v, want two errors", rep)
		}
		a.host.mu.Lock()
		a.host.missing = nil
		a.host.mu.Unlock()
		rep := a.engine.Reload(lab.ParseConfig(t, two))
		if want := (ReloadReport{Kept: []string{"VI_1"}, Started: []string{"VI_2"}}); !cmp.Equal(want, rep, cmpopts.EquateEmpty()) {
			t.Fatalf("reload once eth9 is there: %+v, want %+v", rep, want)
		}
		lan.waitFor(t, "VI_2 master", 2*time.Second, func() bool { return a.state("VI_2") == Master })
	})
}

// TestReloadSyncGroupInPlace: members of a sync group take on a new
// priority, and the group a new notify script, with no transition and
// the group's coordinator kept; a backup group raised above the master
// takes both instances over once each, as a preemption.
func TestReloadSyncGroupInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := func(p1, p2 int, notify string) string {
			return "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n" + notify + "}\n" +
				instanceConf("VI_1", 1, p1, "") + instanceConf("VI_2", 2, p2, "")
		}
		a := startRouter(t, lan, "10.0.0.1", conf(200, 200, ""))
		b := startRouter(t, lan, "10.0.0.2", conf(100, 100, ""))
		lan.waitFor(t, "a master of both", 3*time.Second, func() bool {
			return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
		})
		transitions := func(r *router) (n uint64) {
			for _, s := range r.engine.Status() {
				n += s.Transitions
			}
			return n
		}
		ta, tb := transitions(a), transitions(b)
		rep := a.engine.Reload(lab.ParseConfig(t, conf(220, 200, "    notify_master /bin/true\n")))
		if want := (ReloadReport{Kept: []string{"VI_2"}, Updated: []string{"VI_1"}}); !cmp.Equal(want, rep, cmpopts.EquateEmpty()) {
			t.Fatalf("reload: %+v, want %+v", rep, want)
		}
		lan.advance(time.Second)
		if transitions(a) != ta || transitions(b) != tb || !a.host.holds("10.0.0.101/24") || !a.host.holds("10.0.0.102/24") {
			t.Fatalf("an in-place reload of a group member moved something: transitions a %d->%d, b %d->%d", ta, transitions(a), tb, transitions(b))
		}
		if p := a.engine.Status()[0].EffectivePriority; p != 220 {
			t.Errorf("VI_1 effective priority %d, want 220", p)
		}

		since := lan.clock.Now()
		b.engine.Reload(lab.ParseConfig(t, conf(250, 250, "")))
		lan.waitFor(t, "b master of both", 3*time.Second, func() bool {
			return b.state("VI_1") == Master && b.state("VI_2") == Master && a.state("VI_1") == Backup && a.state("VI_2") == Backup
		})
		lan.advance(time.Second)
		if transitions(a) != ta+2 || transitions(b) != tb+2 {
			t.Errorf("preemption of the group: transitions a %d->%d, b %d->%d; want one per instance", ta, transitions(a), tb, transitions(b))
		}
		if ads := lan.adverts(t, netip.MustParseAddr("10.0.0.1"), since); slices.ContainsFunc(ads, func(m *Message) bool { return m.Priority == 0 }) {
			t.Errorf("the old master sent priority 0: %v", priorities(ads))
		}
	})
}
