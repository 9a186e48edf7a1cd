package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStartErrors: a missing interface and missing privileges each give one
// clear line and exit status 1 at start.
func TestStartErrors(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	missing := writeConf(t, "missing.conf", `vrrp_instance VI_1 {
    interface nosuch0
    virtual_router_id 1
    virtual_ipaddress {
        10.9.9.9
    }
}
`)
	// nobody must be able to read it: next to the binary, not in a
	// private t.TempDir.
	onLo := filepath.Join(filepath.Dir(tandemBin), "lo.conf")
	if err := os.WriteFile(onLo, []byte(`vrrp_instance VI_1 {
    interface lo
    virtual_router_id 1
    virtual_ipaddress {
        10.9.9.9
    }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, conf, want string
		nobody           bool
	}{
		{"missing interface", missing, "vrrp_instance VI_1: interface nosuch0: no such interface in this network namespace", false},
		{"not root", onLo, "vrrp_instance VI_1: vrrp socket on lo: raw sockets need root or CAP_NET_RAW", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(tandemBin, "run", "-f", c.conf, "--socket", t.TempDir()+"/s.sock")
			if c.nobody {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1; output:\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if last != "tandem: "+c.want {
				t.Errorf("last line %q, want %q (all output:\n%s)", last, "tandem: "+c.want, out)
			}
		})
	}
}
