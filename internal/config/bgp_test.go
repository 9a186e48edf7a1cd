package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// bgpVS is two DR virtual servers on 192.0.2.10 (ports 80, 443) and one
// on 192.0.2.11, lines 1-18; the bgp block starts on line 19.
const bgpVS = `virtual_server 192.0.2.10 80 {
  lb_kind DR
  protocol TCP
  lb_algo rr
}
virtual_server 192.0.2.10 443 {
  lb_kind DR
  protocol TCP
  lb_algo rr
}
virtual_server 192.0.2.11 80 {
  lb_kind DR
  protocol TCP
  lb_algo rr
}
bfd_instance R1 {
  neighbor_ip 10.0.0.254
}
`

// TestBGP covers the bgp block: defaults, every keyword, and every
// refusal with its position.
func TestBGP(t *testing.T) {
	blk := func(lines ...string) string {
		return bgpVS + "bgp {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
	}
	const at = 19 // the block's line
	nb := func(lines ...string) string {
		return "neighbor 10.0.0.254 {\n    " + strings.Join(lines, "\n    ") + "\n  }"
	}
	a := netip.MustParseAddr
	sec := func(n int) Duration { return Duration(time.Duration(n) * time.Second) }
	base := []string{"router_id 10.0.0.1", "local_as 65001"}
	with := func(more ...string) []string { return append(append([]string(nil), base...), more...) }
	defNeighbor := &BGPNeighbor{Addr: a("10.0.0.254"), RemoteAS: 65000, HoldTime: sec(90), KeepaliveTime: sec(30)}
	med := uint32(50)
	tests := []struct {
		name string
		src  string
		want []wantDiag
		b    *BGP // nil: no block is kept
	}{
		{name: "defaults",
			src: blk(with(nb("remote_as 65000"))...),
			b:   &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "every keyword",
			src: blk(with(nb("remote_as 4200000000", "password \"s3cret word\"", "source_ip 10.0.0.1", "hold_time 9", "keepalive_time 3", "multihop", "bfd R1"),
				"neighbor fd00::1 {\n    remote_as 65000\n    hold_time 3\n    keepalive_time 2\n    multihop 2\n  }",
				"announce {\n    192.0.2.11\n  }", "community 65000:100 65535:0", "community 1:2", "med 50", "graceful_shutdown_delay 0.5")...),
			b: &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{
				{Addr: a("10.0.0.254"), RemoteAS: 4200000000, Password: "s3cret word", Source: a("10.0.0.1"), HoldTime: sec(9), KeepaliveTime: sec(3), MultihopTTL: 255, BFD: "R1"},
				{Addr: a("fd00::1"), RemoteAS: 65000, HoldTime: sec(3), KeepaliveTime: sec(2), MultihopTTL: 2},
			}, Announce: []netip.Addr{a("192.0.2.11")}, Communities: []uint32{65000<<16 | 100, 65535 << 16, 1<<16 | 2}, MED: &med,
				GracefulShutdownDelay: Duration(500 * time.Millisecond)}},
		{name: "announce all",
			src: blk(with(nb("remote_as 65000"), "announce all")...),
			b:   &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "no router_id",
			src:  blk("local_as 1", nb("remote_as 65000")),
			want: []wantDiag{e(at, 1, "router_id is missing")}},
		{name: "router_id not IPv4",
			src:  blk("router_id fd00::1", "local_as 1", nb("remote_as 65000")),
			want: []wantDiag{e(at, 1, "router_id fd00::1 is not a non-zero IPv4 address")}},
		{name: "no local_as",
			src:  blk("router_id 10.0.0.1", nb("remote_as 65000")),
			want: []wantDiag{e(at, 1, "local_as is missing")}},
		{name: "AS out of range",
			src:  blk("router_id 10.0.0.1", "local_as 4294967296", nb("remote_as 0")),
			want: []wantDiag{e(at+2, 12, `"4294967296" is not an integer in 1..4294967295`), e(at+4, 15, `"0" is not an integer in 1..4294967295`), e(at+3, 3, "remote_as is missing"), e(at, 1, "local_as is missing")}},
		{name: "no neighbor",
			src:  blk(base...),
			want: []wantDiag{e(at, 1, "no neighbor")}},
		{name: "hold time 0",
			src:  blk(with(nb("remote_as 65000", "hold_time 0", "keepalive_time 0"))...),
			want: []wantDiag{e(at+5, 15, `"0" is not an integer in 3..65535`), e(at+6, 20, `"0" is not an integer in 1..65535`)},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "keepalive not below hold",
			src:  blk(with(nb("remote_as 65000", "hold_time 9", "keepalive_time 9"))...),
			want: []wantDiag{e(at+3, 3, "keepalive_time 9 must be less than hold_time 9"), e(at, 1, "no neighbor")}},
		{name: "hold not whole seconds",
			src:  blk(with(nb("remote_as 65000", "hold_time 1.5"))...),
			want: []wantDiag{e(at+5, 15, `"1.5" is not an integer in 3..65535`)},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "neighbor twice",
			src:  blk(with(nb("remote_as 65000"), nb("remote_as 65002"))...),
			want: []wantDiag{e(at+6, 3, "bgp neighbor 10.0.0.254: already given at t.conf:22:3")},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "source of another family",
			src:  blk(with(nb("remote_as 65000", "source_ip fd00::2"))...),
			want: []wantDiag{e(at+3, 3, "source_ip fd00::2 is not of the neighbor's family"), e(at, 1, "no neighbor")}},
		{name: "multihop TTL out of range",
			src:  blk(with(nb("remote_as 65000", "multihop 0"))...),
			want: []wantDiag{e(at+5, 14, `"0" is not an integer in 1..255`)},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{{Addr: a("10.0.0.254"), RemoteAS: 65000, HoldTime: sec(90), KeepaliveTime: sec(30), MultihopTTL: 255}}, GracefulShutdownDelay: sec(5)}},
		{name: "unknown bfd_instance",
			src:  blk(with(nb("remote_as 65000", "bfd R9"))...),
			want: []wantDiag{e(at+3, 3, `bfd_instance "R9" is not defined`)}},
		{name: "bfd_instance to another router",
			src:  blk(with(nb("remote_as 65000"), "neighbor 10.0.0.253 {\n    remote_as 65000\n    bfd R1\n  }")...),
			want: []wantDiag{e(at+6, 3, "bfd_instance R1's neighbor_ip is 10.0.0.254, not this router")}},
		{name: "announce a VIP no virtual server has",
			src:  blk(with(nb("remote_as 65000"), "announce {\n    192.0.2.10\n    192.0.2.99\n  }")...),
			want: []wantDiag{e(at, 1, "announce: 192.0.2.99 is not the address of any virtual_server")}},
		{name: "announce a VIP twice, a bad address, a bad word",
			src: blk(with(nb("remote_as 65000"), "announce {\n    192.0.2.10 192.0.2.10\n    nope\n  }", "announce some")...),
			want: []wantDiag{e(at+7, 16, "announce: 192.0.2.10 is listed twice"), e(at+8, 5, `"nope" is not an IP address`),
				e(at+10, 3, "announce: already given")},
			b: &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, Announce: []netip.Addr{a("192.0.2.10")}, GracefulShutdownDelay: sec(5)}},
		{name: "announce all misspelt",
			src:  blk(with(nb("remote_as 65000"), "announce al")...),
			want: []wantDiag{e(at+6, 12, `"al" is not one of all`)},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "bad communities and med",
			src: blk(with(nb("remote_as 65000"), "community 65536:1 1:x 7", "med -1")...),
			want: []wantDiag{e(at+6, 13, `"65536:1" is not ASN:VALUE`), e(at+6, 21, `"1:x" is not ASN:VALUE`), e(at+6, 25, `"7" is not ASN:VALUE`),
				e(at+7, 7, `"-1" is not an integer in 0..4294967295`)},
			b: &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "unknown keyword",
			src:  blk(with(nb("remote_as 65000", "passive"))...),
			want: []wantDiag{e(at+5, 5, `neighbor: unknown keyword "passive"`)},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "given twice",
			src:  blk(with(nb("remote_as 65000"))...) + "bgp {\n  local_as 1\n}\n",
			want: []wantDiag{e(at+7, 1, "bgp: already given at t.conf:19:1")},
			b:    &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, GracefulShutdownDelay: sec(5)}},
		{name: "a NAT virtual server announced",
			src:  strings.Replace(blk(with(nb("remote_as 65000"))...), "lb_kind DR", "lb_kind NAT", 1),
			want: []wantDiag{e(1, 1, "virtual_server 192.0.2.10:80: NAT (its lb_kind, a real server's or the sorry server's) cannot be announced over BGP (bgp at t.conf:19:1 announces 192.0.2.10)")}},
		{name: "a NAT sorry server announced",
			src:  strings.Replace(blk(with(nb("remote_as 65000"))...), "lb_kind DR\n", "lb_kind DR\n  sorry_server 10.9.0.9 80\n  sorry_server_lvs_method NAT\n", 1),
			want: []wantDiag{e(1, 1, "virtual_server 192.0.2.10:80: NAT (its lb_kind, a real server's or the sorry server's) cannot be announced")}},
		{name: "a NAT virtual server not announced",
			src: strings.Replace(blk(with(nb("remote_as 65000"), "announce {\n    192.0.2.11\n  }")...), "lb_kind DR", "lb_kind NAT", 1),
			b:   &BGP{RouterID: a("10.0.0.1"), LocalAS: 65001, Neighbors: []*BGPNeighbor{defNeighbor}, Announce: []netip.Addr{a("192.0.2.11")}, GracefulShutdownDelay: sec(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			got := cfg.BGP
			if tt.b == nil {
				if got != nil && len(tt.want) == 0 {
					t.Fatalf("unexpected block %+v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("no BGP")
			}
			ignorePos := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Pos" }, cmp.Ignore())
			if diff := cmp.Diff(tt.b, got, cmpAddr, ignorePos); diff != "" {
				t.Errorf("BGP (-want +got):\n%s", diff)
			}
			if diags.HasErrors() {
				return
			}
			cfg2, diags2, text := roundTrip(t, cfg)
			if len(diags2) > 0 {
				t.Fatalf("formatted text: %v\n%s", diags2, text)
			}
			if diff := cmp.Diff(tt.b, cfg2.BGP, cmpAddr, ignorePos); diff != "" {
				t.Errorf("after a round trip (-want +got):\n%s\n%s", diff, text)
			}
		})
	}
}

// TestBGPAnnounced: announce all takes every virtual server's VIP, groups
// included; a list takes only its VIPs; each VIP carries its virtual
// servers.
func TestBGPAnnounced(t *testing.T) {
	src := bgpVS + `virtual_server_group G {
  192.0.2.20-21 80
  fwmark 7
}
virtual_server group G {
  lb_kind DR
  protocol TCP
  lb_algo rr
}
bgp {
  router_id 10.0.0.1
  local_as 65001
  neighbor 10.0.0.254 {
    remote_as 65000
  }
  %s
}
`
	for _, tt := range []struct {
		announce string
		want     map[string][]string // VIP -> its virtual servers' names
	}{
		{"announce all", map[string][]string{
			"192.0.2.10": {"192.0.2.10:80", "192.0.2.10:443"}, "192.0.2.11": {"192.0.2.11:80"},
			"192.0.2.20": {"group G"}, "192.0.2.21": {"group G"}}},
		{"announce {\n 192.0.2.10\n 192.0.2.21\n}", map[string][]string{
			"192.0.2.10": {"192.0.2.10:80", "192.0.2.10:443"}, "192.0.2.21": {"group G"}}},
	} {
		cfg, diags := Parse("t.conf", []byte(strings.Replace(src, "%s", tt.announce, 1)), Options{ConfigID: "x"})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", tt.announce, diags)
		}
		got := map[string][]string{}
		for vip, vss := range cfg.BGPAnnounced() {
			for _, vs := range vss {
				got[vip.String()] = append(got[vip.String()], vs.Name())
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: announced (-want +got):\n%s", tt.announce, diff)
		}
	}
	if vips := (&Config{}).BGPAnnounced(); vips != nil {
		t.Errorf("without a bgp block: %v", vips)
	}
}

// TestDiffBGP: the speaker's identity recreates it, its other settings
// change in place, and a neighbor's change touches that neighbor only.
func TestDiffBGP(t *testing.T) {
	conf := func(routerID, extra, n2 string) *Config {
		src := bgpVS + "bgp {\n router_id " + routerID + "\n local_as 65001\n" + extra +
			" neighbor 10.0.0.254 {\n  remote_as 65000\n }\n neighbor 10.0.0.253 {\n  remote_as 65000\n" + n2 + " }\n}\n"
		cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	base := conf("10.0.0.1", "", "")
	type change struct {
		bgp       Change
		neighbors map[Key]Change
	}
	for _, tt := range []struct {
		name string
		new  *Config
		want change
	}{
		{"same", conf("10.0.0.1", "", ""), change{Unchanged, map[Key]Change{"bgp neighbor 10.0.0.254": Unchanged, "bgp neighbor 10.0.0.253": Unchanged}}},
		{"med", conf("10.0.0.1", " med 5\n", ""), change{InPlace, map[Key]Change{"bgp neighbor 10.0.0.254": Unchanged, "bgp neighbor 10.0.0.253": Unchanged}}},
		{"router id", conf("10.0.0.2", "", ""), change{Recreated, map[Key]Change{"bgp neighbor 10.0.0.254": Unchanged, "bgp neighbor 10.0.0.253": Unchanged}}},
		{"one neighbor's hold time", conf("10.0.0.1", "", "  hold_time 9\n"), change{Unchanged, map[Key]Change{"bgp neighbor 10.0.0.254": Unchanged, "bgp neighbor 10.0.0.253": Recreated}}},
		{"a neighbor added", conf("10.0.0.1", " neighbor 10.0.0.9 {\n  remote_as 65009\n }\n", ""),
			change{Unchanged, map[Key]Change{"bgp neighbor 10.0.0.254": Unchanged, "bgp neighbor 10.0.0.253": Unchanged, "bgp neighbor 10.0.0.9": Added}}},
		{"block removed", &Config{}, change{Removed, map[Key]Change{"bgp neighbor 10.0.0.254": Removed, "bgp neighbor 10.0.0.253": Removed}}},
	} {
		d := Diff(base, tt.new)
		got := change{d.BGP.Change, map[Key]Change{}}
		for _, n := range d.BGPNeighbors {
			got.neighbors[n.Key] = n.Change
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(change{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}
