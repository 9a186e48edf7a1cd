package nft

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

var cmpOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

func TestRegistryRoundTrip(t *testing.T) {
	svcs := []lvs.Service{
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: lvs.WeightedRoundRobin, Method: lvs.NAT, PersistenceTimeout: 300, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 24)},
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.UDP, VIP: netip.MustParseAddr("2001:db8::5"), Port: 53},
			Scheduler: lvs.SourceHash, Flags: lvs.FlagSHPort, Method: lvs.DR, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 128)},
		{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 42}, Scheduler: lvs.RoundRobin, Method: lvs.NAT, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 32)},
	}
	for _, s := range svcs {
		got, err := decodeService(encodeService(s))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got, cmpOpts); diff != "" {
			t.Errorf("service %v round trip (-want +got):\n%s", s.Key(), diff)
		}
	}
	d := lvs.Dest{Addr: netip.MustParseAddrPort("[2001:db8::7]:8080"), Weight: 2147483647, Method: lvs.DR, LowerThreshold: 5, UpperThreshold: 10}
	got, err := decodeDest(encodeDest(d))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got, cmpOpts); diff != "" {
		t.Errorf("dest round trip (-want +got):\n%s", diff)
	}
	// nft(8) prints comments of up to 128 bytes.
	longest := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.SCTP,
		VIP: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Port: 65535, FWMark: 1<<32 - 1},
		Scheduler: lvs.LocalityLeastConnReplicated, Flags: 31, PersistenceTimeout: 1<<32 - 1, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 128), Method: lvs.NAT}
	longestDest := lvs.Dest{Addr: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535"),
		Weight: 2147483647, Method: lvs.NAT, LowerThreshold: 1<<32 - 1, UpperThreshold: 1<<32 - 1}
	for _, c := range []string{encodeService(longest), encodeDest(longestDest)} {
		if len(c) > 128 {
			t.Errorf("comment of %d bytes: %s", len(c), c)
		}
	}
	for _, bad := range []string{"", "rs addr=1.2.3.4:80", "svc af=x p=6", "rs addr=nope weight=1 method=nat lower=0 upper=0"} {
		if _, err := decodeDest(bad); err == nil {
			t.Errorf("decodeDest(%q) = nil error", bad)
		}
	}
}

func TestSlots(t *testing.T) {
	a := dest{Dest: lvs.Dest{Addr: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 3}, id: 0}
	b := dest{Dest: lvs.Dest{Addr: netip.MustParseAddrPort("10.0.0.3:80"), Weight: 1}, id: 1}
	z := dest{Dest: lvs.Dest{Addr: netip.MustParseAddrPort("10.0.0.4:80"), Weight: 0}, id: 2}
	svc := func(sched lvs.Scheduler, m lvs.Method) *service {
		return &service{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP,
			VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: sched, Method: m}}
	}
	for _, tc := range []struct {
		sched lvs.Scheduler
		want  []uint32
	}{
		{lvs.RoundRobin, []uint32{0, 1}},
		{lvs.LeastConn, []uint32{0, 1}},
		{lvs.WeightedRoundRobin, []uint32{0, 0, 0, 1}},
		{lvs.WeightedLeastConn, []uint32{0, 0, 0, 1}},
		{lvs.WeightedFailover, []uint32{0}},
	} {
		got, err := slots(svc(tc.sched, lvs.NAT), []dest{a, b, z})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: slots %v, want %v", tc.sched, got, tc.want)
		}
	}
	// Hashing schedulers and DR: a weighted Maglev table of 251 slots.
	for _, s := range []*service{svc(lvs.SourceHash, lvs.NAT), svc(lvs.RoundRobin, lvs.DR), svc(lvs.WeightedRoundRobin, lvs.DR)} {
		got, err := slots(s, []dest{a, b, z})
		if err != nil {
			t.Fatal(err)
		}
		n := map[uint32]int{}
		for _, id := range got {
			n[id]++
		}
		if len(got) != 251 || n[2] != 0 {
			t.Errorf("%s/%v: %d slots, weight-0 dest has %d", s.Scheduler, s.Method, len(got), n[2])
		}
		if s.Scheduler == lvs.RoundRobin && (n[0] < 120 || n[0] > 131) {
			t.Errorf("%s/%v: shares %v, want equal", s.Scheduler, s.Method, n)
		}
		if s.Scheduler != lvs.RoundRobin && (n[0] < 185 || n[0] > 192) {
			t.Errorf("%s/%v: shares %v, want 3:1", s.Scheduler, s.Method, n)
		}
	}
}

func newKernel(t *testing.T, ns netns.NsHandle) *Kernel {
	t.Helper()
	k, err := New(WithNetNS(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// hostTables lists the host namespace's nftables tables, which no test here
// may change.
func hostTables(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	return tableNames(t, c)
}

// tableNames lists the names of the tables c sees, sorted.
func tableNames(t *testing.T, c *nftables.Conn) []string {
	t.Helper()
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range ts {
		out = append(out, tb.Name)
	}
	slices.Sort(out)
	return out
}

// checkHostUntouched skips t unless it can build labs (root), and checks at
// the end that the host's tables are as they were.
func checkHostUntouched(t *testing.T) {
	t.Helper()
	lab.RequireRoot(t)
	before := hostTables(t)
	t.Cleanup(func() {
		after := hostTables(t)
		if !slices.Equal(before, after) || slices.Contains(after, TableName) {
			t.Errorf("host nftables tables changed: %v -> %v", before, after)
		}
	})
}

func mustDesired(t *testing.T, vss ...lvs.VirtualServer) *lvs.Desired {
	t.Helper()
	d, err := lvs.NewDesired(vss...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkState compares what k reads back with d.
func checkState(t *testing.T, k *Kernel, d *lvs.Desired) {
	t.Helper()
	got, err := k.Services()
	if err != nil {
		t.Fatal(err)
	}
	var want []lvs.Service
	for _, key := range d.Keys() {
		vs, _ := d.Lookup(key)
		want = append(want, vs.Service)
		dests, err := k.Dests(key)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(vs.Dests, dests, cmpOpts); diff != "" {
			t.Errorf("%v dests (-want +got):\n%s", key, diff)
		}
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

// ours is the reconciler's ownership predicate for this backend: its
// tables hold nothing but Tandem's services.
func ours(lvs.ServiceKey) bool { return true }

func reconcile(t *testing.T, k *Kernel, d *lvs.Desired) lvs.Report {
	t.Helper()
	rep, err := lvs.NewReconciler(k, ours).Reconcile(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var (
	vip1 = netip.MustParseAddr("10.9.0.100")
	rs1  = netip.MustParseAddrPort("10.9.0.2:8080")
	rs2  = netip.MustParseAddrPort("10.9.0.3:8080")
)

func TestKernelRoundTrip(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("fd09::1/64")}}}}}})
	ns := l.NSHandle(t, "dir")
	k := newKernel(t, ns)

	nat := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip1, Port: 80},
			Scheduler: lvs.WeightedRoundRobin, PersistenceTimeout: 300, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 24)},
		Dests: []lvs.Dest{{Addr: rs1, Weight: 3}, {Addr: rs2, Weight: 0, UpperThreshold: 9}},
	}
	dr := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.UDP, VIP: vip1, Port: 53},
			Scheduler: lvs.SourceHash, Method: lvs.DR, Flags: lvs.FlagSHPort},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.9.0.2:53"), Weight: 1}, {Addr: netip.MustParseAddrPort("10.9.0.3:53"), Weight: 1}},
	}
	fwm := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 7}, Scheduler: lvs.RoundRobin, PersistenceTimeout: 60},
		Dests:   []lvs.Dest{{Addr: netip.MustParseAddrPort("10.9.0.2:0"), Weight: 1}},
	}
	v6 := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.MustParseAddr("fd09::100"), Port: 443},
			Scheduler: lvs.MaglevHash},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("[fd09::2]:443"), Weight: 1}, {Addr: netip.MustParseAddrPort("[fd09::3]:443"), Weight: 2}},
	}
	want := mustDesired(t, nat, dr, fwm, v6)
	rep := reconcile(t, k, want)
	if n := len(rep.Ops); n != 4+7 {
		t.Errorf("first reconcile: %d ops, want 11", n)
	}
	checkState(t, k, want)
	if rep := reconcile(t, k, want); len(rep.Ops) != 0 {
		t.Errorf("second reconcile sent %v", rep.Ops)
	}

	// A new process (the old one crashed) finds everything.
	k2 := newKernel(t, ns)
	checkState(t, k2, want)
	if rep := reconcile(t, k2, want); len(rep.Ops) != 0 {
		t.Errorf("reconcile after restart sent %v", rep.Ops)
	}

	// Changes through the restarted instance: weights, a dest replaced,
	// persistence off, a service gone.
	nat.Dests = []lvs.Dest{{Addr: rs1, Weight: 1}, {Addr: netip.MustParseAddrPort("10.9.0.4:8080"), Weight: 2}}
	nat.Service.PersistenceTimeout = 0
	want = mustDesired(t, nat, dr, v6)
	rep = reconcile(t, k2, want)
	for _, kind := range []lvs.OpKind{lvs.UpdateService, lvs.AddDest, lvs.UpdateDest, lvs.DelDest, lvs.DelService} {
		if rep.Count(kind) != 1 {
			t.Errorf("reconcile of changes: %d %v, want 1 (ops %v)", rep.Count(kind), kind, rep.Ops)
		}
	}
	checkState(t, k2, want)
	checkState(t, k, want)

	stats, err := k2.Stats(nat.Service.Key())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].Addr != rs1 {
		t.Errorf("stats %+v", stats)
	}

	// Refusals name the service.
	tun := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip1, Port: 25},
		Scheduler: lvs.RoundRobin, Method: lvs.TUN}, Dests: []lvs.Dest{{Addr: rs1, Weight: 1}}}
	if _, err := lvs.NewReconciler(k2, ours).Reconcile(context.Background(), mustDesired(t, nat, dr, v6, tun)); err == nil {
		t.Error("a TUN service was accepted")
	} else {
		t.Logf("TUN refused: %v", err)
	}

	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := c.ListTables(); err != nil || len(ts) != 0 {
		t.Errorf("after Close: tables %v, %v", ts, err)
	}
	if svcs, err := k.Services(); err != nil || len(svcs) != 0 {
		t.Errorf("after Close: services %v, %v", svcs, err)
	}
}

// hits opens n connections from the client to vip and counts the answers
// by server.
func hits(t *testing.T, l *lab.Lab, vip netip.AddrPort, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		var who []byte
		err := l.Do("client", func() error {
			c, err := net.DialTimeout("tcp", vip.String(), 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			who, err = io.ReadAll(c)
			return err
		})
		if err != nil {
			t.Fatalf("connection to %v: %v", vip, err)
		}
		out[strings.TrimSuffix(string(who), "\n")]++
	}
	return out
}

func TestNATEndToEnd(t *testing.T) {
	checkHostUntouched(t)
	y := lab.Seed003NAT()
	l := lab.NewT(t, y.Spec())
	l.ServeName(t, "rs1", ":8080", false)
	l.ServeName(t, "rs2", ":8080", false)
	k := newKernel(t, l.NSHandle(t, "dir1"))

	vip := netip.AddrPortFrom(y.VIPs[0], 80)
	r1 := netip.AddrPortFrom(y.Reals[0].Addr, 8080)
	r2 := netip.AddrPortFrom(y.Reals[1].Addr, 8080)
	vs := func(sched lvs.Scheduler, w1, w2 int, persist uint32) *lvs.Desired {
		return mustDesired(t, lvs.VirtualServer{
			Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()},
				Scheduler: sched, PersistenceTimeout: persist},
			Dests: []lvs.Dest{{Addr: r1, Weight: w1}, {Addr: r2, Weight: w2}},
		})
	}
	for _, tc := range []struct {
		name     string
		want     *lvs.Desired
		n        int
		rs1, rs2 int
	}{
		{"rr", vs(lvs.RoundRobin, 1, 1, 0), 100, 50, 50},
		{"wrr 3:1", vs(lvs.WeightedRoundRobin, 3, 1, 0), 100, 75, 25},
		{"wrr weight 0", vs(lvs.WeightedRoundRobin, 3, 0, 0), 40, 40, 0},
		{"wlc 1:3", vs(lvs.WeightedLeastConn, 1, 3, 0), 40, 10, 30},
	} {
		reconcile(t, k, tc.want)
		got := hits(t, l, vip, tc.n)
		t.Logf("%s: rs1 %d rs2 %d of %d", tc.name, got["rs1"], got["rs2"], tc.n)
		if got["rs1"] != tc.rs1 || got["rs2"] != tc.rs2 {
			t.Errorf("%s: got %v, want rs1 %d rs2 %d", tc.name, got, tc.rs1, tc.rs2)
		}
	}

	// Persistence: every connection of the client goes to one server,
	// also after a weight change that keeps that server in the pool.
	reconcile(t, k, vs(lvs.RoundRobin, 1, 1, 300))
	got := hits(t, l, vip, 20)
	t.Logf("rr persistent: %v", got)
	if len(got) != 1 {
		t.Errorf("persistence: connections spread over %v", got)
	}
	reconcile(t, k, vs(lvs.RoundRobin, 2, 2, 300))
	if again := hits(t, l, vip, 10); len(again) != 1 || !sameKeys(got, again) {
		t.Errorf("persistence after a rebuild: %v, before %v", again, got)
	}
	// Its server inhibited, the client moves, and sticks to the other.
	var stuck string
	for s := range got {
		stuck = s
	}
	w1, w2 := 0, 1
	if stuck == "rs2" {
		w1, w2 = 1, 0
	}
	reconcile(t, k, vs(lvs.RoundRobin, w1, w2, 300))
	moved := hits(t, l, vip, 10)
	t.Logf("rr persistent, %s inhibited: %v", stuck, moved)
	if len(moved) != 1 || moved[stuck] != 0 {
		t.Errorf("persistence to an inhibited server: %v", moved)
	}

	// A new process finds the service, changes nothing, and traffic
	// keeps flowing through what the old one programmed.
	k2 := newKernel(t, l.NSHandle(t, "dir1"))
	if rep := reconcile(t, k2, vs(lvs.RoundRobin, w1, w2, 300)); len(rep.Ops) != 0 {
		t.Errorf("reconcile after restart sent %v", rep.Ops)
	}
	if again := hits(t, l, vip, 10); !sameKeys(moved, again) {
		t.Errorf("after restart: %v, before %v", again, moved)
	}

	stats, err := k.Stats(lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", stats)
	checkCounters(t, k, stats)
	var conns uint64
	for _, s := range stats {
		conns += s.Conns
		if s.Conns > 0 && s.Packets < 3*s.Conns {
			t.Errorf("stats %+v: fewer than 3 client packets per connection", s)
		}
	}
	if conns != 330 { // every connection hits made above
		t.Errorf("stats count %d connections, want 330", conns)
	}
}

// checkCounters checks that Counters, read after stats (Stats of k's only
// service), reports the same real servers with the same connections and
// at least the packets and bytes (a late packet may have come since).
func checkCounters(t *testing.T, k *Kernel, stats []DestStats) {
	t.Helper()
	all, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("Counters: %d services, want 1: %+v", len(all), all)
	}
	for _, got := range all {
		if len(got) != len(stats) {
			t.Fatalf("Counters: %+v, Stats: %+v", got, stats)
		}
		for i, g := range got {
			w := stats[i]
			if g.Addr != w.Addr || g.ActiveConns != w.Conns || g.Packets < w.Packets || g.Bytes < w.Bytes {
				t.Errorf("Counters: %+v, Stats: %+v", g, w)
			}
		}
	}
}

// sameKeys reports whether a and b have the same keys.
func sameKeys(a, b map[string]int) bool {
	for k := range a {
		if b[k] == 0 {
			return false
		}
	}
	return len(a) == len(b)
}

func addAddr(t *testing.T, ns netns.NsHandle, dev string, p netip.Prefix) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err == nil {
		err = h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
	}
	if err != nil {
		t.Fatalf("add %v to %s: %v", p, dev, err)
	}
}

func TestDREndToEnd(t *testing.T) {
	checkHostUntouched(t)
	// The director holds the VIP as VRRP would; the real servers on lo.
	l, y, vip := drLab(t, nameOnce)
	ns := l.NSHandle(t, "dir1")
	k := newKernel(t, ns)
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR}
	dests := []lvs.Dest{{Addr: netip.AddrPortFrom(y.Reals[0].Addr, 80), Weight: 1}, {Addr: netip.AddrPortFrom(y.Reals[1].Addr, 80), Weight: 1}}
	reconcile(t, k, mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests}))

	// DR lives in the netdev table alone, in an ingress chain on the
	// interface that reaches the real servers.
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil || len(tables) != 1 || tables[0].Family != nftables.TableFamilyNetdev || tables[0].Name != TableName {
		t.Errorf("tables %v, %v: want netdev %s only", tables, err, TableName)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(y.Iface)
	if err != nil {
		t.Fatal(err)
	}
	in := baseChain(uint32(link.Attrs().Index))
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(chains, func(ch *nftables.Chain) bool {
		return ch.Name == in && ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookIngress
	}) {
		t.Errorf("no ingress chain %s among %d chains", in, len(chains))
	}

	got := hits(t, l, vip, 100)
	t.Logf("DR wrr 1:1 (flow hash): %v", got)
	if got["rs1"] < 25 || got["rs2"] < 25 {
		t.Errorf("DR spread %v, want both servers well used", got)
	}
	stats, err := k.Stats(svc.Key())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DR stats: %+v", stats)
	checkCounters(t, k, stats)
	for _, s := range stats {
		if s.Packets == 0 {
			t.Errorf("DR stats %+v: no packets counted", s)
		}
	}

	// Weight 0 gets nothing; persistence hashes the client address only.
	dests[1].Weight = 0
	reconcile(t, k, mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests}))
	got = hits(t, l, vip, 20)
	t.Logf("DR rs2 at weight 0: %v", got)
	if got["rs1"] != 20 {
		t.Errorf("DR with rs2 at weight 0: %v", got)
	}
	dests[1].Weight = 1
	svc.PersistenceTimeout = 300
	reconcile(t, k, mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests}))
	got = hits(t, l, vip, 20)
	t.Logf("DR persistent (client-address hash): %v", got)
	if len(got) != 1 {
		t.Errorf("DR persistence: %v", got)
	}

	// The interface's chain takes only frames for this host, not from
	// itself; the dispatch chain only packets for a local address.
	rules, err := c.GetRules(drTable(), &nftables.Chain{Name: in, Table: drTable()})
	if err != nil || len(rules) != 2 {
		t.Fatalf("rules of %s: %d, %v; want one per family", in, len(rules), err)
	}
	var host, notSelf bool
	for _, e := range rules[0].Exprs {
		switch e := e.(type) {
		case *expr.Cmp:
			host = host || (e.Op == expr.CmpOpEq && slices.Equal(e.Data, []byte{unix.PACKET_HOST}))
			notSelf = notSelf || (e.Op == expr.CmpOpNeq && slices.Equal(e.Data, link.Attrs().HardwareAddr))
		}
	}
	if !host || !notSelf {
		t.Errorf("%s: pkttype host %v, ether saddr != own MAC %v: %v", in, host, notSelf, rules[0].Exprs)
	}

	// A director that does not hold the VIP (a VRRP backup) forwards
	// nothing for it, though its client still sends to its MAC.
	h2, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := h2.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: vip.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	before, err := k.Stats(svc.Key())
	if err != nil {
		t.Fatal(err)
	}
	err = l.Do("client", func() error {
		c, err := net.DialTimeout("tcp", vip.String(), 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Error("a connection to the VIP succeeded through a director that does not hold it")
	}
	after, err := k.Stats(svc.Key())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after, cmpOpts); diff != "" {
		t.Errorf("forwarded without holding the VIP (-before +after):\n%s", diff)
	}
}

func TestNATEndToEndIPv6(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.NAT6())
	l.ServeName(t, "rs1", ":8080", false)
	l.ServeName(t, "rs2", ":8080", false)
	k := newKernel(t, l.NSHandle(t, "dir"))
	vip := netip.MustParseAddrPort("[fd01::1]:80")
	want := mustDesired(t, lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()},
			Scheduler: lvs.WeightedRoundRobin, PersistenceTimeout: 60, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 64)},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("[fd02::2]:8080"), Weight: 1}, {Addr: netip.MustParseAddrPort("[fd02::3]:8080"), Weight: 1}},
	})
	reconcile(t, k, want)
	got := hits(t, l, vip, 20)
	t.Logf("IPv6 wrr 1:1 persistent /64: %v", got)
	if len(got) != 1 {
		t.Errorf("IPv6 persistence: %v", got)
	}
	// Without persistence, the same pool alternates.
	want = mustDesired(t, lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()},
			Scheduler: lvs.WeightedRoundRobin},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("[fd02::2]:8080"), Weight: 1}, {Addr: netip.MustParseAddrPort("[fd02::3]:8080"), Weight: 1}},
	})
	reconcile(t, k, want)
	got = hits(t, l, vip, 20)
	t.Logf("IPv6 wrr 1:1: %v", got)
	if got["rs1"] != 10 || got["rs2"] != 10 {
		t.Errorf("IPv6 wrr 1:1: %v", got)
	}
}

func TestDREndToEndIPv6(t *testing.T) {
	checkHostUntouched(t)
	node := func(name, addr string) lab.Node {
		return lab.Node{Name: name, Ifaces: []lab.Iface{{Name: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}}}
	}
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{node("client", "fd07::50/64"), node("dir", "fd07::1/64"),
		node("rs1", "fd07::3/64"), node("rs2", "fd07::4/64")}})
	vip := netip.MustParseAddrPort("[fd07::5]:80")
	// Neighbour solicitations are answered only for addresses of the
	// interface they arrive on, so the real servers' lo needs no sysctl.
	addAddr(t, l.NSHandle(t, "dir"), "eth0", netip.PrefixFrom(vip.Addr(), 128))
	for _, r := range []string{"rs1", "rs2"} {
		addAddr(t, l.NSHandle(t, r), "lo", netip.PrefixFrom(vip.Addr(), 128))
		l.ServeName(t, r, ":80", false)
	}
	k := newKernel(t, l.NSHandle(t, "dir"))
	reconcile(t, k, mustDesired(t, lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.DR},
		Dests:   []lvs.Dest{{Addr: netip.MustParseAddrPort("[fd07::3]:80"), Weight: 1}, {Addr: netip.MustParseAddrPort("[fd07::4]:80"), Weight: 1}},
	}))
	got := hits(t, l, vip, 40)
	t.Logf("IPv6 DR rr (flow hash): %v", got)
	if got["rs1"] < 8 || got["rs2"] < 8 {
		t.Errorf("IPv6 DR spread %v, want both servers used", got)
	}
	// One flow entry per connection, naming the server that answered.
	flows, err := k.flows()
	if err != nil {
		t.Fatal(err)
	}
	names := map[netip.AddrPort]string{netip.MustParseAddrPort("[fd07::3]:80"): "rs1", netip.MustParseAddrPort("[fd07::4]:80"): "rs2"}
	entries := map[string]int{}
	for _, f := range flows {
		if f.Client != netip.MustParseAddr("fd07::50") || f.Port == 0 {
			t.Errorf("flow entry %+v: want the client's address and port", f)
		}
		entries[names[f.Server]]++
	}
	if !maps.Equal(entries, got) {
		t.Errorf("flow entries by server %v, connections %v", entries, got)
	}
}

// TestDRLegacyLayout: a DR service left by the layout with sets of its own
// per service (reg_n, slots_n) and a chain per real server is read back,
// rebuilt in the shared maps from its registry, and its old objects are
// deleted; its counters and dispatch element stay.
func TestDRLegacyLayout(t *testing.T) {
	ns, c, vs := oldLayout(t)
	n := objName(vs.Service.Key())
	tb := drTable()
	regElems := []nftables.SetElement{{Key: nativeEndian.PutUint32(svcElemKey), Comment: encodeService(vs.Service)}}
	slotElems := []nftables.SetElement{}
	for i, d := range vs.Dests {
		id := uint32(i)
		regElems = append(regElems, nftables.SetElement{Key: nativeEndian.PutUint32(id), Comment: encodeDest(d)})
		c.AddObj(&nftables.CounterObj{Table: tb, Name: pktsName(n, id)})
		ch := c.AddChain(&nftables.Chain{Table: tb, Name: rsChain(n, id)})
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: pktsName(n, id)}, &expr.Verdict{Kind: expr.VerdictDrop}}})
		slotElems = append(slotElems, nftables.SetElement{Key: nativeEndian.PutUint32(id),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: rsChain(n, id)}})
	}
	reg := &nftables.Set{Table: tb, Name: "reg_" + n, KeyType: nftables.TypeInteger, KeyByteOrder: nativeEndian}
	slots := &nftables.Set{Table: tb, Name: "slots_" + n, IsMap: true, KeyType: nftables.TypeInteger,
		DataType: nftables.TypeVerdict, KeyByteOrder: nativeEndian}
	for set, es := range map[*nftables.Set][]nftables.SetElement{reg: regElems, slots: slotElems} {
		if err := c.AddSet(set, es); err != nil {
			t.Fatal(err)
		}
	}
	svc := c.AddChain(&nftables.Chain{Table: tb, Name: "svc_" + n})
	c.AddRule(&nftables.Rule{Table: tb, Chain: svc, Exprs: []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: 2, Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: reg1, IsDestRegSet: true, SetName: slots.Name, SetID: slots.ID}}})
	k, disp := startOnOldLayout(t, ns, c, vs)
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range sets {
		if strings.HasPrefix(set.Name, "reg_") || strings.HasPrefix(set.Name, "slots_") {
			t.Errorf("set %s of the old layout survived", set.Name)
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if strings.HasPrefix(ch.Name, "rs_") {
			t.Errorf("chain %s of the old layout survived", ch.Name)
		}
	}
	checkRebuilt(t, k, ns, c, vs, disp)
}

// oldLayout is a director's namespace for a DR service of an older
// layout, its connection with the netdev table queued, and the service
// as the old layout stored it (normalized by the reconciler).
func oldLayout(t *testing.T) (netns.NsHandle, *nftables.Conn, lvs.VirtualServer) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}}}}})
	ns := l.NSHandle(t, "dir")
	vs := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip1, Port: 80},
			Scheduler: lvs.RoundRobin, Method: lvs.DR, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 32)},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.9.0.2:80"), Weight: 1, Method: lvs.DR},
			{Addr: netip.MustParseAddrPort("10.9.0.3:80"), Weight: 1, Method: lvs.DR}},
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	c.AddTable(drTable())
	return ns, c, vs
}

// startOnOldLayout adds vs's dispatch element to what c queued, commits
// it, and starts a Kernel on it, which must rebuild vs so that a
// reconcile with vs sends nothing.
func startOnOldLayout(t *testing.T, ns netns.NsHandle, c *nftables.Conn, vs lvs.VirtualServer) (*Kernel, *nftables.Set) {
	t.Helper()
	tb := drTable()
	kt, err := nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeIPAddr, nftables.TypeInetService)
	if err != nil {
		t.Fatal(err)
	}
	disp := &nftables.Set{Table: tb, Name: dispatchMap(lvs.IPv4, false), IsMap: true, Concatenation: true, KeyType: kt, DataType: nftables.TypeVerdict}
	if err := c.AddSet(disp, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAddElements(dispatchElem(tb, vs.Service.Key(), objName(vs.Service.Key()))); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("old layout: %v", err)
	}
	k := newKernel(t, ns)
	checkState(t, k, mustDesired(t, vs))
	if rep := reconcile(t, k, mustDesired(t, vs)); len(rep.Ops) != 0 {
		t.Errorf("reconcile after the rebuild sent %v", rep.Ops)
	}
	return k, disp
}

// checkRebuilt checks that a service rebuilt from an older layout kept
// its dispatch element and counters, that a new process reads it, and
// that deleting it empties the table.
func checkRebuilt(t *testing.T, k *Kernel, ns netns.NsHandle, c *nftables.Conn, vs lvs.VirtualServer, disp *nftables.Set) {
	t.Helper()
	elems, err := c.GetSetElements(disp)
	if err != nil || len(elems) != 1 {
		t.Errorf("dispatch elements %v, %v: want the service's", elems, err)
	}
	if stats, err := k.Stats(vs.Service.Key()); err != nil || len(stats) != 2 {
		t.Errorf("stats after the rebuild: %v, %v", stats, err)
	}
	k2 := newKernel(t, ns)
	checkState(t, k2, mustDesired(t, vs))
	reconcile(t, k2, mustDesired(t))
	if objs, err := c.GetObjects(drTable()); err != nil || len(objs) != 0 {
		t.Errorf("after delete: counters %v, %v", objs, err)
	}
}

// TestDRScaleShape: the number of named sets in the netdev table does not
// grow with the number of DR services (nf_tables walks a table's sets by
// name), services with the same pool share a slot table, and a Kernel
// rereads the kernel only when another process changed the ruleset.
func TestDRScaleShape(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}}}}})
	ns := l.NSHandle(t, "dir")
	k := newKernel(t, ns)
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	services := func(n int) *lvs.Desired { return twoPools(t, n) }
	count := func() (sets, slots int) {
		t.Helper()
		ss, err := c.GetSets(drTable())
		if err != nil {
			t.Fatal(err)
		}
		es, err := c.GetSetElements(&nftables.Set{Table: drTable(), Name: maglevSet})
		if err != nil {
			t.Fatal(err)
		}
		return len(ss), len(es)
	}
	reconcile(t, k, services(1))
	sets1, slots1 := count()
	reconcile(t, k, services(40))
	checkState(t, k, services(40))
	sets40, slots40 := count()
	if sets40 != sets1 {
		t.Errorf("named sets: %d for 1 service, %d for 40", sets1, sets40)
	}
	if slots40 != 2*slots1 {
		t.Errorf("slot elements: %d for 1 service, %d for 40 over two pools; want %d", slots1, slots40, 2*slots1)
	}
	if got := mapLookups(t, c); len(got) != 0 {
		t.Errorf("service chains look up maps (each such rule costs the map's number of bindings to add): %v", got)
	}

	loads := k.loads
	for range 3 {
		if rep := reconcile(t, k, services(40)); len(rep.Ops) != 0 {
			t.Errorf("no-op reconcile sent %v", rep.Ops)
		}
	}
	if k.loads != loads {
		t.Errorf("no-op reconciles reread the kernel %d times", k.loads-loads)
	}
	// Another process's change is seen.
	c.DelTable(drTable())
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if svcs, err := k.Services(); err != nil || len(svcs) != 0 {
		t.Errorf("after another process deleted the table: %d services, %v", len(svcs), err)
	}
}

// twoPools is n DR services, tcp 10.8.0.i:80, over two pools of two real
// servers on 10.9.0.0/24, alternately.
func twoPools(t *testing.T, n int) *lvs.Desired {
	t.Helper()
	var vss []lvs.VirtualServer
	for i := range n {
		vss = append(vss, lvs.VirtualServer{
			Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.AddrFrom4([4]byte{10, 8, 0, byte(i)}), Port: 80},
				Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR},
			Dests: []lvs.Dest{{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(2 + i%2)}), 80), Weight: 1},
				{Addr: netip.MustParseAddrPort("10.9.0.9:80"), Weight: 1}},
		})
	}
	return mustDesired(t, vss...)
}

// mapLookups lists the lookups into a map (chain: set) that the netdev
// table's rules make outside its dispatch chains. A rule looking up a map
// binds to it, and the kernel checks a new binding against every binding
// the map has (nf_tables_bind_set), so per-service rules doing so make
// programming quadratic in the number of services.
func mapLookups(t *testing.T, c *nftables.Conn) []string {
	t.Helper()
	tb := drTable()
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatal(err)
	}
	isMap := map[string]bool{}
	for _, s := range sets {
		isMap[s.Name] = s.IsMap
	}
	chains, err := c.ListChainsOfTableFamily(tb.Family)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range chains {
		if ch.Table.Name != tb.Name || ch.Name == dispatchChain(lvs.IPv4) || ch.Name == dispatchChain(lvs.IPv6) {
			continue
		}
		rules, err := c.GetRules(tb, ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if l, ok := e.(*expr.Lookup); ok && isMap[l.SetName] {
					out = append(out, ch.Name+": "+l.SetName)
				}
			}
		}
	}
	return out
}

// TestDRSlotMapLayout: DR services of the layout whose slot tables were a
// shared data map (`slots`: table . slot -> position, looked up by every
// service's rules) are rebuilt at start: their chains look up the maglev
// set, the old map is deleted, and their numbers, counters and dispatch
// elements stay.
func TestDRSlotMapLayout(t *testing.T) {
	ns, c, vs := oldLayout(t)
	// The old layout of service number 7, slot table 1.
	svc := &service{Service: vs.Service, dests: map[netip.AddrPort]dest{}, num: 7, table: 1}
	for i, d := range vs.Dests {
		svc.dests[d.Addr] = dest{Dest: d, id: uint32(i)}
	}
	lay, err := layoutOf(svc)
	if err != nil {
		t.Fatal(err)
	}
	tb := drTable()
	pair, err := nftables.ConcatSetType(nftables.TypeInteger, nftables.TypeInteger)
	if err != nil {
		t.Fatal(err)
	}
	var slotElems []nftables.SetElement
	for i, p := range lay.pos {
		slotElems = append(slotElems, nftables.SetElement{Key: append(nativeEndian.PutUint32(1), nativeEndian.PutUint32(uint32(i))...),
			Val: nativeEndian.PutUint32(p)})
	}
	for name, es := range map[string][]nftables.SetElement{registryMap: registryElems(svc), oldSlotsMap: slotElems} {
		m := &nftables.Set{Table: tb, Name: name, IsMap: true, Concatenation: true, KeyType: pair, DataType: nftables.TypeInteger}
		if err := c.AddSet(m, es); err != nil {
			t.Fatal(err)
		}
	}
	ch := c.AddChain(&nftables.Chain{Table: tb, Name: "svc_" + lay.n})
	for i, d := range lay.rs {
		c.AddObj(&nftables.CounterObj{Table: tb, Name: pktsName(lay.n, d.id)})
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Numgen{Register: reg32 + 1, Modulus: uint32(len(lay.pos)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Immediate{Register: reg32, Data: nativeEndian.PutUint32(1)},
			&expr.Lookup{SourceRegister: reg32, DestRegister: reg2, IsDestRegSet: true, SetName: oldSlotsMap},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg2, Data: nativeEndian.PutUint32(uint32(i))},
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: pktsName(lay.n, d.id)},
			&expr.Verdict{Kind: expr.VerdictDrop}}})
	}
	k, disp := startOnOldLayout(t, ns, c, vs)
	if got := mapLookups(t, c); len(got) != 0 {
		t.Errorf("after the rebuild, map lookups %v", got)
	}
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range sets {
		if set.Name == oldSlotsMap {
			t.Errorf("map %s of the old layout survived", set.Name)
		}
	}
	if s := k.state[vs.Service.Key()]; s == nil || s.num != 7 {
		t.Errorf("service number after the rebuild: %+v, want 7", s)
	}
	checkRebuilt(t, k, ns, c, vs, disp)
}

// TestBatchOneCommit: a reload that changes several real servers of one
// service (NAT or DR) commits them in one nf_tables transaction, which the
// ruleset generation (NFT_MSG_GETGEN, bumped by every commit) shows; and
// a service's batch with an op the backend refuses leaves the service as
// it was, rather than committing the ops before the refused one (an
// intermediate pool that would stay until the next reconcile).
func TestBatchOneCommit(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}}}}})
	k := newKernel(t, l.NSHandle(t, "dir"))
	rs3 := netip.MustParseAddrPort("10.9.0.4:8080")
	nat := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip1, Port: 80}, Scheduler: lvs.WeightedRoundRobin},
		Dests:   []lvs.Dest{{Addr: rs1, Weight: 1}, {Addr: rs2, Weight: 1}, {Addr: rs3, Weight: 1}},
	}
	dr := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip1, Port: 443}, Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.9.0.2:443"), Weight: 1, Method: lvs.DR},
			{Addr: netip.MustParseAddrPort("10.9.0.3:443"), Weight: 1, Method: lvs.DR},
			{Addr: netip.MustParseAddrPort("10.9.0.4:443"), Weight: 1, Method: lvs.DR}},
	}
	reconcile(t, k, mustDesired(t, nat, dr))
	gen := func() uint32 {
		t.Helper()
		g, err := k.generation()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	weights := func(vs lvs.VirtualServer, w ...int) lvs.VirtualServer {
		vs.Dests = slices.Clone(vs.Dests)
		for i := range vs.Dests {
			vs.Dests[i].Weight = w[i]
		}
		return vs
	}

	for _, step := range []struct {
		name    string
		want    *lvs.Desired
		commits uint32
	}{
		{"three NAT weights", mustDesired(t, weights(nat, 2, 3, 4), dr), 1},
		{"three DR weights", mustDesired(t, weights(nat, 2, 3, 4), weights(dr, 5, 6, 7)), 1},
		{"both services", mustDesired(t, weights(nat, 1, 1, 1), weights(dr, 1, 1, 1)), 2},
	} {
		before := gen()
		rep := reconcile(t, k, step.want)
		if n := rep.Count(lvs.UpdateDest); n != len(rep.Ops) || n != 3*int(step.commits) {
			t.Errorf("%s: ops %v, want %d weight updates", step.name, rep.Ops, 3*step.commits)
		}
		if got := gen() - before; got != step.commits {
			t.Errorf("%s: %d commits, want %d", step.name, got, step.commits)
		}
		checkState(t, k, step.want)
	}

	// Two weights and a third server switched to DR, which a NAT service
	// cannot have: the reconciler plans three updates, the third refused.
	bad := weights(nat, 5, 5, 1)
	bad.Dests[2].Method = lvs.DR
	before := gen()
	rep, err := lvs.NewReconciler(k, ours).Reconcile(context.Background(), mustDesired(t, bad, dr))
	var opErr *lvs.OpError
	if !errors.As(err, &opErr) || opErr.Op.Kind != lvs.UpdateDest || opErr.Op.Dest.Addr != rs3 || opErr.Index != 2 {
		t.Fatalf("err = %v, want the OpError of op 3, the update of %v", err, rs3)
	}
	if len(rep.Ops) != 0 {
		t.Errorf("report lists %v as applied", rep.Ops)
	}
	if got := gen() - before; got != 0 {
		t.Errorf("refused batch: %d commits, want none", got)
	}
	checkState(t, k, mustDesired(t, nat, dr))
}

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
