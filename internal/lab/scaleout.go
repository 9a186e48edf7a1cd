package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// ScaleOut is the active-active topology of docs/bgp.md: a router running
// bird2 in front of Directors directors (dir1..dirN), each announcing the
// VIP over BGP, the router spreading the VIP's flows over them with ECMP
// hashed on layer 4, the directors forwarding by DR to the real servers
// (rs1..rs3, the VIP on lo with `tandem realserver up`), which answer the
// client through the router.
//
//	client 10.80.1.10 --(cli)-- 10.80.1.254 router 10.80.0.254 --(lan)--
//	    dirK 10.80.0.K (K = 1..N), rsK 10.80.0.1K (K = 1..3)
//
// The directors and the real servers share segment lan, as DR needs (a
// director rewrites the MAC only); the client has a segment of its own,
// so every packet it sends to the VIP crosses the router's ECMP route.
type ScaleOut struct {
	// Directors is how many directors there are, 2..4.
	Directors int
	// BFD runs a BFD session (ScaleOutBFDInterval x ScaleOutBFDMultiplier)
	// beside each BGP session: the router drops a crashed director's
	// route when BFD detects it, before the hold timer.
	BFD bool
}

// The BFD sessions' timers with ScaleOut.BFD: detection in 150 ms,
// without false alarms on a loaded two-core machine.
const (
	ScaleOutBFDInterval   = 50 // ms, min_rx and min_tx on both sides
	ScaleOutBFDMultiplier = 3
)

// The scale-out lab's addresses.
var (
	ScaleOutVIP    = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.90"), 80)
	ScaleOutRouter = netip.MustParseAddr("10.80.0.254")
	// ScaleOutReals are the real servers, on segment lan.
	ScaleOutReals  = hosts("rs1", "10.80.0.11", "rs2", "10.80.0.12", "rs3", "10.80.0.13")
	ScaleOutClient = Host{"client", netip.MustParseAddr("10.80.1.10")}
)

// The scale-out lab's segments, and the router's node name and BGP AS.
const (
	SwitchCli          = "cli"
	ScaleOutRouterNode = "router"
	ScaleOutRouterAS   = 65000
	// ScaleOutDirectorAS is every director's AS: with one AS the
	// routes differ only in their next hop, so bird merges them.
	ScaleOutDirectorAS = 65001
)

// MaxScaleOutDirectors bounds ScaleOut.Directors, which is at least 2:
// one director is no scale-out.
const MaxScaleOutDirectors = 4

// Validate checks Directors.
func (s ScaleOut) Validate() error {
	if s.Directors < 2 || s.Directors > MaxScaleOutDirectors {
		return fmt.Errorf("scale-out lab: %d directors: want 2 to %d", s.Directors, MaxScaleOutDirectors)
	}
	return nil
}

// Director is director i's (0-based) node name and address.
func (s ScaleOut) Director(i int) Host {
	return Host{fmt.Sprintf("dir%d", i+1), netip.AddrFrom4([4]byte{10, 80, 0, byte(i + 1)})}
}

// Spec is the topology. The router forwards, hashes multipath routes on
// the 5-tuple (fib_multipath_hash_policy=1) and sends no redirects. The
// directors, which hold the VIP on lo (the DR data plane forwards only
// frames for a local address), neither answer ARP for it nor use it as an
// ARP source; `tandem realserver up` does the same on the real servers.
// The real servers and the client route through the router.
func (s ScaleOut) Spec() Spec {
	p := func(a netip.Addr, bits int) []netip.Prefix { return []netip.Prefix{netip.PrefixFrom(a, bits)} }
	router := Node{Name: ScaleOutRouterNode, Ifaces: []Iface{
		{Name: "eth0", Switch: SwitchLAN, Addrs: p(ScaleOutRouter, 24)},
		{Name: "eth1", Switch: SwitchCli, Addrs: p(netip.MustParseAddr("10.80.1.254"), 24)},
	}, Sysctls: map[string]string{
		"net.ipv4.ip_forward":                "1",
		"net.ipv4.fib_multipath_hash_policy": "1",
		"net.ipv4.conf.all.send_redirects":   "0",
		"net.ipv4.conf.eth0.send_redirects":  "0",
		"net.ipv4.conf.eth1.send_redirects":  "0",
	}}
	nodes := []Node{router}
	for i := range s.Directors {
		d := s.Director(i)
		nodes = append(nodes, Node{Name: d.Name, Ifaces: []Iface{{Name: "eth0", Switch: SwitchLAN, Addrs: p(d.Addr, 24)}},
			Sysctls: map[string]string{
				"net.ipv4.conf.all.send_redirects":  "0",
				"net.ipv4.conf.eth0.send_redirects": "0",
				"net.ipv4.conf.all.arp_ignore":      "1",
				"net.ipv4.conf.all.arp_announce":    "2",
				"net.ipv4.conf.eth0.arp_ignore":     "1",
				"net.ipv4.conf.eth0.arp_announce":   "2",
			}})
	}
	for _, r := range ScaleOutReals {
		nodes = append(nodes, Node{Name: r.Name, Ifaces: []Iface{{Name: "eth0", Switch: SwitchLAN, Addrs: p(r.Addr, 24)}},
			Routes: []Route{{Via: ScaleOutRouter}}})
	}
	nodes = append(nodes, Node{Name: ScaleOutClient.Name, Ifaces: []Iface{{Name: "eth0", Switch: SwitchCli, Addrs: p(ScaleOutClient.Addr, 24)}},
		Routes: []Route{{Via: netip.MustParseAddr("10.80.1.254")}}})
	return Spec{Nodes: nodes}
}

// ScaleOutHoldTime and ScaleOutKeepaliveTime are the BGP timers on both sides, in
// seconds: the router drops a crashed director's route within HoldTime.
const (
	ScaleOutHoldTime      = 3
	ScaleOutKeepaliveTime = 1
)

// BirdProtocols is the router's bird configuration (after "protocol
// device"): the kernel protocol exporting the best routes with `merge
// paths`, so that the directors' equal routes to the VIP become one
// multipath route, and one passive BGP session per director, whose import
// filter honours GRACEFUL_SHUTDOWN (RFC 8326 section 4: LOCAL_PREF 0, so
// a marked route is no longer among the best, and leaves the multipath
// route before it is withdrawn). After a session error (a crashed
// director's hold timer) bird refuses the peer for `error wait time`, 60
// s at first by default: 1 s here, so a director restarted after a crash
// rejoins at once. With BFD, a `protocol bfd` on eth0 and `bfd on` in
// every BGP session.
func (s ScaleOut) BirdProtocols() string {
	var b strings.Builder
	b.WriteString(`protocol kernel {
  ipv4 { export all; };
  merge paths on;
}
filter director_in {
  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
  accept;
}
`)
	bfd := ""
	if s.BFD {
		fmt.Fprintf(&b, "protocol bfd {\n  interface \"eth0\" {\n    min rx interval %[1]d ms;\n    min tx interval %[1]d ms;\n    multiplier %[2]d;\n  };\n}\n",
			ScaleOutBFDInterval, ScaleOutBFDMultiplier)
		bfd = "  bfd on;\n"
	}
	for i := range s.Directors {
		d := s.Director(i)
		fmt.Fprintf(&b, `protocol bgp %s {
  local %s as %d;
  neighbor %s as %d;
  passive on;
  hold time %d;
  keepalive time %d;
  error wait time 1, 10;
%s  ipv4 { import filter director_in; export none; };
}
`, d.Name, ScaleOutRouter, ScaleOutRouterAS, d.Addr, ScaleOutDirectorAS, ScaleOutHoldTime, ScaleOutKeepaliveTime, bfd)
	}
	return b.String()
}

// ScaleOutGracefulDelay is the directors' graceful_shutdown_delay, in
// seconds: long enough for bird to move the flows on a loaded machine.
const ScaleOutGracefulDelay = 3

// Conf is director i's configuration: the VIP on lo, a DR virtual server
// over the real servers (rr, which the DR data plane turns into a Maglev
// table hashed on the client's address and port: the same on every
// director for the same healthy set), and the bgp block announcing it to
// the router (with BFD, over a bfd_instance to the router).
func (s ScaleOut) Conf(i int) string {
	d := s.Director(i)
	bfdInstance, bfdRef := "", ""
	if s.BFD {
		bfdInstance = fmt.Sprintf("bfd_instance router {\n    neighbor_ip %s\n    source_ip %s\n    min_rx %d\n    min_tx %d\n    multiplier %d\n}\n",
			ScaleOutRouter, d.Addr, ScaleOutBFDInterval, ScaleOutBFDInterval, ScaleOutBFDMultiplier)
		bfdRef = "        bfd router\n"
	}
	var rs strings.Builder
	for _, r := range ScaleOutReals {
		fmt.Fprintf(&rs, `    real_server %s %d {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
`, r.Addr, ScaleOutVIP.Port())
	}
	return fmt.Sprintf(`global_defs {
    router_id %[1]s
}
static_ipaddress {
    %[2]s/32 dev lo
}
virtual_server %[2]s %[3]d {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
%[4]s}
%[12]sbgp {
    router_id %[5]s
    local_as %[6]d
    neighbor %[7]s {
        remote_as %[8]d
        hold_time %[9]d
        keepalive_time %[10]d
%[13]s    }
    graceful_shutdown_delay %[11]d
}
`, d.Name, ScaleOutVIP.Addr(), ScaleOutVIP.Port(), rs.String(), d.Addr, ScaleOutDirectorAS, ScaleOutRouter, ScaleOutRouterAS,
		ScaleOutHoldTime, ScaleOutKeepaliveTime, ScaleOutGracefulDelay, bfdInstance, bfdRef)
}

// NextHops are the gateways of node's kernel route to dst (one for a
// plain route, several for a multipath one), none when there is no route.
func (l *Lab) NextHops(node string, dst netip.Prefix) ([]netip.Addr, error) {
	var hops []netip.Addr
	err := l.Do(node, func() error {
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(dst)}, netlink.RT_FILTER_DST)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				hops = append(hops, gw.Unmap())
			}
			for _, nh := range r.MultiPath {
				if gw, ok := netip.AddrFromSlice(nh.Gw); ok {
					hops = append(hops, gw.Unmap())
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab %s: node %s: route to %s: %w", l.name, node, dst, err)
	}
	return hops, nil
}

// WaitNextHops polls node's route to dst every 10 ms until its next hops
// are want (in any order; none: no route), and returns how long that
// took. It fails when timeout passes or ctx ends first, naming the last
// next hops seen.
func (l *Lab) WaitNextHops(ctx context.Context, node string, dst netip.Prefix, want []netip.Addr, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	for {
		got, err := l.NextHops(node, dst)
		if err != nil {
			return time.Since(start), err
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if slices.Equal(got, want) {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("lab %s: node %s: next hops to %s %v after %v, want %v", l.name, node, dst, got, timeout, want)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
