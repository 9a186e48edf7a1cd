package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// bfdB is a minimal bfd_instance B, lines 1-3.
const bfdB = "bfd_instance B {\n  neighbor_ip 10.0.0.2\n}\n"

// viWith is vi (lines 1-6 of its own) with body lines before its closing
// brace.
func viWith(body string) string {
	return vi[:len(vi)-2] + body + "}\n"
}

// TestBFDConfig: bfd_instance, track_bfd, fast_failover_bfd and BFD_CHECK
// as keepalived 2.2.7 reads them. The cases marked "keepalived -t: 5" were
// run through Debian's keepalived 2.2.7 (`keepalived -t -f FILE`), which
// refuses each of them (exit 5); those marked "keepalived -t: 0" load there.
func TestBFDConfig(t *testing.T) {
	runValueCases(t, []valueCase{
		{
			name: "defaults", // keepalived -t: 0
			src:  bfdB + "bfd_instance C {\n  neighbour_ip fd00::2\n}\n",
			check: func(t *testing.T, cfg *Config) {
				want := []*BFDInstance{
					{Name: "B", Neighbor: netip.MustParseAddr("10.0.0.2"), MinRx: Duration(10 * time.Millisecond), MinTx: Duration(10 * time.Millisecond), IdleTx: Duration(time.Second), Multiplier: 5, TTL: 255},
					{Name: "C", Neighbor: netip.MustParseAddr("fd00::2"), MinRx: Duration(10 * time.Millisecond), MinTx: Duration(10 * time.Millisecond), IdleTx: Duration(time.Second), Multiplier: 5, TTL: 64},
				}
				if d := cmp.Diff(want, cfg.BFDInstances, cmpopts.IgnoreFields(BFDInstance{}, "Pos"), cmpopts.IgnoreUnexported(BFDInstance{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
					t.Errorf("bfd_instances (-want +got):\n%s", d)
				}
			},
		},
		{
			name: "every keyword", // keepalived -t: 0 without multihop
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  source_ip 10.0.0.1\n  min_rx 1.5\n  min_tx 20\n  idle_tx 2000\n  multiplier 3\n  passive\n  hoplimit 10\n  max_hops -1\n  weight 30 reverse\n  multihop\n}\n",
			want: []wantDiag{w(12, 3, "multihop is a Tandem extension")},
			check: func(t *testing.T, cfg *Config) {
				b := cfg.BFDInstances[0]
				want := BFDInstance{Name: "B", Neighbor: netip.MustParseAddr("10.0.0.2"), Source: netip.MustParseAddr("10.0.0.1"),
					MinRx: Duration(1500 * time.Microsecond), MinTx: Duration(20 * time.Millisecond), IdleTx: Duration(2 * time.Second),
					Multiplier: 3, Passive: true, TTL: 10, MaxHops: -1, Weight: 30, WeightReverse: true, Multihop: true}
				if d := cmp.Diff(want, *b, cmpopts.IgnoreFields(BFDInstance{}, "Pos"), cmpopts.IgnoreUnexported(BFDInstance{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
					t.Errorf("bfd_instance (-want +got):\n%s", d)
				}
			},
		},
		{
			name: "min_rx 0", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  min_rx 0\n}\n",
			want: []wantDiag{e(3, 10, `min_rx: "0" is not a number of milliseconds in 1..4294967`)},
		},
		{
			name: "too many decimals", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  min_tx 1.2345\n}\n",
			want: []wantDiag{e(3, 10, `min_tx: "1.2345" is not a number of milliseconds`)},
		},
		{
			name: "idle_tx below a second", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  idle_tx 500\n}\n",
			want: []wantDiag{e(3, 11, `idle_tx: "500" is not a number of milliseconds in 1000..`)},
		},
		{
			name: "larger than sensible", // keepalived -t: 0 (logged at INFO)
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  min_rx 20000\n}\n",
			want: []wantDiag{w(3, 10, "min_rx: 20000 ms is larger than the sensible maximum of 10000 ms")},
		},
		{
			name: "multiplier 0", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  multiplier 0\n}\n",
			want: []wantDiag{e(3, 14, `multiplier: "0" is not an integer in 1..255`)},
		},
		{
			name: "ttl 0", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  ttl 0\n}\n",
			want: []wantDiag{e(3, 7, `ttl: "0" is not an integer in 1..255`)},
		},
		{
			name: "max_hops -2", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  max_hops -2\n}\n",
			want: []wantDiag{e(3, 12, `max_hops: "-2" is not an integer in -1..255`)},
		},
		{
			name: "max_hops above ttl", // keepalived -t: 5 (and clamps it)
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  ttl 10\n  max_hops 20\n}\n",
			want: []wantDiag{e(1, 1, "bfd_instance B: max_hops 20 exceeds ttl/hoplimit 10")},
		},
		{
			name: "max_hops above the IPv6 default hoplimit", // keepalived -t: 5; 64 loads
			src:  "bfd_instance B {\n  neighbor_ip fd00::2\n  max_hops 100\n}\nbfd_instance C {\n  neighbor_ip fd00::3\n  max_hops 64\n}\n",
			want: []wantDiag{e(1, 1, "bfd_instance B: max_hops 100 exceeds ttl/hoplimit 64")},
		},
		{
			name: "no neighbor", // keepalived -t: 5
			src:  "bfd_instance B {\n  min_rx 10\n}\n",
			want: []wantDiag{e(1, 1, "bfd_instance B: no neighbor_ip given")},
		},
		{
			name: "malformed neighbor", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbour_ip bogus\n}\n",
			want: []wantDiag{e(2, 16, `neighbour_ip: "bogus" is not an IP address`), e(1, 1, "bfd_instance B: no neighbour_ip given")},
		},
		{
			name: "families differ", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  source_ip fd00::1\n}\n",
			want: []wantDiag{e(1, 1, "bfd_instance B: source_ip fd00::1 and neighbor_ip 10.0.0.2 are not of the same family")},
		},
		{
			name: "duplicate name", // keepalived -t: 5
			src:  bfdB + "bfd_instance B {\n  neighbor_ip 10.0.0.3\n}\n",
			want: []wantDiag{e(4, 1, "bfd_instance B is defined twice (first at t.conf:1:1)")},
		},
		{
			name: "duplicate neighbor", // keepalived -t: 5
			src:  bfdB + "bfd_instance C {\n  neighbor_ip 10.0.0.2\n  source_ip 10.0.0.1\n}\n",
			want: []wantDiag{e(4, 1, "bfd_instance C: neighbor_ip 10.0.0.2 is already bfd_instance B's")},
		},
		{
			name: "one neighbor from two sources", // keepalived -t: 0
			src:  "bfd_instance C {\n  neighbor_ip 10.0.0.3\n  source_ip 10.0.0.1\n}\nbfd_instance D {\n  neighbor_ip 10.0.0.3\n  source_ip 10.0.0.9\n}\n",
		},
		{
			name: "name too long", // keepalived -t: 5 (31 characters at most)
			src:  "bfd_instance ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 {\n  neighbor_ip 10.0.0.2\n}\n",
			want: []wantDiag{e(1, 14, "name longer than 31 characters")},
		},
		{
			name: "weight out of range", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  weight 300\n}\n",
			want: []wantDiag{e(3, 10, `weight: "300" is not an integer in -253..253`)},
		},
		{
			name: "weight option unknown", // keepalived -t: 5
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  weight 10 bogus\n}\n",
			want: []wantDiag{e(3, 13, `weight: expected "reverse", got "bogus"`)},
		},
		{
			name: "per-process routing is keepalived's",
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  checker\n}\n",
			want: []wantDiag{w(3, 3, `bfd_instance: keyword "checker" is not supported by Tandem`)},
		},
		{
			name: "track_bfd weights", // keepalived -t: 0
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  weight 30 reverse\n}\nbfd_instance C {\n  neighbor_ip 10.0.0.3\n}\n" + viWith("  track_bfd {\n    B\n    C weight -20 noreverse\n  }\n"),
			check: func(t *testing.T, cfg *Config) {
				got := cfg.Instances[0].TrackBFD
				want := []TrackRef{{Name: "B", Weight: 30, Reverse: true}, {Name: "C", Weight: -20, WeightSet: true}}
				if d := cmp.Diff(want, got, cmpopts.IgnoreFields(TrackRef{}, "Pos")); d != "" {
					t.Errorf("track_bfd (-want +got):\n%s", d)
				}
			},
		},
		{
			name: "track_bfd of an unknown session", // keepalived -t: 5
			src:  viWith("  track_bfd {\n    X\n  }\n"),
			want: []wantDiag{e(8, 5, `vrrp_instance VI_1: track_bfd: bfd_instance "X" is not defined`)},
		},
		{
			name: "track_bfd twice", // keepalived -t: 5
			src:  bfdB + viWith("  track_bfd {\n    B\n    B\n  }\n"),
			want: []wantDiag{e(12, 5, "vrrp_instance VI_1: track_bfd: B is tracked twice")},
		},
		{
			name: "track_bfd weight without value", // keepalived -t: 5
			src:  bfdB + viWith("  track_bfd {\n    B weight\n  }\n"),
			want: []wantDiag{e(11, 7, `track_bfd: expected "B [weight N [reverse]]"`)},
		},
		{
			name: "track_bfd weight out of range", // keepalived -t: 5
			src:  bfdB + viWith("  track_bfd {\n    B weight 400\n  }\n"),
			want: []wantDiag{e(11, 14, `track_bfd: "400" is not an integer in -253..253`)},
		},
		{
			name: "track_bfd unknown option", // keepalived -t: 5
			src:  bfdB + viWith("  track_bfd {\n    B weight 4 sideways\n  }\n"),
			want: []wantDiag{e(11, 16, `track_bfd: "sideways" is not one of reverse, noreverse`)},
		},
		{
			name: "track_bfd in a sync group", // keepalived -t: 0 apart from its one-member warning
			src:  bfdB + vi + "vrrp_sync_group G {\n  group {\n    VI_1\n  }\n  track_bfd {\n    B weight 10 reverse\n  }\n}\n",
			want: []wantDiag{w(11, 1, "a sync group of one instance does nothing")},
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.SyncGroups[0].TrackBFD; len(got) != 1 || got[0].Weight != 10 || !got[0].Reverse {
					t.Errorf("track_bfd %+v", got)
				}
			},
		},
		{
			// vrrp.c vrrp_complete_instance: "Ignore any weighted tracked
			// bfd" of an address owner and of a sync group member.
			// keepalived -t: 5 (a configuration error there); Tandem warns,
			// as unweightTrackers does for the other trackers.
			name: "weighted track_bfd of an address owner",
			src:  "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  weight 10\n}\n" + strings.Replace(viWith("  track_bfd {\n    B\n  }\n"), "interface eth0", "interface eth0\n  priority 255", 1),
			want: []wantDiag{w(13, 5, "ignoring track_bfd B, which has a weight: address owner")},
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Instances[0].TrackBFD; len(got) != 0 {
					t.Errorf("track_bfd %+v kept", got)
				}
			},
		},
		{
			name: "fast_failover_bfd", // keepalived -t: 5 (unknown keyword)
			src:  bfdB + viWith("  fast_failover_bfd B\n"),
			want: []wantDiag{w(10, 3, "fast_failover_bfd is a Tandem extension; keepalived does not know it")},
			check: func(t *testing.T, cfg *Config) {
				if r := cfg.Instances[0].FastFailoverBFD; r == nil || r.Name != "B" {
					t.Errorf("fast_failover_bfd %+v", r)
				}
			},
		},
		{
			name: "fast_failover_bfd to a neighbor that is no unicast peer",
			src:  bfdB + viWith("  unicast_peer {\n    10.0.0.3\n  }\n  fast_failover_bfd B\n"),
			want: []wantDiag{w(13, 3, "Tandem extension"), w(13, 21, "bfd_instance B's neighbor 10.0.0.2 is none of the instance's unicast peers")},
		},
		{
			name: "fast_failover_bfd to a unicast peer",
			src:  bfdB + viWith("  unicast_peer {\n    10.0.0.2\n  }\n  fast_failover_bfd B\n"),
			want: []wantDiag{w(13, 3, "Tandem extension")},
		},
		{
			name: "fast_failover_bfd of an unknown session",
			src:  viWith("  fast_failover_bfd X\n"),
			want: []wantDiag{w(7, 3, "Tandem extension"), e(7, 21, `vrrp_instance VI_1: fast_failover_bfd: bfd_instance "X" is not defined`)},
		},
		{
			name: "BFD_CHECK", // keepalived -t: 0
			src:  bfdB + vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name B\n      alpha\n    }\n  }\n"),
			check: func(t *testing.T, cfg *Config) {
				c := cfg.VirtualServers[0].RealServers[0].Checkers[0]
				if c.Type != CheckBFD || c.BFD == nil || c.BFD.Name != "B" || !c.Timing.Alpha {
					t.Errorf("checker %+v bfd %+v", c, c.BFD)
				}
			},
		},
		{
			name: "BFD_CHECK of an unknown session", // keepalived -t: 5
			src:  vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name X\n    }\n  }\n"),
			want: []wantDiag{e(6, 5, `BFD_CHECK: bfd_instance "X" is not defined`)},
		},
		{
			name: "BFD_CHECK without a name", // keepalived -t: 5
			src:  bfdB + vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      alpha\n    }\n  }\n"),
			want: []wantDiag{e(9, 5, "BFD_CHECK: no name given")},
		},
		{
			name: "BFD_CHECK twice on one server", // keepalived -t: 5
			src:  bfdB + vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name B\n    }\n    BFD_CHECK {\n      name B\n    }\n  }\n"),
			want: []wantDiag{e(12, 5, "the real server already checks B")},
		},
		{
			name: "BFD_CHECK takes no timing keywords", // keepalived -t: 5 (unknown keyword)
			src:  bfdB + vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name B\n      delay_loop 3\n    }\n  }\n"),
			want: []wantDiag{e(11, 7, `BFD_CHECK: unknown keyword "delay_loop"`)},
		},
	})
}

// TestDiffBFD: a session's timers, passive, ttl and weight change in
// place; its neighbor, source and hop mode make another session; a
// BFD_CHECK is keyed by the session it follows.
func TestDiffBFD(t *testing.T) {
	const base = "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  min_rx 10\n}\n" +
		"virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name B\n    }\n  }\n}\n"
	b := Key("bfd_instance B")
	vs := Key("virtual_server inet TCP 10.0.0.1:80")
	rs := vs + "/real_server 10.0.0.5:80"
	for _, tc := range []struct {
		name, from, to string
		want           map[Key]Change
	}{
		{"nothing", "", "", nil},
		{"min_rx", "min_rx 10", "min_rx 5", map[Key]Change{b: InPlace}},
		{"multiplier", "min_rx 10", "min_rx 10\n  multiplier 3", map[Key]Change{b: InPlace}},
		{"passive", "min_rx 10", "min_rx 10\n  passive", map[Key]Change{b: InPlace}},
		{"ttl", "min_rx 10", "min_rx 10\n  ttl 10", map[Key]Change{b: InPlace}},
		{"neighbor", "10.0.0.2", "10.0.0.3", map[Key]Change{b: Recreated}},
		{"source", "min_rx 10", "min_rx 10\n  source_ip 10.0.0.9", map[Key]Change{b: Recreated}},
		{"multihop", "min_rx 10", "min_rx 10\n  multihop", map[Key]Change{b: Recreated}},
		{"renamed", "B {", "C {\n  weight 1", map[Key]Change{b: Removed, "bfd_instance C": Added,
			vs: InPlace, rs: InPlace, rs + "/BFD_CHECK B": Removed, rs + "/BFD_CHECK C": Added}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := strings.Replace(base, tc.from, tc.to, 1)
			if tc.name == "renamed" {
				to = strings.Replace(to, "name B", "name C", 1)
			}
			got := flatten(Diff(mustParseDiff(t, base), mustParseDiff(t, to)))
			for k, c := range got {
				if c != tc.want[k] {
					t.Errorf("%s: %v, want %v", k, c, tc.want[k])
				}
			}
			for k := range tc.want {
				if _, ok := got[k]; !ok {
					t.Errorf("%s: not in the diff (keys %v)", k, keys(got))
				}
			}
		})
	}
}

// TestBFDRoundTrip: tandem fmt prints every BFD keyword so that the text
// reads back to the same model.
func TestBFDRoundTrip(t *testing.T) {
	src := "bfd_instance B {\n  neighbor_ip 10.0.0.2\n  source_ip 10.0.0.1\n  min_rx 1.5\n  min_tx 20\n  idle_tx 2000\n  multiplier 3\n  passive\n  hoplimit 10\n  max_hops -1\n  weight 30 reverse\n  multihop\n}\n" +
		"bfd_instance C {\n  neighbor_ip fd00::2\n}\n" +
		viWith("  track_bfd {\n    B\n    C weight -20 reverse\n  }\n  fast_failover_bfd C\n") +
		"vrrp_sync_group G {\n  group {\n    VI_1\n  }\n  track_bfd {\n    C weight 5\n  }\n}\n" +
		vsWith("  real_server 10.0.0.5 80 {\n    BFD_CHECK {\n      name B\n      alpha\n    }\n  }\n")
	cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	cfg2, diags2, text := roundTrip(t, cfg)
	for _, d := range diags2 {
		if !strings.Contains(d.Msg, "Tandem extension") && !strings.Contains(d.Msg, "sync group of one") {
			t.Errorf("formatted text: %s", d)
		}
	}
	if d := cmp.Diff(dump(t, cfg), dump(t, cfg2)); d != "" {
		t.Errorf("parse(fmt(parse(x))) != parse(x) (-parse(x) +parse(fmt)):\n%s\nformatted text:\n%s", d, text)
	}
	for _, kw := range []string{"bfd_instance B", "neighbor_ip 10.0.0.2", "min_rx 1.5", "idle_tx 2000", "passive", "ttl 10", "max_hops -1", "weight 30 reverse", "multihop", "track_bfd", "fast_failover_bfd C", "BFD_CHECK", "name B"} {
		if !strings.Contains(text, kw) {
			t.Errorf("formatted text lacks %q:\n%s", kw, text)
		}
	}
}
