package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lab"
)

// fifoLab is one director and one real server on a segment.
func fifoLab(t *testing.T) *lab.Lab {
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.79.0.1/24")}}}},
		{Name: "rs1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.79.0.2/24")}}}},
	}})
}

const fifoConf = `global_defs {
    notify_fifo %[1]s/unread
    vrrp_notify_fifo %[1]s/vrrp
    lvs_notify_fifo %[1]s/lvs
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 53
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.79.0.100/24
    }
}
virtual_server 10.79.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.79.0.2 80 {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`

// listenIn listens on addr inside node's namespace; the socket stays there.
func listenIn(t *testing.T, l *lab.Lab, node, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := l.Do(node, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// TestNotifyFIFO: readers of tandem's FIFOs see keepalived's exact lines:
// the instance's way to MASTER on vrrp_notify_fifo, a real server going
// down and up (and its virtual server's quorum with it) on
// lvs_notify_fifo; a notify_fifo nobody reads does not stop any of it;
// and the FIFOs tandem created are gone when it stops.
func TestNotifyFIFO(t *testing.T) {
	l := fifoLab(t)
	ln := listenIn(t, l, "rs1", "10.79.0.2:80")
	dir := t.TempDir()
	d := startTandem(t, l, "d1", writeConf(t, "fifo.conf", fmt.Sprintf(fifoConf, dir)), "--dataplane", "none")
	read := func(name string) func() string {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		r := bufio.NewReader(f)
		return func() string {
			t.Helper()
			f.SetReadDeadline(time.Now().Add(20 * time.Second))
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (read %q)\n%s", name, err, s, d.proc.Output())
			}
			return s
		}
	}
	vrrp, lvs := read("vrrp"), read("lvs")

	// Tandem starts as keepalived does: BACKUP, then MASTER.
	var got []string
	for len(got) == 0 || got[len(got)-1] != "INSTANCE \"VI_1\" MASTER 100\n" {
		got = append(got, vrrp())
		if len(got) > 3 {
			break
		}
	}
	if d := cmp.Diff([]string{"INSTANCE \"VI_1\" BACKUP 100\n", "INSTANCE \"VI_1\" MASTER 100\n"}, got); d != "" {
		t.Errorf("vrrp_notify_fifo (-want +got):\n%s", d)
	}

	const vs, rs = "[10.79.0.100]:tcp:80", "[10.79.0.2]:tcp:80"
	waitFor(t, "the real server healthy", 15*time.Second, func() bool { return d.healthy("10.79.0.100:80", "10.79.0.2") })
	ln.Close()
	down := []string{lvs(), lvs()}
	ln = listenIn(t, l, "rs1", "10.79.0.2:80")
	defer ln.Close()
	up := []string{lvs(), lvs()}
	want := []string{"RS " + rs + " " + vs + " DOWN\n", "VS " + vs + " DOWN\n", "RS " + rs + " " + vs + " UP\n", "VS " + vs + " UP\n"}
	if d := cmp.Diff(want, append(down, up...)); d != "" {
		t.Errorf("lvs_notify_fifo (-want +got):\n%s", d)
	}
	if st := d.state("VI_1"); st != "MASTER" {
		t.Errorf("VI_1 is %s with an unread notify_fifo, want MASTER", st)
	}
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.proc.Output())
	}
	for _, name := range []string{"unread", "vrrp", "lvs"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("FIFO %s left behind: %v", name, err)
		}
	}
}

// TestNotifyFIFONotAFIFO: a regular file where a FIFO is configured stops
// tandem run at start with a message naming it, and the file is untouched.
func TestNotifyFIFONotAFIFO(t *testing.T) {
	l := fifoLab(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vrrp"), []byte("data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := writeConf(t, "fifo.conf", fmt.Sprintf(fifoConf, dir))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := l.Command(ctx, "d1", tandemBin, "run", "-f", conf, "--socket", filepath.Join(dir, "s.sock"), "--dataplane", "none", "--log-format", "text")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("tandem run: %v (timed out: %v), want exit status 1 at once; output:\n%s", err, ctx.Err() != nil, out)
	}
	want := "vrrp_notify_fifo: " + filepath.Join(dir, "vrrp") + " exists and is not a FIFO (it is a regular file)"
	if !strings.Contains(string(out), want) {
		t.Errorf("output does not say %q:\n%s", want, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "vrrp")); err != nil || string(b) != "data\n" {
		t.Errorf("the file changed: %q, %v", b, err)
	}
	if holds(t, l, "d1", "eth0", netip.MustParseAddr("10.79.0.100")) {
		t.Error("the refused run added its VIP")
	}
}
