package nft

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// The DR data plane in `netdev tandem`:
//
//	in_<ifindex>    base chain, hook ingress on one interface, priority -500:
//	                `meta pkttype host ether saddr != <own MAC> meta protocol ip goto dispatch4`
//	                (and ip6): only frames addressed to this director, never
//	                one it sent itself
//	dispatch4/6     `fib daddr type != local return`, then
//	                `meta l4proto . ip daddr . th dport vmap @dispatch4` and
//	                `meta l4proto . ip daddr vmap @dispatch4_any` (port 0)
//	map dispatch4   protocol . VIP . port -> goto svc_n, one element per service
//
// so the ingress hook does one fib lookup and one hash lookup per packet
// whatever the number of services, and adding a service adds one map
// element instead of a base chain. One base chain serves every DR service
// on its interface: the interfaces are those that reach some DR real
// server (LVS-DR's segment), created with the first service that needs one
// and deleted with the last.

// RTN_LOCAL, what `fib daddr type` yields for an address of this host
// (rtnetlink.h, enum rtn_type; host-endian u32 in the register).
const rtnLocal = 2

// drChunk bounds the work committed in one DR transaction, in drWeight
// units (about one netlink attribute each): a few MB of messages and
// acknowledgements, which the sockets' buffers (bigBuffers) hold, and a
// kernel transaction short enough not to stall other nftables users.
const drChunk = 1 << 16

// drWeight is ch's share of a DR transaction: its slot map, registry and
// chains.
func drWeight(ch *change) int {
	w := 32
	if ch.next != nil {
		w += 256 + 8*len(ch.next.dests)
	}
	return w
}

// drState is what the Kernel knows of the netdev table besides the
// registries: read once (readDR) and kept in step by every commit, so a
// commit costs the size of what it changes, not of the table.
type drState struct {
	objs     map[string]*drObjs // by objName: the service's chains and counters in the kernel
	base     map[uint32]bool    // interfaces with an ingress chain
	refs     map[uint32]int     // interface -> DR services forwarding out of it
	services int                // DR services (registries)
	shared   bool               // the dispatch maps and chains exist
}

// drObjs are one service's chains and counters as the kernel has them,
// leftovers of a failed commit included.
type drObjs struct {
	chains, counters []string
}

func newDRState() *drState {
	return &drState{objs: map[string]*drObjs{}, base: map[uint32]bool{}, refs: map[uint32]int{}}
}

// Names of the shared DR objects.
func baseChain(ifindex uint32) string { return "in_" + strconv.FormatUint(uint64(ifindex), 10) }

func dispatchChain(f lvs.AddressFamily) string {
	if f == lvs.IPv6 {
		return "dispatch6"
	}
	return "dispatch4"
}

// dispatchMap is the map of f's services with a port, or with anyPort of
// the port-0 (all ports) services, looked up when the first misses, as
// IPVS prefers a service on the port to one on every port.
func dispatchMap(f lvs.AddressFamily, anyPort bool) string {
	if anyPort {
		return dispatchChain(f) + "_any"
	}
	return dispatchChain(f)
}

// owner returns the objName of the service that a chain or counter of the
// netdev table belongs to: svc_n, or rs_n_<id>, pkts_n_<id>, and
// in_n_<ifindex> of the layout with one ingress chain per service. Shared
// objects (in_<ifindex>, dispatch4) belong to none.
func owner(name string) (string, bool) {
	if n, ok := strings.CutPrefix(name, "svc_"); ok {
		return n, true
	}
	for _, role := range []string{"rs_", "pkts_", "in_"} {
		rest, ok := strings.CutPrefix(name, role)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '_')
		if i > 0 && i < len(rest)-1 && strings.Trim(rest[i+1:], "0123456789") == "" {
			return rest[:i], true
		}
	}
	return "", false
}

// readDR lists the netdev table's chains and counters, once, into dr, and
// works out which interfaces the services of state forward out of.
func (k *Kernel) readDR(dr *drState, state map[lvs.ServiceKey]*service) error {
	t := drTable()
	add := func(name string, counter bool) {
		n, ok := owner(name)
		if !ok {
			return
		}
		o := dr.objs[n]
		if o == nil {
			o = &drObjs{}
			dr.objs[n] = o
		}
		if counter {
			o.counters = append(o.counters, name)
		} else {
			o.chains = append(o.chains, name)
		}
	}
	chains, err := k.conn.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return fmt.Errorf("list chains of %s: %w", tableText(t), err)
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		if idx, ok := strings.CutPrefix(ch.Name, "in_"); ok {
			if i, err := strconv.ParseUint(idx, 10, 32); err == nil {
				dr.base[uint32(i)] = true
				continue
			}
		}
		dr.shared = dr.shared || ch.Name == dispatchChain(lvs.IPv4)
		add(ch.Name, false)
	}
	objs, err := k.conn.GetObjects(t)
	if err != nil {
		return fmt.Errorf("list counters of %s: %w", tableText(t), err)
	}
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok {
			add(c.Name, true)
		}
	}
	h := k.newHops()
	for _, s := range state {
		if s.Method != lvs.DR {
			continue
		}
		dr.services++
		// A real server no longer routable has no interface: its
		// service fails its next commit anyway, which says why.
		if l, err := k.layout(s, h); err == nil {
			s.ifaces = l.ifaces
			for _, idx := range l.ifaces {
				dr.refs[idx]++
			}
		}
	}
	return nil
}

// hops resolves DR next hops for one commit: services share real servers,
// so each address and interface is looked up once.
type hops struct {
	k     *Kernel
	via   map[netip.Addr]uint32
	links map[uint32]netlink.Link
}

func (k *Kernel) newHops() *hops {
	return &hops{k: k, via: map[netip.Addr]uint32{}, links: map[uint32]netlink.Link{}}
}

// of is the interface that reaches real server a directly. DR only
// rewrites the MAC address, so the server must be on a connected subnet.
func (h *hops) of(a netip.Addr) (uint32, error) {
	if idx, ok := h.via[a]; ok {
		return idx, nil
	}
	routes, err := h.k.route.RouteGet(a.AsSlice())
	if err != nil {
		return 0, fmt.Errorf("route lookup: %w", err)
	}
	if len(routes) == 0 {
		return 0, fmt.Errorf("no route")
	}
	if routes[0].Gw != nil {
		return 0, fmt.Errorf("reached via gateway %v; lb_kind DR needs the real server on a directly connected subnet", routes[0].Gw)
	}
	idx := uint32(routes[0].LinkIndex)
	h.via[a] = idx
	return idx, nil
}

func (h *hops) link(idx uint32) (netlink.Link, error) {
	if l, ok := h.links[idx]; ok {
		return l, nil
	}
	l, err := h.k.route.LinkByIndex(int(idx))
	if err != nil {
		return nil, fmt.Errorf("interface %d: %w", idx, err)
	}
	h.links[idx] = l
	return l, nil
}

// drItem is one service of a DR commit.
type drItem struct {
	key       lvs.ServiceKey
	n         string
	cur, next *service // as the kernel has it, as it will be
	l         *layout  // next's
}

// commitDR turns the DR services of changes from what the kernel has into
// their next state. fwd rules cannot go through google/nftables
// (fillChains), so this takes up to three transactions, ordered so that
// packets only ever see complete services:
//
//  1. the table and the new counters, which nothing references yet;
//  2. fillChains: each real server's chain, created if new, else rewritten
//     in one step (a chain a slot map points at always holds one complete
//     rule);
//  3. everything else at once: registries, schedulers, slot maps, the
//     dispatch elements and ingress chains, and the deletion of what the
//     services no longer have.
//
// A failure after step 1 or 2 leaves only chains and counters nothing
// references. The caller then reloads (readDR lists them), and step 3 of
// the service's next commit deletes every object of the service that the
// kernel has and the new state lacks; so does Flush.
func (k *Kernel) commitDR(changes []*change) error {
	t := drTable()
	h := k.newHops()
	refs := maps.Clone(k.dr.refs)
	services := k.dr.services
	items := make([]drItem, 0, len(changes))
	var counters []string
	var rules []fwdRule
	for _, ch := range changes {
		it := drItem{key: ch.key, n: objName(ch.key), cur: k.state[ch.key], next: ch.next}
		if it.cur == nil && it.next == nil {
			continue // gone already: a chunk that failed may have committed, its reply lost
		}
		if it.cur != nil {
			services--
			for _, idx := range it.cur.ifaces {
				refs[idx]--
			}
		}
		if it.next != nil {
			services++
			l, err := k.layout(it.next, h)
			if err != nil {
				return fmt.Errorf("%v: %w", ch.key, err)
			}
			it.l = l
			for _, idx := range l.ifaces {
				refs[idx]++
			}
			have := k.dr.objs[it.n]
			for _, o := range l.counters {
				if have == nil || !slices.Contains(have.counters, o) {
					counters = append(counters, o)
				}
			}
			for _, d := range l.rs {
				rules = append(rules, l.drRule(d))
			}
		}
		items = append(items, it)
	}

	if len(counters) > 0 {
		c, err := k.dial()
		if err != nil {
			return err
		}
		c.AddTable(t)
		for _, o := range counters {
			c.AddObj(&nftables.CounterObj{Table: t, Name: o})
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
	if err := k.fillChains(t, rules); err != nil {
		return err
	}

	c, err := k.dial()
	if err != nil {
		return err
	}
	c.AddTable(t)
	if services > 0 && !k.dr.shared {
		if err := addDispatch(c, t); err != nil {
			return err
		}
	}
	for _, it := range items {
		if err := k.queueDR(c, t, it); err != nil {
			return fmt.Errorf("%v: %w", it.key, err)
		}
	}
	var added, gone []uint32
	for idx, n := range refs {
		if n > 0 && !k.dr.base[idx] {
			added = append(added, idx)
		}
	}
	for idx := range k.dr.base {
		if refs[idx] <= 0 {
			gone = append(gone, idx)
		}
	}
	for _, idx := range added {
		link, err := h.link(idx)
		if err != nil {
			return err
		}
		addIngress(c, t, idx, link.Attrs().Name, link.Attrs().HardwareAddr)
	}
	for _, idx := range gone {
		c.DelChain(&nftables.Chain{Table: t, Name: baseChain(idx)})
	}
	if services == 0 && k.dr.shared {
		delDispatch(c, t)
	}
	if err := c.Flush(); err != nil {
		return err
	}

	for _, it := range items {
		if it.next == nil {
			delete(k.dr.objs, it.n)
			delete(k.state, it.key)
			continue
		}
		it.next.ifaces = it.l.ifaces
		k.dr.objs[it.n] = &drObjs{chains: it.l.chains, counters: it.l.counters}
		k.state[it.key] = it.next
	}
	for _, idx := range added {
		k.dr.base[idx] = true
	}
	for _, idx := range gone {
		delete(k.dr.base, idx)
	}
	maps.DeleteFunc(refs, func(_ uint32, n int) bool { return n <= 0 })
	k.dr.refs, k.dr.services, k.dr.shared = refs, services, services > 0
	return nil
}

// queueDR queues step 3 of commitDR for one service: flushes first, so
// that nothing deleted is still referenced (the real servers' chains that
// it keeps are already final), then deletions, then the new state.
func (k *Kernel) queueDR(c *nftables.Conn, t *nftables.Table, it drItem) error {
	slotMap := &nftables.Set{Table: t, Name: "slots_" + it.n}
	reg := &nftables.Set{Table: t, Name: "reg_" + it.n}
	if it.cur != nil {
		c.FlushSet(slotMap)
		c.FlushSet(reg)
	}
	if it.cur != nil && it.next == nil {
		if err := c.SetDeleteElements(dispatchElem(t, it.key, it.n)); err != nil {
			return fmt.Errorf("dispatch: %w", err)
		}
	}
	have := k.dr.objs[it.n]
	if have == nil {
		have = &drObjs{}
	}
	var keepChains, keepCounters, rs []string
	if it.l != nil {
		keepChains, keepCounters = it.l.chains, it.l.counters
		for _, d := range it.l.rs {
			rs = append(rs, rsChain(it.n, d.id))
		}
	}
	for _, ch := range have.chains {
		if !slices.Contains(rs, ch) {
			c.FlushChain(&nftables.Chain{Table: t, Name: ch})
		}
	}
	for _, ch := range have.chains {
		if !slices.Contains(keepChains, ch) {
			c.DelChain(&nftables.Chain{Table: t, Name: ch})
		}
	}
	for _, o := range have.counters {
		if !slices.Contains(keepCounters, o) {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: o})
		}
	}
	if it.next == nil {
		c.DelSet(slotMap)
		c.DelSet(reg)
		return nil
	}
	if err := build(c, t, it.l); err != nil {
		return err
	}
	if it.cur == nil {
		if err := c.SetAddElements(dispatchElem(t, it.key, it.n)); err != nil {
			return fmt.Errorf("dispatch: %w", err)
		}
	}
	return nil
}

// dispatchElem is service key's element of its dispatch map: protocol .
// VIP [. port] -> goto svc_n. Each field of a concatenation takes a whole
// number of 4-byte registers, zero-padded, as the lookup loads them.
func dispatchElem(t *nftables.Table, key lvs.ServiceKey, n string) (*nftables.Set, []nftables.SetElement) {
	k := append([]byte{byte(key.Protocol), 0, 0, 0}, key.VIP.AsSlice()...)
	if key.Port != 0 {
		k = append(k, binaryutil.BigEndian.PutUint16(key.Port)...)
		k = append(k, 0, 0)
	}
	set := &nftables.Set{Table: t, Name: dispatchMap(key.Family, key.Port == 0)}
	return set, []nftables.SetElement{{Key: k, VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: "svc_" + n}}}
}

// addDispatch creates the dispatch maps and chains of both families.
func addDispatch(c *nftables.Conn, t *nftables.Table) error {
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		fam := familyOf(f)
		ch := c.AddChain(&nftables.Chain{Table: t, Name: dispatchChain(f)})
		// Only packets for an address of this host: IPVS sees nothing
		// else (it hooks LOCAL_IN), so a director that does not hold
		// the VIP, a VRRP backup, forwards nothing for it.
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeEndian.PutUint32(rtnLocal)},
			&expr.Verdict{Kind: expr.VerdictReturn},
		}})
		for _, anyPort := range []bool{false, true} {
			types := []nftables.SetDatatype{nftables.TypeInetProto, fam.addrType}
			load := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32},
				&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.daddrOff, Len: fam.addrLen},
			}
			if !anyPort {
				types = append(types, nftables.TypeInetService)
				load = append(load, &expr.Payload{DestRegister: reg32 + 1 + fam.addrLen/4, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			}
			kt, err := nftables.ConcatSetType(types...)
			if err != nil {
				return err
			}
			m := &nftables.Set{Table: t, Name: dispatchMap(f, anyPort), IsMap: true, Concatenation: true,
				KeyType: kt, DataType: nftables.TypeVerdict}
			if err := c.AddSet(m, nil); err != nil {
				return fmt.Errorf("dispatch map: %w", err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(load,
				&expr.Lookup{SourceRegister: reg32, IsDestRegSet: true, SetName: m.Name, SetID: m.ID})})
		}
	}
	return nil
}

// delDispatch deletes what addDispatch created; the ingress chains that
// jump to it are gone first.
func delDispatch(c *nftables.Conn, t *nftables.Table) {
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		c.DelChain(&nftables.Chain{Table: t, Name: dispatchChain(f)})
		c.DelSet(&nftables.Set{Table: t, Name: dispatchMap(f, false)})
		c.DelSet(&nftables.Set{Table: t, Name: dispatchMap(f, true)})
	}
}

// addIngress creates interface dev's ingress chain. A netdev ingress hook
// sees every frame the interface receives, also those a switch floods to
// it (unknown unicast, or a bridge that does not learn) for another host:
// the kernel marks them PACKET_OTHERHOST but drops them only later, in the
// IP stack. Only frames for this host go on, and never one with the
// interface's own source address, which this director sent (fwd transmits
// with it) and a switch reflected.
func addIngress(c *nftables.Conn, t *nftables.Table, ifindex uint32, dev string, mac net.HardwareAddr) {
	ch := c.AddChain(&nftables.Chain{Table: t, Name: baseChain(ifindex), Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: ingressPriority, Device: dev})
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ingressExprs(f, mac)})
	}
}

// ingressExprs is the rule of an ingress chain for family f: frames for
// this host, not from mac, of f's ethertype, to f's dispatch chain.
func ingressExprs(f lvs.AddressFamily, mac net.HardwareAddr) []expr.Any {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.PACKET_HOST}},
	}
	if len(mac) == 6 {
		exprs = append(exprs,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: mac})
	}
	return append(exprs,
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(familyOf(f).ethertype)},
		&expr.Verdict{Kind: expr.VerdictGoto, Chain: dispatchChain(f)})
}
