package ipvs

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/google/go-cmp/cmp"

	"tandem/internal/lvs"
)

// These tests need no kernel: they run everywhere.

func TestConvertRoundTrip(t *testing.T) {
	d := mustDesired(t, testServices()...)
	for _, key := range d.Keys() {
		vs, _ := d.Lookup(key)
		want := vs.Service
		want.Method = lvs.MethodUnset // not a kernel attribute
		if diff := cmp.Diff(want, fromService(toService(vs.Service)), cmpOpts); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", key, diff)
		}
		for _, dst := range vs.Dests {
			if diff := cmp.Diff(dst, fromDest(toDest(dst)), cmpOpts); diff != "" {
				t.Errorf("%v: real server round trip (-want +got):\n%s", key, diff)
			}
		}
	}
}

func TestSchedulerFlags(t *testing.T) {
	for _, tc := range []struct {
		sched lvs.Scheduler
		flags lvs.Flags
		want  ipvs.Flags
	}{
		{lvs.SourceHash, lvs.FlagSHFallback, ipvs.ServiceSchedulerOpt1},
		{lvs.SourceHash, lvs.FlagSHPort, ipvs.ServiceSchedulerOpt2},
		{lvs.MaglevHash, lvs.FlagMHFallback | lvs.FlagMHPort, ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2},
		{lvs.RoundRobin, lvs.FlagOnePacket, ipvs.ServiceOnePacket},
	} {
		s := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 1}, Scheduler: tc.sched, Flags: tc.flags}
		if got := toService(s).Flags; got != tc.want {
			t.Errorf("%s %v: kernel flags %v, want %v", tc.sched, tc.flags, got, tc.want)
		}
	}
	// A persistent service must carry IP_VS_SVC_F_PERSISTENT: the kernel
	// decides persistence by the flag, not by the timeout.
	s := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 1}, Scheduler: lvs.RoundRobin, PersistenceTimeout: 5}
	if toService(s).Flags&ipvs.ServicePersistent == 0 {
		t.Error("persistent service without the persistent flag")
	}
}

func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "tandem", "ipvs-services")
	s, err := loadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := mustDesired(t, testServices()...).Keys()
	for _, k := range keys {
		if added, err := s.add(k); err != nil || !added {
			t.Fatalf("add %v: %v, %v", k, added, err)
		}
	}
	if added, err := s.add(keys[0]); err != nil || added {
		t.Errorf("adding %v again: %v, %v", keys[0], added, err)
	}
	if err := s.remove(keys[1]); err != nil {
		t.Fatal(err)
	}
	reloaded, err := loadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if reloaded.has(k) != (i != 1) {
			t.Errorf("after reload, has(%v) = %v", k, reloaded.has(k))
		}
	}
	if err := reloaded.retain(map[lvs.ServiceKey]bool{keys[2]: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := slices.DeleteFunc(strings.Split(string(b), "\n"), func(l string) bool { return l == "" || l[0] == '#' })
	if want := []string{keys[2].String()}; !slices.Equal(lines, want) {
		t.Errorf("after retain the file holds %q, want %q", lines, want)
	}

	for _, bad := range []string{"tcp/10.0.0.1", "icmp/10.0.0.1:80", "fwm:0/ipv4", "fwm:3/ipx"} {
		if err := os.WriteFile(path, []byte(bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadStateFile(path); err == nil {
			t.Errorf("state file %q loaded without error", bad)
		}
	}
}

// TestTunnelToKernel checks the TUN encapsulation sent with a real server
// (IPVS_DEST_ATTR_TUN_TYPE, _TUN_PORT, _TUN_FLAGS, which cloudflare/ipvs
// encodes from these fields) and read back: the kernel's numbers
// (include/uapi/linux/ip_vs.h: IP_VS_CONN_F_TUNNEL_TYPE_IPIP 0, GUE 1, GRE
// 2; IP_VS_TUNNEL_ENCAP_FLAG_CSUM 1, REMCSUM 2), and nothing for NAT and DR,
// where the kernel would refuse a GUE type without a port and report back
// what it was given.
func TestTunnelToKernel(t *testing.T) {
	ap := netip.MustParseAddrPort
	gue := lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelRemCsum}
	for _, tc := range []struct {
		dest  lvs.Dest
		typ   ipvs.TunnelType
		port  uint16
		flags ipvs.TunnelFlags
	}{
		{lvs.Dest{Addr: ap("10.0.2.1:80"), Method: lvs.TUN}, ipvs.IPIP, 0, ipvs.TunnelEncapNoChecksum},
		{lvs.Dest{Addr: ap("10.0.2.1:80"), Method: lvs.TUN, Tunnel: gue}, ipvs.GUE, 6080, ipvs.TunnelEncapRemoteChecksum},
		{lvs.Dest{Addr: ap("10.0.2.1:80"), Method: lvs.TUN, Tunnel: lvs.Tunnel{Type: lvs.TunnelGUE, Port: 5555, Csum: lvs.TunnelCsumOn}}, ipvs.GUE, 5555, ipvs.TunnelEncapChecksum},
		{lvs.Dest{Addr: ap("[2001:db8::20]:80"), Method: lvs.TUN, Tunnel: lvs.Tunnel{Type: lvs.TunnelGRE, Csum: lvs.TunnelCsumOn}}, ipvs.GRE, 0, ipvs.TunnelEncapChecksum},
		{lvs.Dest{Addr: ap("10.0.1.1:80"), Method: lvs.DR, Tunnel: gue}, ipvs.IPIP, 0, ipvs.TunnelEncapNoChecksum},
		{lvs.Dest{Addr: ap("10.0.1.1:80"), Method: lvs.NAT, Tunnel: gue}, ipvs.IPIP, 0, ipvs.TunnelEncapNoChecksum},
	} {
		k := toDest(tc.dest)
		if k.TunnelType != tc.typ || k.TunnelPort != tc.port || k.TunnelFlags != tc.flags {
			t.Errorf("%v %v %+v: kernel gets type %v port %d flags %v, want %v %d %v",
				tc.dest.Addr, tc.dest.Method, tc.dest.Tunnel, k.TunnelType, k.TunnelPort, k.TunnelFlags, tc.typ, tc.port, tc.flags)
		}
		want := tc.dest
		if want.Method != lvs.TUN {
			want.Tunnel = lvs.Tunnel{}
		}
		if diff := cmp.Diff(want, fromDest(k), cmpOpts); diff != "" {
			t.Errorf("%v %v: read back (-want +got):\n%s", tc.dest.Addr, tc.dest.Method, diff)
		}
	}
	// A DR server the kernel reports with tunnel attributes (set by hand
	// with ipvsadm) reads back without them, as the configuration has it.
	k := toDest(lvs.Dest{Addr: ap("10.0.1.1:80"), Method: lvs.DR})
	k.TunnelType, k.TunnelPort = ipvs.GUE, 6080
	if got := fromDest(k).Tunnel; got != (lvs.Tunnel{}) {
		t.Errorf("DR server read back with tunnel %+v", got)
	}
}
