package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckDataplane: only kernel IPVS has a connection sync daemon, so
// check --dataplane nft (or none) warns at lvs_sync_daemon's position;
// auto and ipvs do not.
func TestCheckDataplane(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "k.conf")
	src := "global_defs {\n  lvs_sync_daemon eth1 VI_1\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n"
	if err := os.WriteFile(conf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dataplane string
		code      int
		stderr    string // "" : nothing at all
	}{
		{"auto", 0, ""},
		{"ipvs", 0, ""},
		{"nft", 0, conf + ":2:3: warning: lvs_sync_daemon eth1: not started: the data plane is nft"},
		{"none", 0, conf + ":2:3: warning: lvs_sync_daemon eth1: not started: the data plane is none"},
		{"xdp", 0, conf + ":2:3: warning: lvs_sync_daemon eth1: not started: the data plane is xdp"},
		{"ebpf", 2, `--dataplane "ebpf": use auto, ipvs, nft, xdp or none`},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check", "-f", conf, "--dataplane", tt.dataplane}, &stdout, &stderr)
		if code != tt.code || (tt.stderr == "") != (stderr.Len() == 0) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("check --dataplane %s: exit %d, stderr:\n%s\nwant exit %d and %q", tt.dataplane, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}

// TestCheckCompatGolden is the whole report for testdata/compat.conf, which
// exercises findings of each kind. When a difference changes on
// purpose, the test prints the new report to copy into compat.golden.
func TestCheckCompatGolden(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--keepalived-compat", "-f", filepath.Join("testdata", "compat.conf")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr (warnings are the report's, errors there only): %s", stderr.String())
	}
	golden := filepath.Join("testdata", "compat.golden")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), stdout.String()); d != "" {
		t.Errorf("report differs from %s (-want +got):\n%s\nnew report:\n%s", golden, d, stdout.String())
	}
}

// TestCheckCompatJSON: --json gives the same findings as the text report.
func TestCheckCompatJSON(t *testing.T) {
	conf := filepath.Join("testdata", "compat.conf")
	var text, js, stderr bytes.Buffer
	if code := run([]string{"check", "--keepalived-compat", "-f", conf}, &text, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if code := run([]string{"check", "--keepalived-compat", "--json", "-f", conf}, &js, &stderr); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Findings                           []compatFinding `json:"findings"`
		Unsupported, Differs, Adds, Tandem int
	}
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, js.String())
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	if len(rep.Findings) != len(lines)-1 || rep.Unsupported+rep.Differs+rep.Adds+rep.Tandem != len(rep.Findings) {
		t.Fatalf("%d findings in JSON (%d+%d+%d+%d), %d lines of text", len(rep.Findings), rep.Unsupported, rep.Differs, rep.Adds, rep.Tandem, len(lines))
	}
	for i, f := range rep.Findings {
		if !strings.HasPrefix(lines[i], conf+":") || !strings.HasSuffix(lines[i], ": "+f.Keyword+": "+string(f.Kind)+": "+f.Difference) {
			t.Errorf("finding %d: JSON %+v, text %q", i, f, lines[i])
		}
	}
}

// TestCheckCompatCorpus: a seed configuration gives its known report, and
// every keepalived sample a report (with a count line) and no crash; the
// exit status is 1 only for files with errors.
func TestCheckCompatCorpus(t *testing.T) {
	seed := seedPath(t, "seed003-lvs-dr.conf")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--keepalived-compat", "-f", seed}, &stdout, &stderr); code != 0 {
		t.Fatalf("%s: exit %d: %s", seed, code, stderr.String())
	}
	for _, want := range []string{": vrrp_instance: adds: ", ": virtual_server: differs: data plane: kernel IPVS when the kernel has it, else nftables"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("%s: report lacks %q:\n%s", seed, want, stdout.String())
		}
	}
	samples, _ := filepath.Glob(filepath.Join(seedDir, "..", "keepalived-samples", "keepalived.conf*"))
	bad, _ := filepath.Glob(filepath.Join(seedDir, "bad-*.conf"))
	if len(samples) == 0 || len(bad) == 0 {
		t.Skip("shared corpus not found; skipping the samples")
	}
	for _, f := range append(samples, bad...) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check", "--keepalived-compat", "-f", f, "--config-id", "x"}, &stdout, &stderr)
		errs := strings.Contains(stderr.String(), ": error: ")
		if code != 0 && !(code == 1 && errs) || code == 0 && errs {
			t.Errorf("%s: exit %d, stderr:\n%s", f, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), " findings: ") {
			t.Errorf("%s: no report:\n%s", f, stdout.String())
		}
	}
}

// TestDefaultConfig: without -f, run and check read /etc/tandem's file,
// else /etc/keepalived's, and name both when neither exists (the paths
// are replaced by temporary ones here).
func TestDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	mine, theirs := filepath.Join(dir, "tandem.conf"), filepath.Join(dir, "keepalived.conf")
	saved := defaultConfigs
	defaultConfigs = []string{mine, theirs}
	t.Cleanup(func() { defaultConfigs = saved })
	// The help names the real paths, whatever a test sets.
	if !strings.Contains(defaultConfigHelp, "/etc/tandem/keepalived.conf when it exists, else\n/etc/keepalived/keepalived.conf;") {
		t.Errorf("help: %q", defaultConfigHelp)
	}
	check := func(want string, code int, stderr string) {
		t.Helper()
		got, err := configFile("")
		if (err == nil) != (want != "") || got != want {
			t.Errorf("configFile(\"\") = %q, %v; want %q", got, err, want)
		}
		var out, errb bytes.Buffer
		if c := run([]string{"check"}, &out, &errb); c != code || !strings.Contains(errb.String(), stderr) {
			t.Errorf("check without -f: exit %d, stderr %q; want %d and %q", c, errb.String(), code, stderr)
		}
	}
	check("", 2, "no -f FILE given and no configuration at "+mine+" or "+theirs)
	var out, errb bytes.Buffer
	if c := run([]string{"run"}, &out, &errb); c != 2 || !strings.Contains(errb.String(), "run: no -f FILE given and no configuration at "+mine+" or "+theirs) {
		t.Errorf("run without -f: exit %d, stderr %q", c, errb.String())
	}
	// keepalived's file alone: it is read (this one has an error, which
	// shows which file was read).
	if err := os.WriteFile(theirs, []byte("vrrp_instance {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(theirs, 1, theirs+":")
	// Tandem's own file wins over keepalived's.
	if err := os.WriteFile(mine, []byte("global_defs {\n  router_id A\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(mine, 0, "")
	// -f still wins over both.
	if got, err := configFile(theirs); got != theirs || err != nil {
		t.Errorf("configFile(%q) = %q, %v", theirs, got, err)
	}
}

// TestMigratingDoc keeps docs/migrating-from-keepalived.md true of the
// code: its sample report lines are the golden report's (a line ending in
// "..." is a prefix), and it names the default configuration paths.
func TestMigratingDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "migrating-from-keepalived.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "compat.golden"))
	if err != nil {
		t.Fatal(err)
	}
	report := strings.ReplaceAll(string(golden), "testdata/compat.conf:", "keepalived.conf:")
	n := 0
	for _, l := range strings.Split(string(doc), "\n") {
		l, ok := strings.CutPrefix(l, "    ")
		if !ok || !strings.HasPrefix(l, "keepalived.conf:") && !strings.HasSuffix(l, " Tandem-only") {
			continue
		}
		n++
		if p, cut := strings.CutSuffix(l, " ..."); cut && strings.Contains(report, "\n"+p) || strings.Contains(report, l+"\n") {
			continue
		}
		t.Errorf("the doc's report line is not in the report of testdata/compat.conf: %q", l)
	}
	if n < 4 {
		t.Errorf("%d report lines found in the doc", n)
	}
	for _, p := range defaultConfigs {
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("the doc does not name %s", p)
		}
	}
}

// TestCheckDataplaneMethods: check --dataplane names the virtual servers
// the data plane cannot program, and the data planes that can: ipvs
// forwards NAT, DR and TUN, nft NAT and DR, xdp DR and TUN (not gre), on
// a VIP.
func TestCheckDataplaneMethods(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "k.conf")
	src := `virtual_server 10.0.0.1 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.0.1.1 80 {
  }
}
virtual_server 10.0.0.1 81 {
  lb_algo rr
  lb_kind TUN
  protocol TCP
  real_server 10.0.1.1 81 {
  }
  real_server 10.0.1.2 81 {
    lvs_method TUN type gre
  }
}
virtual_server fwmark 7 {
  lb_algo rr
  lb_kind DR
  real_server 10.0.1.1 0 {
  }
}
virtual_server 10.0.0.1 82 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.1.1 82 {
  }
}
`
	if err := os.WriteFile(conf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dataplane string
		want      []string
	}{
		{"ipvs", nil},
		{"nft", []string{conf + ":8:1: warning: virtual_server 10.0.0.1:81: lb_kind TUN: the nft data plane does not forward it (TUN: ipvs, xdp); its service is refused"}},
		{"xdp", []string{
			conf + ":1:1: warning: virtual_server 10.0.0.1:80: lb_kind NAT: the xdp data plane does not forward it (NAT: ipvs, nft); its service is refused",
			conf + ":8:1: warning: virtual_server 10.0.0.1:81: real_server 10.0.1.2: lb_kind TUN type gre: the xdp data plane encapsulates in ipip and gue (ipvs); its service is refused",
			conf + ":18:1: warning: virtual_server fwmark 7: fwmark: the xdp data plane matches VIP, protocol and port, not firewall marks (ipvs, nft); its service is refused",
		}},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check", "-f", conf, "--dataplane", tt.dataplane}, &stdout, &stderr)
		var got []string
		for line := range strings.Lines(stderr.String()) {
			got = append(got, strings.TrimSuffix(line, "\n"))
		}
		if code != 0 || !cmp.Equal(got, tt.want) {
			t.Errorf("check --dataplane %s: exit %d, stderr (-want +got):\n%s", tt.dataplane, code, cmp.Diff(tt.want, got))
		}
	}
}

// TestCheckDataplaneSeeds: on the seed configurations, check --dataplane
// xdp says, with file:line:col, what XDP cannot forward that nftables
// can, the NAT seed's virtual server, and nothing else: the DR seeds run
// on it unchanged.
func TestCheckDataplaneSeeds(t *testing.T) {
	seeds, _ := filepath.Glob(filepath.Join(seedDir, "seed*.conf"))
	if len(seeds) == 0 {
		t.Skipf("no seed configurations in %s", seedDir)
	}
	nat := seedPath(t, "seed003-lvs-nat.conf")
	want := map[string][]string{
		nat: {nat + ":4:1: warning: virtual_server 192.168.142.147:80: lb_kind NAT: the xdp data plane does not forward it (NAT: ipvs, nft); its service is refused"},
	}
	for _, seed := range seeds {
		lines := map[string][]string{}
		for _, dp := range []string{"nft", "xdp"} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "-f", seed, "--dataplane", dp}, &stdout, &stderr); code != 0 {
				t.Fatalf("check --dataplane %s %s: exit %d: %s", dp, seed, code, stderr.String())
			}
			for line := range strings.Lines(stderr.String()) {
				lines[dp] = append(lines[dp], strings.TrimSuffix(line, "\n"))
			}
		}
		var onlyXDP []string
		for _, line := range lines["xdp"] {
			if !slices.Contains(lines["nft"], line) {
				onlyXDP = append(onlyXDP, line)
			}
		}
		if d := cmp.Diff(want[seed], onlyXDP); d != "" {
			t.Errorf("check --dataplane xdp %s, beyond nft's warnings (-want +got):\n%s", filepath.Base(seed), d)
		}
	}
}
