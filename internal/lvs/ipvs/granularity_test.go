package ipvs

import (
	"net/netip"
	"testing"

	"github.com/cloudflare/ipvs/netmask"

	"tandem/internal/lvs"
)

// TestPersistenceMaskToKernel checks that the persistence mask reaches
// IPVS as given, a non-prefix IPv4 mask included (the kernel ANDs it with
// the client address, ip_vs_sched_persist), and is read back the same.
func TestPersistenceMaskToKernel(t *testing.T) {
	for _, tc := range []struct {
		svc  lvs.Service
		want netmask.Mask
	}{
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceMask: netip.MustParseAddr("255.0.255.0")},
			netmask.MaskFrom4([4]byte{255, 0, 255, 0})},
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: lvs.RoundRobin},
			netmask.MaskFrom(32, 32)},
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.TCP, VIP: netip.MustParseAddr("2001:db8::1"), Port: 80},
			Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 48)},
			netmask.MaskFrom(48, 128)},
	} {
		k := toService(tc.svc)
		if k.Netmask != tc.want {
			t.Errorf("%v: netmask %v, want %v", tc.svc.PersistenceMask, k.Netmask, tc.want)
		}
		back := fromService(k)
		want := tc.svc.PersistenceMask
		if !want.IsValid() {
			want = lvs.PrefixMask(tc.svc.Family, 32)
		}
		if back.PersistenceMask != want {
			t.Errorf("%v: read back as %v", tc.svc.PersistenceMask, back.PersistenceMask)
		}
	}
}
