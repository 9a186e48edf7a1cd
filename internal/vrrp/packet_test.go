package vrrp

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

var (
	pktSrc4   = netip.MustParseAddr("10.0.0.1")
	pktPeer4  = netip.MustParseAddr("10.0.0.2")
	pktMcast4 = netip.MustParseAddr("224.0.0.18")
	pktVip4   = netip.MustParseAddr("10.0.0.100")
	pktSrc6   = netip.MustParseAddr("fe80::1")
	pktMcast6 = netip.MustParseAddr("ff02::12")
	pktVip6   = netip.MustParseAddr("2001:db8::100")
)

// pktCmpOpts compares netip.Addr by value.
var pktCmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmpopts.EquateEmpty()}

// refChecksum is an independent, deliberately naive RFC 1071 checksum: it
// sums bytes by position weight into a big accumulator and folds at the
// end. Used to cross-check the package's implementation.
func refChecksum(data []byte) uint16 {
	var acc uint64
	for i, c := range data {
		if i%2 == 0 {
			acc += uint64(c) * 256
		} else {
			acc += uint64(c)
		}
	}
	for acc>>16 != 0 {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

func pktReason(err error) DropReason {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return 0
}

func pktPass(s string) (a [8]byte) {
	copy(a[:], s)
	return a
}

// TestGoldenV2Simple checks a hand-assembled VRRPv2 advert: VRID 51,
// priority 100, one VIP 10.0.0.100, interval 1 s, auth PASS "1111", as
// keepalived would send from 10.0.0.1. Checksum by hand (16-bit words):
// 2133+6401+0101+0a00+0064+3131+3131+0000+0000 = f2fb, ~f2fb = 0d04.
func TestGoldenV2Simple(t *testing.T) {
	want := []byte{
		0x21, 0x33, 0x64, 0x01, // v2 advert, VRID 51, prio 100, 1 addr
		0x01, 0x01, 0x0d, 0x04, // auth PASS, 1 s, checksum
		10, 0, 0, 100, // VIP
		'1', '1', '1', '1', 0, 0, 0, 0, // password
	}
	p := &Packet{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthSimple,
		AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}, AuthData: pktPass("1111")}
	got, err := p.Marshal(pktSrc4, pktMcast4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal = % x, want % x", got, want)
	}
	zeroed := bytes.Clone(want)
	zeroed[6], zeroed[7] = 0, 0
	if c := refChecksum(zeroed); c != 0x0d04 {
		t.Fatalf("reference checksum %#04x, want 0x0d04", c)
	}
	back, err := Parse(want, pktSrc4, pktMcast4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, back, pktCmpOpts); d != "" {
		t.Fatalf("Parse diff (-want +got):\n%s", d)
	}
}

// TestGoldenV3IPv4 checks a VRRPv3 IPv4 advert, VRID 51, priority 100,
// interval 100 cs, VIP 10.0.0.100, 10.0.0.1 -> 224.0.0.18.
// With pseudo-header: 0a00+0001+e000+0012+0070+000c (src, dst, proto,
// len 12) + 3133+6401+0064+0a00+0064 = 18a8b -> 8a8c, ~ = 7573.
// As v2 (no pseudo-header): 3133+6401+0064+0a00+0064 = 9ffc, ~ = 6003.
func TestGoldenV3IPv4(t *testing.T) {
	p := &Packet{Version: 3, Type: 1, VRID: 51, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	rfc := []byte{0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x75, 0x73, 10, 0, 0, 100}
	asV2 := []byte{0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x60, 0x03, 10, 0, 0, 100}
	for _, tc := range []struct {
		name string
		opts Options
		want []byte
	}{
		{"pseudo-header", Options{}, rfc},
		{"v3_checksum_as_v2", Options{V3ChecksumAsV2: true}, asV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Marshal(pktSrc4, pktMcast4, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Marshal = % x, want % x", got, tc.want)
			}
		})
	}
	// Independent cross-check of both values.
	z := bytes.Clone(rfc)
	z[6], z[7] = 0, 0
	ph := append([]byte{10, 0, 0, 1, 224, 0, 0, 18, 0, 112, 0, 12}, z...)
	if refChecksum(ph) != 0x7573 || refChecksum(z) != 0x6003 {
		t.Fatalf("reference checksums %#04x %#04x", refChecksum(ph), refChecksum(z))
	}

	// Decoding: the default accepts only the RFC form; V3ChecksumAsV2
	// accepts both (mixed peers during a migration).
	for _, tc := range []struct {
		name string
		b    []byte
		opts Options
		ok   bool
	}{
		{"rfc/default", rfc, Options{}, true},
		{"v2form/default", asV2, Options{}, false},
		{"rfc/asV2", rfc, Options{V3ChecksumAsV2: true}, true},
		{"v2form/asV2", asV2, Options{V3ChecksumAsV2: true}, true},
	} {
		t.Run("parse/"+tc.name, func(t *testing.T) {
			got, err := Parse(tc.b, pktSrc4, pktMcast4, tc.opts)
			if !tc.ok {
				if pktReason(err) != ReasonChecksum {
					t.Fatalf("err = %v, want checksum drop", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(p, got, pktCmpOpts); d != "" {
				t.Fatalf("diff:\n%s", d)
			}
		})
	}
}

// TestGoldenV3IPv6 checks the IPv6 pseudo-header checksum (RFC 8200 §8.1)
// against the reference algorithm over an explicitly built pseudo-header;
// V3ChecksumAsV2 must not change IPv6.
func TestGoldenV3IPv6(t *testing.T) {
	p := &Packet{Version: 3, Type: 1, VRID: 7, Priority: 200, AdvertInt: 50 * time.Millisecond, Addrs: []netip.Addr{pktVip6}}
	for _, opts := range []Options{{}, {V3ChecksumAsV2: true}} {
		got, err := p.Marshal(pktSrc6, pktMcast6, opts)
		if err != nil {
			t.Fatal(err)
		}
		wantHead := []byte{0x31, 7, 200, 1, 0x00, 0x05}
		if !bytes.Equal(got[:6], wantHead) || !bytes.Equal(got[8:], pktVip6.AsSlice()) {
			t.Fatalf("Marshal = % x", got)
		}
		z := bytes.Clone(got)
		z[6], z[7] = 0, 0
		var ph []byte
		ph = append(ph, pktSrc6.AsSlice()...)
		ph = append(ph, pktMcast6.AsSlice()...)
		ph = append(ph, 0, 0, 0, byte(len(z)), 0, 0, 0, 112)
		ph = append(ph, z...)
		if c := uint16(got[6])<<8 | uint16(got[7]); c != refChecksum(ph) {
			t.Fatalf("checksum %#04x, reference %#04x", c, refChecksum(ph))
		}
		m, err := ParseIPv6(got, pktSrc6, pktMcast6, 255, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(p, &m.Packet, pktCmpOpts); d != "" {
			t.Fatalf("diff:\n%s", d)
		}
	}
}

func pktMustMarshal(t *testing.T, p *Packet, src, dst netip.Addr) []byte {
	t.Helper()
	b, err := p.Marshal(src, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pktFixSum recomputes the checksum after a test mutated a message.
func pktFixSum(b []byte, src, dst netip.Addr) []byte {
	b[6], b[7] = 0, 0
	c := vrrpChecksum(b, b[0]>>4, src, dst, true)
	b[6], b[7] = byte(c>>8), byte(c)
	return b
}

func TestParseErrors(t *testing.T) {
	v2 := &Packet{Version: 2, Type: 1, VRID: 1, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	v3 := &Packet{Version: 3, Type: 1, VRID: 1, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	good2 := pktMustMarshal(t, v2, pktSrc4, pktMcast4)
	good3 := pktMustMarshal(t, v3, pktSrc4, pktMcast4)
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	for _, tc := range []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     DropReason
	}{
		{"empty", nil, pktSrc4, pktMcast4, ReasonTooShort},
		{"7 bytes", good2[:7], pktSrc4, pktMcast4, ReasonTooShort},
		{"version 1", mut(good2, func(b []byte) []byte { b[0] = 0x11; return b }), pktSrc4, pktMcast4, ReasonVersion},
		{"version 4", mut(good3, func(b []byte) []byte { b[0] = 0x41; return b }), pktSrc4, pktMcast4, ReasonVersion},
		{"v2 over IPv6", mut(good2, func(b []byte) []byte { return b }), pktSrc6, pktMcast6, ReasonVersion},
		{"truncated address", good2[:10], pktSrc4, pktMcast4, ReasonLength},
		{"missing auth data", good2[:12], pktSrc4, pktMcast4, ReasonLength},
		{"trailing byte", append(bytes.Clone(good3), 0), pktSrc4, pktMcast4, ReasonLength},
		{"count too high", mut(good3, func(b []byte) []byte { b[3] = 2; return pktFixSum(b, pktSrc4, pktMcast4) }), pktSrc4, pktMcast4, ReasonLength},
		{"v2 checksum", mut(good2, func(b []byte) []byte { b[2]++; return b }), pktSrc4, pktMcast4, ReasonChecksum},
		{"v3 checksum", mut(good3, func(b []byte) []byte { b[7]++; return b }), pktSrc4, pktMcast4, ReasonChecksum},
		{"v3 wrong pseudo-header dst", good3, pktSrc4, netip.MustParseAddr("10.0.0.2"), ReasonChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.b, tc.src, tc.dst, Options{})
			if got := pktReason(err); got != tc.want {
				t.Fatalf("Parse = %+v, %v; want reason %v", p, err, tc.want)
			}
		})
	}
	// v2 ignores the pseudo-header: any src/dst of the family works.
	if _, err := Parse(good2, pktPeer4, pktPeer4, Options{}); err != nil {
		t.Fatal(err)
	}
	// Caller bugs are plain errors, not drops.
	if _, err := Parse(good3, pktSrc4, pktMcast6, Options{}); err == nil || pktReason(err) != 0 {
		t.Fatalf("mixed families: %v", err)
	}
}

// TestParseIgnoredFields: the 4 reserved bits are ignored (RFC 5798
// §5.2.6); v2 auth data is ignored unless PASS (RFC 3768 §5.3.10).
func TestParseIgnoredFields(t *testing.T) {
	v3 := pktMustMarshal(t, &Packet{Version: 3, Type: 1, VRID: 9, Priority: 1, AdvertInt: 4095 * 10 * time.Millisecond}, pktSrc4, pktMcast4)
	v3[4] |= 0xf0
	p, err := Parse(pktFixSum(v3, pktSrc4, pktMcast4), pktSrc4, pktMcast4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.AdvertInt != 40950*time.Millisecond || p.Addrs != nil {
		t.Fatalf("got %+v", p)
	}
	v2 := pktMustMarshal(t, &Packet{Version: 2, Type: 1, VRID: 9, Priority: 1, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}, pktSrc4, pktMcast4)
	copy(v2[12:], "junk")
	p, err = Parse(pktFixSum(v2, pktSrc4, pktMcast4), pktSrc4, pktMcast4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.AuthData != [8]byte{} {
		t.Fatalf("auth data kept for auth type none: %q", p.AuthData)
	}
}

func TestMarshalErrors(t *testing.T) {
	base := func() Packet {
		return Packet{Version: 2, Type: 1, VRID: 1, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	}
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	for _, tc := range []struct {
		name     string
		mod      func(*Packet)
		src, dst netip.Addr
	}{
		{"version 4", func(p *Packet) { p.Version = 4 }, pktSrc4, pktMcast4},
		{"type 16", func(p *Packet) { p.Type = 16 }, pktSrc4, pktMcast4},
		{"v2 over IPv6", func(p *Packet) { p.Addrs = []netip.Addr{pktVip6} }, pktSrc6, pktMcast6},
		{"v2 sub-second", func(p *Packet) { p.AdvertInt = 1500 * time.Millisecond }, pktSrc4, pktMcast4},
		{"v2 zero interval", func(p *Packet) { p.AdvertInt = 0 }, pktSrc4, pktMcast4},
		{"v2 256 s", func(p *Packet) { p.AdvertInt = 256 * time.Second }, pktSrc4, pktMcast4},
		{"v2 auth type 3", func(p *Packet) { p.AuthType = 3 }, pktSrc4, pktMcast4},
		{"v3 5 ms", func(p *Packet) { p.Version = 3; p.AdvertInt = 5 * time.Millisecond }, pktSrc4, pktMcast4},
		{"v3 4096 cs", func(p *Packet) { p.Version = 3; p.AdvertInt = 40960 * time.Millisecond }, pktSrc4, pktMcast4},
		{"v3 auth", func(p *Packet) { p.Version = 3; p.AuthType = AuthSimple }, pktSrc4, pktMcast4},
		{"v3 auth data", func(p *Packet) { p.Version = 3; p.AuthData = pktPass("x") }, pktSrc4, pktMcast4},
		{"v3 IPv6 addr in IPv4", func(p *Packet) { p.Version = 3; p.Addrs = []netip.Addr{pktVip6} }, pktSrc4, pktMcast4},
		{"v3 IPv4 addr in IPv6", func(p *Packet) { p.Version = 3 }, pktSrc6, pktMcast6},
		{"invalid addr", func(p *Packet) { p.Addrs = []netip.Addr{{}} }, pktSrc4, pktMcast4},
		{"mapped addr", func(p *Packet) { p.Addrs = []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")} }, pktSrc4, pktMcast4},
		{"256 addrs", func(p *Packet) { p.Addrs = many }, pktSrc4, pktMcast4},
		{"mixed src/dst", func(p *Packet) {}, pktSrc4, pktMcast6},
		{"no src", func(p *Packet) {}, netip.Addr{}, pktMcast4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mod(&p)
			if b, err := p.Marshal(tc.src, tc.dst, Options{}); err == nil {
				t.Fatalf("Marshal = % x, want error", b)
			}
		})
	}
	p := base()
	if _, err := p.MarshalIPv4(IPv4Header{Src: pktSrc6, Dst: pktMcast6}, nil, Options{}); err == nil {
		t.Fatal("MarshalIPv4 with IPv6 addresses succeeded")
	}
	if _, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4}, &AHParams{}, Options{}); err == nil {
		t.Fatal("MarshalIPv4 with AH params but auth type none succeeded")
	}
	p.AuthType = AuthAH
	if _, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4}, nil, Options{}); err == nil {
		t.Fatal("MarshalIPv4 with auth type AH but no AH params succeeded")
	}
	p.AdvertInt = 0
	if _, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4}, &AHParams{}, Options{}); err == nil {
		t.Fatal("MarshalIPv4 of invalid packet succeeded")
	}
}

// TestMarshalIPv4Golden checks the IPv4 header against hand-written bytes
// and the header checksum against the reference algorithm.
func TestMarshalIPv4Golden(t *testing.T) {
	p := &Packet{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthSimple,
		AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}, AuthData: pktPass("1111")}
	b, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 0x1234}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{
		0x45, 0xc0, 0x00, 40, // v4, ihl 5, TOS network control, total 40
		0x12, 0x34, 0x40, 0x00, // ID, DF
		255, 112, 0, 0, // TTL, VRRP, checksum (below)
		10, 0, 0, 1,
		224, 0, 0, 18,
	}
	c := refChecksum(hdr)
	hdr[10], hdr[11] = byte(c>>8), byte(c)
	if !bytes.Equal(b[:20], hdr) {
		t.Fatalf("header % x, want % x", b[:20], hdr)
	}
	if !bytes.Equal(b[20:24], []byte{0x21, 0x33, 0x64, 0x01}) || b[26] != 0x0d || b[27] != 0x04 {
		t.Fatalf("payload % x", b[20:])
	}
	// Unicast TTL.
	b, err = p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktPeer4, TTL: 64}, nil, Options{})
	if err != nil || b[8] != 64 {
		t.Fatalf("TTL %d, %v", b[8], err)
	}
}

func TestParseIPv4Errors(t *testing.T) {
	p := &Packet{Version: 2, Type: 1, VRID: 1, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	good, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pa := *p
	pa.AuthType = AuthAH
	goodAH, err := pa.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, &AHParams{Key: pktPass("k"), Seq: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"ok", good, 0},
		{"ok AH", goodAH, 0},
		{"19 bytes", good[:19], ReasonTooShort},
		{"IPv6 version", mut(good, func(b []byte) []byte { b[0] = 0x65; return b }), ReasonIPHeader},
		{"ihl 4", mut(good, func(b []byte) []byte { b[0] = 0x44; return b }), ReasonIPHeader},
		{"ihl beyond data", mut(good[:20], func(b []byte) []byte { b[0] = 0x46; return b }), ReasonTooShort},
		{"total length too big", mut(good, func(b []byte) []byte { b[3]++; return b }), ReasonLength},
		{"total length below ihl", mut(good, func(b []byte) []byte { b[2], b[3] = 0, 19; return b }), ReasonLength},
		{"ethernet padding", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0), 0},
		{"junk after packet", append(bytes.Clone(goodAH), 0, 0), ReasonLength},
		{"protocol UDP", mut(good, func(b []byte) []byte { b[9] = 17; return b }), ReasonProtocol},
		{"AH too short", goodAH[:40], ReasonLength},
		{"AH too short, length fixed", mut(goodAH[:40], func(b []byte) []byte { b[2], b[3] = 0, 40; return b }), ReasonTooShort},
		{"AH next header", mut(goodAH, func(b []byte) []byte { b[20] = 6; return b }), ReasonProtocol},
		{"AH payload length", mut(goodAH, func(b []byte) []byte { b[21] = 3; return b }), ReasonLength},
		{"VRRP checksum", mut(good, func(b []byte) []byte { b[22]++; return b }), ReasonChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseIPv4(tc.b, Options{})
			if got := pktReason(err); got != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("ParseIPv4 = %+v, %v; want reason %v", m, err, tc.want)
			}
		})
	}
	m, err := ParseIPv4(append(bytes.Clone(good), 0, 0), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{Packet: *p, Src: pktSrc4, Dst: pktMcast4, TTL: 255}
	if d := cmp.Diff(want, m, pktCmpOpts, cmpopts.IgnoreUnexported(Message{})); d != "" {
		t.Fatalf("diff:\n%s", d)
	}
	if _, err := ParseIPv6(good[20:], pktSrc4, pktMcast4, 255, Options{}); err == nil {
		t.Fatal("ParseIPv6 with IPv4 addresses succeeded")
	}
	if _, err := ParseIPv6(good[20:], pktSrc6, pktMcast6, 255, Options{}); pktReason(err) != ReasonVersion {
		t.Fatalf("ParseIPv6 of VRRPv2: %v, want version drop", err)
	}
}

// TestAHICV recomputes the ICV of a keepalived-style AH packet from a
// hand-assembled HMAC input: the IP header with TOS, flags/fragment
// offset and checksum zeroed (and TTL zeroed in unicast mode), the AH
// header with a zero ICV, then the VRRP message.
func TestAHICV(t *testing.T) {
	key := pktPass("secret")
	p := &Packet{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthAH,
		AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	for _, unicast := range []bool{false, true} {
		dst := pktMcast4
		if unicast {
			dst = pktPeer4
		}
		b, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: dst, ID: 7}, &AHParams{Key: key, Seq: 5, Unicast: unicast}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ttl := byte(255)
		if unicast {
			ttl = 0
		}
		in := []byte{
			0x45, 0, 0, byte(len(b)), 0, 7, 0, 0, ttl, 51, 0, 0, 10, 0, 0, 1,
		}
		in = append(in, dst.AsSlice()...)
		in = append(in, 112, 4, 0, 0, 10, 0, 0, 1, 0, 0, 0, 5)
		in = append(in, make([]byte, 12)...)
		in = append(in, b[44:]...)
		mac := hmac.New(md5.New, key[:])
		mac.Write(in)
		want := mac.Sum(nil)[:12]
		if !bytes.Equal(b[32:44], want) {
			t.Fatalf("unicast=%t: ICV % x, want % x", unicast, b[32:44], want)
		}
		// VRRP part: auth type AH, auth data zero, v2 checksum.
		if b[44+4] != 2 || !bytes.Equal(b[len(b)-8:], make([]byte, 8)) || refChecksum(b[44:]) != 0 {
			t.Fatalf("VRRP part % x", b[44:])
		}
		m, err := ParseIPv4(b, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(&AH{SPI: 0x0a000001, Seq: 5, ICV: [12]byte(want)}, m.AH); d != "" {
			t.Fatalf("AH diff:\n%s", d)
		}
		if err := VerifyAH(b, key, unicast); err != nil {
			t.Fatal(err)
		}
		// Fields excluded from the ICV may change in transit.
		c := bytes.Clone(b)
		c[1], c[6], c[7], c[10], c[11] = 0x10, 0, 0, 0xaa, 0xbb
		if unicast {
			c[8] = 3
		}
		if err := VerifyAH(c, key, unicast); err != nil {
			t.Fatalf("mutable fields: %v", err)
		}
	}
}

func TestVerifyAHErrors(t *testing.T) {
	key := pktPass("secret")
	p := &Packet{Version: 2, Type: 1, VRID: 1, Priority: 100, AuthType: AuthAH, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	good, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, &AHParams{Key: key, Seq: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain := *p
	plain.AuthType = AuthNone
	noAH, err := plain.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A sender that puts something else in the SPI, with a valid ICV.
	badSPI := bytes.Clone(good)
	badSPI[27]++
	icv := ahICV(badSPI, 20, key, false)
	copy(badSPI[32:], icv[:])
	mut := func(f func([]byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name    string
		b       []byte
		key     [8]byte
		zeroTTL bool
		want    DropReason
	}{
		{"ok", good, key, false, 0},
		{"short", good[:19], key, false, ReasonTooShort},
		{"short AH", good[:50], key, false, ReasonTooShort},
		{"no AH", noAH, key, false, ReasonAuthType},
		{"wrong key", good, pktPass("secreT"), false, ReasonAuth},
		{"sender multicast, receiver unicast", good, key, true, ReasonAuth},
		{"TTL changed (multicast)", mut(func(b []byte) { b[8] = 254 }), key, false, ReasonAuth},
		{"ID changed", mut(func(b []byte) { b[5]++ }), key, false, ReasonAuth},
		{"seq changed", mut(func(b []byte) { b[31]++ }), key, false, ReasonAuth},
		{"priority changed", mut(func(b []byte) { b[46]++ }), key, false, ReasonAuth},
		{"SPI not source", badSPI, key, false, ReasonAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyAH(tc.b, tc.key, tc.zeroTTL)
			if got := pktReason(err); got != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("VerifyAH = %v, want reason %v", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	v2 := RecvConfig{Version: 2, VRID: 51, AdvertInt: time.Second, OwnAddrs: []netip.Addr{pktPeer4}}
	v2pass := v2
	v2pass.AuthType, v2pass.AuthData = AuthSimple, pktPass("1111")
	v2ah := v2
	v2ah.AuthType, v2ah.AuthData, v2ah.LastAHSeq = AuthAH, pktPass("k"), 10
	v3 := RecvConfig{Version: 3, VRID: 51, AdvertInt: time.Second}
	uni := v3
	uni.Unicast = true
	uniSrc := uni
	uniSrc.CheckUnicastSrc = true
	uniSrc.Peers = []UnicastPeer{{Addr: pktSrc4, MinTTL: 250}, {Addr: pktPeer4}}

	base := func(version uint8) Packet {
		return Packet{Version: version, Type: 1, VRID: 51, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}}
	}
	msg := func(version uint8, f func(*Message)) *Message {
		m := &Message{Packet: base(version), Src: pktSrc4, Dst: pktMcast4, TTL: 255}
		if f != nil {
			f(m)
		}
		return m
	}
	ahMsg := func(key string, seq uint32, f func(*Packet)) *Message {
		p := base(2)
		p.AuthType = AuthAH
		if f != nil {
			f(&p)
		}
		b, err := p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, &AHParams{Key: pktPass(key), Seq: seq}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseIPv4(b, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		cfg  RecvConfig
		m    *Message
		want DropReason
	}{
		{"v2 ok", v2, msg(2, nil), 0},
		{"v3 ok", v3, msg(3, nil), 0},
		{"unknown TTL", v3, msg(3, func(m *Message) { m.TTL = -1 }), 0},
		{"vrid", v2, msg(2, func(m *Message) { m.VRID = 52 }), ReasonVRID},
		{"own address", v2, msg(2, func(m *Message) { m.Src = pktPeer4 }), ReasonOwnAddress},
		{"ttl", v2, msg(2, func(m *Message) { m.TTL = 254 }), ReasonTTL},
		{"version", v2, msg(3, nil), ReasonVersion},
		{"version v3 cfg", v3, msg(2, nil), ReasonVersion},
		{"type", v3, msg(3, func(m *Message) { m.Type = 2 }), ReasonType},
		{"type v2", v2, msg(2, func(m *Message) { m.Type = 0 }), ReasonType},
		{"v2 interval", v2, msg(2, func(m *Message) { m.AdvertInt = 2 * time.Second }), ReasonInterval},
		{"v3 interval is not a drop", v3, msg(3, func(m *Message) { m.AdvertInt = 2 * time.Second }), 0},
		{"auth type mismatch", v2, msg(2, func(m *Message) { m.AuthType = AuthSimple }), ReasonAuthType},
		{"auth none vs pass", v2pass, msg(2, nil), ReasonAuthType},
		{"pass ok", v2pass, msg(2, func(m *Message) { m.AuthType, m.AuthData = AuthSimple, pktPass("1111") }), 0},
		{"pass wrong", v2pass, msg(2, func(m *Message) { m.AuthType, m.AuthData = AuthSimple, pktPass("1112") }), ReasonAuth},
		{"AH ok", v2ah, ahMsg("k", 11, nil), 0},
		{"AH wrong key", v2ah, ahMsg("K", 11, nil), ReasonAuth},
		{"AH replay", v2ah, ahMsg("k", 10, nil), ReasonAuth},
		{"AH but none configured", v2, ahMsg("k", 11, nil), ReasonAuthType},
		{"AH header, auth type field none", v2ah, func() *Message { m := ahMsg("k", 11, nil); m.AuthType = AuthNone; return m }(), ReasonAuthType},
		{"AH configured, no header", v2ah, msg(2, func(m *Message) { m.AuthType = AuthAH }), ReasonAuthType},
		{"AH checked before interval", v2ah, ahMsg("K", 11, func(p *Packet) { p.AdvertInt = 3 * time.Second }), ReasonAuth},
		{"AH on v3", v3, msg(3, func(m *Message) { m.AH = &AH{} }), ReasonAuthType},
		{"unicast: TTL not checked", uni, msg(3, func(m *Message) { m.Dst, m.TTL = pktPeer4, 1 }), 0},
		{"unicast: multicast dst", uni, msg(3, nil), ReasonDestination},
		{"multicast: unicast dst", v3, msg(3, func(m *Message) { m.Dst = pktPeer4 }), ReasonDestination},
		{"unicast src ok", uniSrc, msg(3, func(m *Message) { m.Dst, m.TTL = pktPeer4, 250 }), 0},
		{"unicast src default range", uniSrc, msg(3, func(m *Message) { m.Src, m.Dst, m.TTL = pktPeer4, pktSrc4, 1 }), 0},
		{"unicast src unknown", uniSrc, msg(3, func(m *Message) { m.Src, m.Dst = pktVip4, pktPeer4 }), ReasonUnicastSource},
		{"unicast src TTL below min", uniSrc, msg(3, func(m *Message) { m.Dst, m.TTL = pktPeer4, 249 }), ReasonTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check(tc.m)
			if got := pktReason(err); got != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("Check = %v, want reason %v", err, tc.want)
			}
		})
	}
}

func TestCheckInterval(t *testing.T) {
	for _, tc := range []struct {
		version            uint8
		configured, packet time.Duration
		want               IntervalAction
	}{
		{2, time.Second, time.Second, IntervalOK},
		{2, time.Second, 2 * time.Second, IntervalDrop},
		{3, time.Second, time.Second, IntervalOK},
		{3, time.Second, 500 * time.Millisecond, IntervalLearn},
		{3, time.Second, 0, IntervalLearn},
	} {
		if got := CheckInterval(tc.version, tc.configured, tc.packet); got != tc.want {
			t.Errorf("CheckInterval(%d, %v, %v) = %d, want %d", tc.version, tc.configured, tc.packet, got, tc.want)
		}
	}
}

func TestCheckAddrs(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	c := netip.MustParseAddr("10.0.0.3")
	for _, tc := range []struct {
		name       string
		recv, conf []netip.Addr
		want       DropReason
	}{
		{"equal", []netip.Addr{a, b}, []netip.Addr{a, b}, 0},
		{"other order", []netip.Addr{b, a}, []netip.Addr{a, b}, 0},
		{"both empty", nil, nil, 0},
		{"fewer", []netip.Addr{a}, []netip.Addr{a, b}, ReasonAddrCount},
		{"more", []netip.Addr{a, b, c}, []netip.Addr{a, b}, ReasonAddrCount},
		{"different", []netip.Addr{a, c}, []netip.Addr{a, b}, ReasonAddrList},
		{"duplicate", []netip.Addr{a, a}, []netip.Addr{a, b}, ReasonAddrList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAddrs(tc.recv, tc.conf)
			if got := pktReason(err); got != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("CheckAddrs = %v, want reason %v", err, tc.want)
			}
		})
	}
}

func TestDropReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DropReasons() {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("reason %d: bad or duplicate name %q", r, s)
		}
		seen[s] = true
	}
	if len(seen) != int(numDropReasons)-1 {
		t.Errorf("%d names for %d reasons", len(seen), numDropReasons-1)
	}
	if DropReason(0).String() != "unknown" || DropReason(200).String() != "unknown" {
		t.Error("out of range reason not unknown")
	}
	e := &DropError{Reason: ReasonTTL, Detail: "TTL 1"}
	if e.Error() != "vrrp: drop: ttl: TTL 1" || (&DropError{Reason: ReasonVRID}).Error() != "vrrp: drop: vrid" {
		t.Errorf("Error() = %q", e.Error())
	}
	names := map[AuthType]string{AuthNone: "none", AuthSimple: "pass", AuthAH: "ah", 9: "auth_type(9)"}
	for a, want := range names {
		if a.String() != want {
			t.Errorf("AuthType(%d) = %q, want %q", a, a.String(), want)
		}
	}
}

// pktGen draws a valid packet; is6 picks the family (VRRPv3 only).
func pktGen(t *rapid.T) (*Packet, netip.Addr, netip.Addr) {
	version := rapid.SampledFrom([]uint8{2, 3}).Draw(t, "version")
	is6 := version == 3 && rapid.Bool().Draw(t, "ipv6")
	addr := func(label string) netip.Addr {
		if is6 {
			return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, label))).Unmap()
		}
		return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label)))
	}
	p := &Packet{
		Version:  version,
		Type:     rapid.Uint8Range(0, 15).Draw(t, "type"),
		VRID:     rapid.Uint8().Draw(t, "vrid"),
		Priority: rapid.Uint8().Draw(t, "priority"),
	}
	src, dst := addr("src"), addr("dst")
	if is6 && src.Is4In6() || src.Is4() != dst.Is4() {
		// Unmap of a drawn 16-byte address can yield IPv4; redraw
		// deterministically as plain IPv6.
		src, dst = pktSrc6, pktMcast6
	}
	is6 = src.Is6()
	n := rapid.IntRange(0, 255).Draw(t, "naddr")
	for range n {
		a := addr("vip")
		if a.Is6() != is6 {
			a = pktVip6
		}
		p.Addrs = append(p.Addrs, a)
	}
	if version == 2 {
		p.AdvertInt = time.Duration(rapid.IntRange(1, 255).Draw(t, "advert_s")) * time.Second
		p.AuthType = rapid.SampledFrom([]AuthType{AuthNone, AuthSimple, AuthAH}).Draw(t, "auth")
		if p.AuthType == AuthSimple {
			p.AuthData = [8]byte(rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "pass"))
		}
	} else {
		p.AdvertInt = time.Duration(rapid.IntRange(1, 4095).Draw(t, "advert_cs")) * 10 * time.Millisecond
	}
	return p, src, dst
}

// TestRoundTrip: Parse(Marshal(p)) == p for v2/v3, IPv4/IPv6, both
// checksum modes; a single flipped bit is always detected.
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, src, dst := pktGen(t)
		opts := Options{V3ChecksumAsV2: rapid.Bool().Draw(t, "asV2")}
		b, err := p.Marshal(src, dst, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b, src, dst, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(p, got, pktCmpOpts); d != "" {
			t.Fatalf("diff:\n%s", d)
		}
		if !opts.V3ChecksumAsV2 {
			bit := rapid.IntRange(0, len(b)*8-1).Draw(t, "bit")
			b[bit/8] ^= 1 << (bit % 8)
			if _, err := Parse(b, src, dst, opts); err == nil {
				t.Fatalf("bit %d flip not detected", bit)
			}
		}
	})
}

// TestRoundTripIPv4: ParseIPv4(MarshalIPv4(p)) == p, and the result
// passes Check with the matching configuration (AH included).
func TestRoundTripIPv4(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, _, _ := pktGen(t)
		if len(p.Addrs) > 0 && p.Addrs[0].Is6() {
			t.Skip("IPv6")
		}
		p.Type = TypeAdvertisement
		h := IPv4Header{
			Src: netip.AddrFrom4([4]byte{10, 0, 0, rapid.ByteRange(1, 254).Draw(t, "src")}),
			Dst: pktMcast4,
			ID:  rapid.Uint16Range(1, 0xffff).Draw(t, "id"),
		}
		unicast := rapid.Bool().Draw(t, "unicast")
		if unicast {
			h.Dst = pktPeer4
			h.TTL = rapid.ByteRange(1, 255).Draw(t, "ttl")
		}
		cfg := RecvConfig{Version: p.Version, VRID: p.VRID, AdvertInt: p.AdvertInt, AuthType: p.AuthType, AuthData: p.AuthData, Unicast: unicast}
		var ah *AHParams
		if p.Version == 2 && p.AuthType == AuthAH {
			ah = &AHParams{Key: [8]byte(rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "key")), Seq: rapid.Uint32Min(1).Draw(t, "seq"), Unicast: unicast}
			cfg.AuthData = ah.Key
			cfg.LastAHSeq = ah.Seq - 1
		}
		opts := Options{V3ChecksumAsV2: rapid.Bool().Draw(t, "asV2")}
		b, err := p.MarshalIPv4(h, ah, opts)
		if err != nil {
			t.Fatal(err)
		}
		if refChecksum(b[:20]) != 0 {
			t.Fatalf("bad IPv4 header checksum")
		}
		m, err := ParseIPv4(b, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(p, &m.Packet, pktCmpOpts); d != "" {
			t.Fatalf("diff:\n%s", d)
		}
		if m.Src != h.Src || m.Dst != h.Dst || (ah != nil) != (m.AH != nil) {
			t.Fatalf("message %+v", m)
		}
		if err := cfg.Check(m); err != nil {
			t.Fatal(err)
		}
	})
}
