package nft

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"

	"tandem/internal/lvs"
)

// TestPersistenceMaskBitwise checks that the client key is the source
// address ANDed with the persistence mask as given, as IPVS does: an IPv4
// mask need not be a prefix (keepalived's persistence_granularity
// 255.0.255.0), and the registry keeps it.
func TestPersistenceMaskBitwise(t *testing.T) {
	for _, tc := range []struct {
		mask netip.Addr
		fam  lvs.AddressFamily
		want []byte
		text string
	}{
		{netip.MustParseAddr("255.0.255.0"), lvs.IPv4, []byte{255, 0, 255, 0}, "b=255.0.255.0"},
		{netip.MustParseAddr("255.255.255.0"), lvs.IPv4, []byte{255, 255, 255, 0}, "b=24"},
		{netip.Addr{}, lvs.IPv4, []byte{255, 255, 255, 255}, "b=0"},
		{lvs.PrefixMask(lvs.IPv6, 64), lvs.IPv6, []byte{255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0}, "b=64"},
	} {
		vip := netip.MustParseAddr("10.0.0.1")
		if tc.fam == lvs.IPv6 {
			vip = netip.MustParseAddr("2001:db8::1")
		}
		svc := lvs.Service{ServiceKey: lvs.ServiceKey{Family: tc.fam, Protocol: lvs.TCP, VIP: vip, Port: 80},
			Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR, PersistenceTimeout: 60, PersistenceMask: tc.mask}
		l := &layout{s: &service{Service: svc}, fam: familyOf(tc.fam)}
		key := l.clientKey()
		bw, ok := key[len(key)-1].(*expr.Bitwise)
		if !ok {
			t.Fatalf("%v: client key ends in %T, not a bitwise AND", tc.mask, key[len(key)-1])
		}
		if d := cmp.Diff(tc.want, bw.Mask); d != "" {
			t.Errorf("%v: mask (-want +got):\n%s", tc.mask, d)
		}
		enc := encodeService(svc)
		if !strings.Contains(enc, " "+tc.text+" ") {
			t.Errorf("%v: registry comment %q lacks %q", tc.mask, enc, tc.text)
		}
		got, err := decodeService(enc)
		if err != nil || got.PersistenceMask != tc.mask {
			t.Errorf("%v: registry round trip gives %v, %v", tc.mask, got.PersistenceMask, err)
		}
	}
}
