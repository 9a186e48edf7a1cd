package lab

import (
	"fmt"
	"net/netip"
)

// RoutedTUN is LVS-TUN with the real servers on a subnet of their own
// behind a router, in 10.n.0.0/16: client (10.n.1.2, switch c) — router
// (forwarding; .254 on each switch) — director, whose front interface
// eth0 (10.n.2.1, on f) receives the VIPs' traffic (10.n.9.0/24, which
// the router routes there; vips are added to eth0) and whose back
// interface eth1 (10.n.4.1, on b) is its route to the real servers rs1
// and rs2 (10.n.3.2 and .3, on s). The servers answer the client through
// the router, not the director. The director forwards (an XDP program's
// route lookups, bpf_fib_lookup, are the forwarding ones). The director,
// router and real servers have IPv6 addresses too, fd00:n:S::H for
// 10.n.S.H (the router's ::fe), for tunnels over IPv6.
func RoutedTUN(n byte, vips ...netip.Prefix) Spec {
	p := func(format string) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf(format, n)) }
	a := func(format string) netip.Addr { return netip.MustParseAddr(fmt.Sprintf(format, n)) }
	fwd := map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
	rs := func(name string, h int) Node {
		return Node{Name: name, Ifaces: []Iface{{Name: "eth0", Switch: "s",
			Addrs: []netip.Prefix{p(fmt.Sprintf("10.%%d.3.%d/24", h)), p(fmt.Sprintf("fd00:%%d:3::%d/64", h))}}},
			Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: a("10.%d.3.254")},
				{Dst: netip.MustParsePrefix("::/0"), Via: a("fd00:%d:3::fe")}}}
	}
	return Spec{Nodes: []Node{
		{Name: "client", Ifaces: []Iface{{Name: "eth0", Switch: "c", Addrs: []netip.Prefix{p("10.%d.1.2/24")}}},
			Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: a("10.%d.1.254")}}},
		{Name: "router", Ifaces: []Iface{
			{Name: "eth0", Switch: "c", Addrs: []netip.Prefix{p("10.%d.1.254/24")}},
			{Name: "eth1", Switch: "f", Addrs: []netip.Prefix{p("10.%d.2.254/24"), p("fd00:%d:2::fe/64")}},
			{Name: "eth2", Switch: "b", Addrs: []netip.Prefix{p("10.%d.4.254/24"), p("fd00:%d:4::fe/64")}},
			{Name: "eth3", Switch: "s", Addrs: []netip.Prefix{p("10.%d.3.254/24"), p("fd00:%d:3::fe/64")}},
		}, Routes: []Route{{Dst: p("10.%d.9.0/24"), Via: a("10.%d.2.1")}}, Sysctls: fwd},
		{Name: "dir", Ifaces: []Iface{
			{Name: "eth0", Switch: "f", Addrs: append([]netip.Prefix{p("10.%d.2.1/24"), p("fd00:%d:2::1/64")}, vips...)},
			{Name: "eth1", Switch: "b", Addrs: []netip.Prefix{p("10.%d.4.1/24"), p("fd00:%d:4::1/64")}},
		}, Routes: []Route{{Dst: p("10.%d.3.0/24"), Via: a("10.%d.4.254")}, {Dst: p("fd00:%d:3::/64"), Via: a("fd00:%d:4::fe")}}, Sysctls: fwd},
		rs("rs1", 2),
		rs("rs2", 3),
	}}
}
