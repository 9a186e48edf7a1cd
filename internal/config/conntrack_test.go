package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConntrackSync covers the conntrack_sync block: defaults, the two
// transports, the instance or sync group it follows, and every refusal
// with its position.
func TestConntrackSync(t *testing.T) {
	// Two instances are lines 1-14, their sync group 15-20; the block
	// starts on line 21.
	blk := func(lines ...string) string {
		vi2 := strings.Replace(strings.Replace(vi, "VI_1", "VI_2", 1), "51", "52", 1)
		return vi + vi2 + "vrrp_sync_group G {\n  group {\n    VI_1\n    VI_2\n  }\n}\nconntrack_sync {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
	}
	const at = 21 // the block's line
	a := netip.MustParseAddr
	tests := []struct {
		name string
		src  string
		want []wantDiag
		cs   *ConntrackSync // nil: no block is kept
	}{
		{name: "unicast, default port",
			src: blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2"),
			cs:  &ConntrackSync{Instance: "VI_1", Interface: "eth1", Source: a("10.9.0.1"), Peer: a("10.9.0.2"), Port: 3780}},
		{name: "multicast, a sync group, IPv6, a port",
			src: blk("sync_group G", "interface eth1", "source fd00::1", "group ff02::3780", "port 4000"),
			cs:  &ConntrackSync{SyncGroup: "G", Interface: "eth1", Source: a("fd00::1"), Group: a("ff02::3780"), Port: 4000}},
		{name: "neither instance nor sync group",
			src:  blk("interface eth1", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, "give one of instance or sync_group")}},
		{name: "both instance and sync group",
			src:  blk("instance VI_1", "sync_group G", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, "give one of instance or sync_group")}},
		{name: "unknown instance",
			src:  blk("instance VI_9", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, `vrrp_instance "VI_9" is not defined`)}},
		{name: "unknown sync group",
			src:  blk("sync_group H", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, `vrrp_sync_group "H" is not defined`)}},
		{name: "no interface",
			src:  blk("instance VI_1", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, "interface is missing")}},
		{name: "interface name too long",
			src:  blk("instance VI_1", "interface eth0123456789abc", "source 10.9.0.1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, "longer than 15 bytes")}},
		{name: "no source",
			src:  blk("instance VI_1", "interface eth1", "peer 10.9.0.2"),
			want: []wantDiag{e(at, 1, "source is missing")}},
		{name: "neither peer nor group",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1"),
			want: []wantDiag{e(at, 1, "give one of peer (unicast UDP) or group (multicast)")}},
		{name: "both peer and group",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2", "group 225.0.0.50"),
			want: []wantDiag{e(at, 1, "give one of peer")}},
		{name: "families differ",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer fd00::2"),
			want: []wantDiag{e(at, 1, "peer fd00::2 and source 10.9.0.1 are of different families")}},
		{name: "group not multicast",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "group 10.9.0.3"),
			want: []wantDiag{e(at, 1, "group 10.9.0.3 is not a multicast address")}},
		{name: "peer is the source",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.1"),
			want: []wantDiag{e(at, 1, "peer 10.9.0.1 must be the other director's unicast address")}},
		{name: "bad address",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.x"),
			want: []wantDiag{e(at+4, 8, `"10.9.0.x" is not an IP address`), e(at, 1, "give one of peer")}},
		{name: "port out of range",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2", "port 0"),
			want: []wantDiag{e(at+5, 8, `"0" is not an integer in 1..65535`)},
			cs:   &ConntrackSync{Instance: "VI_1", Interface: "eth1", Source: a("10.9.0.1"), Peer: a("10.9.0.2"), Port: 3780}},
		{name: "unknown keyword",
			src:  blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2", "mode notrack"),
			want: []wantDiag{e(at+5, 3, `unknown keyword "mode"`)},
			cs:   &ConntrackSync{Instance: "VI_1", Interface: "eth1", Source: a("10.9.0.1"), Peer: a("10.9.0.2"), Port: 3780}},
		{name: "given twice",
			src: blk("instance VI_1", "interface eth1", "source 10.9.0.1", "peer 10.9.0.2") +
				"conntrack_sync {\n  instance VI_1\n}\n",
			want: []wantDiag{e(at+6, 1, "conntrack_sync: already given at t.conf:21:1")},
			cs:   &ConntrackSync{Instance: "VI_1", Interface: "eth1", Source: a("10.9.0.1"), Peer: a("10.9.0.2"), Port: 3780}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			got := cfg.ConntrackSync
			if tt.cs == nil {
				if got != nil && len(tt.want) == 0 {
					t.Fatalf("unexpected block %+v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("no ConntrackSync")
			}
			tt.cs.Pos = got.Pos
			if diff := cmp.Diff(tt.cs, got, cmpAddr); diff != "" {
				t.Errorf("ConntrackSync (-want +got):\n%s", diff)
			}
			if diags.HasErrors() {
				return
			}
			cfg2, diags2, text := roundTrip(t, cfg)
			if len(diags2) > 0 {
				t.Fatalf("formatted text: %v\n%s", diags2, text)
			}
			tt.cs.Pos = cfg2.ConntrackSync.Pos
			if diff := cmp.Diff(tt.cs, cfg2.ConntrackSync, cmpAddr); diff != "" {
				t.Errorf("after a round trip (-want +got):\n%s\n%s", diff, text)
			}
		})
	}
}

// TestDiffConntrackSync: any change of the block is a restart of
// conntrackd (Recreated) and touches nothing else; the same block is
// Unchanged.
func TestDiffConntrackSync(t *testing.T) {
	block := func(body string) string {
		return vi + "conntrack_sync {\n  instance VI_1\n  interface eth1\n  source 10.9.0.1\n" + body + "}\n"
	}
	parse := func(src string) *Config {
		t.Helper()
		cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
		if diags.HasErrors() {
			t.Fatalf("%v", diags)
		}
		return cfg
	}
	base := parse(block("  peer 10.9.0.2\n"))
	tests := []struct {
		name string
		new  string
		want Change
	}{
		{"same block, other text", "\n" + block("  peer 10.9.0.2\n  port 3780\n"), Unchanged},
		{"another peer", block("  peer 10.9.0.3\n"), Recreated},
		{"another port", block("  peer 10.9.0.2\n  port 3781\n"), Recreated},
		{"removed", vi, Removed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Diff(base, parse(tt.new))
			if d.ConntrackSync.Change != tt.want {
				t.Errorf("change %v, want %v", d.ConntrackSync.Change, tt.want)
			}
			if len(d.Instances) != 1 || d.Instances[0].Change != Unchanged || changed(d.Instances[0].VIPs) {
				t.Errorf("instances changed: %+v", d.Instances)
			}
		})
	}
	if d := Diff(parse(vi), base); d.ConntrackSync.Change != Added || d.ConntrackSync.New == nil {
		t.Errorf("added: %+v", d.ConntrackSync)
	}
}
