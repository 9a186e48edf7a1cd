package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"tandem/internal/config/syntax"
)

// compatTableCase exercises one entry of compatTable: src holds the keyword, so
// that the entry fires exactly once, and check verifies the entry's claim
// on what the parser made of src.
type compatTableCase struct {
	src   string
	check func(t *testing.T, cfg *Config, ds Diagnostics, at Pos)
}

// compatParse loads src and lists its compatibility findings.
func compatParse(t *testing.T, src string) (*Config, Diagnostics, []Finding) {
	t.Helper()
	opts := Options{ConfigID: "x"}
	nodes, diags := syntax.ParseBytes("c.conf", []byte(src), syntaxOptions(opts))
	cfg, diags := build(nodes, diags, opts)
	return cfg, diags, compat(nodes)
}

// warnedAt fails unless ds holds a warning at pos whose message holds each
// of words.
func warnedAt(t *testing.T, ds Diagnostics, pos Pos, words ...string) {
	t.Helper()
	for _, d := range ds {
		if d.Severity == Warning && d.Pos.Line == pos.Line && d.Pos.Col == pos.Col {
			ok := true
			for _, w := range words {
				ok = ok && strings.Contains(d.Msg, w)
			}
			if ok {
				return
			}
		}
	}
	t.Errorf("no warning at %s holding %q; diagnostics: %v", pos, words, ds)
}

// noWarnings fails if ds holds any diagnostic: the keyword is implemented
// as read.
func noWarnings(t *testing.T, ds Diagnostics) {
	t.Helper()
	if len(ds) != 0 {
		t.Errorf("diagnostics: %v", ds)
	}
}

const (
	compatVI = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  10.0.0.1/24\n }\n%s}\n"
	compatVS = "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n%s real_server 10.0.0.2 80 {\n  %s\n }\n}\n"
)

func compatInVI(s string) string { return strings.Replace(compatVI, "%s", s, 1) }
func compatInVS(vs, rs string) string {
	return strings.Replace(strings.Replace(compatVS, "%s", vs, 1), "%s", rs, 1)
}
func globalDefs(s string) string  { return "global_defs {\n " + s + "\n}\n" }
func firstRoute(c *Config) *Route { return c.Instances[0].Routes[0] }

var compatCases = map[string]compatTableCase{
	"route-gw": {compatInVI(" virtual_routes {\n  10.1.0.0/16 gw 10.0.0.254\n }\n"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, `"gw"`, "2.2.7")
		if r := firstRoute(c); r.Via != netip.MustParseAddr("10.0.0.254") {
			t.Errorf("gw not read as via: %+v", r)
		}
	}},
	"route-or": {compatInVI(" virtual_routes {\n  10.1.0.0/16 via 10.0.0.254 or 10.0.0.253\n }\n"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, `"or"`, "2.2.7")
		if r := firstRoute(c); len(r.Nexthops) != 2 || r.Nexthops[1].Via != netip.MustParseAddr("10.0.0.253") {
			t.Errorf("via A or B is not two nexthops: %+v", r)
		}
	}},
	"iptables": {globalDefs("vrrp_iptables\n vrrp_ipsets"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "nftables", DefaultFirewallTable)
		if c.Global.Firewall.Table != "" {
			t.Errorf("table %q, want the default", c.Global.Firewall.Table)
		}
	}},
	"nftables-table": {globalDefs("nftables"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		// "" is DefaultFirewallTable for internal/firewall; a name given
		// is kept, and the entry does not fire for it (TestCompatTable).
		if c.Global.Firewall.Table != "" || DefaultFirewallTable == "keepalived" {
			t.Errorf("table %q (default %q)", c.Global.Firewall.Table, DefaultFirewallTable)
		}
		named, _, fs := compatParse(t, globalDefs("nftables keepalived"))
		if named.Global.Firewall.Table != "keepalived" || len(fs) != 0 {
			t.Errorf("nftables keepalived: table %q, findings %v", named.Global.Firewall.Table, fs)
		}
	}},
	"fast_recovery": {compatInVS("", "HTTP_GET {\n   url {\n    path /\n    status_code 200\n   }\n   fast_recovery\n  }"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "fast_recovery", "changes nothing")
	}},
	"allow_if_changes": {globalDefs("dynamic_interfaces allow_if_changes"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "allow_if_changes", "by name")
		if !c.Global.DynamicInterfaces {
			t.Error("dynamic_interfaces not set")
		}
	}},
	"persistence_timeout-0": {compatInVS(" persistence_timeout 0\n", "weight 1"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "persistence_timeout 0", "no persistence")
		if p := c.VirtualServers[0].Persistence; p != 0 {
			t.Errorf("persistence %v, want none", p)
		}
	}},
	"regex": {compatInVS("", "HTTP_GET {\n   url {\n    path /\n    regex \"a(b|c)\"\n   }\n  }"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		// A backreference is PCRE, not RE2: refused.
		_, bad, _ := compatParse(t, compatInVS("", "HTTP_GET {\n   url {\n    path /\n    regex \"(a)\\\\1\"\n   }\n  }"))
		if !bad.HasErrors() || !strings.Contains(bad[0].Msg, "RE2") {
			t.Errorf("a PCRE backreference is not refused: %v", bad)
		}
	}},
	"script-user": {compatInVI(" notify_master \"/bin/true\" nobody nogroup\n"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "nobody", "script_user")
		if got := c.Instances[0].Notify.Master; !slices.Equal(got, []string{"/bin/true"}) {
			t.Errorf("command %q", got)
		}
	}},
	"notify_fifo-nul": {globalDefs("notify_fifo /run/k.fifo"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if c.Global.Ops.NotifyFIFO.Path != "/run/k.fifo" {
			t.Errorf("fifo %+v", c.Global.Ops.NotifyFIFO)
		}
	}},
	"virtual_server": {compatInVS("", "weight 1"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if len(c.VirtualServers) != 1 {
			t.Errorf("virtual servers %v", c.VirtualServers)
		}
	}},
	"lvs_sync_daemon": {globalDefs("lvs_sync_daemon eth0 VI_1") + compatInVI(""), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if s := c.Global.LVSSyncDaemon; s == nil || s.Interface != "eth0" {
			t.Errorf("lvs_sync_daemon %+v", s)
		}
	}},
	"lvs_timeouts": {globalDefs("lvs_timeouts tcp 900 udp 30"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if to := c.Global.LVSTimeouts; time.Duration(to.TCP) != 900*time.Second || time.Duration(to.UDP) != 30*time.Second {
			t.Errorf("lvs_timeouts %+v", to)
		}
	}},
	"persistence_engine": {compatInVS(" persistence_timeout 60\n persistence_engine sip\n", "weight 1"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if e := c.VirtualServers[0].PersistenceEngine; e != "sip" {
			t.Errorf("persistence_engine %q", e)
		}
	}},
	"lvs_flush": {globalDefs("lvs_flush\n lvs_flush_onstop"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if !c.Global.LVSFlush || c.Global.LVSFlushOnStop != FlushAll {
			t.Errorf("lvs_flush %v, lvs_flush_onstop %v", c.Global.LVSFlush, c.Global.LVSFlushOnStop)
		}
	}},
	"notify_priority_changes": {compatInVI(" notify_priority_changes\n"), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if !c.Instances[0].NotifyPrioChgs {
			t.Error("notify_priority_changes not set")
		}
	}},
	"conntrack_sync": {compatInVI("") + "conntrack_sync {\n instance VI_1\n interface eth1\n source 10.9.0.1\n peer 10.9.0.2\n}\n", func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if c.ConntrackSync == nil || c.ConntrackSync.Instance != "VI_1" {
			t.Errorf("conntrack_sync %+v", c.ConntrackSync)
		}
	}},
	"bgp": {"virtual_server 192.0.2.10 80 {\n lb_kind DR\n protocol TCP\n lb_algo rr\n}\nbgp {\n router_id 10.0.0.1\n local_as 65001\n neighbor 10.0.0.254 {\n  remote_as 65000\n }\n}\n", func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if c.BGP == nil || len(c.BGP.Neighbors) != 1 {
			t.Errorf("bgp %+v", c.BGP)
		}
	}},
	"fast_failover_bfd": {"bfd_instance B {\n neighbor_ip 10.0.0.2\n}\n" + compatInVI(" fast_failover_bfd B\n"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "Tandem extension", "keepalived does not know it")
		if r := c.Instances[0].FastFailoverBFD; r == nil || r.Name != "B" {
			t.Errorf("fast_failover_bfd %+v", r)
		}
	}},
	"bfd-multihop": {"bfd_instance B {\n neighbor_ip 10.0.0.2\n multihop\n}\n", func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "Tandem extension", "4784")
		if !c.BFDInstances[0].Multihop {
			t.Error("multihop not set")
		}
	}},
	"vrrp_instance-drain": {compatInVI(""), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if d := c.Instances[0].HandoverDrain; d != nil {
			t.Errorf("handover_drain %v without the keyword; want the default (nil)", *d)
		}
	}},
	"vrrp_instance-step-down-advert": {compatInVI(""), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if !c.Instances[0].HigherPrioSend {
			t.Error("higher_prio_send_advert off without the keyword; want Tandem's default, on")
		}
	}},
	"handover_drain": {compatInVI(" handover_drain 0\n"), func(t *testing.T, c *Config, ds Diagnostics, at Pos) {
		warnedAt(t, ds, at, "Tandem extension")
		if d := c.Instances[0].HandoverDrain; d == nil || *d != 0 {
			t.Errorf("handover_drain %v, want 0", d)
		}
	}},
	"vrrp_instance": {compatInVI(""), func(t *testing.T, c *Config, ds Diagnostics, _ Pos) {
		noWarnings(t, ds)
		if len(c.Instances) != 1 {
			t.Errorf("instances %v", c.Instances)
		}
	}},
}

// TestCompatTable checks every entry of compatTable against the parser:
// on its case the entry fires once, at the position its check expects,
// and the check of its claim passes. An entry without a case, or a case
// without an entry, fails.
func TestCompatTable(t *testing.T) {
	ids := map[string]bool{}
	for _, e := range compatTable {
		if ids[e.ID] {
			t.Errorf("compatTable: duplicate id %q", e.ID)
		}
		ids[e.ID] = true
		if _, ok := compatCases[e.ID]; !ok {
			t.Errorf("compatTable entry %q has no case in compatCases", e.ID)
		}
	}
	for id, tc := range compatCases {
		t.Run(id, func(t *testing.T) {
			if !ids[id] {
				t.Fatalf("case %q has no entry in compatTable", id)
			}
			cfg, ds, fs := compatParse(t, tc.src)
			if ds.HasErrors() {
				t.Fatalf("errors: %v", ds)
			}
			var mine []Finding
			for _, f := range fs {
				if e := entryOf(f); e != nil && e.ID == id {
					mine = append(mine, f)
				}
			}
			if len(mine) == 0 {
				t.Fatalf("entry does not fire on its case; findings %v", fs)
			}
			tc.check(t, cfg, ds, mine[0].Pos)
		})
	}
}

// entryOf returns the compatTable entry a finding came from.
func entryOf(f Finding) *compatEntry {
	for i, e := range compatTable {
		if e.Kind == f.Kind && e.Difference == f.Difference {
			return &compatTable[i]
		}
	}
	return nil
}

// TestCompatUnsupportedWarned: every keyword the report names as
// unsupported is one the parser warns about at the same position, on
// every configuration of the shared corpus; and no finding is made twice.
func TestCompatUnsupportedWarned(t *testing.T) {
	for _, f := range corpusFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			fs, ds := CompatFile(f.path, Options{ConfigID: f.configID})
			seen := map[string]bool{}
			for _, x := range fs {
				key := x.Pos.String() + " " + x.Keyword + " " + x.Difference
				if seen[key] {
					t.Errorf("finding twice: %s", key)
				}
				seen[key] = true
				if x.Kind == CompatUnsupported && entryOf(x) == nil {
					warnedAt(t, ds, x.Pos, x.Keyword, "not supported")
				}
			}
		})
	}
}
