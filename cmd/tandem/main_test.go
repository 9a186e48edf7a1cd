package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
)

const seedDir = "../../../shared/corpus/seed-configs"

func seedPath(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(seedDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared corpus not found (%v); skipping", err)
	}
	return p
}

func TestRunExitCodes(t *testing.T) {
	good := seedPath(t, "seed002-lvs-dr-http-master.conf")
	bad := seedPath(t, "bad-seed002-mcast-typo.conf")
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring; "" means no check
		stderr     string // substring; "" means no check
		noStdout   bool
		noErrLines bool // stderr has no error line
	}{
		{name: "check good seed", args: []string{"check", "-f", good}, code: 0, noStdout: true, noErrLines: true},
		{name: "check long flag", args: []string{"check", "--file", good}, code: 0, noStdout: true},
		{name: "check bad seed", args: []string{"check", "-f", bad}, code: 1, stderr: "bad-seed002-mcast-typo.conf:13:", noStdout: true},
		{name: "check bad seed with dump prints no model", args: []string{"check", "--dump", "-f", bad}, code: 1, noStdout: true},
		{name: "check unknown flag", args: []string{"check", "--frobnicate", "-f", good}, code: 2, stderr: "unknown flag"},
		{name: "check missing file", args: []string{"check", "-f", filepath.Join(t.TempDir(), "none.conf")}, code: 1},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2},
		{name: "version", args: []string{"version"}, code: 0, stdout: "tandem "},
		{name: "fmt without file", args: []string{"fmt"}, code: 2},
		{name: "fmt bad seed", args: []string{"fmt", bad}, code: 1, stderr: "bad-seed002-mcast-typo.conf:13:", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, stdout.String(), stderr.String())
			}
			if tt.stdout != "" && !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.stdout)
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
			if tt.noStdout && stdout.Len() != 0 {
				t.Errorf("stdout not empty:\n%s", stdout.String())
			}
			if tt.noErrLines && strings.Contains(stderr.String(), ": error: ") {
				t.Errorf("stderr has errors:\n%s", stderr.String())
			}
		})
	}
}

// TestCheckBadSeedOneError checks the whole error report of the bad seed:
// exactly one error line, on line 13, naming the address.
func TestCheckBadSeedOneError(t *testing.T) {
	bad := seedPath(t, "bad-seed002-mcast-typo.conf")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-f", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var errs []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ": error: ") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "bad-seed002-mcast-typo.conf:13:") || !strings.Contains(errs[0], "244.0.42.20") {
		t.Errorf("error lines %q, want one on line 13 naming 244.0.42.20", errs)
	}
}

func TestCheckDump(t *testing.T) {
	seed := seedPath(t, "seed001-options.conf")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-f", seed, "--dump"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr.String())
	}
	var got struct {
		Instances []struct {
			Name     string `json:"name"`
			VRID     int    `json:"virtual_router_id"`
			Priority int    `json:"priority"`
		} `json:"vrrp_instances"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("dump is not JSON: %v\n%s", err, stdout.String())
	}
	if len(got.Instances) == 0 || got.Instances[0].Name != "VI_1" {
		t.Fatalf("vrrp_instances[0].name: got %+v, want VI_1", got.Instances)
	}
	want := []struct {
		Name     string `json:"name"`
		VRID     int    `json:"virtual_router_id"`
		Priority int    `json:"priority"`
	}{{"VI_1", 88, 100}, {"VI_2", 89, 100}}
	if diff := cmp.Diff(want, got.Instances); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
}

// TestFmt checks that tandem fmt prints text that reads back to the same
// model, with no diagnostics.
func TestFmt(t *testing.T) {
	for _, name := range []string{"seed002-lvs-dr-http-master.conf", "seed001-options.conf", "seed003-nginx-ha-master.conf"} {
		t.Run(name, func(t *testing.T) {
			seed := seedPath(t, name)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"fmt", seed}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", code, stderr.String())
			}
			cfg2, diags := config.Parse("fmt.conf", stdout.Bytes(), config.Options{ConfigID: "x"})
			if len(diags) > 0 {
				t.Errorf("formatted text has diagnostics: %v\n%s", diags, stdout.String())
			}
			cfg, _ := config.Load(seed, config.Options{ConfigID: "x"})
			a, _ := json.Marshal(cfg)
			b, _ := json.Marshal(cfg2)
			if diff := cmp.Diff(string(a), string(b)); diff != "" {
				t.Errorf("fmt changed the model (-seed +fmt):\n%s", diff)
			}
		})
	}
}

// TestCheckFIFONotAFIFO: tandem check refuses, at the keyword, a notify
// FIFO path that holds something else (tandem run would refuse to start);
// an absent path is fine (run creates the FIFO).
func TestCheckFIFONotAFIFO(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "events")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "k.conf")
	text := "global_defs {\n    vrrp_notify_fifo " + file + "\n    lvs_notify_fifo " + filepath.Join(dir, "absent") + "\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-f", conf}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\nstderr:\n%s", code, stderr.String())
	}
	want := conf + ":2:5: error: vrrp_notify_fifo: " + file + " exists and is not a FIFO (it is a regular file)"
	if got := strings.TrimSpace(stderr.String()); !strings.HasPrefix(got, want) || strings.Count(got, "error:") != 1 {
		t.Errorf("stderr:\n%s\nwant one error:\n%s", got, want)
	}
}
