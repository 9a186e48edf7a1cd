package vrrp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pktSeeds are valid encodings used as fuzz seeds.
func pktSeeds(f *testing.F) (v4 [][]byte, v6 [][]byte, ip4 [][]byte) {
	f.Helper()
	ps := []*Packet{
		{Version: 2, Type: 1, VRID: 51, Priority: 100, AuthType: AuthSimple, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip4}, AuthData: pktPass("1111")},
		{Version: 2, Type: 1, VRID: 1, Priority: 255, AdvertInt: 3 * time.Second, Addrs: []netip.Addr{pktVip4, pktPeer4}},
		{Version: 3, Type: 1, VRID: 7, Priority: 0, AdvertInt: 100 * time.Millisecond, Addrs: []netip.Addr{pktVip4}},
	}
	for _, p := range ps {
		b, err := p.Marshal(pktSrc4, pktMcast4, Options{})
		if err != nil {
			f.Fatal(err)
		}
		v4 = append(v4, b)
		b, err = p.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, nil, Options{})
		if err != nil {
			f.Fatal(err)
		}
		ip4 = append(ip4, b)
	}
	ah := *ps[1]
	ah.AuthType = AuthAH
	b, err := ah.MarshalIPv4(IPv4Header{Src: pktSrc4, Dst: pktMcast4, ID: 1}, &AHParams{Key: pktPass("k"), Seq: 1}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	ip4 = append(ip4, b)
	p6 := &Packet{Version: 3, Type: 1, VRID: 7, Priority: 100, AdvertInt: time.Second, Addrs: []netip.Addr{pktVip6, pktSrc6}}
	b, err = p6.Marshal(pktSrc6, pktMcast6, Options{})
	if err != nil {
		f.Fatal(err)
	}
	v6 = append(v6, b)
	return v4, v6, ip4
}

// pktCheckReencode verifies that a packet Parse accepted encodes back to
// bytes Parse decodes to the same packet (when it is encodable at all:
// Parse accepts e.g. interval 0 or unknown auth types, Marshal does not).
func pktCheckReencode(t *testing.T, p *Packet, src, dst netip.Addr, opts Options) {
	t.Helper()
	b, err := p.Marshal(src, dst, opts)
	if err != nil {
		return
	}
	q, err := Parse(b, src, dst, opts)
	if err != nil {
		t.Fatalf("re-encoded packet does not parse: %v", err)
	}
	if d := cmp.Diff(p, q, pktCmpOpts); d != "" {
		t.Fatalf("re-encode diff:\n%s", d)
	}
}

func pktCheckDropErr(t *testing.T, err error) {
	t.Helper()
	var de *DropError
	if !errors.As(err, &de) || de.Reason == 0 || de.Reason >= numDropReasons {
		t.Fatalf("error %v is not a valid *DropError", err)
	}
}

func FuzzParse(f *testing.F) {
	v4, _, _ := pktSeeds(f)
	for _, b := range v4 {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, asV2 bool) {
		opts := Options{V3ChecksumAsV2: asV2}
		p, err := Parse(b, pktSrc4, pktMcast4, opts)
		if err != nil {
			pktCheckDropErr(t, err)
			return
		}
		pktCheckReencode(t, p, pktSrc4, pktMcast4, opts)
	})
}

func FuzzParseIPv6(f *testing.F) {
	_, v6, _ := pktSeeds(f)
	for _, b := range v6 {
		f.Add(b, 255)
	}
	f.Fuzz(func(t *testing.T, b []byte, hop int) {
		m, err := ParseIPv6(b, pktSrc6, pktMcast6, hop, Options{})
		if err != nil {
			pktCheckDropErr(t, err)
			return
		}
		pktCheckReencode(t, &m.Packet, pktSrc6, pktMcast6, Options{})
		cfg := RecvConfig{Version: 3, VRID: m.VRID, AdvertInt: m.AdvertInt}
		_ = cfg.Check(m)
	})
}

func FuzzParseIPv4(f *testing.F) {
	_, _, ip4 := pktSeeds(f)
	for _, b := range ip4 {
		f.Add(b, false, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, asV2, unicast bool) {
		opts := Options{V3ChecksumAsV2: asV2}
		m, err := ParseIPv4(b, opts)
		if err != nil {
			pktCheckDropErr(t, err)
			return
		}
		pktCheckReencode(t, &m.Packet, m.Src, m.Dst, opts)
		// Check (including AH verification on the retained bytes) must
		// not panic whatever the message holds.
		cfg := RecvConfig{Version: m.Version, VRID: m.VRID, AuthType: m.AuthType, AdvertInt: m.AdvertInt, Unicast: unicast, CheckUnicastSrc: true,
			Peers: []UnicastPeer{{Addr: m.Src}}}
		if err := cfg.Check(m); err != nil {
			pktCheckDropErr(t, err)
		}
	})
}

func FuzzVerifyAH(f *testing.F) {
	_, _, ip4 := pktSeeds(f)
	for _, b := range ip4 {
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, zeroTTL bool) {
		if err := VerifyAH(b, pktPass("k"), zeroTTL); err != nil {
			pktCheckDropErr(t, err)
		}
	})
}
