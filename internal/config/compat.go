package config

import (
	"slices"

	"tandem/internal/config/syntax"
)

// CompatKind says how a keyword of a keepalived.conf fares under Tandem.
type CompatKind string

// The kinds of compatibility findings.
const (
	// CompatUnsupported: accepted with a warning, no effect (the
	// parser's unsupported table, vocab.go).
	CompatUnsupported CompatKind = "unsupported"
	// CompatDiffers: implemented, but it behaves differently from
	// keepalived 2.2.7.
	CompatDiffers CompatKind = "differs"
	// CompatAdds: keepalived's behaviour, and something Tandem adds.
	CompatAdds CompatKind = "adds"
	// CompatTandem: a Tandem extension that keepalived does not read
	// (it calls the keyword unknown and skips it).
	CompatTandem CompatKind = "tandem"
)

// Finding is one place of a configuration that will behave differently
// under Tandem than under keepalived.
type Finding struct {
	Pos        Pos
	Keyword    string
	Kind       CompatKind
	Difference string
}

// compatEntry is one difference from keepalived, for a keyword read in
// some blocks. Every entry's claim is checked against the parser by
// TestCompatTable (compat_test.go), keyed by ID, so that the table and
// what Tandem does cannot drift apart.
type compatEntry struct {
	ID string
	// Blocks are the blocks the keyword is read in: "keepalived.conf" is
	// the top level, "*" any block.
	Blocks []string
	// Keywords are the keywords concerned; "*" is any line of the block
	// (a route line, whose first word is its destination).
	Keywords []string
	// Word, when set, restricts the entry to lines with this word among
	// the arguments; the finding is at the word.
	Word string
	// NoArgs restricts the entry to the keyword given without arguments.
	NoArgs bool
	// ScriptUser restricts the entry to a quoted command followed by more
	// words (keepalived's USER [GROUP]); the finding is at the user.
	ScriptUser bool
	Kind       CompatKind
	Difference string
}

// The blocks whose lines are routes and addresses.
var (
	routeBlocks = []string{"virtual_routes", "static_routes"}
)

// compatTable is what will behave differently from keepalived 2.2.7,
// beyond the keywords of the unsupported table. Sources: the parser's
// warnings, docs/keepalived-compat.md, tandem run's help.
var compatTable = []compatEntry{
	{ID: "route-gw", Blocks: routeBlocks, Keywords: []string{"*"}, Word: "gw", Kind: CompatDiffers,
		Difference: `read as "via", with a warning; keepalived 2.2.7 refuses the configuration ("gw" is a configuration error there)`},
	{ID: "route-or", Blocks: routeBlocks, Keywords: []string{"*"}, Word: "or", Kind: CompatDiffers,
		Difference: `"via A or B" is read as a multipath route of two nexthops, with a warning; keepalived 2.2.7 refuses the configuration`},
	{ID: "iptables", Blocks: []string{"global_defs"}, Keywords: []string{"vrrp_iptables", "vrrp_ipsets"}, Kind: CompatDiffers,
		Difference: `Tandem writes no iptables rules and no ipsets: the drop rules of a master without "accept" go to its nftables table (inet ` + DefaultFirewallTable + ` unless "nftables NAME" names one)`},
	{ID: "nftables-table", Blocks: []string{"global_defs"}, Keywords: []string{"nftables"}, NoArgs: true, Kind: CompatDiffers,
		Difference: "without a name the drop rules' table is inet " + DefaultFirewallTable + "; keepalived's is \"keepalived\""},
	{ID: "fast_recovery", Blocks: []string{"HTTP_GET", "SSL_GET"}, Keywords: []string{"fast_recovery"}, Kind: CompatDiffers,
		Difference: "no effect: Tandem checks all of a checker's urls back to back in every round, which is what fast_recovery asks of keepalived"},
	{ID: "allow_if_changes", Blocks: []string{"global_defs"}, Keywords: []string{"dynamic_interfaces"}, Word: "allow_if_changes", Kind: CompatDiffers,
		Difference: "no further effect: Tandem finds an instance's interface by name whatever its type or parent, as if allow_if_changes were always given"},
	{ID: "persistence_timeout-0", Blocks: []string{"virtual_server"}, Keywords: []string{"persistence_timeout"}, Word: "0", Kind: CompatDiffers,
		Difference: "read as no persistence, with a warning; keepalived refuses 0"},
	{ID: "regex", Blocks: []string{"url"}, Keywords: []string{"regex"}, Kind: CompatDiffers,
		Difference: "matched with Go's RE2, not PCRE: a pattern RE2 cannot compile (backreferences, lookaround) is an error"},
	{ID: "script-user", Blocks: []string{"*"}, Keywords: []string{"notify", "notify_master", "notify_backup", "notify_fault", "notify_stop",
		"notify_deleted", "notify_master_rx_lower_pri", "notify_up", "notify_down", "quorum_up", "quorum_down", "misc_path", "script"},
		ScriptUser: true, Kind: CompatDiffers,
		Difference: "the USER [GROUP] after the quoted command is ignored, with a warning: the script runs as script_user"},
	{ID: "notify_fifo-nul", Blocks: []string{"global_defs"}, Keywords: []string{"notify_fifo", "lvs_notify_fifo"}, Kind: CompatDiffers,
		Difference: "RS and VS lines end with a newline only: keepalived also writes a NUL byte after each"},
	{ID: "virtual_server", Blocks: []string{"keepalived.conf"}, Keywords: []string{"virtual_server"}, Kind: CompatDiffers,
		Difference: "data plane: kernel IPVS when the kernel has it, else nftables (tandem run --dataplane ipvs|nft|none chooses); on nftables the services are not in ipvsadm -L (tandem lvs list shows them) and lvs_sync_daemon, persistence_engine and lvs_timeouts do not apply"},
	{ID: "lvs_sync_daemon", Blocks: []string{"global_defs"}, Keywords: []string{"lvs_sync_daemon"}, Kind: CompatDiffers,
		Difference: "runs on kernel IPVS only: with the nftables data plane (or none) it is not started, with a warning (tandem check --dataplane nft shows it)"},
	{ID: "lvs_timeouts", Blocks: []string{"global_defs"}, Keywords: []string{"lvs_timeouts"}, Kind: CompatDiffers,
		Difference: "set on kernel IPVS at start and each reload, put back at stop; the xdp data plane takes tcp and udp as its flow table's idle timeouts (tcpfin, without TCP state there, is warned about); the nftables data plane has no IPVS connection table and ignores them, with a warning"},
	{ID: "persistence_engine", Blocks: []string{"virtual_server"}, Keywords: []string{"persistence_engine"}, Kind: CompatDiffers,
		Difference: "passed to kernel IPVS; the nftables data plane has no persistence engine and ignores it, with a warning"},
	{ID: "lvs_flush", Blocks: []string{"global_defs"}, Keywords: []string{"lvs_flush", "lvs_flush_onstop"}, Kind: CompatDiffers,
		Difference: "kernel IPVS: as keepalived; the nftables data plane touches only Tandem's own tables, which it deletes (and always at stop)"},
	{ID: "notify_priority_changes", Blocks: []string{"vrrp_instance", "vrrp_sync_group", "global_defs"},
		Keywords: []string{"notify_priority_changes", "vrrp_notify_priority_changes"}, Kind: CompatAdds,
		Difference: "the MASTER_PRIORITY / BACKUP_PRIORITY FIFO lines and no script, as keepalived; Tandem also records each change in its events (tandem status --json, the status page)"},
	{ID: "conntrack_sync", Blocks: []string{"keepalived.conf"}, Keywords: []string{"conntrack_sync"}, Kind: CompatTandem,
		Difference: "a Tandem extension (conntrackd run and switched on VRRP transitions, docs/conntrack-sync.md); keepalived does not know it: there, notify scripts run conntrackd (its primary-backup.sh)"},
	{ID: "bgp", Blocks: []string{"keepalived.conf"}, Keywords: []string{"bgp"}, Kind: CompatTandem,
		Difference: "a Tandem extension (the VIPs announced to routers over BGP, for several active directors behind ECMP, docs/bgp.md); keepalived does not know it and refuses the file"},
	{ID: "fast_failover_bfd", Blocks: []string{"vrrp_instance"}, Keywords: []string{"fast_failover_bfd"}, Kind: CompatTandem,
		Difference: "Tandem's own keyword (BFD-accelerated takeover: a backup whose master's BFD session goes down takes over at once); keepalived 2.2.7 does not know it and refuses the file"},
	{ID: "bfd-multihop", Blocks: []string{"bfd_instance"}, Keywords: []string{"multihop"}, Kind: CompatTandem,
		Difference: "Tandem's own keyword (RFC 5883 multihop, UDP port 4784; keepalived always uses RFC 5881's port 3784); keepalived 2.2.7 does not know it and refuses the file"},
	{ID: "vrrp_instance-drain", Blocks: []string{"keepalived.conf"}, Keywords: []string{"vrrp_instance"}, Kind: CompatDiffers,
		Difference: "a master that another router takes over from while it works (a higher priority, tandem handover) keeps its VIPs for handover_drain (default garp_master_delay + 1 s), forwarding what still reaches it but answering no ARP for them, then removes them (make-before-break, docs/handover.md); keepalived removes them at once, as handover_drain 0 does"},
	{ID: "vrrp_instance-step-down-advert", Blocks: []string{"keepalived.conf"}, Keywords: []string{"vrrp_instance"}, Kind: CompatDiffers,
		Difference: "higher_prio_send_advert is on unless the file says otherwise (keepalived: off): a master that hears a higher priority sends one advert of its own before it steps down, so that the higher priority master re-announces its addresses after a split or partition heals (docs/split-heal.md); strict_mode turns it off, as in keepalived"},
	{ID: "handover_drain", Blocks: []string{"vrrp_instance"}, Keywords: []string{"handover_drain"}, Kind: CompatTandem,
		Difference: "a Tandem extension, noted with a warning: keepalived refuses the configuration"},
	{ID: "vrrp_instance", Blocks: []string{"keepalived.conf"}, Keywords: []string{"vrrp_instance"}, Kind: CompatAdds,
		Difference: "its state, priority and transitions are in tandem status [--json] and, with tandem run --http, the status page and Prometheus /metrics; keepalived's SNMP and D-Bus are not implemented"},
}

// CompatFile reads the configuration at path as Load does and returns,
// keyword by keyword, what in it will behave differently from keepalived,
// with the diagnostics of loading it.
func CompatFile(path string, opts Options) ([]Finding, Diagnostics) {
	nodes, diags := syntax.ParseFile(path, syntaxOptions(opts))
	_, diags = build(nodes, diags, opts)
	return compat(nodes), diags
}

// compat walks the configuration's keyword tree as the parser dispatches
// it (each block's lines are read in the context of the keyword that
// opens it) and lists the findings in file order.
func compat(nodes []*syntax.Node) []Finding {
	var out []Finding
	var walk func(ctx string, ns []*syntax.Node)
	walk = func(ctx string, ns []*syntax.Node) {
		for _, n := range ns {
			kw := n.Keyword.Text
			if why, ok := unsupported[ctx][kw]; ok {
				// The parser reads nothing inside an unsupported block.
				out = append(out, Finding{Pos: n.Keyword.Pos, Keyword: kw, Kind: CompatUnsupported, Difference: "not implemented (" + why + "); ignored with a warning"})
				continue
			}
			for _, e := range compatTable {
				if pos, ok := e.match(ctx, n); ok {
					out = append(out, Finding{Pos: pos, Keyword: e.keyword(n), Kind: e.Kind, Difference: e.Difference})
				}
			}
			walk(kw, n.Block)
		}
	}
	walk("keepalived.conf", nodes)
	return out
}

// match reports whether e applies to n read in block ctx, and where.
func (e *compatEntry) match(ctx string, n *syntax.Node) (Pos, bool) {
	if !slices.Contains(e.Blocks, ctx) && !slices.Contains(e.Blocks, "*") {
		return Pos{}, false
	}
	if !slices.Contains(e.Keywords, n.Keyword.Text) && !slices.Contains(e.Keywords, "*") {
		return Pos{}, false
	}
	switch {
	case e.Word != "":
		for _, a := range n.Args {
			if a.Text == e.Word && !a.Quoted {
				return a.Pos, true
			}
		}
		return Pos{}, false
	case e.NoArgs:
		return n.Keyword.Pos, len(n.Args) == 0
	case e.ScriptUser:
		if len(n.Args) > 1 && n.Args[0].Quoted {
			return n.Args[1].Pos, true
		}
		return Pos{}, false
	}
	return n.Keyword.Pos, true
}

// keyword names the finding: the keyword, or the word of a line that is
// not a keyword (a route's "gw").
func (e *compatEntry) keyword(n *syntax.Node) string {
	if slices.Contains(e.Keywords, "*") {
		return e.Word
	}
	return n.Keyword.Text
}
