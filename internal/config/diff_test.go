package config

import (
	"net/netip"
	"strings"
	"testing"
)

const diffBase = `global_defs {
    router_id t
}
vrrp_script chk {
    script "/bin/true"
    interval 2
    weight 10
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24
        10.0.0.101/24
    }
    virtual_routes {
        10.1.0.0/16 via 10.0.0.254
    }
    track_script {
        chk
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    priority 100
    virtual_ipaddress {
        10.0.0.102/24
    }
}
virtual_server 10.0.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 192.168.1.1 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 192.168.1.2 80 {
        weight 1
    }
}
`

func mustParseDiff(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v\n%s", diags, src)
	}
	return cfg
}

// TestDiff: each edit is classified, per object, as the issue defines it:
// settings a running object takes on are "in place", what makes an object
// what it is "recreated", and the rest is untouched.
func TestDiff(t *testing.T) {
	type want struct {
		key    Key
		change Change
	}
	vi1 := Key("vrrp_instance VI_1")
	vi2 := Key("vrrp_instance VI_2")
	vs := Key("virtual_server inet TCP 10.0.0.100:80")
	rs1 := vs + "/real_server 192.168.1.1:80"
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []want // the objects listed must have these changes; all others Unchanged
	}{
		{name: "nothing", edit: func(s string) string { return s }},
		{name: "moved lines only", edit: func(s string) string { return "\n\n" + s }},
		{name: "priority", edit: func(s string) string { return strings.Replace(s, "priority 100", "priority 200", 1) },
			want: []want{{vi1, InPlace}}},
		{name: "advert_int", edit: func(s string) string { return strings.Replace(s, "advert_int 1", "advert_int 2", 1) },
			want: []want{{vi1, InPlace}}},
		{name: "nopreempt", edit: func(s string) string { return strings.Replace(s, "advert_int 1", "advert_int 1\n nopreempt", 1) },
			want: []want{{vi1, InPlace}}},
		{name: "notify script", edit: func(s string) string {
			return strings.Replace(s, "advert_int 1", "advert_int 1\n notify_master /bin/true", 1)
		}, want: []want{{vi1, InPlace}}},
		{name: "track weight", edit: func(s string) string { return strings.Replace(s, "        chk\n", "        chk weight 20\n", 1) },
			want: []want{{vi1, InPlace}}},
		{name: "VIP added", edit: func(s string) string {
			return strings.Replace(s, "10.0.0.101/24\n", "10.0.0.101/24\n 10.0.0.103/24\n", 1)
		},
			want: []want{{vi1, InPlace}, {vi1 + "/address 10.0.0.103/24 dev eth0", Added}}},
		{name: "VIP removed", edit: func(s string) string { return strings.Replace(s, "10.0.0.101/24\n", "", 1) },
			want: []want{{vi1, InPlace}, {vi1 + "/address 10.0.0.101/24 dev eth0", Removed}}},
		{name: "VIP label", edit: func(s string) string { return strings.Replace(s, "10.0.0.101/24\n", "10.0.0.101/24 label eth0:1\n", 1) },
			want: []want{{vi1, InPlace}, {vi1 + "/address 10.0.0.101/24 dev eth0", Recreated}}},
		{name: "route gateway", edit: func(s string) string { return strings.Replace(s, "via 10.0.0.254", "via 10.0.0.253", 1) },
			want: []want{{vi1, InPlace}, {vi1 + "/" + routeKey(&Route{Dst: netip.MustParsePrefix("10.1.0.0/16")}), Recreated}}},
		{name: "rule added", edit: func(s string) string {
			return strings.Replace(s, "    track_script {\n        chk", "    virtual_rules {\n        from 10.9.0.0/24 table 100\n    }\n    track_script {\n        chk", 1)
		}, want: []want{{vi1, InPlace}, {vi1 + "/" + ruleKey(&Rule{From: netip.MustParsePrefix("10.9.0.0/24")}), Added}}},
		{name: "VRID", edit: func(s string) string { return strings.Replace(s, "virtual_router_id 1\n", "virtual_router_id 9\n", 1) },
			want: []want{{vi1, Recreated}}},
		{name: "interface", edit: func(s string) string { return strings.Replace(s, "interface eth0", "interface eth1", 1) },
			want: []want{{vi1, Recreated}}},
		{name: "unicast peers", edit: func(s string) string {
			return strings.Replace(s, "advert_int 1", "advert_int 1\n unicast_peer {\n 10.0.0.9\n }", 1)
		}, want: []want{{vi1, Recreated}}},
		{name: "multicast group", edit: func(s string) string {
			return strings.Replace(s, "router_id t", "router_id t\n vrrp_mcast_group4 224.0.0.19", 1)
		}, want: []want{{vi1, Recreated}, {vi2, Recreated}}},
		{name: "instance added and removed", edit: func(s string) string { return strings.Replace(s, "VI_2", "VI_3", 1) },
			want: []want{{"vrrp_instance VI_3", Added}, {vi2, Removed}}},
		{name: "script interval", edit: func(s string) string { return strings.Replace(s, "interval 2", "interval 3", 1) },
			want: []want{{"vrrp_script chk", InPlace}}},
		{name: "script command", edit: func(s string) string { return strings.Replace(s, "/bin/true", "/bin/false", 1) },
			want: []want{{"vrrp_script chk", Recreated}}},
		{name: "real server weight", edit: func(s string) string { return strings.Replace(s, "weight 1\n", "weight 5\n", 1) },
			want: []want{{vs, InPlace}, {rs1, InPlace}}},
		{name: "checker timeout", edit: func(s string) string { return strings.Replace(s, "connect_timeout 3", "connect_timeout 4", 1) },
			want: []want{{vs, InPlace}, {rs1, InPlace}, {rs1 + "/TCP_CHECK 192.168.1.1:80", InPlace}}},
		{name: "checker target", edit: func(s string) string {
			return strings.Replace(s, "connect_timeout 3", "connect_timeout 3\n connect_port 8080", 1)
		}, want: []want{{vs, InPlace}, {rs1, InPlace},
			{rs1 + "/TCP_CHECK 192.168.1.1:80", Removed},
			{rs1 + "/TCP_CHECK 192.168.1.1:8080", Added}}},
		{name: "scheduler", edit: func(s string) string { return strings.Replace(s, "lb_algo rr", "lb_algo wlc", 1) },
			want: []want{{vs, InPlace}}},
		{name: "real server removed", edit: func(s string) string {
			return strings.Replace(s, "    real_server 192.168.1.2 80 {\n        weight 1\n    }\n", "", 1)
		}, want: []want{{vs, InPlace}, {vs + "/real_server 192.168.1.2:80", Removed}}},
		{name: "static address added", edit: func(s string) string { return s + "static_ipaddress {\n 192.168.9.1/24 dev eth0\n}\n" },
			want: []want{{"static address 192.168.9.1/24 dev eth0", Added}}},
		{name: "dont_track_primary", edit: func(s string) string {
			return strings.Replace(s, "advert_int 1", "advert_int 1\n dont_track_primary", 1)
		},
			want: []want{{vi1, InPlace}}},
		{name: "virtual server protocol", edit: func(s string) string { return strings.Replace(s, "protocol TCP", "protocol UDP", 1) },
			want: []want{{vs, Removed}, {"virtual_server inet UDP 10.0.0.100:80", Added}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := flatten(Diff(mustParseDiff(t, diffBase), mustParseDiff(t, tc.edit(diffBase))))
			wanted := map[Key]Change{}
			for _, w := range tc.want {
				wanted[w.key] = w.change
				if _, ok := got[w.key]; !ok {
					t.Errorf("%s: not in the diff (keys: %v)", w.key, keys(got))
				}
			}
			for k, c := range got {
				if c != wanted[k] {
					t.Errorf("%s: %v, want %v", k, c, wanted[k])
				}
			}
		})
	}
}

// flatten lists every object of a diff by key.
func flatten(d ConfigDiff) map[Key]Change {
	out := map[Key]Change{}
	for _, in := range d.Instances {
		out[in.Key] = in.Change
		addDeltas(out, in.VIPs)
		addDeltas(out, in.ExcludedVIPs)
		addDeltas(out, in.Routes)
		addDeltas(out, in.Rules)
	}
	addDeltas(out, d.SyncGroups)
	addDeltas(out, d.Scripts)
	addDeltas(out, d.TrackFiles)
	addDeltas(out, d.TrackProcesses)
	addDeltas(out, d.StaticAddresses)
	addDeltas(out, d.StaticRoutes)
	addDeltas(out, d.StaticRules)
	addDeltas(out, d.ServerGroups)
	addDeltas(out, d.BFDInstances)
	for _, vs := range d.VirtualServers {
		out[vs.Key] = vs.Change
		for _, rs := range vs.RealServers {
			out[rs.Key] = rs.Change
			addDeltas(out, rs.Checkers)
		}
	}
	return out
}

func addDeltas[T any](out map[Key]Change, ds []Delta[T]) {
	for _, d := range ds {
		out[d.Key] = d.Change
	}
}

func keys(m map[Key]Change) []Key {
	var out []Key
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDiffSyncGroup: a group's notify script is in place for the group
// and its members; a change of membership re-creates the group and the
// members, whose coordinator is new.
func TestDiffSyncGroup(t *testing.T) {
	src := diffBase + "vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n}\n"
	notify := strings.Replace(src, "group {\n VI_1", "notify_master /bin/true\n group {\n VI_1", 1)
	got := flatten(Diff(mustParseDiff(t, src), mustParseDiff(t, notify)))
	if got["vrrp_sync_group G"] != InPlace || got["vrrp_instance VI_1"] != Unchanged {
		t.Errorf("group notify: %v", got)
	}
	members := strings.Replace(src, " VI_2\n }", " }", 1)
	got = flatten(Diff(mustParseDiff(t, src), mustParseDiff(t, members)))
	if got["vrrp_sync_group G"] != Recreated || got["vrrp_instance VI_1"] != Recreated {
		t.Errorf("group membership: %v", got)
	}
}
