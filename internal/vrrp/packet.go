// VRRP wire format: encoding and decoding of VRRPv2 (RFC 3768) and
// VRRPv3 (RFC 5798, updated by RFC 9568) advertisements,
// the IPsec AH header keepalived puts in front of VRRPv2 when
// "auth_type AH" is configured, and the receive checks of RFC 3768 §7.1
// and RFC 5798 §7.1. Nothing here touches a socket.
//
// Receive path, as the instance layer is expected to use it:
//
//	m, err := vrrp.ParseIPv4(buf[:n], opts)   // or ParseIPv6 with cmsg data
//	if err == nil { err = cfg.Check(m) }      // per-instance §7.1 checks
//	if err != nil { count(err.(*vrrp.DropError).Reason); drop }
//	if e := vrrp.CheckAddrs(m.Addrs, vips); e != nil { log, count, keep going }
//	switch vrrp.CheckInterval(...) { ... }    // v3: learn the master's interval

package vrrp

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Protocol numbers and fixed values from the RFCs.
const (
	// ProtocolVRRP is the IP protocol number of VRRP (RFC 3768 §5.2.4,
	// RFC 5798 §5.1.1.4).
	ProtocolVRRP = 112
	// ProtocolAH is the IP protocol number of the IPsec Authentication
	// Header (RFC 2402), used by VRRPv2 auth type 2.
	ProtocolAH = 51
	// VRRPTTL is the TTL / hop limit adverts are sent with and must be
	// received with (RFC 3768 §5.2.3, RFC 5798 §5.1.1.3 / §5.1.2.3).
	VRRPTTL = 255
	// TypeAdvertisement is the only VRRP packet type (RFC 3768 §5.3.2,
	// RFC 5798 §5.2.2).
	TypeAdvertisement = 1
)

// AuthType is the VRRPv2 authentication type (RFC 3768 §5.3.6; RFC 2338
// §5.3.6 defined types 1 and 2, which RFC 3768 removed but keepalived
// still implements). VRRPv3 has no authentication (RFC 5798 §9).
type AuthType uint8

// VRRPv2 authentication types.
const (
	AuthNone   AuthType = 0 // no authentication
	AuthSimple AuthType = 1 // 8-byte clear text password (keepalived "PASS")
	AuthAH     AuthType = 2 // IPsec AH, HMAC-MD5-96 (keepalived "AH")
)

func (a AuthType) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthSimple:
		return "pass"
	case AuthAH:
		return "ah"
	}
	return "auth_type(" + strconv.Itoa(int(a)) + ")"
}

// Wire sizes.
const (
	headerLen   = 8  // version/type .. checksum, both versions
	authDataLen = 8  // VRRPv2 Authentication Data (RFC 3768 §5.3.10)
	ipv4HdrLen  = 20 // IPv4 header without options
	ahLen       = 24 // keepalived's ipsec_ah_t: 12 fixed bytes + 96-bit ICV
	ahICVLen    = 12 // HMAC-MD5-96 (RFC 2403 §2)
	// ahPayloadLen is the AH Payload Len field: AH length in 32-bit words
	// minus 2 (RFC 2402 §2.2): 24/4 - 2.
	ahPayloadLen = ahLen/4 - 2
	// minEthPayload is the smallest Ethernet payload (ETH_ZLEN - ETH_HLEN);
	// shorter IP packets arrive padded up to it.
	minEthPayload = 46
)

// Packet is one VRRP advertisement, without the IP header.
type Packet struct {
	Version  uint8 // 2 or 3
	Type     uint8 // TypeAdvertisement
	VRID     uint8 // 1..255
	Priority uint8
	// AuthType is VRRPv2 only; it must be AuthNone for VRRPv3.
	AuthType AuthType
	// AdvertInt is the advertisement interval: whole seconds 1..255 for
	// VRRPv2 (RFC 3768 §5.3.7), centiseconds 1..4095 for VRRPv3 (RFC 5798
	// §5.2.7, "Max Adver Int").
	AdvertInt time.Duration
	// Addrs are the virtual addresses, all IPv4 or all IPv6 (the family
	// of the IP header, RFC 5798 §5.2.5). At most 255.
	Addrs []netip.Addr
	// AuthData is the VRRPv2 Authentication Data for AuthSimple: the
	// password, zero padded (RFC 2338 §5.3.10). It is not sent for other
	// auth types: RFC 3768 §5.3.10 says the field SHOULD be zero on
	// transmission and ignored on reception, so Marshal writes zeros and
	// Parse leaves this zero unless AuthType is AuthSimple.
	AuthData [8]byte
}

// Options change how checksums are computed and verified.
type Options struct {
	// V3ChecksumAsV2 is keepalived's "v3_checksum_as_v2": the VRRPv3 IPv4
	// checksum is computed over the VRRP message alone, without the
	// pseudo-header, as some vendors read RFC 5798 §5.2.8 (RFC 9568
	// compliance needs it set, per keepalived.conf(5)). IPv6 always uses
	// the pseudo-header (keepalived leaves IPv6 checksums to the kernel,
	// which always includes it).
	//
	// On receive, keepalived with this flag set computes the checksum but
	// never rejects a mismatch (vrrp.c: vrrp_check_packet). We are
	// stricter but tolerant of mixed peers: the packet is accepted if
	// either form of the checksum is valid.
	V3ChecksumAsV2 bool
}

// DropReason says why a received packet was dropped. Its String is meant
// for metric labels.
type DropReason uint8

// Drop reasons. Keep dropReasonNames in step.
const (
	ReasonTooShort      DropReason = iota + 1 // shorter than the fixed headers
	ReasonLength                              // length does not match the address count / IP total length
	ReasonIPHeader                            // malformed IPv4 header
	ReasonProtocol                            // IP protocol is not VRRP, or AH does not carry VRRP
	ReasonTTL                                 // TTL / hop limit not 255 (or outside the unicast peer's range)
	ReasonVersion                             // VRRP version unknown or not the configured one
	ReasonType                                // packet type is not advertisement
	ReasonVRID                                // VRID is not ours
	ReasonChecksum                            // bad VRRP checksum
	ReasonAddrCount                           // address count differs from the configured VIPs
	ReasonAddrList                            // address list differs from the configured VIPs
	ReasonAuthType                            // auth type (or AH presence) differs from the configured one
	ReasonAuth                                // wrong password, bad AH ICV/SPI, or replayed AH sequence number
	ReasonInterval                            // VRRPv2 advert interval differs from ours
	ReasonOwnAddress                          // sent from one of our own addresses
	ReasonDestination                         // multicast received in unicast mode or vice versa
	ReasonUnicastSource                       // unicast source is not a configured peer
	ReasonOwner                               // heard as the address owner in strict mode, which ignores adverts
	// ReasonSocketOverflow: the kernel dropped the packet before it was
	// read, the socket's receive buffer full (a flood); counted from
	// SO_RXQ_OVFL.
	ReasonSocketOverflow
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	ReasonTooShort:       "too_short",
	ReasonLength:         "length",
	ReasonIPHeader:       "ip_header",
	ReasonProtocol:       "protocol",
	ReasonTTL:            "ttl",
	ReasonVersion:        "version",
	ReasonType:           "type",
	ReasonVRID:           "vrid",
	ReasonChecksum:       "checksum",
	ReasonAddrCount:      "addr_count",
	ReasonAddrList:       "addr_list",
	ReasonAuthType:       "auth_type",
	ReasonAuth:           "auth",
	ReasonInterval:       "interval",
	ReasonOwnAddress:     "own_address",
	ReasonDestination:    "destination",
	ReasonUnicastSource:  "unicast_source",
	ReasonOwner:          "owner_ignores",
	ReasonSocketOverflow: "socket_overflow",
}

func (r DropReason) String() string {
	if r > 0 && r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// DropReasons lists every DropReason, for registering metric labels up
// front.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons-1)
	for r := DropReason(1); r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// DropError is returned for a packet that must not be processed (or, from
// CheckAddrs, one that should be logged).
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return "vrrp: drop: " + e.Reason.String()
	}
	return "vrrp: drop: " + e.Reason.String() + ": " + e.Detail
}

func dropf(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// vrrpLen is the length of a VRRP message with n addresses.
func vrrpLen(version uint8, is6 bool, n int) int {
	l := headerLen
	if is6 {
		l += 16 * n
	} else {
		l += 4 * n
	}
	if version == 2 {
		l += authDataLen
	}
	return l
}

// Marshal encodes p as a VRRP message (no IP header). src and dst are the
// IP source and destination; they are needed for the VRRPv3 checksum
// pseudo-header (RFC 5798 §5.2.8) and fix the address family. With
// unicast peers, VRRPv3 needs one encoding per destination.
func (p *Packet) Marshal(src, dst netip.Addr, opts Options) ([]byte, error) {
	return p.appendTo(nil, src, dst, opts)
}

func (p *Packet) appendTo(b []byte, src, dst netip.Addr, opts Options) ([]byte, error) {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() || src.Is4In6() || dst.Is4In6() {
		return nil, fmt.Errorf("vrrp: marshal: bad source/destination %v -> %v", src, dst)
	}
	is6 := src.Is6()
	var ai uint16
	switch p.Version {
	case 2:
		// RFC 3768 §5.3.7: 8-bit interval in seconds. VRRPv2 is IPv4
		// only (RFC 3768 §1).
		if is6 {
			return nil, errors.New("vrrp: marshal: VRRPv2 is IPv4 only")
		}
		if p.AdvertInt%time.Second != 0 || p.AdvertInt < time.Second || p.AdvertInt > 255*time.Second {
			return nil, fmt.Errorf("vrrp: marshal: VRRPv2 advert interval %v is not 1..255 whole seconds", p.AdvertInt)
		}
		ai = uint16(p.AdvertInt / time.Second)
		if p.AuthType > AuthAH {
			return nil, fmt.Errorf("vrrp: marshal: unknown auth type %d", p.AuthType)
		}
	case 3:
		// RFC 5798 §5.2.7: 12-bit interval in centiseconds.
		const cs = 10 * time.Millisecond
		if p.AdvertInt%cs != 0 || p.AdvertInt < cs || p.AdvertInt > 4095*cs {
			return nil, fmt.Errorf("vrrp: marshal: VRRPv3 advert interval %v is not 1..4095 centiseconds", p.AdvertInt)
		}
		ai = uint16(p.AdvertInt / cs)
		if p.AuthType != AuthNone || p.AuthData != [8]byte{} {
			return nil, errors.New("vrrp: marshal: VRRPv3 has no authentication (RFC 5798 §9)")
		}
	default:
		return nil, fmt.Errorf("vrrp: marshal: unknown version %d", p.Version)
	}
	if p.Type > 0x0f {
		return nil, fmt.Errorf("vrrp: marshal: type %d does not fit in 4 bits", p.Type)
	}
	if len(p.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: marshal: %d addresses, at most 255 fit", len(p.Addrs))
	}
	for _, a := range p.Addrs {
		if !a.IsValid() || a.Is4() == is6 || a.Is4In6() {
			return nil, fmt.Errorf("vrrp: marshal: address %v is not of the packet's family", a)
		}
	}

	start := len(b)
	b = append(b, p.Version<<4|p.Type, p.VRID, p.Priority, uint8(len(p.Addrs)))
	if p.Version == 2 {
		b = append(b, byte(p.AuthType), byte(ai))
	} else {
		// 4 reserved bits, zero on transmission (RFC 5798 §5.2.6).
		b = binary.BigEndian.AppendUint16(b, ai&0x0fff)
	}
	b = append(b, 0, 0) // checksum
	for _, a := range p.Addrs {
		b = append(b, a.AsSlice()...)
	}
	if p.Version == 2 {
		if p.AuthType == AuthSimple {
			b = append(b, p.AuthData[:]...)
		} else {
			b = append(b, make([]byte, authDataLen)...)
		}
	}
	msg := b[start:]
	binary.BigEndian.PutUint16(msg[6:], vrrpChecksum(msg, p.Version, src, dst, !opts.V3ChecksumAsV2 || is6))
	return b, nil
}

// vrrpChecksum returns the checksum for msg (whose checksum field may hold
// anything; it is treated as zero). VRRPv2: the internet checksum of the
// message (RFC 3768 §5.3.8). VRRPv3: with pseudo-header (RFC 5798 §5.2.8)
// when pseudo is true.
func vrrpChecksum(msg []byte, version uint8, src, dst netip.Addr, pseudo bool) uint16 {
	var sum uint32
	if version == 3 && pseudo {
		sum = pseudoHeaderSum(src, dst, len(msg))
	}
	sum = csumAdd(sum, msg[:6])
	sum = csumAdd(sum, msg[8:])
	return ^csumFold(sum)
}

// pseudoHeaderSum sums the IPv4 (RFC 768 style) or IPv6 (RFC 8200 §8.1)
// pseudo-header with next header VRRP.
func pseudoHeaderSum(src, dst netip.Addr, length int) uint32 {
	s, d := src.AsSlice(), dst.AsSlice()
	sum := csumAdd(csumAdd(0, s), d)
	// IPv4: zero, protocol, 16-bit length. IPv6: 32-bit length, 3 zero
	// bytes, next header. Both sum to length + protocol for lengths < 64k.
	return sum + uint32(length) + ProtocolVRRP
}

// csumAdd adds b as big-endian 16-bit words (RFC 1071) to sum without
// folding. Every input here (IPv4 header, addresses, VRRP message parts)
// has an even length, so there is no odd trailing byte to pad.
func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// Parse decodes a VRRP message (no IP header) received from src for dst,
// checking what the message alone can tell (RFC 3768 §7.1, RFC 5798
// §7.1): it is complete and its length matches the address count, the
// version is 2 or 3 (2 only over IPv4), and the checksum is valid.
// Per-instance checks are RecvConfig.Check's job. Errors are *DropError.
func Parse(b []byte, src, dst netip.Addr, opts Options) (*Packet, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("vrrp: parse: bad source/destination %v -> %v", src, dst)
	}
	is6 := src.Is6()
	if len(b) < headerLen {
		return nil, dropf(ReasonTooShort, "%d bytes", len(b))
	}
	p := &Packet{Version: b[0] >> 4, Type: b[0] & 0x0f, VRID: b[1], Priority: b[2]}
	switch {
	case p.Version == 2 && is6:
		return nil, dropf(ReasonVersion, "VRRPv2 over IPv6")
	case p.Version != 2 && p.Version != 3:
		return nil, dropf(ReasonVersion, "version %d", p.Version)
	}
	// "MUST verify that the received packet contains the complete VRRP
	// packet (including fixed fields, IP Address(es), and Authentication
	// Data)" (RFC 3768 §7.1; RFC 5798 §7.1 likewise). The caller has
	// already removed link-layer padding (ParseIPv4 via the IP total
	// length), so the length must be exact.
	n := int(b[3])
	if want := vrrpLen(p.Version, is6, n); len(b) != want {
		return nil, dropf(ReasonLength, "%d bytes for %d addresses, want %d", len(b), n, want)
	}
	got := binary.BigEndian.Uint16(b[6:])
	if want := vrrpChecksum(b, p.Version, src, dst, !opts.V3ChecksumAsV2 || is6); got != want {
		// With V3ChecksumAsV2 also accept the RFC 5798 form.
		if !(opts.V3ChecksumAsV2 && p.Version == 3 && got == vrrpChecksum(b, 3, src, dst, true)) {
			return nil, dropf(ReasonChecksum, "got %#04x, want %#04x", got, want)
		}
	}
	if p.Version == 2 {
		p.AuthType = AuthType(b[4])
		p.AdvertInt = time.Duration(b[5]) * time.Second
	} else {
		// The 4 reserved bits are ignored on reception (RFC 5798 §5.2.6).
		p.AdvertInt = time.Duration(binary.BigEndian.Uint16(b[4:])&0x0fff) * 10 * time.Millisecond
	}
	alen := 4
	if is6 {
		alen = 16
	}
	if n > 0 {
		p.Addrs = make([]netip.Addr, n)
	}
	off := headerLen
	for i := range p.Addrs {
		if is6 {
			p.Addrs[i] = netip.AddrFrom16([16]byte(b[off:]))
		} else {
			p.Addrs[i] = netip.AddrFrom4([4]byte(b[off:]))
		}
		off += alen
	}
	if p.Version == 2 && p.AuthType == AuthSimple {
		copy(p.AuthData[:], b[off:])
	}
	return p, nil
}

// AH is the IPsec Authentication Header (RFC 2402 §2) as keepalived sends
// it in front of VRRPv2 (vrrp_ipsecah.h: ipsec_ah_t): next header 112,
// payload length 4, SPI = the sender's IPv4 source address (raw network
// byte order), a sequence number, and a 96-bit HMAC-MD5 ICV.
type AH struct {
	SPI uint32
	Seq uint32
	ICV [ahICVLen]byte
}

// Message is a received advertisement with the IP-level facts the receive
// checks need.
type Message struct {
	Packet
	Src, Dst netip.Addr
	// TTL is the received IPv4 TTL or IPv6 hop limit, or -1 if unknown
	// (keepalived: rx_ttl_hl; the TTL check is skipped when unknown).
	TTL int
	// AH is set when the IPv4 packet carried an AH header.
	AH *AH
	// ahInput is the IPv4 packet (up to its total length) when AH is set,
	// kept to verify the ICV.
	ahInput []byte
}

// ParseIPv4 decodes a whole IPv4 packet as read from a raw IPv4 socket
// (which delivers the IP header), protocol VRRP or AH+VRRP.
func ParseIPv4(b []byte, opts Options) (*Message, error) {
	if len(b) < ipv4HdrLen {
		return nil, dropf(ReasonTooShort, "%d bytes", len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return nil, dropf(ReasonIPHeader, "IP version %d", v)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HdrLen {
		return nil, dropf(ReasonIPHeader, "header length %d", ihl)
	}
	if len(b) < ihl {
		return nil, dropf(ReasonTooShort, "%d bytes, IP header is %d", len(b), ihl)
	}
	tot := int(binary.BigEndian.Uint16(b[2:]))
	// The IP total length must match what was received, except that
	// frames are padded to the Ethernet minimum (keepalived allows the
	// same in vrrp_check_packet).
	if tot < ihl || tot > len(b) || (tot < len(b) && len(b) > minEthPayload) {
		return nil, dropf(ReasonLength, "IP total length %d, received %d", tot, len(b))
	}
	b = b[:tot]
	m := &Message{
		Src: netip.AddrFrom4([4]byte(b[12:])),
		Dst: netip.AddrFrom4([4]byte(b[16:])),
		TTL: int(b[8]),
	}
	payload := b[ihl:]
	switch proto := b[9]; proto {
	case ProtocolVRRP:
	case ProtocolAH:
		if len(payload) < ahLen {
			return nil, dropf(ReasonTooShort, "AH packet of %d bytes", len(b))
		}
		if payload[0] != ProtocolVRRP {
			// keepalived: an AH for another protocol is not for us.
			return nil, dropf(ReasonProtocol, "AH next header %d", payload[0])
		}
		if payload[1] != ahPayloadLen {
			return nil, dropf(ReasonLength, "AH payload length %d, want %d", payload[1], ahPayloadLen)
		}
		m.AH = &AH{
			SPI: binary.BigEndian.Uint32(payload[4:]),
			Seq: binary.BigEndian.Uint32(payload[8:]),
			ICV: [ahICVLen]byte(payload[12:]),
		}
		m.ahInput = slices.Clone(b)
		payload = payload[ahLen:]
	default:
		return nil, dropf(ReasonProtocol, "IP protocol %d", proto)
	}
	p, err := Parse(payload, m.Src, m.Dst, opts)
	if err != nil {
		return nil, err
	}
	m.Packet = *p
	return m, nil
}

// ParseIPv6 decodes a VRRP message read from a raw IPv6 socket, which
// delivers only the payload; src, dst and the hop limit (-1 if unknown)
// come from the socket's ancillary data (IPV6_PKTINFO, IPV6_HOPLIMIT).
// keepalived lets the kernel verify IPv6 checksums (IPV6_CHECKSUM); the
// checksum is verified here as well, which costs little and keeps the
// decoder self-contained.
func ParseIPv6(b []byte, src, dst netip.Addr, hopLimit int, opts Options) (*Message, error) {
	if !src.Is6() || !dst.Is6() || src.Is4In6() || dst.Is4In6() {
		return nil, fmt.Errorf("vrrp: parse: %v -> %v is not IPv6", src, dst)
	}
	p, err := Parse(b, src, dst, opts)
	if err != nil {
		return nil, err
	}
	return &Message{Packet: *p, Src: src, Dst: dst, TTL: hopLimit}, nil
}

// IPv4Header holds what the sender chooses in the IPv4 header built by
// MarshalIPv4 (for raw sockets with IP_HDRINCL).
type IPv4Header struct {
	Src, Dst netip.Addr
	// ID is the identification field. Linux fills it in when it is zero,
	// which would change the AH input after the ICV is computed, so
	// keepalived never sends 0 (vrrp.c: vrrp_update_pkt); neither should
	// callers using AH.
	ID uint16
	// TTL defaults to VRRPTTL when zero; set it for keepalived's
	// unicast_ttl.
	TTL uint8
}

// AHParams are the sender's AH inputs.
type AHParams struct {
	// Key is the auth_pass, zero padded to 8 bytes (keepalived uses its
	// 8-byte auth_data as the HMAC key).
	Key [8]byte
	// Seq is the sequence number. keepalived increments its counter
	// before each advert, so the first one carries 1.
	Seq uint32
	// Unicast zeroes the TTL in the ICV input, as keepalived does when
	// it has unicast peers (the TTL may change in transit).
	Unicast bool
}

// MarshalIPv4 encodes p in a complete IPv4 packet: 20-byte header with TOS
// 0xc0 (network control, as keepalived), DF, protocol 112, or 51 followed
// by an AH header when p.AuthType is AuthAH (then ah must be set). The
// header checksum is filled in (Linux recomputes it anyway for
// IP_HDRINCL).
func (p *Packet) MarshalIPv4(h IPv4Header, ah *AHParams, opts Options) ([]byte, error) {
	if !h.Src.Is4() || !h.Dst.Is4() {
		return nil, fmt.Errorf("vrrp: marshal: %v -> %v is not IPv4", h.Src, h.Dst)
	}
	useAH := p.AuthType == AuthAH && p.Version == 2
	if useAH != (ah != nil) {
		return nil, errors.New("vrrp: marshal: AH parameters must be given exactly when auth type is AH")
	}
	hdr := ipv4HdrLen
	proto := byte(ProtocolVRRP)
	if useAH {
		hdr += ahLen
		proto = ProtocolAH
	}
	b := make([]byte, hdr, hdr+vrrpLen(p.Version, false, len(p.Addrs)))
	b, err := p.appendTo(b, h.Src, h.Dst, opts)
	if err != nil {
		return nil, err
	}
	ttl := h.TTL
	if ttl == 0 {
		ttl = VRRPTTL
	}
	b[0] = 4<<4 | ipv4HdrLen/4
	b[1] = 0xc0
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], h.ID)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = ttl
	b[9] = proto
	copy(b[12:], h.Src.AsSlice())
	copy(b[16:], h.Dst.AsSlice())
	if useAH {
		a := b[ipv4HdrLen:]
		a[0] = ProtocolVRRP
		a[1] = ahPayloadLen
		// SPI: the source address, raw (keepalived: ah->spi = ip->saddr).
		copy(a[4:8], b[12:16])
		binary.BigEndian.PutUint32(a[8:], ah.Seq)
		icv := ahICV(b, ipv4HdrLen, ah.Key, ah.Unicast)
		copy(a[12:], icv[:])
	}
	binary.BigEndian.PutUint16(b[10:], ^csumFold(csumAdd(0, b[:ipv4HdrLen])))
	return b, nil
}

// ahICV computes keepalived's AH ICV over an IPv4 packet whose AH header
// starts at ihl. Per RFC 2402 §3.3.3.1.1.1 the mutable IP fields are
// zeroed: keepalived zeroes TOS, flags+fragment offset and the header
// checksum, and the TTL only in unicast mode (vrrp.c: vrrp_update_pkt on
// send, vrrp_in_chk_ipsecah on receive); the ICV field itself is zero.
// The MAC is HMAC-MD5 (RFC 2104) keyed with the 8-byte auth_data,
// truncated to 96 bits (RFC 2403).
func ahICV(pkt []byte, ihl int, key [8]byte, zeroTTL bool) [ahICVLen]byte {
	head := slices.Clone(pkt[:ihl+ahLen])
	head[1] = 0               // TOS
	head[6], head[7] = 0, 0   // flags, fragment offset
	head[10], head[11] = 0, 0 // header checksum
	if zeroTTL {
		head[8] = 0
	}
	clear(head[ihl+12:])
	mac := hmac.New(md5.New, key[:])
	mac.Write(head)
	mac.Write(pkt[ihl+ahLen:])
	return [ahICVLen]byte(mac.Sum(nil))
}

// UnicastPeer is a configured unicast peer (keepalived unicast_peer with
// optional min_ttl/max_ttl).
type UnicastPeer struct {
	Addr netip.Addr
	// MinTTL and MaxTTL bound the received TTL / hop limit. A zero
	// MaxTTL means 255 (keepalived's defaults are 0 and 255).
	MinTTL, MaxTTL uint8
}

// RecvConfig is what one VRRP instance checks received adverts against.
type RecvConfig struct {
	Version  uint8
	VRID     uint8
	AuthType AuthType // VRRPv2 only
	// AuthData is the auth_pass zero padded: the password for
	// AuthSimple, the HMAC key for AuthAH.
	AuthData  [8]byte
	AdvertInt time.Duration
	// Unicast is set when unicast peers are configured. As keepalived,
	// the TTL=255 check is skipped (the peer may be routed), the AH ICV
	// is computed with TTL zeroed, and the destination must be unicast.
	Unicast bool
	// CheckUnicastSrc (keepalived check_unicast_src, implied by min_ttl
	// or max_ttl on a peer) requires the source to be one of Peers and
	// its TTL to be in the peer's range.
	CheckUnicastSrc bool
	Peers           []UnicastPeer
	// OwnAddrs are this host's addresses on the interface; adverts from
	// them are our own, looped back.
	OwnAddrs []netip.Addr
	// LastAHSeq is the highest AH sequence number accepted so far; an AH
	// advert must carry a greater one (keepalived: ipsecah_counter, which
	// the caller also uses for sending). The caller stores m.AH.Seq
	// after a successful Check.
	LastAHSeq uint32
	// OwnerIgnoresAdverts drops every advert that passes the other
	// checks: keepalived's strict mode makes an address owner (priority
	// 255) ignore adverts (vrrp_complete_instance sets
	// owner_ignore_adverts; vrrp_check_packet drops them), since RFC 5798
	// §6.4.3 has no router outrank the owner.
	OwnerIgnoresAdverts bool
}

// Check applies the per-instance receive checks of RFC 3768 §7.1 and
// RFC 5798 §7.1 to m, in keepalived's order where it matters, and
// returns a *DropError for a packet that must be dropped. It does not
// compare the address list (see CheckAddrs) and, for VRRPv3, does not
// act on an interval mismatch (see CheckInterval).
func (c *RecvConfig) Check(m *Message) error {
	// The VRID selects the instance (keepalived looks it up before
	// anything else, vrrp_scheduler.c: vrrp_dispatcher_read).
	if m.VRID != c.VRID {
		return dropf(ReasonVRID, "VRID %d", m.VRID)
	}
	for _, a := range c.OwnAddrs {
		if a == m.Src {
			return dropf(ReasonOwnAddress, "from %v", m.Src)
		}
	}
	// "MUST verify that the IP TTL is 255" (RFC 3768 §7.1; hop limit,
	// RFC 5798 §7.1). keepalived skips it with unicast peers.
	if !c.Unicast && m.TTL >= 0 && m.TTL != VRRPTTL {
		return dropf(ReasonTTL, "TTL %d", m.TTL)
	}
	// "MUST verify the VRRP version".
	if m.Version != c.Version {
		return dropf(ReasonVersion, "version %d, configured %d", m.Version, c.Version)
	}
	if c.Version == 2 {
		if err := c.checkAuth(m); err != nil {
			return err
		}
		// RFC 3768 §7.1: "MUST verify that the Adver Interval in the
		// packet is the same as the locally configured for this virtual
		// router", else discard.
		if CheckInterval(2, c.AdvertInt, m.AdvertInt) == IntervalDrop {
			return dropf(ReasonInterval, "%v, configured %v", m.AdvertInt, c.AdvertInt)
		}
	} else if m.AH != nil {
		return dropf(ReasonAuthType, "AH header on VRRPv3")
	}
	if m.Type != TypeAdvertisement {
		return dropf(ReasonType, "type %d", m.Type)
	}
	// keepalived drops multicast adverts in unicast mode and vice versa.
	if m.Dst.IsValid() && m.Dst.IsMulticast() == c.Unicast {
		return dropf(ReasonDestination, "destination %v, unicast mode %t", m.Dst, c.Unicast)
	}
	if c.Unicast && c.CheckUnicastSrc {
		i := slices.IndexFunc(c.Peers, func(p UnicastPeer) bool { return p.Addr == m.Src })
		if i < 0 {
			return dropf(ReasonUnicastSource, "%v is not a unicast peer", m.Src)
		}
		p := c.Peers[i]
		hi := p.MaxTTL
		if hi == 0 {
			hi = 255
		}
		if m.TTL >= 0 && (m.TTL < int(p.MinTTL) || m.TTL > int(hi)) {
			return dropf(ReasonTTL, "TTL %d from %v not in [%d, %d]", m.TTL, m.Src, p.MinTTL, hi)
		}
	}
	if c.OwnerIgnoresAdverts {
		return dropf(ReasonOwner, "from %v: we are the address owner in strict mode", m.Src)
	}
	return nil
}

// checkAuth is RFC 3768 §7.1 "MUST verify that the Auth Type matches the
// locally configured authentication method" and "MUST perform the
// authentication specified by the Auth Type", with keepalived's AH.
func (c *RecvConfig) checkAuth(m *Message) error {
	// keepalived first requires an AH header exactly when AH is
	// configured (counted as authtype_mismatch).
	if (m.AH != nil) != (c.AuthType == AuthAH) {
		return dropf(ReasonAuthType, "AH header present %t, configured %v", m.AH != nil, c.AuthType)
	}
	if m.AuthType != c.AuthType {
		return dropf(ReasonAuthType, "%v, configured %v", m.AuthType, c.AuthType)
	}
	switch c.AuthType {
	case AuthSimple:
		if subtle.ConstantTimeCompare(m.AuthData[:], c.AuthData[:]) != 1 {
			return dropf(ReasonAuth, "wrong password")
		}
	case AuthAH:
		if err := VerifyAH(m.ahInput, c.AuthData, c.Unicast); err != nil {
			return err
		}
		// Replay protection (RFC 2402 §3.4.3; keepalived accepts only
		// a sequence number above the last one seen).
		if m.AH.Seq <= c.LastAHSeq {
			return dropf(ReasonAuth, "AH sequence number %d already seen (last %d)", m.AH.Seq, c.LastAHSeq)
		}
	}
	return nil
}

// VerifyAH checks the AH header of a whole IPv4 packet as keepalived
// does (vrrp.c: vrrp_in_chk_ipsecah): the ICV (see MarshalIPv4 for the
// inputs; zeroTTL must match the sender's unicast mode) and then that the
// SPI equals the source address. It does not check the sequence number.
func VerifyAH(pkt []byte, key [8]byte, zeroTTL bool) error {
	if len(pkt) < ipv4HdrLen {
		return dropf(ReasonTooShort, "%d bytes", len(pkt))
	}
	ihl := int(pkt[0]&0x0f) * 4
	if pkt[0]>>4 != 4 || ihl < ipv4HdrLen || pkt[9] != ProtocolAH {
		return dropf(ReasonAuthType, "not an IPv4 AH packet")
	}
	if len(pkt) < ihl+ahLen+headerLen {
		return dropf(ReasonTooShort, "%d bytes", len(pkt))
	}
	want := ahICV(pkt, ihl, key, zeroTTL)
	if !hmac.Equal(want[:], pkt[ihl+12:ihl+ahLen]) {
		return dropf(ReasonAuth, "AH ICV mismatch (wrong key or mutated fields)")
	}
	if [4]byte(pkt[ihl+4:]) != [4]byte(pkt[12:]) {
		return dropf(ReasonAuth, "AH SPI is not the source address")
	}
	return nil
}

// IntervalAction is what to do about a received advert's interval.
type IntervalAction uint8

const (
	// IntervalOK: the interval matches.
	IntervalOK IntervalAction = iota
	// IntervalDrop: VRRPv2 mismatch; RFC 3768 §7.1 says discard, and
	// keepalived does (logging once, "to prevent concurrent VRID running
	// => multiple master").
	IntervalDrop
	// IntervalLearn: VRRPv3 mismatch; RFC 5798 §7.1 only says SHOULD log
	// (keepalived logs once per rate-limit period and processes the
	// packet). A Backup accepting the advert sets Master_Adver_Interval
	// to the received interval (RFC 5798 §6.4.2; keepalived:
	// vrrp_state_backup -> update_master_adver_int); a Master ignores it.
	IntervalLearn
)

// CheckInterval compares a received advert interval with the configured
// one the way keepalived does (vrrp.c: vrrp_check_packet).
func CheckInterval(version uint8, configured, received time.Duration) IntervalAction {
	switch {
	case configured == received:
		return IntervalOK
	case version == 2:
		return IntervalDrop
	default:
		return IntervalLearn
	}
}

// CheckAddrs compares the addresses in an advert with the configured
// VIPs (RFC 3768 §7.1 "MAY verify that the IP address(es) associated with
// the VRID are valid"; RFC 5798 §7.1 "MAY verify that 'Count IPvX Addrs'
// and the list of IPvX address matches"). Order does not matter. It
// returns a *DropError with ReasonAddrCount or ReasonAddrList, or nil.
//
// The result is for logging and counting, not for dropping: RFC 5798
// §7.1 asks only to log a mismatch, and keepalived since 2.3.3 (commit
// 0a82ab55, "RFC 9568" rate-limited logging) logs it, counts
// addr_list_err and processes the packet anyway, for VRRPv2 as well,
// whether or not vrrp_strict is set (vrrp_strict plays no part in this
// check). Older keepalived (2.0.x..2.3.2) dropped such packets when
// checking was on (always for a Master; for a Backup unless
// vrrp_skip_check_adv_addr and the master was unchanged). keepalived
// compares only the virtual_ipaddress list, not
// virtual_ipaddress_excluded.
func CheckAddrs(received, configured []netip.Addr) error {
	if len(received) != len(configured) {
		return dropf(ReasonAddrCount, "%d addresses, configured %d", len(received), len(configured))
	}
	for _, a := range configured {
		if !slices.Contains(received, a) {
			return dropf(ReasonAddrList, "configured %v not in advert", a)
		}
	}
	return nil
}
