package netio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestVMACSysctls: the settings keepalived's vrrp_if_config.c makes, per
// family.
func TestVMACSysctls(t *testing.T) {
	vm, parent := VMACSysctls(VMAC{Name: "vrrp.1", Parent: "eth0"})
	want := []Sysctl{
		{"net/ipv4/conf/vrrp.1/arp_ignore", 1},
		{"net/ipv4/conf/vrrp.1/accept_local", 1},
		{"net/ipv4/conf/vrrp.1/rp_filter", 0},
		{"net/ipv4/conf/vrrp.1/promote_secondaries", 1},
		{"net/ipv6/conf/vrrp.1/disable_ipv6", 1},
	}
	if diff := cmp.Diff(want, vm); diff != "" {
		t.Errorf("IPv4 vmac (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Sysctl{{"net/ipv4/conf/eth0/arp_ignore", 1}, {"net/ipv4/conf/eth0/arp_filter", 1}}, parent); diff != "" {
		t.Errorf("IPv4 parent (-want +got):\n%s", diff)
	}
	vm, _ = VMACSysctls(VMAC{Name: "vrrp.1", Parent: "eth0", KeepIPv6: true})
	if !slices.Contains(vm, Sysctl{"net/ipv6/conf/vrrp.1/disable_ipv6", 0}) {
		t.Errorf("IPv6 not enabled on a VMAC that carries IPv6 excluded addresses: %v", vm)
	}
	vm, parent = VMACSysctls(VMAC{Name: "vrrp.1", Parent: "eth0", IPv6: true})
	if diff := cmp.Diff([]Sysctl{{"net/ipv4/conf/vrrp.1/arp_ignore", 1}}, vm); diff != "" || parent != nil {
		t.Errorf("IPv6: vmac (-want +got):\n%s\nparent %v, want none", diff, parent)
	}
}

func TestVMACAlias(t *testing.T) {
	orig := []Sysctl{{"net/ipv4/conf/eth0/arp_ignore", 2}, {"net/ipv4/conf/eth0/arp_filter", 0}}
	a := vmacAlias("VI_1", orig, 2)
	got, ok := parseVMACAlias(a, "eth0")
	if !ok || got.owner != "VI_1" || !slices.Equal(got.orig, orig) || got.allRP != 2 {
		t.Errorf("parseVMACAlias(%q) = %+v, %t; want VI_1, %v, all_rp_filter 2", a, got, ok, orig)
	}
	for _, s := range []string{"", "keepalived vmac", "tandem-vmac", "tandem-vmac arp_ignore=x instance=a", "tandem-vmacs instance=a"} {
		if _, ok := parseVMACAlias(s, "eth0"); ok {
			t.Errorf("parseVMACAlias(%q) took it as ours", s)
		}
	}
}

func TestEUI64LinkLocal(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	if got := eui64LinkLocal(mac).String(); got != "fe80::5054:ff:fe12:3456" {
		t.Errorf("eui64LinkLocal(%s) = %s, want fe80::5054:ff:fe12:3456", mac, got)
	}
}

// TestVMACLifecycle creates, adopts and removes VMACs in a namespace of
// its own: the macvlan is private with the virtual MAC, up, marked, with
// keepalived's sysctls on it and its parent; a second run adopts it
// (same link); an interface of the name that is not ours is never touched;
// the parent's settings come back when the last VMAC on it goes.
func TestVMACLifecycle(t *testing.T) {
	l := oneNode(t)
	if err := l.Sysctl("n", "net.ipv4.conf.eth0.arp_ignore", "2"); err != nil {
		t.Fatal(err)
	}
	v1 := VMAC{Name: "vrrp.1", Parent: "eth0", MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 1}, Owner: "VI_1", SendsFrom: true}
	v2 := VMAC{Name: "vrrp.2", Parent: "eth0", MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 2}, Owner: "VI_2"}
	err := l.Do("n", func() error {
		for _, v := range []VMAC{v1, v2} {
			if err := AddVMAC(v); err != nil {
				return err
			}
		}
		link, err := netlink.LinkByName("vrrp.1")
		if err != nil {
			return err
		}
		mv, ok := link.(*netlink.Macvlan)
		switch {
		case !ok:
			t.Errorf("vrrp.1 is a %s, want macvlan", link.Type())
		case mv.Mode != netlink.MACVLAN_MODE_PRIVATE || mv.HardwareAddr.String() != "00:00:5e:00:01:01" || mv.Flags&net.FlagUp == 0:
			t.Errorf("vrrp.1: mode %v MAC %s flags %v; want private, 00:00:5e:00:01:01, up", mv.Mode, mv.HardwareAddr, mv.Flags)
		}
		if as, _ := netlink.AddrList(link, netlink.FAMILY_ALL); len(as) != 0 {
			t.Errorf("vrrp.1 has addresses %v, want none (no IPv6 link-local from the virtual MAC)", as)
		}
		for _, s := range []Sysctl{
			{"net/ipv4/conf/vrrp.1/arp_ignore", 1}, {"net/ipv4/conf/vrrp.1/accept_local", 1},
			{"net/ipv4/conf/vrrp.1/rp_filter", 0}, {"net/ipv4/conf/vrrp.1/promote_secondaries", 1},
			{"net/ipv6/conf/vrrp.1/disable_ipv6", 1},
			{"net/ipv4/conf/eth0/arp_ignore", 1}, {"net/ipv4/conf/eth0/arp_filter", 1},
		} {
			if v, err := readSysctl(s.Key); err != nil || v != s.Value {
				t.Errorf("%s = %d (%v), want %d", s.Key, v, err, s.Value)
			}
		}
		// A restart adopts its VMAC: the same link.
		if err := AddVMAC(v1); err != nil {
			return err
		}
		again, err := netlink.LinkByName("vrrp.1")
		if err != nil {
			return err
		}
		if again.Attrs().Index != link.Attrs().Index {
			t.Errorf("adopting vrrp.1 re-created it (index %d -> %d)", link.Attrs().Index, again.Attrs().Index)
		}
		// A macvlan of the name that is not ours is left alone.
		parent, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		foreign := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "vrrp.3", ParentIndex: parent.Attrs().Index}, Mode: netlink.MACVLAN_MODE_PRIVATE}
		if err := netlink.LinkAdd(foreign); err != nil {
			return err
		}
		if err := AddVMAC(VMAC{Name: "vrrp.3", Parent: "eth0", MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 3}, Owner: "VI_3"}); !errors.Is(err, ErrNotOurs) {
			t.Errorf("AddVMAC over a foreign vrrp.3: %v, want ErrNotOurs", err)
		}
		if err := DelVMAC("vrrp.3"); !errors.Is(err, ErrNotOurs) {
			t.Errorf("DelVMAC of a foreign vrrp.3: %v, want ErrNotOurs", err)
		}
		stale, err := StaleVMACs(map[string]bool{"vrrp.2": true})
		if err != nil {
			return err
		}
		if !slices.Equal(stale, []string{"vrrp.1"}) {
			t.Errorf("StaleVMACs = %v, want [vrrp.1] (vrrp.2 kept, vrrp.3 not ours)", stale)
		}
		// The parent keeps the VMAC settings while one VMAC is on it,
		// and gets its own back with the last.
		if err := DelVMAC("vrrp.1"); err != nil {
			return err
		}
		if v, _ := readSysctl("net/ipv4/conf/eth0/arp_ignore"); v != 1 {
			t.Errorf("eth0 arp_ignore %d with vrrp.2 still on it, want 1", v)
		}
		if err := DelVMAC("vrrp.2"); err != nil {
			return err
		}
		for key, want := range map[string]int{"net/ipv4/conf/eth0/arp_ignore": 2, "net/ipv4/conf/eth0/arp_filter": 0} {
			if v, _ := readSysctl(key); v != want {
				t.Errorf("%s = %d after the last VMAC went, want %d (as before)", key, v, want)
			}
		}
		for _, n := range []string{"vrrp.1", "vrrp.2"} {
			if _, err := netlink.LinkByName(n); err == nil {
				t.Errorf("%s still there after DelVMAC", n)
			}
		}
		if _, err := netlink.LinkByName("vrrp.3"); err != nil {
			t.Errorf("the foreign vrrp.3 is gone: %v", err)
		}
		return DelVMAC("vrrp.1") // gone already: not an error
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIPVLANLifecycle: use_ipvlan's interface is an ipvlan in L2 mode
// with the configured flag, up, marked as ours, with its own address and,
// for an IPv4 instance, IPv6 off, and the parent left as it was
// (keepalived's netlink_link_add_ipvlan changes nothing on it); a second
// run adopts it, one with another mode re-creates it, DelVMAC removes it.
func TestIPVLANLifecycle(t *testing.T) {
	l := oneNode(t)
	if err := l.Sysctl("n", "net.ipv4.conf.eth0.arp_ignore", "2"); err != nil {
		t.Fatal(err)
	}
	v := VMAC{Name: "ipv1", Parent: "eth0", Owner: "VI_1", SendsFrom: true, IPVLAN: true, IPVLANMode: "private", Addr: netip.MustParsePrefix("10.0.0.50/24")}
	errNoIPVLAN := errors.New("no ipvlan")
	err := l.Do("n", func() error {
		if err := AddVMAC(v); errors.Is(err, unix.EOPNOTSUPP) {
			return errNoIPVLAN
		} else if err != nil {
			return err
		}
		link, err := netlink.LinkByName("ipv1")
		if err != nil {
			return err
		}
		parent, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		iv, ok := link.(*netlink.IPVlan)
		switch {
		case !ok:
			return fmt.Errorf("ipv1 is a %s, want ipvlan", link.Type())
		case iv.Mode != netlink.IPVLAN_MODE_L2 || iv.Flag != netlink.IPVLAN_FLAG_PRIVATE || iv.Flags&net.FlagUp == 0 || iv.ParentIndex != parent.Attrs().Index:
			t.Errorf("ipv1: mode %v flag %v flags %v parent %d; want l2, private, up, on eth0", iv.Mode, iv.Flag, iv.Flags, iv.ParentIndex)
		}
		if !slices.Equal(link.Attrs().HardwareAddr, parent.Attrs().HardwareAddr) {
			t.Errorf("ipv1 MAC %s, want the parent's %s", link.Attrs().HardwareAddr, parent.Attrs().HardwareAddr)
		}
		as, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil || len(as) != 1 || as[0].IPNet.String() != "10.0.0.50/24" {
			t.Errorf("ipv1 addresses %v (%v), want 10.0.0.50/24", as, err)
		}
		for key, want := range map[string]int{"net/ipv6/conf/ipv1/disable_ipv6": 1, "net/ipv4/conf/eth0/arp_ignore": 2} {
			if got, err := readSysctl(key); err != nil || got != want {
				t.Errorf("%s = %d (%v), want %d", key, got, err, want)
			}
		}
		if err := AddVMAC(v); err != nil {
			return err
		}
		if again, err := netlink.LinkByName("ipv1"); err != nil || again.Attrs().Index != link.Attrs().Index {
			t.Errorf("adopting ipv1 re-created it or lost it (%v)", err)
		}
		v.IPVLANMode = ""
		if err := AddVMAC(v); err != nil {
			return err
		}
		bridge, err := netlink.LinkByName("ipv1")
		if err != nil {
			return err
		}
		if iv, ok := bridge.(*netlink.IPVlan); !ok || iv.Flag != netlink.IPVLAN_FLAG_BRIDGE {
			t.Errorf("ipv1 after a mode change: %+v, want an ipvlan in bridge mode", bridge)
		}
		if stale, err := StaleVMACs(nil); err != nil || !slices.Equal(stale, []string{"ipv1"}) {
			t.Errorf("StaleVMACs = %v (%v), want [ipv1]", stale, err)
		}
		if err := DelVMAC("ipv1"); err != nil {
			return err
		}
		if _, err := netlink.LinkByName("ipv1"); err == nil {
			t.Error("ipv1 still there after DelVMAC")
		}
		return nil
	})
	if errors.Is(err, errNoIPVLAN) {
		if os.Getenv("TANDEM_VM") != "" {
			t.Fatal("the test VM's kernel has no ipvlan: is the module loaded?")
		}
		t.Skip("this kernel has no ipvlan (CONFIG_IPVLAN): test/vm runs this test in Debian's kernel")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestClearRPFilter: with net.ipv4.conf.all.rp_filter set, the VMACs get
// it cleared as keepalived does, the other interfaces and default raised
// to it so that they behave as before, and all of it put back after.
func TestClearRPFilter(t *testing.T) {
	l := oneNode(t)
	if err := l.Sysctl("n", "net.ipv4.conf.all.rp_filter", "1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Sysctl("n", "net.ipv4.conf.lo.rp_filter", "2"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("n", func() error {
		read := func() map[string]int {
			out := map[string]int{}
			for _, n := range []string{"all", "default", "eth0", "lo"} {
				out[n], _ = readSysctl(ipv4Conf(n, "rp_filter"))
			}
			return out
		}
		rp, err := ClearRPFilter()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(map[string]int{"all": 0, "default": 1, "eth0": 1, "lo": 2}, read()); diff != "" {
			t.Errorf("after ClearRPFilter (-want +got):\n%s", diff)
		}
		if err := rp.Restore(); err != nil {
			return err
		}
		if diff := cmp.Diff(map[string]int{"all": 1, "default": 0, "eth0": 0, "lo": 2}, read()); diff != "" {
			t.Errorf("after Restore (-want +got):\n%s", diff)
		}
		// A run that cleared it and crashed left a VMAC recording all's
		// value: the next run puts that back.
		if rp, err = ClearRPFilter(); err != nil {
			return err
		}
		if err := AddVMAC(VMAC{Name: "vrrp.1", Parent: "eth0", MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 1}, Owner: "VI_1", AllRPFilter: rp.All()}); err != nil {
			return err
		}
		rp, err = ClearRPFilter() // the next run
		if err != nil || rp == nil || rp.All() != 1 {
			t.Fatalf("ClearRPFilter after a crash: %+v, %v; want all's value 1 from the VMAC's record", rp, err)
		}
		if err := DelVMAC("vrrp.1"); err != nil {
			return err
		}
		if err := rp.Restore(); err != nil {
			return err
		}
		if v := read()["all"]; v != 1 {
			t.Errorf("all.rp_filter %d after the crash's recovery, want 1", v)
		}
		if err := writeSysctl(Sysctl{ipv4Conf("all", "rp_filter"), 0}); err != nil {
			return err
		}
		if rp, err := ClearRPFilter(); rp != nil || err != nil {
			t.Errorf("ClearRPFilter with all=0: %+v, %v; want nothing done", rp, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
