package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"

	"tandem/internal/config"
	"tandem/internal/lab"
)

func TestNoAccept(t *testing.T) {
	tests := []struct {
		accept bool
		prio   int
		want   bool
	}{
		{false, 100, true},  // vrrp_strict's default, or no_accept
		{true, 100, false},  // accept
		{false, 255, false}, // the address owner accepts its own addresses
	}
	for _, tt := range tests {
		if got := NoAccept(&config.Instance{Accept: tt.accept, Priority: tt.prio}); got != tt.want {
			t.Errorf("accept %v priority %d: NoAccept %v, want %v", tt.accept, tt.prio, got, tt.want)
		}
	}
}

var addrEq = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestAddrsOf(t *testing.T) {
	ip := func(s string, dev string, noTrack bool) *config.IPAddress {
		return &config.IPAddress{Prefix: netip.MustParsePrefix(s), Dev: dev, NoTrack: noTrack}
	}
	ic := &config.Instance{Interface: "eth0",
		VIPs:         []*config.IPAddress{ip("10.0.0.5/24", "", false), ip("fd00::5/64", "", false), ip("fe80::5/64", "", false)},
		ExcludedVIPs: []*config.IPAddress{ip("fe80::6/64", "eth1", false), ip("fe80::7/64", "eth1", true)},
	}
	a := func(s, iface string, byName bool) Addr {
		return Addr{IP: netip.MustParseAddr(s), Iface: iface, ByName: byName}
	}
	byIndex := []Addr{a("10.0.0.5", "", false), a("fd00::5", "", false), a("fe80::5", "eth0", false),
		a("fe80::6", "eth1", false), a("fe80::7", "eth1", false)}
	if diff := cmp.Diff(byIndex, AddrsOf(ic, Settings{}), addrEq); diff != "" {
		t.Errorf("tracking the primary interface (-want +got):\n%s", diff)
	}
	// dont_track_primary keys link-local addresses on the instance's
	// interface (or with no_track) by name, unless nftables_ifindex.
	ic.DontTrackPrimary = true
	byName := slices.Clone(byIndex)
	byName[2].ByName, byName[4].ByName = true, true
	if diff := cmp.Diff(byName, AddrsOf(ic, Settings{}), addrEq); diff != "" {
		t.Errorf("dont_track_primary (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(byIndex, AddrsOf(ic, Settings{IfIndex: true}), addrEq); diff != "" {
		t.Errorf("dont_track_primary with nftables_ifindex (-want +got):\n%s", diff)
	}
}

func TestElements(t *testing.T) {
	ifindex := func(name string) (uint32, error) {
		if name == "eth0" {
			return 7, nil
		}
		return 0, errors.New("no such interface")
	}
	a := func(s, iface string, byName bool) Addr {
		return Addr{IP: netip.MustParseAddr(s), Iface: iface, ByName: byName}
	}
	got := elements([]Addr{a("10.0.0.5", "", false), a("10.0.0.5", "", false), a("fd00::5", "", false),
		a("fe80::5", "eth0", false), a("fe80::6", "eth0", true), a("fe80::7", "gone0", false)}, ifindex, lab.TestLogger(t))
	v6 := netip.MustParseAddr("fd00::5").As16()
	ll5, ll6 := netip.MustParseAddr("fe80::5").As16(), netip.MustParseAddr("fe80::6").As16()
	name := make([]byte, 16)
	copy(name, "eth0")
	want := map[string][]nftables.SetElement{
		SetV4:       {{Key: []byte{10, 0, 0, 5}}}, // once, though two instances have it
		SetV6:       {{Key: v6[:]}},
		SetV6LL:     {{Key: binary.NativeEndian.AppendUint32(ll5[:], 7)}},
		SetV6LLName: {{Key: append(ll6[:], name...)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("elements (-want +got):\n%s", diff)
	}
}

func TestDiff(t *testing.T) {
	el := func(b ...byte) nftables.SetElement { return nftables.SetElement{Key: b} }
	add, del := diff([]nftables.SetElement{el(1), el(2)}, []nftables.SetElement{el(2), el(3)})
	if diff := cmp.Diff([]nftables.SetElement{el(3)}, add); diff != "" {
		t.Errorf("add (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]nftables.SetElement{el(1)}, del); diff != "" {
		t.Errorf("del (-want +got):\n%s", diff)
	}
}

// TestPlan checks the layout against keepalived's (see the package
// comment): base chains on input and output at the configured priority,
// neighbour discovery accepted first, then one drop rule per set on the
// destination (in) or source (out) address, with the interface for
// link-local sets, and counters only with nftables_counters.
func TestPlan(t *testing.T) {
	for _, counters := range []bool{false, true} {
		l := plan(Settings{Table: "kad", Priority: -7, Counters: counters})
		if l.table.Name != "kad" || l.table.Family != nftables.TableFamilyINet {
			t.Fatalf("table %+v, want inet kad", l.table)
		}
		hooks := map[string]nftables.ChainHook{ChainIn: *nftables.ChainHookInput, ChainOut: *nftables.ChainHookOutput}
		for _, ch := range l.chains {
			if *ch.Hooknum != hooks[ch.Name] || *ch.Priority != -7 || *ch.Policy != nftables.ChainPolicyAccept || ch.Type != nftables.ChainTypeFilter {
				t.Errorf("chain %s: hook %v priority %v policy %v type %v", ch.Name, *ch.Hooknum, *ch.Priority, *ch.Policy, ch.Type)
			}
		}
		if c, _ := userdata.GetString(l.rules[0].UserData, userdata.TypeComment); c != Marker || l.rules[0].Chain.Name != ChainIn {
			t.Errorf("chain in's first rule does not carry the ownership marker: %q", c)
		}
		type drop struct {
			chain, set string
			off        uint32
			iface      expr.MetaKey
		}
		want := []drop{
			{ChainIn, SetV4, ipv4DstOff, 0}, {ChainIn, SetV6, ipv6DstOff, 0},
			{ChainIn, SetV6LL, ipv6DstOff, expr.MetaKeyIIF}, {ChainIn, SetV6LLName, ipv6DstOff, expr.MetaKeyIIFNAME},
			{ChainOut, SetV4, ipv4SrcOff, 0}, {ChainOut, SetV6, ipv6SrcOff, 0},
			{ChainOut, SetV6LL, ipv6SrcOff, expr.MetaKeyOIF}, {ChainOut, SetV6LLName, ipv6SrcOff, expr.MetaKeyOIFNAME},
		}
		var got []drop
		for i, r := range l.rules {
			last := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
			if i%5 == 0 { // each chain's first rule
				if last.Kind != expr.VerdictAccept || !slices.ContainsFunc(r.Exprs, func(e expr.Any) bool {
					rg, ok := e.(*expr.Range)
					return ok && rg.FromData[0] == icmpv6NDSol && rg.ToData[0] == icmpv6NDAdv
				}) {
					t.Errorf("rule %d of %s is not the neighbour discovery accept: %#v", i, r.Chain.Name, r.Exprs)
				}
				continue
			}
			d := drop{chain: r.Chain.Name}
			hasCounter := false
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Payload:
					d.off = e.Offset
				case *expr.Meta:
					if e.Register == 2 {
						d.iface = e.Key
					}
				case *expr.Lookup:
					d.set = e.SetName
				case *expr.Counter:
					hasCounter = true
				}
			}
			if last.Kind != expr.VerdictDrop || hasCounter != counters {
				t.Errorf("rule %+v: verdict %v, counter %v (want drop, %v)", d, last.Kind, hasCounter, counters)
			}
			got = append(got, d)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(drop{})); diff != "" {
			t.Errorf("drop rules (-want +got):\n%s", diff)
		}
	}
}

// tableState is what the kernel holds in table name: its sets' elements
// and, per chain, the rules' handles and counters.
type tableState struct {
	elems    map[string][][]byte
	handles  []uint64
	counters map[string]uint64 // set looked up -> packets, chain in
}

func readTable(t *testing.T, c *nftables.Conn, name string) *tableState {
	t.Helper()
	tb, err := c.ListTableOfFamily(name, nftables.TableFamilyINet)
	if err != nil || tb == nil {
		return nil
	}
	st := &tableState{elems: map[string][][]byte{}, counters: map[string]uint64{}}
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		es, err := c.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			st.elems[s.Name] = append(st.elems[s.Name], e.Key)
		}
		slices.SortFunc(st.elems[s.Name], func(a, b []byte) int { return slices.Compare(a, b) })
	}
	for _, ch := range []string{ChainIn, ChainOut} {
		rules, err := c.GetRules(tb, &nftables.Chain{Name: ch, Table: tb})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			st.handles = append(st.handles, r.Handle)
			var set string
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Lookup:
					set = e.SetName
				case *expr.Counter:
					if ch == ChainIn {
						st.counters[set] = e.Packets
					}
				}
			}
		}
	}
	return st
}

// TestKernel programs a lab node: a crashed run's table is replaced, a
// foreign table of the configured name is refused and left alone, element
// changes are one transaction that keeps the rules (and their counters),
// nothing is sent when nothing changes, a settings change rebuilds, and
// Close leaves no table. Traffic from a client to a dropped address is
// dropped and counted (neighbour discovery still answered), to the
// node's other addresses it is not.
func TestKernel(t *testing.T) {
	lab.RequireRoot(t)
	p := netip.MustParsePrefix
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "client", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{p("10.9.0.2/24"), p("fd09::2/64")}}}},
		{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
			Addrs: []netip.Prefix{p("10.9.0.1/24"), p("10.9.0.100/24"), p("fd09::1/64"), p("fd09::100/64")}}}},
	}})
	ns := l.NSHandle(t, "dir")
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	log := lab.TestLogger(t)
	s := Settings{Table: "kad", Priority: -1, Counters: true}
	a := func(s, iface string, byName bool) Addr {
		return Addr{IP: netip.MustParseAddr(s), Iface: iface, ByName: byName}
	}

	// A crashed run's table, under another name, dropping what the new
	// run does not.
	crashed := New(log, WithNetNS(int(ns)))
	if err := crashed.Sync(Settings{Table: "old", Priority: -1}, true, []Addr{a("10.9.0.1", "", false)}); err != nil {
		t.Fatal(err)
	}
	// Someone else's table.
	foreign := c.AddTable(&nftables.Table{Name: "theirs", Family: nftables.TableFamilyINet})
	c.AddRule(&nftables.Rule{Table: foreign, Chain: c.AddChain(&nftables.Chain{Name: ChainIn, Table: foreign}),
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	f := New(log, WithNetNS(int(ns)))
	t.Cleanup(func() { f.Close() })
	if err := f.Sync(Settings{Table: "theirs", Priority: -1}, true, nil); err == nil {
		t.Fatal("Sync took over a table that is not Tandem's")
	}
	if readTable(t, c, "theirs") == nil || f.Commits != 0 {
		t.Fatalf("a refused Sync changed something (%d commits)", f.Commits)
	}

	drop := []Addr{a("10.9.0.100", "", false), a("fd09::100", "", false), a("fe80::5", "eth0", false), a("fe80::6", "eth0", true)}
	if err := f.Sync(s, true, drop); err != nil {
		t.Fatal(err)
	}
	if readTable(t, c, "old") != nil {
		t.Error("the crashed run's table is still there")
	}
	st := readTable(t, c, "kad")
	if st == nil {
		t.Fatal("no table inet kad")
	}
	want := elements(drop, f.ifindex, log)
	for _, set := range []string{SetV4, SetV6, SetV6LL, SetV6LLName} {
		var keys [][]byte
		for _, e := range want[set] {
			keys = append(keys, e.Key)
		}
		if diff := cmp.Diff(keys, st.elems[set]); diff != "" || len(keys) != 1 {
			t.Errorf("set %s (-want +got):\n%s", set, diff)
		}
	}
	if len(st.handles) != 10 {
		t.Errorf("%d rules, want 5 per chain", len(st.handles))
	}

	// Traffic: the dropped addresses are unreachable and counted; the
	// node's own address is not dropped; neighbour discovery for the
	// dropped IPv6 address is still answered.
	for _, dst := range []string{"10.9.0.100", "fd09::100"} {
		if err := l.Ping("client", netip.MustParseAddr(dst), time.Second); err == nil {
			t.Errorf("ping %s answered through the drop rule", dst)
		}
	}
	if err := l.Ping("client", netip.MustParseAddr("10.9.0.1"), 3*time.Second); err != nil {
		t.Errorf("ping of the node's own address: %v", err)
	}
	st = readTable(t, c, "kad")
	if st.counters[SetV4] == 0 || st.counters[SetV6] == 0 {
		t.Errorf("drop counters %v, want the pings counted", st.counters)
	}
	if err := l.Do("client", func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if ip, _ := netip.AddrFromSlice(n.IP); ip == netip.MustParseAddr("fd09::100") && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				return nil
			}
		}
		return fmt.Errorf("no resolved neighbour entry in %v", ns)
	}); err != nil {
		t.Errorf("neighbour discovery for the dropped IPv6 address: %v", err)
	}

	// Nothing changes: nothing is sent.
	commits := f.Commits
	reversed := slices.Clone(drop)
	slices.Reverse(reversed)
	if err := f.Sync(s, true, reversed); err != nil {
		t.Fatal(err)
	}
	if f.Commits != commits {
		t.Errorf("an unchanged Sync sent %d transactions", f.Commits-commits)
	}

	// A state change: one transaction, rules and counters kept.
	before := st
	if err := f.Sync(s, true, []Addr{a("10.9.0.1", "", false), a("fd09::100", "", false)}); err != nil {
		t.Fatal(err)
	}
	st = readTable(t, c, "kad")
	if f.Commits != commits+1 {
		t.Errorf("element change took %d transactions, want 1", f.Commits-commits)
	}
	// A rebuild would have reset the counters.
	if !slices.Equal(st.handles, before.handles) || st.counters[SetV4] < before.counters[SetV4] || st.counters[SetV4] == 0 {
		t.Errorf("element change rebuilt the rules: handles %v -> %v, counters %v -> %v", before.handles, st.handles, before.counters, st.counters)
	}
	if diff := cmp.Diff(map[string][][]byte{SetV4: {{10, 9, 0, 1}}, SetV6: before.elems[SetV6]}, st.elems); diff != "" {
		t.Errorf("elements after the change (-want +got):\n%s", diff)
	}

	// A settings change rebuilds.
	s.Counters = false
	if err := f.Sync(s, true, nil); err != nil {
		t.Fatal(err)
	}
	if st = readTable(t, c, "kad"); len(st.counters) != 0 || len(st.elems) != 0 {
		t.Errorf("without nftables_counters and addresses: counters %v, elements %v", st.counters, st.elems)
	}

	// A new name: the table moves in one transaction.
	commits = f.Commits
	s.Table = "kad2"
	if err := f.Sync(s, true, drop[:1]); err != nil {
		t.Fatal(err)
	}
	if st = readTable(t, c, "kad2"); readTable(t, c, "kad") != nil || st == nil || len(st.elems[SetV4]) != 1 || f.Commits != commits+1 {
		t.Errorf("renamed: old table left %v, new %+v, %d transactions", readTable(t, c, "kad") != nil, st, f.Commits-commits)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if readTable(t, c, "kad2") != nil {
		t.Error("Close left the table")
	}
	if readTable(t, c, "theirs") == nil {
		t.Error("Close removed a table that is not Tandem's")
	}
}
