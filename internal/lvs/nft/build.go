package nft

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

var nativeEndian = binaryutil.NativeEndian

// Registers. reg1 and reg2 are the 16-byte NFT_REG_1/2; reg32 is
// NFT_REG32_00, the first 4-byte register, used where a concatenation
// (address . port) must be laid out contiguously for jhash.
const (
	reg1  = 1
	reg2  = 2
	reg32 = 8
)

// nftDynsetOpDelete is NFT_DYNSET_OP_DELETE (kernel 5.16+), which
// golang.org/x/sys/unix does not define.
const nftDynsetOpDelete = 2

// hashSeed seeds every jhash, so that a restart or a rebuild maps the same
// flow to the same slot.
const hashSeed = 0x74616e64 // "tand"

// Base chain priorities.
var (
	natPriority     = nftables.ChainPriorityNATDest // dstnat: DNAT the first packet of a connection
	accountPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest + 1)
	// DR: ahead of other ingress chains an operator may have (nft's
	// examples use 0), so that a forwarded packet is not also filtered
	// as if it were for the director.
	ingressPriority = nftables.ChainPriorityRef(-500)
)

// baseChains are the NAT base chains of a family table.
func baseChains(t *nftables.Table) (natPre, account *nftables.Chain) {
	natPre = &nftables.Chain{Name: "nat_pre", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: natPriority}
	account = &nftables.Chain{Name: "account", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: accountPriority}
	return natPre, account
}

// family holds what differs between the ip and ip6 tables.
type family struct {
	addrLen            uint32
	saddrOff, daddrOff uint32
	nfproto            uint32
	ethertype          uint16 // what `meta protocol` matches in the netdev table
	addrType           nftables.SetDatatype
}

func familyOf(f lvs.AddressFamily) family {
	if f == lvs.IPv6 {
		return family{16, 8, 24, unix.NFPROTO_IPV6, unix.ETH_P_IPV6, nftables.TypeIP6Addr}
	}
	return family{4, 12, 16, unix.NFPROTO_IPV4, unix.ETH_P_IP, nftables.TypeIPAddr}
}

// Object names of a service's real server; n is objName(key).
func pktsName(n string, id uint32) string  { return idName("pkts_", n, id) }
func connsName(n string, id uint32) string { return idName("conns_", n, id) }
func rsChain(n string, id uint32) string   { return idName("rs_", n, id) }

func idName(role, n string, id uint32) string {
	return role + n + "_" + strconv.FormatUint(uint64(id), 10)
}

// layout is everything one service puts in its table, computed before a
// single message is queued so that a failure (a DR next hop without a
// route, say) leaves the transaction unsent.
type layout struct {
	s        *service
	n        string
	fam      family
	slots    []uint32          // slot -> dest id; the scheduler's table
	pos      []uint32          // DR: slot -> index in rs
	rs       []dest            // dests with a chain: those holding slots
	ifindex  map[uint32]uint32 // DR, after route: dest id -> egress interface
	ifaces   []uint32          // DR, after route: the values of ifindex, sorted, once each
	counters []string
	chains   []string
	sets     []string // flushed and refilled maps (not the registry, not persist)
	persist  bool
}

// layout computes s's objects. DR next hops are looked up by route, which
// only a layout being built needs: removing a service whose real server is
// no longer routable must still work.
func layoutOf(s *service) (*layout, error) {
	l := &layout{s: s, n: objName(s.Key()), fam: familyOf(s.Family), persist: s.Method == lvs.NAT && s.PersistenceTimeout > 0}
	ds := make([]dest, 0, len(s.dests))
	for _, d := range s.dests {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b dest) int { return a.Addr.Compare(b.Addr) })
	var err error
	if l.slots, err = slots(s, ds); err != nil {
		return nil, err
	}
	for _, d := range ds {
		l.counters = append(l.counters, pktsName(l.n, d.id))
		if s.Method == lvs.NAT {
			l.counters = append(l.counters, connsName(l.n, d.id))
		}
		if slices.Contains(l.slots, d.id) {
			l.rs = append(l.rs, d)
			if s.Method == lvs.NAT {
				l.chains = append(l.chains, rsChain(l.n, d.id))
			}
		}
	}
	l.chains = append(l.chains, "svc_"+l.n)
	if s.Method == lvs.NAT {
		l.sets = append(l.sets, "slots_"+l.n)
		l.chains = append(l.chains, "acct_"+l.n)
	} else {
		// DR's slot table holds positions in l.rs, not ids, so that
		// services with the same pool share it (drTables).
		l.pos = make([]uint32, len(l.slots))
		for i, id := range l.slots {
			l.pos[i] = uint32(slices.IndexFunc(l.rs, func(d dest) bool { return d.id == id }))
		}
	}
	if l.persist {
		l.sets = append(l.sets, "live_"+l.n)
	}
	return l, nil
}

// route finds the interface out of which each DR real server with slots
// is reached.
func (l *layout) route(h *hops) error {
	l.ifindex = map[uint32]uint32{}
	for _, d := range l.rs {
		idx, err := h.of(d.Addr.Addr())
		if err != nil {
			return fmt.Errorf("real server %v: %w", d.Addr, err)
		}
		l.ifindex[d.id] = idx
		if !slices.Contains(l.ifaces, idx) {
			l.ifaces = append(l.ifaces, idx)
		}
	}
	slices.Sort(l.ifaces)
	return nil
}

// commit sends one transaction that turns NAT service old into next
// (either may be nil) in family f's table; all is the state after it, for
// the dispatch chains, which are rebuilt when dispatch is set.
func (k *Kernel) commit(f lvs.AddressFamily, old, next *service, all map[lvs.ServiceKey]*service, dispatch bool) error {
	var lo, ln *layout
	var err error
	if old != nil {
		if lo, err = layoutOf(old); err != nil {
			return err
		}
	}
	if next != nil {
		if ln, err = layoutOf(next); err != nil {
			return err
		}
	}
	// A fresh connection per transaction: if queueing fails half-way,
	// the messages die with it instead of leaking into the next Flush.
	c, err := k.dial()
	if err != nil {
		return err
	}
	t := table(f)
	c.AddTable(t)
	natPre, account := baseChains(t)
	for _, ch := range []*nftables.Chain{natPre, account} {
		c.AddChain(ch)
		if dispatch {
			c.FlushChain(ch)
		}
	}
	if lo != nil {
		teardown(c, t, lo, ln)
	}
	if ln != nil {
		if err := build(c, t, ln); err != nil {
			return err
		}
	}
	if dispatch {
		keys := make([]lvs.ServiceKey, 0, len(all))
		for key := range all {
			if key.Family == f {
				keys = append(keys, key)
			}
		}
		slices.SortFunc(keys, lvs.ServiceKey.Compare)
		for _, key := range keys {
			if s := all[key]; s.Method == lvs.NAT {
				addNATDispatch(c, natPre, account, s)
			}
		}
	}
	return k.flush(c)
}

// teardown empties what old had and deletes what next does not reuse.
// Flushes come first so that nothing deleted is still referenced.
func teardown(c *nftables.Conn, t *nftables.Table, old, next *layout) {
	reg := &nftables.Set{Table: t, Name: "reg_" + old.n}
	for _, ch := range old.chains {
		c.FlushChain(&nftables.Chain{Table: t, Name: ch})
	}
	for _, s := range old.sets {
		c.FlushSet(&nftables.Set{Table: t, Name: s})
	}
	c.FlushSet(reg)
	keepPersist := next != nil && next.persist
	if old.persist && keepPersist && old.s.PersistenceMask != next.s.PersistenceMask {
		// Entries keyed by the old mask would never match again.
		c.FlushSet(&nftables.Set{Table: t, Name: "persist_" + old.n})
	}
	var keep layout
	if next != nil {
		keep = *next
	}
	for _, ch := range old.chains {
		if !slices.Contains(keep.chains, ch) {
			c.DelChain(&nftables.Chain{Table: t, Name: ch})
		}
	}
	for _, s := range old.sets {
		if !slices.Contains(keep.sets, s) {
			c.DelSet(&nftables.Set{Table: t, Name: s})
		}
	}
	if old.persist && !keepPersist {
		c.DelSet(&nftables.Set{Table: t, Name: "persist_" + old.n})
	}
	for _, o := range old.counters {
		if !slices.Contains(keep.counters, o) {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: o})
		}
	}
	if next == nil {
		c.DelSet(reg)
	}
}

// build adds (or refills) every object of NAT service l. Adding an object that exists
// is a no-op in nf_tables (no NLM_F_EXCL), so objects that survive a
// rebuild keep their identity: counters their values, the persistence map
// its entries.
func build(c *nftables.Conn, t *nftables.Table, l *layout) error {
	s := l.s
	for _, o := range l.counters {
		c.AddObj(&nftables.CounterObj{Table: t, Name: o})
	}
	reg := &nftables.Set{Table: t, Name: "reg_" + l.n, KeyType: nftables.TypeInteger,
		KeyByteOrder: nativeEndian, Comment: "tandem registry " + s.Key().String()}
	elems := []nftables.SetElement{{Key: nativeEndian.PutUint32(svcElemKey), Comment: encodeService(s.Service)}}
	for _, d := range s.dests {
		elems = append(elems, nftables.SetElement{Key: nativeEndian.PutUint32(d.id), Comment: encodeDest(d.Dest)})
	}
	if err := c.AddSet(reg, nil); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := c.SetAddElements(reg, elems); err != nil {
		return fmt.Errorf("registry: %w", err)
	}

	var persist *nftables.Set
	if l.persist {
		persist = &nftables.Set{Table: t, Name: "persist_" + l.n, IsMap: true, HasTimeout: true, Dynamic: true,
			KeyType: l.fam.addrType, DataType: nftables.TypeInteger}
		if err := c.AddSet(persist, nil); err != nil {
			return fmt.Errorf("persistence map: %w", err)
		}
	}

	chains := map[string]*nftables.Chain{}
	for _, name := range l.chains {
		chains[name] = c.AddChain(&nftables.Chain{Table: t, Name: name})
	}
	for _, d := range l.rs {
		c.AddRule(&nftables.Rule{Table: t, Chain: chains[rsChain(l.n, d.id)], Exprs: l.natExprs(d, persist)})
	}
	for _, d := range sortedDests(s) {
		exprs := l.match(payloadAddr(l.fam.daddrOff, l.fam.addrLen), d.Addr.Addr().AsSlice())
		if d.Addr.Port() != 0 {
			exprs = append(exprs, l.match(thPort(2), binaryutil.BigEndian.PutUint16(d.Addr.Port()))...)
		}
		exprs = append(exprs, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: pktsName(l.n, d.id)})
		c.AddRule(&nftables.Rule{Table: t, Chain: chains["acct_"+l.n], Exprs: exprs})
	}

	vmap := func(name string, keys []uint32, ids []uint32) (*nftables.Set, error) {
		set := &nftables.Set{Table: t, Name: name, IsMap: true, KeyType: nftables.TypeInteger,
			DataType: nftables.TypeVerdict, KeyByteOrder: nativeEndian}
		if err := c.AddSet(set, nil); err != nil {
			return nil, err
		}
		var es []nftables.SetElement
		for i, key := range keys {
			es = append(es, nftables.SetElement{Key: nativeEndian.PutUint32(key),
				VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: rsChain(l.n, ids[i])}})
		}
		if len(es) > 0 {
			if err := c.SetAddElements(set, es); err != nil {
				return nil, err
			}
		}
		return set, nil
	}
	slotKeys := make([]uint32, len(l.slots))
	for i := range slotKeys {
		slotKeys[i] = uint32(i)
	}
	slotMap, err := vmap("slots_"+l.n, slotKeys, l.slots)
	if err != nil {
		return fmt.Errorf("slot map: %w", err)
	}
	svc := chains["svc_"+l.n]
	if l.persist {
		ids := make([]uint32, len(l.rs))
		for i, d := range l.rs {
			ids[i] = d.id
		}
		live, err := vmap("live_"+l.n, ids, ids)
		if err != nil {
			return fmt.Errorf("live map: %w", err)
		}
		// A client with an entry pointing at a server still in the
		// table goes there; an entry pointing elsewhere (a removed or
		// inhibited server) misses the live map and is deleted, so that
		// the scheduler's choice below replaces it (a dynset update
		// refreshes an entry's timeout but never its value).
		c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(l.clientKey(),
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg2, IsDestRegSet: true, SetName: persist.Name, SetID: persist.ID},
			&expr.Lookup{SourceRegister: reg2, IsDestRegSet: true, SetName: live.Name, SetID: live.ID})})
		// The kernel wants an initialized data register for any dynset
		// on a map (EINVAL without one, ENODATA if nothing was loaded
		// into it), though delete never reads it.
		c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(l.clientKey(),
			&expr.Immediate{Register: reg2, Data: make([]byte, 4)},
			&expr.Dynset{SrcRegKey: reg1, SrcRegData: reg2, SetName: persist.Name, SetID: persist.ID, Operation: nftDynsetOpDelete})})
	}
	if len(l.slots) > 0 {
		c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(l.schedule(reg1),
			&expr.Lookup{SourceRegister: reg1, IsDestRegSet: true, SetName: slotMap.Name, SetID: slotMap.ID})})
	}
	// No real server with a positive weight: drop rather than let the
	// packet reach the director's own stack (IPVS answers ICMP port
	// unreachable here; a SYN that gets no answer is retried, which is
	// what a client of a pool being refilled wants).
	c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	return nil
}

func sortedDests(s *service) []dest {
	out := make([]dest, 0, len(s.dests))
	for _, d := range s.dests {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b dest) int { return a.Addr.Compare(b.Addr) })
	return out
}

// natExprs is the body of a NAT real server's chain.
func (l *layout) natExprs(d dest, persist *nftables.Set) []expr.Any {
	var exprs []expr.Any
	addr := &expr.Immediate{Register: reg1, Data: d.Addr.Addr().AsSlice()}
	exprs = append(exprs, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: connsName(l.n, d.id)})
	if persist != nil {
		exprs = append(exprs, l.clientKey()...)
		exprs = append(exprs,
			&expr.Immediate{Register: reg2, Data: nativeEndian.PutUint32(d.id)},
			&expr.Dynset{SrcRegKey: reg1, SrcRegData: reg2, SetName: persist.Name, SetID: persist.ID,
				Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: time.Duration(l.s.PersistenceTimeout) * time.Second})
	}
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: l.fam.nfproto, RegAddrMin: reg1}
	exprs = append(exprs, addr)
	if p := d.Addr.Port(); p != 0 {
		exprs = append(exprs, &expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(p)})
		nat.RegProtoMin, nat.Specified = reg2, true
	}
	return append(exprs, nat)
}

// clientKey loads the client address, masked to the persistence
// granularity, into reg1.
func (l *layout) clientKey() []expr.Any {
	// The mask is applied bitwise, as IPVS does (ip_vs_sched_persist), so
	// a mask that is not a prefix (255.0.255.0) works as given.
	mask := l.s.PersistenceMask.AsSlice()
	if len(mask) != int(l.fam.addrLen) {
		mask = net.CIDRMask(int(l.fam.addrLen*8), int(l.fam.addrLen*8))
	}
	return []expr.Any{
		payloadAddr(l.fam.saddrOff, l.fam.addrLen),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: l.fam.addrLen,
			Mask: mask, Xor: make([]byte, l.fam.addrLen)},
	}
}

// schedule leaves the slot of a new flow in dreg: a round-robin counter
// for NAT's rr/wrr-like schedulers (conntrack keeps each connection on its
// server), a jhash of the flow for the hashing schedulers and for all of DR
// (no conntrack: every packet of a flow must hash to the same server).
func (l *layout) schedule(dreg uint32) []expr.Any {
	n := uint32(len(l.slots))
	s := l.s
	var key []expr.Any
	keyLen, src := l.fam.addrLen, uint32(reg1)
	sport := func() {
		// address . port in consecutive 4-byte registers, as nft lays
		// out a concatenation; the payload load zeroes the padding.
		key = []expr.Any{
			&expr.Payload{DestRegister: reg32, Base: expr.PayloadBaseNetworkHeader, Offset: l.fam.saddrOff, Len: l.fam.addrLen},
			&expr.Payload{DestRegister: reg32 + l.fam.addrLen/4, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		}
		keyLen, src = l.fam.addrLen+4, reg32
	}
	switch {
	case s.Method == lvs.DR && s.PersistenceTimeout > 0:
		key = l.clientKey()
	case s.Scheduler == lvs.SourceHash && s.Flags&lvs.FlagSHPort != 0,
		s.Scheduler == lvs.MaglevHash && s.Flags&lvs.FlagMHPort != 0:
		sport()
	case s.Scheduler == lvs.SourceHash, s.Scheduler == lvs.MaglevHash:
		key = []expr.Any{payloadAddr(l.fam.saddrOff, l.fam.addrLen)}
	case s.Scheduler == lvs.DestinationHash, s.Scheduler == lvs.LocalityLeastConn, s.Scheduler == lvs.LocalityLeastConnReplicated:
		key = []expr.Any{payloadAddr(l.fam.daddrOff, l.fam.addrLen)}
	case s.Method == lvs.DR:
		sport()
	default:
		return []expr.Any{&expr.Numgen{Register: dreg, Modulus: n, Type: unix.NFT_NG_INCREMENTAL}}
	}
	return append(key, &expr.Hash{SourceRegister: src, DestRegister: dreg, Length: keyLen,
		Modulus: n, Seed: hashSeed, Type: expr.HashTypeJenkins})
}

// serviceMatch matches the packets of l's NAT service.
func (l *layout) serviceMatch() []expr.Any {
	s := l.s
	if s.FWMark != 0 {
		return l.match(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1}, nativeEndian.PutUint32(s.FWMark))
	}
	match := l.match(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, []byte{byte(s.Protocol)})
	match = append(match, l.match(payloadAddr(l.fam.daddrOff, l.fam.addrLen), s.VIP.AsSlice())...)
	if s.Port != 0 {
		match = append(match, l.match(thPort(2), binaryutil.BigEndian.PutUint16(s.Port))...)
	}
	return match
}

// addNATDispatch sends NAT service s's traffic to its chain from the dstnat
// hook, with an accounting jump in the chain after it.
func addNATDispatch(c *nftables.Conn, natPre, account *nftables.Chain, s *service) {
	l := &layout{s: s, n: objName(s.Key()), fam: familyOf(s.Family)}
	match := l.serviceMatch()
	jump := func(ch *nftables.Chain, exprs []expr.Any, to string) {
		exprs = append(slices.Clone(exprs), &expr.Verdict{Kind: expr.VerdictGoto, Chain: to})
		c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: exprs})
	}
	jump(natPre, match, "svc_"+l.n)
	// Every packet of a connection the service scheduled, in the client's
	// direction: its original tuple still names the VIP after DNAT.
	acct := l.match(&expr.Ct{Key: expr.CtKeyDIRECTION, Register: reg1}, []byte{0}) // IP_CT_DIR_ORIGINAL
	if s.FWMark != 0 {
		acct = append(acct, match...)
	} else {
		acct = append(acct, l.match(&expr.Ct{Key: expr.CtKeyPROTOCOL, Register: reg1}, []byte{byte(s.Protocol)})...)
		acct = append(acct, l.match(&expr.Ct{Key: expr.CtKeyDST, Register: reg1}, s.VIP.AsSlice())...)
		if s.Port != 0 {
			acct = append(acct, l.match(&expr.Ct{Key: expr.CtKeyPROTODST, Register: reg1}, binaryutil.BigEndian.PutUint16(s.Port))...)
		}
	}
	jump(account, acct, "acct_"+l.n)
}

// match loads with load (into reg1) and compares with want.
func (l *layout) match(load expr.Any, want []byte) []expr.Any {
	return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: want}}
}

func payloadAddr(off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

// thPort loads the transport port at off (0 source, 2 destination: the
// same for TCP, UDP and SCTP).
func thPort(off uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}
