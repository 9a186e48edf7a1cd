package netio

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// TestExcludedOtherFamilyReachKernel: the addresses of an IPv4 instance's
// virtual_ipaddress_excluded may be IPv6 (issue 12 item 3); each is added
// over netlink in its own family and found and removed again.
func TestExcludedOtherFamilyReachKernel(t *testing.T) {
	l := oneNode(t)
	cfg, diags := config.Parse("t.conf", []byte(`vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.10/24
    }
    virtual_ipaddress_excluded {
        fd00:1::10/64
    }
}
`), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	in := cfg.Instances[0]
	if in.IPv6 {
		t.Fatal("the instance is IPv4")
	}
	a := in.ExcludedVIPs[0]
	var before, after, gone bool
	err := l.Do("n", func() error {
		var err error
		if before, err = HasAddress(in.Interface, a); err != nil {
			return err
		}
		if err := AddAddress(in.Interface, a); err != nil {
			return err
		}
		if after, err = HasAddress(in.Interface, a); err != nil {
			return err
		}
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, x := range addrs {
			if ip, _ := netip.AddrFromSlice(x.IP); ip == a.Prefix.Addr() {
				ones, _ := x.Mask.Size()
				after = after && ones == 64
			}
		}
		if err := DelAddress(in.Interface, a); err != nil {
			return err
		}
		has, err := HasAddress(in.Interface, a)
		gone = !has
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if before || !after || !gone {
		t.Errorf("fd00:1::10/64 on eth0: before add %t, after add %t, gone after delete %t; want false, true, true", before, after, gone)
	}
}

// TestRouteFormsReachKernel installs routes in the forms keepalived reads
// (issue 12 item 4) and reads them back: an IPv6 default route given by
// "default via inet6", nexthop groups with weights, a tos selector and a
// local route; then the delete function removes them.
func TestRouteFormsReachKernel(t *testing.T) {
	l := oneNode(t)
	cfg := lab.ParseConfig(t, `static_ipaddress {
    fd00:1::2/64 dev eth0
}
static_routes {
    default via inet6 fd00:1::1 dev eth0 table 100
    10.5.0.0/16 dev eth0 table 100 nexthop via 192.0.2.254 weight 3 nexthop via inet 192.0.2.253
    10.6.0.0/16 tos 0x10 via 192.0.2.254 dev eth0 table 100
    local 10.7.0.1/32 dev eth0 table 100
}
`)
	got := map[string]netlink.Route{}
	var left []netlink.Route
	err := l.Do("n", func() error {
		if err := AddAddress("eth0", cfg.StaticAddresses[0]); err != nil {
			return err
		}
		for _, r := range cfg.StaticRoutes {
			if err := AddRoute("eth0", r); err != nil {
				return err
			}
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for _, r := range rs {
			got[r.Dst.String()] = r
		}
		for _, r := range cfg.StaticRoutes {
			if err := DelRoute("eth0", r); err != nil {
				return err
			}
		}
		left, err = netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := got["::/0"]; !ok || r.Gw.String() != "fd00:1::1" {
		t.Errorf("IPv6 default route: got %+v (present %t), want via fd00:1::1", r, ok)
	}
	r, ok := got["10.5.0.0/16"]
	hops := map[string]int{}
	for _, nh := range r.MultiPath {
		hops[nh.Gw.String()] = nh.Hops + 1
	}
	if !ok || len(hops) != 2 || hops["192.0.2.254"] != 3 || hops["192.0.2.253"] != 1 {
		t.Errorf("multipath route: got %v (present %t), want 192.0.2.254 weight 3 and 192.0.2.253 weight 1", hops, ok)
	}
	if r, ok := got["10.6.0.0/16"]; !ok || r.Tos != 0x10 {
		t.Errorf("tos route: got %+v (present %t), want tos 0x10", r, ok)
	}
	if r, ok := got["10.7.0.1/32"]; !ok || r.Type != unix.RTN_LOCAL {
		t.Errorf("local route: got %+v (present %t), want type local", r, ok)
	}
	if len(left) > 0 {
		t.Errorf("routes of table 100 still there after DelRoute: %v", left)
	}
}
