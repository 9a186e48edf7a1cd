// Package netio is where VRRP touches the kernel: raw VRRP sockets bound to
// an interface (multicast or unicast, IPv4 and IPv6), virtual addresses,
// routes and rules over netlink, and gratuitous ARP / unsolicited neighbour
// advertisements. Everything here works in the network namespace of the
// calling thread.
package netio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// IP protocol numbers: VRRP (RFC 3768 §5.2.4, RFC 5798 §5.1.1.4), and AH,
// which carries VRRPv2 with IPsec authentication (keepalived's auth_type AH).
const (
	ProtoVRRP = 112
	ProtoAH   = 51
)

// tosInternetControl is the precedence keepalived gives VRRP packets
// (IPTOS_PREC_INTERNETCONTROL), so that they survive congested queues.
const tosInternetControl = 0xc0

// ConnConfig says where a VRRP instance sends and listens.
type ConnConfig struct {
	Interface string
	IPv6      bool
	// Group is the multicast group; it is ignored when Peers is set.
	Group netip.Addr
	// Peers are the unicast peers (unicast_peer); empty means multicast.
	Peers []netip.Addr
	// Src is the source address (unicast_src_ip / mcast_src_ip); the zero
	// value picks the interface's primary IPv4 address or its IPv6
	// link-local address (RFC 5798 §5.1.2.1).
	Src netip.Addr
	// AddrFrom is the interface whose address is the default source, if
	// not Interface: a VMAC's parent (the macvlan has only the VIPs, and
	// only while master; keepalived sends from the parent's address).
	AddrFrom string
	// Exclude lists addresses never to pick as source (the VIPs, which a
	// crashed earlier run may have left on the interface).
	Exclude []netip.Addr
	// TTL of sent packets: 255 (RFC 3768 §5.2.3); unicast_ttl may lower it.
	TTL int
	// AH listens for IPv4 AH packets (protocol 51) instead of VRRP (112).
	AH bool
}

// Packet is one received VRRP message with what the IP layer said of it.
// For IPv4, Data is the whole IP packet (header included: AH covers it);
// for IPv6, the VRRP message alone.
type Packet struct {
	Data []byte
	Src  netip.Addr
	Dst  netip.Addr
	TTL  int
	// Overflow counts the packets the socket dropped, its receive buffer
	// full, since the previous packet Recv returned (SO_RXQ_OVFL,
	// socket(7)). The kernel reports a drop with the next packet it
	// queues, so drops after the last packet show up with the next one.
	Overflow uint32
	// Age is how long the packet had been in the socket when Recv
	// returned it: the wall clock then, less the kernel's receive
	// timestamp (SO_TIMESTAMPNS, socket(7)); 0 without a timestamp, or if
	// the wall clock was stepped back in between. Callers subtract it from
	// their own (monotonic) clock's reading to date the packet's arrival,
	// so that a reader running late does not make the packet late.
	Age time.Duration
}

// Conn is a raw VRRP socket on one interface.
type Conn struct {
	cfg   ConnConfig
	ifi   *net.Interface
	src   netip.Addr
	dests []netip.Addr
	v4    *ipv4.RawConn
	v6    *ipv6.PacketConn
	raw   net.PacketConn
	ip    *net.IPConn

	// Recv's, which runs on one goroutine: the control-message buffer and
	// the socket's drop count as of the last packet.
	oob   []byte
	drops uint32
}

// Errors Listen returns for the two usual mistakes at start.
var (
	ErrPermission  = errors.New("raw sockets need root or CAP_NET_RAW")
	ErrNoInterface = errors.New("no such interface in this network namespace")
)

// Listen opens the VRRP socket described by cfg: bound to the interface
// (SO_BINDTODEVICE), joined to the multicast group unless unicast, sending
// with TTL/hop limit 255 and multicast loopback off.
func Listen(cfg ConnConfig) (*Conn, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, ErrNoInterface)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 255
	}
	c := &Conn{cfg: cfg, ifi: ifi}
	if c.src = cfg.Src; !c.src.IsValid() {
		from := ifi
		if cfg.AddrFrom != "" {
			if from, err = net.InterfaceByName(cfg.AddrFrom); err != nil {
				return nil, fmt.Errorf("interface %s: %w", cfg.AddrFrom, ErrNoInterface)
			}
		}
		if c.src, err = sourceAddr(from, cfg.IPv6, cfg.Exclude); err != nil {
			return nil, err
		}
	}
	c.dests = cfg.Peers
	if len(c.dests) == 0 {
		c.dests = []netip.Addr{cfg.Group}
	}
	network, any := "ip4:112", "0.0.0.0"
	switch {
	case cfg.IPv6:
		network, any = "ip6:112", "::"
	case cfg.AH:
		network = "ip4:51"
	}
	c.raw, err = net.ListenPacket(network, any)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("vrrp socket on %s: %w", cfg.Interface, ErrPermission)
		}
		return nil, fmt.Errorf("vrrp socket on %s: %w", cfg.Interface, err)
	}
	c.ip = c.raw.(*net.IPConn)
	c.oob = make([]byte, 512)
	if err := c.setup(); err != nil {
		c.raw.Close()
		return nil, fmt.Errorf("vrrp socket on %s: %w", cfg.Interface, err)
	}
	return c, nil
}

func (c *Conn) setup() (err error) {
	if err := bindToDevice(c.raw, c.ifi.Name); err != nil {
		return err
	}
	// Adverts the kernel drops because nobody read them in time (a
	// flood) are counted as well as those Tandem drops itself.
	if err := setsockopt(c.raw, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return fmt.Errorf("SO_RXQ_OVFL: %w", err)
	}
	// Each packet carries the time the kernel received it.
	if err := setsockopt(c.raw, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	multicast := len(c.cfg.Peers) == 0
	group := &net.IPAddr{IP: c.cfg.Group.AsSlice()}
	if c.cfg.IPv6 {
		c.v6 = ipv6.NewPacketConn(c.raw)
		for _, f := range []func() error{
			func() error { return c.v6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true) },
			func() error { return c.v6.SetMulticastHopLimit(c.cfg.TTL) },
			func() error { return c.v6.SetHopLimit(c.cfg.TTL) },
			func() error { return c.v6.SetMulticastLoopback(false) },
			func() error { return c.v6.SetMulticastInterface(c.ifi) },
			func() error { return c.v6.SetTrafficClass(tosInternetControl) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		if multicast {
			return c.v6.JoinGroup(c.ifi, group)
		}
		return nil
	}
	// IPv4 packets are built whole (IP_HDRINCL): AH authenticates the
	// header, and the source must be the chosen one even for multicast.
	if c.v4, err = ipv4.NewRawConn(c.raw); err != nil {
		return err
	}
	for _, f := range []func() error{
		func() error { return c.v4.SetControlMessage(ipv4.FlagInterface, true) },
		func() error { return c.v4.SetMulticastTTL(c.cfg.TTL) },
		func() error { return c.v4.SetMulticastLoopback(false) },
		func() error { return c.v4.SetMulticastInterface(c.ifi) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	if multicast {
		return c.v4.JoinGroup(c.ifi, group)
	}
	return nil
}

func bindToDevice(pc net.PacketConn, name string) error {
	if err := control(pc, func(fd int) error { return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name) }); err != nil {
		return fmt.Errorf("bind to device %s: %w", name, err)
	}
	return nil
}

func setsockopt(pc net.PacketConn, level, opt, v int) error {
	return control(pc, func(fd int) error { return unix.SetsockoptInt(fd, level, opt, v) })
}

// control runs fn on pc's descriptor.
func control(pc net.PacketConn, fn func(fd int) error) error {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// sourceAddr picks the interface's primary IPv4 address, or its IPv6
// link-local address, skipping excluded ones.
func sourceAddr(ifi *net.Interface, v6 bool, exclude []netip.Addr) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is6() != v6 || (v6 && !ip.IsLinkLocalUnicast()) || containsAddr(exclude, ip) {
			continue
		}
		return ip, nil
	}
	fam := "IPv4 address"
	if v6 {
		fam = "IPv6 link-local address"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s to send VRRP from", ifi.Name, fam)
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// Src is the address this connection sends from.
func (c *Conn) Src() netip.Addr { return c.src }

// Dests are where adverts go: the multicast group or every unicast peer.
func (c *Conn) Dests() []netip.Addr { return c.dests }

// Interface is the interface the connection is bound to.
func (c *Conn) Interface() *net.Interface { return c.ifi }

// SendTo sends one message to dst: for IPv4 a whole IP packet (built
// with Src as source), for IPv6 the VRRP message, sent from Src.
func (c *Conn) SendTo(dst netip.Addr, data []byte) error {
	to := &net.IPAddr{IP: dst.AsSlice()}
	var err error
	if c.v6 != nil {
		if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
			to.Zone = c.ifi.Name
		}
		_, err = c.v6.WriteTo(data, &ipv6.ControlMessage{Src: c.src.AsSlice(), IfIndex: c.ifi.Index, HopLimit: c.cfg.TTL}, to)
	} else {
		_, err = c.raw.WriteTo(data, to)
	}
	if err != nil {
		return fmt.Errorf("send vrrp to %s on %s: %w", dst, c.ifi.Name, err)
	}
	return nil
}

// Recv reads the next VRRP message received on the interface. buf must
// hold the largest message (an advert of 255 IPv6 addresses is < 4100 bytes).
func (c *Conn) Recv(buf []byte) (Packet, error) {
	for {
		n, oobn, _, from, err := c.ip.ReadMsgIP(buf, c.oob)
		if err != nil {
			return Packet{}, err
		}
		var src netip.Addr
		if from != nil {
			src, _ = netip.AddrFromSlice(from.IP)
		}
		if p, ok := c.packet(buf[:n], c.oob[:oobn], src, time.Now()); ok {
			return p, nil
		}
	}
}

// RecvNow is Recv without waiting: ok is false when no packet is queued.
// It reads the socket directly on the calling thread, never through the
// Go runtime's poller, so that a real-time thread reading it depends on
// no other thread. It must not run at the same time as Recv.
func (c *Conn) RecvNow(buf []byte) (p Packet, ok bool, err error) {
	for {
		var n, oobn int
		var from unix.Sockaddr
		cerr := control(c.raw, func(fd int) error {
			var err error
			n, oobn, _, from, err = unix.Recvmsg(fd, buf, c.oob, unix.MSG_DONTWAIT)
			return err
		})
		if errors.Is(cerr, unix.EAGAIN) {
			return Packet{}, false, nil
		}
		if cerr != nil {
			return Packet{}, false, cerr
		}
		var src netip.Addr
		if sa, isV6 := from.(*unix.SockaddrInet6); isV6 {
			src = netip.AddrFrom16(sa.Addr)
		}
		if p, ok := c.packet(buf[:n], c.oob[:oobn], src, time.Now()); ok {
			return p, true, nil
		}
	}
}

// FD is the socket's descriptor, to wait on with poll(2) for RecvNow; it
// is valid until Close.
func (c *Conn) FD() (int, error) {
	var fd int
	err := control(c.raw, func(f int) error { fd = f; return nil })
	return fd, err
}

// packet makes a Packet of a message read at read with its control
// messages; ok is false for one to skip. src is the sender (IPv6; IPv4
// takes it from the header).
func (c *Conn) packet(data, oob []byte, src netip.Addr, read time.Time) (Packet, bool) {
	overflow, age := c.socketMessages(oob, read)
	if c.v6 != nil {
		var cm ipv6.ControlMessage
		// Without its control messages (destination, hop limit) an
		// IPv6 advert cannot be checked.
		if err := cm.Parse(oob); err != nil || len(oob) == 0 || cm.IfIndex != 0 && cm.IfIndex != c.ifi.Index {
			return Packet{}, false
		}
		p := Packet{Data: data, Src: src, TTL: cm.HopLimit, Overflow: overflow, Age: age}
		p.Dst, _ = netip.AddrFromSlice(cm.Dst)
		return p, true
	}
	// SO_BINDTODEVICE filters, but packets queued before it was set
	// may come from elsewhere.
	var cm ipv4.ControlMessage
	if err := cm.Parse(oob); err == nil && cm.IfIndex != 0 && cm.IfIndex != c.ifi.Index {
		return Packet{}, false
	}
	// A raw IPv4 socket reads the IP header too.
	h, err := ipv4.ParseHeader(data)
	if err != nil {
		return Packet{}, false
	}
	p := Packet{Data: data, TTL: h.TTL, Overflow: overflow, Age: age}
	p.Src, _ = netip.AddrFromSlice(h.Src.To4())
	p.Dst, _ = netip.AddrFromSlice(h.Dst.To4())
	return p, true
}

// socketMessages reads the socket-level control messages of a packet
// read at read: overflow is the number of packets the socket dropped since
// the previous packet, from SO_RXQ_OVFL (the socket's drop count,
// cumulative, when the packet was queued; present only once it is
// non-zero); age is how long before read the kernel received the packet,
// from SCM_TIMESTAMPNS.
func (c *Conn) socketMessages(oob []byte, read time.Time) (overflow uint32, age time.Duration) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch {
		case m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4:
			total := binary.NativeEndian.Uint32(m.Data)
			overflow = total - c.drops // modulo 2^32, as the kernel's counter wraps
			c.drops = total
		case m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			// The stamp is CLOCK_REALTIME; read's wall reading is too
			// (Sub compares wall clocks when one side has no monotonic
			// reading).
			age = max(read.Sub(time.Unix(ts.Unix())), 0)
		}
	}
	return overflow, age
}

// Pending reports whether a packet waits in the socket's receive queue,
// not yet read (SIOCINQ, raw(7): the size of the next packet, 0 if none).
// It may be called while another goroutine waits in Recv.
func (c *Conn) Pending() bool {
	var n int
	err := control(c.raw, func(fd int) error {
		var err error
		n, err = unix.IoctlGetInt(fd, unix.SIOCINQ)
		return err
	})
	return err == nil && n > 0
}

// Close closes the socket, which also leaves the multicast group.
func (c *Conn) Close() error { return c.raw.Close() }
