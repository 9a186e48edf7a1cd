package config

import (
	"encoding"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestTypedAtLoad covers every value that netio or lvs used to parse only
// when it was used (routes, rules and addresses when an instance became
// MASTER, the persistence netmask when the data plane was built): each is
// now read when the file is, good values into their typed field, bad ones
// as an error at the value's line and column naming the keyword.
func TestTypedAtLoad(t *testing.T) {
	// An iproute2 directory of our own: the test must not depend on the
	// host's /etc/iproute2.
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rt_tables", "# comment\n255 local\n100\tmytable  # trailing comment\n0x200 hextable\n")
	write("rt_tables.d/extra.conf", "300 dtable\n")
	write("rt_protos", "77 myproto\n")
	write("rt_dsfield", "0x28 AF11\n")
	write("rt_scopes", "50 myscope\n")

	// Each case is one line in a block at line 3, column 5.
	route := func(l string) string { return vi + "static_routes {\n\n    " + l + "\n}\n" }
	rule := func(l string) string { return vi + "static_rules {\n\n    " + l + "\n}\n" }
	addr := func(l string) string { return vi + "static_ipaddress {\n\n    " + l + "\n}\n" }
	// The block starts at line 8 (vi is 7 lines); the value line is 10.
	const line = 10
	u32 := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name string
		src  string
		col  int    // of the error; 0: no error
		line int    // of the error; 0: the block's line (10, or 6 in a virtual_server)
		msg  string // in the error
		// got reads the typed value; want is what it must be.
		got  func(*Config) any
		want any
	}{
		// route table: number (C notation), built-in names, the file.
		{name: "route table number", src: route("10.1.0.0/16 dev eth0 table 100"), got: rtTable, want: RouteTable(100)},
		{name: "route table hex", src: route("10.1.0.0/16 dev eth0 table 0x100"), got: rtTable, want: RouteTable(256)},
		{name: "route table main", src: route("10.1.0.0/16 dev eth0 table main"), got: rtTable, want: RouteTable(254)},
		{name: "route table local", src: route("10.1.0.0/16 dev eth0 table local"), got: rtTable, want: RouteTable(255)},
		{name: "route table default", src: route("10.1.0.0/16 dev eth0 table default"), got: rtTable, want: RouteTable(253)},
		{name: "route table from rt_tables", src: route("10.1.0.0/16 dev eth0 table mytable"), got: rtTable, want: RouteTable(100)},
		{name: "route table hex in rt_tables", src: route("10.1.0.0/16 dev eth0 table hextable"), got: rtTable, want: RouteTable(0x200)},
		{name: "route table from rt_tables.d", src: route("10.1.0.0/16 dev eth0 table dtable"), got: rtTable, want: RouteTable(300)},
		{name: "route table 32 bits", src: route("10.1.0.0/16 dev eth0 table 4294967295"), got: rtTable, want: RouteTable(1<<32 - 1)},
		{name: "route table unknown", src: route("10.1.0.0/16 dev eth0 table nosuch"), col: 32, msg: `route: table "nosuch" is not a number, a built-in name (default, local, main, unspec) or a name in ` + dir + "/rt_tables"},
		{name: "route table too big", src: route("10.1.0.0/16 dev eth0 table 4294967296"), col: 32, msg: "route: table 4294967296 is out of range 0..4294967295"},
		// route proto: built-in names, numbers, the file.
		{name: "route proto static", src: route("10.1.0.0/16 dev eth0 proto static"), got: rtProto, want: RouteProto(4)},
		{name: "route protocol keepalived", src: route("10.1.0.0/16 dev eth0 protocol keepalived"), got: rtProto, want: RouteProto(18)},
		{name: "route proto number", src: route("10.1.0.0/16 dev eth0 proto 42"), got: rtProto, want: RouteProto(42)},
		{name: "route proto from rt_protos", src: route("10.1.0.0/16 dev eth0 proto myproto"), got: rtProto, want: RouteProto(77)},
		{name: "route proto unknown", src: route("10.1.0.0/16 dev eth0 proto bogus"), col: 32, msg: `route: protocol "bogus" is not a number, a built-in name (`},
		{name: "route proto 256", src: route("10.1.0.0/16 dev eth0 proto 256"), col: 32, msg: "route: protocol 256 is out of range 0..255"},
		// The case: both are errors, each at its own column.
		{name: "route table and proto by unknown names", src: route("10.1.0.0/16 dev eth0 table yourtable proto static"), col: 32, msg: `route: table "yourtable" is not a number`},
		// route scope and type.
		{name: "route scope link", src: route("10.1.0.0/16 dev eth0 scope link"), got: rtScope, want: Scope(253)},
		{name: "route scope number", src: route("10.1.0.0/16 dev eth0 scope 200"), got: rtScope, want: Scope(200)},
		{name: "route scope from rt_scopes", src: route("10.1.0.0/16 dev eth0 scope myscope"), got: rtScope, want: Scope(50)},
		{name: "route scope unknown", src: route("10.1.0.0/16 dev eth0 scope planet"), col: 32, msg: `route: scope "planet" is not a number, a built-in name (global, host, link, nowhere, site)`},
		{name: "route type blackhole", src: route("blackhole 10.1.0.0/16"), got: func(c *Config) any { return c.StaticRoutes[0].Type }, want: RouteType(6)},
		// rule table, fwmark[/mask], tos/dsfield.
		{name: "rule table name", src: rule("from 10.2.0.0/16 table mytable"), got: func(c *Config) any { return c.StaticRules[0].Table }, want: RouteTable(100)},
		{name: "rule lookup unknown", src: rule("from 10.2.0.0/16 lookup nosuch"), col: 29, msg: `rule: table "nosuch" is not a number`},
		{name: "rule fwmark decimal", src: rule("fwmark 16 table 100"), got: ruleMark, want: [2]any{uint32(16), (*uint32)(nil)}},
		{name: "rule fwmark hex", src: rule("fwmark 0x10 table 100"), got: ruleMark, want: [2]any{uint32(16), (*uint32)(nil)}},
		{name: "rule fwmark mask", src: rule("fwmark 0x10/0xff table 100"), got: ruleMark, want: [2]any{uint32(16), u32(0xff)}},
		{name: "rule fwmark bad", src: rule("fwmark 0xzz table 100"), col: 12, msg: `rule: fwmark "0xzz" is not a 32-bit number`},
		{name: "rule fwmark too big", src: rule("fwmark 0x100000000 table 100"), col: 12, msg: `rule: fwmark "0x100000000" is not a 32-bit number`},
		{name: "rule fwmark bad mask", src: rule("fwmark 0x10/zz table 100"), col: 12, msg: `rule: fwmark mask "zz" is not a 32-bit number`},
		{name: "rule tos hex", src: rule("tos 0x10 table 100"), got: ruleTOS, want: DSField(0x10)},
		{name: "rule dsfield decimal", src: rule("dsfield 8 table 100"), got: ruleTOS, want: DSField(8)},
		{name: "rule tos from rt_dsfield, IPv6", src: rule("from fd00::/64 tos AF11 table 100"), got: ruleTOS, want: DSField(0x28)},
		{name: "rule tos DSCP on IPv4", src: rule("from 10.2.0.0/16 tos AF11 table 100"), col: 26, msg: "rule: tos AF11 (0x28): an IPv4 rule matches only the TOS bits 0x1c"},
		{name: "rule tos ECN bits", src: rule("from fd00::/64 tos 0x29 table 100"), col: 24, msg: "rule: tos 0x29 (0x29) has ECN bits set"},
		{name: "rule tos unknown", src: rule("tos bogus table 100"), col: 9, msg: `rule: tos "bogus" is not a number or a name in ` + dir + "/rt_dsfield"},
		{name: "rule tos 256", src: rule("tos 256 table 100"), col: 9, msg: "rule: tos 256 is out of range 0..255"},
		// The second case: the first bad value stops the line.
		{name: "rule fwmark and tos bad", src: rule("fwmark 0xzz tos bogus"), col: 12, msg: `rule: fwmark "0xzz"`},
		// address scope and broadcast.
		{name: "address scope host", src: addr("10.3.0.1/24 dev eth0 scope host"), got: addrField(func(a *IPAddress) any { return a.Scope }), want: Scope(254)},
		{name: "address scope number", src: addr("10.3.0.1/24 dev eth0 scope 253"), got: addrField(func(a *IPAddress) any { return a.Scope }), want: Scope(253)},
		{name: "address scope unknown", src: addr("10.3.0.1/24 dev eth0 scope galaxy"), col: 32, msg: `address 10.3.0.1/24: scope "galaxy" is not a number`},
		{name: "address brd +", src: addr("10.3.0.1/22 brd + dev eth0"), got: addrField(func(a *IPAddress) any { return a.Broadcast }), want: Broadcast{Addr: netip.MustParseAddr("10.3.3.255"), Auto: true}},
		{name: "address brd + before peer", src: addr("10.3.0.1 brd + peer 10.3.0.2/30 dev eth0"), got: addrField(func(a *IPAddress) any { return a.Broadcast }), want: Broadcast{Addr: netip.MustParseAddr("10.3.0.3"), Auto: true}},
		{name: "address brd -", src: addr("10.3.0.1/24 broadcast - dev eth0"), got: addrField(func(a *IPAddress) any { return a.Broadcast }), want: Broadcast{None: true}},
		{name: "address brd address", src: addr("10.3.0.1/24 brd 10.3.0.127 dev eth0"), got: addrField(func(a *IPAddress) any { return a.Broadcast }), want: Broadcast{Addr: netip.MustParseAddr("10.3.0.127")}},
		{name: "address brd bad", src: addr("10.3.0.1/24 brd 10.3.0 dev eth0"), col: 21, msg: `address 10.3.0.1/24: broadcast "10.3.0" is not an IPv4 address, + or -`},
		// persistence_granularity: into a netmask once the family is known.
		{name: "granularity v4", src: vsWith("  persistence_timeout 60\n  persistence_granularity 255.255.255.0\n"), got: vsGran, want: netip.MustParseAddr("255.255.255.0")},
		{name: "granularity v4 not a prefix", src: vsWith("  persistence_timeout 60\n  persistence_granularity 255.0.255.0\n"), got: vsGran, want: netip.MustParseAddr("255.0.255.0")},
		{name: "granularity v6", src: strings.Replace(vsWith("  persistence_timeout 60\n  persistence_granularity 64\n"), "10.0.0.1 80", "fd00::1 80", 1), got: vsGran, want: netip.MustParseAddr("ffff:ffff:ffff:ffff::")},
		// scheduler flags: resolved against lb_algo once it is known.
		{name: "sched flag-1 and sh-port under sh", src: strings.Replace(vsWith("  flag-1\n  sh-port\n"), "rr", "sh", 1), got: func(c *Config) any { return c.VirtualServers[0].SchedFlags }, want: SchedFallback | SchedPort},
		{name: "sched ops", src: strings.Replace(vsWith("  ops\n"), "TCP", "UDP", 1), got: func(c *Config) any { return c.VirtualServers[0].SchedFlags }, want: SchedOnePacket},
		{name: "sched mh-port under sh", src: strings.Replace(vsWith("\n  mh-port\n"), "rr", "sh", 1), col: 3, msg: "virtual_server 10.0.0.1:80: mh-port needs lb_algo mh, not sh"},
		// DNS_CHECK type: its number on the wire.
		{name: "dns type aaaa", src: vsWith(dnsCheck("aaaa")), got: func(c *Config) any { return c.VirtualServers[0].RealServers[0].Checkers[0].DNS.Type }, want: DNSType(28)},
		{name: "dns type default SOA", src: vsWith(dnsCheck("")), got: func(c *Config) any { return c.VirtualServers[0].RealServers[0].Checkers[0].DNS.Type }, want: DNSType(6)},
		{name: "dns type unknown", src: vsWith(dnsCheck("PTR")), line: 7, col: 12, msg: `type: "PTR" is not one of A, NS, CNAME, SOA, MX, TXT, AAAA`},
		{name: "granularity v4 not an address", src: vsWith("  persistence_timeout 60\n  persistence_granularity 255.0.255\n"), col: 27, msg: `persistence_granularity "255.0.255" is not an IPv4 netmask`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x", IPRoute2Dir: dir})
			if tt.col == 0 {
				matchDiags(t, diags, nil)
				if t.Failed() {
					return
				}
				if got := tt.got(cfg); !equalTyped(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			l := line
			switch {
			case tt.line != 0:
				l = tt.line
			case strings.HasPrefix(tt.src, "virtual_server"):
				l = 6
			}
			matchDiags(t, diags, []wantDiag{e(l, tt.col, tt.msg)})
		})
	}
}

// dnsCheck is a real server with a DNS_CHECK of type typ (none if
// empty); the type is on line 7, column 12 of vsWith's text.
func dnsCheck(typ string) string {
	t := ""
	if typ != "" {
		t = "      type " + typ + "\n"
	}
	return "  real_server 10.0.0.2 80 {\n    DNS_CHECK {\n" + t + "    }\n  }\n"
}

func rtTable(c *Config) any { return c.StaticRoutes[0].Table }
func rtProto(c *Config) any { return c.StaticRoutes[0].Proto }
func rtScope(c *Config) any { return c.StaticRoutes[0].Scope }
func ruleTOS(c *Config) any { return c.StaticRules[0].TOS }
func vsGran(c *Config) any  { return c.VirtualServers[0].Granularity }

func ruleMark(c *Config) any {
	r := c.StaticRules[0]
	return [2]any{r.FWMark, r.FWMask}
}

func addrField(f func(*IPAddress) any) func(*Config) any {
	return func(c *Config) any { return f(c.StaticAddresses[0]) }
}

// equalTyped compares values, and what pointers point to.
func equalTyped(got, want any) bool {
	if g, ok := got.([2]any); ok {
		w := want.([2]any)
		gm, wm := g[1].(*uint32), w[1].(*uint32)
		return g[0] == w[0] && (gm == nil) == (wm == nil) && (gm == nil || *gm == *wm)
	}
	return got == want
}

// TestTypedAtLoadWithoutIPRoute2Files: with no iproute2 files at all the
// built-in names still work and other names are errors, not a failed load.
func TestTypedAtLoadWithoutIPRoute2Files(t *testing.T) {
	src := vi + "static_routes {\n    10.1.0.0/16 dev eth0 table main proto static scope link\n    10.2.0.0/16 dev eth0 table mytable\n}\n"
	cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x", IPRoute2Dir: filepath.Join(t.TempDir(), "absent")})
	matchDiags(t, diags, []wantDiag{e(10, 32, `route: table "mytable" is not a number, a built-in name`)})
	if r := cfg.StaticRoutes[0]; r.Table != 254 || r.Proto != 4 || r.Scope != 253 {
		t.Errorf("built-in names: got table %d proto %d scope %d, want 254 4 253", r.Table, r.Proto, r.Scope)
	}
}

// TestEnumsAtLoad covers the keywords whose value is one word of a fixed
// set: each is read into its typed enum when the file is (any case, as
// keepalived reads them), and any other word is an error at the word's
// line and column naming the ones allowed. In each source, « marks where
// the error must be (and is removed before parsing).
func TestEnumsAtLoad(t *testing.T) {
	inVI := func(lines string) string {
		return strings.Replace(vi, "  interface eth0\n", "  interface eth0\n"+lines, 1)
	}
	// rs is a real server of vsWith's service with one checker block.
	rs := func(checker string) string {
		return vsWith("  real_server 10.0.0.2 80 {\n    " + checker + "\n  }\n")
	}
	url := "url {\n      path /\n    }\n"
	proc := func(l string) string { return "vrrp_track_process tp {\n  process nginx -g\n  " + l + "}\n" }
	fwmark := func(l string) string {
		return "virtual_server fwmark 1 {\n  lb_algo rr\n  " + l + "  real_server 10.0.0.2 80 {\n  }\n}\n"
	}
	instance := func(c *Config) *Instance { return c.Instances[0] }
	vs := func(c *Config) *VirtualServer { return c.VirtualServers[0] }
	checker := func(c *Config) *Checker { return c.VirtualServers[0].RealServers[0].Checkers[0] }
	tests := []struct {
		name string
		src  string
		msg  string     // of the error at «; "": no diagnostic
		more []wantDiag // that the error brings
		got  func(*Config) any
		want any
	}{
		// vrrp_instance state; unset is resolved from the priority.
		{name: "state MASTER", src: inVI("  state MASTER\n"), got: func(c *Config) any { return instance(c).State }, want: StateMaster},
		// keepalived 2.2.7 refuses "state backup" (vrrp_state_handler uses
		// strcmp; keepalived -t exits 5).
		{name: "state backup", src: inVI("  state «backup\n"), msg: `state: "backup" must be written "BACKUP": keepalived matches this word's case`},
		{name: "state unset", src: vi, got: func(c *Config) any { return instance(c).State }, want: StateBackup},
		{name: "state unset, owner", src: inVI("  priority 255\n"), got: func(c *Config) any { return instance(c).State }, want: StateMaster},
		{name: "state FAULT", src: inVI("  state «FAULT\n"), msg: `state: "FAULT" is not one of MASTER, BACKUP`},
		// authentication auth_type.
		{name: "auth_type AH", src: inVI("  authentication {\n    auth_type AH\n    auth_pass x\n  }\n"), got: func(c *Config) any { return instance(c).Auth.Type }, want: AuthAH},
		{name: "auth_type PASS", src: inVI("  authentication {\n    auth_type PASS\n    auth_pass x\n  }\n"), got: func(c *Config) any { return instance(c).Auth.Type }, want: AuthPass},
		// keepalived compares auth_type with strcmp (vrrp_auth_type_handler).
		{name: "auth_type pass", src: inVI("  authentication {\n    auth_type «pass\n    auth_pass x\n  }\n"), msg: `auth_type: "pass" must be written "PASS": keepalived matches this word's case`,
			more: []wantDiag{e(3, 3, "authentication: auth_type PASS or AH is required")}},
		{name: "auth_type md5", src: inVI("  authentication {\n    auth_type «md5\n    auth_pass x\n  }\n"), msg: `auth_type: "md5" is not one of PASS, AH`,
			more: []wantDiag{e(3, 3, "authentication: auth_type PASS or AH is required")}},
		// vrrp_track_process param_match: bare is exact; exact is not a word.
		{name: "param_match unset", src: proc(""), got: func(c *Config) any { return c.TrackProcesses[0].ParamMatch }, want: ParamMatchUnset},
		{name: "param_match bare", src: proc("param_match\n"), got: func(c *Config) any { return c.TrackProcesses[0].ParamMatch }, want: ParamExact},
		{name: "param_match partial", src: proc("param_match partial\n"), got: func(c *Config) any { return c.TrackProcesses[0].ParamMatch }, want: ParamPartial},
		{name: "param_match INITIAL", src: proc("param_match INITIAL\n"), got: func(c *Config) any { return c.TrackProcesses[0].ParamMatch }, want: ParamInitial},
		{name: "param_match exact", src: proc("param_match «exact\n"), msg: `param_match: "exact" is not one of initial, partial`},
		// virtual_server ip_family and protocol.
		{name: "family from the address", src: strings.Replace(vsWith(""), "10.0.0.1", "fd00::1", 1), got: func(c *Config) any { return vs(c).Family }, want: Inet6},
		{name: "ip_family inet6", src: fwmark("ip_family inet6\n"), got: func(c *Config) any { return vs(c).Family }, want: Inet6},
		{name: "ip_family unset", src: fwmark(""), got: func(c *Config) any { return vs(c).Family }, want: Inet},
		{name: "ip_family ipx", src: fwmark("ip_family «ipx\n"), msg: `ip_family: "ipx" is not one of inet, inet6`},
		{name: "protocol sctp", src: strings.Replace(vsWith(""), "TCP", "sctp", 1), got: func(c *Config) any { return vs(c).Protocol }, want: SCTP},
		{name: "protocol UDP", src: strings.Replace(vsWith(""), "TCP", "UDP", 1), got: func(c *Config) any { return vs(c).Protocol }, want: UDP},
		{name: "protocol of a fwmark service", src: fwmark(""), got: func(c *Config) any { return vs(c).Protocol }, want: ProtocolUnset},
		{name: "protocol icmp", src: strings.Replace(vsWith(""), "TCP", "«icmp", 1), msg: `protocol: "icmp" is not one of TCP, UDP, SCTP`,
			more: []wantDiag{w(1, 1, "no protocol given; keepalived uses UDP")}},
		// lb_algo and lvs_sched: unset is wlc, with a warning.
		{name: "lb_algo sh", src: strings.Replace(vsWith(""), "rr", "sh", 1), got: func(c *Config) any { return vs(c).Scheduler }, want: SchedulerSH},
		{name: "lvs_sched mh", src: strings.Replace(vsWith(""), "lb_algo rr", "lvs_sched mh", 1), got: func(c *Config) any { return vs(c).Scheduler }, want: SchedulerMH},
		// keepalived compares scheduler names with strcmp (lbalgo_handler).
		{name: "lvs_sched MH", src: strings.Replace(vsWith(""), "lb_algo rr", "lvs_sched «MH", 1), msg: `lvs_sched: "MH" must be written "mh": keepalived matches this word's case`,
			more: []wantDiag{w(1, 1, "no lb_algo given; using keepalived's default wlc")}},
		{name: "lb_algo wrrr", src: strings.Replace(vsWith(""), "rr", "«wrrr", 1), msg: `lb_algo: "wrrr" is not one of rr, wrr, lc, wlc, lblc, sh, mh, dh, fo, ovf, lblcr, sed, nq; did you mean "wrr"?`,
			more: []wantDiag{w(1, 1, "no lb_algo given; using keepalived's default wlc")}},
		// lb_kind, and the methods real and sorry servers inherit.
		{name: "lb_kind DR", src: strings.Replace(vsWith(""), "NAT", "DR", 1), got: func(c *Config) any { return vs(c).Method }, want: DR},
		// keepalived 2.2.7 refuses "lb_kind dr" (svr_forwarding_handler
		// compares with strcmp; keepalived -t exits 5).
		{name: "lb_kind dr", src: strings.Replace(vsWith(""), "NAT", "«dr", 1), msg: `lb_kind: "dr" must be written "DR": keepalived matches this word's case`},
		{name: "lb_kind TUN type ipip", src: strings.Replace(vsWith(""), "NAT", "TUN type ipip", 1), got: func(c *Config) any { return vs(c).Method }, want: TUN},
		{name: "lb_kind NAT type ipip", src: strings.Replace(vsWith(""), "NAT", "NAT «type ipip", 1), msg: "lb_kind NAT takes no options"},
		// keepalived's tunnel options (check_parser.c svr_forwarding_handler).
		{name: "lb_kind TUN type gue", src: strings.Replace(vsWith(""), "NAT", "TUN type gue port 6080", 1), got: func(c *Config) any { return vs(c).Tunnel },
			want: Tunnel{Type: TunnelGUE, Port: 6080}},
		{name: "lb_kind TUN gue csum, any order", src: strings.Replace(vsWith(""), "NAT", "TUN csum port 5555 type gue", 1), got: func(c *Config) any { return vs(c).Tunnel },
			want: Tunnel{Type: TunnelGUE, Port: 5555, Csum: TunnelCsumOn}},
		{name: "lb_kind TUN gre csum", src: strings.Replace(vsWith(""), "NAT", "TUN type gre csum", 1), got: func(c *Config) any { return vs(c).Tunnel },
			want: Tunnel{Type: TunnelGRE, Csum: TunnelCsumOn}},
		{name: "lb_kind TUN ipip nocsum", src: strings.Replace(vsWith(""), "NAT", "TUN type ipip nocsum", 1), got: func(c *Config) any { return vs(c).Tunnel }, want: Tunnel{}},
		{name: "real server inherits the tunnel", src: strings.Replace(rs(""), "NAT", "TUN type gue port 6080 remcsum", 1), got: func(c *Config) any { return vs(c).RealServers[0].Tunnel },
			want: Tunnel{Type: TunnelGUE, Port: 6080, Csum: TunnelRemCsum}},
		{name: "real server lvs_method TUN gre", src: rs("lvs_method TUN type gre"), got: func(c *Config) any { return vs(c).RealServers[0].Tunnel }, want: Tunnel{Type: TunnelGRE}},
		{name: "sorry server tunnel", src: vsWith("  sorry_server 10.0.0.9 80\n  sorry_server_lvs_method TUN type gue port 7\n"), got: func(c *Config) any { return vs(c).SorryServer.Tunnel },
			want: Tunnel{Type: TunnelGUE, Port: 7}},
		{name: "gue without port", src: strings.Replace(vsWith(""), "NAT", "«TUN type gue", 1), msg: `lb_kind TUN type gue: a gue tunnel needs "port N"`},
		{name: "ipip with port", src: strings.Replace(vsWith(""), "NAT", "TUN type ipip «port 5", 1), msg: "lb_kind TUN type ipip: only gue tunnels have a port"},
		{name: "port 0", src: strings.Replace(vsWith(""), "NAT", "TUN type gue port «0", 1), msg: `lb_kind: "0" is not an integer in 1..65535`},
		{name: "ipip csum", src: strings.Replace(vsWith(""), "NAT", "«TUN csum", 1), msg: "lb_kind TUN type ipip: ipip tunnels have no checksum option (csum)"},
		{name: "gre remcsum", src: strings.Replace(vsWith(""), "NAT", "«TUN type gre remcsum", 1), msg: "lb_kind TUN type gre: gre tunnels have no remote checksum option"},
		{name: "type vxlan", src: strings.Replace(vsWith(""), "NAT", "TUN type «vxlan", 1), msg: `lb_kind: "vxlan" is not one of ipip, gue, gre`},
		{name: "type GUE", src: strings.Replace(vsWith(""), "NAT", "TUN type «GUE port 1", 1), msg: `lb_kind: "GUE" must be written "gue"`},
		{name: "type without value", src: strings.Replace(vsWith(""), "NAT", "TUN «type", 1), msg: "lb_kind TUN: type needs a value"},
		{name: "unknown option", src: strings.Replace(vsWith(""), "NAT", "TUN «CSUM", 1), msg: `lb_kind TUN: "CSUM" is not a tunnel option`},
		{name: "lb_kind bogus", src: strings.Replace(vsWith(""), "NAT", "«bogus", 1), msg: `lb_kind: "bogus" is not one of NAT, DR, TUN`},
		{name: "real server inherits", src: strings.Replace(rs(""), "NAT", "DR", 1), got: func(c *Config) any { return vs(c).RealServers[0].Method }, want: DR},
		{name: "real server lvs_method", src: rs("lvs_method TUN"), got: func(c *Config) any { return vs(c).RealServers[0].Method }, want: TUN},
		{name: "real server lvs_method bad", src: rs("lvs_method «XDP"), msg: `lvs_method: "XDP" is not one of NAT, DR, TUN`},
		{name: "sorry server inherits", src: vsWith("  sorry_server 10.0.0.9 80\n"), got: func(c *Config) any { return vs(c).SorryServer.Method }, want: NAT},
		{name: "sorry_server_lvs_method DR", src: vsWith("  sorry_server 10.0.0.9 80\n  sorry_server_lvs_method DR\n"), got: func(c *Config) any { return vs(c).SorryServer.Method }, want: DR},
		// the checker kinds, by their block's keyword.
		{name: "TCP_CHECK", src: rs("TCP_CHECK {\n    }"), got: func(c *Config) any { return checker(c).Type }, want: CheckTCP},
		{name: "SSL_GET", src: rs("SSL_GET {\n    " + url + "    }"), got: func(c *Config) any { return checker(c).Type }, want: CheckSSL},
		{name: "PING_CHECK", src: rs("PING_CHECK {\n    }"), got: func(c *Config) any { return checker(c).Type }, want: CheckPing},
		{name: "MISC_CHECK", src: rs("MISC_CHECK {\n      misc_path /bin/true\n    }"), got: func(c *Config) any { return checker(c).Type }, want: CheckMisc},
		// http_protocol: 1.0 by default, 1.0C in either case.
		{name: "http_protocol default", src: rs("HTTP_GET {\n    " + url + "    }"), got: func(c *Config) any { return checker(c).HTTP.Protocol }, want: HTTP10},
		{name: "http_protocol 1.0c", src: rs("HTTP_GET {\n      http_protocol 1.0c\n    " + url + "    }"), got: func(c *Config) any { return checker(c).HTTP.Protocol }, want: HTTP10Close},
		{name: "http_protocol 1.1", src: rs("HTTP_GET {\n      http_protocol 1.1\n    " + url + "    }"), got: func(c *Config) any { return checker(c).HTTP.Protocol }, want: HTTP11},
		{name: "http_protocol 2", src: rs("HTTP_GET {\n      http_protocol «2\n    " + url + "    }"), msg: `http_protocol: "2" is not 1.0, 1.0C or 1.1`},
		// global_defs lvs_flush_onstop: bare is all.
		{name: "lvs_flush_onstop unset", src: "global_defs {\n}\n", got: func(c *Config) any { return c.Global.LVSFlushOnStop }, want: FlushNone},
		{name: "lvs_flush_onstop bare", src: "global_defs {\n  lvs_flush_onstop\n}\n", got: func(c *Config) any { return c.Global.LVSFlushOnStop }, want: FlushAll},
		// keepalived has no RS form (global_parser.c: "Unknown lvs_flush_on_stop type").
		{name: "lvs_flush_onstop RS", src: "global_defs {\n  lvs_flush_onstop «RS\n}\n", msg: `lvs_flush_onstop: "RS" is not one of VS`},
		{name: "lvs_flush_onstop VS", src: "global_defs {\n  lvs_flush_onstop VS\n}\n", got: func(c *Config) any { return c.Global.LVSFlushOnStop }, want: FlushVS},
		{name: "lvs_flush_onstop vs", src: "global_defs {\n  lvs_flush_onstop «vs\n}\n", msg: `lvs_flush_onstop: "vs" must be written "VS": keepalived matches this word's case`},
		{name: "lvs_flush_onstop all", src: "global_defs {\n  lvs_flush_onstop «all\n}\n", msg: `lvs_flush_onstop: "all" is not one of VS`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			want := tt.more
			if i := strings.Index(src, "«"); i >= 0 {
				before := src[:i]
				line := strings.Count(before, "\n") + 1
				col := i - strings.LastIndex(before, "\n")
				want = append(want, e(line, col, tt.msg))
				src = before + src[i+len("«"):]
			}
			cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
			matchDiags(t, diags, want)
			if tt.got != nil && !t.Failed() {
				if got := tt.got(cfg); got != tt.want {
					t.Errorf("got %v (%#v), want %v", got, got, tt.want)
				}
			}
		})
	}
}

// TestEnumText: every enum writes its words to the dump and reads them
// back (any case), an unset value is "", and any other word is an error.
func TestEnumText(t *testing.T) {
	type textEnum = encoding.TextMarshaler
	roundTrip := func(t *testing.T, v textEnum, back encoding.TextUnmarshaler, want string) {
		t.Helper()
		b, err := v.MarshalText()
		if err != nil || string(b) != want {
			t.Errorf("%#v: MarshalText = %q, %v; want %q", v, b, err, want)
		}
		if err := back.UnmarshalText([]byte(strings.ToLower(want))); err != nil {
			t.Errorf("UnmarshalText(%q): %v", strings.ToLower(want), err)
		}
		if got := reflect.ValueOf(back).Elem().Interface(); got != v {
			t.Errorf("UnmarshalText(%q) = %#v, want %#v", strings.ToLower(want), got, v)
		}
		if err := back.UnmarshalText([]byte("nosuch")); err == nil {
			t.Errorf("UnmarshalText(nosuch) of %T: no error", back)
		}
	}
	for _, c := range []struct {
		v    textEnum
		back encoding.TextUnmarshaler
		want string
	}{
		{ParamMatchUnset, new(ParamMatch), ""}, {ParamExact, new(ParamMatch), "exact"}, {ParamInitial, new(ParamMatch), "initial"}, {ParamPartial, new(ParamMatch), "partial"},
		{AuthUnset, new(AuthType), ""}, {AuthPass, new(AuthType), "PASS"}, {AuthAH, new(AuthType), "AH"},
		{StateUnset, new(InitialState), ""}, {StateMaster, new(InitialState), "MASTER"}, {StateBackup, new(InitialState), "BACKUP"},
		{FamilyUnset, new(Family), ""}, {Inet, new(Family), "inet"}, {Inet6, new(Family), "inet6"},
		{ProtocolUnset, new(Protocol), ""}, {TCP, new(Protocol), "TCP"}, {UDP, new(Protocol), "UDP"}, {SCTP, new(Protocol), "SCTP"},
		{MethodUnset, new(Method), ""}, {NAT, new(Method), "NAT"}, {DR, new(Method), "DR"}, {TUN, new(Method), "TUN"},
		{CheckUnset, new(CheckType), ""}, {CheckTCP, new(CheckType), "TCP_CHECK"}, {CheckHTTP, new(CheckType), "HTTP_GET"},
		{CheckSSL, new(CheckType), "SSL_GET"}, {CheckMisc, new(CheckType), "MISC_CHECK"}, {CheckSMTP, new(CheckType), "SMTP_CHECK"},
		{CheckDNS, new(CheckType), "DNS_CHECK"}, {CheckUDP, new(CheckType), "UDP_CHECK"}, {CheckPing, new(CheckType), "PING_CHECK"},
		{CheckFile, new(CheckType), "FILE_CHECK"},
		{HTTP10, new(HTTPVersion), "1.0"}, {HTTP10Close, new(HTTPVersion), "1.0C"}, {HTTP11, new(HTTPVersion), "1.1"},
		{SchedulerUnset, new(Scheduler), ""}, {SchedulerRR, new(Scheduler), "rr"}, {SchedulerWLC, new(Scheduler), "wlc"}, {SchedulerNQ, new(Scheduler), "nq"},
		{FlushNone, new(FlushOnStop), ""}, {FlushAll, new(FlushOnStop), "all"}, {FlushVS, new(FlushOnStop), "VS"},
		{TunnelIPIP, new(TunnelType), "ipip"}, {TunnelGUE, new(TunnelType), "gue"}, {TunnelGRE, new(TunnelType), "gre"},
		{TunnelNoCsum, new(TunnelCsum), "nocsum"}, {TunnelCsumOn, new(TunnelCsum), "csum"}, {TunnelRemCsum, new(TunnelCsum), "remcsum"},
	} {
		t.Run(fmt.Sprintf("%T/%s", c.v, c.want), func(t *testing.T) { roundTrip(t, c.v, c.back, c.want) })
	}
	// The kernel's numbers, which lvs converts without a table.
	if Inet != 2 || Inet6 != 10 || TCP != 6 || UDP != 17 || SCTP != 132 {
		t.Errorf("families %d %d, protocols %d %d %d: want AF_INET 2, AF_INET6 10, TCP 6, UDP 17, SCTP 132", Inet, Inet6, TCP, UDP, SCTP)
	}
}
