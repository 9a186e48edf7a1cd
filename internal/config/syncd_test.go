package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLVSSyncDaemon covers lvs_sync_daemon as keepalived's global_parser.c
// reads it (ranges, defaults, the instance that must exist, the 1.x
// positional forms) and the deprecated per-instance
// lvs_sync_daemon_interface.
func TestLVSSyncDaemon(t *testing.T) {
	g := func(line string) string { return "global_defs {\n  " + line + "\n}\n" + vi }
	grp := netip.MustParseAddr
	tests := []struct {
		name string
		src  string
		want []wantDiag
		sd   *LVSSyncDaemon // nil: not checked when there are errors
	}{
		{name: "defaults: the instance's VRID and the kernel's settings",
			src: g("lvs_sync_daemon eth1 VI_1"),
			sd:  &LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 51, Port: 8848, TTL: 1, Group: grp("224.0.0.81")}},
		{name: "every option",
			src: g("lvs_sync_daemon eth1 inst VI_1 id 0 maxlen 1400 port 9000 ttl 3 group ff02::81"),
			sd:  &LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 0, MaxLen: 1400, Port: 9000, TTL: 3, Group: grp("ff02::81")}},
		{name: "no instance: sync id 0",
			src: g("lvs_sync_daemon eth1 id 9"),
			sd:  &LVSSyncDaemon{Interface: "eth1", SyncID: 9, Port: 8848, TTL: 1, Group: grp("224.0.0.81")}},
		{name: "no instance, no id",
			src: g("lvs_sync_daemon eth1"),
			sd:  &LVSSyncDaemon{Interface: "eth1", Port: 8848, TTL: 1, Group: grp("224.0.0.81")}},
		{name: "keepalived 1.x positional sync id",
			src:  g("lvs_sync_daemon eth1 VI_1 7"),
			want: []wantDiag{w(2, 29, `sync id 7 without "id"`)},
			sd:   &LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 7, Port: 8848, TTL: 1, Group: grp("224.0.0.81")}},
		{name: "deprecated per-instance form",
			src:  "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  lvs_sync_daemon_interface eth1\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n",
			want: []wantDiag{w(4, 3, "lvs_sync_daemon_interface is deprecated")},
			sd:   &LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 0, Port: 8848, TTL: 1, Group: grp("224.0.0.81")}},
		{name: "unknown instance",
			src:  g("lvs_sync_daemon eth1 inst VI_9"),
			want: []wantDiag{e(2, 3, `vrrp_instance "VI_9" is not defined`)}},
		{name: "sync id out of range",
			src:  g("lvs_sync_daemon eth1 VI_1 id 256"),
			want: []wantDiag{e(2, 32, `"256" is not an integer in 0..255`)}},
		{name: "maxlen out of range",
			src:  g("lvs_sync_daemon eth1 VI_1 maxlen 65508"),
			want: []wantDiag{e(2, 36, `"65508" is not an integer in 1..65507`)}},
		{name: "port 0",
			src:  g("lvs_sync_daemon eth1 VI_1 port 0"),
			want: []wantDiag{e(2, 34, `"0" is not an integer in 1..65535`)}},
		{name: "ttl 0",
			src:  g("lvs_sync_daemon eth1 VI_1 ttl 0"),
			want: []wantDiag{e(2, 33, `"0" is not an integer in 1..255`)}},
		{name: "group not multicast",
			src:  g("lvs_sync_daemon eth1 VI_1 group 10.0.0.1"),
			want: []wantDiag{e(2, 35, "group 10.0.0.1 is not a multicast address")}},
		{name: "option without a value",
			src:  g("lvs_sync_daemon eth1 VI_1 ttl"),
			want: []wantDiag{e(2, 29, "ttl needs a value")}},
		{name: "unknown option",
			src:  g("lvs_sync_daemon eth1 VI_1 7 bogus"),
			want: []wantDiag{w(2, 29, `sync id 7 without "id"`), e(2, 31, `unknown option "bogus"`)}},
		{name: "two instances",
			src:  g("lvs_sync_daemon eth1 VI_1 inst VI_2"),
			want: []wantDiag{e(2, 29, "the instance is already VI_1")}},
		{name: "interface name too long",
			src:  g("lvs_sync_daemon eth0123456789abc VI_1"),
			want: []wantDiag{e(2, 19, "longer than 15 bytes")}},
		{name: "no interface",
			src:  g("lvs_sync_daemon"),
			want: []wantDiag{e(2, 3, "lvs_sync_daemon takes at least 1 argument, got 0")}},
		{name: "given twice",
			src:  "global_defs {\n  lvs_sync_daemon eth1 VI_1\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  lvs_sync_daemon_interface eth2\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n",
			want: []wantDiag{e(7, 3, "the sync daemon is already configured (lvs_sync_daemon eth1 at t.conf:2:3)")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			if tt.sd == nil {
				return
			}
			got := cfg.Global.LVSSyncDaemon
			if got == nil {
				t.Fatal("no LVSSyncDaemon")
			}
			tt.sd.Pos = got.Pos
			if diff := cmp.Diff(tt.sd, got, cmpAddr); diff != "" {
				t.Errorf("LVSSyncDaemon (-want +got):\n%s", diff)
			}
			// Format writes it back in the global form, which reads
			// the same and without a warning.
			cfg2, diags2, text := roundTrip(t, cfg)
			if len(diags2) > 0 {
				t.Fatalf("formatted text: %v\n%s", diags2, text)
			}
			got2 := cfg2.Global.LVSSyncDaemon
			tt.sd.Pos = got2.Pos
			if diff := cmp.Diff(tt.sd, got2, cmpAddr); diff != "" {
				t.Errorf("after a round trip (-want +got):\n%s\n%s", diff, text)
			}
		})
	}
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
