package realserver

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// These tests build a network namespace of their own (internal/lab) and
// prepare it, never the caller's. The tunnel drivers decide which run:
// this development machine's kernel has neither ipip nor fou, so there
// TestUpTunWithoutKernelSupport runs and TestUpDownTun skips; test/vm runs
// this package in a Debian kernel with both loaded, where it is the other
// way round.

// kernelHas reports whether the kernel has module m (its config option
// opt) built in or loaded (/sys/module/m, /proc/config.gz) or available
// to load (/lib/modules/<release>). It reads no code under test.
func kernelHas(t *testing.T, m, opt string) bool {
	t.Helper()
	if _, err := os.Stat(filepath.Join("/sys/module", m)); err == nil {
		return true
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	if ko, _ := filepath.Glob(filepath.Join("/lib/modules", release, "kernel/net/*", m+".ko*")); len(ko) > 0 {
		return true
	}
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if sc.Text() == opt+"=y" || sc.Text() == opt+"=m" {
			return true
		}
	}
	return false
}

// rsNode is one host with an interface on a segment of its own.
func rsNode(t *testing.T) *lab.Lab {
	lab.RequireRoot(t)
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "rs", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")}}}}}})
}

// hostState is what UpTun may change in a node: links and their state,
// addresses, fou ports and the IPv4 sysctls of "all".
func hostState() (string, error) {
	var b strings.Builder
	links, err := netlink.LinkList()
	if err != nil {
		return "", err
	}
	for _, l := range links {
		fmt.Fprintf(&b, "link %s %s up=%t\n", l.Attrs().Name, l.Type(), l.Attrs().Flags&net.FlagUp != 0)
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() {
				fmt.Fprintf(&b, "  addr %s %s\n", a.IPNet, a.Label)
			}
		}
	}
	if fou, err := dialFou(); err == nil { // else no fou in this kernel
		ports, err := fou.list()
		fou.close()
		if err != nil {
			return "", err
		}
		for _, p := range slices.SortedFunc(maps.Keys(ports), func(a, b FouPort) int { return cmp.Compare(a.String(), b.String()) }) {
			fmt.Fprintf(&b, "fou %s %s\n", p, ports[p])
		}
	}
	for _, iface := range []string{"all", "tunl0"} {
		for _, key := range []string{"rp_filter", "arp_ignore", "arp_announce"} {
			v, err := DefaultHost.read(iface, key)
			if errors.Is(err, os.ErrNotExist) && iface != "all" {
				continue // no tunl0
			}
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s/%s=%s\n", iface, key, v)
		}
	}
	return b.String(), nil
}

// TestUpTunWithoutKernelSupport: on a kernel without the tunnel drivers,
// UpTun fails with ErrNoKernelTunnel, names the missing kernel support,
// and changes nothing (no device, address, fou port, sysctl or record).
func TestUpTunWithoutKernelSupport(t *testing.T) {
	hasIPIP, hasFou, hasIP6 := kernelHas(t, "ipip", "CONFIG_NET_IPIP"), kernelHas(t, "fou", "CONFIG_NET_FOU"), kernelHas(t, "ip6_tunnel", "CONFIG_IPV6_TUNNEL")
	if hasIPIP && hasFou && hasIP6 {
		t.Skip("this kernel has ipip, fou and ip6_tunnel: the error path cannot happen here (TestUpDownTun runs instead)")
	}
	l := rsNode(t)
	h := Host{SysctlDir: DefaultHost.SysctlDir, StateDir: t.TempDir()}
	v4, v6 := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")
	type tc struct {
		vips []netip.Addr
		tun  Tun
		want string // the kernel support the error must name
	}
	var cases []tc
	if !hasIPIP {
		cases = append(cases, tc{[]netip.Addr{v4}, Tun{Type: TunIPIP}, "CONFIG_NET_IPIP"})
	}
	if !hasIP6 {
		cases = append(cases, tc{[]netip.Addr{v6}, Tun{Type: TunIPIP}, "CONFIG_IPV6_TUNNEL"})
	}
	if !hasFou {
		cases = append(cases, tc{[]netip.Addr{v4}, Tun{Type: TunGUE, Port: 6080}, "CONFIG_NET_FOU"})
	}
	for _, c := range cases {
		upErr := failsUnchanged(t, l, h, c.vips, c.tun)
		if !strings.Contains(upErr.Error(), c.want) {
			t.Errorf("UpTun(%v, %+v) = %v; want it to name %s", c.vips, c.tun, upErr, c.want)
		}
		t.Logf("UpTun(%v, %+v): %v", c.vips, c.tun, upErr)
	}
}

// failsUnchanged runs UpTun in l's node rs, checks that it fails with
// ErrNoKernelTunnel and leaves the host as it was, with no record, and
// returns its error.
func failsUnchanged(t *testing.T, l *lab.Lab, h Host, vips []netip.Addr, tun Tun) error {
	t.Helper()
	var upErr error
	err := l.Do("rs", func() error {
		before, err := hostState()
		if err != nil {
			return err
		}
		_, upErr = h.UpTun(vips, tun)
		after, err := hostState()
		if err != nil {
			return err
		}
		if diff := gocmp.Diff(before, after); diff != "" {
			return fmt.Errorf("a failed UpTun changed the host (-before +after):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if !errors.Is(upErr, ErrNoKernelTunnel) {
		t.Fatalf("UpTun(%v, %+v) = %v; want ErrNoKernelTunnel", vips, tun, upErr)
	}
	if entries, _ := os.ReadDir(h.StateDir); len(entries) != 0 {
		t.Errorf("a failed UpTun left a record: %v", entries)
	}
	return upErr
}

// TestUpDownTun prepares a node for TUN with an IPv4 and an IPv6 VIP over
// GUE: tunl0 and ip6tnl0 up with the VIPs, fou ports in GUE mode for both
// families, rp_filter off and the ARP sysctls on; StatusTun agrees; a
// second UpTun changes nothing; DownTun puts back exactly the host as it
// was (the kernel's catch-all devices stay, down, as the driver made them).
func TestUpDownTun(t *testing.T) {
	for _, m := range [][2]string{{"ipip", "CONFIG_NET_IPIP"}, {"ip6_tunnel", "CONFIG_IPV6_TUNNEL"}, {"fou", "CONFIG_NET_FOU"}} {
		if !kernelHas(t, m[0], m[1]) {
			t.Skipf("this kernel has no %s (%s): TestUpTunWithoutKernelSupport covers it; test/vm runs this test", m[0], m[1])
		}
	}
	l := rsNode(t)
	h := Host{SysctlDir: DefaultHost.SysctlDir, StateDir: t.TempDir()}
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")}
	tun := Tun{Type: TunGUE, Port: 6080}
	err := l.Do("rs", func() error {
		// The catch-all devices exist but are down in a new namespace
		// once the drivers are loaded. A reverse-path filter on, which
		// UpTun must turn off and DownTun back on.
		for _, s := range [][3]string{{"all", "rp_filter", "1"}, {"tunl0", "rp_filter", "2"}} {
			if err := h.write(s[0], s[1], s[2]); err != nil {
				return err
			}
		}
		before, err := hostState()
		if err != nil {
			return err
		}
		ch, err := h.UpTun(vips, tun)
		if err != nil {
			return fmt.Errorf("UpTun: %w", err)
		}
		want := TunChanges{Added: []string{"192.0.2.100", "2001:db8::100"}, Devices: []string{"tunl0", "ip6tnl0"},
			Fou: []FouPort{{6080, unix.AF_INET}, {6080, unix.AF_INET6}}, Sysctls: ch.Sysctls}
		if diff := gocmp.Diff(want, ch); diff != "" || ch.Sysctls < 2 {
			return fmt.Errorf("UpTun changed (-want +got):\n%s\n(%d sysctls, want at least the two rp_filter)", diff, ch.Sysctls)
		}
		checks, err := h.StatusTun(vips, tun)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if !c.OK {
				return fmt.Errorf("after UpTun, %s: %s", c.What, c.Have)
			}
		}
		if len(checks) != 2+2+2+6 { // devices, fou ports, VIPs, 3 sysctls on all and on tunl0 (none for IPv6)
			return fmt.Errorf("StatusTun made %d checks: %+v", len(checks), checks)
		}
		for _, d := range []string{"tunl0", "ip6tnl0"} {
			lk, err := netlink.LinkByName(d)
			if err != nil || lk.Attrs().Flags&net.FlagUp == 0 {
				return fmt.Errorf("%s after UpTun: %v, up=%t", d, err, err == nil && lk.Attrs().Flags&net.FlagUp != 0)
			}
		}
		if again, err := h.UpTun(vips, tun); err != nil || !gocmp.Equal(again, TunChanges{}) {
			return fmt.Errorf("second UpTun: %+v, %v; want no change", again, err)
		}
		if _, err := h.DownTun(); err != nil {
			return fmt.Errorf("DownTun: %w", err)
		}
		after, err := hostState()
		if err != nil {
			return err
		}
		if diff := gocmp.Diff(before, after); diff != "" {
			return fmt.Errorf("DownTun left the host changed (-before +after):\n%s", diff)
		}
		checks, err = h.StatusTun(vips, tun)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(checks, func(c Check) bool { return !c.OK }) {
			return fmt.Errorf("StatusTun after DownTun says ready: %+v", checks)
		}
		if _, err := h.DownTun(); err == nil || !strings.Contains(err.Error(), "nothing to undo") {
			return fmt.Errorf("second DownTun: %v, want nothing to undo", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(h.StateDir); len(entries) != 0 {
		t.Errorf("DownTun left its record: %v", entries)
	}
}

// TestTunValidate: the settings the command line can give.
func TestTunValidate(t *testing.T) {
	for _, c := range []struct {
		tun Tun
		ok  bool
	}{
		{Tun{Type: TunIPIP}, true},
		{Tun{Type: TunGUE, Port: 6080}, true},
		{Tun{Type: TunIPIP, Port: 6080}, false},
		{Tun{Type: TunGUE}, false},
		{Tun{Type: "gre"}, false},
	} {
		if err := c.tun.validate(); (err == nil) != c.ok {
			t.Errorf("%+v: validate() = %v, want ok %t", c.tun, err, c.ok)
		}
	}
}

// TestUpTunRollback: when IPv6's tunnel driver is missing after IPv4's
// device was made (a kernel with ipip and without ip6_tunnel), UpTun puts
// the IPv4 device back before it fails, and records nothing: the host is
// as it was for whatever decapsulates instead. The drivers are stood in
// for (tunl0 is set up where the kernel has it, else a veth called tunl0
// is created), since no kernel here lacks just one of them.
func TestUpTunRollback(t *testing.T) {
	l := rsNode(t)
	h := Host{SysctlDir: DefaultHost.SysctlDir, StateDir: t.TempDir()}
	defer func(orig func(tunDev) (bool, bool, error)) { ensureDev = orig }(ensureDev)
	ensureDev = func(d tunDev) (bool, bool, error) {
		if d.v6 {
			return false, false, fmt.Errorf("%w: no %s (test)", ErrNoKernelTunnel, d.name)
		}
		if l, err := netlink.LinkByName(d.name); err == nil { // the kernel's (ipip loaded): set it up
			return false, true, netlink.LinkSetUp(l)
		}
		err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: d.name}, PeerName: d.name + "p"})
		return err == nil, false, err
	}
	failsUnchanged(t, l, h, []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")}, Tun{Type: TunIPIP})
}
