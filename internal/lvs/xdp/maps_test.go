package xdp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lvs"
)

// TestDefinitionsRoundTrip: what a restarted Kernel reads back from the
// definition maps is what was programmed, for both families, every
// scheduler name and a persistence granularity that is not a prefix.
func TestDefinitionsRoundTrip(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::5")
	for _, s := range []lvs.Service{
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.WeightedRoundRobin,
			Method: lvs.DR, PersistenceTimeout: 300, PersistenceMask: netip.MustParseAddr("255.0.255.0")},
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.UDP, VIP: v6, Port: 53}, Scheduler: lvs.LocalityLeastConnReplicated,
			Method: lvs.DR, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 128)},
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.UDP, VIP: vip.Addr(), Port: 0}, Scheduler: lvs.MaglevHash,
			Method: lvs.DR, Flags: lvs.FlagMHPort | lvs.FlagMHFallback, PersistenceTimeout: 60, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 24)},
	} {
		got, err := decodeService(encodeService(s))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("service (-want +got):\n%s", diff)
		}
	}
	for _, d := range []lvs.Dest{
		{Addr: rs1, Weight: 3, Method: lvs.DR, LowerThreshold: 2, UpperThreshold: 9},
		{Addr: netip.MustParseAddrPort("[2001:db8::7]:8080"), Weight: 0, Method: lvs.DR},
		{Addr: rs2, Weight: 2, Method: lvs.TUN, Tunnel: lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelRemCsum}},
		{Addr: rs2, Weight: 2, Method: lvs.TUN},
	} {
		if got := decodeDest(encodeDest(4, d)); got != d {
			t.Errorf("dest %+v read back as %+v", d, got)
		}
		if r := encodeDest(4, d); r.Svc != 4 {
			t.Errorf("dest %v: service id %d, want 4", d.Addr, r.Svc)
		}
	}
	if _, err := decodeService(lbSvcDef{Family: 7}); err == nil {
		t.Error("a definition of family 7 decoded")
	}
}

// TestServiceValue: the program hashes what the nftables DR path hashes
// (client address and port; the client address for sh and mh, masked with
// persistence; the VIP for dh), keeps entries for the timeouts of IPVS
// (lvs_timeouts, else its defaults), and finds the port in network byte
// order.
func TestServiceValue(t *testing.T) {
	base := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Method: lvs.DR,
		PersistenceMask: lvs.PrefixMask(lvs.IPv4, 32)}
	with := func(f func(*lvs.Service)) *service {
		s := base
		f(&s)
		return &service{Service: s, id: 3, row: 7}
	}
	mask24 := [16]byte{255, 255, 255}
	timeouts := lvs.Timeouts{TCP: 2 * time.Hour, TCPFin: 2 * time.Minute, UDP: time.Minute}
	for _, tc := range []struct {
		name     string
		s        *service
		timeouts lvs.Timeouts // lvs_timeouts
		key      uint32
		mask     [16]byte
		timeout  time.Duration
	}{
		{"wrr", with(func(s *lvs.Service) { s.Scheduler = lvs.WeightedRoundRobin }), lvs.Timeouts{}, keySaddrSport, [16]byte{}, 15 * time.Minute},
		{"rr udp", with(func(s *lvs.Service) { s.Scheduler = lvs.RoundRobin; s.Protocol = lvs.UDP }), lvs.Timeouts{}, keySaddrSport, [16]byte{}, 5 * time.Minute},
		{"sh", with(func(s *lvs.Service) { s.Scheduler = lvs.SourceHash }), lvs.Timeouts{}, keySaddr, [16]byte{}, 15 * time.Minute},
		{"sh-port", with(func(s *lvs.Service) { s.Scheduler = lvs.SourceHash; s.Flags = lvs.FlagSHPort }), lvs.Timeouts{}, keySaddrSport, [16]byte{}, 15 * time.Minute},
		{"mh-port", with(func(s *lvs.Service) { s.Scheduler = lvs.MaglevHash; s.Flags = lvs.FlagMHPort }), lvs.Timeouts{}, keySaddrSport, [16]byte{}, 15 * time.Minute},
		{"dh", with(func(s *lvs.Service) { s.Scheduler = lvs.DestinationHash }), lvs.Timeouts{}, keyDaddr, [16]byte{}, 15 * time.Minute},
		{"lblc", with(func(s *lvs.Service) { s.Scheduler = lvs.LocalityLeastConn }), lvs.Timeouts{}, keyDaddr, [16]byte{}, 15 * time.Minute},
		{"persistent dh", with(func(s *lvs.Service) {
			s.Scheduler = lvs.DestinationHash
			s.PersistenceTimeout = 300
			s.PersistenceMask = lvs.PrefixMask(lvs.IPv4, 24)
		}), lvs.Timeouts{}, keySaddr, mask24, 300 * time.Second},
		// lvs_timeouts tcp 7200 tcpfin 120 udp 60: the connection
		// timeout of the service's protocol; persistence keeps its own.
		{"wrr, lvs_timeouts", with(func(s *lvs.Service) { s.Scheduler = lvs.WeightedRoundRobin }), timeouts, keySaddrSport, [16]byte{}, 2 * time.Hour},
		{"rr udp, lvs_timeouts", with(func(s *lvs.Service) { s.Scheduler = lvs.RoundRobin; s.Protocol = lvs.UDP }), timeouts, keySaddrSport, [16]byte{}, time.Minute},
		{"rr udp, lvs_timeouts tcp only", with(func(s *lvs.Service) { s.Scheduler = lvs.RoundRobin; s.Protocol = lvs.UDP }), lvs.Timeouts{TCP: time.Hour}, keySaddrSport, [16]byte{}, 5 * time.Minute},
		{"persistent, lvs_timeouts", with(func(s *lvs.Service) {
			s.Scheduler = lvs.WeightedRoundRobin
			s.PersistenceTimeout = 50
		}), timeouts, keySaddr, [16]byte{255, 255, 255, 255}, 50 * time.Second},
	} {
		v := svcVal(tc.s, 251, tc.timeouts)
		if v.Key != tc.key || v.Mask != tc.mask || v.Timeout != uint64(tc.timeout) || v.Id != 3 || v.Row != 7 || v.Size != 251 {
			t.Errorf("%s: %+v: want key %d, mask %v, timeout %v", tc.name, v, tc.key, tc.mask[:4], tc.timeout)
		}
	}
	k := svcKey(base.ServiceKey)
	if b := [2]byte{byte(k.Port), byte(k.Port >> 8)}; b != [2]byte{0, 80} || k.Proto != 6 || k.Family != 2 || k.Addr != [16]byte{10, 81, 9, 1} {
		t.Errorf("key %+v: want port 80 in network order (bytes 0 80 in memory)", k)
	}
}

// TestNextState: a batch applied to a service's state: ops in order, a
// real server that stays keeps its id, generation and MAC, a refused op
// is named by its index and leaves the current state alone.
func TestNextState(t *testing.T) {
	svc := (&fixture{vip: vip, rs1: rs1, rs2: rs2}).wrr(1, 1).Service
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	cur := &service{Service: svc, id: 2, row: 5, dests: map[netip.AddrPort]*dest{
		rs1: {Dest: lvs.Dest{Addr: rs1, Weight: 1, Method: lvs.DR}, id: 9, gen: 4, ifindex: 3, mac: mac},
	}}
	b := lvs.Batch{Key: svc.Key(), Ops: []lvs.Op{
		{Kind: lvs.AddDest, Service: svc, Dest: lvs.Dest{Addr: rs2, Weight: 2, Method: lvs.DR}},
		{Kind: lvs.UpdateDest, Service: svc, Dest: lvs.Dest{Addr: rs1, Weight: 5, Method: lvs.DR}},
	}}
	next, _, err := nextState(cur, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := next.dests[rs1]; d.Weight != 5 || d.id != 9 || d.gen != 4 || d.ifindex != 3 || d.mac.String() != mac.String() {
		t.Errorf("updated real server %+v: want weight 5 with id 9, gen 4, ifindex 3, its MAC", d)
	}
	if d := next.dests[rs2]; d == nil || d.id != 0 || d.Weight != 2 {
		t.Errorf("added real server %+v: want weight 2, no id yet", d)
	}
	if next.id != 2 || next.row != 5 || cur.dests[rs1].Weight != 1 || len(cur.dests) != 1 {
		t.Errorf("next %+v, cur %+v: want the same id and row, cur unchanged", next, cur)
	}

	b.Ops = append(b.Ops, lvs.Op{Kind: lvs.DelDest, Service: svc, Dest: lvs.Dest{Addr: rs1}},
		lvs.Op{Kind: lvs.AddDest, Service: svc, Dest: lvs.Dest{Addr: rs1, Weight: 1, Method: lvs.NAT}})
	if _, i, err := nextState(cur, b); err == nil || i != 3 {
		t.Errorf("a NAT real server: op %d, %v; want op 3 refused", i, err)
	}
	if next, _, err := nextState(cur, lvs.Batch{Key: svc.Key(), Ops: []lvs.Op{{Kind: lvs.DelService, Service: svc}}}); err != nil || next != nil {
		t.Errorf("del-service: %v, %v; want nothing left", next, err)
	}
	if _, i, err := nextState(nil, lvs.Batch{Key: svc.Key(), Ops: []lvs.Op{{Kind: lvs.DelDest, Service: svc, Dest: lvs.Dest{Addr: rs1}}}}); err == nil || i != 0 {
		t.Errorf("del-dest of no service: op %d, %v; want refused", i, err)
	}
}
