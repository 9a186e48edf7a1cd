package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/lab"
)

// TestTrackGroup: a static address and a static route on eth1 name the
// track_group of VI_1, as keepalived.conf(5) "Static track groups"
// describes. Deleting either by hand (netlink) puts it back and leaves
// VI_1 MASTER (keepalived restores deleted static entries:
// keepalived_netlink.c); eth1 going down puts VI_1 in FAULT with the
// group named in its reason, and eth1 coming back brings VI_1 back and
// the route, which the kernel dropped with the interface, with it.
func TestTrackGroup(t *testing.T) {
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d1", Ifaces: []lab.Iface{
			{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}},
			{Name: "eth1", Switch: "t", Addrs: []netip.Prefix{netip.MustParsePrefix("10.90.0.1/24")}},
		}},
	}})
	conf := writeConf(t, "trackgroup.conf", `track_group TG {
    group {
        VI_1
    }
}
static_ipaddress {
    10.91.0.1/24 dev eth1 track_group TG
}
static_routes {
    10.92.0.0/16 via 10.90.0.254 dev eth1 track_group TG
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.78.0.100/24
    }
}
`)
	d := startTandem(t, l, "d1", conf, "--dataplane", "none")
	waitFor(t, "VI_1 MASTER", 15*time.Second, func() bool { return d.state("VI_1") == "MASTER" })

	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.91.0.1"), Mask: net.CIDRMask(24, 32)}}
	_, dst, _ := net.ParseCIDR("10.92.0.0/16")
	present := func() (a, r bool) {
		err := l.Do("d1", func() error {
			addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, x := range addrs {
				a = a || x.IPNet.String() == "10.91.0.1/24"
			}
			routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
			r = len(routes) > 0
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return a, r
	}
	if a, r := present(); !a || !r {
		t.Fatalf("after start: address %t, route %t\n%s", a, r, d.proc.Output())
	}

	// Deleted by someone else: put back, VI_1 unmoved.
	if err := l.Do("d1", func() error {
		eth1, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		return netlink.AddrDel(eth1, addr)
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted static address back", 10*time.Second, func() bool { a, _ := present(); return a })
	if err := l.Do("d1", func() error { return netlink.RouteDel(&netlink.Route{Dst: dst}) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted static route back", 10*time.Second, func() bool { _, r := present(); return r })
	if s := d.state("VI_1"); s != "MASTER" {
		t.Errorf("VI_1 is %s after the static entries' deletion, want MASTER (keepalived puts them back, no FAULT)", s)
	}

	// The tracked interface down: FAULT, with the group as the reason.
	if err := l.SetLink("d1", "eth1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_1 FAULT", 10*time.Second, func() bool { return d.state("VI_1") == "FAULT" })
	if in := d.instance(t, "VI_1"); !strings.Contains(in.Reason, "track_group TG") || !strings.Contains(in.Reason, "eth1 down") {
		t.Errorf("VI_1's reason %q, want the track_group and eth1 down", in.Reason)
	}
	if _, r := present(); r {
		t.Fatal("the kernel kept the route through eth1 going down: the test shows nothing about putting it back")
	}
	if err := l.SetLink("d1", "eth1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_1 MASTER again", 15*time.Second, func() bool { return d.state("VI_1") == "MASTER" })
	waitFor(t, "the static route back with eth1", 10*time.Second, func() bool { a, r := present(); return a && r })
}
