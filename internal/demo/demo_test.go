package demo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
)

func TestConfigArgs(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    [2]string
		wantErr bool
	}{
		{args: nil},
		{args: []string{"m.conf", "b.conf"}, want: [2]string{"m.conf", "b.conf"}},
		{args: []string{"m.conf"}, wantErr: true},
		{args: []string{"a", "b", "c"}, wantErr: true},
	} {
		got, err := ConfigArgs(tt.args)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ConfigArgs(%q) = %q, %v; want %q, error %t", tt.args, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNeedsCheck(t *testing.T) {
	noIP := errors.New("lab: iproute2's ip not found")
	for _, tt := range []struct {
		name      string
		n         needs
		web       string
		wantNginx string
		wantErr   string // "" means no error
	}{
		{name: "all there", n: needs{nginx: "/usr/sbin/nginx"}, web: WebAuto, wantNginx: "/usr/sbin/nginx"},
		{name: "auto without nginx", n: needs{}, web: WebAuto},
		{name: "builtin ignores nginx", n: needs{nginx: "/usr/sbin/nginx"}, web: WebBuiltin},
		{name: "nginx required", n: needs{}, web: WebNginx, wantErr: "needs nginx (apt-get install nginx-light, or --web builtin)"},
		{name: "not root", n: needs{euid: 1000}, web: WebAuto, wantErr: "needs root (network namespaces need it: run with sudo)"},
		{
			name: "everything missing, one line", n: needs{euid: 1000, ipErr: noIP}, web: WebNginx,
			wantErr: "needs root (network namespaces need it: run with sudo), iproute2's ip (apt-get install iproute2), nginx (apt-get install nginx-light, or --web builtin)",
		},
		{name: "bad --web", n: needs{}, web: "apache", wantErr: `--web "apache": want auto, nginx or builtin`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nginx, err := tt.n.check(tt.web)
			if tt.wantErr == "" {
				if err != nil || nginx != tt.wantNginx {
					t.Errorf("check(%q) = %q, %v; want %q, nil", tt.web, nginx, err, tt.wantNginx)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("check(%q) error = %v; want %q", tt.web, err, tt.wantErr)
			}
		})
	}
}

// The built-in examples are valid configurations, written where the
// daemons read them; given files are used where they are.
func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	paths, names, err := configFiles([2]string{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{exampleMaster, exampleBackup} {
		if paths[i] != filepath.Join(dir, want) || !strings.HasPrefix(names[i], "examples/"+want) {
			t.Errorf("example %d: path %s, name %s", i, paths[i], names[i])
		}
		cfg, diags := config.Load(paths[i], config.Options{})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", want, diags)
		}
		if len(cfg.Instances) != 1 || len(cfg.VirtualServers) != 1 || len(cfg.VirtualServers[0].RealServers) != 2 {
			t.Errorf("%s: %d instances, %d virtual servers; want seed000's 1 and 1 with 2 real servers", want, len(cfg.Instances), len(cfg.VirtualServers))
		}
	}

	given := [2]string{paths[0], "relative.conf"}
	t.Chdir(dir)
	if err := os.WriteFile("relative.conf", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, names, err := configFiles(given, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := [2]string{paths[0], filepath.Join(dir, "relative.conf")}; got != want || names != given {
		t.Errorf("configFiles(%q) = %q, %q; want %q, %q", given, got, names, want, given)
	}
	if _, _, err := configFiles([2]string{"missing.conf", "relative.conf"}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("a missing file: error %v, want one naming it", err)
	}
}

func TestExecArgs(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		node     string
		argv     []string
		wantsErr bool
	}{
		{args: []string{"dir1", "--", "tandem", "status", "--json"}, node: "dir1", argv: []string{"tandem", "status", "--json"}},
		{args: []string{"client", "ip", "-br", "addr"}, node: "client", argv: []string{"ip", "-br", "addr"}},
		{args: []string{"dir1", "--"}, wantsErr: true},
		{args: []string{"dir1"}, wantsErr: true},
		{args: []string{"--", "ip"}, wantsErr: true},
	} {
		node, argv, err := ExecArgs(tt.args)
		if (err != nil) != tt.wantsErr || node != tt.node || !cmp.Equal(argv, tt.argv) {
			t.Errorf("ExecArgs(%q) = %q, %q, %v; want %q, %q, error %t", tt.args, node, argv, err, tt.node, tt.argv, tt.wantsErr)
		}
	}
}

func TestParseStat(t *testing.T) {
	// A command name with a space and a ')' (proc(5): it is the last
	// ')' that ends it).
	line := "4242 (we ird) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"
	start, state, err := parseStat(line)
	if err != nil || start != 987654 || state != 'S' {
		t.Errorf("parseStat = %d, %c, %v; want 987654, S, nil", start, state, err)
	}
	for _, bad := range []string{"", "4242 (x", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 y"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
	// This process, read for real.
	if _, state, err := procStat(os.Getpid()); err != nil || state != 'R' && state != 'S' {
		t.Errorf("procStat(self) = state %c, %v", state, err)
	}
}

func TestProcStateName(t *testing.T) {
	for argv, want := range map[string]string{
		"/run/tandem/lab/bin/tandem run -f x.conf":                "tandem run",
		"/run/tandem/lab/bin/tandem lab serve --name rs1":         "tandem lab serve",
		"/usr/sbin/nginx -c /run/tandem/lab/rs1/nginx/nginx.conf": "nginx",
	} {
		if got := (ProcState{Argv: strings.Fields(argv)}).name(); got != want {
			t.Errorf("name of %q = %q, want %q", argv, got, want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	results := []Result{
		{Name: "health check", Pass: true, Took: 15200 * time.Millisecond, Detail: "rs1 out in 9.2s, client on rs2, back in 6.0s"},
		{Name: "failover", Pass: false, Took: 10 * time.Second, Detail: "dir2 not MASTER after the crash"},
		{Name: "recovery", Pass: true, Took: 1049 * time.Millisecond, Detail: "dir1 MASTER in 1.0s"},
	}
	var b bytes.Buffer
	if err := writeSummary(&b, results, 26*time.Second); err != nil {
		t.Fatal(err)
	}
	want := `TEST          RESULT  TIME   DETAIL
health check  PASS    15.2s  rs1 out in 9.2s, client on rs2, back in 6.0s
failover      FAIL    10.0s  dir2 not MASTER after the crash
recovery      PASS    1.0s   dir1 MASTER in 1.0s
FAIL: 2 of 3 tests passed in 26.0s
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if AllPassed(results) {
		t.Error("AllPassed with a failed test")
	}
	results[1].Pass = true
	if !AllPassed(results) {
		t.Error("not AllPassed with every test passed")
	}
	if AllPassed(nil) {
		t.Error("AllPassed with no results: a demo that ran no test did not pass")
	}
}

func TestNginxConf(t *testing.T) {
	c := nginxConf("/run/x/rs1/nginx", "rs1")
	for _, want := range []string{"daemon off;", "pid /run/x/rs1/nginx/nginx.pid;", "listen 80;", `return 200 "rs1\n";`} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx.conf lacks %q:\n%s", want, c)
		}
	}
}
