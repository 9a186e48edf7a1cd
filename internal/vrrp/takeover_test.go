package vrrp

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/config"
)

// TestBeforeTakeover: the hook runs once per takeover, for the instance
// taking over, before its addresses are added; a backup never calls it.
func TestBeforeTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		type call struct {
			name string
			held bool // the VIP was already on the host
		}
		var mu sync.Mutex
		calls := map[string][]call{}
		hook := func(r **router, who string) func(*Engine) {
			return WithBeforeTakeover(func(in *config.Instance) {
				mu.Lock()
				defer mu.Unlock()
				calls[who] = append(calls[who], call{in.Name, (*r).host.holds("10.0.0.101/24")})
			})
		}
		var a, b *router
		a = startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""), hook(&a, "a"))
		b = startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""), hook(&b, "b"))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		a.stop()
		lan.waitFor(t, "b master", 2*time.Second, func() bool { return b.state("VI_1") == Master })
		mu.Lock()
		defer mu.Unlock()
		for who, want := range map[string][]call{"a": {{"VI_1", false}}, "b": {{"VI_1", false}}} {
			if got := calls[who]; len(got) != len(want) || got[0] != want[0] {
				t.Errorf("%s: hook calls %+v, want %+v", who, got, want)
			}
		}
	})
}
