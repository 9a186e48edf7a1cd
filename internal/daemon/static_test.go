package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/netio"
)

// staticCalls records what the static code asks of the kernel, one line
// per call.
type staticCalls struct {
	calls  []string
	refuse string // a call refused with an error
}

// expect checks the calls since the last expect, and forgets them.
func (k *staticCalls) expect(t *testing.T, what string, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, k.calls); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", what, diff)
	}
	k.calls = nil
}

func (k *staticCalls) do(call string) error {
	k.calls = append(k.calls, call)
	if call == k.refuse {
		return errors.New("refused")
	}
	return nil
}

func (k *staticCalls) AddAddress(iface string, a *config.IPAddress) error {
	return k.do(fmt.Sprintf("add addr %s dev %s", a.Prefix, a.Dev))
}
func (k *staticCalls) DelAddress(iface string, a *config.IPAddress) error {
	return k.do(fmt.Sprintf("del addr %s dev %s", a.Prefix, a.Dev))
}
func (k *staticCalls) AddRoute(iface string, r *config.Route) error {
	return k.do(fmt.Sprintf("add route %s via %s", r.Dst, r.Via))
}
func (k *staticCalls) DelRoute(iface string, r *config.Route) error {
	return k.do(fmt.Sprintf("del route %s via %s", r.Dst, r.Via))
}
func (k *staticCalls) AddRule(r *config.Rule) error {
	return k.do(fmt.Sprintf("add rule from %s table %d", r.From, r.Table))
}
func (k *staticCalls) DelRule(r *config.Rule) error {
	return k.do(fmt.Sprintf("del rule from %s table %d", r.From, r.Table))
}

const staticConf = `global_defs {
    default_interface eth1
}
static_ipaddress {
    192.0.2.1/24 dev eth0
    198.51.100.1/24
}
static_routes {
    10.1.0.0/16 via 192.0.2.254
    10.2.0.0/16 via 192.0.2.254
}
static_rules {
    from 10.3.0.0/16 table 100
}
`

// TestStaticLifecycle: static entries are added at start after what an
// earlier run may have left is removed (keepalived's order); a reload
// removes and adds only what config.Diff says changed, nothing else; stop
// removes all of them, rules first. An address without dev goes on
// default_interface.
func TestStaticLifecycle(t *testing.T) {
	cfg := lab.ParseConfig(t, staticConf)
	k := &staticCalls{}
	installStatic(k, cfg, lab.TestLogger(t))
	k.expect(t, "start", []string{
		"del rule from 10.3.0.0/16 table 100",
		"del route 10.1.0.0/16 via 192.0.2.254",
		"del route 10.2.0.0/16 via 192.0.2.254",
		"del addr 192.0.2.1/24 dev eth0",
		"del addr 198.51.100.1/24 dev eth1",
		"add addr 192.0.2.1/24 dev eth0",
		"add addr 198.51.100.1/24 dev eth1",
		"add route 10.1.0.0/16 via 192.0.2.254",
		"add route 10.2.0.0/16 via 192.0.2.254",
		"add rule from 10.3.0.0/16 table 100",
	})

	// A route's gateway changes, an address goes, a rule comes; the
	// other route and address are not touched.
	next := lab.ParseConfig(t, `global_defs {
    default_interface eth1
}
static_ipaddress {
    192.0.2.1/24 dev eth0
}
static_routes {
    10.1.0.0/16 via 192.0.2.253
    10.2.0.0/16 via 192.0.2.254
}
static_rules {
    from 10.3.0.0/16 table 100
    from 10.4.0.0/16 table 101
}
`)
	if errs := reloadStatic(k, config.Diff(cfg, next)); len(errs) > 0 {
		t.Fatal(errs)
	}
	k.expect(t, "reload", []string{
		"del route 10.1.0.0/16 via 192.0.2.254",
		"del addr 198.51.100.1/24 dev eth1",
		"add route 10.1.0.0/16 via 192.0.2.253",
		"add rule from 10.4.0.0/16 table 101",
	})

	// An unchanged reload (the same file read again) touches nothing.
	if errs := reloadStatic(k, config.Diff(cfg, lab.ParseConfig(t, staticConf))); len(errs) > 0 || len(k.calls) != 0 {
		t.Fatalf("unchanged reload: calls %v, errors %v", k.calls, errs)
	}

	// Stop: everything of the running configuration, rules first; a
	// refusal is reported and the rest still goes.
	k.refuse = "del route 10.2.0.0/16 via 192.0.2.254"
	errs := removeStatic(k, next)
	k.expect(t, "stop", []string{
		"del rule from 10.3.0.0/16 table 100",
		"del rule from 10.4.0.0/16 table 101",
		"del route 10.1.0.0/16 via 192.0.2.253",
		"del route 10.2.0.0/16 via 192.0.2.254",
		"del addr 192.0.2.1/24 dev eth0",
	})
	if len(errs) != 1 {
		t.Fatalf("stop errors = %v, want the one refusal", errs)
	}
}

// TestStaticKeeper: what keepalived puts back, on which change. A
// deleted static address is added again unless no_track; routes and
// rules only in a family where a static route (rule) names a
// track_group; an interface coming up brings back its addresses and
// routes; a reload's set stops the keeping of entries it drops.
func TestStaticKeeper(t *testing.T) {
	const src = `track_group TG {
    group {
        VI_1
    }
}
static_ipaddress {
    192.0.2.1/24 dev eth1
    192.0.2.2/24 dev eth1 no_track
    2001:db8::1/64 dev eth2
}
static_routes {
    198.51.100.0/24 via 192.0.2.254 dev eth1 track_group TG
    203.0.113.0/24 via 192.0.2.254 dev eth1 table 100
    10.9.0.0/16 via 192.0.2.254 dev eth1 no_track
    2001:db8:1::/48 via 2001:db8::fe dev eth2
}
static_rules {
    from 192.0.2.0/24 table 100
    from 2001:db8::/64 table 101
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.1/24
    }
}
`
	k := &staticCalls{}
	s := &staticKeeper{k: k, log: slog.New(slog.DiscardHandler)}
	s.set(lab.ParseConfig(t, src))
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		name   string
		change netio.Change
		want   []string
	}{
		{"address deleted", netio.Change{Kind: netio.AddressDeleted, Addr: netip.MustParseAddr("192.0.2.1")}, []string{"add addr 192.0.2.1/24 dev eth1"}},
		{"no_track address deleted", netio.Change{Kind: netio.AddressDeleted, Addr: netip.MustParseAddr("192.0.2.2")}, nil},
		{"IPv6 address deleted", netio.Change{Kind: netio.AddressDeleted, Addr: netip.MustParseAddr("2001:db8::1")}, []string{"add addr 2001:db8::1/64 dev eth2"}},
		{"other address deleted", netio.Change{Kind: netio.AddressDeleted, Addr: netip.MustParseAddr("192.0.2.9")}, nil},
		{"route deleted", netio.Change{Kind: netio.RouteDeleted, Dst: pfx("198.51.100.0/24"), Table: 254}, []string{"add route 198.51.100.0/24 via 192.0.2.254"}},
		{"route without group deleted, family watched", netio.Change{Kind: netio.RouteDeleted, Dst: pfx("203.0.113.0/24"), Table: 100}, []string{"add route 203.0.113.0/24 via 192.0.2.254"}},
		{"route deleted from another table", netio.Change{Kind: netio.RouteDeleted, Dst: pfx("203.0.113.0/24"), Table: 254}, nil},
		{"no_track route deleted", netio.Change{Kind: netio.RouteDeleted, Dst: pfx("10.9.0.0/16"), Table: 254}, nil},
		{"IPv6 route deleted, family not watched", netio.Change{Kind: netio.RouteDeleted, Dst: pfx("2001:db8:1::/48"), Table: 254, V6: true}, nil},
		{"rule deleted, no rule has a group", netio.Change{Kind: netio.RuleDeleted}, nil},
		{"interface up", netio.Change{Kind: netio.InterfaceUp, Interface: "eth1"}, []string{
			"add addr 192.0.2.1/24 dev eth1",
			"add route 198.51.100.0/24 via 192.0.2.254", "add route 203.0.113.0/24 via 192.0.2.254"}},
		{"overrun", netio.Change{Kind: netio.Overrun}, []string{
			"add addr 192.0.2.1/24 dev eth1", "add addr 2001:db8::1/64 dev eth2",
			"add route 198.51.100.0/24 via 192.0.2.254", "add route 203.0.113.0/24 via 192.0.2.254"}},
	} {
		s.handle(c.change)
		k.expect(t, c.name, c.want)
	}

	// A rule naming a group makes its family's rule deletions watched.
	withRuleGroup := lab.ParseConfig(t, strings.Replace(src, "table 101", "table 101 track_group TG", 1))
	s.set(withRuleGroup)
	s.handle(netio.Change{Kind: netio.RuleDeleted, V6: true})
	k.expect(t, "IPv6 rule deleted, a rule of the family has a group", []string{"add rule from 2001:db8::/64 table 101"})
	s.handle(netio.Change{Kind: netio.RuleDeleted})
	k.expect(t, "IPv4 rule deleted, no IPv4 rule has a group", nil)

	// An instance's virtual route without no_track makes its family's
	// route deletions watched too.
	s.set(lab.ParseConfig(t, strings.Replace(src, "        10.0.0.1/24\n    }\n", "        10.0.0.1/24\n    }\n    virtual_routes {\n        2001:db8:9::/48 dev eth0\n    }\n", 1)))
	s.handle(netio.Change{Kind: netio.RouteDeleted, Dst: pfx("2001:db8:1::/48"), Table: 254, V6: true})
	k.expect(t, "IPv6 route deleted, an instance has an IPv6 virtual route", []string{"add route 2001:db8:1::/48 via 2001:db8::fe"})

	// After a reload without the address, its deletion is left alone.
	s.set(lab.ParseConfig(t, "static_ipaddress {\n    192.0.2.7/24 dev eth1\n}\n"))
	s.handle(netio.Change{Kind: netio.AddressDeleted, Addr: netip.MustParseAddr("192.0.2.1")})
	k.expect(t, "address dropped by a reload deleted", nil)
}
