package bfd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP ports of RFC 5881 section 4 (single hop) and RFC 5883 section 5
// (multihop), and the source port range both require.
const (
	portSingleHop = 3784
	portMultihop  = 4784
	srcPortMin    = 49152
	srcPortMax    = 65535
)

// listener is the socket that receives one family's control packets on
// one of the two ports. It asks the kernel for each packet's TTL or hop
// limit (the GTSM check of RFC 5881 section 5), its destination address
// and interface (to find a session when Your Discriminator is zero) and
// its arrival time (SO_TIMESTAMPNS: a loop that reads late still credits
// a packet with the time it arrived, so a busy engine does not take a
// live neighbor for dead).
type listener struct {
	fd       int
	v6       bool
	multihop bool
}

// rxMeta is what the kernel tells about a received packet.
type rxMeta struct {
	src, dst netip.Addr
	ifindex  int
	ttl      int       // -1: not reported
	stamp    time.Time // zero: not reported
}

func openListener(v6, multihop bool) (*listener, error) {
	port := portSingleHop
	if multihop {
		port = portMultihop
	}
	fam := unix.AF_INET
	opts := [][2]int{{unix.IPPROTO_IP, unix.IP_RECVTTL}, {unix.IPPROTO_IP, unix.IP_PKTINFO}}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: port}
	if v6 {
		fam = unix.AF_INET6
		opts = [][2]int{{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY}, {unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT}, {unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO}}
		sa = &unix.SockaddrInet6{Port: port}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("bfd: socket: %w", err)
	}
	// No SO_REUSEADDR: another BFD daemon on this host (keepalived's,
	// FRR's) holding the port is an error to report, not a socket to
	// share packets with.
	opts = append(opts, [2]int{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS})
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("bfd: setsockopt(%d, %d): %w", o[0], o[1], err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bfd: listen on UDP port %d: %w", port, err)
	}
	return &listener{fd: fd, v6: v6, multihop: multihop}, nil
}

// read returns the next packet, or an error wrapping EAGAIN when there is
// none.
func (l *listener) read(buf, oob []byte) (int, rxMeta, error) {
	m := rxMeta{ttl: -1}
	n, oobn, _, from, err := unix.Recvmsg(l.fd, buf, oob, unix.MSG_DONTWAIT)
	if err != nil {
		return 0, m, err
	}
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		m.src = netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		m.src = netip.AddrFrom16(sa.Addr).Unmap()
	}
	cms, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return n, m, nil
	}
	for _, c := range cms {
		h, d := c.Header, c.Data
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(d) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&d[0]))
			m.stamp = time.Unix(ts.Unix())
		case (h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL || h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT) && len(d) >= 4:
			m.ttl = int(*(*int32)(unsafe.Pointer(&d[0])))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(d) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&d[0]))
			m.dst, m.ifindex = netip.AddrFrom4(pi.Addr), int(pi.Ifindex)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(d) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&d[0]))
			m.dst, m.ifindex = netip.AddrFrom16(pi.Addr).Unmap(), int(pi.Ifindex)
		}
	}
	return n, m, nil
}

// oobSize holds the control messages read asks for.
var oobSize = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(4) + unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// sender is a session's own sending socket: bound to a source port of the
// range RFC 5881 section 4 requires, unique per session, connected to the
// neighbor's port, sending with the configured TTL (255 for single hop:
// GTSM, RFC 5881 section 5).
type sender struct {
	fd    int
	local netip.AddrPort
	scope uint32 // the interface of a link-local neighbor's zone
}

func openSender(cfg Config, rng *rand.Rand) (*sender, error) {
	nb := cfg.Neighbor.Unmap()
	port := portSingleHop
	if cfg.Multihop {
		port = portMultihop
	}
	fam := unix.AF_INET
	if nb.Is6() {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("bfd %s: socket: %w", cfg.Name, err)
	}
	s := &sender{fd: fd}
	if err := s.setTTL(ttlOf(cfg), nb.Is6()); err != nil {
		s.close()
		return nil, fmt.Errorf("bfd %s: %w", cfg.Name, err)
	}
	scope, err := scopeID(nb)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bfd %s: %w", cfg.Name, err)
	}
	s.scope = scope
	src := cfg.Source.Unmap()
	if !src.IsValid() {
		src = netip.IPv4Unspecified()
		if nb.Is6() {
			src = netip.IPv6Unspecified()
		}
	}
	// A random start spreads sessions of several processes over the
	// range; the scan finds a free port when the range is crowded.
	start := rng.IntN(srcPortMax - srcPortMin + 1)
	for i := range srcPortMax - srcPortMin + 1 {
		p := srcPortMin + (start+i)%(srcPortMax-srcPortMin+1)
		err = unix.Bind(fd, sockaddr(src, p, scope))
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bfd %s: bind %s: %w", cfg.Name, src, err)
	}
	if err := unix.Connect(fd, sockaddr(nb, port, scope)); err != nil {
		s.close()
		return nil, fmt.Errorf("bfd %s: connect %s: %w", cfg.Name, nb, err)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			s.local = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			s.local = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
		}
	}
	return s, nil
}

// ttlOf is the TTL a session sends with: 255 unless configured.
func ttlOf(cfg Config) int {
	if cfg.TTL == 0 {
		return 255
	}
	return int(cfg.TTL)
}

func (s *sender) setTTL(ttl int, v6 bool) error {
	lvl, opt := unix.IPPROTO_IP, unix.IP_TTL
	if v6 {
		lvl, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	if err := unix.SetsockoptInt(s.fd, lvl, opt, ttl); err != nil {
		return fmt.Errorf("set TTL %d: %w", ttl, err)
	}
	return nil
}

func (s *sender) send(b []byte) error {
	_, err := unix.Write(s.fd, b)
	return err
}

func (s *sender) close() { unix.Close(s.fd) }

// scopeID is the interface index of a link-local IPv6 neighbor's zone.
func scopeID(a netip.Addr) (uint32, error) {
	if a.Zone() == "" {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(a.Zone())
	if err != nil {
		return 0, fmt.Errorf("zone of %s: %w", a, err)
	}
	return uint32(ifi.Index), nil
}

func sockaddr(a netip.Addr, port int, scope uint32) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port, ZoneId: scope}
}

// ttlOK is the GTSM check (RFC 5881 section 5, RFC 5082) as keepalived
// extends it with max_hops: a received TTL may be at most MaxHops below
// the configured TTL; MaxHops 255 turns the check off. A packet whose TTL
// the kernel did not report passes.
func ttlOK(cfg Config, ttl int) bool {
	if cfg.MaxHops == 255 || ttl < 0 {
		return true
	}
	return ttl+int(cfg.MaxHops) >= ttlOf(cfg)
}
