package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// The NAT pair's addresses: the VIP on the outside (wan), the real
// servers' gateway (also floating, with the VIP) on the inside (lan), and
// the directors' own link for conntrackd (ct).
var (
	NATPairVIP = netip.AddrPortFrom(netip.MustParseAddr("10.7.1.100"), 7000)
	NATPairGW  = netip.MustParseAddr("10.7.2.1")
	// NATPairReals are the real servers, on the inside.
	NATPairReals = []Host{{"rs1", netip.MustParseAddr("10.7.2.11")}, {"rs2", netip.MustParseAddr("10.7.2.12")}}
	// NATPairClient is the client, on the outside.
	NATPairClient = Host{"client", netip.MustParseAddr("10.7.1.50")}
)

// SwitchCT is the NAT pair's link between its directors.
const SwitchCT = "ct"

// NATPairSpec is two NAT directors, dir1 and dir2 (eth0 outside, eth1
// inside, eth2 their sync link), the real servers NATPairReals, whose
// default route is the floating inside gateway NATPairGW, and the client
// NATPairClient outside. Used by test/e2e and bench/conns.
func NATPairSpec() Spec {
	p := netip.MustParsePrefix
	dir := func(name string, n int) Node {
		return Node{Name: name, Ifaces: []Iface{
			{Name: "eth0", Switch: SwitchWAN, Addrs: []netip.Prefix{p(fmt.Sprintf("10.7.1.%d/24", n))}},
			{Name: "eth1", Switch: SwitchLAN, Addrs: []netip.Prefix{p(fmt.Sprintf("10.7.2.%d/24", n))}},
			{Name: "eth2", Switch: SwitchCT, Addrs: []netip.Prefix{p(fmt.Sprintf("10.7.9.%d/24", n))}},
		}, Sysctls: map[string]string{
			"net.ipv4.ip_forward":               "1",
			"net.ipv4.conf.all.send_redirects":  "0",
			"net.ipv4.conf.eth0.send_redirects": "0",
			"net.ipv4.conf.eth1.send_redirects": "0",
		}}
	}
	nodes := []Node{dir("dir1", 2), dir("dir2", 3)}
	for _, r := range NATPairReals {
		nodes = append(nodes, Node{Name: r.Name, Ifaces: []Iface{{Name: "eth0", Switch: SwitchLAN, Addrs: []netip.Prefix{netip.PrefixFrom(r.Addr, 24)}}},
			Routes: []Route{{Via: NATPairGW}}})
	}
	nodes = append(nodes, Node{Name: NATPairClient.Name, Ifaces: []Iface{{Name: "eth0", Switch: SwitchWAN, Addrs: []netip.Prefix{netip.PrefixFrom(NATPairClient.Addr, 24)}}}})
	return Spec{Nodes: nodes}
}

// NATPairConf is the configuration of a NATPairSpec director pair: VRRPv3
// floating the VIP and the inside gateway (dir1 at priority 150, dir2 at
// 100, both starting BACKUP), a round-robin NAT service over the real
// servers with TCP_CHECK, and, with Sync, conntrack_sync over eth2.
type NATPairConf struct {
	Sync   bool
	Advert string // advert_int, seconds; "" means 0.1
}

// Conf is the configuration of director node, dir1 or dir2.
func (c NATPairConf) Conf(node string) string {
	self, peer, prio := 2, 3, 150
	if node == "dir2" {
		self, peer, prio = 3, 2, 100
	}
	advert := c.Advert
	if advert == "" {
		advert = "0.1"
	}
	ct := ""
	if c.Sync {
		ct = fmt.Sprintf("conntrack_sync {\n    instance VI_1\n    interface eth2\n    source 10.7.9.%d\n    peer 10.7.9.%d\n}\n", self, peer)
	}
	var rs strings.Builder
	for _, r := range NATPairReals {
		fmt.Fprintf(&rs, "    real_server %s %d {\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n", r.Addr, NATPairVIP.Port())
	}
	return fmt.Sprintf(`vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 71
    version 3
    priority %d
    advert_int %s
    virtual_ipaddress {
        %s/24 dev eth0
        %s/24 dev eth1
    }
}
virtual_server %s %d {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
%s}
%s`, prio, advert, NATPairVIP.Addr(), NATPairGW, NATPairVIP.Addr(), NATPairVIP.Port(), rs.String(), ct)
}

// ConntrackdFlows is how many flows to port the conntrackd running in
// node with configuration conf holds in its external cache (the flows
// its peer replicated to it).
func (l *Lab) ConntrackdFlows(ctx context.Context, node, conf string, port uint16) (int, error) {
	out, err := l.Command(ctx, node, "conntrackd", "-C", conf, "-e").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("lab %s: conntrackd -e in %s: %w: %s", l.name, node, err, out)
	}
	return strings.Count(string(out), fmt.Sprintf("dport=%d ", port)), nil
}
