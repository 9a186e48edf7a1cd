package netio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// ifaceOf returns the link an address, route or rule goes on: its own dev,
// else the instance's interface.
func ifaceOf(dev, fallback string) (netlink.Link, error) {
	name := dev
	if name == "" {
		name = fallback
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	return l, nil
}

// nlAddr turns a configured address into netlink's form. IPv6 addresses get
// IFA_F_NODAD as keepalived gives them: a VIP moving to a new master must
// be usable at once, not after duplicate address detection, and the old
// master is by definition not using it any more.
func nlAddr(a *config.IPAddress) *netlink.Addr {
	pfx := a.Prefix
	na := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}, Label: a.Label, Scope: int(a.Scope)}
	if a.Peer.IsValid() {
		na.Peer = &net.IPNet{IP: a.Peer.AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}
		na.IPNet.Mask = net.CIDRMask(pfx.Addr().BitLen(), pfx.Addr().BitLen())
	}
	switch {
	case a.Broadcast.None:
		// netlink computes a broadcast when none is given; 0.0.0.0 is
		// its way to send none (`brd -`, ip-address(8)).
		na.Broadcast = net.IPv4zero
	case a.Broadcast.Addr.IsValid():
		na.Broadcast = a.Broadcast.Addr.AsSlice()
	}
	flags := 0
	if pfx.Addr().Is6() {
		flags |= unix.IFA_F_NODAD
	}
	if a.NoDAD {
		flags |= unix.IFA_F_NODAD
	}
	if a.Home {
		flags |= unix.IFA_F_HOMEADDRESS
	}
	if a.MngTmpAddr {
		flags |= unix.IFA_F_MANAGETEMPADDR
	}
	if a.NoPrefixRoute {
		flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if a.AutoJoin {
		flags |= unix.IFA_F_MCAUTOJOIN
	}
	na.Flags = flags
	if a.PreferredLft != nil {
		na.PreferedLft = int(*a.PreferredLft)
		na.ValidLft = int(^uint32(0))
	}
	return na
}

// AddAddress adds a virtual address to its interface (dev, else iface). An
// address already there is not an error: it is what we want.
func AddAddress(iface string, a *config.IPAddress) error {
	l, err := ifaceOf(a.Dev, iface)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, nlAddr(a)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", a.Prefix, l.Attrs().Name, err)
	}
	return nil
}

// DelAddress removes a virtual address; an address that is not there is
// not an error.
func DelAddress(iface string, a *config.IPAddress) error {
	l, err := ifaceOf(a.Dev, iface)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, nlAddr(a)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("delete %s from %s: %w", a.Prefix, l.Attrs().Name, err)
	}
	return nil
}

// HasAddress reports whether the address is on its interface.
func HasAddress(iface string, a *config.IPAddress) (bool, error) {
	l, err := ifaceOf(a.Dev, iface)
	if err != nil {
		return false, err
	}
	fam := netlink.FAMILY_V4
	if a.Prefix.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(l, fam)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a.Prefix.Addr() {
			return true, nil
		}
	}
	return false, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// nlRoute turns a configured route into netlink's form. "or" gateways make
// a multipath route over the via gateway and the alternatives.
func nlRoute(iface string, r *config.Route) (*netlink.Route, error) {
	// Table 0 (not given) is the main table: netlink sends RT_TABLE_MAIN.
	nr := &netlink.Route{Dst: prefixNet(r.Dst), Scope: netlink.Scope(r.Scope), Table: int(r.Table), Protocol: netlink.RouteProtocol(r.Proto)}
	switch {
	case r.Type != 0:
		nr.Type = int(r.Type)
	case r.Dev == "" && iface == "":
		// A static route without dev: the kernel finds the interface
		// through the gateway, as `ip route add` does.
	default:
		l, err := ifaceOf(r.Dev, iface)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if len(r.Or) > 0 {
		for _, gw := range append([]netip.Addr{r.Via}, r.Or...) {
			nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{LinkIndex: nr.LinkIndex, Gw: gw.AsSlice()})
		}
		nr.LinkIndex = 0
	} else if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Metric != nil {
		nr.Priority = int(*r.Metric)
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	return nr, nil
}

// AddRoute installs a virtual route (replacing one with the same key).
func AddRoute(iface string, r *config.Route) error {
	nr, err := nlRoute(iface, r)
	if err != nil {
		return err
	}
	if err := netlink.RouteReplace(nr); err != nil {
		return fmt.Errorf("add route %s: %w", r.Dst, err)
	}
	return nil
}

// DelRoute removes a virtual route; a route that is not there is not an error.
func DelRoute(iface string, r *config.Route) error {
	nr, err := nlRoute(iface, r)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("delete route %s: %w", r.Dst, err)
	}
	return nil
}

func nlRule(r *config.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Invert = r.Not
	if r.From.IsValid() {
		nr.Src = prefixNet(r.From)
		nr.Family = familyOf(r.From.Addr())
	}
	if r.To.IsValid() {
		nr.Dst = prefixNet(r.To)
		nr.Family = familyOf(r.To.Addr())
	}
	if r.Table != 0 {
		nr.Table = int(r.Table)
	}
	if r.Priority != nil {
		nr.Priority = int(*r.Priority)
	}
	nr.IifName, nr.OifName = r.IIF, r.OIF
	nr.Mark, nr.Mask, nr.Tos = r.FWMark, r.FWMask, uint(r.TOS)
	return nr
}

func familyOf(a netip.Addr) int {
	if a.Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

// AddRule installs a policy-routing rule.
func AddRule(r *config.Rule) error {
	if err := netlink.RuleAdd(nlRule(r)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add rule: %w", err)
	}
	return nil
}

// DelRule removes a policy-routing rule; a rule that is not there is not
// an error.
func DelRule(r *config.Rule) error {
	if err := netlink.RuleDel(nlRule(r)); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("delete rule: %w", err)
	}
	return nil
}
