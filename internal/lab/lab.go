// Package lab builds network-namespace topologies for the end-to-end tests
// and for `tandem lab`: one namespace per node, one Linux bridge per L2
// segment ("switch"), and a veth pair per node interface.
//
// Nothing is ever created in, or linked to, the host's network namespace.
// The bridges live in a namespace of their own (the lab's "switch"
// namespace); each veth pair is created inside it and its peer is created
// directly inside the node's namespace (IFLA_NET_NS_FD), so no interface
// passes through the host, even for an instant. Interface names inside a
// node are therefore free to be the names a seed configuration uses (eth0,
// ens33, enp0s3...).
//
// Names are unique per process and per lab, because `go test ./...` runs
// packages in parallel: a lab is called td<pid>x<n> (n counts labs in this
// process), that is also the name of its switch namespace, and node N lives
// in td<pid>x<n>-N. All of them are bind-mounted under /run/netns as
// `ip netns add` does, so `ip netns exec td123x1-dir1 ip addr` works
// while a test is paused in a debugger.
package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Spec is a topology: nodes, each with interfaces attached to named L2
// segments. Every distinct Iface.Switch value becomes one bridge.
type Spec struct {
	Nodes []Node
}

// Node is one host: a network namespace of its own.
type Node struct {
	// Name identifies the node in the Lab's methods; it becomes part of
	// the namespace name, so it is limited to letters, digits, '_' and
	// '-' (at most 32 characters).
	Name   string
	Ifaces []Iface
	// Sysctls are set in the node's namespace after its interfaces exist
	// and before they come up, so per-interface keys work. Keys use the
	// sysctl(8) dotted form ("net.ipv4.conf.eth0.arp_ignore") or a path
	// under /proc/sys ("net/ipv4/conf/eth0.100/arp_ignore") when an
	// interface name contains a dot. Only net.* keys are accepted: the
	// others are not per namespace and would change the host.
	Sysctls map[string]string
	// Routes are added after the interfaces are up.
	Routes []Route
}

// Iface is one interface of a node, attached to a segment.
type Iface struct {
	// Name inside the node's namespace (at most 15 bytes, not "lo").
	Name string
	// Switch names the L2 segment; interfaces with the same Switch share
	// a bridge.
	Switch string
	// Addrs are added to the interface. IPv6 addresses are added with
	// IFA_F_NODAD so that they are usable at once instead of after ~1 s
	// of duplicate address detection, even when Sysctls turn DAD back on
	// (the lab sets accept_dad=0 on every interface it makes).
	Addrs []netip.Prefix
	// MAC is optional; the kernel picks a random one when nil.
	MAC net.HardwareAddr
}

// Route is a static route in a node. Dst's zero value means the default
// route of Via's family.
type Route struct {
	Dst netip.Prefix
	// Via is the gateway; leave it zero for a device route (then Dev is
	// required).
	Via netip.Addr
	// Dev is optional with Via: the kernel then finds the interface
	// whose subnet holds Via.
	Dev string
}

// Lab is a built topology. Its methods are safe for concurrent use.
type Lab struct {
	name   string
	logDir string

	sw      nsEntry            // the switch namespace, holding the bridges
	bridges map[string]int     // switch name -> bridge ifindex in sw
	nodes   map[string]*nodeNS // by Node.Name

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

type nsEntry struct {
	name string
	fd   netns.NsHandle
}

type nodeNS struct {
	nsEntry
	spec Node
	// ports maps each switch this node is attached to onto the names of
	// the switch-side veths of its interfaces there.
	ports map[string][]string
}

// labSeq numbers the labs of this process (the x<n> of td<pid>x<n>).
var labSeq atomic.Uint64

// namePrefix starts every namespace this package makes; Sweep relies on it.
const namePrefix = "td"

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// New builds spec: namespaces, bridges, veths, sysctls, addresses and
// routes, and returns once every interface is operationally up (typically
// 10-60 ms for five nodes; a few hundred while the kernel is still
// destroying earlier namespaces). On any error it tears down whatever it
// had made and returns the error.
func New(spec Spec) (l *Lab, err error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s%dx%d", namePrefix, os.Getpid(), labSeq.Add(1))
	l = &Lab{name: name, nodes: make(map[string]*nodeNS, len(spec.Nodes))}
	defer func() {
		if err != nil {
			// Teardown errors are secondary: report the build error
			// first, but do not hide a leak.
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	if l.logDir, err = os.MkdirTemp("", name+"-"); err != nil {
		return l, fmt.Errorf("lab %s: log directory: %w", name, err)
	}
	if l.sw, err = createNS(name); err != nil {
		return l, err
	}
	for _, n := range spec.Nodes {
		e, err := createNS(name + "-" + n.Name)
		if err != nil {
			return l, err
		}
		l.nodes[n.Name] = &nodeNS{nsEntry: e, spec: n, ports: map[string][]string{}}
	}
	if err := l.wire(spec); err != nil {
		return l, err
	}
	for _, n := range spec.Nodes {
		if err := l.configure(l.nodes[n.Name]); err != nil {
			return l, err
		}
	}
	return l, l.settle()
}

// settleTimeout bounds the wait for links to come up; they take
// milliseconds.
const settleTimeout = 3 * time.Second

// settle waits until every veth end, in the switch and in the nodes, is
// operationally up. Until the kernel's link watcher has processed the
// carrier change a device transmits through a no-op qdisc that drops
// everything, so the first ARP request of a test would be lost and its
// first ping would take the 1 s ARP retransmit. (Bridges are not waited
// for: their operstate lags by up to 1 s and does not gate forwarding.)
func (l *Lab) settle() error {
	deadline := time.Now().Add(settleTimeout)
	var ports []string
	for _, n := range l.nodes {
		for _, ps := range n.ports {
			ports = append(ports, ps...)
		}
	}
	if err := waitOperUp(l.sw, ports, deadline); err != nil {
		return fmt.Errorf("lab %s: switch: %w", l.name, err)
	}
	for _, n := range l.nodes {
		var names []string
		for _, ifc := range n.spec.Ifaces {
			names = append(names, ifc.Name)
		}
		if err := waitOperUp(n.nsEntry, names, deadline); err != nil {
			return fmt.Errorf("lab %s: node %s: %w", l.name, n.spec.Name, err)
		}
	}
	return nil
}

// waitOperUp polls e's links until those named are operationally up.
func waitOperUp(e nsEntry, names []string, deadline time.Time) error {
	h, err := netlink.NewHandleAt(e.fd)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	for {
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		state := map[string]netlink.LinkOperState{}
		for _, k := range links {
			state[k.Attrs().Name] = k.Attrs().OperState
		}
		var down []string
		for _, n := range names {
			if state[n] != netlink.OperUp {
				down = append(down, n+" "+state[n].String())
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links not up after %v: %s", settleTimeout, strings.Join(down, ", "))
		}
		time.Sleep(time.Millisecond)
	}
}

func (s Spec) validate() error {
	if len(s.Nodes) == 0 {
		return errors.New("lab: spec has no nodes")
	}
	seen := map[string]bool{}
	for _, n := range s.Nodes {
		if !nodeNameRE.MatchString(n.Name) {
			return fmt.Errorf("lab: node name %q: want 1-32 letters, digits, '_' or '-'", n.Name)
		}
		if seen[n.Name] {
			return fmt.Errorf("lab: node %s defined twice", n.Name)
		}
		seen[n.Name] = true
		ifs := map[string]bool{}
		for _, ifc := range n.Ifaces {
			// IFNAMSIZ is 16 with the NUL; '/' and whitespace are
			// rejected by the kernel's dev_valid_name.
			if ifc.Name == "" || len(ifc.Name) > 15 || ifc.Name == "lo" || strings.ContainsAny(ifc.Name, "/: \t\n") {
				return fmt.Errorf("lab: node %s: interface name %q: want 1-15 bytes, no '/', ':' or space, not lo", n.Name, ifc.Name)
			}
			if ifs[ifc.Name] {
				return fmt.Errorf("lab: node %s: interface %s defined twice", n.Name, ifc.Name)
			}
			ifs[ifc.Name] = true
			if ifc.Switch == "" {
				return fmt.Errorf("lab: node %s: interface %s has no Switch", n.Name, ifc.Name)
			}
			if ifc.MAC != nil && len(ifc.MAC) != 6 {
				return fmt.Errorf("lab: node %s: interface %s: MAC %s is not a 6-byte Ethernet address", n.Name, ifc.Name, ifc.MAC)
			}
			for _, p := range ifc.Addrs {
				if !p.IsValid() {
					return fmt.Errorf("lab: node %s: interface %s: invalid address", n.Name, ifc.Name)
				}
			}
		}
		for k := range n.Sysctls {
			if _, err := sysctlPath(k); err != nil {
				return fmt.Errorf("lab: node %s: %w", n.Name, err)
			}
		}
		for _, r := range n.Routes {
			if !r.Via.IsValid() && r.Dev == "" {
				return fmt.Errorf("lab: node %s: route %v needs Via or Dev", n.Name, r.Dst)
			}
			if r.Dev != "" && !ifs[r.Dev] && r.Dev != "lo" {
				return fmt.Errorf("lab: node %s: route %v: no interface %s", n.Name, r.Dst, r.Dev)
			}
		}
	}
	return nil
}

// wire creates one bridge per switch and one veth pair per interface, all
// from a netlink socket inside the switch namespace.
func (l *Lab) wire(spec Spec) error {
	h, err := netlink.NewHandleAt(l.sw.fd)
	if err != nil {
		return fmt.Errorf("lab %s: netlink in switch namespace: %w", l.name, err)
	}
	defer h.Close()
	l.bridges = map[string]int{}
	port := 0
	for _, n := range spec.Nodes {
		node := l.nodes[n.Name]
		for _, ifc := range n.Ifaces {
			br, ok := l.bridges[ifc.Switch]
			if !ok {
				// Snooping off: without an IGMP querier on the segment
				// the bridge's behaviour for the seeds' non-link-local
				// VRRP groups (224.100.100.100, 224.0.42.20) depends on
				// timing; flooding is what a dumb switch does.
				off := false
				b := &netlink.Bridge{
					LinkAttrs:         netlink.LinkAttrs{Name: fmt.Sprintf("br%d", len(l.bridges)), Flags: net.FlagUp},
					MulticastSnooping: &off,
				}
				if err := h.LinkAdd(b); err != nil {
					return fmt.Errorf("lab %s: create bridge %s for switch %s: %w", l.name, b.Name, ifc.Switch, err)
				}
				br = b.Index
				l.bridges[ifc.Switch] = br
			}
			port++
			v := &netlink.Veth{
				LinkAttrs:        netlink.LinkAttrs{Name: fmt.Sprintf("p%d", port), Flags: net.FlagUp, MasterIndex: br},
				PeerName:         ifc.Name,
				PeerHardwareAddr: ifc.MAC,
				PeerNamespace:    netlink.NsFd(node.fd),
			}
			if err := h.LinkAdd(v); err != nil {
				return fmt.Errorf("lab %s: create veth %s (switch %s) <-> %s:%s: %w", l.name, v.Name, ifc.Switch, n.Name, ifc.Name, err)
			}
			node.ports[ifc.Switch] = append(node.ports[ifc.Switch], v.Name)
		}
	}
	return nil
}

// configure sets a node's sysctls, addresses, link states and routes, in
// that order: per-interface sysctls need the interface, and arp_ignore and
// friends should hold before the first packet leaves.
func (l *Lab) configure(n *nodeNS) error {
	for _, ifc := range n.spec.Ifaces {
		// No duplicate address detection on a lab segment: the
		// link-local address, VRRPv3's source over IPv6, is then usable
		// at once instead of after ~1-2 s. Node.Sysctls can turn it back
		// on. A kernel without IPv6 has no such file.
		err := l.Sysctl(n.spec.Name, "net/ipv6/conf/"+ifc.Name+"/accept_dad", "0")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for k, v := range n.spec.Sysctls {
		if err := l.Sysctl(n.spec.Name, k, v); err != nil {
			return err
		}
	}
	h, err := netlink.NewHandleAt(n.fd)
	if err != nil {
		return fmt.Errorf("lab %s: netlink in node %s: %w", l.name, n.spec.Name, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("lab %s: node %s: bring up lo: %w", l.name, n.spec.Name, err)
	}
	for _, ifc := range n.spec.Ifaces {
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("lab %s: node %s: find %s: %w", l.name, n.spec.Name, ifc.Name, err)
		}
		for _, p := range ifc.Addrs {
			a := &netlink.Addr{IPNet: ipNet(p)}
			if p.Addr().Is6() {
				a.Flags = 0x02 // IFA_F_NODAD
			}
			if err := h.AddrAdd(link, a); err != nil {
				return fmt.Errorf("lab %s: node %s: add %s to %s: %w", l.name, n.spec.Name, p, ifc.Name, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("lab %s: node %s: set %s up: %w", l.name, n.spec.Name, ifc.Name, err)
		}
	}
	for _, r := range n.spec.Routes {
		if err := addRoute(h, r, false); err != nil {
			return fmt.Errorf("lab %s: node %s: %w", l.name, n.spec.Name, err)
		}
	}
	return nil
}

func addRoute(h *netlink.Handle, r Route, replace bool) error {
	nr := &netlink.Route{}
	if r.Dst.IsValid() {
		nr.Dst = ipNet(r.Dst.Masked())
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Dev != "" {
		link, err := h.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("route %s: find %s: %w", routeString(r), r.Dev, err)
		}
		nr.LinkIndex = link.Attrs().Index
		if !r.Via.IsValid() {
			nr.Scope = netlink.SCOPE_LINK
		}
	}
	add := h.RouteAdd
	if replace {
		add = h.RouteReplace
	}
	if err := add(nr); err != nil {
		return fmt.Errorf("add route %s: %w", routeString(r), err)
	}
	return nil
}

func routeString(r Route) string {
	s := "default"
	if r.Dst.IsValid() {
		s = r.Dst.String()
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// Name is the lab's name (td<pid>x<n>), which is also the name of its
// switch namespace.
func (l *Lab) Name() string { return l.name }

// NSName is the `ip netns` name of node's namespace, or "" when the lab has
// no such node.
func (l *Lab) NSName(node string) string {
	if n, ok := l.nodes[node]; ok {
		return n.name
	}
	return ""
}

func (l *Lab) node(name string) (*nodeNS, error) {
	n, ok := l.nodes[name]
	if !ok {
		return nil, fmt.Errorf("lab %s: no node %q", l.name, name)
	}
	return n, nil
}

// Sysctl writes one net.* sysctl (key as in Node.Sysctls) in node.
func (l *Lab) Sysctl(node, key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return fmt.Errorf("lab %s: node %s: %w", l.name, node, err)
	}
	err = l.Do(node, func() error {
		// /proc/sys/net resolves against the namespace of the thread
		// that opens the file, hence Do.
		return os.WriteFile(p, []byte(value), 0)
	})
	if err != nil {
		return fmt.Errorf("lab %s: node %s: sysctl %s=%s: %w", l.name, node, key, value, err)
	}
	return nil
}

func sysctlPath(key string) (string, error) {
	p := key
	if !strings.Contains(key, "/") {
		p = strings.ReplaceAll(key, ".", "/")
	}
	if !strings.HasPrefix(p, "net/") || strings.Contains(p, "..") {
		return "", fmt.Errorf("sysctl %q: only net.* keys are per namespace", key)
	}
	return "/proc/sys/" + p, nil
}

// SetLink sets a node's interface administratively up or down: the node
// sees its own link go down (keepalived's track_interface, FAULT state).
//
// The kernel flushes IPv4 routes through a link that goes down; bringing it
// back up re-adds the node's Spec routes that use this interface (Dev, or
// a gateway inside one of its subnets), so a test can flap a link and get
// the topology it started with.
func (l *Lab) SetLink(node, iface string, up bool) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(n.fd)
	if err != nil {
		return fmt.Errorf("lab %s: netlink in node %s: %w", l.name, node, err)
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("lab %s: node %s: find %s: %w", l.name, node, iface, err)
	}
	if !up {
		if err := h.LinkSetDown(link); err != nil {
			return fmt.Errorf("lab %s: node %s: set %s down: %w", l.name, node, iface, err)
		}
		return nil
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("lab %s: node %s: set %s up: %w", l.name, node, iface, err)
	}
	// Wait as New does, so that the caller's next packet is not dropped.
	if err := waitOperUp(n.nsEntry, []string{iface}, time.Now().Add(settleTimeout)); err != nil {
		return fmt.Errorf("lab %s: node %s: %w", l.name, node, err)
	}
	var prefixes []netip.Prefix
	for _, ifc := range n.spec.Ifaces {
		if ifc.Name == iface {
			prefixes = ifc.Addrs
		}
	}
	for _, r := range n.spec.Routes {
		uses := r.Dev == iface
		for _, p := range prefixes {
			uses = uses || (r.Dev == "" && p.Masked().Contains(r.Via))
		}
		if !uses {
			continue
		}
		if err := addRoute(h, r, true); err != nil {
			return fmt.Errorf("lab %s: node %s: %w", l.name, node, err)
		}
	}
	return nil
}

// Partition cuts nodes off switch sw by detaching their ports from the
// bridge. Unlike SetLink the nodes keep carrier: each sees a healthy link
// on which nobody answers, the split brain of a broken switch, where VRRP
// backups become masters instead of going to FAULT. Nodes partitioned
// together do not reach each other either.
func (l *Lab) Partition(sw string, nodes ...string) error {
	return l.setPorts(sw, nodes, false)
}

// Heal undoes Partition for nodes on switch sw.
func (l *Lab) Heal(sw string, nodes ...string) error {
	return l.setPorts(sw, nodes, true)
}

// ports are the names of node's ports on switch sw, in the switch
// namespace.
func (l *Lab) ports(node, sw string) ([]string, error) {
	n, err := l.node(node)
	if err != nil {
		return nil, err
	}
	if len(n.ports[sw]) == 0 {
		return nil, fmt.Errorf("lab %s: node %s is not on switch %s", l.name, node, sw)
	}
	return n.ports[sw], nil
}

func (l *Lab) setPorts(sw string, nodes []string, attach bool) error {
	h, err := netlink.NewHandleAt(l.sw.fd)
	if err != nil {
		return fmt.Errorf("lab %s: netlink in switch namespace: %w", l.name, err)
	}
	defer h.Close()
	for _, name := range nodes {
		ports, err := l.ports(name, sw)
		if err != nil {
			return err
		}
		for _, p := range ports {
			err := l.setPort(h, sw, p, attach)
			if err != nil {
				return fmt.Errorf("lab %s: node %s: switch %s port %s: %w", l.name, name, sw, p, err)
			}
		}
	}
	return nil
}

func (l *Lab) setPort(h *netlink.Handle, sw, port string, attach bool) error {
	link, err := h.LinkByName(port)
	if err != nil {
		return err
	}
	if !attach {
		return h.LinkSetNoMaster(link)
	}
	return h.LinkSetMasterByIndex(link, l.bridges[sw])
}

// Close kills every process started with Start and every other process
// still inside one of the lab's namespaces (daemons that left their
// process group included), then removes the namespaces, which removes
// the bridges and veths with them. It is idempotent; later calls return
// nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.kill(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	all := []nsEntry{l.sw}
	for _, n := range l.nodes {
		all = append(all, n.nsEntry)
	}
	for _, e := range all {
		if e.name == "" {
			continue // never created: New failed before it
		}
		if err := killInNS(e.fd); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", l.name, err))
		}
		if err := removeTandemLock(e); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", l.name, err))
		}
		if err := deleteNS(e); err != nil {
			errs = append(errs, err)
		}
	}
	if l.logDir != "" {
		if err := os.RemoveAll(l.logDir); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: remove logs: %w", l.name, err))
		}
	}
	return errors.Join(errs...)
}
