package config

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// roundTrip formats cfg, reads the text back and returns the second model
// with its diagnostics and the text.
func roundTrip(t fataler, cfg *Config) (*Config, Diagnostics, string) {
	t.Helper()
	var b bytes.Buffer
	if err := Format(&b, cfg); err != nil {
		t.Fatalf("Format: %v", err)
	}
	cfg2, diags := Parse("fmt.conf", b.Bytes(), Options{ConfigID: "x"})
	return cfg2, diags, b.String()
}

// TestRoundTripCorpus checks parse(fmt(parse(x))) == parse(x) on every
// corpus file, and that the canonical text is clean: no error and no
// warning (deprecated forms are written in their current spelling).
func TestRoundTripCorpus(t *testing.T) {
	for _, f := range goodCorpus(t) {
		t.Run(f.name, func(t *testing.T) {
			cfg, diags := Load(f.path, Options{ConfigID: f.configID})
			if diags.HasErrors() {
				t.Fatalf("errors:\n%s", strings.Join(errorsOf(diags), "\n"))
			}
			cfg2, diags2, text := roundTrip(t, cfg)
			for _, d := range diags2 {
				t.Errorf("formatted text: %s", d)
			}
			if diff := cmp.Diff(dump(t, cfg), dump(t, cfg2)); diff != "" {
				t.Errorf("parse(fmt(parse(x))) != parse(x) (-parse(x) +parse(fmt)):\n%s\nformatted text:\n%s", diff, text)
			}
		})
	}
}

// confGen writes random configuration text from keepalived's grammar. The
// text is meant to be valid: TestRoundTripProperty fails when more than a
// few percent of it is not, since that means the generator (or the parser)
// is wrong.
type confGen struct {
	t     *rapid.T
	b     strings.Builder
	depth int
	n     int // label counter, so that each draw has its own label

	version   int // global vrrp_version
	scripts   []string
	files     []string
	procs     []string
	instances []string
	nextVRID  int
	groups    []string
}

func (g *confGen) label(what string) string {
	g.n++
	return what + "#" + strconv.Itoa(g.n)
}

func (g *confGen) bool(what string) bool { return rapid.Bool().Draw(g.t, g.label(what)) }

func (g *confGen) intn(what string, lo, hi int) int {
	return rapid.IntRange(lo, hi).Draw(g.t, g.label(what))
}

func (g *confGen) pick(what string, opts ...string) string {
	return rapid.SampledFrom(opts).Draw(g.t, g.label(what))
}

// subset draws, for each of n optional items, whether to write it.
func (g *confGen) maybe(what string) bool { return g.intn(what, 0, 2) == 0 }

// method draws a forwarding method line of keyword kw, a TUN with any of
// keepalived's valid tunnel options.
func (g *confGen) method(kw string) []string {
	m := g.pick("method", "NAT", "DR", "TUN")
	out := []string{kw, m}
	if m != "TUN" {
		return out
	}
	switch g.pick("tuntype", "", "ipip", "gue", "gre") {
	case "ipip":
		out = append(out, "type", "ipip")
	case "gue":
		out = append(out, "type", "gue", "port", strconv.Itoa(g.intn("gueport", 1, 65535)))
		out = append(out, g.pick("guecsum", "", "nocsum", "csum", "remcsum"))
	case "gre":
		out = append(out, "type", "gre", g.pick("grecsum", "", "nocsum", "csum"))
	}
	return slices.DeleteFunc(out, func(w string) bool { return w == "" })
}

func (g *confGen) line(words ...string) {
	g.b.WriteString(strings.Repeat("  ", g.depth) + strings.Join(words, " ") + "\n")
}

func (g *confGen) open(words ...string) {
	g.line(append(words, "{")...)
	g.depth++
}

func (g *confGen) close() {
	g.depth--
	g.line("}")
}

// secs is a duration in keepalived's decimal seconds, lo..hi centiseconds.
func (g *confGen) secs(what string, lo, hi int) string {
	cs := g.intn(what, lo, hi)
	return Duration(int64(cs) * 10_000_000).Seconds()
}

func (g *confGen) ip4(what string) string {
	return fmt.Sprintf("10.%d.%d.%d", g.intn(what, 0, 3), g.intn(what, 0, 255), g.intn(what, 1, 254))
}

func (g *confGen) ip6(what string) string {
	return fmt.Sprintf("fd00:%x::%x", g.intn(what, 0, 3), g.intn(what, 1, 0xfffe))
}

// command writes a script line in one of keepalived's two forms: a quoted
// string (with shell-style quoting inside) or the bare words.
func (g *confGen) command(kw string) {
	prog := g.pick("prog", "/usr/bin/check", "/etc/keepalived/notify.sh", "/bin/true")
	words := []string{prog}
	for range g.intn("nargs", 0, 3) {
		words = append(words, g.pick("arg", "-x", "a b", "it's", "arg=1", "x\"y", "", "tab\there", "100%"))
	}
	plain := true
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t'\"") {
			plain = false
		}
	}
	if plain && g.bool("bare") {
		g.line(append([]string{kw}, words...)...)
		return
	}
	// Quoted form: single-quote each word, then escape for the lexer.
	q := make([]string, len(words))
	for i, w := range words {
		if g.bool("quoteword") || w == "" || strings.ContainsAny(w, " \t'\"") {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		q[i] = w
	}
	s := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(strings.Join(q, " "))
	g.line(kw, `"`+s+`"`)
}

func (g *confGen) global() {
	g.open("global_defs")
	type kw struct {
		name string
		fn   func()
	}
	kws := []kw{
		{"router_id", func() { g.line("router_id", g.pick("rid", "r1", "LVS_DEVEL", "lb-2")) }},
		{"notification_email", func() {
			g.open("notification_email")
			for range g.intn("emails", 1, 3) {
				g.line(g.pick("email", "root@localhost", "ops@example.com", "a@b"))
			}
			g.close()
		}},
		{"notification_email_from", func() { g.line("notification_email_from", "ka@example.com") }},
		{"smtp_server", func() {
			w := []string{"smtp_server", g.pick("smtp", "127.0.0.1", "mail.example.com", "::1")}
			if g.bool("smtpport") {
				w = append(w, strconv.Itoa(g.intn("port", 1, 65535)))
			}
			g.line(w...)
		}},
		{"smtp_helo_name", func() { g.line("smtp_helo_name", "lb1.example.com") }},
		{"smtp_connect_timeout", func() { g.line("smtp_connect_timeout", strconv.Itoa(g.intn("sct", 1, 120))) }},
		{"smtp_alert", func() { g.flag("smtp_alert") }},
		{"smtp_alert_vrrp", func() { g.flag("smtp_alert_vrrp") }},
		{"smtp_alert_checker", func() { g.flag("smtp_alert_checker") }},
		{"script_user", func() {
			w := []string{"script_user", "nobody"}
			if g.bool("group") {
				w = append(w, "nogroup")
			}
			g.line(w...)
		}},
		{"enable_script_security", func() { g.line("enable_script_security") }},
		{"default_interface", func() { g.line("default_interface", "eth9") }},
		{"dynamic_interfaces", func() { g.line("dynamic_interfaces") }},
		{"vrrp_mcast_group4", func() {
			g.line("vrrp_mcast_group4", fmt.Sprintf("224.0.%d.%d", g.intn("m", 0, 255), g.intn("m", 1, 255)))
		}},
		{"vrrp_mcast_group6", func() { g.line("vrrp_mcast_group6", fmt.Sprintf("ff02::%x", g.intn("m", 1, 0xffff))) }},
		{"vrrp_strict", func() { g.line("vrrp_strict") }},
		{"vrrp_skip_check_adv_addr", func() { g.flag("vrrp_skip_check_adv_addr") }},
		{"vrrp_check_unicast_src", func() { g.line("vrrp_check_unicast_src") }},
		{"vrrp_startup_delay", func() { g.line("vrrp_startup_delay", g.secs("sd", 1, 5999)) }},
		{"vrrp_garp_master_delay", func() { g.line("vrrp_garp_master_delay", strconv.Itoa(g.intn("gd", 0, 30))) }},
		{"vrrp_garp_master_repeat", func() { g.line("vrrp_garp_master_repeat", strconv.Itoa(g.intn("gr", 1, 20))) }},
		{"vrrp_garp_master_refresh", func() { g.line("vrrp_garp_master_refresh", strconv.Itoa(g.intn("gf", 0, 300))) }},
		{"vrrp_garp_master_refresh_repeat", func() { g.line("vrrp_garp_master_refresh_repeat", strconv.Itoa(g.intn("gfr", 1, 20))) }},
		{"vrrp_garp_lower_prio_delay", func() { g.line("vrrp_garp_lower_prio_delay", strconv.Itoa(g.intn("gld", 0, 30))) }},
		{"vrrp_garp_lower_prio_repeat", func() { g.line("vrrp_garp_lower_prio_repeat", strconv.Itoa(g.intn("glr", 0, 20))) }},
		{"vrrp_garp_interval", func() { g.line("vrrp_garp_interval", g.secs("gi", 1, 1000)) }},
		{"vrrp_gna_interval", func() { g.line("vrrp_gna_interval", g.secs("ni", 1, 1000)) }},
		{"vrrp_lower_prio_no_advert", func() { g.flag("vrrp_lower_prio_no_advert") }},
		{"vrrp_higher_prio_send_advert", func() { g.flag("vrrp_higher_prio_send_advert") }},
		{"vrrp_notify_priority_changes", func() { g.flag("vrrp_notify_priority_changes") }},
		{"v3_checksum_as_v2", func() { g.flag("v3_checksum_as_v2") }},
		{"lvs_flush", func() { g.line("lvs_flush") }},
		{"lvs_flush_onstop", func() {
			g.line(append([]string{g.pick("fos", "lvs_flush_onstop", "lvs_flush_on_stop")}, g.pick("fosv", "", "VS"))...)
		}},
		{"lvs_timeouts", func() {
			w := []string{"lvs_timeouts"}
			for _, k := range []string{"tcp", "tcpfin", "udp"} {
				if g.bool(k) || len(w) == 1 && k == "udp" {
					w = append(w, k, strconv.Itoa(g.intn(k, 1, 7200)))
				}
			}
			g.line(w...)
		}},
		{"checker_log_all_failures", func() { g.flag("checker_log_all_failures") }},
	}
	for _, k := range kws {
		if g.maybe(k.name) {
			k.fn()
		}
	}
	if g.version == 3 || g.bool("writeversion") {
		g.line("vrrp_version", strconv.Itoa(g.version))
	}
	g.close()
}

// flag writes a boolean keyword: alone, or with an explicit value.
func (g *confGen) flag(kw string) {
	w := []string{kw}
	if v := g.pick("flagval", "", "true", "false", "on", "off", "yes", "no"); v != "" {
		w = append(w, v)
	}
	g.line(w...)
}

func (g *confGen) weight(lo, hi int) []string {
	w := []string{"weight", strconv.Itoa(g.intn("weight", lo, hi))}
	if g.bool("reverse") {
		w = append(w, "reverse")
	}
	return w
}

func (g *confGen) trackers() {
	for i := range g.intn("scripts", 0, 2) {
		name := fmt.Sprintf("chk_%d", i)
		g.scripts = append(g.scripts, name)
		g.open("vrrp_script", name)
		g.command("script")
		if g.maybe("interval") {
			g.line("interval", g.secs("interval", 1, 1000))
		}
		if g.maybe("timeout") {
			g.line("timeout", g.secs("timeout", 1, 1000))
		}
		if g.maybe("weight") {
			g.line(g.weight(-253, 253)...)
		}
		if g.maybe("rise") {
			g.line("rise", strconv.Itoa(g.intn("rise", 1, 10)))
		}
		if g.maybe("fall") {
			g.line("fall", strconv.Itoa(g.intn("fall", 1, 10)))
		}
		if g.maybe("user") {
			g.line("user", "nobody")
		}
		if g.maybe("init_fail") {
			g.line("init_fail")
		}
		g.close()
	}
	for i := range g.intn("files", 0, 2) {
		name := fmt.Sprintf("tf_%d", i)
		g.files = append(g.files, name)
		g.open(g.pick("tfkw", "vrrp_track_file", "track_file"), name)
		g.line("file", fmt.Sprintf("/var/run/tf%d", i))
		if g.maybe("weight") {
			g.line(g.weight(-253, 253)...)
		}
		if g.maybe("init_file") {
			w := []string{"init_file"}
			if g.bool("v") {
				w = append(w, strconv.Itoa(g.intn("v", -254, 254)))
			}
			if g.bool("ow") {
				w = append(w, "overwrite")
			}
			g.line(w...)
		}
		g.close()
	}
	for i := range g.intn("procs", 0, 2) {
		name := fmt.Sprintf("tp_%d", i)
		g.procs = append(g.procs, name)
		g.open("vrrp_track_process", name)
		w := []string{"process", g.pick("proc", "nginx", "haproxy", "/usr/sbin/sshd")}
		for range g.intn("params", 0, 2) {
			w = append(w, g.pick("param", "-D", "--conf", "x"))
		}
		g.line(w...)
		if g.maybe("pm") {
			g.line("param_match", g.pick("pm", "initial", "partial"))
		}
		if g.maybe("weight") {
			g.line(g.weight(-253, 253)...)
		}
		q := g.intn("quorum", 1, 5)
		if g.maybe("quorum") {
			g.line("quorum", strconv.Itoa(q))
			if g.bool("qmax") {
				g.line("quorum_max", strconv.Itoa(q+g.intn("qm", 0, 5)))
			}
		}
		for _, k := range []string{"delay", "terminate_delay", "fork_delay"} {
			if g.maybe(k) {
				g.line(k, g.secs(k, 0, 1000))
			}
		}
		if g.maybe("full") {
			g.line("full_command")
		}
		g.close()
	}
}

// tracks writes track_* blocks referencing defined objects.
func (g *confGen) tracks() {
	if g.maybe("ti") {
		g.open("track_interface")
		for _, i := range []string{"eth1", "eth2"}[:g.intn("n", 1, 2)] {
			w := []string{i}
			if g.bool("w") {
				w = append(w, g.weight(-254, 254)...)
			}
			g.line(w...)
		}
		g.close()
	}
	for _, l := range []struct {
		kw    string
		names []string
	}{{"track_script", g.scripts}, {"track_file", g.files}, {"track_process", g.procs}} {
		if len(l.names) == 0 || !g.maybe(l.kw) {
			continue
		}
		g.open(l.kw)
		for _, n := range l.names[:g.intn("n", 1, len(l.names))] {
			w := []string{n}
			if g.bool("w") {
				w = append(w, g.weight(-254, 254)...)
			}
			g.line(w...)
		}
		g.close()
	}
}

func (g *confGen) notify() {
	for _, k := range []string{"notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"} {
		if g.maybe(k) {
			g.command(k)
		}
	}
}

func (g *confGen) routes(kw string, v6 bool) {
	g.open(kw)
	for range g.intn("routes", 1, 3) {
		var w []string
		if g.bool("type") {
			w = append(w, g.pick("rtype", "blackhole", "unreachable", "prohibit", "throw"))
		}
		dst := fmt.Sprintf("192.168.%d.0/24", g.intn("net", 0, 255))
		via := g.ip4("via")
		if v6 {
			dst, via = fmt.Sprintf("fd10:%x::/64", g.intn("net", 0, 0xffff)), g.ip6("via")
		}
		if g.bool("src") {
			if v6 {
				w = append(w, "src", g.ip6("src"))
			} else {
				w = append(w, "src", g.ip4("src"))
			}
		}
		if g.bool("to") {
			w = append(w, "to")
		}
		w = append(w, dst)
		fam := "inet"
		if v6 {
			fam = "inet6"
		}
		routed := len(w) == 0 || w[0] != "blackhole" && w[0] != "unreachable" && w[0] != "prohibit" && w[0] != "throw"
		nexthops := routed && g.intn("nh", 0, 3) == 0
		if routed && !nexthops && g.bool("via") {
			w = append(w, "via")
			if g.bool("viafam") {
				w = append(w, fam)
			}
			w = append(w, via)
		}
		if !v6 && g.bool("tos") {
			w = append(w, "tos", g.pick("rtos", "0x10", "8"))
		}
		if g.bool("dev") {
			w = append(w, "dev", "eth0")
		}
		if g.bool("scope") {
			w = append(w, "scope", g.pick("scope", "global", "link", "host", "200", "0xfd"))
		}
		if g.bool("table") {
			w = append(w, "table", g.pick("table", "100", "main", "local", "default", "0x100", "4000000000"))
		}
		if g.bool("metric") {
			w = append(w, g.pick("metkw", "metric", "preference", "priority"), strconv.Itoa(g.intn("metric", 0, 1000)))
		}
		if g.bool("proto") {
			w = append(w, "proto", g.pick("proto", "static", "boot", "bird", "42", "0xff"))
		}
		if g.bool("onlink") {
			w = append(w, "onlink")
		}
		if g.bool("nt") {
			w = append(w, "no_track")
		}
		for i := range g.intn("nhs", 1, 3) {
			if !nexthops {
				break
			}
			w = append(w, "nexthop", "via", g.ip4(fmt.Sprint("nhvia", i)))
			if v6 {
				w[len(w)-1] = g.ip6(fmt.Sprint("nhvia", i))
			}
			if g.bool("nhdev") {
				w = append(w, "dev", "eth1")
			}
			if g.bool("nhw") {
				w = append(w, "weight", strconv.Itoa(g.intn("nhw", 1, 256)))
			}
			if g.bool("nhonlink") {
				w = append(w, "onlink")
			}
		}
		g.line(w...)
	}
	g.close()
}

func (g *confGen) rules(kw string, v6 bool) {
	g.open(kw)
	for range g.intn("rules", 1, 3) {
		var w []string
		if g.bool("not") {
			w = append(w, "not")
		}
		pfx := func() string {
			if v6 {
				return fmt.Sprintf("fd20:%x::/48", g.intn("p", 0, 0xffff))
			}
			return fmt.Sprintf("172.16.%d.0/24", g.intn("p", 0, 255))
		}
		if g.bool("from") {
			w = append(w, "from", pfx())
		}
		if g.bool("to") {
			w = append(w, "to", pfx())
		}
		w = append(w, g.pick("tkw", "table", "lookup"), g.pick("table", strconv.Itoa(g.intn("tnum", 1, 250)), "main", "70000"))
		if g.bool("prio") {
			w = append(w, g.pick("pkw", "priority", "preference", "pref"), strconv.Itoa(g.intn("prio", 0, 32765)))
		}
		if g.bool("iif") {
			w = append(w, "iif", "eth0")
		}
		if g.bool("oif") {
			w = append(w, "oif", "eth1")
		}
		if g.bool("fwmark") {
			w = append(w, "fwmark", g.pick("fwm", strconv.Itoa(g.intn("fwmn", 1, 100)), "0x10", "0x10/0xff", "0/0xf0", "017"))
		}
		if g.bool("tos") {
			tos := []string{"0x10", "8", "0x1c"}
			if v6 && g.bool("from") { // an IPv6 rule (with an IPv6 from) takes any DSCP
				w = append(w, "from", pfx())
				tos = append(tos, "0x28", "0xb8")
			}
			w = append(w, g.pick("toskw", "tos", "dsfield"), g.pick("tos", tos...))
		}
		if g.bool("nt") {
			w = append(w, "no_track")
		}
		g.line(w...)
	}
	g.close()
}

func (g *confGen) instance(i int) {
	name := fmt.Sprintf("VI_%d", i)
	g.instances = append(g.instances, name)
	version := g.version
	explicit := g.bool("explicitversion")
	if explicit {
		version = g.intn("version", 2, 3)
	}
	v6 := version == 3 && g.intn("v6", 0, 2) == 0
	g.nextVRID++
	g.open("vrrp_instance", name)
	g.line("state", g.pick("state", "MASTER", "BACKUP"))
	g.line("interface", "eth0")
	g.line("virtual_router_id", strconv.Itoa(g.nextVRID))
	if explicit {
		g.line("version", strconv.Itoa(version))
	}
	if g.maybe("priority") {
		g.line("priority", strconv.Itoa(g.intn("priority", 1, 254)))
	}
	if g.maybe("advert") {
		if version == 2 {
			g.line("advert_int", strconv.Itoa(g.intn("adv", 1, 255)))
		} else {
			g.line("advert_int", g.secs("adv", 1, 4095))
		}
	}
	addr := func(what string) string {
		if v6 {
			return g.ip6(what)
		}
		return g.ip4(what)
	}
	unicast := g.maybe("unicast")
	if unicast {
		g.line("unicast_src_ip", addr("src"))
		g.open("unicast_peer")
		for range g.intn("peers", 1, 3) {
			w := []string{addr("peer")}
			if g.bool("minttl") {
				w = append(w, "min_ttl", strconv.Itoa(g.intn("ttl", 0, 255)))
			}
			if g.bool("maxttl") {
				w = append(w, "max_ttl", strconv.Itoa(g.intn("ttl", 0, 255)))
			}
			g.line(w...)
		}
		g.close()
		if g.bool("uttl") {
			g.line("unicast_ttl", strconv.Itoa(g.intn("uttl", 1, 255)))
		}
	} else if g.maybe("mcast") {
		g.line("mcast_src_ip", addr("msrc"))
	}
	g.tracks()
	for _, k := range []string{"nopreempt", "preempt", "dont_track_primary", "promote_secondaries", "no_accept"} {
		if g.intn(k, 0, 4) == 0 {
			g.line(k)
		}
	}
	if g.maybe("pd") {
		g.line("preempt_delay", g.secs("pd", 0, 360000))
	}
	if g.maybe("hd") {
		g.line("handover_drain", g.secs("hd", 0, 6000))
	}
	for _, k := range []string{"strict_mode", "skip_check_adv_addr", "check_unicast_src", "lower_prio_no_advert", "higher_prio_send_advert", "notify_priority_changes", "smtp_alert", "v3_checksum_as_v2"} {
		if k == "strict_mode" && unicast {
			// Strict mode refuses unicast peers (vrrp_strict).
			g.line(k, "off")
		} else if g.intn(k, 0, 4) == 0 {
			g.flag(k)
		}
	}
	g.notify()
	if version == 2 && g.maybe("auth") {
		g.open("authentication")
		g.line("auth_type", g.pick("at", "PASS", "AH"))
		g.line("auth_pass", g.pick("ap", "1111", "secret12", "x"))
		g.close()
	}
	for _, kw := range []string{"virtual_ipaddress", "virtual_ipaddress_excluded"} {
		if kw == "virtual_ipaddress_excluded" && !g.maybe("excl") {
			continue
		}
		g.open(kw)
		for range g.intn("vips", 1, 3) {
			w := []string{addr("vip")}
			if g.bool("len") {
				if v6 {
					w[0] += "/" + strconv.Itoa(g.intn("len", 48, 128))
				} else {
					w[0] += "/" + strconv.Itoa(g.intn("len", 8, 32))
				}
			}
			if !v6 && g.bool("brd") {
				w = append(w, g.pick("brdkw", "brd", "broadcast"), g.pick("brd", "+", "-", "10.255.255.255"))
			}
			dev := "eth0"
			if g.bool("dev") {
				dev = g.pick("dev", "eth0", "eth1")
				w = append(w, "dev", dev)
			}
			if g.bool("scope") {
				w = append(w, "scope", g.pick("scope", "global", "link", "host", "site"))
			}
			if !v6 && g.bool("label") {
				w = append(w, "label", dev+":"+strconv.Itoa(g.intn("label", 0, 99)))
			}
			for _, f := range []string{"home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track"} {
				if g.intn(f, 0, 6) == 0 {
					w = append(w, f)
				}
			}
			if g.bool("lft") {
				w = append(w, "preferred_lft", g.pick("lft", "0", "forever", "3600"))
			}
			g.line(w...)
		}
		g.close()
	}
	if g.maybe("routes") {
		g.routes("virtual_routes", v6)
	}
	if g.maybe("rules") {
		g.rules("virtual_rules", v6)
	}
	for _, k := range []string{"garp_master_delay", "garp_master_refresh", "garp_lower_prio_delay"} {
		if g.intn(k, 0, 4) == 0 {
			g.line(k, strconv.Itoa(g.intn(k, 0, 30)))
		}
	}
	for _, k := range []string{"garp_master_repeat", "garp_master_refresh_repeat", "garp_lower_prio_repeat"} {
		if g.intn(k, 0, 4) == 0 {
			g.line(k, strconv.Itoa(g.intn(k, 1, 20)))
		}
	}
	g.close()
}

func (g *confGen) syncGroups() {
	free := append([]string(nil), g.instances...)
	for i := 0; len(free) > 0 && g.maybe("sg"); i++ {
		n := g.intn("members", 1, len(free))
		g.open("vrrp_sync_group", fmt.Sprintf("SG_%d", i))
		g.open("group")
		for _, m := range free[:n] {
			g.line(m)
		}
		g.close()
		free = free[n:]
		g.tracks()
		g.notify()
		if g.maybe("smtp") {
			g.flag("smtp_alert")
		}
		for _, k := range []string{"global_tracking", "sync_group_tracking_weight"} {
			if g.maybe(k) {
				g.line(k)
			}
		}
		if g.maybe("npc") {
			g.flag("notify_priority_changes")
		}
		g.close()
	}
}

func (g *confGen) serverGroups() {
	for i := range g.intn("vsg", 0, 2) {
		name := fmt.Sprintf("VSG_%d", i)
		g.groups = append(g.groups, name)
		g.open("virtual_server_group", name)
		for j := range g.intn("entries", 1, 3) {
			switch g.intn("kind", 0, 2) {
			case 0:
				g.line(fmt.Sprintf("10.9.%d.%d", i, j+1), strconv.Itoa(g.intn("port", 1, 65535)))
			case 1:
				g.line(fmt.Sprintf("10.9.%d.%d-%d", i, 10*j+1, 10*j+g.intn("last", 1, 9)), strconv.Itoa(g.intn("port", 1, 65535)))
			default:
				g.line("fwmark", strconv.Itoa(100*i+j+1))
			}
		}
		g.close()
	}
}

// timing writes the timing keywords; minRetry is keepalived's least retry
// there (1 on virtual and real servers, 0 in checkers).
func (g *confGen) timing(minRetry int) {
	if g.intn("dl", 0, 3) == 0 {
		g.line("delay_loop", g.secs("dl", 1, 6000))
	}
	if g.intn("ct", 0, 3) == 0 {
		g.line("connect_timeout", g.secs("ct", 1, 1000))
	}
	if g.intn("retry", 0, 3) == 0 {
		g.line(g.pick("retrykw", "retry", "retry", "nb_get_retry"), strconv.Itoa(g.intn("retry", minRetry, 10)))
	}
	if g.intn("dbr", 0, 3) == 0 {
		g.line("delay_before_retry", g.secs("dbr", 0, 1000))
	}
	if g.intn("warmup", 0, 4) == 0 {
		g.line("warmup", g.secs("warmup", 0, 1000))
	}
	if g.intn("alpha", 0, 4) == 0 {
		g.flag("alpha")
	}
}

func (g *confGen) checker() {
	typ := rapid.SampledFrom([]CheckType{CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckSMTP, CheckDNS, CheckUDP, CheckPing, CheckFile}).Draw(g.t, g.label("checker"))
	if typ == CheckFile && len(g.files) == 0 {
		typ = CheckTCP
	}
	g.open(typ.String())
	if typ != CheckMisc && typ != CheckFile {
		if g.maybe("cip") {
			g.line("connect_ip", g.ip4("cip"))
		}
		if g.maybe("cport") {
			g.line("connect_port", strconv.Itoa(g.intn("cport", 1, 65535)))
		}
		if g.maybe("bindto") {
			g.line("bindto", g.ip4("bind"))
		}
		if g.maybe("bport") {
			g.line("bind_port", strconv.Itoa(g.intn("bport", 1, 65535)))
		}
		if g.maybe("bif") {
			g.line("bind_if", "eth0")
		}
		if g.maybe("fwmark") {
			g.line("fwmark", strconv.Itoa(g.intn("fwmark", 1, 1000)))
		}
	}
	g.timing(0)
	if g.maybe("laf") {
		g.flag("log_all_failures")
	}
	switch typ {
	case CheckHTTP, CheckSSL:
		if g.maybe("proto") {
			g.line("http_protocol", g.pick("hp", "1.0", "1.1", "1.0C", "1.0c"))
		}
		if g.maybe("vh") {
			g.line("virtualhost", "www.example.com")
		}
		if g.maybe("sni") {
			g.flag("enable_sni")
		}
		if g.maybe("sniname") {
			g.line("sni_name", "sni.example.com")
		}
		if typ == CheckSSL && g.maybe("tls") {
			g.flag("tls_compliant")
		}
		for range g.intn("urls", 1, 2) {
			g.open("url")
			g.line("path", g.pick("path", "/", "/health", "/a?b=c"))
			if g.maybe("digest") {
				g.line("digest", g.pick("digest", "9b3a0c85a887a256d6939da88aabd8cd", "D41D8CD98F00B204E9800998ECF8427E"))
			}
			if g.maybe("sc") {
				w := []string{"status_code"}
				for range g.intn("codes", 1, 3) {
					lo := g.intn("lo", 100, 599)
					if g.bool("range") {
						w = append(w, fmt.Sprintf("%d-%d", lo, lo+g.intn("hi", 0, 99)))
					} else {
						w = append(w, strconv.Itoa(lo))
					}
				}
				g.line(w...)
			}
			if g.maybe("uvh") {
				g.line("virtualhost", "u.example.com")
			}
			if typ == CheckSSL && g.maybe("utls") {
				g.line("tls_compliant")
			}
			g.close()
		}
	case CheckMisc:
		g.command("misc_path")
		if g.maybe("mt") {
			g.line("misc_timeout", g.secs("mt", 1, 6000))
		}
		if g.maybe("md") {
			g.line("misc_dynamic")
		}
		if g.maybe("mu") {
			g.line("user", "nobody", "nogroup")
		}
	case CheckSMTP:
		if g.maybe("helo") {
			g.line("helo_name", "probe.example.com")
		}
	case CheckDNS:
		if g.maybe("type") {
			g.line("type", g.pick("dt", "A", "AAAA", "MX", "soa", "TXT"))
		}
		if g.maybe("name") {
			g.line("name", g.pick("dn", "example.com", "."))
		}
	case CheckUDP:
		if g.maybe("payload") {
			g.line("payload", g.pick("pl", "00ff", "68656c6c6f"))
		}
		if g.maybe("rr") {
			w := []string{"require_reply"}
			if g.bool("rrv") {
				w = append(w, "6f6b")
			}
			g.line(w...)
		}
		lo := g.intn("min", 0, 100)
		if g.maybe("min") {
			g.line("min_reply_length", strconv.Itoa(lo))
		}
		if g.maybe("max") {
			g.line("max_reply_length", strconv.Itoa(lo+g.intn("max", 0, 1000)))
		}
	case CheckFile:
		g.line("track_file", g.files[g.intn("f", 0, len(g.files)-1)])
		if g.maybe("fw") {
			g.line(g.weight(-253, 253)...)
		}
	}
	g.close()
}

func (g *confGen) virtualServer(i int) {
	var head []string
	kind := g.intn("vskind", 0, 3)
	if kind == 3 && len(g.groups) == 0 {
		kind = 0
	}
	v6 := false
	switch kind {
	case 0, 1:
		v6 = kind == 1
		ip := fmt.Sprintf("10.8.%d.%d", i/250, i%250+1)
		if v6 {
			ip = fmt.Sprintf("fd08::%x", i+1)
		}
		head = []string{ip, strconv.Itoa(g.intn("port", 1, 65535))}
	case 2:
		head = []string{"fwmark", strconv.Itoa(i + 1)}
	default:
		// Each group used at most once per protocol: one virtual server per group.
		name := g.groups[0]
		g.groups = g.groups[1:]
		head = []string{"group", name}
	}
	g.open(append([]string{"virtual_server"}, head...)...)
	if kind == 2 && g.maybe("fam") {
		g.line("ip_family", g.pick("fam", "inet", "inet6"))
		// Real servers of a fwmark service are IPv4 below; inet6 with
		// IPv4 real servers is still accepted (family is not cross-checked).
	}
	proto := "TCP"
	if kind < 2 {
		proto = g.pick("proto", "TCP", "UDP", "SCTP")
		g.line("protocol", proto)
	}
	sched := g.pick("sched", schedulers.words()...)
	g.line(g.pick("algokw", "lb_algo", "lvs_sched"), sched)
	switch sched {
	case "sh":
		for _, f := range []string{"sh-port", "sh-fallback"} {
			if g.bool(f) {
				g.line(f)
			}
		}
	case "mh":
		for _, f := range []string{"mh-port", "mh-fallback"} {
			if g.bool(f) {
				g.line(f)
			}
		}
	}
	for _, f := range []string{"hashed", "flag-1", "flag-2", "flag-3"} {
		if g.intn(f, 0, 6) == 0 {
			g.line(f)
		}
	}
	if proto == "UDP" && g.maybe("ops") {
		g.line("ops")
	}
	g.line(g.method(g.pick("kindkw", "lb_kind", "lvs_method"))...)
	if g.maybe("persist") {
		if g.bool("pval") {
			g.line("persistence_timeout", strconv.Itoa(g.intn("pt", 1, 86400)))
		} else {
			g.line("persistence_timeout")
		}
		if !v6 && kind != 2 && g.bool("gran") {
			g.line("persistence_granularity", g.pick("gran", "255.255.255.0", "255.255.0.0", "255.255.255.255"))
		}
		if v6 && g.bool("gran") {
			g.line("persistence_granularity", strconv.Itoa(g.intn("gran", 1, 128)))
		}
	}
	if g.maybe("pe") {
		g.line("persistence_engine", "sip")
	}
	if kind != 2 && g.maybe("has") {
		g.flag("ha_suspend")
	}
	if g.maybe("vh") {
		g.line("virtualhost", "vs.example.com")
	}
	if g.maybe("omega") {
		g.flag("omega")
	}
	q := g.intn("quorum", 1, 5)
	if g.maybe("quorum") {
		g.line("quorum", strconv.Itoa(q))
		if g.bool("hyst") {
			g.line("hysteresis", strconv.Itoa(g.intn("hyst", 0, q-1)))
		}
	}
	if g.maybe("qup") {
		g.command("quorum_up")
	}
	if g.maybe("qdown") {
		g.command("quorum_down")
	}
	if g.maybe("iof") {
		g.flag("inhibit_on_failure")
	}
	if g.maybe("smtp") {
		g.flag("smtp_alert")
	}
	if g.maybe("weight") {
		g.line("weight", strconv.Itoa(g.intn("vsw", 1, 65535)))
	}
	g.timing(1)
	if g.maybe("sorry") {
		ip := g.ip4("sorry")
		if v6 {
			ip = g.ip6("sorry")
		}
		w := []string{"sorry_server", ip}
		if g.bool("sp") {
			w = append(w, strconv.Itoa(g.intn("sp", 1, 65535)))
		}
		g.line(w...)
		if g.bool("ssi") {
			g.flag("sorry_server_inhibit")
		}
		if g.bool("ssm") {
			g.line(g.method("sorry_server_lvs_method")...)
		}
	}
	for j := range g.intn("rs", 0, 3) {
		ip := fmt.Sprintf("10.7.%d.%d", i%250, j+1)
		if v6 {
			ip = fmt.Sprintf("fd07:%x::%x", i, j+1)
		}
		w := []string{"real_server", ip}
		if g.bool("rsport") {
			w = append(w, strconv.Itoa(g.intn("rsport", 1, 65535)))
		}
		g.open(w...)
		if g.maybe("w") {
			g.line("weight", strconv.Itoa(g.intn("w", 0, 65535)))
		}
		if g.maybe("m") {
			g.line(g.method("lvs_method")...)
		}
		ut := g.intn("ut", 0, 1000)
		if g.maybe("ut") {
			g.line("uthreshold", strconv.Itoa(ut))
		}
		if g.maybe("lt") {
			g.line("lthreshold", strconv.Itoa(g.intn("lt", 0, ut)))
		}
		if g.maybe("iof") {
			g.flag("inhibit_on_failure")
		}
		if g.maybe("nu") {
			g.command("notify_up")
		}
		if g.maybe("nd") {
			g.command("notify_down")
		}
		if g.maybe("smtp") {
			g.flag("smtp_alert")
		}
		if g.maybe("rvh") {
			g.line("virtualhost", "rs.example.com")
		}
		g.timing(1)
		for range g.intn("checkers", 0, 2) {
			g.checker()
		}
		g.close()
	}
	g.close()
}

// generate writes a whole configuration.
func (g *confGen) generate() string {
	g.version = g.intn("vrrp_version", 2, 3)
	globalLast := g.bool("globallast")
	var global string
	{
		saved := g.b
		g.b = strings.Builder{}
		g.global()
		global = g.b.String()
		g.b = saved
	}
	if !globalLast {
		g.b.WriteString(global)
	}
	g.trackers()
	if g.maybe("static") {
		g.open("static_ipaddress")
		for range g.intn("n", 1, 2) {
			g.line(g.ip4("sip")+"/24", "dev", "eth1")
		}
		g.close()
	}
	if g.maybe("sroutes") {
		g.routes("static_routes", false)
	}
	if g.maybe("srules") {
		g.rules("static_rules", false)
	}
	for i := range g.intn("instances", 0, 4) {
		g.instance(i)
	}
	g.syncGroups()
	g.serverGroups()
	for i := range g.intn("vs", 0, 4) {
		g.virtualServer(i)
	}
	if globalLast {
		g.b.WriteString(global)
	}
	return g.b.String()
}

// TestRoundTripProperty generates random valid configurations and checks
// parse(fmt(parse(x))) == parse(x) through the JSON dump.
func TestRoundTripProperty(t *testing.T) {
	var total, bad int
	var firstBad string
	rapid.Check(t, func(rt *rapid.T) {
		g := &confGen{t: rt}
		src := g.generate()
		total++
		cfg, diags := Parse("gen.conf", []byte(src), Options{ConfigID: "x"})
		if diags.HasErrors() {
			bad++
			if firstBad == "" {
				firstBad = strings.Join(errorsOf(diags), "\n") + "\n" + src
			}
			return
		}
		cfg2, diags2, text := roundTrip(rt, cfg)
		if diags2.HasErrors() {
			rt.Fatalf("formatted text has errors:\n%s\ninput:\n%s\nformatted:\n%s", strings.Join(errorsOf(diags2), "\n"), src, text)
		}
		if diff := cmp.Diff(dump(rt, cfg), dump(rt, cfg2)); diff != "" {
			rt.Fatalf("round trip differs (-parse(x) +parse(fmt)):\n%s\ninput:\n%s\nformatted:\n%s", diff, src, text)
		}
	})
	if total > 0 && bad*20 > total {
		t.Errorf("%d of %d generated configurations have errors (more than 5%%: the generator is wrong); first:\n%s", bad, total, firstBad)
	}
	t.Logf("%d configurations, %d with errors", total, bad)
}

// TestDurationSeconds checks the exact decimal form Format writes:
// float64 formatting once gave "3.7199999999999998" for 3.72 s, which the
// parser (microsecond precision) rejects.
func TestDurationSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"0", "0"}, {"1", "1"}, {"90", "90"}, {"0.5", "0.5"}, {"3.72", "3.72"},
		{"40.95", "40.95"}, {"0.000001", "0.000001"}, {"86399.999999", "86399.999999"},
	}
	for _, tt := range tests {
		d, err := parseSeconds(tt.in)
		if err != nil {
			t.Fatalf("parseSeconds(%q): %v", tt.in, err)
		}
		if got := Duration(d).Seconds(); got != tt.want {
			t.Errorf("Duration(%q).Seconds() = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Every centisecond value round-trips.
	for cs := range 100000 {
		d := Duration(int64(cs) * 10_000_000)
		back, err := parseSeconds(d.Seconds())
		if err != nil || Duration(back) != d {
			t.Fatalf("%d cs: %q read back as %v, %v", cs, d.Seconds(), back, err)
		}
	}
}
