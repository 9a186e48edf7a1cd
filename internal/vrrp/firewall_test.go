package vrrp

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/config"
	"tandem/internal/firewall"
	"tandem/internal/lab"
)

// fakeFirewall records the drop set, and checks against its host that,
// while the firewall is needed (all the tests' instances are no-accept
// then), no address the host holds is ever outside it: the firewall is
// updated before an address is added and after it is removed.
type fakeFirewall struct {
	t        *testing.T
	mu       sync.Mutex
	host     *fakeHost
	needed   bool
	drop     []netip.Addr
	syncs    int
	settings firewall.Settings
}

func (f *fakeFirewall) Sync(s firewall.Settings, needed bool, drop []firewall.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	f.needed, f.drop, f.settings = needed, nil, s
	for _, a := range drop {
		f.drop = append(f.drop, a.IP)
	}
	slices.SortFunc(f.drop, netip.Addr.Compare)
	f.drop = slices.Compact(f.drop)
	if !needed {
		return nil // accept: nothing is dropped
	}
	f.host.mu.Lock()
	defer f.host.mu.Unlock()
	for p := range f.host.vips {
		if !slices.Contains(f.drop, p.Addr()) {
			f.t.Errorf("firewall synced without %v while the host holds it", p)
		}
	}
	return nil
}

func (f *fakeFirewall) dropped() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.drop)
}

// fwHost is a fakeHost whose address additions check the firewall.
type fwHost struct {
	*fakeHost
	fw *fakeFirewall
}

func (h fwHost) AddAddress(iface string, a *config.IPAddress) error {
	h.fw.mu.Lock()
	in := slices.Contains(h.fw.drop, a.Prefix.Addr()) || !h.fw.needed
	h.fw.mu.Unlock()
	if !in {
		h.fw.t.Errorf("%v added before the firewall drops it", a.Prefix)
	}
	return h.fakeHost.AddAddress(iface, a)
}

// startFWRouter is startRouter with a fake firewall.
func startFWRouter(t *testing.T, lan *fakeLAN, addr, conf string) (*router, *fakeFirewall) {
	t.Helper()
	h := &fakeHost{lan: lan, addr: netip.MustParseAddr(addr), vips: map[netip.Prefix]bool{}}
	fw := &fakeFirewall{t: t, host: h}
	e, err := NewEngine(lab.ParseConfig(t, conf), fwHost{h, fw}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil,
		WithClock(lan.clock), WithFirewall(fw))
	if err != nil {
		t.Fatal(err)
	}
	return runRouter(t, lan, h, e), fw
}

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestFirewallFollowsMastership: a no-accept master drops traffic to its
// VIPs (keepalived's vrrp_handle_accept_mode), a backup drops nothing, the
// roles swap with mastership, and a stopped router drops nothing.
func TestFirewallFollowsMastership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a, fa := startFWRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, "no_accept"))
		b, fb := startFWRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, "no_accept"))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		if !fa.needed || !slices.Equal(fa.dropped(), addrs("10.0.0.101")) || !fb.needed || len(fb.dropped()) != 0 {
			t.Fatalf("master drops %v (needed %v), backup %v (needed %v); want the VIP on the master only", fa.dropped(), fa.needed, fb.dropped(), fb.needed)
		}
		if fa.settings.Table != config.DefaultFirewallTable || fa.settings.Priority != -1 {
			t.Errorf("settings %+v, want the default table at priority -1", fa.settings)
		}
		a.stop()
		lan.waitFor(t, "b master", 2*time.Second, func() bool { return b.state("VI_1") == Master })
		if len(fa.dropped()) != 0 || !slices.Equal(fb.dropped(), addrs("10.0.0.101")) {
			t.Fatalf("after failover: stopped router drops %v, new master %v", fa.dropped(), fb.dropped())
		}
	})
}

// TestFirewallNotNeeded: an instance with accept, or the address owner
// (priority 255), needs no firewall: its addresses are never dropped.
func TestFirewallNotNeeded(t *testing.T) {
	for _, extra := range []string{"accept", ""} {
		synctest.Test(t, func(t *testing.T) {
			lan := newLAN()
			prio := 255
			if extra != "" {
				prio = 100
			} else {
				extra = "no_accept"
			}
			a, fa := startFWRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, prio, extra))
			lan.waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master })
			if fa.syncs == 0 || fa.needed || len(fa.dropped()) != 0 {
				t.Errorf("%s priority %d: %d syncs, needed %v, drop %v; want no firewall", extra, prio, fa.syncs, fa.needed, fa.dropped())
			}
		})
	}
}

// TestFirewallReload: a reload that adds and removes addresses of a
// no-accept master updates the drop set in place, the new address dropped
// before it is added; one that sets accept empties it.
func TestFirewallReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := func(extra, vips string) string {
			return `global_defs {
    nftables kad
    nftables_counters
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 200
    version 3
    advert_int 0.05
    ` + extra + `
    virtual_ipaddress {
` + vips + `    }
}
`
		}
		a, fa := startFWRouter(t, lan, "10.0.0.1", conf("no_accept", "        10.0.0.101/24\n"))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if fa.settings.Table != "kad" || !fa.settings.Counters {
			t.Errorf("settings %+v, want table kad with counters", fa.settings)
		}
		for _, tt := range []struct {
			extra, vips string
			want        []netip.Addr
		}{
			{"no_accept", "        10.0.0.101/24\n        10.0.0.150/24\n", addrs("10.0.0.101", "10.0.0.150")},
			{"no_accept", "        10.0.0.150/24\n", addrs("10.0.0.150")},
			{"accept", "        10.0.0.150/24\n", []netip.Addr{}},
		} {
			rep := a.engine.Reload(lab.ParseConfig(t, conf(tt.extra, tt.vips)))
			lan.settle()
			if len(rep.Errors) > 0 || a.state("VI_1") != Master {
				t.Fatalf("reload: %+v, state %v", rep, a.state("VI_1"))
			}
			if got := fa.dropped(); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("%s %q: drop %v, want %v", tt.extra, tt.vips, got, tt.want)
			}
		}
		if fa.needed {
			t.Error("with accept the firewall is still needed")
		}
	})
}
