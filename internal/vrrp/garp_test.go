package vrrp

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// splitBrain starts a (10.0.0.1, running aConf) and b (10.0.0.2, VI_1 at
// priority 100) with a's packets lost, so that both are master of VI_1,
// and returns them once they are, with heal, which lets a's packets
// through again and waits for b to go back to backup. Between
// healing and b's return a hears b's lower priority adverts.
func splitBrain(t *testing.T, lan *fakeLAN, aConf string, adjust ...func(*Engine)) (a, b *router, heal func()) {
	t.Helper()
	var mu sync.Mutex
	cut := true
	aAddr := netip.MustParseAddr("10.0.0.1")
	lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return cut && src == aAddr }
	a = startRouter(t, lan, aAddr.String(), aConf, adjust...)
	b = startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	lan.waitFor(t, "a split brain", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Master })
	return a, b, func() {
		mu.Lock()
		cut = false
		mu.Unlock()
		lan.waitFor(t, "b backup", time.Second, func() bool { return b.state("VI_1") == Backup })
	}
}

// TestEngineGarpLowerPrio: a master that hears a lower priority advert
// (a split brain healing) sends garp_lower_prio_repeat gratuitous ARPs per
// such advert, and as many again garp_lower_prio_delay after the last, instead of
// the garp_master_* pair (keepalived.conf(5); vrrp.c vrrp_state_master_rx).
func TestEngineGarpLowerPrio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		var mu sync.Mutex
		// The master series sends 7 once and no second burst, so that
		// only the lower-priority series can send multiples of 3.
		garp := "garp_master_repeat 7\n    garp_master_delay 0\n    garp_lower_prio_repeat 3\n    garp_lower_prio_delay 2"
		var rx []StateChange // MASTER_RX_LOWER_PRI events
		a, _, heal := splitBrain(t, lan, instanceConf("VI_1", 1, 200, garp), func(e *Engine) {
			e.onState = func(sc StateChange) {
				if sc.MasterRxLowerPri {
					mu.Lock()
					rx = append(rx, sc)
					mu.Unlock()
				}
			}
		})
		mu.Lock()
		base, baseRx := a.host.arpCount(), len(rx)
		mu.Unlock()
		heal()
		first := a.host.arpCount() - base
		// Each lower priority advert heard is reported, as
		// MASTER_RX_LOWER_PRI, with its burst of gratuitous ARPs.
		mu.Lock()
		got := rx[baseRx:]
		if len(got) == 0 || len(got) != first/3 || got[0].State != Master || got[0].Priority != 200 || got[0].Instance.Name != "VI_1" {
			t.Errorf("events %+v, want %d MASTER_RX_LOWER_PRI of VI_1 at priority 200", got, first/3)
		}
		mu.Unlock()
		if first == 0 || first%3 != 0 {
			t.Fatalf("a sent %d gratuitous ARPs on hearing b, want a multiple of garp_lower_prio_repeat 3", first)
		}
		// The second burst follows the last lower priority advert
		// heard (b's last, as it stepped down: higher_prio_send_advert),
		// which restarted the series.
		lan.advance(2500 * time.Millisecond)
		if second := a.host.arpCount() - base - first; second != 3 {
			t.Errorf("a sent %d gratuitous ARPs garp_lower_prio_delay later, want garp_lower_prio_repeat 3 again", second)
		}
	})
}

// TestEngineGarpLowerPrioSyncGroup: the other masters of the hearing
// instance's sync group send their garp_lower_prio_repeat as well, since
// the lower priority side's members had taken their addresses too.
func TestEngineGarpLowerPrioSyncGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		// Per lower priority advert: 3 from VI_1, 5 from VI_2, 8 in all;
		// VI_1 alone would send multiples of 3.
		g := "garp_master_delay 0\n    garp_lower_prio_delay 0\n    garp_lower_prio_repeat "
		conf := "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n" +
			instanceConf("VI_1", 1, 200, g+"3") + instanceConf("VI_2", 2, 200, g+"5")
		a, _, heal := splitBrain(t, lan, conf)
		base := a.host.arpCount()
		heal()
		if n := a.host.arpCount() - base; n == 0 || n%8 != 0 {
			t.Fatalf("a sent %d gratuitous ARPs on hearing b, want a multiple of 3+5", n)
		}
	})
}

// TestEngineGarpGroup: announcements on the interfaces of a garp_group are
// spaced by its garp_interval, across instances and interfaces; an
// interface in no group follows vrrp_garp_interval (here 0: at once).
func TestEngineGarpGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		garp := "garp_master_repeat 3\n    garp_master_delay 0"
		eth1 := strings.ReplaceAll(instanceConf("VI_3", 3, 200, garp), "interface eth0", "interface eth1")
		conf := "garp_group {\n    garp_interval 0.1\n    interfaces {\n        eth0\n        eth9\n    }\n}\n" +
			instanceConf("VI_1", 1, 200, garp) + instanceConf("VI_2", 2, 200, garp) + eth1
		a := startRouter(t, lan, "10.0.0.1", conf)
		lan.waitFor(t, "masters", 2*time.Second, func() bool {
			return a.state("VI_1") == Master && a.state("VI_2") == Master && a.state("VI_3") == Master
		})
		lan.advance(time.Second)
		a.host.mu.Lock()
		defer a.host.mu.Unlock()
		eth0 := a.host.announced["eth0"]
		if len(eth0) != 6 {
			t.Fatalf("eth0: %d announcements, want 2 instances x 3", len(eth0))
		}
		for i := 1; i < len(eth0); i++ {
			if gap := eth0[i].Sub(eth0[i-1]); gap < 100*time.Millisecond {
				t.Errorf("eth0: announcements %d and %d %v apart, want garp_interval 100ms at least", i-1, i, gap)
			}
		}
		got1 := a.host.announced["eth1"]
		if len(got1) != 3 || !got1[2].Equal(got1[0]) {
			t.Errorf("eth1 (no group): %v, want 3 at once", got1)
		}
	})
}

// TestEngineGarpLowerPrioZeroKeepsSeries: with garp_lower_prio_repeat 0,
// the lower priority advert a preempting master hears from the master it
// displaced (higher_prio_send_advert, Tandem's default) neither sends
// anything nor cancels the second burst garp_master_delay after the
// takeover (keepalived: vrrp_state_master_rx sends nothing then, and its
// delayed burst runs on).
func TestEngineGarpLowerPrioZeroKeepsSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a, b := masterThenHigher(t, lan, "garp_master_repeat 2\n    garp_master_delay 1\n    garp_lower_prio_repeat 0")
		lan.waitFor(t, "a master, b backup", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		lan.advance(1500 * time.Millisecond)
		if n := a.host.arpCount(); n != 4 {
			t.Errorf("a sent %d gratuitous ARPs, want garp_master_repeat 2 at the takeover and 2 garp_master_delay later", n)
		}
	})
}

// TestEngineSplitHealReannounce: routers 10.0.0.1 (priority 200, the
// rightful master) and a peer on the other side of a split are both
// MASTER of VI_1; the split heals so that the peer hears 10.0.0.1's
// advert before 10.0.0.1 hears any of the peer's. The peer steps down;
// with higher_prio_send_advert (Tandem's default) its last advert makes
// 10.0.0.1 hear a lower priority and send its gratuitous ARPs within one
// advert interval of the heal, so that clients the peer's takeover moved
// come back at once. With keepalived's default (off) nobody announces
// anything, which is the outage bench/chaos measured. In every case the
// heal costs exactly one transition, the peer's, whatever the third
// router (priority 180 or 190, hearing both sides) does with the extra
// advert.
func TestEngineSplitHealReannounce(t *testing.T) {
	tests := []struct {
		name     string
		prios    []int // of 10.0.0.1, 10.0.0.2, ...
		peer     int   // the router split from 10.0.0.1
		global   string
		wantGarp bool
	}{
		{"two routers", []int{200, 190}, 1, "", true},
		{"three routers, split from the next priority", []int{200, 190, 180}, 1, "", true},
		{"three routers, split from the lowest priority", []int{200, 190, 180}, 2, "", true},
		{"keepalived's default: nobody announces", []int{200, 190}, 1, "global_defs {\n    vrrp_higher_prio_send_advert off\n}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { splitHeal(t, tt.prios, tt.peer, tt.global, tt.wantGarp) })
		})
	}
}

func splitHeal(t *testing.T, prios []int, peer int, global string, wantGarp bool) {
	const advertInt = 50 * time.Millisecond // instanceConf's
	lan := newLAN()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}) }
	top, other := addr(0), addr(peer)
	// split: top and other do not hear each other. healing: everything
	// passes, except other's packets to top until top's first packet
	// has reached other.
	var mu sync.Mutex
	split, healing, heard := true, false, false
	lan.cut = func(src, dst netip.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		pair := src == top && dst == other || src == other && dst == top
		switch {
		case split:
			return pair
		case healing && src == top && dst == other:
			heard = true
		case healing && !heard && src == other && dst == top:
			return true
		}
		return false
	}
	var rs []*router
	for i, p := range prios {
		rs = append(rs, startRouter(t, lan, addr(i).String(), global+instanceConf("VI_1", 1, p, "")))
	}
	a, b := rs[0], rs[peer]
	masters := func() []int {
		var ms []int
		for i, r := range rs {
			if r.state("VI_1") == Master {
				ms = append(ms, i)
			}
		}
		return ms
	}
	lan.waitFor(t, "a split brain", 2*time.Second, func() bool { return slices.Equal(masters(), []int{0, peer}) })
	lan.advance(200 * time.Millisecond)
	if ms := masters(); !slices.Equal(ms, []int{0, peer}) {
		t.Fatalf("masters during the split %v, want [0 %d]", ms, peer)
	}
	transitions := func() []uint64 {
		var n []uint64
		for _, r := range rs {
			n = append(n, r.engine.Status()[0].Transitions)
		}
		return n
	}
	before := transitions()
	a.host.mu.Lock()
	arps := len(a.host.arpAt)
	a.host.mu.Unlock()
	mu.Lock()
	split, healing = false, true
	mu.Unlock()
	healAt := lan.clock.Now()
	lan.waitFor(t, "the peer back to BACKUP", time.Second, func() bool { return b.state("VI_1") == Backup })
	mu.Lock()
	if !heard {
		t.Fatal("the peer stepped down before hearing 10.0.0.1 (the test's premise)")
	}
	mu.Unlock()
	lan.advance(time.Second)

	if ms := masters(); !slices.Equal(ms, []int{0}) {
		t.Errorf("masters after the heal %v, want [0]", ms)
	}
	after := transitions()
	for i := range rs {
		want := before[i]
		if i == peer {
			want++ // MASTER -> BACKUP, once
		}
		if after[i] != want {
			t.Errorf("router %d: %d transitions after the heal, want %d (before %v, after %v)", i, after[i]-before[i], want-before[i], before, after)
		}
	}
	a.host.mu.Lock()
	sent := slices.Clone(a.host.arpAt[arps:])
	a.host.mu.Unlock()
	switch {
	case wantGarp && len(sent) == 0:
		t.Fatal("10.0.0.1 sent no gratuitous ARP after the heal")
	case wantGarp && sent[0].Sub(healAt) > advertInt:
		t.Errorf("10.0.0.1's first gratuitous ARP %v after the heal, want within one advert interval (%v)", sent[0].Sub(healAt), advertInt)
	case !wantGarp && len(sent) != 0:
		t.Errorf("10.0.0.1 sent %d gratuitous ARPs after the heal, want none: %v", len(sent), sent)
	}
}
