package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoKernelTunnel is wrapped by UpTun's error when this kernel cannot
// decapsulate what an LVS-TUN director sends: no IPIP tunnel driver
// (CONFIG_NET_IPIP, module ipip, whose catch-all device is tunl0), no IPv6
// one (CONFIG_IPV6_TUNNEL, module ip6_tunnel: ip6tnl0) for IPv6 VIPs, or,
// for GUE, no foo-over-UDP (CONFIG_NET_FOU, module fou). UpTun has then
// changed nothing (a tunnel device it had set up for the other family is
// put back). Match it with errors.Is: it is where a decapsulation that does
// not need the kernel's tunnels (XDP) can take over.
var ErrNoKernelTunnel = errors.New("this kernel cannot decapsulate LVS-TUN packets")

// TunType is how the director encapsulates (keepalived's "lb_kind TUN
// type ipip|gue").
type TunType string

// The encapsulations UpTun prepares for.
const (
	TunIPIP TunType = "ipip" // IP in IP (RFC 2003), the default
	TunGUE  TunType = "gue"  // Generic UDP Encapsulation to a port, IPIP inside
)

// Tun is what a TUN real server decapsulates.
type Tun struct {
	Type TunType
	// Port is GUE's UDP port (keepalived's "type gue port N"); 0 for IPIP.
	Port uint16
}

func (t Tun) validate() error {
	switch {
	case t.Type == TunIPIP && t.Port != 0:
		return fmt.Errorf("tunnel type ipip takes no port (%d)", t.Port)
	case t.Type == TunGUE && t.Port == 0:
		return errors.New("tunnel type gue needs a UDP port")
	case t.Type != TunIPIP && t.Type != TunGUE:
		return fmt.Errorf("tunnel type %q: want ipip or gue", t.Type)
	}
	return nil
}

// FouPort is a foo-over-UDP receive port UpTun opened (`ip fou add port N
// gue`, with -6 for IPv6).
type FouPort struct {
	Port   uint16 `json:"port"`
	Family int    `json:"family"` // unix.AF_INET or AF_INET6
}

func (p FouPort) String() string {
	if p.Family == unix.AF_INET6 {
		return fmt.Sprintf("%d/ipv6", p.Port)
	}
	return fmt.Sprintf("%d/ipv4", p.Port)
}

// tunKey names the TUN record (realserver-:tun.json). No device can be
// called that (the kernel refuses ':' in device names), so it is never
// a DR record.
const tunKey = ":tun"

// tunDev is the kernel's catch-all tunnel device of a family: the device
// its tunnel driver creates in every network namespace, which receives
// every tunnelled packet no configured tunnel claims (the LVS-TUN howto's
// "ifconfig tunl0 VIP up").
type tunDev struct {
	name, kind string
	v6         bool
	support    string // the kernel option and module that provide it
}

var (
	tunl0   = tunDev{name: "tunl0", kind: "ipip", support: "IPIP tunnels (CONFIG_NET_IPIP, module ipip)"}
	ip6tnl0 = tunDev{name: "ip6tnl0", kind: "ip6tnl", v6: true, support: "IPv6 tunnels (CONFIG_IPV6_TUNNEL, module ip6_tunnel)"}
)

// tunDevFor is the device that receives packets for vip: IPVS encapsulates
// in the real server's family, which for these VIPs is theirs.
func tunDevFor(vip netip.Addr) tunDev {
	if vip.Is6() {
		return ip6tnl0
	}
	return tunl0
}

// tunDevs are the devices vips need, IPv4's first.
func tunDevs(vips []netip.Addr) []tunDev {
	var out []tunDev
	for _, d := range []tunDev{tunl0, ip6tnl0} {
		if slices.ContainsFunc(vips, func(v netip.Addr) bool { return tunDevFor(v) == d }) {
			out = append(out, d)
		}
	}
	return out
}

// tunSysctls are set on "all" and on tunl0: the ARP settings of a DR
// server (the VIP must not be answered for on the real interface), and no
// reverse-path filter, since a decapsulated packet's source is the client,
// which tunl0 has no route to. The kernel applies the larger of "all" and
// the device's value for all three.
var tunSysctls = map[string]string{"arp_ignore": "1", "arp_announce": "2", "rp_filter": "0"}

// tunSysctlIfaces are where tunSysctls go: IPv6 has neither ARP nor
// rp_filter.
func tunSysctlIfaces(devs []tunDev) []string {
	ifaces := []string{"all"}
	for _, d := range devs {
		if !d.v6 {
			ifaces = append(ifaces, d.name)
		}
	}
	return ifaces
}

// TunChanges is what one UpTun changed.
type TunChanges struct {
	Added   []string  // VIPs added
	Sysctls int       // sysctls changed
	Devices []string  // tunnel devices created or set up
	Fou     []FouPort // GUE ports opened
	Decap   []string  // interfaces given the XDP decapsulator (UpDecap)
}

// UpTun prepares the host as an LVS-TUN real server for vips: the
// catch-all tunnel device of each VIP family (tunl0, ip6tnl0) present and
// up with the VIPs on it, for GUE a fou port in GUE mode (which hands the
// IPIP packet inside to tunl0), and tunSysctls, recording what it changed
// for DownTun. Running it again changes nothing more. On a kernel without
// the tunnel drivers it changes nothing and its error wraps
// ErrNoKernelTunnel.
func (h Host) UpTun(vips []netip.Addr, tun Tun) (ch TunChanges, err error) {
	if err := tun.validate(); err != nil {
		return ch, err
	}
	devs := tunDevs(vips)
	// The one check that changes nothing, first: with fou missing, no
	// device is created for nothing.
	var fou *fouConn
	if tun.Type == TunGUE {
		if fou, err = dialFou(); err != nil {
			return ch, fmt.Errorf("%w: GUE needs foo-over-UDP (CONFIG_NET_FOU, module fou): %v", ErrNoKernelTunnel, err)
		}
		defer fou.close()
	}
	st, err := h.load(tunKey)
	if err != nil {
		return ch, err
	}
	defer func() { err = errors.Join(err, h.save(st)) }()
	nCreated, nRaised := len(st.Created), len(st.Raised)
	for _, d := range devs {
		created, raised, err := ensureDev(d)
		if created {
			st.Created = append(st.Created, d.name)
		}
		if raised {
			st.Raised = append(st.Raised, d.name)
		}
		if created || raised {
			ch.Devices = append(ch.Devices, d.name)
		}
		if errors.Is(err, ErrNoKernelTunnel) {
			// IPv6's driver missing after IPv4's device was set up: put
			// that back too, so that the caller can hand the host to
			// another decapsulation as it was.
			err = errors.Join(err, undoDevs(State{Created: st.Created[nCreated:], Raised: st.Raised[nRaised:]}))
			st.Created, st.Raised, ch.Devices = st.Created[:nCreated], st.Raised[:nRaised], nil
		}
		if err != nil {
			return ch, err
		}
	}
	if tun.Type == TunGUE {
		for _, p := range fouPorts(devs, tun.Port) {
			added, err := ensureFou(fou, p)
			if err != nil {
				return ch, err
			}
			if added {
				st.Fou = append(st.Fou, p)
				ch.Fou = append(ch.Fou, p)
			}
		}
	}
	if ch.Added, err = addVIPs(&st, vips); err != nil {
		return ch, err
	}
	ch.Sysctls, err = h.setSysctls(&st, tunSysctlIfaces(devs), tunSysctls)
	return ch, err
}

// DownTun undoes what UpTun recorded: the VIPs, fou ports and sysctls it
// changed, and the devices it set up or created. A catch-all device the
// kernel made when UpTun's request loaded its driver stays (it goes with
// the module); it is set down again. With no record it changes nothing
// and says so.
func (h Host) DownTun() (State, error) {
	st, err := h.load(tunKey)
	if err != nil {
		return st, err
	}
	if st.empty() {
		return st, fmt.Errorf("no record of `tandem realserver up --tun` (%s): nothing to undo", h.statePath(tunKey))
	}
	return st, h.undo(st)
}

// StatusTun reports the tunnel devices, the VIPs on them, the fou port for
// GUE and tunSysctls as the host has them now.
func (h Host) StatusTun(vips []netip.Addr, tun Tun) ([]Check, error) {
	if err := tun.validate(); err != nil {
		return nil, err
	}
	if st, err := h.load(tunKey); err != nil {
		return nil, err
	} else if st.DecapDir != "" {
		return h.statusDecap(st, vips)
	}
	devs := tunDevs(vips)
	var out []Check
	for _, d := range devs {
		have := "absent"
		if l, err := netlink.LinkByName(d.name); err == nil {
			have = "down"
			if l.Attrs().Flags&net.FlagUp != 0 {
				have = "up"
			}
		}
		out = append(out, Check{What: fmt.Sprintf("tunnel device %s (%s)", d.name, d.kind), Have: have, OK: have == "up"})
	}
	if tun.Type == TunGUE {
		fou, err := dialFou()
		for _, p := range fouPorts(devs, tun.Port) {
			have := "no fou in this kernel"
			if err == nil {
				if have, err = fou.mode(p); err != nil {
					return nil, err
				}
			}
			out = append(out, Check{What: "fou port " + p.String(), Have: have, OK: have == "gue"})
		}
		if fou != nil {
			fou.close()
		}
	}
	vc, err := vipChecks(State{Dev: tunKey}, vips)
	if err != nil {
		return nil, err
	}
	out = append(out, vc...)
	return append(out, h.sysctlChecks(tunSysctlIfaces(devs), tunSysctls)...), nil
}

// ensureDev is ensureTunDev; tests replace it to reach the error paths a
// kernel with one family's driver and not the other's would take.
var ensureDev = ensureTunDev

// ensureTunDev makes d exist and be up. If it is missing, creating a
// device of its kind makes the kernel load the driver, which creates d in
// every namespace (the create then fails with EEXIST: the device is the
// kernel's, not ours); where the driver makes no catch-all device
// (net.core.fb_tunnels_only_for_init_net) the create makes one, which is
// ours. EOPNOTSUPP means the kernel has no such driver.
func ensureTunDev(d tunDev) (created, raised bool, err error) {
	l, err := netlink.LinkByName(d.name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		attrs := netlink.LinkAttrs{Name: d.name}
		var nl netlink.Link = &netlink.Iptun{LinkAttrs: attrs, PMtuDisc: 1}
		if d.v6 {
			nl = &netlink.Ip6tnl{LinkAttrs: attrs}
		}
		switch err = netlink.LinkAdd(nl); {
		case errors.Is(err, unix.EOPNOTSUPP):
			return false, false, fmt.Errorf("%w: no %s device and no kernel support for %s: %v", ErrNoKernelTunnel, d.name, d.support, err)
		case err == nil:
			created = true
		case !errors.Is(err, unix.EEXIST):
			return false, false, fmt.Errorf("create %s: %w", d.name, err)
		}
		l, err = netlink.LinkByName(d.name)
	}
	if err != nil {
		return created, false, fmt.Errorf("tunnel device %s: %w", d.name, err)
	}
	if l.Type() != d.kind {
		return created, false, fmt.Errorf("%s is a %s device, not the kernel's %s catch-all", d.name, l.Type(), d.kind)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return created, false, nil
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return created, false, fmt.Errorf("set %s up: %w", d.name, err)
	}
	// A device UpTun created is deleted by DownTun, not set down.
	return created, !created, nil
}

// undoDevs sets down the devices st raised and deletes the ones it
// created.
func undoDevs(st State) error {
	var errs []error
	for _, step := range []struct {
		names []string
		what  string
		do    func(netlink.Link) error
	}{{st.Raised, "set down", netlink.LinkSetDown}, {st.Created, "delete", netlink.LinkDel}} {
		for _, name := range step.names {
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = step.do(l)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", step.what, name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// fouPorts are the GUE ports devs need: one per family.
func fouPorts(devs []tunDev, port uint16) []FouPort {
	var out []FouPort
	for _, d := range devs {
		fam := unix.AF_INET
		if d.v6 {
			fam = unix.AF_INET6
		}
		out = append(out, FouPort{Port: port, Family: fam})
	}
	return out
}

// ensureFou opens p in GUE mode unless it is open already; a port open in
// direct mode (for another protocol) is an error, not something to take
// over.
func ensureFou(fou *fouConn, p FouPort) (added bool, err error) {
	mode, err := fou.mode(p)
	switch {
	case err != nil:
		return false, err
	case mode == "gue":
		return false, nil
	case mode != "absent":
		return false, fmt.Errorf("fou port %s is open in %s mode, not gue", p, mode)
	}
	if err := fou.addGUE(p); err != nil {
		return false, err
	}
	return true, nil
}

// delFous closes the fou ports ps.
func delFous(ps []FouPort) error {
	if len(ps) == 0 {
		return nil
	}
	fou, err := dialFou()
	if err != nil {
		return fmt.Errorf("delete fou ports: %w", err)
	}
	defer fou.close()
	var errs []error
	for _, p := range ps {
		errs = append(errs, fou.del(p))
	}
	return errors.Join(errs...)
}
