package vrrp

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/netio"
)

// TestEngineVMAC: an instance with use_vmac creates its macvlan before its
// socket, sends from it (from the parent's address), puts its VIPs on it,
// and removes it when it stops; a crash's leftover VMAC that the
// configuration no longer has is removed at start.
func TestEngineVMAC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := instanceConf("VI_1", 1, 200, "use_vmac") + instanceConf("VI_2", 2, 200, "")
		h := &fakeHost{lan: lan, addr: netip.MustParseAddr("10.0.0.1"), vips: map[netip.Prefix]bool{},
			vmacs: map[string]netio.VMAC{"vrrp.9": {Name: "vrrp.9"}}} // left by a crash
		a := startRouterOn(t, lan, h, conf)
		lan.waitFor(t, "both master", 2*time.Second, func() bool { return a.state("VI_1") == Master && a.state("VI_2") == Master })
		vmacs, listens, dev := h.vmacState()
		want := map[string]netio.VMAC{"vrrp.1": {Name: "vrrp.1", Parent: "eth0", MAC: []byte{0, 0, 0x5e, 0, 1, 1}, Owner: "VI_1", SendsFrom: true}}
		if diff := cmp.Diff(want, vmacs, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("vmacs (-want +got):\n%s", diff)
		}
		wantListen := []string{"vrrp.1 from eth0", "eth0 from "}
		var gotListen []string
		for _, l := range listens {
			gotListen = append(gotListen, l.Interface+" from "+l.AddrFrom)
		}
		if diff := cmp.Diff(wantListen, gotListen); diff != "" {
			t.Errorf("sockets (-want +got):\n%s", diff)
		}
		wantDev := map[netip.Prefix]string{netip.MustParsePrefix("10.0.0.101/24"): "vrrp.1", netip.MustParsePrefix("10.0.0.102/24"): "eth0"}
		if diff := cmp.Diff(wantDev, dev); diff != "" {
			t.Errorf("VIPs' interfaces (-want +got):\n%s", diff)
		}
		if st := a.engine.Status(); st[0].VMAC != "vrrp.1" || st[1].VMAC != "" {
			t.Errorf("status VMAC %q, %q; want vrrp.1 and none", st[0].VMAC, st[1].VMAC)
		}
		a.stop()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.vmacs) != 0 {
			t.Errorf("vmacs left after stop: %v", h.vmacs)
		}
	})
}

// TestEngineIPVLAN: use_ipvlan shares use_vmac's way: the ipvlan (L2,
// its mode, its address, no MAC of its own) is created before the socket,
// which sends out of it from the ipvlan's address; the VIPs go on it; it
// is removed at stop.
func TestEngineIPVLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := instanceConf("VI_1", 1, 200, "use_ipvlan ipv1 10.0.0.50/24 private") + instanceConf("VI_2", 2, 200, "")
		h := &fakeHost{lan: lan, addr: netip.MustParseAddr("10.0.0.1"), vips: map[netip.Prefix]bool{}, vmacs: map[string]netio.VMAC{}}
		a := startRouterOn(t, lan, h, conf)
		lan.waitFor(t, "both master", 2*time.Second, func() bool { return a.state("VI_1") == Master && a.state("VI_2") == Master })
		vmacs, listens, dev := h.vmacState()
		want := map[string]netio.VMAC{"ipv1": {Name: "ipv1", Parent: "eth0", Owner: "VI_1", SendsFrom: true,
			IPVLAN: true, IPVLANMode: "private", Addr: netip.MustParsePrefix("10.0.0.50/24")}}
		if diff := cmp.Diff(want, vmacs, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("ipvlans (-want +got):\n%s", diff)
		}
		var gotListen []string
		for _, l := range listens {
			gotListen = append(gotListen, l.Interface+" from "+l.AddrFrom+" src "+l.Src.String())
		}
		if diff := cmp.Diff([]string{"ipv1 from  src 10.0.0.50", "eth0 from  src invalid IP"}, gotListen); diff != "" {
			t.Errorf("sockets (-want +got):\n%s", diff)
		}
		wantDev := map[netip.Prefix]string{netip.MustParsePrefix("10.0.0.101/24"): "ipv1", netip.MustParsePrefix("10.0.0.102/24"): "eth0"}
		if diff := cmp.Diff(wantDev, dev); diff != "" {
			t.Errorf("VIPs' interfaces (-want +got):\n%s", diff)
		}
		a.stop()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.vmacs) != 0 {
			t.Errorf("ipvlans left after stop: %v", h.vmacs)
		}
	})
}

// TestReloadVMAC: adding use_vmac to one instance re-creates that instance
// alone, on its new VMAC; removing it re-creates it on its interface and
// removes the VMAC.
func TestReloadVMAC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		plain := instanceConf("VI_1", 1, 200, "") + instanceConf("VI_2", 2, 200, "")
		vmac := instanceConf("VI_1", 1, 200, "use_vmac vipA") + instanceConf("VI_2", 2, 200, "")
		a := startRouter(t, lan, "10.0.0.1", plain)
		lan.waitFor(t, "both master", 2*time.Second, func() bool { return a.state("VI_1") == Master && a.state("VI_2") == Master })
		vmacNames := func() []string {
			a.host.mu.Lock()
			defer a.host.mu.Unlock()
			var out []string
			for n := range a.host.vmacs {
				out = append(out, n)
			}
			return out
		}
		devOf := func(p string) string {
			a.host.mu.Lock()
			defer a.host.mu.Unlock()
			return a.host.dev[netip.MustParsePrefix(p)]
		}
		got := a.engine.Reload(lab.ParseConfig(t, vmac))
		if diff := cmp.Diff(ReloadReport{Kept: []string{"VI_2"}, Restarted: []string{"VI_1"}}, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("adding use_vmac: report (-want +got):\n%s", diff)
		}
		lan.waitFor(t, "VI_1 master again", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if n, d := vmacNames(), devOf("10.0.0.101/24"); !slices.Equal(n, []string{"vipA"}) || d != "vipA" {
			t.Errorf("after adding use_vmac: vmacs %v, VIP on %q; want [vipA], vipA", n, d)
		}
		got = a.engine.Reload(lab.ParseConfig(t, plain))
		if diff := cmp.Diff(ReloadReport{Kept: []string{"VI_2"}, Restarted: []string{"VI_1"}}, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("removing use_vmac: report (-want +got):\n%s", diff)
		}
		lan.waitFor(t, "VI_1 master again", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if n, d := vmacNames(), devOf("10.0.0.101/24"); len(n) != 0 || d != "eth0" {
			t.Errorf("after removing use_vmac: vmacs %v, VIP on %q; want none, eth0", n, d)
		}
	})
}

// TestVMACPlacement: keepalived's rule for which addresses go on the VMAC
// (vrrp.c, vrrp_complete_instance): the instance's family with no dev or
// the instance's interface as dev; the rest where they say, or on the
// instance's interface.
func TestVMACPlacement(t *testing.T) {
	addr := func(p, dev string) *config.IPAddress {
		return &config.IPAddress{Prefix: netip.MustParsePrefix(p), Dev: dev}
	}
	// Built by hand: IPv6 excluded addresses on an IPv4 instance are
	// keepalived's, not yet the parser's.
	ic := &config.Instance{Name: "VI_1", Interface: "eth0", VRID: 1, VMAC: &config.VMAC{Name: "vrrp.1"},
		VIPs:         []*config.IPAddress{addr("10.0.0.1/24", ""), addr("10.0.0.2/24", "eth0"), addr("10.0.1.3/24", "eth1")},
		ExcludedVIPs: []*config.IPAddress{addr("fd00::4/64", ""), addr("fd00::5/64", "eth1")}}
	in := &instance{cfg: ic}
	want := map[string]string{"10.0.0.1/24": "vrrp.1", "10.0.0.2/24": "vrrp.1", "10.0.1.3/24": "eth1", "fd00::4/64": "eth0", "fd00::5/64": "eth1"}
	got := map[string]string{}
	for _, a := range in.addresses() {
		got[a.Prefix.String()] = in.devOf(a)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("interfaces (-want +got):\n%s", diff)
	}
	if !vmacSpec(in.cfg).KeepIPv6 {
		t.Error("IPv6 disabled on the VMAC of an instance with IPv6 excluded addresses (keepalived keeps it)")
	}
}

// vmacState is what the engine asked of h: its VMACs, its sockets and
// where each VIP went.
func (h *fakeHost) vmacState() (map[string]netio.VMAC, []netio.ConnConfig, map[netip.Prefix]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.vmacs), slices.Clone(h.listens), maps.Clone(h.dev)
}
