// Package e2e runs Tandem (and, for interop, Debian's keepalived) between
// network namespaces: the lab's own bridge, no link to the host. The tests
// need root and skip without it.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// tandemBin is built once per test binary, in TestMain.
var tandemBin string

func TestMain(m *testing.M) {
	os.Exit(lab.RunWithTandem(m, &tandemBin))
}

// seedConf is the path of a seed configuration in shared/corpus.
func seedConf(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "corpus", "seed-configs", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("seed configuration %s not found (shared/ is not beside the repository): %v", name, err)
	}
	return p
}

// writeConf writes a configuration made by the test.
func writeConf(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// daemon is a tandem run in a lab node.
type daemon struct {
	proc   *lab.Proc
	socket string
	node   string
	conf   string
}

// startTandem runs `tandem run -f conf` in node, with extra flags, and waits
// for its status socket; a daemon that exits first fails the test with its
// output.
func startTandem(t *testing.T, l *lab.Lab, node, conf string, extra ...string) *daemon {
	t.Helper()
	return startTandemVia(t, l, node, conf, nil, extra...)
}

// startTandemVia is startTandem with tandem run by via, a command that
// ends by running its arguments (env NAME=VALUE, unshare ...): the binary
// and its arguments follow via's.
func startTandemVia(t *testing.T, l *lab.Lab, node, conf string, via []string, extra ...string) *daemon {
	t.Helper()
	socket := filepath.Join(t.TempDir(), node+".sock")
	args := append([]string{tandemBin, "run", "-f", conf, "--socket", socket, "--log-format", "text"}, extra...)
	args = append(slices.Clip(via), args...)
	p, err := l.Start(node, args[0], args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{proc: p, socket: socket, node: node, conf: conf}
	waitFor(t, node+"'s status socket", 10*time.Second, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("tandem exited: %v\n%s", p.Wait(), p.Output())
		default:
		}
		_, err := d.status()
		return err == nil
	})
	return d
}

func (d *daemon) status() (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return api.Fetch(ctx, d.socket)
}

func (d *daemon) state(instance string) string {
	st, err := d.status()
	if err != nil {
		return "DOWN"
	}
	for _, in := range st.Instances {
		if in.Name == instance {
			return in.State
		}
	}
	return "MISSING"
}

func (d *daemon) instance(t *testing.T, name string) api.InstanceStatus {
	t.Helper()
	st, err := d.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Instances {
		if in.Name == name {
			return in
		}
	}
	t.Fatalf("no instance %s in %s's status", name, d.node)
	return api.InstanceStatus{}
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// holds reports whether node has addr on iface.
func holds(t *testing.T, l *lab.Lab, node, iface string, addr netip.Addr) bool {
	t.Helper()
	_, found := addrLabel(t, l, node, iface, addr)
	return found
}

// addrLabel returns the label of addr on node's iface, if it is there.
func addrLabel(t *testing.T, l *lab.Lab, node, iface string, addr netip.Addr) (string, bool) {
	t.Helper()
	label, found := "", false
	err := l.Do(node, func() error {
		link, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
				label, found = a.Label, true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return label, found
}

// macOf is node's hardware address on iface.
func macOf(t *testing.T, l *lab.Lab, node, iface string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.Do(node, func() error {
		link, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		mac = link.Attrs().HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// neighbourMAC is the MAC node's neighbour table has for addr (nil if none).
func neighbourMAC(t *testing.T, l *lab.Lab, node string, addr netip.Addr) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.Do(node, func() error {
		fam := netlink.FAMILY_V4
		if addr.Is6() {
			fam = netlink.FAMILY_V6
		}
		ns, err := netlink.NeighList(0, fam)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				mac = n.HardwareAddr
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// keepalived runs Debian's keepalived in a node, VRRP only (-P: this
// kernel has no IPVS), with pid files of its own so several run side by
// side (FIELD-NOTES).
type keepalived struct {
	proc *lab.Proc
}

func startKeepalived(t *testing.T, l *lab.Lab, node, conf string) *keepalived {
	t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		for _, p := range []string{"/usr/sbin/keepalived", "/sbin/keepalived"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("keepalived is not installed (apt-get install keepalived); sudo test/run installs it")
	}
	dir := t.TempDir()
	pid := func(n string) string { return filepath.Join(dir, n+".pid") }
	p, err := l.Start(node, bin, "-n", "-l", "-D", "-P", "-f", conf, "-p", pid("main"), "-r", pid("vrrp"), "-c", pid("check"), "-b", pid("bfd"))
	if err != nil {
		t.Fatal(err)
	}
	return &keepalived{proc: p}
}

// keepalivedState reads keepalived's view of an instance from its log.
func (k *keepalived) lastState(instance string) string {
	last := ""
	for _, line := range strings.Split(k.proc.Output(), "\n") {
		if i := strings.Index(line, "("+instance+") Entering "); i >= 0 {
			f := strings.Fields(line[i+len(instance)+len("() Entering "):])
			if len(f) > 0 {
				last = f[0]
			}
		}
	}
	return last
}

// capture runs tshark in node on iface for d and returns the lines it
// printed for VRRP packets, one per packet, with the given fields. Its
// caller skips where tshark is not installed.
func capture(l *lab.Lab, node, iface string, d time.Duration, fields ...string) ([]string, error) {
	wait, err := startCapture(l, node, iface, d, fields...)
	if err != nil {
		return nil, err
	}
	return wait()
}

// startCapture is capture returning once tshark captures (it has said
// so on stderr), so that what the caller does next is on the capture;
// wait returns the lines.
func startCapture(l *lab.Lab, node, iface string, d time.Duration, fields ...string) (wait func() ([]string, error), err error) {
	args := []string{"-i", iface, "-a", fmt.Sprintf("duration:%d", int(d.Seconds())), "-f", "ip proto 112 or ip6 proto 112",
		"-T", "fields", "-E", "separator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+20*time.Second)
	cmd := l.Command(ctx, node, "tshark", args...)
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tshark: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("tshark: %w", err)
	}
	started := make(chan struct{})
	rest := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if !once && strings.HasPrefix(sc.Text(), "Capturing on") {
				once = true
				close(started)
			}
		}
		if !once {
			close(started)
		}
		rest <- all.String()
	}()
	<-started
	return func() ([]string, error) {
		defer cancel()
		msgs := <-rest
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("tshark: %w: %s", err, msgs)
		}
		var lines []string
		for _, ln := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if ln != "" {
				lines = append(lines, ln)
			}
		}
		return lines, nil
	}, nil
}
