package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// compatCase is a configuration keepalived accepts, as files in a
// directory (the first is the one loaded), with the model it must give and
// the exact diagnostics, as "file:line:col: severity: message".
type compatCase struct {
	name  string
	files [][2]string // name, content; files[0] is loaded
	opts  Options
	diags []string
	check func(t *testing.T, cfg *Config, dir string)
}

func runCompatCases(t *testing.T, cases []compatCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f[0])
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, diags := Load(filepath.Join(dir, tc.files[0][0]), tc.opts)
			var got []string
			for _, d := range diags {
				got = append(got, strings.ReplaceAll(d.String(), dir+"/", ""))
			}
			if d := cmp.Diff(tc.diags, got); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
			if tc.check != nil && !diags.HasErrors() {
				real, err := filepath.EvalSymlinks(dir)
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, cfg, real)
			}
		})
	}
}

func wantEqual[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// scriptCommands maps each vrrp_script to its command.
func scriptCommands(cfg *Config) map[string][]string {
	m := map[string][]string{}
	for _, s := range cfg.Scripts {
		m[s.Name] = s.Command
	}
	return m
}

// TestBuiltinDefinitions covers keepalived's pre-defined definitions
// (keepalived.conf(5), "Pre-defined definitions").
func TestBuiltinDefinitions(t *testing.T) {
	t.Setenv("TANDEM_TEST_DIR", "/opt/checks")
	var draws [][2]uint64
	runCompatCases(t, []compatCase{
		{
			name: "_PWD is the directory of each file, _INSTANCE the config id",
			files: [][2]string{
				{"keepalived.conf", "global_defs {\n  router_id ${_INSTANCE}\n}\ninclude sub/*.conf\nvrrp_script main {\n  script \"${_PWD}/main.sh\"\n}\n"},
				{"sub/chk.conf", "vrrp_script sub {\n  script \"${_PWD}/chk.sh $_INSTANCE x\"\n}\n"},
			},
			opts: Options{ConfigID: "lb1"},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "router_id", "lb1", cfg.Global.RouterID)
				wantEqual(t, "scripts", map[string][]string{
					"main": {dir + "/main.sh"},
					"sub":  {dir + "/sub/chk.sh", "lb1", "x"},
				}, scriptCommands(cfg))
			},
		},
		{
			name:  "_RANDOM with and without a range",
			files: [][2]string{{"keepalived.conf", vi[:len(vi)-2] + "  priority ${_RANDOM 1 100}\n  advert_int $_RANDOM\n}\n"}},
			opts: Options{ConfigID: "lb1", Random: func(lo, hi uint64) uint64 {
				draws = append(draws, [2]uint64{lo, hi})
				return lo + 3
			}},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "priority", 4, cfg.Instances[0].Priority)
				wantEqual(t, "advert_int", Duration(3e9), cfg.Instances[0].AdvertInt)
				wantEqual(t, "draws", [][2]uint64{{1, 100}, {0, 32767}}, draws)
			},
		},
		{
			name:  "_HASH starting a line makes it a comment; _BANG in quotes is text",
			files: [][2]string{{"keepalived.conf", "vrrp_script chk {\n  ${_HASH} script /bin/false\n  script \"/bin/echo ${_BANG}x\"\n}\n"}},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/bin/echo", "!x"}}, scriptCommands(cfg))
			},
		},
		{
			name:  "_HASH inside a line cuts it, as keepalived decomments after expanding",
			files: [][2]string{{"keepalived.conf", "vrrp_script chk {\n  script /bin/check a${_HASH}b\n}\n"}},
			diags: []string{`keepalived.conf:2:22: warning: '#' outside quotes after $expansion starts a comment, as keepalived reads the line; the rest of the line is ignored`},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/bin/check", "a"}}, scriptCommands(cfg))
			},
		},
		{
			name:  "unknown _ definition is left as text with a warning",
			files: [][2]string{{"keepalived.conf", "vrrp_script chk {\n  script \"${_FOO}/chk.sh\"\n}\n"}},
			diags: []string{`keepalived.conf:2:11: warning: $_FOO is not a keepalived built-in definition (_PWD, _INSTANCE, _RANDOM, _HASH, _BANG, _ENV); left as text, as keepalived does`},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"${_FOO}/chk.sh"}}, scriptCommands(cfg))
			},
		},
		{
			name:  "parameters keepalived does not match leave the reference as text",
			files: [][2]string{{"keepalived.conf", "vrrp_script chk {\n  script \"/bin/x ${_PWD 1} ${_RANDOM a}\"\n}\n"}},
			diags: []string{
				`keepalived.conf:2:18: warning: $_PWD takes no parameters; left as text, as keepalived does`,
				`keepalived.conf:2:28: warning: ${_RANDOM a}: parameters must be numbers; left as text, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/bin/x", "${_PWD", "1}", "${_RANDOM", "a}"}}, scriptCommands(cfg))
			},
		},
		{
			name:  "_ENV reads the environment",
			files: [][2]string{{"keepalived.conf", "vrrp_script chk {\n  script \"${_ENV TANDEM_TEST_DIR}/chk.sh\"\n}\n"}},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/opt/checks/chk.sh"}}, scriptCommands(cfg))
			},
		},
		{
			name:  "a definition overrides a built-in one",
			files: [][2]string{{"keepalived.conf", "$_PWD=/etc/keepalived\nvrrp_script chk {\n  script \"${_PWD}/chk.sh\"\n}\n"}},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/etc/keepalived/chk.sh"}}, scriptCommands(cfg))
			},
		},
	})
}

// TestIgnoredArguments covers words keepalived's handlers never read: a
// flag keyword followed by a value, or a line with a word too many. They
// load with a warning at the first ignored word, and the model is what
// keepalived makes of the line.
func TestIgnoredArguments(t *testing.T) {
	one := func(src string) [][2]string { return [][2]string{{"keepalived.conf", src}} }
	runCompatCases(t, []compatCase{
		{
			name:  "enable_script_security yes",
			files: one("global_defs {\n  enable_script_security yes\n  vrrp_strict on\n}\n"),
			diags: []string{
				`keepalived.conf:2:26: warning: enable_script_security: argument "yes" ignored, as keepalived does`,
				`keepalived.conf:3:15: warning: vrrp_strict: argument "on" ignored, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "enable_script_security", true, cfg.Global.EnableScriptSecurity)
				wantEqual(t, "vrrp_strict", true, cfg.Global.VRRPStrict)
			},
		},
		{
			name: "virtual_server and real_server with a word too many; alpha 1, omega on, omega off",
			files: one("virtual_server 192.0.2.1 80 80 {\n  lb_kind NAT\n  alpha 1\n  omega on\n  ha_suspend off\n  hashed yes\n" +
				"  real_server 10.0.0.2 80 weight {\n    smtp_alert yes please\n  }\n  protocol TCP\n  lb_algo rr\n}\n"),
			diags: []string{
				`keepalived.conf:1:29: warning: virtual_server: argument "80" ignored, as keepalived does`,
				`keepalived.conf:3:9: warning: alpha: argument "1" ignored, as keepalived does`,
				`keepalived.conf:4:9: warning: omega: argument "on" ignored, as keepalived does`,
				`keepalived.conf:5:14: warning: ha_suspend: argument "off" ignored, as keepalived does`,
				`keepalived.conf:6:10: warning: hashed: argument "yes" ignored, as keepalived does`,
				`keepalived.conf:7:27: warning: real_server: argument "weight" ignored, as keepalived does`,
				`keepalived.conf:8:20: warning: smtp_alert: argument "please" ignored, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				vs := cfg.VirtualServers[0]
				wantEqual(t, "vs", "192.0.2.1:80", netip.AddrPortFrom(vs.IP, uint16(vs.Port)).String())
				wantEqual(t, "alpha", true, vs.Defaults.Alpha != nil && *vs.Defaults.Alpha)
				wantEqual(t, "omega, ha_suspend", [2]bool{true, true}, [2]bool{vs.Omega, vs.HASuspend})
				rs := vs.RealServers[0]
				wantEqual(t, "rs", "10.0.0.2:80", netip.AddrPortFrom(rs.IP, uint16(rs.Port)).String())
				wantEqual(t, "rs smtp_alert", true, rs.SMTPAlert)
			},
		},
		{
			name:  "vrrp flags",
			files: one(vi[:len(vi)-2] + "  nopreempt 1\n  dont_track_primary yes\n  smtp_alert false maybe\n}\n"),
			diags: []string{
				`keepalived.conf:7:13: warning: nopreempt: argument "1" ignored, as keepalived does`,
				`keepalived.conf:8:22: warning: dont_track_primary: argument "yes" ignored, as keepalived does`,
				`keepalived.conf:9:20: warning: smtp_alert: argument "maybe" ignored, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				in := cfg.Instances[0]
				wantEqual(t, "preempt, dont_track_primary, smtp_alert", [3]bool{false, true, false}, [3]bool{in.Preempt, in.DontTrackPrimary, in.SMTPAlert})
			},
		},
		{
			// rs_alpha_handler() reads a true/false value and reports any
			// other word as an error, so keepalived -t rejects this.
			name:  "real server alpha with a value that is not true or false",
			files: one("virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.2 80 {\n    alpha 1\n  }\n  protocol TCP\n  lb_algo rr\n}\n"),
			diags: []string{`keepalived.conf:3:11: error: alpha: "1" is not true or false`},
		},
	})
}

// TestSourceAndPeerPrefix covers addresses keepalived reads with
// inet_stosockaddr(), which drops a "/prefix" (or "-range").
func TestSourceAndPeerPrefix(t *testing.T) {
	v6 := "vrrp_instance VI_6 {\n  interface eth0\n  virtual_router_id 52\n  version 3\n  unicast_src_ip fd00::2/64\n" +
		"  unicast_peer {\n    fd00::3/64 min_ttl 1\n    fd00::4\n  }\n  virtual_ipaddress {\n    fd00::10\n  }\n}\n"
	v4 := "vrrp_instance VI_4 {\n  interface eth0\n  virtual_router_id 51\n  mcast_src_ip 10.0.0.1/24\n" +
		"  unicast_peer {\n    10.0.0.2/24\n  }\n  virtual_ipaddress {\n    10.0.0.10\n  }\n}\n"
	runCompatCases(t, []compatCase{
		{
			name:  "unicast_src_ip and unicast_peer with a prefix",
			files: [][2]string{{"keepalived.conf", v6}},
			diags: []string{
				`keepalived.conf:5:18: warning: unicast_src_ip: "fd00::2/64" read as fd00::2: the "/64" is dropped, as keepalived does`,
				`keepalived.conf:7:5: warning: unicast_peer: "fd00::3/64" read as fd00::3: the "/64" is dropped, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				in := cfg.Instances[0]
				wantEqual(t, "unicast_src_ip", "fd00::2", in.UnicastSrcIP.String())
				wantEqual(t, "peers", []string{"fd00::3", "fd00::4"}, []string{in.UnicastPeers[0].Addr.String(), in.UnicastPeers[1].Addr.String()})
				wantEqual(t, "min_ttl", 1, in.UnicastPeers[0].MinTTL)
			},
		},
		{
			name:  "mcast_src_ip and a peer with a prefix",
			files: [][2]string{{"keepalived.conf", v4}},
			diags: []string{
				`keepalived.conf:4:16: warning: mcast_src_ip: "10.0.0.1/24" read as 10.0.0.1: the "/24" is dropped, as keepalived does`,
				`keepalived.conf:6:5: warning: unicast_peer: "10.0.0.2/24" read as 10.0.0.2: the "/24" is dropped, as keepalived does`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				in := cfg.Instances[0]
				wantEqual(t, "mcast_src_ip, peer", [2]string{"10.0.0.1", "10.0.0.2"}, [2]string{in.McastSrcIP.String(), in.UnicastPeers[0].Addr.String()})
			},
		},
		{
			name:  "what is before the prefix must be an address",
			files: [][2]string{{"keepalived.conf", strings.Replace(v4, "10.0.0.1/24", "10.0.0/24", 1)}},
			diags: []string{
				`keepalived.conf:4:16: error: mcast_src_ip: "10.0.0/24" is not an IP address`,
				`keepalived.conf:6:5: warning: unicast_peer: "10.0.0.2/24" read as 10.0.0.2: the "/24" is dropped, as keepalived does`,
			},
		},
	})
}

// TestPreprocessorCompat covers keepalived.conf(5)'s "Parameter
// substitution" as parser.c's read_line() does it.
func TestPreprocessorCompat(t *testing.T) {
	cond := "@main $PRIORITY=240\n@backup $PRIORITY=200\n$IF_MAIN=@main\n$IF_BACKUP=@backup\n" +
		"vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority $PRIORITY\n" +
		"  $IF_MAIN advert_int 2\n  $IF_BACKUP advert_int 3\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n"
	prioAdvert := func(prio int, advert Duration) func(t *testing.T, cfg *Config, dir string) {
		return func(t *testing.T, cfg *Config, dir string) {
			in := cfg.Instances[0]
			wantEqual(t, "priority, advert_int", [2]any{prio, advert}, [2]any{in.Priority, in.AdvertInt})
		}
	}
	runCompatCases(t, []compatCase{
		{
			name:  "conditional definitions and a definition holding @id, on main",
			files: [][2]string{{"keepalived.conf", cond}},
			opts:  Options{ConfigID: "main"},
			check: prioAdvert(240, Duration(2e9)),
		},
		{
			name:  "conditional definitions and a definition holding @id, on backup",
			files: [][2]string{{"keepalived.conf", cond}},
			opts:  Options{ConfigID: "backup"},
			check: prioAdvert(200, Duration(3e9)),
		},
		{
			// A comment-only line inside a multi-line definition is
			// skipped; a '\' still continues it after a comment or
			// followed by blanks, as decomment() leaves it last.
			name: "multi-line definitions with comments",
			files: [][2]string{{"keepalived.conf", "$TRACK=track_script { \\\n  # the web check\n  chk_web \\\n}\n" +
				"$SETTINGS=nopreempt # no preemption \\\n  dont_track_primary \\ \n\n" +
				"vrrp_script chk_web {\n  script /bin/true\n}\n" +
				"vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  $TRACK\n  $SETTINGS\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n"}},
			check: func(t *testing.T, cfg *Config, dir string) {
				in := cfg.Instances[0]
				wantEqual(t, "track_script", []string{"chk_web"}, []string{in.TrackScripts[0].Name})
				wantEqual(t, "preempt, dont_track_primary", [2]bool{false, true}, [2]bool{in.Preempt, in.DontTrackPrimary})
			},
		},
		{
			name:  "a definition used before it is defined stays text",
			files: [][2]string{{"keepalived.conf", "$DIR=/etc/keepalived\nvrrp_script chk {\n  script \"${DIR}/chk.sh $HOST\"\n}\n$HOST=web1\n"}},
			diags: []string{
				`keepalived.conf:3:25: warning: $HOST is not defined here; left as text, as keepalived does`,
				`keepalived.conf:5:1: warning: $HOST is defined after its use at keepalived.conf:3:25, which keepalived leaves as text: it expands definitions where they are used`,
			},
			check: func(t *testing.T, cfg *Config, dir string) {
				wantEqual(t, "scripts", map[string][]string{"chk": {"/etc/keepalived/chk.sh", "$HOST"}}, scriptCommands(cfg))
			},
		},
	})
}

// TestGroupFWMarkFamily covers "fwmark N inet|inet6" in a
// virtual_server_group (keepalived's alloc_vsg_entry).
func TestGroupFWMarkFamily(t *testing.T) {
	group := func(entries string) [][2]string {
		return [][2]string{{"keepalived.conf", "virtual_server_group G {\n" + entries + "}\nvirtual_server group G {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.0.2 80 {\n  }\n}\n"}}
	}
	runCompatCases(t, []compatCase{
		{
			name:  "families given",
			files: group("  fwmark 3 inet6\n  fwmark 4 inet\n  10.0.0.1 80\n"),
			check: func(t *testing.T, cfg *Config, dir string) {
				var got []string
				for _, e := range cfg.ServerGroups[0].Entries[:2] {
					got = append(got, fmt.Sprintf("%d/%v", e.FWMark, e.FWMarkFamily))
				}
				wantEqual(t, "fwmarks", []string{"3/inet6", "4/inet"}, got)
			},
		},
		{
			name:  "unknown family",
			files: group("  fwmark 3 ipv6\n"),
			diags: []string{`keepalived.conf:2:12: error: virtual_server_group: fwmark 3 family "ipv6" is not inet or inet6`},
		},
		{
			name:  "both families and a fwmark of none",
			files: group("  fwmark 3 inet6\n  10.0.0.1 80\n  fwmark 5\n"),
			diags: []string{
				`keepalived.conf:1:1: error: virtual_server_group G: IPv4 and IPv6 entries with a fwmark of no family; write fwmark N inet or inet6`,
				`keepalived.conf:6:1: error: virtual_server group G: virtual_server_group "G" is not defined`,
			},
		},
	})
}
