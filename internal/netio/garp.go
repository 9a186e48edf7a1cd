package netio

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Announcer sends gratuitous ARPs and unsolicited neighbour advertisements
// for addresses on one interface, so that neighbours update their caches
// when a VIP moves (FIELD-NOTES: a hand-added VIP sends none, and clients
// keep the old master's MAC until told).
type Announcer struct {
	ifi  *net.Interface
	arp  int // AF_PACKET socket for ARP, -1 until needed
	icmp *ipv6.PacketConn
}

// NewAnnouncer prepares an announcer for the interface.
func NewAnnouncer(iface string) (*Announcer, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", iface, err)
	}
	return &Announcer{ifi: ifi, arp: -1}, nil
}

// Announce sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6) for a.
func (an *Announcer) Announce(a netip.Addr) error {
	if a.Is4() {
		return an.garp(a)
	}
	return an.na(a)
}

// garpFrame builds a gratuitous ARP as keepalived sends it (vrrp_arp.c): an
// ARP request broadcast on the link whose sender and target protocol
// addresses are both the VIP, sender hardware address ours, target hardware
// address the broadcast address.
func garpFrame(mac net.HardwareAddr, a netip.Addr) []byte {
	b := make([]byte, 14+28)
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	copy(b[0:6], bcast)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_ARP)
	arp := b[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(arp[2:4], unix.ETH_P_IP)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:8], 1) // request
	ip := a.As4()
	copy(arp[8:14], mac)
	copy(arp[14:18], ip[:])
	copy(arp[18:24], bcast)
	copy(arp[24:28], ip[:])
	return b
}

func (an *Announcer) garp(a netip.Addr) error {
	if len(an.ifi.HardwareAddr) != 6 {
		return fmt.Errorf("gratuitous arp on %s: not an Ethernet interface", an.ifi.Name)
	}
	if an.arp < 0 {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("gratuitous arp on %s: %w", an.ifi.Name, err)
		}
		an.arp = fd
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: an.ifi.Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(an.arp, garpFrame(an.ifi.HardwareAddr, a), 0, sa); err != nil {
		return fmt.Errorf("gratuitous arp for %s on %s: %w", a, an.ifi.Name, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// na sends an unsolicited neighbour advertisement as keepalived does
// (vrrp_ndisc.c, RFC 4861 §7.2.6): from the VIP to all-nodes ff02::1, hop
// limit 255, Override set, with our link-layer address as target option.
func (an *Announcer) na(a netip.Addr) error {
	if an.icmp == nil {
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return fmt.Errorf("neighbour advertisement on %s: %w", an.ifi.Name, err)
		}
		pc := ipv6.NewPacketConn(c)
		if err := pc.SetMulticastHopLimit(255); err != nil {
			c.Close()
			return err
		}
		an.icmp = pc
	}
	body := make([]byte, 20+8)
	body[0] = 0x20 // Override (RFC 4861 §4.4)
	t := a.As16()
	copy(body[4:20], t[:])
	body[20], body[21] = 2, 1 // target link-layer address option, 8 bytes
	copy(body[22:28], an.ifi.HardwareAddr)
	msg := icmp.Message{Type: ipv6.ICMPTypeNeighborAdvertisement, Body: &icmp.RawBody{Data: body}}
	b, err := msg.Marshal(nil) // the kernel fills in ICMPv6 checksums
	if err != nil {
		return err
	}
	dst := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: an.ifi.Name}
	if _, err := an.icmp.WriteTo(b, &ipv6.ControlMessage{Src: a.AsSlice(), IfIndex: an.ifi.Index, HopLimit: 255}, dst); err != nil {
		return fmt.Errorf("neighbour advertisement for %s on %s: %w", a, an.ifi.Name, err)
	}
	return nil
}

// Close releases the announcer's sockets.
func (an *Announcer) Close() error {
	if an.arp >= 0 {
		unix.Close(an.arp)
		an.arp = -1
	}
	if an.icmp != nil {
		an.icmp.Close()
		an.icmp = nil
	}
	return nil
}
