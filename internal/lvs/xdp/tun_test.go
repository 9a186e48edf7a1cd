package xdp

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// XDP return codes.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// l4Checksum is the TCP/UDP checksum of segment seg (its checksum field
// included: a correct one gives 0) between IPv4 addresses src and dst.
func l4Checksum(src, dst netip.Addr, proto byte, seg []byte) uint16 {
	s, d := src.As4(), dst.As4()
	ph := append(append(s[:], d[:]...), 0, proto, byte(len(seg)>>8), byte(len(seg)))
	return lab.Checksum(0, append(ph, seg...))
}

// frame is a client's TCP segment to vip, from src:sport, with tos, ttl
// and DF as given, padded with payload bytes, its checksums correct, in an
// Ethernet frame to dmac.
func frame(dmac net.HardwareAddr, src netip.Addr, sport uint16, vip netip.AddrPort, tos, ttl byte, df bool, payload int) []byte {
	tcp := make([]byte, 20+payload)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], vip.Port())
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	for i := 20; i < len(tcp); i++ {
		tcp[i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(tcp[16:], l4Checksum(src, vip.Addr(), 6, tcp))
	ip := make([]byte, 20)
	ip[0], ip[1] = 0x45, tos
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	if df {
		ip[6] = 0x40
	}
	ip[8], ip[9] = ttl, 6
	s, d := src.As4(), vip.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], lab.Checksum(0, ip))
	eth := append(append(append([]byte{}, dmac...), 0x02, 0, 0, 0, 0, 0x07), 0x08, 0x00)
	return append(append(eth, ip...), tcp...)
}

// tunFixture is a director (dir: eth0 10.83.2.1/24 with the VIP
// 10.83.9.1, forwarding on) whose TUN real servers, 10.83.3.0/24, are
// behind router (10.83.2.254), with a Kernel programmed with an IPIP
// service on port 80 (to .2), a GUE one on 81 (to .3, port 6080) and a
// GUE one with checksums on 82 (to .4, port 7000); the IPv6 VIP fd83::9
// has ports 80 and 82 over the same IPv4 tunnels; and real servers on
// fd83:3::/64, behind the router's fd83:2::fe, get IPv4 VIP's ports 83
// (IPIP, to fd83:3::2) and 84 (GUE, to fd83:3::3).
type tunFixture struct {
	l         *lab.Lab
	k         *Kernel
	ifindex   uint32
	mac       net.HardwareAddr // dir's eth0
	routerMAC net.HardwareAddr
	vip       netip.Addr
	log       *bytes.Buffer // the Kernel's log
	fx        *fixture
	vss       []lvs.VirtualServer // programmed
}

func newTunFixture(t *testing.T) *tunFixture {
	t.Helper()
	p := netip.MustParsePrefix
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "r", Addrs: []netip.Prefix{p("10.83.2.1/24"), p("10.83.9.1/32"), p("fd83::9/128"), p("fd83:2::1/64")}}},
			Routes: []lab.Route{{Dst: p("10.83.3.0/24"), Via: netip.MustParseAddr("10.83.2.254")},
				{Dst: p("fd83:3::/64"), Via: netip.MustParseAddr("fd83:2::fe")}},
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}},
		{Name: "router", Ifaces: []lab.Iface{{Name: "eth0", Switch: "r", Addrs: []netip.Prefix{p("10.83.2.254/24"), p("fd83:2::fe/64")}}}},
	}})
	f := &tunFixture{l: l, vip: netip.MustParseAddr("10.83.9.1")}
	for node, dst := range map[string]*net.HardwareAddr{"dir": &f.mac, "router": &f.routerMAC} {
		if err := l.Do(node, func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err == nil {
				*dst = ifc.HardwareAddr
				if node == "dir" {
					f.ifindex = uint32(ifc.Index)
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	fx := &fixture{l: l, dir: "dir"}
	f.log = &bytes.Buffer{}
	f.k = fx.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"), WithLogger(slog.New(slog.NewTextHandler(f.log, nil))))
	svc := func(port uint16, rs string, tun lvs.Tunnel) lvs.VirtualServer {
		return lvs.VirtualServer{
			Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: f.vip, Port: port}, Scheduler: lvs.RoundRobin, Method: lvs.TUN},
			Dests:   []lvs.Dest{{Addr: netip.AddrPortFrom(netip.MustParseAddr(rs), port), Weight: 1, Tunnel: tun}},
		}
	}
	// IPv6 services over IPv4 tunnels.
	svc6 := func(port uint16, rs string, tun lvs.Tunnel) lvs.VirtualServer {
		vs := svc(port, rs, tun)
		vs.Service.Family, vs.Service.VIP = lvs.IPv6, tunVIP6
		return vs
	}
	f.fx, f.vss = fx, []lvs.VirtualServer{
		svc(80, "10.83.3.2", lvs.Tunnel{}),
		svc(81, "10.83.3.3", lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080}),
		svc(82, "10.83.3.4", lvs.Tunnel{Type: lvs.TunnelGUE, Port: 7000, Csum: lvs.TunnelCsumOn}),
		svc6(80, "10.83.3.2", lvs.Tunnel{}),
		svc6(82, "10.83.3.4", lvs.Tunnel{Type: lvs.TunnelGUE, Port: 7000, Csum: lvs.TunnelCsumOn}),
		svc(83, "fd83:3::2", lvs.Tunnel{}),
		svc(84, "fd83:3::3", lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080})}
	fx.reconcile(t, f.k, f.vss...)
	return f
}

var tunVIP6 = netip.MustParseAddr("fd83::9")

// frame6 is frame for IPv6: a TCP SYN from [fd83::7]:sport to vip with
// traffic class tc and hop limit hops.
func frame6(dmac net.HardwareAddr, sport uint16, vip netip.AddrPort, tc, hops byte, payload int) []byte {
	src := netip.MustParseAddr("fd83::7")
	tcp := make([]byte, 20+payload)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], vip.Port())
	tcp[12], tcp[13] = 5<<4, 0x02
	for i := 20; i < len(tcp); i++ {
		tcp[i] = byte(i * 5)
	}
	s, d := src.As16(), vip.Addr().As16()
	ph := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(tcp)>>8), byte(len(tcp)), 0, 0, 0, 6)
	binary.BigEndian.PutUint16(tcp[16:], lab.Checksum(0, append(ph, tcp...)))
	ip := make([]byte, 40)
	ip[0], ip[1] = 0x60|tc>>4, tc<<4
	binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
	ip[6], ip[7] = 6, hops
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	eth := append(append(append([]byte{}, dmac...), 0x02, 0, 0, 0, 0, 0x07), 0x86, 0xdd)
	return append(append(eth, ip...), tcp...)
}

// run runs the program on in, received on dir's eth0, and returns its
// verdict and the frame it leaves.
func (f *tunFixture) run(t *testing.T, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(in)+256)
	var ret uint32
	err := f.l.Do("dir", func() error {
		// struct xdp_md: data, data_end, data_meta, ingress_ifindex,
		// rx_queue_index, egress_ifindex.
		opts := &ebpf.RunOptions{Data: in, DataOut: out, Context: [6]uint32{0, uint32(len(in)), 0, f.ifindex, 0, 0}}
		var err error
		ret, err = f.k.objs.XdpLb.Run(opts)
		out = opts.DataOut
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ret, out
}

var (
	tunClient = netip.MustParseAddr("10.83.1.7")
	tunSrc    = netip.MustParseAddr("10.83.2.1")
)

// encap runs the program on in and returns the frame it sends back out
// (XDP_TX), extra bytes longer.
func (f *tunFixture) encap(t *testing.T, in []byte, extra int) []byte {
	t.Helper()
	ret, out := f.run(t, in)
	if ret != xdpTX || len(out) != len(in)+extra {
		t.Fatalf("verdict %d, %d bytes from %d: want XDP_TX and %d bytes more", ret, len(out), len(in), extra)
	}
	return out
}

// drops reads the Kernel's drop counters.
func (f *tunFixture) drops(t *testing.T) Drops {
	t.Helper()
	d, err := f.k.Drops()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkOuter checks the outer Ethernet and IPv4 headers of out, a packet
// that f's program encapsulated from inner toward rs with protocol proto.
func (f *tunFixture) checkOuter(t *testing.T, out, inner []byte, rs string, proto byte, hlen int) {
	t.Helper()
	if !bytes.Equal(out[0:6], f.routerMAC) || !bytes.Equal(out[6:12], f.mac) || out[12] != 8 || out[13] != 0 {
		t.Errorf("outer Ethernet %x: want to the router %v from %v, IPv4", out[:14], f.routerMAC, f.mac)
	}
	ip, in := out[14:34], inner[14:]
	tos, df, ttl := int(in[1]), int(in[6]&0x40), int(in[8])
	if in[0]>>4 == 6 { // traffic class, DF always, hop limit
		tos, df, ttl = int(in[0]&0xf)<<4|int(in[1]>>4), 0x40, int(in[7])
	}
	want := map[string][2]int{
		"version/ihl": {int(ip[0]), 0x45}, "tos": {int(ip[1]), tos},
		"total length": {int(binary.BigEndian.Uint16(ip[2:])), len(in) + hlen},
		"DF":           {int(ip[6] & 0x40), df}, "fragment offset": {int(binary.BigEndian.Uint16(ip[6:]) & 0x1fff), 0},
		"ttl": {int(ip[8]), ttl}, "protocol": {int(ip[9]), int(proto)}, "header checksum": {int(lab.Checksum(0, ip)), 0},
	}
	for what, v := range want {
		if v[0] != v[1] {
			t.Errorf("outer IPv4 %s: %#x, want %#x", what, v[0], v[1])
		}
	}
	if s, d := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])); s != tunSrc || d != netip.MustParseAddr(rs) {
		t.Errorf("outer IPv4 %v -> %v, want %v -> %v", s, d, tunSrc, rs)
	}
	if got := out[14+hlen:]; !bytes.Equal(got, in) {
		t.Errorf("inner packet changed:\n got %x\nwant %x", got, in)
	}
}

// checkOuter6 is checkOuter for an outer IPv6 header from fd83:2::1.
func (f *tunFixture) checkOuter6(t *testing.T, out, inner []byte, rs string, proto byte, hlen int) {
	t.Helper()
	if !bytes.Equal(out[0:6], f.routerMAC) || !bytes.Equal(out[6:12], f.mac) || out[12] != 0x86 || out[13] != 0xdd {
		t.Errorf("outer Ethernet %x: want to the router %v from %v, IPv6", out[:14], f.routerMAC, f.mac)
	}
	ip, in := out[14:54], inner[14:]
	want := map[string][2]int{
		"version": {int(ip[0] >> 4), 6}, "traffic class": {int(ip[0]&0xf)<<4 | int(ip[1]>>4), int(in[1])},
		"flow label":     {int(ip[1]&0xf)<<16 | int(binary.BigEndian.Uint16(ip[2:])), 0},
		"payload length": {int(binary.BigEndian.Uint16(ip[4:])), len(in) + hlen - 40},
		"next header":    {int(ip[6]), int(proto)}, "hop limit": {int(ip[7]), int(in[8])},
	}
	for what, v := range want {
		if v[0] != v[1] {
			t.Errorf("outer IPv6 %s: %#x, want %#x", what, v[0], v[1])
		}
	}
	if s, d := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])); s != netip.MustParseAddr("fd83:2::1") || d != netip.MustParseAddr(rs) {
		t.Errorf("outer IPv6 %v -> %v, want fd83:2::1 -> %v", s, d, rs)
	}
	if got := out[14+hlen:]; !bytes.Equal(got, in) {
		t.Errorf("inner packet changed:\n got %x\nwant %x", got, in)
	}
}

// TestTunEncapsulation runs the program on frames (BPF_PROG_TEST_RUN) and
// checks the bytes it sends: IPIP, and GUE with and without the UDP
// checksum, to a real server behind a router, the outer TOS, TTL and DF
// copied from the inner header, the GUE source port stable per flow, and
// a packet the tunnel makes too big for the MTU counted, and answered
// with ICMP "fragmentation needed" if it has DF, ICMPv6 "packet too big"
// if IPv6, else dropped.
func TestTunEncapsulation(t *testing.T) {
	f := newTunFixture(t)
	vip := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(f.vip, port) }

	t.Run("ipip", func(t *testing.T) {
		for _, df := range []bool{true, false} {
			in := frame(f.mac, tunClient, 40000, vip(80), 0x28, 37, df, 100)
			out := f.encap(t, in, 20)
			f.checkOuter(t, out, in, "10.83.3.2", 4, 20)
		}
	})

	t.Run("ipv6 in ipip", func(t *testing.T) {
		in := frame6(f.mac, 40010, netip.AddrPortFrom(tunVIP6, 80), 0xb8, 9, 60)
		out := f.encap(t, in, 20)
		f.checkOuter(t, out, in, "10.83.3.2", 41, 20)
	})

	gue := func(t *testing.T, in []byte, rs string, port uint16) []byte {
		t.Helper()
		out := f.encap(t, in, 32)
		f.checkOuter(t, out, in, rs, 17, 32)
		udp := out[34:42]
		if sp := binary.BigEndian.Uint16(udp[0:]); sp < 32768 || sp > 60999 {
			t.Errorf("GUE source port %d: want 32768..60999", sp)
		}
		if dp, n := binary.BigEndian.Uint16(udp[2:]), binary.BigEndian.Uint16(udp[4:]); dp != port || int(n) != len(out)-34 {
			t.Errorf("UDP to port %d, length %d: want %d, %d", dp, n, port, len(out)-34)
		}
		// Version 0, no control, no options; IPIP (or IPv6) inside; no
		// flags.
		want := []byte{0, 4, 0, 0}
		if in[12] == 0x86 {
			want[1] = 41
		}
		if g := out[42:46]; !bytes.Equal(g, want) {
			t.Errorf("GUE header %x, want %x", g, want)
		}
		return out
	}
	t.Run("gue", func(t *testing.T) {
		out := gue(t, frame(f.mac, tunClient, 40001, vip(81), 0, 64, true, 30), "10.83.3.3", 6080)
		if c := binary.BigEndian.Uint16(out[40:]); c != 0 {
			t.Errorf("UDP checksum %#x without csum: want 0 (none)", c)
		}
	})
	t.Run("gue csum", func(t *testing.T) {
		for _, n := range []int{0, 1, 33, 1000} { // odd payloads too
			out := gue(t, frame(f.mac, tunClient, 40002, vip(82), 0, 64, true, n), "10.83.3.4", 7000)
			if c := binary.BigEndian.Uint16(out[40:]); c == 0 || l4Checksum(tunSrc, netip.MustParseAddr("10.83.3.4"), 17, out[34:]) != 0 {
				t.Errorf("payload %d: UDP checksum %#x does not check", n, c)
			}
		}
	})
	t.Run("ipv6 in gue csum", func(t *testing.T) {
		for _, n := range []int{0, 7, 400} {
			out := gue(t, frame6(f.mac, 40011, netip.AddrPortFrom(tunVIP6, 82), 0, 64, n), "10.83.3.4", 7000)
			if c := binary.BigEndian.Uint16(out[40:]); c == 0 || l4Checksum(tunSrc, netip.MustParseAddr("10.83.3.4"), 17, out[34:]) != 0 {
				t.Errorf("payload %d: UDP checksum %#x does not check", n, c)
			}
		}
	})
	t.Run("ipip over ipv6", func(t *testing.T) {
		in := frame(f.mac, tunClient, 40020, vip(83), 0x28, 37, true, 100)
		out := f.encap(t, in, 40)
		f.checkOuter6(t, out, in, "fd83:3::2", 4, 40)
	})
	t.Run("gue over ipv6", func(t *testing.T) {
		for _, n := range []int{0, 3, 500} {
			in := frame(f.mac, tunClient, 40021, vip(84), 0, 64, true, n)
			out := f.encap(t, in, 52)
			f.checkOuter6(t, out, in, "fd83:3::3", 17, 52)
			udp := out[54:]
			if dp := binary.BigEndian.Uint16(udp[2:]); dp != 6080 || !bytes.Equal(udp[8:12], []byte{0, 4, 0, 0}) {
				t.Errorf("UDP to %d, GUE %x: want 6080, 00040000", dp, udp[8:12])
			}
			// Over IPv6 the UDP checksum is always there (RFC 8200 8.1).
			s, d := netip.MustParseAddr("fd83:2::1").As16(), netip.MustParseAddr("fd83:3::3").As16()
			ph := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
			if c := binary.BigEndian.Uint16(udp[6:]); c == 0 || lab.Checksum(0, append(ph, udp...)) != 0 {
				t.Errorf("payload %d: UDP checksum %#x does not check", n, c)
			}
		}
	})
	t.Run("gue source port per flow", func(t *testing.T) {
		ports := map[uint16]bool{}
		for i := range 16 {
			sport := uint16(41000 + i)
			_, a := f.run(t, frame(f.mac, tunClient, sport, vip(81), 0, 64, true, 10))
			_, b := f.run(t, frame(f.mac, tunClient, sport, vip(81), 0, 64, true, 500))
			if !bytes.Equal(a[34:36], b[34:36]) {
				t.Errorf("flow from port %d: GUE source ports %x and %x", sport, a[34:36], b[34:36])
			}
			ports[binary.BigEndian.Uint16(a[34:])] = true
		}
		if len(ports) < 8 {
			t.Errorf("16 flows used %d GUE source ports: want them spread", len(ports))
		}
	})
	t.Run("too big", func(t *testing.T) {
		before := f.drops(t)
		// 1480 bytes of IP fit a 1500-byte MTU; with 20 bytes of IPIP
		// they do not.
		fits := frame(f.mac, tunClient, 40003, vip(80), 0, 64, true, 1480-40)
		if ret, _ := f.run(t, fits); ret != xdpTX {
			t.Errorf("1480 bytes in IPIP: verdict %d, want XDP_TX", ret)
		}
		// With DF: ICMP "fragmentation needed" back to the sender, from
		// the VIP, naming the tunnel's MTU and quoting the packet's IP
		// header and first 8 bytes.
		big := frame(f.mac, tunClient, 40003, vip(80), 0, 64, true, 1481-40)
		ret, out := f.run(t, big)
		if ret != xdpTX || len(out) != 14+20+8+28 {
			t.Fatalf("1481 bytes with DF in IPIP: verdict %d, %d bytes; want XDP_TX of an ICMP error (70 bytes)", ret, len(out))
		}
		ip, icmp := out[14:34], out[34:]
		switch {
		case !bytes.Equal(out[0:6], big[6:12]) || !bytes.Equal(out[6:12], f.mac) || out[12] != 8 || out[13] != 0:
			t.Errorf("ICMP frame %x: want back to the sender's MAC from ours", out[:14])
		case ip[0] != 0x45 || ip[9] != 1 || lab.Checksum(0, ip) != 0 || binary.BigEndian.Uint16(ip[2:]) != 56:
			t.Errorf("ICMP's IPv4 header %x: want protocol 1, 56 bytes, a correct checksum", ip)
		case netip.AddrFrom4([4]byte(ip[12:16])) != f.vip || netip.AddrFrom4([4]byte(ip[16:20])) != tunClient:
			t.Errorf("ICMP from %v to %v: want from the VIP to the client", ip[12:16], ip[16:20])
		case icmp[0] != 3 || icmp[1] != 4 || binary.BigEndian.Uint16(icmp[6:]) != 1480 || lab.Checksum(0, icmp) != 0:
			t.Errorf("ICMP %x: want type 3 code 4, MTU 1480, a correct checksum", icmp[:8])
		case !bytes.Equal(icmp[8:], big[14:14+28]):
			t.Errorf("ICMP quotes %x, want %x", icmp[8:], big[14:14+28])
		}
		// IPv6: ICMPv6 "packet too big", quoting the header and 8 bytes.
		big6 := frame6(f.mac, 40004, netip.AddrPortFrom(tunVIP6, 80), 0, 64, 1481-60)
		ret, out = f.run(t, big6)
		if ret != xdpTX || len(out) != 14+40+8+48 {
			t.Fatalf("1481 bytes of IPv6 in IPIP: verdict %d, %d bytes; want XDP_TX of an ICMPv6 error (110 bytes)", ret, len(out))
		}
		ip6, icmp6 := out[14:54], out[54:]
		s, d := tunVIP6.As16(), netip.MustParseAddr("fd83::7").As16()
		ph := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, 0, 56, 0, 0, 0, 58)
		switch {
		case !bytes.Equal(out[0:6], big6[6:12]) || !bytes.Equal(out[6:12], f.mac) || out[12] != 0x86 || out[13] != 0xdd:
			t.Errorf("ICMPv6 frame %x: want back to the sender's MAC from ours", out[:14])
		case ip6[0]>>4 != 6 || ip6[6] != 58 || binary.BigEndian.Uint16(ip6[4:]) != 56 || !bytes.Equal(ip6[8:24], s[:]) || !bytes.Equal(ip6[24:40], d[:]):
			t.Errorf("ICMPv6's IPv6 header %x: want next header 58, 56 bytes, from the VIP to the client", ip6)
		case icmp6[0] != 2 || icmp6[1] != 0 || binary.BigEndian.Uint32(icmp6[4:]) != 1480 || lab.Checksum(0, append(ph, icmp6...)) != 0:
			t.Errorf("ICMPv6 %x: want type 2 code 0, MTU 1480, a correct checksum", icmp6[:8])
		case !bytes.Equal(icmp6[8:], big6[14:14+48]):
			t.Errorf("ICMPv6 quotes %x, want %x", icmp6[8:], big6[14:14+48])
		}
		// Without DF: dropped (IPVS would fragment the outer packet).
		big = frame(f.mac, tunClient, 40003, vip(80), 0, 64, false, 1481-40)
		if ret, _ := f.run(t, big); ret != xdpDrop {
			t.Errorf("1481 bytes without DF in IPIP: verdict %d, want XDP_DROP", ret)
		}
		if after := f.drops(t); after != (Drops{TooBig: before.TooBig + 3, NoRoute: before.NoRoute}) {
			t.Errorf("drops %+v -> %+v: want three more too big", before, after)
		}
	})
	t.Run("forwarding off", func(t *testing.T) {
		if err := f.l.Sysctl("dir", "net.ipv4.ip_forward", "0"); err != nil {
			t.Fatal(err)
		}
		defer f.l.Sysctl("dir", "net.ipv4.ip_forward", "1")
		before := f.drops(t)
		if ret, _ := f.run(t, frame(f.mac, tunClient, 40030, vip(80), 0, 64, true, 10)); ret != xdpDrop {
			t.Errorf("verdict %d without forwarding, want XDP_DROP", ret)
		}
		if after := f.drops(t); after != (Drops{TooBig: before.TooBig, NoRoute: before.NoRoute + 1}) {
			t.Errorf("drops %+v -> %+v: want one more without a route", before, after)
		}
		// A TUN server programmed now is told about.
		more := f.vss[0]
		more.Service.Port = 85
		f.fx.reconcile(t, f.k, append(f.vss, more)...)
		if !strings.Contains(f.log.String(), "set net.ipv4.ip_forward=1") {
			t.Errorf("no warning about forwarding logged:\n%s", f.log.String())
		}
	})
	t.Run("not for the VIP", func(t *testing.T) {
		in := frame(f.mac, tunClient, 40004, netip.MustParseAddrPort("10.83.2.1:80"), 0, 64, true, 10)
		if ret, out := f.run(t, in); ret != xdpPass || !bytes.Equal(out, in) {
			t.Errorf("a packet for the director itself: verdict %d, want XDP_PASS unchanged", ret)
		}
	})
}

// TestTunRefused: GRE real servers are refused by name, with the data
// plane that tunnels them; IPIP and GUE ones, IPv4 or IPv6, are not.
func TestTunRefused(t *testing.T) {
	for _, tc := range []struct {
		d    lvs.Dest
		want string
	}{
		{lvs.Dest{Addr: rs1, Weight: 1, Method: lvs.TUN, Tunnel: lvs.Tunnel{Type: lvs.TunnelGRE}}, "not gre (use the ipvs data plane)"},
	} {
		if err := checkDest(tc.d); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%v %v: %v, want an error naming %q", tc.d.Addr, tc.d.Tunnel, err, tc.want)
		}
	}
	for _, tun := range []lvs.Tunnel{{}, {Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelRemCsum}} {
		for _, a := range []netip.AddrPort{rs1, netip.MustParseAddrPort("[2001:db8::2]:80")} {
			if err := checkDest(lvs.Dest{Addr: a, Weight: 1, Method: lvs.TUN, Tunnel: tun}); err != nil {
				t.Errorf("%v %v: %v", a, tun, err)
			}
		}
	}
}

// TestTunEndToEnd: TCP connections from a client behind a router reach
// real servers on another subnet through the director's XDP program,
// IPIP for one service, GUE for another, and GUE over IPv6 (to the
// servers' IPv6 addresses) for a third, the servers decapsulating with
// AttachDecap; both servers serve both services, and a server that
// leaves a service gets none of its new connections.
func TestTunEndToEnd(t *testing.T) {
	f := &fixture{dir: "dir", vip: netip.MustParseAddrPort("10.84.9.1:80"),
		rs1: netip.MustParseAddrPort("10.84.3.2:80"), rs2: netip.MustParseAddrPort("10.84.3.3:80")}
	// The client's packets come in on eth0, where the director attaches
	// the program only when told (WithInterfaces), and leave,
	// encapsulated, out of eth1.
	f.l = newLab(t, lab.RoutedTUN(84, netip.MustParsePrefix("10.84.9.1/32")), f, []string{"f", "b"})
	gueVIP := netip.AddrPortFrom(f.vip.Addr(), 81)
	gue6VIP := netip.AddrPortFrom(f.vip.Addr(), 82) // to the servers' IPv6 addresses
	for _, rs := range []string{"rs1", "rs2"} {
		f.l.ServeT(t, rs, gueVIP.String(), lab.NameEcho(rs))
		f.l.ServeT(t, rs, gue6VIP.String(), lab.NameEcho(rs))
		var d *Decap
		if err := f.l.Do(rs, func() (err error) {
			d, err = AttachDecap("eth0", []uint16{6080})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.l.Do(rs, d.Close) })
	}
	k := f.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"), WithInterfaces("eth0"))
	svc := func(vip netip.AddrPort, tun lvs.Tunnel, rss ...netip.AddrPort) lvs.VirtualServer {
		vs := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()},
			Scheduler: lvs.RoundRobin, Method: lvs.TUN}}
		for _, a := range rss {
			vs.Dests = append(vs.Dests, lvs.Dest{Addr: netip.AddrPortFrom(a.Addr(), vip.Port()), Weight: 1, Tunnel: tun})
		}
		return vs
	}
	gue := lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelCsumOn}
	rs6 := []netip.AddrPort{netip.MustParseAddrPort("[fd00:84:3::2]:82"), netip.MustParseAddrPort("[fd00:84:3::3]:82")}
	f.reconcile(t, k, svc(f.vip, lvs.Tunnel{}, f.rs1, f.rs2), svc(gueVIP, gue, f.rs1, f.rs2),
		svc(gue6VIP, lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080}, rs6...))
	if a := f.attached(t, "eth0", "eth1"); !a["eth0"] || !a["eth1"] {
		t.Fatalf("XDP attached %v: want eth0 (WithInterfaces) and eth1 (the route to the servers)", a)
	}
	for _, vip := range []netip.AddrPort{f.vip, gueVIP, gue6VIP} {
		got := map[string]int{}
		for i := range 40 {
			who, err := f.askAt(vip, 23000+i)
			if err != nil {
				t.Fatalf("connection %d to %v: %v (so far %v)", i, vip, err, got)
			}
			got[who]++
		}
		t.Logf("rr over 40 connections to %v: %v", vip, got)
		if got["rs1"] < 8 || got["rs2"] < 8 {
			t.Errorf("%v: %v, want both servers well used", vip, got)
		}
	}
	cs, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for key, ds := range cs {
		for _, c := range ds {
			if c.Packets < 8*4 {
				t.Errorf("%v %v: %d packets counted", key, c.Addr, c.Packets)
			}
		}
	}
	if d, err := k.Drops(); err != nil || d != (Drops{}) {
		t.Errorf("drops %+v, %v: want none", d, err)
	}

	// rs1 leaves the IPIP service: every new connection goes to rs2.
	f.reconcile(t, k, svc(f.vip, lvs.Tunnel{}, f.rs2), svc(gueVIP, gue, f.rs1, f.rs2),
		svc(gue6VIP, lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080}, rs6...))
	for i := range 20 {
		if who, err := f.askAt(f.vip, 24000+i); err != nil || who != "rs2" {
			t.Errorf("connection %d after rs1 left: %q, %v; want rs2", i, who, err)
		}
	}
}

// outer wraps inner (an Ethernet frame) in an outer IPv4 header of
// protocol proto from 10.0.0.1 to 10.0.0.2, with the extra bytes between
// them (a UDP and GUE header), keeping inner's Ethernet addresses.
func outer(inner []byte, proto byte, extra []byte) []byte {
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(extra)+len(inner)-14))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], lab.Checksum(0, ip))
	out := append(append([]byte{}, inner[:12]...), 0x08, 0x00)
	return append(append(append(out, ip...), extra...), inner[14:]...)
}

// outer6 is outer with an IPv6 outer header (fd00::1 to fd00::2).
func outer6(inner []byte, proto byte, extra []byte) []byte {
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(extra)+len(inner)-14))
	ip[6], ip[7] = proto, 64
	ip[8], ip[23], ip[24], ip[39] = 0xfd, 1, 0xfd, 2
	out := append(append([]byte{}, inner[:12]...), 0x86, 0xdd)
	return append(append(append(out, ip...), extra...), inner[14:]...)
}

// udpGUE is a UDP header to port (length for payload n) and, with gue,
// the 4 bytes of a GUE header.
func udpGUE(port uint16, n int, gue []byte) []byte {
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], 50000)
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(gue)+n))
	return append(u, gue...)
}

// TestDecap runs the decapsulation program (BPF_PROG_TEST_RUN) on IPIP,
// GUE (versions 0 and 1, with optional fields), over IPv4 and IPv6, and
// other packets: it
// gives back the inner frame of each tunnel packet and passes the rest
// unchanged.
func TestDecap(t *testing.T) {
	lab.RequireRoot(t)
	var objs decapObjects
	if err := loadDecapObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	if err := objs.GuePorts.Put(htons(6080), uint8(1)); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	inner := frame(mac, netip.MustParseAddr("10.9.9.9"), 40000, netip.MustParseAddrPort("10.1.1.1:80"), 0, 64, true, 50)
	n := len(inner) - 14
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte // nil: unchanged
	}{
		{"ipip", outer(inner, 4, nil), inner},
		{"gue", outer(inner, 17, udpGUE(6080, n, []byte{0, 4, 0, 0})), inner},
		{"gue with 8 bytes of options", outer(inner, 17, udpGUE(6080, n, []byte{2, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})), inner},
		{"gue version 1", outer(inner, 17, udpGUE(6080, n, nil)), inner},
		{"gue to another port", outer(inner, 17, udpGUE(6081, n, []byte{0, 4, 0, 0})), nil},
		{"gue control message", outer(inner, 17, udpGUE(6080, n, []byte{0x20, 4, 0, 0})), nil},
		{"gue of protocol 47", outer(inner, 17, udpGUE(6080, n, []byte{0, 47, 0, 0})), nil},
		{"ipip over ipv6", outer6(inner, 4, nil), inner},
		{"gue over ipv6", outer6(inner, 17, udpGUE(6080, n, []byte{0, 4, 0, 0})), inner},
		{"gue over ipv6 to another port", outer6(inner, 17, udpGUE(6081, n, []byte{0, 4, 0, 0})), nil},
		{"plain tcp", inner, nil},
		{"gre", outer(inner, 47, []byte{0, 0, 8, 0}), nil},
	} {
		out := make([]byte, len(tc.in)+64)
		opts := &ebpf.RunOptions{Data: tc.in, DataOut: out}
		ret, err := objs.XdpDecap.Run(opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := tc.want
		if want == nil {
			want = tc.in
		}
		if ret != xdpPass || !bytes.Equal(opts.DataOut, want) {
			t.Errorf("%s: verdict %d, frame\n %x\nwant\n %x", tc.name, ret, opts.DataOut, want)
		}
	}
}

// TestDecapPin: a pinned decapsulator stays attached after its process
// lets go of it (as `tandem realserver up` exits), until DetachDecap;
// Close of an unpinned one detaches it.
func TestDecapPin(t *testing.T) {
	f := &fixture{dir: "dir"}
	f.l = lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.85.0.1/24")}}}}}})
	dir := filepath.Join(lab.BPFFST(t), "tandem")
	var d *Decap
	if err := f.l.Do("dir", func() (err error) {
		if d, err = AttachDecap("eth0", []uint16{6080}); err != nil {
			return err
		}
		return d.Pin(dir)
	}); err != nil {
		t.Fatal(err)
	}
	// What the end of the process does: its file descriptors close.
	d.link.Close()
	d.objs.Close()
	if !f.attached(t, "eth0")["eth0"] || len(pins(t, dir)) != 1 {
		t.Fatalf("after the process let go: attached %v, pins %v; want attached, one pin", f.attached(t, "eth0"), pins(t, dir))
	}
	if err := f.l.Do("dir", func() error { return DetachDecap(dir, "eth0") }); err != nil {
		t.Fatal(err)
	}
	if f.attached(t, "eth0")["eth0"] || len(pins(t, dir)) != 0 {
		t.Errorf("after DetachDecap: attached %v, pins %v; want neither", f.attached(t, "eth0"), pins(t, dir))
	}
	if err := f.l.Do("dir", func() error { return DetachDecap(dir, "eth0") }); err != nil {
		t.Errorf("DetachDecap with nothing attached: %v", err)
	}
	if err := f.l.Do("dir", func() (err error) {
		if d, err = AttachDecap("eth0", nil); err != nil {
			return err
		}
		return d.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if f.attached(t, "eth0")["eth0"] {
		t.Error("after Close: still attached")
	}
}
