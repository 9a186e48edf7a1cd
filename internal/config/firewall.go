package config

import "strconv"

// DefaultFirewallTable is the nftables table (family inet) of the
// no-accept drop rules when `nftables` names none. keepalived's default is
// "keepalived"; Tandem's own default keeps it clear of a keepalived run in
// the same namespace, whose table it must never touch.
const DefaultFirewallTable = "tandem_vrrp"

// Firewall is keepalived's own firewall (keepalived.conf(5), global_defs
// "nftables", "vrrp_iptables"): while an instance that is not the address
// owner (priority 255) and runs without `accept` holds its addresses,
// traffic to them is dropped (RFC 5798 §6.4.3, Accept_Mode False). Tandem
// always uses nftables; vrrp_iptables and vrrp_ipsets select it too.
type Firewall struct {
	// Table is the nftables table name ("" = DefaultFirewallTable).
	Table string `json:"table,omitempty"`
	// Priority is the base chains' priority (nftables_priority; -1).
	Priority int `json:"priority"`
	// Counters adds a counter to each rule (nftables_counters).
	Counters bool `json:"counters,omitempty"`
	// IfIndex keys IPv6 link-local addresses by interface index also for
	// instances with dont_track_primary, which are keyed by interface name
	// otherwise (nftables_ifindex).
	IfIndex bool `json:"ifindex,omitempty"`
}

// maxTableName is the longest nftables table name (NFT_NAME_MAXLEN less
// the terminating NUL).
const maxTableName = 255

// firewallHandlers are the global_defs keywords of Firewall.
func (p *parser) firewallHandlers(f *Firewall) map[string]handler {
	iptables := func(n *node) {
		// keepalived built without iptables does the same: "iptables not
		// supported, using nftables instead" (global_parser.c).
		p.warnf(n.Keyword.Pos, "global_defs: %s: Tandem does not use iptables or ipsets; the no-accept drop rules go to its nftables table instead (global_defs nftables; default inet %s)",
			n.Keyword.Text, DefaultFirewallTable)
	}
	return map[string]handler{
		// nftables [NAME]
		"nftables": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 1) {
				return
			}
			if len(n.Args) == 1 {
				name := n.Args[0]
				if name.Text == "" || len(name.Text) > maxTableName {
					p.errorf(name.Pos, "nftables: table name must be 1 to %d characters", maxTableName)
					return
				}
				f.Table = name.Text
			}
		},
		"nftables_priority": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			v, err := strconv.ParseInt(n.Args[0].Text, 10, 32)
			if err != nil {
				p.errorf(n.Args[0].Pos, "nftables_priority: %q is not a 32-bit integer", n.Args[0].Text)
				return
			}
			f.Priority = int(v)
		},
		"nftables_counters": p.setConst(&f.Counters, true),
		"nftables_ifindex":  p.setConst(&f.IfIndex, true),
		"vrrp_iptables":     iptables,
		"vrrp_ipsets":       iptables,
	}
}

// firewall writes f's keywords.
func (fm *formatter) firewall(f *Firewall) {
	if f.Table != "" {
		fm.line("nftables", f.Table)
	}
	if f.Priority != -1 {
		fm.num("nftables_priority", f.Priority)
	}
	fm.only("nftables_counters", f.Counters)
	fm.only("nftables_ifindex", f.IfIndex)
}
