package nft

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// drLab is seed000's DR layout with the director dir1 holding the VIP (as
// VRRP would) and each real server holding it on lo and serving port 80
// with handler(its name).
func drLab(t *testing.T, handler func(name string) func(net.Conn)) (*lab.Lab, lab.Layout, netip.AddrPort) {
	t.Helper()
	y := lab.Seed000()
	l := lab.NewT(t, y.Spec())
	vip := netip.AddrPortFrom(y.VIPs[0], 80)
	addAddr(t, l.NSHandle(t, "dir1"), y.Iface, netip.PrefixFrom(vip.Addr(), 32))
	for _, r := range y.Reals {
		addAddr(t, l.NSHandle(t, r.Name), "lo", netip.PrefixFrom(vip.Addr(), 32))
		l.ServeT(t, r.Name, ":80", handler(r.Name))
	}
	return l, y, vip
}

// nameOnce is a drLab handler: the server's name, then close.
func nameOnce(name string) func(net.Conn) { return lab.NameOnce(name, false) }

// drFixture is drLab with a Kernel on dir1 and a wrr DR service on the
// VIP over rs1 (a) and rs2 (b), not yet programmed.
type drFixture struct {
	l    *lab.Lab
	k    *Kernel
	vip  netip.AddrPort
	svc  lvs.Service
	a, b netip.AddrPort
}

func newDRFixture(t *testing.T, handler func(name string) func(net.Conn)) *drFixture {
	t.Helper()
	checkHostUntouched(t)
	l, y, vip := drLab(t, handler)
	return &drFixture{l: l, k: newKernel(t, l.NSHandle(t, "dir1")), vip: vip,
		svc: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR},
		a:   netip.AddrPortFrom(y.Reals[0].Addr, 80), b: netip.AddrPortFrom(y.Reals[1].Addr, 80)}
}

// program reconciles the service with weights wa for a and wb for b.
func (f *drFixture) program(t *testing.T, wa, wb int) {
	t.Helper()
	reconcile(t, f.k, mustDesired(t, lvs.VirtualServer{Service: f.svc, Dests: []lvs.Dest{{Addr: f.a, Weight: wa}, {Addr: f.b, Weight: wb}}}))
}

// talk waits until every connection of cs has answered 10 more times or
// failed, and returns what each saw.
func talk(t *testing.T, cs *lab.Conns) []lab.ConnResult {
	t.Helper()
	if err := cs.WaitPast(cs.Results(), 10, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return cs.Results()
}

// TestDRFlowTable: established DR flows stay on their real server when a
// weight change gives their Maglev slots to another; new flows follow the
// new table; an inhibited server's flows move and its entries go.
func TestDRFlowTable(t *testing.T) {
	f := newDRFixture(t, lab.NameEcho)
	l, k, vip, a, b := f.l, f.k, f.vip, f.a, f.b
	f.program(t, 1, 1)

	cs, err := l.OpenConns("client", vip, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	on := map[string]int{}
	for _, r := range cs.Results() {
		on[r.Server]++
	}
	t.Logf("20 connections at 1:1: %v", on)
	if on["rs1"] == 0 || on["rs2"] == 0 {
		t.Fatalf("connections %v: want both servers used", on)
	}
	// One entry per connection, naming the server that answers it.
	flows, err := k.flows()
	if err != nil {
		t.Fatal(err)
	}
	byPort := map[uint16]netip.AddrPort{}
	for _, f := range flows {
		byPort[f.Port] = f.Server
	}
	for _, r := range cs.Results() {
		want := a
		if r.Server == "rs2" {
			want = b
		}
		if got := byPort[r.Local.Port()]; got != want {
			t.Errorf("flow entry of client port %d: %v, want %v (%s answers it)", r.Local.Port(), got, want, r.Server)
		}
	}
	// Established: the life of an established TCP connection's entry
	// (15 minutes from its last packet), not a new flow's minute.
	for _, f := range flows {
		if f.Expires <= flowSetupTimeout || f.Expires > 15*time.Minute {
			t.Errorf("flow entry %+v: expires in %v, want a little under 15m", f, f.Expires)
		}
	}

	// rs1 gives nearly all its slots to rs2: without the flow table its
	// connections would reach rs2, which resets them.
	f.program(t, 1, 100)
	for _, r := range talk(t, cs) {
		if r.Err != nil {
			t.Errorf("connection from port %d on %s after the weight change: %v", r.Local.Port(), r.Server, r.Err)
		}
	}
	more, err := l.OpenConns("client", vip, 20, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fresh := map[string]int{}
	for _, r := range more.Stop() {
		fresh[r.Server]++
	}
	t.Logf("new connections at 1:100: %v", fresh)
	if fresh["rs2"] < 18 {
		t.Errorf("new connections at 1:100: %v, want them (nearly) all on rs2", fresh)
	}

	// rs1 goes down (inhibited): its connections leave it (rs2 resets
	// them), rs2's stay, and no entry names rs1 any more, so that none
	// of the flows that moved comes back to it with it.
	f.program(t, 0, 100)
	talk(t, cs)
	for _, r := range cs.Stop() {
		switch {
		case r.Server == "rs2" && r.Err != nil:
			t.Errorf("connection from port %d on rs2 broke when rs1 went down: %v", r.Local.Port(), r.Err)
		case r.Server == "rs1" && r.Err == nil:
			t.Errorf("connection from port %d still reaches rs1 at weight 0", r.Local.Port())
		}
	}
	if flows, err = k.flows(); err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Server == a {
			t.Errorf("entry %+v names rs1 after it went down", f)
		}
	}
	f.program(t, 1, 1)
	if flows, err = k.flows(); err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Server == a {
			t.Errorf("entry %+v names rs1 once it is back", f)
		}
	}
}

// flowEntry is one entry of the DR flow table.
type flowEntry struct {
	Service lvs.ServiceKey
	Client  netip.Addr // masked for a persistent service
	Port    uint16     // 0 for a persistent service
	Server  netip.AddrPort
	Expires time.Duration // the entry's life left
}

// flows lists k's DR flow table, entries of services or servers it no
// longer knows left out.
func (k *Kernel) flows() ([]flowEntry, error) {
	if err := k.fresh(); err != nil {
		return nil, err
	}
	byNum := map[uint32]*service{}
	for _, s := range k.state {
		if s.Method == lvs.DR {
			byNum[s.num] = s
		}
	}
	var out []flowEntry
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		if !k.dr.flows {
			break
		}
		n := int(familyOf(f).addrLen)
		elems, err := k.conn.GetSetElements(&nftables.Set{Table: drTable(), Name: flowSet(f)})
		if err != nil {
			return nil, fmt.Errorf("lvs/nft: read %s: %w", flowSet(f), err)
		}
		for _, e := range elems {
			if len(e.Key) != 12+n {
				continue
			}
			s := byNum[nativeEndian.Uint32(e.Key[:4])]
			if s == nil {
				continue
			}
			id := nativeEndian.Uint32(e.Key[8+n:])
			for _, d := range s.dests {
				if d.id != id {
					continue
				}
				client, _ := netip.AddrFromSlice(e.Key[4 : 4+n])
				port := uint16(e.Key[4+n])<<8 | uint16(e.Key[5+n])
				out = append(out, flowEntry{Service: s.Key(), Client: client, Port: port, Server: d.Addr, Expires: e.Expires})
			}
		}
	}
	return out, nil
}

// TestDRPersistenceTemplate: with persistence_timeout a DR client's entry
// is its masked address (IPVS's template): its new connections stay on
// its server when a weight change gives the client's slot to another,
// and move once that server is inhibited.
func TestDRPersistenceTemplate(t *testing.T) {
	f := newDRFixture(t, nameOnce)
	f.svc.PersistenceTimeout, f.svc.PersistenceMask = 300, lvs.PrefixMask(lvs.IPv4, 24)
	l, k, vip := f.l, f.k, f.vip
	addrs := map[string]netip.AddrPort{"rs1": f.a, "rs2": f.b}
	program := func(w map[string]int) { t.Helper(); f.program(t, w["rs1"], w["rs2"]) }
	program(map[string]int{"rs1": 1, "rs2": 1})
	got := hits(t, l, vip, 5)
	if len(got) != 1 {
		t.Fatalf("persistent client spread over %v", got)
	}
	var home, other string
	for name := range got {
		home = name
	}
	other = map[string]string{"rs1": "rs2", "rs2": "rs1"}[home]
	flows, err := k.flows()
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1 || flows[0].Port != 0 || flows[0].Client != netip.MustParseAddr("172.16.7.0") || flows[0].Server != addrs[home] {
		t.Errorf("flow table %+v: want one template, client 172.16.7.0/24 on %s", flows, home)
	}
	// The other server gets 99% of the slots: the template keeps the
	// client where it is.
	program(map[string]int{home: 1, other: 100})
	if got := hits(t, l, vip, 10); got[home] != 10 {
		t.Errorf("persistent client after %s got 99%% of the slots: %v, want all on %s", other, got, home)
	}
	program(map[string]int{home: 0, other: 1})
	if got := hits(t, l, vip, 10); got[other] != 10 {
		t.Errorf("persistent client with %s inhibited: %v, want all on %s", home, got, other)
	}
}

// TestDRFlowTableFull: new flows that find the flow table full are still
// forwarded, by Maglev alone, as before there was a table.
func TestDRFlowTableFull(t *testing.T) {
	defer func(c uint32) { flowCapacity = c }(flowCapacity)
	flowCapacity = 3
	f := newDRFixture(t, nameOnce)
	f.program(t, 1, 1)
	got := hits(t, f.l, f.vip, 10) // fails the test if a connection fails
	flows, err := f.k.flows()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10 connections %v, %d flow entries", got, len(flows))
	if len(flows) != 3 {
		t.Errorf("%d flow entries, want the set's capacity, 3", len(flows))
	}
}

// TestDRFlowTableIDReused: a real server replaced by another in one
// batch (deleted, then the other added: the newcomer takes the leaver's
// id; the reconciler adds first, but Apply takes any order) inherits none
// of the leaver's flow entries.
func TestDRFlowTableIDReused(t *testing.T) {
	f := newDRFixture(t, lab.NameEcho)
	k, svc, a := f.k, f.svc, f.a
	x := netip.AddrPortFrom(netip.MustParseAddr("172.16.7.9"), 80) // on the segment, nobody there
	f.program(t, 1, 1)
	cs, err := f.l.OpenConns("client", f.vip, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cs.Stop()
	id := func(d netip.AddrPort) uint32 {
		t.Helper()
		_, s, err := k.find(svc.Key())
		if err != nil {
			t.Fatal(err)
		}
		return s.dests[d].id
	}
	idA := id(a)
	_, s, err := k.find(svc.Key())
	if err != nil {
		t.Fatal(err)
	}
	plan := lvs.Plan{{Key: s.Key(), Ops: []lvs.Op{
		{Kind: lvs.DelDest, Service: s.Service, Dest: s.dests[a].Dest},
		{Kind: lvs.AddDest, Service: s.Service, Dest: lvs.Dest{Addr: x, Weight: 1, Method: lvs.DR}},
	}}}
	if n, err := k.Apply(context.Background(), plan); err != nil || n != 2 {
		t.Fatalf("apply: %d ops, %v", n, err)
	}
	if idX := id(x); idX != idA {
		t.Fatalf("the newcomer has id %d, the leaver had %d: this test needs them equal", idX, idA)
	}
	flows, err := k.flows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Server == x {
			t.Errorf("entry %+v: the newcomer inherited the leaver's flow", f)
		}
	}
}

// TestDRFallbackShared: the rules that forward new flows while the flow
// table is full live in fallback chains shared by the services of equal
// pools, not in every service's chain; the chains go with their last
// service, also after a restart.
func TestDRFallbackShared(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}}}}})
	ns := l.NSHandle(t, "dir")
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	services := func(n int) *lvs.Desired { return twoPools(t, n) }
	rules := func(prefix string) (map[string]int, map[string]string) { return chainRules(t, c, prefix) }
	k := newKernel(t, ns)
	reconcile(t, k, services(4))
	fbs, _ := rules(fbPrefix)
	if len(fbs) != 2 {
		t.Fatalf("fallback chains for 4 services over 2 pools: %v, want 2", fbs)
	}
	for name, n := range fbs {
		if n != 3 {
			t.Errorf("%s: %d rules, want one per real server and a drop", name, n)
		}
	}
	svcs, gotos := rules("svc_")
	for name, n := range svcs {
		if n != 5 {
			t.Errorf("%s: %d rules, want 2 per real server and the goto", name, n)
		}
		if _, ok := fbs[gotos[name]]; !ok {
			t.Errorf("%s goes to %q, not a fallback chain", name, gotos[name])
		}
	}
	if gotos["svc_tcp_10.8.0.0_80"] != gotos["svc_tcp_10.8.0.2_80"] || gotos["svc_tcp_10.8.0.0_80"] == gotos["svc_tcp_10.8.0.1_80"] {
		t.Errorf("services of one pool share a chain, of two pools not: %v", gotos)
	}

	// A restarted Kernel knows which services use which chain.
	k2, err := New(WithNetNS(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k2.Close() })
	if rep := reconcile(t, k2, services(4)); len(rep.Ops) != 0 {
		t.Errorf("no-op reconcile after a restart sent %v", rep.Ops)
	}
	reconcile(t, k2, services(3)) // the second pool keeps one service
	if got, _ := rules(fbPrefix); len(got) != 2 {
		t.Errorf("fallback chains after deleting one of two services of a pool: %v, want 2", got)
	}
	reconcile(t, k2, services(1))
	got, _ := rules(fbPrefix)
	if _, ok := got[gotos["svc_tcp_10.8.0.0_80"]]; len(got) != 1 || !ok {
		t.Errorf("fallback chains with one service left: %v, want its own, %s", got, gotos["svc_tcp_10.8.0.0_80"])
	}
	reconcile(t, k2, services(0))
	if got, _ := rules(""); len(got) != 0 {
		t.Errorf("chains left with no service: %v", got)
	}
}

// chainRules returns the number of rules of each chain of the DR table
// whose name starts with prefix, and the chain each one's goto names.
func chainRules(t *testing.T, c *nftables.Conn, prefix string) (map[string]int, map[string]string) {
	t.Helper()
	chains, err := c.ListChainsOfTableFamily(drTable().Family)
	if err != nil {
		t.Fatal(err)
	}
	n, gotos := map[string]int{}, map[string]string{}
	for _, ch := range chains {
		if ch.Table.Name != drTable().Name || !strings.HasPrefix(ch.Name, prefix) {
			continue
		}
		rs, err := c.GetRules(drTable(), ch)
		if err != nil {
			t.Fatal(err)
		}
		n[ch.Name] = len(rs)
		for _, r := range rs {
			for _, e := range r.Exprs {
				if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictGoto {
					gotos[ch.Name] = v.Chain
				}
			}
		}
	}
	return n, gotos
}

// TestDRFallbackRouteMoved: a restarted Kernel works a service's
// fallback chain out again from its real servers' routes; if one moved to
// another interface meanwhile, it finds another name, and the chain the
// service's rules still go to must not be deleted with the other
// services of its pool (the kernel would refuse the transaction).
func TestDRFallbackRouteMoved(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{
		{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}},
		{Name: "eth1", Switch: "s2"}}}}})
	ns := l.NSHandle(t, "dir")
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	reconcile(t, newKernel(t, ns), twoPools(t, 4))
	_, before := chainRules(t, c, "svc_")
	addAddr(t, ns, "eth1", netip.MustParsePrefix("10.9.0.14/29")) // 10.9.0.9 is now reached on eth1
	k := newKernel(t, ns)
	reconcile(t, k, twoPools(t, 1))
	fbs, after := chainRules(t, c, "")
	first := "svc_tcp_10.8.0.0_80"
	if _, ok := fbs[after[first]]; !ok || after[first] != before[first] {
		t.Errorf("%s goes to %q, before the restart to %q; chains %v", first, after[first], before[first], fbs)
	}
	reconcile(t, k, twoPools(t, 0))
	if got, _ := chainRules(t, c, ""); len(got) != 0 {
		t.Errorf("chains left with no service: %v", got)
	}
}
