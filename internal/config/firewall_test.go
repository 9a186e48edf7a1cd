package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFirewallKeywords: keepalived's firewall keywords are read into
// Global.Firewall (keepalived.conf(5) nftables, nftables_priority,
// nftables_counters, nftables_ifindex); iptables and ipsets are mapped to
// nftables with a warning, the IPVS fwmark tables are named as not
// supported, and the defaults are keepalived's (priority -1).
func TestFirewallKeywords(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Firewall
		diag []wantDiag
	}{
		{name: "defaults", src: "global_defs {\n vrrp_strict\n}\n", want: Firewall{Priority: -1}},
		{
			name: "all set",
			src:  "global_defs {\n nftables kad\n nftables_priority -150\n nftables_counters\n nftables_ifindex\n}\n",
			want: Firewall{Table: "kad", Priority: -150, Counters: true, IfIndex: true},
		},
		{name: "nftables without a name", src: "global_defs {\n nftables\n}\n", want: Firewall{Priority: -1}},
		{
			name: "iptables mapped to nftables",
			src:  "global_defs {\n vrrp_iptables KA_IN KA_OUT\n vrrp_ipsets keepalived\n}\n",
			want: Firewall{Priority: -1},
			diag: []wantDiag{
				w(2, 2, "vrrp_iptables: Tandem does not use iptables or ipsets; the no-accept drop rules go to its nftables table"),
				w(3, 2, "vrrp_ipsets: Tandem does not use iptables"),
			},
		},
		{
			name: "IPVS fwmarks",
			src:  "global_defs {\n nftables_ipvs\n nftables_ipvs_priority 5\n nftables_ipvs_start_fwmark 2000\n}\n",
			want: Firewall{Priority: -1},
			diag: []wantDiag{
				w(2, 2, `keyword "nftables_ipvs" is not supported by Tandem (keepalived's nftables fwmarks for IPVS virtual_server_group`),
				w(3, 2, `"nftables_ipvs_priority" is not supported`),
				w(4, 2, `"nftables_ipvs_start_fwmark" is not supported`),
			},
		},
		{
			name: "bad values",
			src:  "global_defs {\n nftables " + strings.Repeat("t", 256) + "\n nftables_priority 2147483648\n nftables_priority x\n nftables a b\n}\n",
			want: Firewall{Priority: -1},
			diag: []wantDiag{
				e(2, 11, "nftables: table name must be 1 to 255 characters"),
				e(3, 20, "nftables_priority: \"2147483648\" is not a 32-bit integer"),
				e(4, 20, "is not a 32-bit integer"),
				e(5, 11, "nftables takes 0 to 1 arguments, got 2"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.diag)
			if diff := cmp.Diff(tt.want, cfg.Global.Firewall); diff != "" {
				t.Errorf("Firewall (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFirewallRoundTrip: Format writes the firewall keywords back.
func TestFirewallRoundTrip(t *testing.T) {
	src := "global_defs {\n nftables kad\n nftables_priority 7\n nftables_counters\n nftables_ifindex\n}\n"
	cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg2, _, text := roundTrip(t, cfg)
	if diff := cmp.Diff(cfg.Global.Firewall, cfg2.Global.Firewall); diff != "" {
		t.Errorf("round trip (-parsed +formatted):\n%s\n%s", diff, text)
	}
}
