package nft

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
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
//	map registry    service number . id -> table: the definitions, as comments
//	set maglev      table . slot . position: slot's real server is the
//	                position-th of its service's servers with slots
//	set flows4/6    the flow table (flows.go): service number . client .
//	                port . id, timed: the server each flow is on
//	svc_n           per real server with slots, the flow's entry naming it
//	                in @flows4: refresh, count, fwd; then per server, jhash
//	                of the flow, `table . jhash . position` in @maglev, add
//	                the flow's entry, count, fwd to its address out of its
//	                interface; then goto fb_<hash>
//	fb_<hash>       the fallback chain of every service whose pool and
//	                schedule are the same (fallbackName): per server, the
//	                Maglev match and fwd, no entry, no counter; reached
//	                only when the flow set is full
//
// so the ingress hook does one fib lookup and a few hash lookups per packet
// (per real server with slots: an established flow's entry is looked up
// by at most one rule each, a new flow's slot by at most one more each)
// whatever the number of services, and the number of named sets is
// constant: nf_tables finds a set by name by walking its table's list of
// sets, while chains and counters are in hash tables. The slot table is a
// plain set, not a map: a rule looking up a map binds to it, and binding
// walks the map's list of bindings (nf_tables_bind_set: one per rule that
// looks it up, so every service's rules would make each new rule cost the
// number of services) and every element added to a map checks each
// binding; a plain set's lookup binds in constant time and its elements
// carry no data to check. The kernel's loop check at each commit (which
// walks every verdict map element reachable from a base chain) visits
// one dispatch element per service. Services whose
// pools hash alike (the same live real servers and weights) share one slot
// table (slotTable). One base chain serves every DR service on its
// interface: the interfaces are those that reach some DR real server
// (LVS-DR's segment), created with the first service that needs one and
// deleted with the last.

// RTN_LOCAL, what `fib daddr type` yields for an address of this host
// (rtnetlink.h, enum rtn_type; host-endian u32 in the register).
const rtnLocal = 2

// drChunk bounds the work committed in one DR transaction, in drWeight
// units (about one netlink attribute each): a few MB of messages, which
// the socket's buffer (bigBuffers) holds, and a kernel transaction short
// enough not to stall other nftables users.
const drChunk = 1 << 16

// drWeight is ch's share of a DR transaction: its registry elements,
// chain rules and, at worst, a slot table of its own.
func drWeight(ch *change) int {
	w := 32
	if ch.next != nil {
		w += 256 + 8*len(ch.next.dests)
	}
	return w
}

// drState is what the Kernel knows of the netdev table besides the
// registry: read once (readDR) and kept in step by every commit, so a
// commit costs the size of what it changes, not of the table.
type drState struct {
	objs     map[string]*drObjs    // by objName: the service's chains and counters in the kernel
	base     map[uint32]bool       // interfaces with an ingress chain
	refs     map[uint32]int        // interface -> DR services forwarding out of it
	services int                   // DR services
	shared   bool                  // the registry, slot and dispatch maps and the fwd chains exist
	tables   map[string]*slotTable // slot tables by content (slotKey)
	nums     map[uint32]bool       // service numbers in use
	numHint  uint32                // no service number below it is free
	oldMap   bool                  // the slots map of the layout before maglevSet exists
	oldSlots int                   // services whose chain may still look it up
	flows    bool                  // the flow sets exist (flows.go)
	fb       map[string]int        // fallback chains in the kernel -> services going to them
	sweep    bool                  // stale flow entries may exist: sweep before the next commit
}

// slotTable is a Maglev table in the maglev set: slot -> position of the
// real server among its service's servers with slots. Services with the
// same live pool compute the same table and share it.
type slotTable struct {
	id   uint32
	pos  []uint32
	refs int
}

// slotKey is the identity of a slot table's content.
func slotKey(pos []uint32) string {
	b := make([]byte, 0, 4*len(pos))
	for _, p := range pos {
		b = append(b, nativeEndian.PutUint32(p)...)
	}
	return string(b)
}

// tableID numbers a new slot table by its content, so that directors
// given the same pools hold the same maglev set, element for element,
// whatever order their tables were made in (only a collision, between
// different tables whose 32-bit hashes agree, takes the next free number).
// 0 means none.
func tableID(key string, used map[uint32]bool) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	id := h.Sum32()
	for id == 0 || used[id] {
		id++
	}
	return id
}

// drObjs are one service's chains and counters as the kernel has them.
type drObjs struct {
	chains, counters []string
}

func newDRState() *drState {
	return &drState{objs: map[string]*drObjs{}, base: map[uint32]bool{}, refs: map[uint32]int{},
		tables: map[string]*slotTable{}, nums: map[uint32]bool{}, fb: map[string]int{}}
}

// Names of the shared DR objects. oldSlotsMap is the data map that held
// the slot tables before maglevSet (table . slot -> position).
const (
	registryMap = "registry"
	maglevSet   = "maglev"
	oldSlotsMap = "slots"
)

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
// netdev table belongs to: svc_n, pkts_n_<id>, and rs_n_<id> and
// in_n_<ifindex> of older layouts. Shared objects (in_<ifindex>,
// dispatch4, fwd4) belong to none.
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

// readRegistry decodes the DR registry into state: element service
// number . svcElemKey holds a service (its data: its slot table, 0 for
// none), element number . id one of its real servers.
func (k *Kernel) readRegistry(state map[lvs.ServiceKey]*service, oldMap bool) error {
	t := drTable()
	elems, err := k.conn.GetSetElements(&nftables.Set{Table: t, Name: registryMap})
	if err != nil {
		return fmt.Errorf("read registry %s %s: %w", tableText(t), registryMap, err)
	}
	byNum := map[uint32]*service{}
	get := func(num uint32) *service {
		s := byNum[num]
		if s == nil {
			s = &service{dests: map[netip.AddrPort]dest{}, num: num, oldSlots: oldMap}
			byNum[num] = s
		}
		return s
	}
	for _, e := range elems {
		if len(e.Key) != 8 || len(e.Val) != 4 {
			return fmt.Errorf("registry %s %s: element of %d+%d bytes", tableText(t), registryMap, len(e.Key), len(e.Val))
		}
		num, id := nativeEndian.Uint32(e.Key[:4]), nativeEndian.Uint32(e.Key[4:])
		s := get(num)
		if id == svcElemKey {
			if s.Service, err = decodeService(e.Comment); err != nil {
				return fmt.Errorf("registry %s %s: service %d: %w", tableText(t), registryMap, num, err)
			}
			s.table = nativeEndian.Uint32(e.Val)
			continue
		}
		d, err := decodeDest(e.Comment)
		if err != nil {
			return fmt.Errorf("registry %s %s: service %d: %w", tableText(t), registryMap, num, err)
		}
		s.dests[d.Addr] = dest{Dest: d, id: id}
	}
	for num, s := range byNum {
		if s.Method != lvs.DR {
			return fmt.Errorf("registry %s %s: real servers of service %d, which has no element", tableText(t), registryMap, num)
		}
		state[s.Key()] = s
	}
	return nil
}

// readDR lists the netdev table's chains, counters and sets, once, into
// dr, and works out which interfaces the services of state forward out
// of and which slot tables they use.
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
		if strings.HasPrefix(ch.Name, fbPrefix) {
			dr.fb[ch.Name] = 0
			continue
		}
		if idx, ok := strings.CutPrefix(ch.Name, "in_"); ok {
			if i, err := strconv.ParseUint(idx, 10, 32); err == nil {
				dr.base[uint32(i)] = true
				continue
			}
		}
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
		if !s.legacy {
			dr.nums[s.num] = true
		}
		if s.oldSlots {
			dr.oldSlots++
		}
		l, err := layoutOf(s)
		if err != nil {
			return fmt.Errorf("%v: %w", s.Key(), err)
		}
		if s.table != 0 && !s.legacy && !s.oldSlots {
			key := slotKey(l.pos)
			if st := dr.tables[key]; st != nil {
				st.refs++
			} else {
				dr.tables[key] = &slotTable{id: s.table, pos: l.pos, refs: 1}
			}
		}
		// A real server no longer routable has no interface: its
		// service fails its next commit anyway, which says why.
		if l.route(h) == nil {
			s.ifaces = l.ifaces
			for _, idx := range l.ifaces {
				dr.refs[idx]++
			}
			// A chain of an older version ends otherwise, and one
			// whose fallback chain is gone has none.
			if name, err := l.fallbackName(); err == nil && len(l.rs) > 0 && !s.legacy && !s.oldSlots {
				if _, ok := dr.fb[name]; ok {
					s.fb = name
					dr.fb[name]++
				}
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

// drCommit is what a DR commit changes in drState, applied once the
// transaction has committed.
type drCommit struct {
	refs     map[uint32]int
	services int
	tables   map[string]*slotTable
	nums     map[uint32]bool
	numHint  uint32
	ids      map[uint32]bool // slot table ids in use, deleted ones included
	oldSlots int
	fb       map[string]int
}

// commitDR turns the DR services of changes from what the kernel has into
// their next state in one transaction, so packets see every service of
// the chunk either before or after. Only the first service of the table
// takes two more: one for the shared objects (maps, dispatch and fwd
// chains), and the fwd rules, which google/nftables cannot send
// (fillChains).
func (k *Kernel) commitDR(changes []*change) error {
	// Entries a crash left between a commit and its sweep go before a
	// server they name can come back.
	if k.dr.sweep && k.dr.flows {
		if err := k.sweep(nil); err != nil {
			return err
		}
	}
	k.dr.sweep = false
	t := drTable()
	h := k.newHops()
	dc := drCommit{refs: maps.Clone(k.dr.refs), services: k.dr.services, nums: maps.Clone(k.dr.nums), numHint: k.dr.numHint,
		tables: make(map[string]*slotTable, len(k.dr.tables)), ids: make(map[uint32]bool, len(k.dr.tables)), oldSlots: k.dr.oldSlots,
		fb: maps.Clone(k.dr.fb)}
	for key, st := range k.dr.tables {
		cp := *st
		dc.tables[key] = &cp
		dc.ids[st.id] = true
	}
	items := make([]drItem, 0, len(changes))
	for _, ch := range changes {
		it := drItem{key: ch.key, n: objName(ch.key), cur: k.state[ch.key]}
		if it.cur == nil && ch.next == nil {
			continue // gone already: a chunk that failed may have committed, its reply lost
		}
		if it.cur != nil {
			dc.services--
			for _, idx := range it.cur.ifaces {
				dc.refs[idx]--
			}
			if it.cur.oldSlots {
				dc.oldSlots--
			}
		}
		if ch.next != nil {
			next := *ch.next
			next.legacy, next.oldSlots = false, false
			it.next = &next
			dc.services++
			l, err := layoutOf(it.next)
			if err == nil {
				err = l.route(h)
			}
			if err != nil {
				return fmt.Errorf("%v: %w", ch.key, err)
			}
			it.l = l
			for _, idx := range l.ifaces {
				dc.refs[idx]++
			}
		}
		items = append(items, it)
	}
	// One transaction: what google/nftables can send (pre, post) around
	// the services' chains (chainMsgs), in an order where nothing is
	// referenced before it exists or deleted while still referenced.
	var added, gone []uint32
	var fbs, chains []mnl.Message
	pre, err := capture(func(c *nftables.Conn) error {
		c.AddTable(t)
		if dc.services > 0 && !k.dr.shared {
			if err := addShared(c, t); err != nil {
				return err
			}
		}
		if dc.services > 0 && !k.dr.flows {
			if err := addFlowSets(c, t); err != nil {
				return err
			}
		}
		for _, it := range items {
			if err := k.queueDR(c, t, it, &dc); err != nil {
				return fmt.Errorf("%v: %w", it.key, err)
			}
			if it.next == nil {
				continue
			}
			fb, err := it.l.fallbackName()
			if err != nil {
				return fmt.Errorf("%v: %w", it.key, err)
			}
			if len(it.l.rs) == 0 {
				fb = ""
			} else if _, ok := dc.fb[fb]; !ok {
				msgs, err := chainMsgs(t, fb, it.l.fallbackRules())
				if err != nil {
					return fmt.Errorf("%v: %w", it.key, err)
				}
				fbs = append(fbs, msgs...)
				dc.fb[fb] = 0
			}
			if fb != "" {
				dc.fb[fb]++
			}
			it.next.fb = fb
			msgs, err := chainMsgs(t, "svc_"+it.n, it.l.drRules(fb))
			if err != nil {
				return fmt.Errorf("%v: %w", it.key, err)
			}
			chains = append(chains, msgs...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	post, err := capture(func(c *nftables.Conn) error {
		for _, it := range items {
			if err := k.queueDRPost(c, t, it); err != nil {
				return fmt.Errorf("%v: %w", it.key, err)
			}
		}
		// Fallback chains whose last service this commit removed, and
		// all of them with the last service. Not one that no service
		// was known to use before (a service's fallback chain is
		// worked out again at load, which a real server's route having
		// moved to another interface meanwhile would change): its
		// service's chain may still go to it, and the kernel would
		// refuse the whole transaction.
		for name, n := range dc.fb {
			if n <= 0 && (dc.services == 0 || k.dr.fb[name] > 0) {
				c.FlushChain(&nftables.Chain{Table: t, Name: name})
				c.DelChain(&nftables.Chain{Table: t, Name: name})
				delete(dc.fb, name)
			}
		}
		// Slot tables no service uses any more.
		maglev := &nftables.Set{Table: t, Name: maglevSet}
		for key, st := range dc.tables {
			if st.refs > 0 {
				continue
			}
			if err := c.SetDeleteElements(maglev, slotElems(st)); err != nil {
				return fmt.Errorf("slot table %d: %w", st.id, err)
			}
			delete(dc.tables, key)
		}
		// The previous layout's slot map, once no chain looks it up.
		if k.dr.oldMap && dc.oldSlots == 0 {
			c.DelSet(&nftables.Set{Table: t, Name: oldSlotsMap})
		}
		for idx, n := range dc.refs {
			if n > 0 && !k.dr.base[idx] {
				added = append(added, idx)
			}
		}
		for idx := range k.dr.base {
			if dc.refs[idx] <= 0 {
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
		if dc.services == 0 {
			delShared(c, t, k.dr.flows)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := k.send(slices.Concat(pre, fbs, chains, post)); err != nil {
		return err
	}
	stale := departed(items)
	k.dr.sweep = len(stale) > 0

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
	maps.DeleteFunc(dc.refs, func(_ uint32, n int) bool { return n <= 0 })
	k.dr.refs, k.dr.services, k.dr.tables, k.dr.nums, k.dr.numHint, k.dr.fb = dc.refs, dc.services, dc.tables, dc.nums, dc.numHint, dc.fb
	k.dr.shared = dc.services > 0
	k.dr.flows = dc.services > 0
	k.dr.oldMap, k.dr.oldSlots = k.dr.oldMap && dc.oldSlots > 0, dc.oldSlots
	if k.dr.sweep && k.dr.flows {
		if err := k.sweep(stale); err != nil {
			return err
		}
	}
	k.dr.sweep = false
	return nil
}

// queueDR queues the first part of one service's commit: its registry
// elements replaced, the old layout's sets deleted (once its chain is
// flushed, by chainMsgs), counters and slot tables added.
func (k *Kernel) queueDR(c *nftables.Conn, t *nftables.Table, it drItem, dc *drCommit) error {
	reg := &nftables.Set{Table: t, Name: registryMap}
	if it.cur != nil && !it.cur.legacy {
		if err := c.SetDeleteElements(reg, registryElems(it.cur)); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		delete(dc.nums, it.cur.num)
		if it.cur.fb != "" {
			dc.fb[it.cur.fb]--
		}
		dc.numHint = min(dc.numHint, it.cur.num)
		if it.cur.table != 0 && !it.cur.oldSlots {
			if l, err := layoutOf(it.cur); err == nil {
				if st := dc.tables[slotKey(l.pos)]; st != nil {
					st.refs--
				}
			}
		}
	}
	if it.next == nil {
		return nil
	}
	l, s := it.l, it.next
	have := k.dr.objs[it.n]
	for _, o := range l.counters {
		if have == nil || !slices.Contains(have.counters, o) {
			c.AddObj(&nftables.CounterObj{Table: t, Name: o})
		}
	}
	// A new number for a new service, and for one of an older layout,
	// whose number is unknown.
	if it.cur == nil || it.cur.legacy {
		for dc.nums[dc.numHint] {
			dc.numHint++
		}
		s.num = dc.numHint
	}
	dc.nums[s.num] = true
	s.table = 0
	if len(l.pos) > 0 {
		key := slotKey(l.pos)
		st := dc.tables[key]
		if st == nil {
			st = &slotTable{id: tableID(key, dc.ids), pos: l.pos}
			dc.ids[st.id] = true
			dc.tables[key] = st
			if err := c.SetAddElements(&nftables.Set{Table: t, Name: maglevSet}, slotElems(st)); err != nil {
				return fmt.Errorf("slot table: %w", err)
			}
		}
		st.refs++
		s.table = st.id
	}
	if err := c.SetAddElements(reg, registryElems(s)); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// queueDRPost queues the last part of one service's commit, after its
// chain was rewritten: its dispatch element, and the deletion of what it
// no longer has (sets first, then the chains their elements pointed at).
func (k *Kernel) queueDRPost(c *nftables.Conn, t *nftables.Table, it drItem) error {
	if it.cur == nil {
		return c.SetAddElements(dispatchElem(t, it.key, it.n))
	}
	if it.cur.legacy {
		for _, name := range []string{"slots_" + it.n, "reg_" + it.n} {
			c.DelSet(&nftables.Set{Table: t, Name: name})
		}
	}
	if it.next == nil {
		if err := c.SetDeleteElements(dispatchElem(t, it.key, it.n)); err != nil {
			return fmt.Errorf("dispatch: %w", err)
		}
		c.FlushChain(&nftables.Chain{Table: t, Name: "svc_" + it.n})
	}
	have := k.dr.objs[it.n]
	if have == nil {
		return nil
	}
	var keepChains, keepCounters []string
	if it.l != nil {
		keepChains, keepCounters = it.l.chains, it.l.counters
	}
	for _, ch := range have.chains {
		if !slices.Contains(keepChains, ch) {
			c.FlushChain(&nftables.Chain{Table: t, Name: ch})
			c.DelChain(&nftables.Chain{Table: t, Name: ch})
		}
	}
	for _, o := range have.counters {
		if !slices.Contains(keepCounters, o) {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: o})
		}
	}
	return nil
}

// drRules are the rules of a DR service's chain, which ends in fallback
// chain fb. First, for each real server with slots, whether the flow's
// entry in the flow table names it (flows.go): refresh the entry, count
// the packet, forward it. Then, for each again, whether the flow's slot
// in the service's Maglev table belongs to it (table . jhash . i is in
// @maglev): add the flow's entry, count, forward. A flow that gets past
// those found the flow table full (the dynset fails its rule), and goes
// to fb, which forwards it as if there were no flow table
// (fallbackRules). Forwarding is fwd to the server's address out of its
// interface. Each rule loads what it reads (the kernel refuses a rule
// reading a register it did not set). A service with no server with a
// positive weight has only a drop.
func (l *layout) drRules(fb string) []fwdRule {
	if len(l.rs) == 0 {
		return []fwdRule{{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}}}
	}
	forward := func(d dest, exprs []expr.Any) fwdRule {
		return l.fwd(d, append(exprs, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: pktsName(l.n, d.id)}))
	}
	set := flowSet(l.s.Family)
	var rules []fwdRule
	for _, d := range l.rs {
		rules = append(rules, forward(d, append(l.flowKey(d.id),
			&expr.Lookup{SourceRegister: reg32, SetName: set}, l.flowUpdate(false))))
	}
	for i, d := range l.rs {
		exprs := append(l.maglev(i), l.flowKey(d.id)...)
		rules = append(rules, forward(d, append(exprs, l.flowUpdate(true))))
	}
	return append(rules, fwdRule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: fb}}})
}

// fbPrefix starts the names of fallback chains.
const fbPrefix = "fb_"

// fallbackRules are the rules of a fallback chain: per real server with
// slots, whether the flow's slot in the Maglev table is the server's,
// then fwd to it; drop if none is (not reached: every slot has a server).
// They hold nothing of one service (no counter, no flow entry), so that
// every service whose rules they would equal shares the chain: services
// of the same real servers and weights, scheduled alike. A packet
// forwarded here (a new flow while the flow table is full) is counted in
// no per-service counter.
func (l *layout) fallbackRules() []fwdRule {
	var rules []fwdRule
	for i, d := range l.rs {
		rules = append(rules, l.fwd(d, l.maglev(i)))
	}
	return append(rules, fwdRule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
}

// fallbackName names l's fallback chain by the content of its rules (the
// flow's hash, the slot table, each server's address and interface), so
// that services whose fallback rules are equal share one chain, and a
// chain of that name in the kernel holds exactly those rules.
func (l *layout) fallbackName() (string, error) {
	h := fnv.New64a()
	h.Write([]byte("fb1")) // the version of fallbackRules
	for _, e := range l.schedule(reg32 + 1) {
		b, err := expr.Marshal(byte(nftables.TableFamilyNetdev), e)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write(nativeEndian.PutUint32(l.s.table))
	h.Write(nativeEndian.PutUint32(l.fam.nfproto))
	for _, d := range l.rs {
		h.Write(d.Addr.Addr().AsSlice())
		h.Write(nativeEndian.PutUint32(l.ifindex[d.id]))
	}
	return fmt.Sprintf("%s%016x", fbPrefix, h.Sum64()), nil
}

// maglev matches the flows whose slot in l's Maglev table belongs to
// its i-th real server with slots: table . jhash . i in @maglev.
func (l *layout) maglev(i int) []expr.Any {
	return append(l.schedule(reg32+1),
		&expr.Immediate{Register: reg32, Data: nativeEndian.PutUint32(l.s.table)},
		&expr.Immediate{Register: reg32 + 2, Data: nativeEndian.PutUint32(uint32(i))},
		&expr.Lookup{SourceRegister: reg32, SetName: maglevSet})
}

// fwd is a rule of exprs, then fwd to real server d out of its interface.
func (l *layout) fwd(d dest, exprs []expr.Any) fwdRule {
	exprs = append(exprs,
		&expr.Immediate{Register: reg1, Data: d.Addr.Addr().AsSlice()},
		// The interface index is a host-endian int in the kernel.
		&expr.Immediate{Register: reg2, Data: nativeEndian.PutUint32(l.ifindex[d.id])})
	return fwdRule{exprs: exprs, addrReg: reg1, devReg: reg2, nfproto: l.fam.nfproto}
}

// registryElems are service s's registry elements.
func registryElems(s *service) []nftables.SetElement {
	key := func(id uint32) []byte {
		return append(nativeEndian.PutUint32(s.num), nativeEndian.PutUint32(id)...)
	}
	es := []nftables.SetElement{{Key: key(svcElemKey), Val: nativeEndian.PutUint32(s.table), Comment: encodeService(s.Service)}}
	for _, d := range sortedDests(s) {
		es = append(es, nftables.SetElement{Key: key(d.id), Val: make([]byte, 4), Comment: encodeDest(d.Dest)})
	}
	return es
}

// slotElems are slot table st's elements: table . slot . position.
func slotElems(st *slotTable) []nftables.SetElement {
	es := make([]nftables.SetElement, len(st.pos))
	for i, p := range st.pos {
		es[i].Key = slices.Concat(nativeEndian.PutUint32(st.id), nativeEndian.PutUint32(uint32(i)), nativeEndian.PutUint32(p))
	}
	return es
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

// addShared queues what every DR service uses: the dispatch maps and
// chains of both families (flushed and refilled if an older layout left
// them), the registry map and the maglev set.
func addShared(c *nftables.Conn, t *nftables.Table) error {
	pair, err := nftables.ConcatSetType(nftables.TypeInteger, nftables.TypeInteger)
	if err != nil {
		return err
	}
	triple, err := nftables.ConcatSetType(nftables.TypeInteger, nftables.TypeInteger, nftables.TypeInteger)
	if err != nil {
		return err
	}
	if err := c.AddSet(&nftables.Set{Table: t, Name: registryMap, IsMap: true, Concatenation: true, KeyType: pair, DataType: nftables.TypeInteger}, nil); err != nil {
		return fmt.Errorf("%s map: %w", registryMap, err)
	}
	if err := c.AddSet(&nftables.Set{Table: t, Name: maglevSet, Concatenation: true, KeyType: triple}, nil); err != nil {
		return fmt.Errorf("%s set: %w", maglevSet, err)
	}
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		fam := familyOf(f)
		ch := c.AddChain(&nftables.Chain{Table: t, Name: dispatchChain(f)})
		c.FlushChain(ch)
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

// delShared deletes what addShared created, and the flow sets if they
// exist; the chains and elements that refer to them are gone first.
func delShared(c *nftables.Conn, t *nftables.Table, flows bool) {
	if flows {
		for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
			c.DelSet(&nftables.Set{Table: t, Name: flowSet(f)})
		}
	}
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		c.DelChain(&nftables.Chain{Table: t, Name: dispatchChain(f)})
		c.DelSet(&nftables.Set{Table: t, Name: dispatchMap(f, false)})
		c.DelSet(&nftables.Set{Table: t, Name: dispatchMap(f, true)})
	}
	c.DelSet(&nftables.Set{Table: t, Name: registryMap})
	c.DelSet(&nftables.Set{Table: t, Name: maglevSet})
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
