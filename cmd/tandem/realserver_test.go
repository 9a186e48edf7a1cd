package main

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"

	"github.com/vishvananda/netlink"
)

// TestRealserverTunFlags: the --tun flags are checked before anything on
// the host is read or changed.
func TestRealserverTunFlags(t *testing.T) {
	state := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--vip", "192.0.2.100", "--tun-type", "gue", "--tun-port", "6080"}, "need --tun"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--dev", "eth0"}, "--dev does not go with --tun"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--tun-type", "gue"}, "gue needs a UDP port"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--tun-port", "6080"}, "ipip takes no port"},
		{[]string{"status", "--vip", "192.0.2.100", "--tun", "--tun-type", "gre"}, `"gre": want ipip or gue`},
		{[]string{"up", "--tun"}, "--vip IP[,IP...] is required"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"realserver"}, append(c.args, "--state-dir", state)...)
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("rejected commands left records: %v", entries)
	}
}

// noTunnelHost skips t unless it runs as root on a kernel without ipip
// (this machine's), and returns a lab with one host, rs, and a runner of
// `tandem realserver ARGS...` there: its exit code and its output.
func noTunnelHost(t *testing.T) (*lab.Lab, func(args ...string) (int, string)) {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		t.Skip("this kernel has ipip loaded: up --tun uses it")
	}
	lab.RequireRoot(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "rs", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}}}}}})
	return l, func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := -1
		if err := l.Do("rs", func() error {
			code = run(append([]string{"realserver"}, args...), &stdout, &stderr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return code, stdout.String() + stderr.String()
	}
}

// TestRealserverUpTunNoKernel: on a kernel without the ipip driver (this
// machine's), `realserver up --vip X --tun --bpf-dir ""` fails naming the
// missing kernel support and records nothing (internal/realserver checks
// that nothing changed).
func TestRealserverUpTunNoKernel(t *testing.T) {
	_, realserver := noTunnelHost(t)
	state := t.TempDir()
	code, out := realserver("up", "--vip", "192.0.2.100", "--tun", "--bpf-dir", "", "--state-dir", state)
	if code != 2 || !strings.Contains(out, "cannot decapsulate LVS-TUN packets") || !strings.Contains(out, "CONFIG_NET_IPIP") {
		t.Errorf("up --tun: exit %d: %s", code, out)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("a failed up --tun left a record: %v", entries)
	}
}

// TestRealserverUpTunXDPDecap: on a kernel without ipip and fou (this
// machine's), `realserver up --tun --tun-type gue` attaches Tandem's XDP
// decapsulator to the host's interfaces instead, pinned, with the VIP on
// lo; status finds it all, and down leaves nothing: no program on the
// interface, no pin, no VIP, no record. A --bpf-dir on no BPF file system
// is refused, changing nothing. (TestXDPTun in test/e2e forwards
// through it.)
func TestRealserverUpTunXDPDecap(t *testing.T) {
	l, run := noTunnelHost(t)
	state, bpf := t.TempDir(), lab.BPFFST(t)
	vip := netip.MustParsePrefix("192.0.2.100/32")
	realserver := func(verb string) (int, string) {
		return run(verb, "--vip", vip.Addr().String(), "--tun", "--tun-type", "gue", "--tun-port", "6080", "--bpf-dir", bpf, "--state-dir", state)
	}
	// observe returns whether eth0 runs an XDP program and lo has the VIP.
	observe := func() (xdpOn, vipOn bool) {
		if err := l.Do("rs", func() error {
			eth0, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			xdpOn = eth0.Attrs().Xdp != nil && eth0.Attrs().Xdp.Attached
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
			for _, a := range addrs {
				vipOn = vipOn || a.IP.Equal(vip.Addr().AsSlice())
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return xdpOn, vipOn
	}
	// A --bpf-dir that is no BPF file system: refused, nothing left.
	code, out := run("up", "--vip", vip.Addr().String(), "--tun", "--bpf-dir", t.TempDir(), "--state-dir", state)
	if code != 2 || !strings.Contains(out, "is a BPF file system mounted there?") {
		t.Errorf("up --tun with --bpf-dir on no BPF file system: exit %d: %s", code, out)
	}
	if x, v := observe(); x || v {
		t.Errorf("after a refused up: XDP on eth0 %v, VIP on lo %v; want neither", x, v)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("a refused up left a record: %v", entries)
	}
	code, out = realserver("up")
	if code != 0 || !strings.Contains(out, "XDP decapsulator on: eth0") {
		t.Fatalf("up --tun: exit %d: %s", code, out)
	}
	if x, v := observe(); !x || !v {
		t.Fatalf("after up: XDP on eth0 %v, VIP on lo %v; want both", x, v)
	}
	if pins := decapPins(bpf); len(pins) != 1 {
		t.Errorf("after up: pins %v, want eth0's", pins)
	}
	if code, out := realserver("status"); code != 0 || !strings.Contains(out, "XDP decapsulator on eth0") {
		t.Errorf("status after up: exit %d: %s", code, out)
	}
	if code, out := realserver("down"); code != 0 || !strings.Contains(out, "XDP decapsulator removed from: eth0") {
		t.Fatalf("down --tun: exit %d: %s", code, out)
	}
	// The kernel may let go of an unpinned link from a work queue.
	x, v := observe()
	for i := 0; x && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		x, v = observe()
	}
	if x || v {
		t.Errorf("after down: XDP on eth0 %v, VIP on lo %v; want neither", x, v)
	}
	if pins := decapPins(bpf); len(pins) != 0 {
		t.Errorf("down left pins: %v", pins)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("down left records: %v", entries)
	}
	if code, out := realserver("status"); code == 0 {
		t.Errorf("status after down: exit 0, want 1: %s", out)
	}
}

// decapPins lists the decapsulators pinned in dir.
func decapPins(dir string) []string {
	var pins []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "decap-") {
			pins = append(pins, e.Name())
		}
	}
	return pins
}
