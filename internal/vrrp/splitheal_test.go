package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

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
		t.Errorf("10.0.0.1 sent %d gratuitous ARPs after the heal, want none: %v", len(sent), fmt.Sprint(sent))
	}
}
