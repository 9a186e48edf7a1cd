package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// valueCase is one snippet for TestValues: the diagnostics it must give
// exactly, and what the model must hold.
type valueCase struct {
	name  string
	src   string
	want  []wantDiag
	check func(t *testing.T, cfg *Config)
}

func runValueCases(t *testing.T, tests []valueCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			if tt.check != nil && !t.Failed() {
				tt.check(t, cfg)
			}
		})
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func global(lines string) string { return "global_defs {\n" + lines + "}\n" }

// TestGlobalValues: issue 12 items 8, 12, 13; the ranges and forms are
// keepalived 2.2.7's global_parser.c, checked against `keepalived -t`.
func TestGlobalValues(t *testing.T) {
	runValueCases(t, []valueCase{
		{
			name: "garp and gna intervals above 1 s",
			src:  global("  vrrp_garp_interval 2.5\n  vrrp_gna_interval 0.000001\n"),
			want: []wantDiag{w(2, 22, "vrrp_garp_interval 2.5 s is very large")},
			check: func(t *testing.T, c *Config) {
				equal(t, "garp", c.Global.VRRPGarpInterval, Duration(2500*time.Millisecond))
				equal(t, "gna", c.Global.VRRPGnaInterval, Duration(time.Microsecond))
			},
		},
		{
			name: "garp interval at keepalived's maximum",
			src:  global("  vrrp_gna_interval 4294.967295\n"),
			want: []wantDiag{w(2, 21, "vrrp_gna_interval 4294.967295 s is very large")},
			check: func(t *testing.T, c *Config) {
				equal(t, "gna", c.Global.VRRPGnaInterval, Duration(4294967295*time.Microsecond))
			},
		},
		{
			name: "garp interval 0 and above the maximum",
			src:  global("  vrrp_garp_interval 0\n  vrrp_gna_interval 4294.967296\n"),
			want: []wantDiag{
				e(2, 22, `vrrp_garp_interval: "0" is not a number of seconds in 0.000001..4294.967295`),
				e(3, 21, `vrrp_gna_interval: "4294.967296" is not a number of seconds in 0.000001..4294.967295`),
			},
		},
		{
			name: "dynamic_interfaces allow_if_changes",
			src:  global("  dynamic_interfaces allow_if_changes\n"),
			want: []wantDiag{w(2, 22, "dynamic_interfaces: allow_if_changes has no further effect: Tandem finds an instance's interface by name, whatever its type or parent")},
			check: func(t *testing.T, c *Config) {
				equal(t, "dynamic", c.Global.DynamicInterfaces, true)
			},
		},
		{
			name: "dynamic_interfaces alone",
			src:  global("  dynamic_interfaces\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "dynamic", c.Global.DynamicInterfaces, true)
			},
		},
		{
			name: "dynamic_interfaces unknown option",
			src:  global("  dynamic_interfaces yes\n"),
			want: []wantDiag{e(2, 22, `dynamic_interfaces: unknown option "yes" (keepalived knows only allow_if_changes)`)},
		},
		{
			name: "garp master refresh with a fraction",
			src:  global("  vrrp_garp_master_refresh 0.5\n  vrrp_garp_master_delay 1.5\n  vrrp_garp_lower_prio_delay 2.0\n"),
			want: []wantDiag{
				e(2, 28, `vrrp_garp_master_refresh: "0.5" is not a whole number of seconds (keepalived reads an integer here)`),
				e(3, 26, `vrrp_garp_master_delay: "1.5" is not a whole number of seconds`),
				// keepalived refuses "2.0" too (read_unsigned_strvec).
				e(4, 30, `vrrp_garp_lower_prio_delay: "2.0" is not an integer in 0..4294`),
			},
		},
		{
			name: "garp whole seconds",
			src:  global("  vrrp_garp_master_refresh 60\n  vrrp_garp_master_delay 4294\n  vrrp_garp_master_repeat 20000\n  vrrp_garp_lower_prio_repeat 0\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "refresh", c.Global.Garp.MasterRefresh, Duration(time.Minute))
				equal(t, "delay", c.Global.Garp.MasterDelay, Duration(4294*time.Second))
				equal(t, "repeat", c.Global.Garp.MasterRepeat, 20000)
				equal(t, "lower prio repeat", c.Global.Garp.LowerPrioRepeat, 0)
			},
		},
		{
			name: "whole seconds: smtp_connect_timeout, lvs_timeouts, persistence_timeout",
			src:  global("  smtp_connect_timeout 0.5\n  lvs_timeouts tcp 1.5 udp 2678401\n  smtp_connect_timeout 0\n") + vsWith("  persistence_timeout 0.5\n"),
			want: []wantDiag{
				e(2, 24, `smtp_connect_timeout: "0.5" is not a whole number of seconds (keepalived reads an integer here)`),
				e(3, 20, `lvs_timeouts: "1.5" is not a whole number of seconds`),
				e(4, 24, `smtp_connect_timeout: "0" is not an integer in 1..4294`),
				e(10, 23, `persistence_timeout: "0.5" is not a whole number of seconds`),
			},
		},
		{
			name: "whole seconds accepted",
			src:  global("  smtp_connect_timeout 4294\n  lvs_timeouts tcp 2678400 udp 0\n") + vsWith("  persistence_timeout 2678400\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "smtp", c.Global.SMTPConnectTimeout, Duration(4294*time.Second))
				equal(t, "lvs tcp", c.Global.LVSTimeouts.TCP, Duration(31*24*time.Hour))
				equal(t, "persistence", c.VirtualServers[0].Persistence, Duration(31*24*time.Hour))
			},
		},
		{
			// keepalived -t: "retry value invalid - 0" on a virtual server;
			// a checker takes 0 (check_api.c retry_handler).
			name: "retry 0 on a virtual or real server",
			src:  vsWith("  retry 0\n  real_server 10.0.0.2 80 {\n    retry 0\n    TCP_CHECK {\n      retry 0\n    }\n  }\n"),
			want: []wantDiag{
				e(5, 9, `retry: "0" is not an integer in 1..2147483647`),
				e(7, 11, `retry: "0" is not an integer in 1..2147483647`),
			},
		},
		{
			name: "vrrp_startup_delay",
			src:  global("  vrrp_startup_delay 0\n  vrrp_startup_delay 0.001\n  vrrp_startup_delay 90\n"),
			want: []wantDiag{
				e(2, 22, `vrrp_startup_delay: "0" is not a number of seconds in 0.001..4294.967295`),
				w(4, 22, "vrrp_startup_delay 90 s is very large"),
			},
			check: func(t *testing.T, c *Config) {
				equal(t, "delay", c.Global.VRRPStartupDelay, Duration(90*time.Second))
			},
		},
		{
			name: "garp repeat 0 and delay above the maximum",
			src:  global("  vrrp_garp_master_repeat 0\n  vrrp_garp_master_delay 4295\n"),
			want: []wantDiag{
				e(2, 27, "vrrp_garp_master_repeat must be greater than 0"),
				e(3, 26, `vrrp_garp_master_delay: "4295" is not an integer in 0..4294`),
			},
		},
	})
}

// inst is a vrrp_instance VI_n on eth0 with VRID 51 and body (lines
// indented by the caller), starting at line 1 of its snippet.
func inst(n int, body string) string {
	return fmt.Sprintf("vrrp_instance VI_%d {\n  interface eth0\n  virtual_router_id 51\n%s}\n", n, body)
}

// TestInstanceFamily: issue 12 items 2 and 3. keepalived decides the
// family by the first address among virtual_ipaddress, unicast_peer,
// unicast_src_ip, mcast_src_ip and mcast_dst_ip, makes an IPv6 instance
// without version VRRPv3, and lets virtual_ipaddress_excluded hold either
// family.
func TestInstanceFamily(t *testing.T) {
	runValueCases(t, []valueCase{
		{
			name: "IPv6 VIP without version",
			src:  inst(1, "  virtual_ipaddress {\n    fd00::1/64\n  }\n"),
			want: []wantDiag{w(1, 1, "vrrp_instance VI_1: IPv6 instance without a version line: VRRPv3, as keepalived does")},
			check: func(t *testing.T, c *Config) {
				equal(t, "ipv6", c.Instances[0].IPv6, true)
				equal(t, "version", c.Instances[0].Version, 3)
			},
		},
		{
			name: "IPv6 with vrrp_version 3 says nothing",
			src:  global("  vrrp_version 3\n") + inst(1, "  virtual_ipaddress {\n    fd00::1/64\n  }\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "version", c.Instances[0].Version, 3)
			},
		},
		{
			name: "IPv6 unicast source decides before the VIPs",
			src:  inst(1, "  unicast_src_ip fd00::2\n  unicast_peer {\n    fd00::3\n  }\n  no_virtual_ipaddress\n"),
			want: []wantDiag{w(1, 1, "IPv6 instance without a version line: VRRPv3")},
			check: func(t *testing.T, c *Config) {
				equal(t, "ipv6", c.Instances[0].IPv6, true)
				equal(t, "version", c.Instances[0].Version, 3)
			},
		},
		{
			name: "the first address written decides: a peer before the VIPs",
			src:  inst(1, "  unicast_peer {\n    fd00::3\n  }\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n"),
			want: []wantDiag{
				w(1, 1, "IPv6 instance without a version line"),
				e(8, 5, "vrrp_instance VI_1: 10.0.0.1 is not IPv6 like the instance's first address"),
			},
		},
		{
			name: "mcast_dst_ip decides the family",
			src:  inst(1, "  mcast_dst_ip ff02::19\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n"),
			want: []wantDiag{
				w(1, 1, "IPv6 instance without a version line"),
				e(6, 5, "10.0.0.1 is not IPv6"),
			},
		},
		{
			name: "mcast_dst_ip of the other family",
			src:  inst(1, "  virtual_ipaddress {\n    10.0.0.1/24\n  }\n  mcast_dst_ip ff02::19\n"),
			want: []wantDiag{e(1, 1, "vrrp_instance VI_1: mcast_dst_ip ff02::19 is not of the instance's address family")},
		},
		{
			name: "excluded addresses of the other family",
			src:  inst(1, "  virtual_ipaddress {\n    10.0.0.1/24\n  }\n  virtual_ipaddress_excluded {\n    fd00::10/64\n    10.0.0.2/24\n  }\n"),
			check: func(t *testing.T, c *Config) {
				in := c.Instances[0]
				equal(t, "ipv6", in.IPv6, false)
				equal(t, "version", in.Version, 2)
				equal(t, "excluded", []string{in.ExcludedVIPs[0].Prefix.String(), in.ExcludedVIPs[1].Prefix.String()}, []string{"fd00::10/64", "10.0.0.2/24"})
			},
		},
		{
			name: "IPv4 excluded addresses on an IPv6 instance",
			src:  inst(1, "  version 3\n  virtual_ipaddress {\n    fd00::1/64\n  }\n  virtual_ipaddress_excluded {\n    192.0.2.5/24\n  }\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "ipv6", c.Instances[0].IPv6, true)
				equal(t, "excluded", c.Instances[0].ExcludedVIPs[0].Prefix.String(), "192.0.2.5/24")
			},
		},
	})
}

// TestDuplicateVRID: issue 12 item 9, keepalived's check_vrid_conflicts.
// Two instances collide only with the same VRID, interface and family,
// and either both multicast to one group or both unicast from one source
// to a common peer.
func TestDuplicateVRID(t *testing.T) {
	vip4 := "  virtual_ipaddress {\n    10.0.0.1/24\n  }\n"
	vip6 := "  virtual_ipaddress {\n    fd00::1/64\n  }\n"
	peers := func(src string, ps ...string) string {
		s := ""
		if src != "" {
			s = "  unicast_src_ip " + src + "\n"
		}
		s += "  unicast_peer {\n"
		for _, p := range ps {
			s += "    " + p + "\n"
		}
		return s + "  }\n"
	}
	const at = "vrrp_instance VI_2: virtual_router_id 51 is already used on eth0 by vrrp_instance VI_1 (t.conf:1:1), "
	clash := func(line int, how string) []wantDiag { return []wantDiag{e(line, 1, at+how)} }
	runValueCases(t, []valueCase{
		// Pairs that collide.
		{name: "multicast, default group", src: inst(1, vip4) + inst(2, vip4),
			want: clash(8, "multicasting to the same group 224.0.0.18; keepalived refuses this too (a VRID must be unique per interface, family and multicast group)")},
		{name: "multicast, same mcast_dst_ip", src: inst(1, vip4+"  mcast_dst_ip 224.0.0.30\n") + inst(2, vip4+"  mcast_dst_ip 224.0.0.30\n"),
			want: clash(9, "multicasting to the same group 224.0.0.30")},
		{name: "mcast_dst_ip naming the default group", src: inst(1, vip4+"  mcast_dst_ip 224.0.0.18\n") + inst(2, vip4),
			want: clash(9, "multicasting to the same group 224.0.0.18")},
		{name: "multicast, different sources", src: inst(1, vip4+"  mcast_src_ip 10.0.0.5\n") + inst(2, vip4+"  mcast_src_ip 10.0.0.6\n"),
			want: clash(9, "multicasting to the same group")},
		{name: "unicast, no source, a common peer", src: inst(1, vip4+peers("", "10.0.0.7", "10.0.0.8")) + inst(2, vip4+peers("", "10.0.0.8")),
			want: clash(12, "from the same source to the same unicast peer 10.0.0.8; keepalived refuses this too (a VRID must be unique per interface, family and unicast source and peer)")},
		{name: "unicast, same source, same peer", src: inst(1, vip4+peers("10.0.0.5", "10.0.0.7")) + inst(2, vip4+peers("10.0.0.5", "10.0.0.7")),
			want: clash(12, "from the same source to the same unicast peer 10.0.0.7")},
		{name: "IPv6 multicast", src: inst(1, "  version 3\n"+vip6) + inst(2, "  version 3\n"+vip6),
			want: clash(9, "multicasting to the same group ff02::12")},
		// Pairs that do not.
		{name: "other interface", src: inst(1, vip4) + strings.Replace(inst(2, vip4), "eth0", "eth1", 1)},
		{name: "other family", src: inst(1, vip4) + inst(2, "  version 3\n"+vip6)},
		{name: "other multicast group", src: inst(1, vip4) + inst(2, vip4+"  mcast_dst_ip 224.0.0.19\n")},
		{name: "unicast and multicast", src: inst(1, vip4) + inst(2, vip4+peers("", "10.0.0.7"))},
		{name: "unicast, disjoint peers", src: inst(1, vip4+peers("", "10.0.0.7")) + inst(2, vip4+peers("", "10.0.0.8"))},
		{name: "unicast, other source", src: inst(1, vip4+peers("10.0.0.5", "10.0.0.7")) + inst(2, vip4+peers("10.0.0.6", "10.0.0.7"))},
		{name: "other VRID", src: inst(1, vip4) + strings.Replace(inst(2, vip4), "51", "52", 1)},
	})
}

// rsCheck is a virtual server (lines 1-4) whose real server (line 5) holds
// checker lines from line 6 on.
func rsCheck(lines string) string {
	return "virtual_server 10.0.0.1 25 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n  real_server 10.0.0.2 25 {\n" + lines + "  }\n}\n"
}

func checkersOf(c *Config) []*Checker { return c.VirtualServers[0].RealServers[0].Checkers }

// TestCheckerValues: issue 12 item 11, DNS_CHECK types and names
// (check_dns.c), UDP_CHECK hex (check_udp.c, read_hex_str) and SMTP_CHECK
// host blocks (check_smtp.c).
func TestCheckerValues(t *testing.T) {
	sec := func(s float64) *Duration { d := Duration(s * float64(time.Second)); return &d }
	runValueCases(t, []valueCase{
		{
			name: "DNS_CHECK RRSIG and dnskey",
			src:  rsCheck("    DNS_CHECK {\n      type RRSIG\n    }\n    DNS_CHECK {\n      type dnskey\n    }\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "types", []DNSType{checkersOf(c)[0].DNS.Type, checkersOf(c)[1].DNS.Type}, []DNSType{46, 48})
				equal(t, "names", []string{checkersOf(c)[0].DNS.Type.String(), checkersOf(c)[1].DNS.Type.String()}, []string{"RRSIG", "DNSKEY"})
			},
		},
		{
			name: "DNS_CHECK name with an empty label",
			src:  rsCheck("    DNS_CHECK {\n      name a..b\n    }\n    DNS_CHECK {\n      name .a\n    }\n    DNS_CHECK {\n      name .\n    }\n"),
			want: []wantDiag{
				e(7, 12, `name: name "a..b" has an empty label (keepalived refuses it too)`),
				e(10, 12, `name: name ".a" has an empty label`),
			},
		},
		{
			name: "UDP_CHECK hex words and wildcards",
			src:  rsCheck("    UDP_CHECK {\n      payload 01 02 0a\n      require_reply 1 ab Xc 5x\n    }\n"),
			check: func(t *testing.T, c *Config) {
				u := checkersOf(c)[0].UDP
				equal(t, "payload", u.Payload, []byte{1, 2, 0xa})
				equal(t, "reply", u.Reply, []byte{1, 0xab, 0x0c, 0x50})
				equal(t, "mask", u.ReplyMask, []byte{0, 0, 0xf0, 0x0f})
				equal(t, "max_reply_length default", u.MaxReply, 255)
			},
		},
		{
			name: "UDP_CHECK reply without wildcards has no mask",
			src:  rsCheck("    UDP_CHECK {\n      payload abc\n      require_reply ABCD\n    }\n"),
			check: func(t *testing.T, c *Config) {
				u := checkersOf(c)[0].UDP
				equal(t, "payload", u.Payload, []byte{0xab, 0x0c})
				equal(t, "reply", u.Reply, []byte{0xab, 0xcd})
				equal(t, "mask", u.ReplyMask, []byte(nil))
			},
		},
		{
			name: "UDP_CHECK bad hex",
			src:  rsCheck("    UDP_CHECK {\n      payload 0x01\n      require_reply 0g\n    }\n"),
			want: []wantDiag{
				e(7, 15, `payload: "0x01" is not a hex string: 'x' is not a hex digit`),
				e(8, 21, `require_reply: "0g" is not a hex string: 'g' is not a hex digit`),
			},
		},
		{
			name: "SMTP_CHECK host keywords",
			src: rsCheck("    SMTP_CHECK {\n      retry 2\n      host {\n        connect_ip 10.0.0.3\n        connect_port 587\n        connect_timeout 7\n        retry 4\n        delay_before_retry 2\n        warmup 1\n" +
				"        delay_loop 9\n        alpha\n        log_all_failures\n      }\n      host {\n        connect_ip 10.0.0.4\n      }\n    }\n"),
			want: []wantDiag{
				w(8, 7, "SMTP_CHECK: host { } blocks are deprecated; each is run as an SMTP_CHECK of its own"),
				w(12, 9, "SMTP_CHECK host: retry sets the whole SMTP_CHECK's value, shared by all its hosts, as keepalived does"),
				w(13, 9, "SMTP_CHECK host: delay_before_retry sets the whole SMTP_CHECK's value"),
				w(14, 9, "SMTP_CHECK host: warmup sets"),
				w(15, 9, "SMTP_CHECK host: delay_loop sets"),
				w(16, 9, "SMTP_CHECK host: alpha sets"),
				w(17, 9, "SMTP_CHECK host: log_all_failures sets"),
			},
			check: func(t *testing.T, c *Config) {
				cs := checkersOf(c)
				if len(cs) != 2 {
					t.Fatalf("%d checkers, want one per host (the SMTP_CHECK sets no connection keyword)", len(cs))
				}
				type got struct {
					IP      string
					Port    int
					Timeout Duration
					Timing  Timing
					LogAll  bool
				}
				shared := Timing{DelayLoop: *sec(9), ConnectTimeout: *sec(5), Retry: 4, DelayBeforeRetry: *sec(2), Warmup: *sec(1), Alpha: true}
				h1 := shared
				h1.ConnectTimeout = *sec(7)
				equal(t, "host 1", got{cs[0].ConnectIP.String(), cs[0].ConnectPort, cs[0].Timing.ConnectTimeout, cs[0].Timing, cs[0].LogAll},
					got{"10.0.0.3", 587, *sec(7), h1, true})
				equal(t, "host 2", got{cs[1].ConnectIP.String(), cs[1].ConnectPort, cs[1].Timing.ConnectTimeout, cs[1].Timing, cs[1].LogAll},
					got{"10.0.0.4", 25, *sec(5), shared, true})
			},
		},
		{
			name: "SMTP_CHECK with its own connection keyword runs too",
			src:  rsCheck("    SMTP_CHECK {\n      connect_timeout 3\n      host {\n        connect_ip 10.0.0.3\n      }\n    }\n"),
			want: []wantDiag{w(8, 7, "SMTP_CHECK: host { } blocks are deprecated")},
			check: func(t *testing.T, c *Config) {
				cs := checkersOf(c)
				if len(cs) != 2 {
					t.Fatalf("%d checkers, want the SMTP_CHECK's own and the host's", len(cs))
				}
				equal(t, "targets", []string{cs[0].ConnectIP.String(), cs[1].ConnectIP.String()}, []string{"10.0.0.2", "10.0.0.3"})
				// The host's connect_timeout is the real server's default,
				// not the SMTP_CHECK's.
				equal(t, "timeouts", []Duration{cs[0].Timing.ConnectTimeout, cs[1].Timing.ConnectTimeout}, []Duration{*sec(3), *sec(5)})
			},
		},
	})
}

// TestRoutes: issue 12 item 4, routes in the forms keepalived 2.2.7's
// vrrp_iproute.c reads, each checked against `keepalived -t`.
func TestRoutes(t *testing.T) {
	routes := func(lines ...string) string {
		return "static_routes {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
	}
	route := func(c *Config) *Route { return c.StaticRoutes[0] }
	a := netip.MustParseAddr
	runValueCases(t, []valueCase{
		{
			name: "via inet and via inet6",
			src:  routes("10.1.0.0/16 via inet 192.0.2.254 dev eth0", "fd01::/64 via inet6 fd00::1 dev eth0"),
			check: func(t *testing.T, c *Config) {
				equal(t, "v4 gw", c.StaticRoutes[0].Via, a("192.0.2.254"))
				equal(t, "v6 gw", c.StaticRoutes[1].Via, a("fd00::1"))
				equal(t, "v6 dst", c.StaticRoutes[1].Dst, netip.MustParsePrefix("fd01::/64"))
			},
		},
		{
			name: "default takes the family of its gateway",
			src:  routes("default via fd00::1 dev eth0", "any via 192.0.2.1 dev eth0", "default dev eth0 table 7"),
			check: func(t *testing.T, c *Config) {
				equal(t, "dsts", []string{c.StaticRoutes[0].Dst.String(), c.StaticRoutes[1].Dst.String(), c.StaticRoutes[2].Dst.String()}, []string{"::/0", "0.0.0.0/0", "0.0.0.0/0"})
			},
		},
		{
			name: "an IPv6 gateway for an IPv4 destination",
			src:  routes("10.1.0.0/16 via inet6 fe80::1 dev eth0"),
			want: []wantDiag{e(2, 25, "route: cannot mix IPv4 and IPv6 addresses (fe80::1); keepalived refuses it too")},
		},
		{
			name: "a family word that is not the address's",
			src:  routes("10.1.0.0/16 via inet6 192.0.2.1 dev eth0"),
			want: []wantDiag{e(2, 25, "route: via inet6 192.0.2.1: the address is not of family inet6")},
		},
		{
			name: "a family word before the destination",
			src:  routes("inet6 default via fe80::1 dev eth0"),
			want: []wantDiag{e(2, 3, "route: inet6 before the destination is refused by keepalived 2.2.7")},
		},
		{
			name: "nexthop groups",
			src:  routes("10.1.0.0/16 dev eth0 metric 5 nexthop via 192.0.2.254 weight 2 nexthop via inet 192.0.2.253 dev eth1 onlink"),
			check: func(t *testing.T, c *Config) {
				equal(t, "nexthops", route(c).Nexthops, []Nexthop{{Via: a("192.0.2.254"), Weight: 2}, {Via: a("192.0.2.253"), Dev: "eth1", OnLink: true}})
				equal(t, "via", route(c).Via, netip.Addr{})
			},
		},
		{
			name: "nexthop groups end the line",
			src:  routes("10.1.0.0/16 nexthop via 192.0.2.254 dev eth0 no_track"),
			want: []wantDiag{e(2, 48, `route: "no_track" after nexthop groups`)},
		},
		{
			name: "nexthop weight 1..256",
			src:  routes("10.1.0.0/16 nexthop via 192.0.2.254 weight 0"),
			want: []wantDiag{e(2, 46, `weight: "0" is not an integer in 1..256`)},
		},
		{
			name: "gw and or, deprecated",
			src:  routes("10.1.0.0/16 gw 192.0.2.254 or 192.0.2.253 dev eth0"),
			want: []wantDiag{
				w(2, 15, `route: "gw" is deprecated; read as "via" (keepalived 2.2.7 reports it as a configuration error)`),
				w(2, 30, `route: "or" is deprecated; use nexthop groups`),
			},
			check: func(t *testing.T, c *Config) {
				equal(t, "nexthops", route(c).Nexthops, []Nexthop{{Via: a("192.0.2.254")}, {Via: a("192.0.2.253")}})
			},
		},
		{
			name: "a second or",
			src:  routes("10.1.0.0/16 via 192.0.2.254 or 192.0.2.253 or 192.0.2.252 dev eth0"),
			want: []wantDiag{
				w(2, 31, `"or" is deprecated`), w(2, 46, `"or" is deprecated`),
				e(2, 46, `route: "or" takes one alternative to a via gateway given before it (keepalived ignores any further "or")`),
			},
		},
		{
			name: "tos, types, table, metric, protocol, scope, src",
			src:  routes("10.1.0.0/16 tos 0x10 via 192.0.2.1 dev eth0", "local 10.2.0.0/16 dev eth0 table 100 preference 7 protocol static scope host src 192.0.2.1", "unicast 10.3.0.0/16 dev eth0"),
			check: func(t *testing.T, c *Config) {
				equal(t, "tos", c.StaticRoutes[0].TOS, DSField(0x10))
				r := c.StaticRoutes[1]
				seven := uint32(7)
				equal(t, "local", []any{r.Type.String(), r.Table, r.Metric, r.Proto, r.Scope, r.Src}, []any{"local", RouteTable(100), &seven, RouteProto(4), Scope(254), a("192.0.2.1")})
				equal(t, "unicast", c.StaticRoutes[2].Type, RouteType(0))
			},
		},
		{
			// The kernel tells routes apart by tos too (ip-route(8)).
			name: "tos is part of a route's key",
			src:  routes("10.1.0.0/16 tos 0x10 via 192.0.2.1 dev eth0", "10.1.0.0/16 via 192.0.2.1 dev eth0"),
			check: func(t *testing.T, c *Config) {
				ki := c.keyIndex()
				equal(t, "keys", []Key{ki[c.StaticRoutes[0]], ki[c.StaticRoutes[1]]}, []Key{"static route 0 10.1.0.0/16 table unspec metric - tos 0x10", "static route 0 10.1.0.0/16 table unspec metric -"})
			},
		},
		{
			name: "options keepalived reads that Tandem cannot apply",
			src:  routes("fd01::/64 from fd00::/64 via fd00::1 dev eth0", "10.1.0.0/16 dev eth0 mtu 1400", "nat 10.1.0.0/16 dev eth0"),
			want: []wantDiag{
				e(2, 13, "route: from: source-prefix routing (RTA_SRC) is not supported by Tandem's netlink library"),
				e(3, 24, "route: mtu: route metrics are not supported by Tandem"),
				e(4, 3, "route: nat: the Linux kernel no longer takes NAT routes"),
			},
		},
	})
}
