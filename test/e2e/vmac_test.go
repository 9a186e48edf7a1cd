package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/lab"
)

// The VMAC tests run Tandem and Debian's keepalived side by side with
// use_vmac (keepalived.conf(5)) on the seed001 layout, in both roles: the
// adverts come from the virtual MAC 00:00:5e:00:01:58 (VRID 88, RFC 5798
// §7.3), the VIP lives on the macvlan vrrp.88, and a client's neighbour
// entry for the VIP is that MAC before and after a failover, so it needs
// no new ARP.

const vmacName = "vrrp.88"

var vmacMAC = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 88}

func vmacConf(t *testing.T, name string, prio int) string {
	return writeConf(t, name, fmt.Sprintf(`vrrp_instance VI_1 {
    state BACKUP
    interface ens33
    virtual_router_id 88
    priority %d
    advert_int 1
    use_vmac
    virtual_ipaddress {
        192.168.1.100/24
    }
}
`, prio))
}

// wantAdvertsFrom captures 3 s of adverts in the client and checks that
// all came from the virtual MAC and src (who sent them, for the message).
func wantAdvertsFrom(t *testing.T, l *lab.Lab, who, src string) {
	t.Helper()
	lines, err := capture(l, "client", "ens33", 3*time.Second, "eth.src", "ip.src")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 {
		t.Fatalf("captured %d adverts in 3 s, want at least 2", len(lines))
	}
	want := vmacMAC.String() + "," + src
	for _, ln := range lines {
		if ln != want {
			t.Errorf("%s's advert came from %s, want %s (virtual MAC, the parent's address)", who, ln, want)
		}
	}
}

// reachesVIP checks that the client's pinned entry (the virtual MAC)
// reaches the VIP, now on who.
func reachesVIP(t *testing.T, l *lab.Lab, who string) {
	t.Helper()
	if err := l.Ping("client", vip001, 5*time.Second); err != nil {
		t.Errorf("the client's pinned entry (the virtual MAC) does not reach the VIP on %s: %v", who, err)
	}
}

// pinnedClient pings the VIP from the client, checks that the client
// learnt the virtual MAC for it (the master's ARP reply came from the
// macvlan), and pins that entry (nud permanent): from then on the client
// never asks again, so a ping after a failover works only if the new
// master answers at the same MAC.
//
// The directors first learn the client's MAC from pings of their own:
// otherwise the master's reply, routed out of ens33, makes it ask for the
// client from ens33 with the VIP as sender (arp_announce 0), and the
// client takes ens33's MAC for the VIP. keepalived's VMAC does the same;
// it is the kernel's ARP, not the VMAC's.
func pinnedClient(t *testing.T, l *lab.Lab) {
	t.Helper()
	client := lab.Seed001().Client.Addr
	for _, node := range []string{"ka1", "ka2"} {
		if err := l.Ping(node, client, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ping("client", vip001, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if mac := neighbourMAC(t, l, "client", vip001); mac.String() != vmacMAC.String() {
		t.Fatalf("client's neighbour entry for %s is %v, want the virtual MAC %s", vip001, mac, vmacMAC)
	}
	if err := l.Do("client", func() error {
		link, err := netlink.LinkByName("ens33")
		if err != nil {
			return err
		}
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: vip001.AsSlice(), HardwareAddr: vmacMAC,
			State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4})
	}); err != nil {
		t.Fatal(err)
	}
}

// vmacIndex is the index of node's vrrp.88 (0 if there is none).
func vmacIndex(t *testing.T, l *lab.Lab, node string) int {
	t.Helper()
	idx := 0
	if err := l.Do(node, func() error {
		link, err := netlink.LinkByName(vmacName)
		if err != nil {
			return nil
		}
		if mv, ok := link.(*netlink.Macvlan); !ok || mv.Mode != netlink.MACVLAN_MODE_PRIVATE || mv.HardwareAddr.String() != vmacMAC.String() {
			return fmt.Errorf("%s on %s: %s %+v, want a private macvlan with %s", vmacName, node, link.Type(), link.Attrs(), vmacMAC)
		}
		idx = link.Attrs().Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// sysctlOf reads a net sysctl in node (a path under /proc/sys).
func sysctlOf(t *testing.T, l *lab.Lab, node, key string) int {
	t.Helper()
	v := -1
	if err := l.Do(node, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if err != nil {
			return err
		}
		v, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVMACInteropTandemMaster: Tandem (priority 100) and keepalived (90),
// both with use_vmac. Tandem is master and sends from the virtual MAC;
// it crashes, keepalived takes over at the same MAC (the client's pinned
// entry still reaches the VIP); Tandem restarts, adopts the macvlan its
// crash left, cleans it and takes the VIP back; a clean stop removes the
// macvlan and restores ens33's arp_ignore and arp_filter, and the
// rp_filter settings cleared for the macvlan.
func TestVMACInteropTandemMaster(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	if err := l.Sysctl("ka1", "net.ipv4.conf.all.rp_filter", "2"); err != nil {
		t.Fatal(err)
	}
	conf := vmacConf(t, "ka1.conf", 100)
	ka1 := startTandem(t, l, "ka1", conf)
	ka2 := startKeepalived(t, l, "ka2", vmacConf(t, "ka2.conf", 90))
	waitFor(t, "Tandem MASTER, keepalived BACKUP", 15*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.lastState("VI_1") == "BACKUP"
	})
	if in := ka1.instance(t, "VI_1"); in.VMAC != vmacName {
		t.Errorf("status: vmac %q, want %s", in.VMAC, vmacName)
	}
	if !holds(t, l, "ka1", vmacName, vip001) || holds(t, l, "ka1", "ens33", vip001) {
		t.Errorf("the VIP is not on ka1's %s (alone)", vmacName)
	}
	for _, c := range []struct {
		key  string
		want int
	}{
		{"net/ipv4/conf/" + vmacName + "/arp_ignore", 1}, {"net/ipv4/conf/" + vmacName + "/accept_local", 1},
		{"net/ipv4/conf/" + vmacName + "/rp_filter", 0}, {"net/ipv4/conf/ens33/arp_ignore", 1}, {"net/ipv4/conf/ens33/arp_filter", 1},
		{"net/ipv4/conf/all/rp_filter", 0}, {"net/ipv4/conf/ens33/rp_filter", 2},
	} {
		if v := sysctlOf(t, l, "ka1", c.key); v != c.want {
			t.Errorf("ka1 %s = %d, want %d", c.key, v, c.want)
		}
	}
	wantAdvertsFrom(t, l, "Tandem", "192.168.1.4")
	if ka2.lastState("VI_1") != "BACKUP" {
		t.Fatalf("keepalived does not accept Tandem's adverts from the VMAC:\n%s", ka2.proc.Output())
	}
	pinnedClient(t, l)
	before := vmacIndex(t, l, "ka1")

	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "keepalived MASTER after Tandem's crash", 10*time.Second, func() bool {
		return ka2.lastState("VI_1") == "MASTER" && holds(t, l, "ka2", vmacName, vip001)
	})
	wantAdvertsFrom(t, l, "keepalived", "192.168.1.8")
	reachesVIP(t, l, "keepalived")

	ka1 = startTandem(t, l, "ka1", conf)
	waitFor(t, "Tandem MASTER again, keepalived BACKUP", 15*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.lastState("VI_1") == "BACKUP"
	})
	if after := vmacIndex(t, l, "ka1"); after != before {
		t.Errorf("the restart re-created %s (index %d -> %d) instead of adopting it", vmacName, before, after)
	}
	waitFor(t, "the VIP on ka1 only", 5*time.Second, func() bool {
		return !holds(t, l, "ka2", vmacName, vip001) && holds(t, l, "ka1", vmacName, vip001)
	})
	reachesVIP(t, l, "Tandem")

	if err := ka1.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if idx := vmacIndex(t, l, "ka1"); idx != 0 {
		t.Errorf("%s left on ka1 after a clean stop", vmacName)
	}
	// all.rp_filter comes back from the macvlan's record although the run
	// that cleared it crashed; ens33's, raised to it then, stays raised,
	// which with all back at 2 filters exactly as before (the kernel
	// takes the larger).
	for key, want := range map[string]int{"net/ipv4/conf/ens33/arp_ignore": 0, "net/ipv4/conf/ens33/arp_filter": 0,
		"net/ipv4/conf/all/rp_filter": 2, "net/ipv4/conf/ens33/rp_filter": 2} {
		if v := sysctlOf(t, l, "ka1", key); v != want {
			t.Errorf("ka1 %s = %d after the stop, want %d (restored)", key, v, want)
		}
	}
}

// TestVMACInteropKeepalivedMaster is the reverse: keepalived (100) master,
// Tandem (90) backup with its macvlan up and empty; keepalived crashes and
// Tandem serves the VIP at the same MAC. Tandem's node has strict reverse
// path filtering on all interfaces, which would drop the adverts on the
// macvlan had Tandem not cleared it as keepalived does.
func TestVMACInteropKeepalivedMaster(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	if err := l.Sysctl("ka2", "net.ipv4.conf.all.rp_filter", "1"); err != nil {
		t.Fatal(err)
	}
	ka1 := startKeepalived(t, l, "ka1", vmacConf(t, "ka1.conf", 100))
	ka2 := startTandem(t, l, "ka2", vmacConf(t, "ka2.conf", 90))
	waitFor(t, "keepalived MASTER, Tandem BACKUP", 15*time.Second, func() bool {
		return ka1.lastState("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	time.Sleep(3 * time.Second) // Tandem would have taken over by now if it missed keepalived's adverts
	if in := ka2.instance(t, "VI_1"); in.State != "BACKUP" || in.MasterIP != "192.168.1.4" || len(in.Dropped) > 0 {
		t.Fatalf("Tandem's view of keepalived: %s, master %q, dropped %v", in.State, in.MasterIP, in.Dropped)
	}
	// Tandem may have been master before keepalived came up: it then
	// drains the VIP for handover_drain (6 s) after it yields.
	waitFor(t, "Tandem's backup without the VIP", 10*time.Second, func() bool { return !holds(t, l, "ka2", vmacName, vip001) })
	if vmacIndex(t, l, "ka2") == 0 {
		t.Errorf("Tandem's backup: want %s present", vmacName)
	}
	wantAdvertsFrom(t, l, "keepalived", "192.168.1.4")
	pinnedClient(t, l)

	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Tandem MASTER after keepalived's crash", 10*time.Second, func() bool {
		return ka2.state("VI_1") == "MASTER" && holds(t, l, "ka2", vmacName, vip001)
	})
	wantAdvertsFrom(t, l, "Tandem", "192.168.1.8")
	reachesVIP(t, l, "Tandem")
}

// TestVMACInteropIPv6: an IPv6 instance's VMAC (00:00:5e:00:02:58,
// vrrp.88) sends from the parent's link-local address, as keepalived's
// does: Tandem master and keepalived backup agree, and keepalived takes
// over when Tandem crashes.
func TestVMACInteropIPv6(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(name string, prio int) string {
		return writeConf(t, name, fmt.Sprintf(`vrrp_instance VI_1 {
    state BACKUP
    interface ens33
    virtual_router_id 88
    priority %d
    advert_int 1
    version 3
    use_vmac
    virtual_ipaddress {
        fd00:88::100/64
    }
}
`, prio))
	}
	vip := netip.MustParseAddr("fd00:88::100")
	ka1 := startTandem(t, l, "ka1", conf("ka1.conf", 100))
	ka2 := startKeepalived(t, l, "ka2", conf("ka2.conf", 90))
	waitFor(t, "Tandem MASTER, keepalived BACKUP", 15*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.lastState("VI_1") == "BACKUP"
	})
	if !holds(t, l, "ka1", vmacName, vip) {
		t.Errorf("the VIP is not on ka1's %s", vmacName)
	}
	lines, err := capture(l, "client", "ens33", 3*time.Second, "eth.src", "ipv6.src")
	if err != nil {
		t.Fatal(err)
	}
	ll := ""
	if err := l.Do("ka1", func() error {
		link, err := netlink.LinkByName("ens33")
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(link, netlink.FAMILY_V6)
		for _, a := range as {
			if a.IP.IsLinkLocalUnicast() {
				ll = a.IP.String()
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 {
		t.Fatalf("captured %d adverts in 3 s, want at least 2", len(lines))
	}
	for _, ln := range lines {
		if want := "00:00:5e:00:02:58," + ll; ln != want {
			t.Errorf("Tandem's IPv6 advert came from %s, want %s (virtual MAC, ens33's link-local address)", ln, want)
		}
	}
	time.Sleep(3 * time.Second) // keepalived would have taken over by now if it rejected the adverts
	if ka2.lastState("VI_1") != "BACKUP" {
		t.Fatalf("keepalived does not accept Tandem's IPv6 adverts from the VMAC:\n%s", ka2.proc.Output())
	}
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "keepalived MASTER after Tandem's crash", 10*time.Second, func() bool {
		return ka2.lastState("VI_1") == "MASTER" && holds(t, l, "ka2", vmacName, vip)
	})
}

// TestVMACReload: a reload that adds use_vmac to one instance re-creates
// that instance on its new macvlan and leaves the other alone; one that
// removes it puts the VIP back on the interface and the macvlan goes.
func TestVMACReload(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(vmac string) string {
		return fmt.Sprintf(`vrrp_instance VI_1 {
    interface ens33
    virtual_router_id 88
    priority 100
    advert_int 1
%s
    virtual_ipaddress {
        192.168.1.100/24
    }
}
vrrp_instance VI_2 {
    interface ens33
    virtual_router_id 89
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.168.1.101/24
    }
}
`, vmac)
	}
	path := writeConf(t, "ka1.conf", conf(""))
	ka1 := startTandem(t, l, "ka1", path)
	waitFor(t, "both MASTER", 15*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka1.state("VI_2") == "MASTER" })
	vi2 := ka1.instance(t, "VI_2")
	vip2 := netip.MustParseAddr("192.168.1.101")

	for _, step := range []struct {
		name, vmac string
		on, off    string
	}{
		{"add use_vmac", "    use_vmac", vmacName, "ens33"},
		{"remove use_vmac", "", "ens33", vmacName},
	} {
		if err := os.WriteFile(path, []byte(conf(step.vmac)), 0o644); err != nil {
			t.Fatal(err)
		}
		reloadApplied(t, ka1)
		waitFor(t, step.name+": VI_1 MASTER with the VIP on "+step.on, 15*time.Second, func() bool {
			return ka1.state("VI_1") == "MASTER" && holds(t, l, "ka1", step.on, vip001)
		})
		if step.off == vmacName && vmacIndex(t, l, "ka1") != 0 {
			t.Errorf("%s: %s still there", step.name, vmacName)
		} else if step.off == "ens33" && holds(t, l, "ka1", "ens33", vip001) {
			t.Errorf("%s: the VIP is on ens33 as well", step.name)
		}
		if in := ka1.instance(t, "VI_2"); in.Transitions != vi2.Transitions || !in.Since.Equal(vi2.Since) || !holds(t, l, "ka1", "ens33", vip2) {
			t.Errorf("%s disturbed VI_2: transitions %d -> %d, since %v -> %v", step.name, vi2.Transitions, in.Transitions, vi2.Since, in.Since)
		}
	}
}
