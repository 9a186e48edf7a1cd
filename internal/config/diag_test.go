package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config/syntax"
)

// wantDiag is one expected diagnostic: where, how grave, and a substring of
// its message.
type wantDiag struct {
	line, col int
	sev       syntax.Severity
	msg       string
}

func (w wantDiag) String() string {
	return fmt.Sprintf("%d:%d: %s: ...%s...", w.line, w.col, w.sev, w.msg)
}

func e(line, col int, msg string) wantDiag { return wantDiag{line, col, syntax.Error, msg} }
func w(line, col int, msg string) wantDiag { return wantDiag{line, col, syntax.Warning, msg} }

// vi is a valid instance, line 1 to 6, for cases to build on.
const vi = `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.1/24
  }
}
`

// vs is a valid virtual server header; cases add its body.
func vsWith(body string) string {
	return "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n" + body + "}\n"
}

func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []wantDiag
		check func(t *testing.T, cfg *Config)
	}{
		{name: "valid instance", src: vi},
		{
			// Issue 11: both used to pass and fail only on becoming MASTER.
			name: "route table by an unknown name",
			src:  vi + "static_routes {\n    10.1.0.0/16 dev eth0 table no-such-table proto static\n}\n",
			want: []wantDiag{e(9, 32, `route: table "no-such-table" is not a number, a built-in name (default, local, main, unspec) or a name in /etc/iproute2/rt_tables`)},
		},
		{
			name: "rule fwmark and tos not numbers",
			src:  vi + "static_rules {\n    fwmark 0xzz tos bogus-tos table 100\n}\n",
			want: []wantDiag{e(9, 12, `rule: fwmark "0xzz" is not a 32-bit number`)},
		},
		{
			name: "rule tos not a number",
			src:  vi + "static_rules {\n    fwmark 0x10/0xff tos bogus-tos table 100\n}\n",
			want: []wantDiag{e(9, 26, `rule: tos "bogus-tos" is not a number or a name in /etc/iproute2/rt_dsfield`)},
		},
		{
			name: "unknown keyword with suggestion",
			src:  "vrrp_instance VI_1 {\n  interface eth0\n  virtual_routr_id 51\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
			want: []wantDiag{e(3, 3, `unknown keyword "virtual_routr_id"; did you mean "virtual_router_id"?`)},
		},
		{
			name: "unsupported keyword",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  use_vmac_addr\n", 1),
			want: []wantDiag{w(3, 3, `keyword "use_vmac_addr" is not supported by Tandem`)},
		},
		{
			name: "VRID 0",
			src:  strings.Replace(vi, "router_id 51", "router_id 0", 1),
			want: []wantDiag{e(3, 21, `"0" is not an integer in 1..255`), e(1, 1, "virtual_router_id is required")},
		},
		{
			name: "VRID 256",
			src:  strings.Replace(vi, "router_id 51", "router_id 256", 1),
			want: []wantDiag{e(3, 21, `"256" is not an integer in 1..255`), e(1, 1, "virtual_router_id is required")},
		},
		{
			name: "priority 0",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  priority 0\n", 1),
			want: []wantDiag{e(3, 12, `priority: "0" is not an integer in 1..255`)},
		},
		{
			name: "priority 256",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  priority 256\n", 1),
			want: []wantDiag{e(3, 12, `priority: "256" is not an integer in 1..255`)},
		},
		{
			name: "advert_int 0.5 with VRRPv2",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  advert_int 0.5\n", 1),
			want: []wantDiag{e(1, 1, "advert_int 0.5 is not valid for VRRPv2")},
		},
		{
			name: "advert_int 0.5 with VRRPv3",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  version 3\n  advert_int 0.5\n", 1),
			check: func(t *testing.T, cfg *Config) {
				if got := time.Duration(cfg.Instances[0].AdvertInt); got != 500*time.Millisecond {
					t.Errorf("advert_int = %v, want 500ms", got)
				}
			},
		},
		{
			name: "advert_int 0.123 with VRRPv3",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  version 3\n  advert_int 0.123\n", 1),
			want: []wantDiag{e(1, 1, "advert_int 0.123 is not a whole number of centiseconds")},
		},
		{
			name: "advert_int 41 with VRRPv3",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  version 3\n  advert_int 41\n", 1),
			want: []wantDiag{e(1, 1, "advert_int 41 is above VRRPv3's maximum of 40.95 s")},
		},
		{
			// RFC 3768 §5.3.7 and keepalived's vrrp_adv_handler: up to 255 s.
			name: "advert_int 41 with VRRPv2",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  advert_int 41\n", 1),
		},
		{
			name: "advert_int 256",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  advert_int 256\n", 1),
			want: []wantDiag{e(3, 14, `advert_int: "256" is not a number of seconds in 0.01..255`)},
		},
		{
			name: "advert_int 0",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  advert_int 0\n", 1),
			want: []wantDiag{e(3, 14, `advert_int: "0" is not a number of seconds in 0.01..255`)},
		},
		{
			name: "vrrp_mcast_group4 not multicast",
			src:  "global_defs {\n  vrrp_mcast_group4 10.0.0.1\n}\n",
			want: []wantDiag{e(2, 21, "10.0.0.1 is not a multicast address")},
		},
		{
			name: "vrrp_mcast_group6 given IPv4",
			src:  "global_defs {\n  vrrp_mcast_group6 224.0.0.18\n}\n",
			want: []wantDiag{e(2, 21, "224.0.0.18 is not an IPv6 address")},
		},
		{
			name: "label not starting with the interface",
			src:  strings.Replace(vi, "10.0.0.1/24", "10.0.0.1/24 label eth1:1", 1),
			want: []wantDiag{e(5, 5, `label "eth1:1" must begin with the interface name "eth0"`)},
		},
		{
			name: "label longer than 15 bytes",
			src:  strings.Replace(vi, "10.0.0.1/24", "10.0.0.1/24 label eth0:123456789012", 1),
			want: []wantDiag{e(5, 5, `label "eth0:123456789012" is longer than 15 bytes`)},
		},
		{
			name: "mixed address families",
			src:  strings.Replace(vi, "    10.0.0.1/24\n", "    10.0.0.1/24\n    fd00::1/64\n", 1),
			want: []wantDiag{e(6, 5, "fd00::1 is not IPv4 like the instance's first address")},
		},
		{
			name: "IPv6 with VRRPv2",
			src:  strings.Replace(strings.Replace(vi, "10.0.0.1/24", "fd00::1/64", 1), "  interface eth0\n", "  interface eth0\n  version 2\n", 1),
			want: []wantDiag{e(1, 1, "VRRPv2 is IPv4 only")},
		},
		{
			name: "duplicate VRID on one interface",
			src:  vi + strings.Replace(vi, "VI_1", "VI_2", 1),
			want: []wantDiag{e(8, 1, "virtual_router_id 51 is already used on eth0 by vrrp_instance VI_1")},
		},
		{
			name: "same VRID on another interface",
			src:  vi + strings.NewReplacer("VI_1", "VI_2", "eth0", "eth1").Replace(vi),
		},
		{
			name: "same VRID on one interface, other family",
			src:  vi + strings.NewReplacer("VI_1", "VI_2", "10.0.0.1/24", "fd00::1/64", "interface eth0", "interface eth0\n  version 3").Replace(vi),
		},
		{
			name: "duplicate instance name",
			src:  vi + strings.Replace(vi, "51", "52", 1),
			want: []wantDiag{e(8, 1, "vrrp_instance VI_1 is defined twice (first at t.conf:1:1)")},
		},
		{
			name: "duplicate virtual_server",
			src:  vsWith("") + vsWith(""),
			want: []wantDiag{e(6, 1, "virtual_server 10.0.0.1:80 TCP is defined twice (first at t.conf:1:1)")},
		},
		{
			name: "duplicate real_server",
			src:  vsWith("  real_server 10.0.1.1 80 {\n  }\n  real_server 10.0.1.1 80 {\n  }\n"),
			want: []wantDiag{e(7, 3, "real_server 10.0.1.1:80 is defined twice (first at t.conf:5:3)")},
		},
		{
			name: "undefined track_script",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  track_script {\n    chk_web\n  }\n", 1),
			want: []wantDiag{e(4, 5, `vrrp_script "chk_web" is not defined`)},
		},
		{
			name: "undefined sync group member",
			src:  vi + "vrrp_sync_group G {\n  group {\n    VI_1\n    VI_9\n  }\n}\n",
			want: []wantDiag{e(8, 1, `vrrp_instance "VI_9" is not defined`)},
		},
		{
			name: "undefined virtual_server_group",
			src:  "virtual_server group G1 {\n  lb_algo rr\n}\n",
			want: []wantDiag{e(1, 1, `virtual_server_group "G1" is not defined`)},
		},
		{
			name: "bad scheduler with suggestion",
			src:  "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo wrrr\n}\n",
			want: []wantDiag{e(3, 11, `lb_algo: "wrrr" is not one of rr, wrr,`), w(1, 1, "no lb_algo given")},
			check: func(t *testing.T, cfg *Config) {
				if cfg.VirtualServers[0].Scheduler != SchedulerWLC {
					t.Errorf("scheduler %q, want wlc", cfg.VirtualServers[0].Scheduler)
				}
			},
		},
		{
			name: "bad scheduler suggestion text",
			src:  "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo wrrr\n}\n",
			want: []wantDiag{e(3, 11, `did you mean "wrr"?`), w(1, 1, "using keepalived's default wlc")},
		},
		{
			name: "bad lb_kind",
			src:  "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind DIRECT\n}\n",
			want: []wantDiag{e(4, 11, `lb_kind: "DIRECT" is not one of NAT, DR, TUN`)},
		},
		{
			name: "real server weight 70000",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    weight 70000\n  }\n"),
			want: []wantDiag{e(6, 12, `weight: "70000" is not an integer in 0..65535`)},
		},
		{
			name: "port 70000",
			src:  "virtual_server 10.0.0.1 70000 {\n  protocol TCP\n}\n",
			want: []wantDiag{e(1, 25, `virtual_server: "70000" is not an integer in 0..65535`)},
		},
		{
			name: "bad digest",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        digest abc\n      }\n    }\n  }\n"),
			want: []wantDiag{e(9, 16, `digest: "abc" is not an MD5 digest`)},
		},
		{
			name: "status_code ranges",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 200 301-302 404\n      }\n    }\n  }\n"),
			check: func(t *testing.T, cfg *Config) {
				got := cfg.VirtualServers[0].RealServers[0].Checkers[0].HTTP.URLs[0].StatusCodes
				want := []StatusRange{{200, 200}, {301, 302}, {404, 404}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("status codes (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "status_code reversed range",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 299-200\n      }\n    }\n  }\n"),
			want: []wantDiag{e(9, 21, `status_code: "200" is not an integer in 299..999`)},
		},
		{
			name: "status_code out of range",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 99\n      }\n    }\n  }\n"),
			want: []wantDiag{e(9, 21, `status_code: "99" is not an integer in 100..999`)},
		},
		// Issue 12: keywords parsed and then ignored.
		{
			name: "static address without dev: default_interface",
			src:  "global_defs {\n  default_interface bond0\n}\nstatic_ipaddress {\n  192.0.2.1/24\n  192.0.2.2/24 dev eth3\n}\n",
			check: func(t *testing.T, c *Config) {
				if a, b := c.StaticAddresses[0].Dev, c.StaticAddresses[1].Dev; a != "bond0" || b != "eth3" {
					t.Errorf("devs %q %q, want bond0 eth3", a, b)
				}
			},
		},
		{
			name: "static address without dev or default_interface: eth0",
			src:  "static_ipaddress {\n  192.0.2.1/24\n}\n",
			check: func(t *testing.T, c *Config) {
				if d := c.StaticAddresses[0].Dev; d != "eth0" {
					t.Errorf("dev %q, want keepalived's eth0", d)
				}
			},
		},
		{
			name: "SSL_GET tls_compliant on the checker and on a url",
			src:  vsWith("  real_server 10.0.0.2 80 {\n    SSL_GET {\n      tls_compliant\n      url {\n        path /\n        tls_compliant\n      }\n      url {\n        path /b\n      }\n    }\n  }\n"),
			check: func(t *testing.T, c *Config) {
				h := c.VirtualServers[0].RealServers[0].Checkers[0].HTTP
				if !h.TLSCompliant || !h.URLs[0].TLSCompliant || h.URLs[1].TLSCompliant {
					t.Errorf("checker %v, urls %v %v; want true, true false", h.TLSCompliant, h.URLs[0].TLSCompliant, h.URLs[1].TLSCompliant)
				}
			},
		},
		{
			// keepalived knows tls_compliant in SSL_GET only; fast_recovery is
			// what Tandem always does.
			name: "HTTP_GET tls_compliant and fast_recovery warned",
			src: vsWith("  real_server 10.0.0.2 80 {\n    HTTP_GET {\n      tls_compliant\n      fast_recovery\n      url {\n        path /\n      }\n    }\n" +
				"    HTTP_GET {\n      fast_recovery maybe\n      url {\n        path /\n      }\n    }\n  }\n"),
			want: []wantDiag{w(7, 7, "tls_compliant: HTTP_GET has no TLS"), w(8, 7, "fast_recovery: Tandem always checks all urls back to back"), e(14, 21, "maybe")},
		},
		{
			name: "hysteresis not below quorum",
			src:  vsWith("  quorum 2\n  hysteresis 2\n"),
			want: []wantDiag{e(1, 1, "hysteresis 2 must be below quorum 2")},
		},
		{
			name: "sh-port without sh",
			src:  vsWith("  sh-port\n"),
			want: []wantDiag{e(5, 3, "sh-port needs lb_algo sh, not rr")},
		},
		{
			name: "missing interface",
			src:  strings.Replace(vi, "  interface eth0\n", "", 1),
			want: []wantDiag{e(1, 1, "vrrp_instance VI_1: interface is required")},
		},
		{
			name: "default_interface fills a missing interface",
			src:  "global_defs {\n  default_interface bond0\n}\n" + strings.Replace(vi, "  interface eth0\n", "", 1),
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Instances[0].Interface; got != "bond0" {
					t.Errorf("interface %q, want bond0", got)
				}
			},
		},
		{
			name: "missing virtual_router_id",
			src:  strings.Replace(vi, "  virtual_router_id 51\n", "", 1),
			want: []wantDiag{e(1, 1, "virtual_router_id is required")},
		},
		{
			name: "auth_pass of 10 bytes",
			src:  strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  authentication {\n    auth_type PASS\n    auth_pass 0123456789\n  }\n", 1),
			want: []wantDiag{w(3, 3, `auth_pass "0123456789" is longer than 8 bytes; truncated to "01234567"`)},
			check: func(t *testing.T, cfg *Config) {
				want := &Auth{Type: AuthPass, Pass: "01234567"}
				if diff := cmp.Diff(want, cfg.Instances[0].Auth); diff != "" {
					t.Errorf("auth (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "persistence_timeout without value",
			src:  vsWith("  persistence_timeout\n"),
			check: func(t *testing.T, cfg *Config) {
				if got := time.Duration(cfg.VirtualServers[0].Persistence); got != 360*time.Second {
					t.Errorf("persistence %v, want 6m0s", got)
				}
			},
		},
		{
			name: "persistence_timeout 0",
			src:  vsWith("  persistence_timeout 0\n"),
			want: []wantDiag{w(5, 23, "persistence_timeout 0 is not valid in keepalived; read as no persistence")},
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.VirtualServers[0].Persistence; got != 0 {
					t.Errorf("persistence %v, want 0", got)
				}
			},
		},
		{
			name: "nb_get_retry",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    TCP_CHECK {\n      nb_get_retry 4\n    }\n  }\n"),
			want: []wantDiag{w(7, 7, "nb_get_retry is deprecated; read as retry 4")},
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.VirtualServers[0].RealServers[0].Checkers[0].Timing.Retry; got != 4 {
					t.Errorf("retry %d, want 4", got)
				}
			},
		},
		{
			name: "checker timing defaults cascade",
			src: vsWith("  delay_loop 7\n  connect_timeout 2\n" +
				"  real_server 10.0.1.1 80 {\n    retry 5\n    delay_before_retry 4\n" +
				"    TCP_CHECK {\n    }\n" +
				"    HTTP_GET {\n      retry 2\n      delay_loop 9\n      url {\n        path /\n      }\n    }\n" +
				"  }\n" +
				"  real_server 10.0.1.2 80 {\n    MISC_CHECK {\n      misc_path /bin/true\n    }\n    DNS_CHECK {\n    }\n    HTTP_GET {\n      url {\n        path /\n      }\n    }\n  }\n"),
			check: func(t *testing.T, cfg *Config) {
				s := Duration(time.Second)
				var got []Timing
				for _, rs := range cfg.VirtualServers[0].RealServers {
					for _, c := range rs.Checkers {
						got = append(got, c.Timing)
					}
				}
				want := []Timing{
					// TCP_CHECK: delay_loop and connect_timeout from the
					// virtual server, retry and delay_before_retry from the
					// real server, warmup = delay_loop.
					{DelayLoop: 7 * s, ConnectTimeout: 2 * s, Retry: 5, DelayBeforeRetry: 4 * s, Warmup: 7 * s},
					// HTTP_GET: its own retry and delay_loop win.
					{DelayLoop: 9 * s, ConnectTimeout: 2 * s, Retry: 2, DelayBeforeRetry: 4 * s, Warmup: 9 * s},
					// Checker defaults: MISC retry 0, DNS retry 3, HTTP retry 1 with 3 s.
					{DelayLoop: 7 * s, ConnectTimeout: 2 * s, Retry: 0, DelayBeforeRetry: s, Warmup: 7 * s},
					{DelayLoop: 7 * s, ConnectTimeout: 2 * s, Retry: 3, DelayBeforeRetry: 7 * s, Warmup: 7 * s},
					{DelayLoop: 7 * s, ConnectTimeout: 2 * s, Retry: 1, DelayBeforeRetry: 3 * s, Warmup: 7 * s},
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("timings (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "checker defaults with nothing set",
			src:  vsWith("  real_server 10.0.1.1 80 {\n    TCP_CHECK {\n    }\n  }\n"),
			check: func(t *testing.T, cfg *Config) {
				s := Duration(time.Second)
				want := Timing{DelayLoop: 60 * s, ConnectTimeout: 5 * s, Retry: 1, DelayBeforeRetry: s, Warmup: 60 * s}
				if diff := cmp.Diff(want, cfg.VirtualServers[0].RealServers[0].Checkers[0].Timing); diff != "" {
					t.Errorf("timing (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "DR real server port mismatch",
			src:  "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind DR\n  real_server 10.0.1.1 8080 {\n  }\n  real_server 10.0.1.2 {\n  }\n}\n",
			want: []wantDiag{w(5, 3, "port 8080 differs from the virtual server's 80, which DR cannot change; using 80")},
			check: func(t *testing.T, cfg *Config) {
				for _, rs := range cfg.VirtualServers[0].RealServers {
					if rs.Port != 80 || rs.Weight != 1 || rs.Method != DR {
						t.Errorf("real server %s: port %d weight %d method %s, want 80 1 DR", rs.IP, rs.Port, rs.Weight, rs.Method)
					}
				}
			},
		},
		{
			// The brief asked for an error here, but keepalived's own
			// keepalived.conf.sample.in writes vrrp_strict with accept and
			// every sample must load. RFC 5798 §6.1 makes Accept_Mode a
			// setting, so an explicit accept wins over the strict default
			// in VRRPv3; RFC 3768 has no accept mode, and keepalived's
			// strict mode resets it for VRRPv2 (vrrp_complete_instance).
			name: "accept with vrrp_strict, VRRPv3",
			src:  "global_defs {\n  vrrp_strict\n}\n" + strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  accept\n  version 3\n", 1),
			check: func(t *testing.T, cfg *Config) {
				if !cfg.Instances[0].Accept || !cfg.Instances[0].StrictMode {
					t.Errorf("accept %v strict %v, want true true", cfg.Instances[0].Accept, cfg.Instances[0].StrictMode)
				}
			},
		},
		{
			name: "accept with vrrp_strict, VRRPv2",
			src:  "global_defs {\n  vrrp_strict\n}\n" + strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  accept\n", 1),
			want: []wantDiag{w(4, 1, "vrrp_instance VI_1: accept mode does not comply with VRRPv2 (RFC 3768) in strict mode; reset")},
			check: func(t *testing.T, cfg *Config) {
				if cfg.Instances[0].Accept || !cfg.Instances[0].StrictMode {
					t.Errorf("accept %v strict %v, want false true", cfg.Instances[0].Accept, cfg.Instances[0].StrictMode)
				}
			},
		},
		{
			name: "accept defaults to true",
			src:  vi,
			check: func(t *testing.T, cfg *Config) {
				if !cfg.Instances[0].Accept || cfg.Instances[0].StrictMode {
					t.Errorf("accept %v strict %v, want true false", cfg.Instances[0].Accept, cfg.Instances[0].StrictMode)
				}
			},
		},
		{
			name: "accept defaults to false under vrrp_strict",
			src:  "global_defs {\n  vrrp_strict\n}\n" + vi,
			check: func(t *testing.T, cfg *Config) {
				if cfg.Instances[0].Accept || !cfg.Instances[0].StrictMode {
					t.Errorf("accept %v strict %v, want false true", cfg.Instances[0].Accept, cfg.Instances[0].StrictMode)
				}
			},
		},
		{
			name: "global_defs after the instance still applies",
			src:  strings.Replace(vi, "10.0.0.1/24", "fd00::1/64", 1) + "global_defs {\n  vrrp_version 3\n}\n",
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Instances[0].Version; got != 3 {
					t.Errorf("version %d, want 3", got)
				}
			},
		},
		{
			name: "script quoting",
			src:  "vrrp_script chk {\n  script \"/bin/check 'a b'\"\n}\n" + strings.Replace(vi, "  interface eth0\n", "  interface eth0\n  notify_master \"/bin/n \\\"x y\\\" z\"\n  track_script {\n    chk\n  }\n", 1),
			check: func(t *testing.T, cfg *Config) {
				if diff := cmp.Diff([]string{"/bin/check", "a b"}, cfg.Scripts[0].Command); diff != "" {
					t.Errorf("script (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"/bin/n", "x y", "z"}, cfg.Instances[0].Notify.Master); diff != "" {
					t.Errorf("notify_master (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "unquoted script words",
			src:  "vrrp_script chk {\n  script /bin/check a b\n}\n",
			check: func(t *testing.T, cfg *Config) {
				if diff := cmp.Diff([]string{"/bin/check", "a", "b"}, cfg.Scripts[0].Command); diff != "" {
					t.Errorf("script (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "unterminated quote in a script",
			src:  "vrrp_script chk {\n  script \"/bin/check 'a b\"\n}\n",
			want: []wantDiag{e(2, 10, "unterminated ' quote"), e(1, 1, "vrrp_script chk: no script given")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

// matchDiags checks that diags are exactly want: each diagnostic matches
// one expectation (position, severity, message substring) and none is left.
func matchDiags(t *testing.T, diags Diagnostics, want []wantDiag) {
	t.Helper()
	used := make([]bool, len(want))
	var extra []string
	for _, d := range diags {
		found := false
		for i, w := range want {
			if !used[i] && d.Pos.Line == w.line && d.Pos.Col == w.col && d.Severity == w.sev && strings.Contains(d.Msg, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			extra = append(extra, d.String())
		}
	}
	var missing []string
	for i, w := range want {
		if !used[i] {
			missing = append(missing, w.String())
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		t.Errorf("diagnostics differ\nunexpected:\n\t%s\nmissing:\n\t%s", strings.Join(extra, "\n\t"), strings.Join(missing, "\n\t"))
	}
}
