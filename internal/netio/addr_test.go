package netio

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// TestTypedValuesReachKernel installs addresses, a route and a rule as
// config reads them, in a namespace of its own, and reads them back from
// the kernel: every value config typed at load arrives as written (route
// proto by name, fwmark with a mask, tos, broadcast forms, scope), and the
// delete functions find what the add functions installed.
func TestTypedValuesReachKernel(t *testing.T) {
	l := oneNode(t)
	cfg, diags := config.Parse("t.conf", []byte(`static_ipaddress {
    198.51.100.1/24 brd + dev eth0 scope link
    198.18.0.2/24 brd - dev eth0
    203.0.113.1/24 brd 203.0.113.127 dev eth0
}
static_routes {
    10.1.0.0/16 via 192.0.2.254 dev eth0 table 100 proto static metric 5
    blackhole 10.2.0.0/16 table 0x65 proto 42
}
static_rules {
    from 10.3.0.0/16 fwmark 0x10/0xff tos 0x10 table 100 priority 1000
}
`), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	type addrGot struct {
		brd   string
		scope int
	}
	var (
		addrs  = map[string]addrGot{}
		routes = map[string]netlink.Route{}
		rule   *netlink.Rule
	)
	err := l.Do("n", func() error {
		for _, a := range cfg.StaticAddresses {
			if err := AddAddress("eth0", a); err != nil {
				return err
			}
		}
		for _, r := range cfg.StaticRoutes {
			if err := AddRoute("eth0", r); err != nil {
				return err
			}
		}
		if err := AddRule(cfg.StaticRules[0]); err != nil {
			return err
		}
		as, err := netlink.AddrList(nil, netlink.FAMILY_V4) // every link's
		if err != nil {
			return err
		}
		for _, a := range as {
			addrs[a.IPNet.String()] = addrGot{brd: a.Broadcast.String(), scope: a.Scope}
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst != nil {
				routes[r.Dst.String()] = r
			}
		}
		rules, err := netlink.RuleList(netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for i := range rules {
			if rules[i].Priority == 1000 {
				rule = &rules[i]
			}
		}
		// What the add functions installed, the delete functions remove.
		for _, r := range cfg.StaticRoutes {
			if err := DelRoute("eth0", r); err != nil {
				return err
			}
		}
		if err := DelRule(cfg.StaticRules[0]); err != nil {
			return err
		}
		rs, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		rules, err = netlink.RuleList(netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.Priority == 1000 {
				return fmt.Errorf("rule still there after DelRule: %v", r)
			}
		}
		if len(rs) > 0 {
			return fmt.Errorf("routes of table 100 still there after DelRoute: %v", rs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for pfx, want := range map[string]addrGot{
		"198.51.100.1/24": {brd: "198.51.100.255", scope: unix.RT_SCOPE_LINK},
		"198.18.0.2/24":   {brd: "<nil>", scope: unix.RT_SCOPE_UNIVERSE}, // brd -: none at all
		"203.0.113.1/24":  {brd: "203.0.113.127", scope: unix.RT_SCOPE_UNIVERSE},
	} {
		if got, ok := addrs[pfx]; !ok || got != want {
			t.Errorf("address %s: got %+v (present %t), want %+v", pfx, got, ok, want)
		}
	}
	if r, ok := routes["10.1.0.0/16"]; !ok || r.Table != 100 || r.Protocol != unix.RTPROT_STATIC || r.Priority != 5 || r.Gw.String() != "192.0.2.254" {
		t.Errorf("route 10.1.0.0/16: got %+v (present %t), want table 100 proto static metric 5 via 192.0.2.254", r, ok)
	}
	if r, ok := routes["10.2.0.0/16"]; !ok || r.Table != 101 || r.Protocol != 42 || r.Type != unix.RTN_BLACKHOLE {
		t.Errorf("route 10.2.0.0/16: got %+v (present %t), want blackhole table 101 proto 42", r, ok)
	}
	switch {
	case rule == nil:
		t.Error("rule priority 1000 not installed")
	case rule.Mark != 0x10 || rule.Mask == nil || *rule.Mask != 0xff || rule.Tos != 0x10 || rule.Table != 100 || rule.Src.String() != "10.3.0.0/16":
		t.Errorf("rule: got mark %#x mask %v tos %#x table %d from %v, want 0x10/0xff tos 0x10 table 100 from 10.3.0.0/16", rule.Mark, rule.Mask, rule.Tos, rule.Table, rule.Src)
	}
}

// oneNode is a lab of one node, "n", with eth0 at 192.0.2.1/24 on a switch
// of its own; it skips t unless run as root.
func oneNode(t *testing.T) *lab.Lab {
	lab.RequireRoot(t)
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "n", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}}}})
}
