package lab

import "net/netip"

// Layout is a director/real-server topology in the terms the seed
// configurations use, turned into a Spec by Spec. The seed configurations
// in shared/corpus/seed-configs run unmodified on the Spec of their
// layout: same interface names, same addresses.
//
// All nodes sit on one segment (switch "lan") on interface Iface, except
// in a NAT layout, where the client and the directors' outside interfaces
// are on a second segment ("wan").
type Layout struct {
	// Iface is the interface name every node has on the shared segment.
	Iface string
	// Net is the segment; addresses get its prefix length.
	Net netip.Prefix
	// VIPs are the addresses the seed's directors float or serve. The lab
	// does not configure them: the daemon under test adds them to the
	// directors, `tandem realserver up` to the real servers' lo.
	VIPs      []netip.Addr
	Directors []Host
	Reals     []Host
	Client    Host
	// TrackIfaces are extra interfaces, without addresses, that every
	// director gets, each on a segment of its own named after it (seed001
	// tracks eth0 and eth1 next to ens33), for SetLink to flap.
	TrackIfaces []string
	// NAT, when set, makes this a LVS-NAT layout.
	NAT *NATSide
}

// Host is a node of a Layout and its address on the layout's segment.
type Host struct {
	Name string
	Addr netip.Addr
}

// NATSide is the outside of a LVS-NAT layout: the directors get a second
// interface there (Outside[i] is Directors[i]'s address) and IP forwarding,
// the client lives there, and the real servers route through the first
// director's inside address.
type NATSide struct {
	Iface   string
	Net     netip.Prefix
	Outside []netip.Addr
}

// Switch names used by Layout.Spec.
const (
	SwitchLAN = "lan"
	SwitchWAN = "wan"
)

// Spec turns the layout into a Spec. Directors get send_redirects=0 (all
// and the interface: the kernel ORs the two) so that forwarding back onto
// the segment a packet came from does not teach clients to bypass the
// director; in NAT also ip_forward=1. Real servers get arp_ignore=1 and
// arp_announce=2 (all and the interface) as a DR real server needs for
// the VIP it carries on lo: no ARP answers for it, and no use of it as an
// ARP source. NAT real servers get a default route via the director.
func (y Layout) Spec() Spec {
	var s Spec
	lan := func(h Host) Iface {
		return Iface{Name: y.Iface, Switch: SwitchLAN, Addrs: []netip.Prefix{netip.PrefixFrom(h.Addr, y.Net.Bits())}}
	}
	for i, d := range y.Directors {
		n := Node{Name: d.Name, Ifaces: []Iface{lan(d)}, Sysctls: map[string]string{
			"net.ipv4.conf.all.send_redirects":             "0",
			"net.ipv4.conf." + y.Iface + ".send_redirects": "0",
		}}
		if y.NAT != nil {
			n.Ifaces = append(n.Ifaces, Iface{Name: y.NAT.Iface, Switch: SwitchWAN,
				Addrs: []netip.Prefix{netip.PrefixFrom(y.NAT.Outside[i], y.NAT.Net.Bits())}})
			n.Sysctls["net.ipv4.ip_forward"] = "1"
			n.Sysctls["net.ipv4.conf."+y.NAT.Iface+".send_redirects"] = "0"
		}
		for _, t := range y.TrackIfaces {
			n.Ifaces = append(n.Ifaces, Iface{Name: t, Switch: t})
		}
		s.Nodes = append(s.Nodes, n)
	}
	for _, r := range y.Reals {
		n := Node{Name: r.Name, Ifaces: []Iface{lan(r)}}
		if y.NAT != nil {
			n.Routes = []Route{{Via: y.Directors[0].Addr}}
		} else {
			n.Sysctls = map[string]string{
				"net.ipv4.conf.all.arp_ignore":               "1",
				"net.ipv4.conf.all.arp_announce":             "2",
				"net.ipv4.conf." + y.Iface + ".arp_ignore":   "1",
				"net.ipv4.conf." + y.Iface + ".arp_announce": "2",
			}
		}
		s.Nodes = append(s.Nodes, n)
	}
	client := Node{Name: y.Client.Name, Ifaces: []Iface{lan(y.Client)}}
	if y.NAT != nil {
		client.Ifaces = []Iface{{Name: y.NAT.Iface, Switch: SwitchWAN,
			Addrs: []netip.Prefix{netip.PrefixFrom(y.Client.Addr, y.NAT.Net.Bits())}}}
	}
	s.Nodes = append(s.Nodes, client)
	return s
}

// The seed layouts. Addresses the seeds give are kept; where a seed is
// silent (directors of seed000 and seed004, clients everywhere) the
// choice is noted.

// Seed000 is seed000-lvs-dr-{master,backup}.conf: LVS-DR on eth0,
// 172.16.7.0/24, VIP .5, real servers .3 and .4; directors .1 and .2 and
// the client .100 are ours.
func Seed000() Layout {
	return Layout{
		Iface:     "eth0",
		Net:       netip.MustParsePrefix("172.16.7.0/24"),
		VIPs:      addrs("172.16.7.5"),
		Directors: hosts("dir1", "172.16.7.1", "dir2", "172.16.7.2"),
		Reals:     hosts("rs1", "172.16.7.3", "rs2", "172.16.7.4"),
		Client:    Host{"client", netip.MustParseAddr("172.16.7.100")},
	}
}

// Seed001 is seed001-vip-ka{1,2}.conf and seed001-options.conf: two
// VRRP routers ka1 (192.168.1.4) and ka2 (192.168.1.8, the seed's
// addresses) on ens33 floating 192.168.1.100 and .101, no LVS. Both have
// eth0 and eth1 for seed001-options.conf's track_interface. The client
// .50 is ours.
func Seed001() Layout {
	return Layout{
		Iface:       "ens33",
		Net:         netip.MustParsePrefix("192.168.1.0/24"),
		VIPs:        addrs("192.168.1.100", "192.168.1.101"),
		Directors:   hosts("ka1", "192.168.1.4", "ka2", "192.168.1.8"),
		Client:      Host{"client", netip.MustParseAddr("192.168.1.50")},
		TrackIfaces: []string{"eth0", "eth1"},
	}
}

// Seed002 is seed002-lvs-dr-http-{master,backup}.conf: LVS-DR on eth0,
// 172.18.42.0/24, VIP .42, directors .100 and .200 (the seed's), real
// servers .111 and .222; the client .50 is ours.
func Seed002() Layout {
	return Layout{
		Iface:     "eth0",
		Net:       netip.MustParsePrefix("172.18.42.0/24"),
		VIPs:      addrs("172.18.42.42"),
		Directors: hosts("dir1", "172.18.42.100", "dir2", "172.18.42.200"),
		Reals:     hosts("rs1", "172.18.42.111", "rs2", "172.18.42.222"),
		Client:    Host{"client", netip.MustParseAddr("172.18.42.50")},
	}
}

// Seed003DR is seed003-lvs-dr.conf: one director .128 on ens33,
// 192.168.188.0/24, VIP .200, real servers .129 and .137; the client .50 is
// ours. seed003-nginx-ha-{master,backup}.conf (VIP .100 between nodes 128
// and 129) run on dir1 and rs1 of the same layout.
func Seed003DR() Layout {
	return Layout{
		Iface:     "ens33",
		Net:       netip.MustParsePrefix("192.168.188.0/24"),
		VIPs:      addrs("192.168.188.200", "192.168.188.100"),
		Directors: hosts("dir1", "192.168.188.128"),
		Reals:     hosts("rs1", "192.168.188.129", "rs2", "192.168.188.137"),
		Client:    Host{"client", netip.MustParseAddr("192.168.188.50")},
	}
}

// Seed003NAT is seed003-lvs-nat.conf: the director has ens37
// 192.168.142.147/24 outside (the virtual server's address) and ens33
// 192.168.188.128/24 inside; real servers .129 and .137 route via .128.
// The client 192.168.142.50 on the outside is ours.
func Seed003NAT() Layout {
	return Layout{
		Iface:     "ens33",
		Net:       netip.MustParsePrefix("192.168.188.0/24"),
		VIPs:      addrs("192.168.142.147"),
		Directors: hosts("dir1", "192.168.188.128"),
		Reals:     hosts("rs1", "192.168.188.129", "rs2", "192.168.188.137"),
		Client:    Host{"client", netip.MustParseAddr("192.168.142.50")},
		NAT: &NATSide{
			Iface:   "ens37",
			Net:     netip.MustParsePrefix("192.168.142.0/24"),
			Outside: addrs("192.168.142.147"),
		},
	}
}

// Seed004 is seed004-lvs-dr-{master,backup}.conf: LVS-DR on enp0s3,
// 172.16.0.0/24, VIP .30, real servers .31 and .32; directors .11 and .12
// and the client .50 are ours.
func Seed004() Layout {
	return Layout{
		Iface:     "enp0s3",
		Net:       netip.MustParsePrefix("172.16.0.0/24"),
		VIPs:      addrs("172.16.0.30"),
		Directors: hosts("dir1", "172.16.0.11", "dir2", "172.16.0.12"),
		Reals:     hosts("rs1", "172.16.0.31", "rs2", "172.16.0.32"),
		Client:    Host{"client", netip.MustParseAddr("172.16.0.50")},
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// hosts takes name, address pairs.
func hosts(kv ...string) []Host {
	out := make([]Host, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Host{kv[i], netip.MustParseAddr(kv[i+1])})
	}
	return out
}

// NAT6 is an IPv6 NAT topology for data-plane tests: the client
// (fd01::50) on switch wan, the director (fd01::1 on eth0, fd02::1 on
// eth1 on switch lan, forwarding), and rs1 (fd02::2) and rs2 (fd02::3)
// routed through the director.
func NAT6() Spec {
	p := netip.MustParsePrefix
	node := func(name, sw, addr string, routes ...Route) Node {
		return Node{Name: name, Routes: routes, Ifaces: []Iface{{Name: "eth0", Switch: sw, Addrs: []netip.Prefix{p(addr)}}}}
	}
	via := Route{Via: netip.MustParseAddr("fd02::1")}
	dir := node("dir", "wan", "fd01::1/64")
	dir.Ifaces = append(dir.Ifaces, Iface{Name: "eth1", Switch: "lan", Addrs: []netip.Prefix{p("fd02::1/64")}})
	dir.Sysctls = map[string]string{"net.ipv6.conf.all.forwarding": "1"}
	return Spec{Nodes: []Node{
		node("client", "wan", "fd01::50/64"), dir,
		node("rs1", "lan", "fd02::2/64", via), node("rs2", "lan", "fd02::3/64", via),
	}}
}
