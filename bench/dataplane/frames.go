package main

import (
	"encoding/binary"
	"net"
	"net/netip"

	"tandem/internal/lab"
)

// TCP flags.
const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// tcpFrame is a 60-byte Ethernet frame (64 on the wire with the FCS) of an
// IPv4 TCP segment with no payload from src:sport to dst:dport, checksums
// filled in, padded with zeros as a NIC pads it.
func tcpFrame(dmac, smac net.HardwareAddr, src, dst netip.AddrPort, flags byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dmac)
	copy(f[6:12], smac)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45                               // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], 40)     // total length
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 64, 6                       // TTL, TCP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], lab.Checksum(0, ip))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 1) // sequence number
	if flags&tcpACK != 0 {
		binary.BigEndian.PutUint32(tcp[8:], 1)
	}
	tcp[12] = 5 << 4 // data offset: 5 words
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 64240) // window
	// Pseudo-header: addresses, protocol, TCP length.
	pseudo := uint32(6 + len(tcp))
	for i := 0; i < 4; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	binary.BigEndian.PutUint16(tcp[16:], lab.Checksum(pseudo, tcp))
	return f
}
