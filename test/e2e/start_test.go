package e2e

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"tandem/internal/api"
	"tandem/internal/lab"
	"tandem/internal/nslock"
)

// TestStartErrors: a missing interface and missing privileges each give one
// clear line and exit status 1 at start.
func TestStartErrors(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "n1"}}})
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
	// nobody cannot take the network namespace's lock, the first thing
	// tandem run does (as nobody cannot enter a lab node, this runs in
	// the test's namespace, where it changes nothing).
	hostLock, err := nslock.Current(nslock.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, conf, want string
		nobody           bool
	}{
		{"missing interface", missing, "vrrp_instance VI_1: interface nosuch0: no such interface in this network namespace", false},
		{"not root", onLo, "lock " + hostLock + ": permission denied: tandem runs as root (or with write access to /run/tandem)", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"run", "-f", c.conf, "--socket", t.TempDir() + "/s.sock"}
			cmd := l.Command(context.Background(), "n1", tandemBin, args...)
			if c.nobody {
				cmd = exec.Command(tandemBin, args...)
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

// idleSource is a daemon's status source with nothing configured, for
// tests of the status socket itself.
type idleSource struct{}

func (idleSource) Status() api.Status                { return api.Status{Version: "test"} }
func (idleSource) Table() (api.Table, error)         { return api.Table{}, nil }
func (idleSource) Reload() (api.ReloadResult, error) { return api.ReloadResult{}, nil }
func (idleSource) Handover(api.HandoverRequest) (api.HandoverResult, error) {
	return api.HandoverResult{}, nil
}
func (idleSource) Drain(api.DrainRequest) (api.DrainResult, error) { return api.DrainResult{}, nil }

// TestStatusPermissionDenied: a user who may not connect to the status
// socket (mode 0660, root's) is told so, and what to do, instead of
// hearing that no daemon answers.
func TestStatusPermissionDenied(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	// A directory nobody may enter, so that the refusal is the socket's
	// own, not its directory's.
	dir, err := os.MkdirTemp("", "tandem-status-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "tandem.sock")
	srv, err := api.Listen(socket, idleSource{}, slog.New(slog.DiscardHandler), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if out, err := exec.Command(tandemBin, "status", "--socket", socket).CombinedOutput(); err != nil {
		t.Fatalf("tandem status as root: %v\n%s", err, out)
	}
	cmd := exec.Command(tandemBin, "status", "--socket", socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("tandem status as nobody: %v, want a failure; output:\n%s", err, out)
	}
	want := "tandem: status socket " + socket + ": permission denied: run this as root or as a member of the socket's group (root)"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("tandem status as nobody says\n%s\nwant\n%s", got, want)
	}
}
