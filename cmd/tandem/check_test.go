package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"xdp", 2, `--dataplane "xdp": use auto, ipvs, nft or none`},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check", "-f", conf, "--dataplane", tt.dataplane}, &stdout, &stderr)
		if code != tt.code || (tt.stderr == "") != (stderr.Len() == 0) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("check --dataplane %s: exit %d, stderr:\n%s\nwant exit %d and %q", tt.dataplane, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}
