package check

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"tandem/internal/config"
)

// ErrICMPNotPermitted is returned (wrapped) by PING_CHECK when neither an
// unprivileged ICMP socket (net.ipv4.ping_group_range) nor a raw one
// (CAP_NET_RAW) can be opened.
var ErrICMPNotPermitted = errors.New("no ICMP socket permitted")

// Ping is PING_CHECK (keepalived check_ping.c): one ICMP or ICMPv6 echo
// request; up when the matching echo reply arrives within connect_timeout.
type Ping struct {
	cfg  *config.Checker
	addr netip.Addr
}

// Check sends one echo request and waits for its reply.
func (p *Ping) Check(ctx context.Context) Result {
	start := time.Now()
	conn, raw, err := p.listen()
	if err != nil {
		return result(start, fmt.Errorf("%s %s: %w", config.CheckPing, p.addr, err))
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout(p.cfg))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}

	v6 := p.addr.Is6() && !p.addr.Is4In6()
	var typ, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if v6 {
		typ, replyType, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	id, seq := rand.IntN(1<<16), rand.IntN(1<<16)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("tandem")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return result(start, err)
	}
	var dst net.Addr = &net.UDPAddr{IP: p.addr.AsSlice(), Zone: p.addr.Zone()}
	if raw {
		dst = &net.IPAddr{IP: p.addr.AsSlice(), Zone: p.addr.Zone()}
	}
	if _, err := conn.WriteTo(b, dst); err != nil {
		return result(start, fmt.Errorf("%s %s: send: %w", config.CheckPing, p.addr, err))
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return result(start, fmt.Errorf("%s %s: no echo reply: %w", config.CheckPing, p.addr, err))
		}
		if !sameIP(from, p.addr) {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyType {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		// An unprivileged socket's kernel rewrites the ID and filters
		// replies by it; a raw socket sees every reply, so match both.
		if !ok || e.Seq != seq || (raw && e.ID != id) {
			continue
		}
		return result(start, nil)
	}
}

// listen opens an unprivileged ICMP socket, falling back to a raw one.
func (p *Ping) listen() (*icmp.PacketConn, bool, error) {
	v6 := p.addr.Is6() && !p.addr.Is4In6()
	bind := "0.0.0.0"
	udpNet, rawNet := "udp4", "ip4:icmp"
	if v6 {
		bind, udpNet, rawNet = "::", "udp6", "ip6:ipv6-icmp"
	}
	if p.cfg.BindTo.IsValid() {
		bind = p.cfg.BindTo.String()
	}
	c, err := icmp.ListenPacket(udpNet, bind)
	if err == nil {
		return c, false, nil
	}
	c, err2 := icmp.ListenPacket(rawNet, bind)
	if err2 == nil {
		return c, true, nil
	}
	return nil, false, fmt.Errorf("%w: %v; %v", ErrICMPNotPermitted, err, err2)
}

func sameIP(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.Unmap()
}
