package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"pgregory.net/rapid"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// dirView is what decides where a DR director sends a flow: the hash it
// computes (key, seed, modulus: the schedule expressions) and, per slot,
// the real server's address. Ids, service numbers and slot table ids are
// left out: they name objects inside one director's tables and depend on
// the order things happened there, but no packet's fate does.
type dirView struct {
	Schedule [][]byte
	Slots    []netip.AddrPort
}

func viewOf(t *rapid.T, s *service) dirView {
	l, err := layoutOf(s)
	if err != nil {
		t.Fatal(err)
	}
	var v dirView
	for _, e := range l.schedule(reg32 + 1) {
		b, err := expr.Marshal(byte(drTable().Family), e)
		if err != nil {
			t.Fatal(err)
		}
		v.Schedule = append(v.Schedule, b)
	}
	for _, p := range l.pos {
		v.Slots = append(v.Slots, l.rs[p].Addr)
	}
	return v
}

// apply runs ops through nextState, as Apply does.
func apply(t *rapid.T, s *service, ops ...lvs.Op) *service {
	for _, op := range ops {
		next, err := nextState(s, op)
		if err != nil {
			t.Fatalf("%v: %v", op, err)
		}
		s = next
	}
	return s
}

// TestDRTableIndependentOfHistory: two directors given the same healthy
// set of (real server, weight) forward every flow to the same server,
// whatever the order of the configuration, the order the servers came up
// in, the servers that went down and came back (which changes their ids),
// weights that changed and changed back, and servers that came and went.
// That is what lets a flow survive a failover with no state shared
// between the directors (issue 13, item 3).
func TestDRTableIndependentOfHistory(t *testing.T) {
	scheds := []lvs.Scheduler{lvs.RoundRobin, lvs.WeightedRoundRobin, lvs.LeastConn, lvs.WeightedLeastConn,
		lvs.SourceHash, lvs.MaglevHash, lvs.DestinationHash, lvs.WeightedFailover}
	rapid.Check(t, func(t *rapid.T) {
		six := rapid.Bool().Draw(t, "ipv6")
		svc := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: rapid.SampledFrom(scheds).Draw(t, "scheduler"), Method: lvs.DR}
		if six {
			svc.Family, svc.VIP = lvs.IPv6, netip.MustParseAddr("2001:db8::1")
		}
		if rapid.Bool().Draw(t, "persistent") {
			svc.PersistenceTimeout = 300
			svc.PersistenceMask = lvs.PrefixMask(svc.Family, rapid.SampledFrom([]int{24, 32, 64, 128}).Draw(t, "mask")%(svc.VIP.BitLen()+1))
		}
		hosts := rapid.SliceOfNDistinct(rapid.IntRange(2, 250), 1, 12, rapid.ID[int]).Draw(t, "hosts")
		final := make([]lvs.Dest, len(hosts))
		for i, h := range hosts {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(h)})
			if six {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(h)})
			}
			final[i] = lvs.Dest{Addr: netip.AddrPortFrom(a, 80), Weight: rapid.IntRange(0, 10).Draw(t, "weight"), Method: lvs.DR}
		}
		op := func(k lvs.OpKind, d lvs.Dest) lvs.Op { return lvs.Op{Kind: k, Service: svc, Dest: d} }

		// Director A: the configuration's order, every server up at once.
		a := apply(t, nil, op(lvs.AddService, lvs.Dest{}))
		for _, d := range final {
			a = apply(t, a, op(lvs.AddDest, d))
		}

		// Director B: another order, and a history.
		b := apply(t, nil, op(lvs.AddService, lvs.Dest{}))
		extra := lvs.Dest{Addr: netip.AddrPortFrom(final[0].Addr.Addr().Next(), 81), Weight: 5, Method: lvs.DR}
		if rapid.Bool().Draw(t, "transient server first") {
			b = apply(t, b, op(lvs.AddDest, extra)) // takes id 0, deleted below
		}
		for _, d := range rapid.Permutation(final).Draw(t, "up order") {
			first := d
			first.Weight = rapid.IntRange(0, 10).Draw(t, "weight at start")
			b = apply(t, b, op(lvs.AddDest, first))
		}
		for _, d := range rapid.Permutation(final).Draw(t, "history order") {
			switch rapid.IntRange(0, 3).Draw(t, "event") {
			case 1: // went down (removed) and came back: a new id
				b = apply(t, b, op(lvs.DelDest, d), op(lvs.AddDest, d))
			case 2: // inhibited, then up again
				down := d
				down.Weight = 0
				b = apply(t, b, op(lvs.UpdateDest, down))
			}
			b = apply(t, b, op(lvs.UpdateDest, d))
		}
		if _, ok := b.dests[extra.Addr]; ok {
			b = apply(t, b, op(lvs.DelDest, extra))
		}
		if rapid.Bool().Draw(t, "reload") { // an update-service, as a reload that changes nothing sends
			b = apply(t, b, op(lvs.UpdateService, lvs.Dest{}))
		}
		// Different numbers and slot tables, as two directors have.
		a.num, a.table = 3, 1
		b.num, b.table = 7, 9

		if !slices.EqualFunc(a.sortedDests(), b.sortedDests(), func(x, y lvs.Dest) bool { return x == y }) {
			t.Fatalf("the two directors' pools differ: %v, %v", a.sortedDests(), b.sortedDests())
		}
		va, vb := viewOf(t, a), viewOf(t, b)
		if diff := cmp.Diff(va, vb, cmpOpts); diff != "" {
			t.Fatalf("the directors forward differently (-A +B):\n%s", diff)
		}
	})
}

// maglevElems lists k's maglev set, sorted.
func maglevElems(t *testing.T, k *Kernel) []string {
	t.Helper()
	elems, err := k.conn.GetSetElements(&nftables.Set{Table: drTable(), Name: maglevSet})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range elems {
		out = append(out, fmt.Sprintf("%x", e.Key))
	}
	slices.Sort(out)
	return out
}

// TestDRSameElementsOnBothDirectors: two directors' kernels, one
// programmed in one step, the other through a history (another order,
// a server down and back, a weight changed and restored, a service that
// came and went), hold the same maglev set, element for element, and
// give each service the same slot table.
func TestDRSameElementsOnBothDirectors(t *testing.T) {
	checkHostUntouched(t)
	y := lab.Seed000()
	l := lab.NewT(t, y.Spec())
	k1, k2 := newKernel(t, l.NSHandle(t, "dir1")), newKernel(t, l.NSHandle(t, "dir2"))
	vs := func(port uint16, sched lvs.Scheduler, weights ...int) lvs.VirtualServer {
		v := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: y.VIPs[0], Port: port},
			Scheduler: sched, Method: lvs.DR}}
		for i, w := range weights {
			v.Dests = append(v.Dests, lvs.Dest{Addr: netip.AddrPortFrom(y.Reals[i].Addr, port), Weight: w, Method: lvs.DR})
		}
		return v
	}
	final := []lvs.VirtualServer{vs(80, lvs.WeightedRoundRobin, 3, 1), vs(443, lvs.RoundRobin, 1, 1), vs(8080, lvs.SourceHash, 0, 2)}
	reconcile(t, k1, mustDesired(t, final...))

	reconcile(t, k2, mustDesired(t, vs(9000, lvs.RoundRobin, 5, 1), vs(8080, lvs.SourceHash, 1), vs(443, lvs.RoundRobin, 0, 1)))
	reconcile(t, k2, mustDesired(t, vs(8080, lvs.SourceHash, 2, 2), vs(443, lvs.RoundRobin, 1), vs(80, lvs.WeightedRoundRobin, 1, 1)))
	reconcile(t, k2, mustDesired(t, vs(8080, lvs.SourceHash, 0, 2), vs(443, lvs.RoundRobin, 1, 1), vs(80, lvs.WeightedRoundRobin, 3, 1)))

	if diff := cmp.Diff(maglevElems(t, k1), maglevElems(t, k2)); diff != "" {
		t.Errorf("maglev sets differ (-dir1 +dir2):\n%s", diff)
	}
	for _, v := range final {
		_, s1, err := k1.find(v.Service.Key())
		if err != nil {
			t.Fatal(err)
		}
		_, s2, err := k2.find(v.Service.Key())
		if err != nil {
			t.Fatal(err)
		}
		if s1.table != s2.table || s1.table == 0 {
			t.Errorf("%v: slot table %d on dir1, %d on dir2", v.Service.Key(), s1.table, s2.table)
		}
	}
}
