package netio

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// VMAC is one use_vmac interface: a macvlan in private mode on Parent with
// the virtual router's MAC (keepalived vrrp_vmac.c, netlink_link_add_vmac);
// or, with IPVLAN, one use_ipvlan interface: an ipvlan in L2 mode, which
// shares its parent's MAC (netlink_link_add_ipvlan).
type VMAC struct {
	Name, Parent string
	MAC          net.HardwareAddr // the macvlan's; none for an ipvlan
	// IPVLAN makes the interface an ipvlan, with IPVLANMode's flag
	// ("" bridge, "private", "vepa") and its own address Addr (if
	// valid), which keepalived adds once the link is up.
	IPVLAN     bool
	IPVLANMode string
	Addr       netip.Prefix
	// Owner is the vrrp_instance, written into the link's alias with the
	// mark that says Tandem created it.
	Owner string
	// IPv6 is the instance's family; KeepIPv6 keeps IPv6 running on the
	// macvlan for an IPv4 instance (its excluded addresses have IPv6 ones).
	IPv6, KeepIPv6 bool
	// SendsFrom says adverts go out of the macvlan (not vmac_xmit_base):
	// an IPv6 one then gets the parent's link-local address to send from
	// (keepalived's set_link_local_address).
	SendsFrom bool
	// AllRPFilter is net.ipv4.conf.all.rp_filter before ClearRPFilter
	// set it to 0 (0: it was 0), recorded with the mark so that a run
	// after a crash can put it back.
	AllRPFilter int
}

// Sysctl is one /proc/sys/net setting, by path under /proc/sys.
type Sysctl struct {
	Key   string
	Value int
}

// vmacMark starts the alias of every macvlan Tandem creates: with the
// name, it is how a later run knows the link is its own to adopt or
// remove. The rest of the alias records the parent's arp_ignore and
// arp_filter as they were before the first VMAC changed them, so that they
// are restored when the last one goes, even after a crash.
const vmacMark = "tandem-vmac"

// vmacAlias is the alias of an IPv4 VMAC recording the parent's values,
// or of an IPv6 one (orig nil: the parent is not changed), and all's
// rp_filter before it was cleared (allRP, if not 0).
func vmacAlias(owner string, orig []Sysctl, allRP int) string {
	var b strings.Builder
	b.WriteString(vmacMark)
	for _, s := range orig {
		fmt.Fprintf(&b, " %s=%d", filepath.Base(s.Key), s.Value)
	}
	if allRP != 0 {
		fmt.Fprintf(&b, " %s=%d", allRPKey, allRP)
	}
	b.WriteString(" instance=" + owner)
	return b.String()
}

const allRPKey = "all_rp_filter"

// vmacRecord is what a VMAC's alias says.
type vmacRecord struct {
	owner string
	orig  []Sysctl // the parent's settings before
	allRP int      // all.rp_filter before (0: it was 0)
}

// parseVMACAlias reads what vmacAlias wrote: ok is false for a link that
// is not Tandem's.
func parseVMACAlias(alias, parent string) (r vmacRecord, ok bool) {
	f := strings.Fields(alias)
	if len(f) < 2 || f[0] != vmacMark {
		return r, false
	}
	for _, kv := range f[1:] {
		k, v, found := strings.Cut(kv, "=")
		if !found {
			return vmacRecord{}, false
		}
		if k == "instance" {
			r.owner = v
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return vmacRecord{}, false
		}
		if k == allRPKey {
			r.allRP = n
			continue
		}
		r.orig = append(r.orig, Sysctl{Key: ipv4Conf(parent, k), Value: n})
	}
	return r, r.owner != ""
}

func ipv4Conf(iface, key string) string { return "net/ipv4/conf/" + iface + "/" + key }

// VMACSysctls are the settings keepalived makes for a VMAC
// (vrrp_if_config.c): on the macvlan, arp_ignore=1 (answer ARP only for
// its own addresses, the VIPs) and, for IPv4, accept_local=1 (hear the
// other router's adverts from an address that is local on the parent),
// rp_filter=0 (receive on an interface without an address) and
// promote_secondaries=1; on the parent, for IPv4, arp_ignore=1 and
// arp_filter=1 (do not answer for the VIPs, which are on the macvlan).
// An IPv4 instance's macvlan also runs without IPv6 unless it carries
// IPv6 addresses (keepalived's link_set_ipv6), so that it sends no MLD or
// DAD from the virtual MAC while BACKUP.
//
// For an ipvlan keepalived makes none of these but the IPv6 one: it
// shares the parent's MAC and answers ARP for its own addresses only.
func VMACSysctls(v VMAC) (vmac, parent []Sysctl) {
	if v.IPVLAN {
		if v.IPv6 {
			return nil, nil
		}
		return []Sysctl{disableIPv6(v)}, nil
	}
	vmac = []Sysctl{{ipv4Conf(v.Name, "arp_ignore"), 1}}
	if v.IPv6 {
		return vmac, nil
	}
	vmac = append(vmac,
		Sysctl{ipv4Conf(v.Name, "accept_local"), 1},
		Sysctl{ipv4Conf(v.Name, "rp_filter"), 0},
		Sysctl{ipv4Conf(v.Name, "promote_secondaries"), 1})
	vmac = append(vmac, disableIPv6(v))
	parent = []Sysctl{{ipv4Conf(v.Parent, "arp_ignore"), 1}, {ipv4Conf(v.Parent, "arp_filter"), 1}}
	return vmac, parent
}

// disableIPv6 is an IPv4 instance's VMAC running without IPv6 unless it
// keeps it; written either way: an adopted link may have it the other way.
func disableIPv6(v VMAC) Sysctl {
	disable := 1
	if v.KeepIPv6 {
		disable = 0
	}
	return Sysctl{"net/ipv6/conf/" + v.Name + "/disable_ipv6", disable}
}

// sysctlRoot is where Sysctl keys live; the network ones are those of the
// namespace of the process (/proc/self).
const sysctlRoot = "/proc/sys"

func readSysctl(key string) (int, error) {
	b, err := os.ReadFile(filepath.Join(sysctlRoot, key))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(bytes.TrimSpace(b)))
}

func writeSysctl(s Sysctl) error {
	if err := os.WriteFile(filepath.Join(sysctlRoot, s.Key), []byte(strconv.Itoa(s.Value)), 0); err != nil {
		return fmt.Errorf("sysctl %s=%d: %w", strings.ReplaceAll(s.Key, "/", "."), s.Value, err)
	}
	return nil
}

// ErrNotOurs is returned for an interface of a VMAC's name that Tandem did
// not create: it is never changed or removed.
var ErrNotOurs = errors.New("exists and was not created by Tandem")

// ourVMACs are the macvlans and ipvlans Tandem created in this
// namespace, by name.
func ourVMACs() (map[string]netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := map[string]netlink.Link{}
	for _, l := range links {
		switch l.(type) {
		case *netlink.Macvlan, *netlink.IPVlan:
			if strings.HasPrefix(l.Attrs().Alias, vmacMark+" ") {
				out[l.Attrs().Name] = l
			}
		}
	}
	return out, nil
}

// ipvlanFlags are use_ipvlan's modes.
var ipvlanFlags = map[string]netlink.IPVlanFlag{"": netlink.IPVLAN_FLAG_BRIDGE, "private": netlink.IPVLAN_FLAG_PRIVATE, "vepa": netlink.IPVLAN_FLAG_VEPA}

// newVMACLink is the link v asks for on parent.
func newVMACLink(v VMAC, parent netlink.Link) netlink.Link {
	attrs := netlink.LinkAttrs{Name: v.Name, ParentIndex: parent.Attrs().Index, Group: parent.Attrs().Group}
	if v.IPVLAN {
		return &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L2, Flag: ipvlanFlags[v.IPVLANMode]}
	}
	attrs.HardwareAddr = v.MAC
	return &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_PRIVATE}
}

// sameVMACLink reports whether old, a link of ours, is the one v asks for
// on parent, to adopt as it is.
func sameVMACLink(old netlink.Link, v VMAC, parent netlink.Link) bool {
	if old.Attrs().ParentIndex != parent.Attrs().Index {
		return false
	}
	switch l := old.(type) {
	case *netlink.Macvlan:
		return !v.IPVLAN && l.Mode == netlink.MACVLAN_MODE_PRIVATE && bytes.Equal(l.HardwareAddr, v.MAC)
	case *netlink.IPVlan:
		return v.IPVLAN && l.Mode == netlink.IPVLAN_MODE_L2 && l.Flag == ipvlanFlags[v.IPVLANMode]
	}
	return false
}

// AddVMAC creates the VMAC, or adopts the one of that name a previous run
// left (recreating it if its parent, MAC or mode differ), sets the
// sysctls and brings it up. keepalived keeps the macvlan up whatever the
// state: only the addresses move.
func AddVMAC(v VMAC) error {
	parent, err := netlink.LinkByName(v.Parent)
	if err != nil {
		return fmt.Errorf("vmac %s: parent %s: %w", v.Name, v.Parent, err)
	}
	ours, err := ourVMACs()
	if err != nil {
		return fmt.Errorf("vmac %s: %w", v.Name, err)
	}
	var orig []Sysctl // the parent's values before any of our VMACs
	if old, ok := ours[v.Name]; ok {
		rec, _ := parseVMACAlias(old.Attrs().Alias, v.Parent)
		_, parentSet := VMACSysctls(v)
		if sameVMACLink(old, v, parent) && (rec.orig != nil) == (parentSet != nil) {
			if err := netlink.LinkSetAlias(old, vmacAlias(v.Owner, rec.orig, v.AllRPFilter)); err != nil {
				return fmt.Errorf("vmac %s: mark: %w", v.Name, err)
			}
			return setupVMAC(v, old)
		}
		if err := DelVMAC(v.Name); err != nil {
			return err
		}
		delete(ours, v.Name)
	} else if l, err := netlink.LinkByName(v.Name); err == nil {
		return fmt.Errorf("vmac %s: interface %s (%s) %w", v.Name, v.Name, l.Type(), ErrNotOurs)
	}
	_, parentSet := VMACSysctls(v)
	if parentSet != nil {
		orig, err = parentOriginals(ours, parent, parentSet)
		if err != nil {
			return fmt.Errorf("vmac %s: %w", v.Name, err)
		}
	}
	mv := newVMACLink(v, parent)
	if err := netlink.LinkAdd(mv); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = fmt.Errorf("%w: this kernel has no %s driver (CONFIG_%s; modprobe %s)", err, mv.Type(), strings.ToUpper(mv.Type()), mv.Type())
		}
		return fmt.Errorf("vmac %s: create %s on %s: %w", v.Name, mv.Type(), v.Parent, err)
	}
	if err := netlink.LinkSetAlias(mv, vmacAlias(v.Owner, orig, v.AllRPFilter)); err != nil {
		netlink.LinkDel(mv)
		return fmt.Errorf("vmac %s: mark: %w", v.Name, err)
	}
	return setupVMAC(v, mv)
}

// parentOriginals are the parent's values of the settings a VMAC changes:
// those another of our VMACs on it recorded, else the current ones.
func parentOriginals(ours map[string]netlink.Link, parent netlink.Link, set []Sysctl) ([]Sysctl, error) {
	for _, mv := range ours {
		if mv.Attrs().ParentIndex != parent.Attrs().Index {
			continue
		}
		if rec, ok := parseVMACAlias(mv.Attrs().Alias, parent.Attrs().Name); ok && rec.orig != nil {
			return rec.orig, nil
		}
	}
	var orig []Sysctl
	for _, s := range set {
		v, err := readSysctl(s.Key)
		if err != nil {
			return nil, err
		}
		orig = append(orig, Sysctl{s.Key, v})
	}
	return orig, nil
}

// setupVMAC makes the settings and brings the link up. IPv6 address
// generation is off before a macvlan goes up, so that it gets no EUI-64
// link-local address from the shared virtual MAC (RFC 5798 §7.4); an
// ipvlan, whose MAC is its parent's, keeps the kernel's way, as in
// keepalived, and gets its address once up.
func setupVMAC(v VMAC, l netlink.Link) error {
	if !v.IPVLAN {
		if err := netlink.LinkSetIP6AddrGenMode(l, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
			return fmt.Errorf("vmac %s: addrgenmode none: %w", v.Name, err)
		}
	}
	vm, parent := VMACSysctls(v)
	for _, s := range append(vm, parent...) {
		if err := writeSysctl(s); err != nil {
			return fmt.Errorf("vmac %s: %w", v.Name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("vmac %s: set up: %w", v.Name, err)
	}
	if v.IPVLAN {
		if !v.Addr.IsValid() {
			return nil
		}
		if err := AddAddress(v.Name, &config.IPAddress{Prefix: v.Addr}); err != nil {
			return fmt.Errorf("vmac %s: %w", v.Name, err)
		}
		return nil
	}
	if !v.IPv6 || !v.SendsFrom {
		return nil
	}
	ll, err := parentLinkLocal(v.Parent)
	if err != nil {
		return fmt.Errorf("vmac %s: %w", v.Name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ll, Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrReplace(l, a); err != nil {
		return fmt.Errorf("vmac %s: link-local address %s: %w", v.Name, ll, err)
	}
	return nil
}

// parentLinkLocal is the parent's link-local address, or the EUI-64 one
// of its MAC if it has none (keepalived's make_link_local_address).
func parentLinkLocal(name string) (net.IP, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("parent %s: %w", name, err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() {
			return a.IP, nil
		}
	}
	return eui64LinkLocal(l.Attrs().HardwareAddr), nil
}

// eui64LinkLocal is fe80::/64 with the modified EUI-64 interface
// identifier of mac (RFC 4291 appendix A).
func eui64LinkLocal(mac net.HardwareAddr) net.IP {
	ip := make(net.IP, 16)
	ip[0], ip[1] = 0xfe, 0x80
	if len(mac) == 6 {
		ip[8], ip[9], ip[10], ip[11], ip[12] = mac[0]^0x02, mac[1], mac[2], 0xff, 0xfe
		ip[13], ip[14], ip[15] = mac[3], mac[4], mac[5]
	}
	return ip
}

// DelVMAC removes a VMAC Tandem created (a link of that name that is not
// ours is left alone, with ErrNotOurs; none at all is not an error), and
// restores its parent's settings if no other of our VMACs is on it.
func DelVMAC(name string) error {
	ours, err := ourVMACs()
	if err != nil {
		return fmt.Errorf("vmac %s: %w", name, err)
	}
	mv, ok := ours[name]
	if !ok {
		if _, err := netlink.LinkByName(name); err == nil {
			return fmt.Errorf("vmac %s: %w", name, ErrNotOurs)
		}
		return nil
	}
	if err := netlink.LinkDel(mv); err != nil {
		return fmt.Errorf("vmac %s: delete: %w", name, err)
	}
	delete(ours, name)
	for _, o := range ours {
		if o.Attrs().ParentIndex == mv.Attrs().ParentIndex {
			return nil
		}
	}
	parent, err := netlink.LinkByIndex(mv.Attrs().ParentIndex)
	if err != nil {
		return nil // the parent went too: nothing to restore
	}
	rec, _ := parseVMACAlias(mv.Attrs().Alias, parent.Attrs().Name)
	for _, s := range rec.orig {
		if err := writeSysctl(s); err != nil {
			return fmt.Errorf("vmac %s: restore %s: %w", name, parent.Attrs().Name, err)
		}
	}
	return nil
}

// StaleVMACs are the VMACs Tandem created that are not in keep: those a
// run that crashed left for a configuration that no longer has them.
func StaleVMACs(keep map[string]bool) ([]string, error) {
	ours, err := ourVMACs()
	if err != nil {
		return nil, err
	}
	var out []string
	for name := range ours {
		if !keep[name] {
			out = append(out, name)
		}
	}
	return out, nil
}

// RPFilter is what ClearRPFilter changed, to put back at exit.
type RPFilter struct {
	all     int
	changed []Sysctl // the keys raised to all's value, with their values before
}

// ClearRPFilter lets VMACs run with rp_filter 0, which the kernel ANDs
// with nothing but takes the maximum of with net.ipv4.conf.all.rp_filter:
// as keepalived does (vrrp_if_config.c, clear_rp_filter), when all is
// non-zero it first raises default and every interface below all's value
// to it, so that nothing else changes behaviour, then sets all to 0. It
// returns nil when all is 0 already, unless a VMAC an earlier run left
// recorded a value: that run cleared it and crashed, and the value is
// the one to put back (the interfaces it raised stay raised, which with
// all at that value again changes nothing).
func ClearRPFilter() (*RPFilter, error) {
	key := func(iface string) string { return ipv4Conf(iface, "rp_filter") }
	all, err := readSysctl(key("all"))
	if err != nil {
		return nil, err
	}
	if all == 0 {
		ours, err := ourVMACs()
		if err != nil {
			return nil, err
		}
		for _, mv := range ours {
			if rec, ok := parseVMACAlias(mv.Attrs().Alias, ""); ok && rec.allRP != 0 {
				return &RPFilter{all: rec.allRP}, nil
			}
		}
		return nil, nil
	}
	r := &RPFilter{all: all}
	dirs, err := os.ReadDir(filepath.Join(sysctlRoot, "net/ipv4/conf"))
	if err != nil {
		return nil, err
	}
	names := []string{"default"}
	for _, d := range dirs {
		if n := d.Name(); n != "all" && n != "default" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		v, err := readSysctl(key(n))
		if err != nil || v >= all {
			continue // an interface going away meanwhile is no matter
		}
		if err := writeSysctl(Sysctl{key(n), all}); err != nil {
			return r, err
		}
		r.changed = append(r.changed, Sysctl{key(n), v})
	}
	return r, writeSysctl(Sysctl{key("all"), 0})
}

// All is all.rp_filter as it was before ClearRPFilter.
func (r *RPFilter) All() int { return r.all }

// Restore puts back what ClearRPFilter changed, where nobody changed it
// since (keepalived's restore_rp_filter).
func (r *RPFilter) Restore() error {
	var errs []error
	if v, err := readSysctl(ipv4Conf("all", "rp_filter")); err == nil && v == 0 {
		errs = append(errs, writeSysctl(Sysctl{ipv4Conf("all", "rp_filter"), r.all}))
	}
	for _, s := range r.changed {
		if v, err := readSysctl(s.Key); err == nil && v == r.all {
			errs = append(errs, writeSysctl(s))
		}
	}
	return errors.Join(errs...)
}
