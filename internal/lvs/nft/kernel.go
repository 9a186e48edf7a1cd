package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	mnl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// TableName is the name of the tables Tandem owns: `ip tandem` and
// `ip6 tandem` for NAT, `netdev tandem` for DR. Nothing outside them is
// ever read or changed.
const TableName = "tandem"

var _ lvs.Kernel = (*Kernel)(nil)

// Kernel is an lvs.Kernel on nftables. It is not safe for concurrent use
// (state is a cache every call may reread or replace): the daemon
// serializes its reconciles and its status reads.
type Kernel struct {
	conn  *nftables.Conn // reads, and Flush
	dial  func() (*nftables.Conn, error)
	route *netlink.Handle // route lookups for DR next hops
	netns int             // namespace fd for fwd rule batches, -1: the caller's

	// state is the registry as last read or written; nil means "read it
	// before the next Apply" (at start, and after a failed transaction,
	// when memory and kernel may disagree).
	state map[lvs.ServiceKey]*service
	// gen is the ruleset generation (NFT_MSG_GETGEN) state was read at,
	// and sent the transactions this Kernel committed since: each commit
	// bumps the generation by one, so a generation of gen+sent means
	// nobody else changed the ruleset and state needs no rereading.
	gen  uint32
	sent uint32
	// loads counts full reads (load), for tests.
	loads int
	// genConn asks for the generation (reconciles ask once per service).
	genConn *mnl.Conn
	// dr is what the netdev table holds besides the registries, known
	// exactly when state is.
	dr *drState
}

// service is one virtual service as the registry holds it.
type service struct {
	lvs.Service // Method is the data-plane kind: NAT or DR
	dests       map[netip.AddrPort]dest
	// ifaces are the interfaces a DR service forwards out of, sorted:
	// each needs an ingress chain. Known once committed or loaded.
	ifaces []uint32
	// num keys a DR service in the registry; table is its slot table
	// (0: none, no server has a positive weight).
	num, table uint32
	// legacy marks a DR service read from an older layout (sets of its
	// own): its next commit rebuilds it in this one. oldSlots marks one
	// of the layout whose slot tables were a map (oldSlotsMap): its next
	// commit rewrites its chain to look up maglevSet.
	legacy, oldSlots bool
	// fb is the fallback chain a DR service's chain ends with (dr.go,
	// fallbackName), "" for none.
	fb string
}

// dest is a real server and its id, which names its chain and counters
// and is what persistence entries point at. Ids are stable for the life
// of the real server in the service, so that a rebuild (a weight change,
// another server coming or going) keeps its counters and its persistent
// clients.
type dest struct {
	lvs.Dest
	id uint32
}

// Option configures New.
type Option func(*options)

type options struct {
	netns int // -1: the caller's
}

// WithNetNS programs the network namespace open as fd instead of the
// caller's (tests, and `tandem lab`). The Kernel does not close fd.
func WithNetNS(fd int) Option { return func(o *options) { o.netns = fd } }

// New returns a Kernel. It changes nothing: the tables are created by the
// first Apply and read back by Services, so a Kernel started after a crash
// reports what the previous process programmed.
func New(opts ...Option) (*Kernel, error) {
	o := options{netns: -1}
	for _, f := range opts {
		f(&o)
	}
	dial := func() (*nftables.Conn, error) { return nftables.New(nftables.WithSockOptions(bigBuffers)) }
	newRoute := func() (*netlink.Handle, error) { return netlink.NewHandle() }
	if o.netns >= 0 {
		dial = func() (*nftables.Conn, error) {
			return nftables.New(nftables.WithNetNSFd(o.netns), nftables.WithSockOptions(bigBuffers))
		}
		newRoute = func() (*netlink.Handle, error) { return netlink.NewHandleAt(netns.NsHandle(o.netns)) }
	}
	conn, err := dial()
	if err != nil {
		return nil, fmt.Errorf("lvs/nft: open netlink: %w", err)
	}
	route, err := newRoute()
	if err != nil {
		return nil, fmt.Errorf("lvs/nft: open rtnetlink: %w", err)
	}
	// Fail at start, in one line, on a kernel without nf_tables rather
	// than on the first reconcile (DESIGN.md, principle 4).
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
		route.Close()
		return nil, fmt.Errorf("lvs/nft: nftables unavailable (kernel needs CONFIG_NF_TABLES, nf_nat and, for DR, nft_fwd_netdev): %w", err)
	}
	return &Kernel{conn: conn, dial: dial, route: route, netns: o.netns}, nil
}

func table(f lvs.AddressFamily) *nftables.Table {
	fam := nftables.TableFamilyIPv4
	if f == lvs.IPv6 {
		fam = nftables.TableFamilyIPv6
	}
	return &nftables.Table{Name: TableName, Family: fam}
}

// drTable holds the DR services of both address families: fwd exists only
// in the netdev family, whose ingress hook sees packets before the
// director's IP stack (and conntrack) does.
func drTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev}
}

// allTables are every table a Kernel may create.
func allTables() []*nftables.Table {
	return []*nftables.Table{table(lvs.IPv4), table(lvs.IPv6), drTable()}
}

// Services returns every service of both tables, in lvs.ServiceKey
// order, with Method set to the service's forwarding method, as the
// registries hold them. They are reread from the kernel only if another
// process changed the ruleset since this Kernel last read or wrote it.
func (k *Kernel) Services() ([]lvs.Service, error) {
	if err := k.fresh(); err != nil {
		return nil, err
	}
	out := make([]lvs.Service, 0, len(k.state))
	for _, s := range k.state {
		out = append(out, s.Service)
	}
	slices.SortFunc(out, func(a, b lvs.Service) int { return a.Key().Compare(b.Key()) })
	return out, nil
}

// Dests returns service key's real servers, sorted by address.
func (k *Kernel) Dests(key lvs.ServiceKey) ([]lvs.Dest, error) {
	_, s, err := k.find(key)
	if err != nil {
		return nil, err
	}
	return s.sortedDests(), nil
}

func (s *service) sortedDests() []lvs.Dest {
	out := make([]lvs.Dest, 0, len(s.dests))
	for _, d := range s.dests {
		out = append(out, d.Dest)
	}
	slices.SortFunc(out, func(a, b lvs.Dest) int { return a.Addr.Compare(b.Addr) })
	return out
}

// find returns service key and the table that holds it: the family's for
// NAT, the netdev one for DR.
func (k *Kernel) find(key lvs.ServiceKey) (*nftables.Table, *service, error) {
	if err := k.fresh(); err != nil {
		return nil, nil, err
	}
	if key.Family == 0 && key.VIP.IsValid() { // as the reconciler normalizes it
		key.Family = lvs.IPv4
		if key.VIP.Is6() {
			key.Family = lvs.IPv6
		}
	}
	s := k.state[key]
	if s == nil {
		return nil, nil, fmt.Errorf("lvs/nft: %v: %w", key, os.ErrNotExist)
	}
	return tableOf(s), s, nil
}

// tableOf is the table that holds s: its family's for NAT, the netdev
// one for DR.
func tableOf(s *service) *nftables.Table {
	if s.Method == lvs.DR {
		return drTable()
	}
	return table(s.Family)
}

// fresh rereads the kernel's state unless it is known and nobody else
// committed since (see Kernel.gen).
func (k *Kernel) fresh() error {
	if k.state != nil {
		g, err := k.generation()
		if err != nil {
			return err
		}
		if g == k.gen+k.sent {
			k.gen, k.sent = g, 0
			return nil
		}
	}
	if err := k.load(); err != nil {
		return err
	}
	return k.migrate()
}

// migrate rebuilds the DR services that an older layout left (a registry
// and a slot map per service and a chain per real server; or slot tables
// in a shared map) in this one, each in the transaction of its chunk, so
// their traffic keeps flowing. Their counters are kept.
func (k *Kernel) migrate() error {
	var changes []*change
	for key, s := range k.state {
		if s.legacy || s.oldSlots {
			changes = append(changes, &change{key: key, old: s, next: s})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	slices.SortFunc(changes, func(a, b *change) int { return a.key.Compare(b.key) })
	if n, err := k.commitChanges(context.Background(), changes); err != nil {
		k.state = nil
		return fmt.Errorf("lvs/nft: rebuild %v of an older layout: %w", changes[n].key, err)
	}
	return nil
}

// flush sends c's transaction and counts it (Kernel.gen).
func (k *Kernel) flush(c *nftables.Conn) error {
	if err := c.Flush(); err != nil {
		return err
	}
	k.sent++
	return nil
}

// generation asks the kernel for the ruleset's generation, which every
// committed nf_tables transaction, anyone's, increments.
func (k *Kernel) generation() (uint32, error) {
	if k.genConn == nil {
		c, err := mnl.Dial(unix.NETLINK_NETFILTER, &mnl.Config{NetNS: max(k.netns, 0)})
		if err != nil {
			return 0, fmt.Errorf("lvs/nft: open netlink: %w", err)
		}
		k.genConn = c
	}
	msgs, err := k.genConn.Execute(mnl.Message{
		Header: mnl.Header{Type: mnl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: mnl.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, 0),
	})
	if err != nil {
		k.genConn.Close()
		k.genConn = nil // a fresh socket next time
		return 0, fmt.Errorf("lvs/nft: ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := mnl.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("lvs/nft: ruleset generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("lvs/nft: ruleset generation: no NFTA_GEN_ID in the reply")
}

// load reads every registry into k.state, and what the netdev table holds
// besides (readDR). It is the only full listing: commits keep both in step
// with what they send.
func (k *Kernel) load() error {
	k.state, k.dr = nil, nil
	k.loads++
	// The generation before reading: a change made while reading makes
	// the next fresh read again.
	gen, err := k.generation()
	if err != nil {
		return err
	}
	state := map[lvs.ServiceKey]*service{}
	dr := newDRState()
	for _, t := range allTables() {
		ok, err := k.hasTable(t)
		if err != nil {
			return err
		}
		if !ok {
			continue // never programmed, or flushed
		}
		sets, err := k.conn.GetSets(t)
		if err != nil {
			return fmt.Errorf("lvs/nft: list sets of %s: %w", tableText(t), err)
		}
		netdev := t.Family == nftables.TableFamilyNetdev
		if netdev {
			has := func(name string) bool {
				return slices.ContainsFunc(sets, func(s *nftables.Set) bool { return s.Name == name })
			}
			dr.shared, dr.oldMap = has(maglevSet), has(oldSlotsMap)
			// A crash may have come between a commit and its sweep.
			dr.flows = has(flowSet(lvs.IPv4))
			dr.sweep = dr.flows
		}
		for _, set := range sets {
			if netdev && set.Name == registryMap {
				if err := k.readRegistry(state, dr.oldMap); err != nil {
					return fmt.Errorf("lvs/nft: %w", err)
				}
				continue
			}
			// NAT's registries, and in the netdev table those of the
			// layout before the shared registry, rebuilt by their next
			// commit.
			if !strings.HasPrefix(set.Name, "reg_") {
				continue
			}
			s, err := k.readService(t, set.Name)
			if err != nil {
				return fmt.Errorf("lvs/nft: %w", err)
			}
			s.legacy = netdev
			state[s.Key()] = s
		}
		if netdev {
			if err := k.readDR(dr, state); err != nil {
				return fmt.Errorf("lvs/nft: %w", err)
			}
		}
	}
	k.state, k.dr, k.gen, k.sent = state, dr, gen, 0
	return nil
}

// readService decodes one registry set of a NAT service (or of a DR
// service of the older layout).
func (k *Kernel) readService(t *nftables.Table, name string) (*service, error) {
	elems, err := k.conn.GetSetElements(&nftables.Set{Table: t, Name: name, KeyType: nftables.TypeInteger})
	if err != nil {
		return nil, fmt.Errorf("read registry %s %s: %w", tableText(t), name, err)
	}
	s := &service{dests: map[netip.AddrPort]dest{}}
	found := false
	for _, e := range elems {
		if len(e.Key) != 4 {
			return nil, fmt.Errorf("registry %s %s: key of %d bytes", tableText(t), name, len(e.Key))
		}
		id := nativeEndian.Uint32(e.Key)
		if id == svcElemKey {
			if s.Service, err = decodeService(e.Comment); err != nil {
				return nil, fmt.Errorf("registry %s %s: %w", tableText(t), name, err)
			}
			found = true
			continue
		}
		d, err := decodeDest(e.Comment)
		if err != nil {
			return nil, fmt.Errorf("registry %s %s: %w", tableText(t), name, err)
		}
		s.dests[d.Addr] = dest{Dest: d, id: id}
	}
	if !found {
		return nil, fmt.Errorf("registry %s %s has no service element", tableText(t), name)
	}
	return s, nil
}

// hasTable reports whether t exists. (google/nftables loses the errno of
// a failed dump, so "no such table" cannot be told from other errors.)
func (k *Kernel) hasTable(t *nftables.Table) (bool, error) {
	ts, err := k.conn.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("lvs/nft: list tables: %w", err)
	}
	return slices.ContainsFunc(ts, func(o *nftables.Table) bool { return o.Name == t.Name }), nil
}

func tableText(t *nftables.Table) string {
	switch t.Family {
	case nftables.TableFamilyIPv6:
		return "ip6 " + t.Name
	case nftables.TableFamilyNetdev:
		return "netdev " + t.Name
	}
	return "ip " + t.Name
}

// change is one service's part of a plan: its state before the plan and
// after its batch, and the index of its batch's first op.
type change struct {
	key       lvs.ServiceKey
	old, next *service // nil: absent
	first     int
}

// Apply implements lvs.Kernel. Each service's batch is one rebuild, from
// its state before the batch to its state after its last op, and is
// committed whole or not at all (see the package documentation): NAT
// services one transaction each, DR services many to a transaction. A
// batch with an op the backend refuses before sending anything (a real
// server added twice, TUN) is not applied; the batches before it are.
func (k *Kernel) Apply(ctx context.Context, plan lvs.Plan) (int, error) {
	if err := k.fresh(); err != nil {
		return 0, err
	}
	// What the kernel will hold after each batch, computed before
	// anything is sent; only the services the plan touches are copied.
	var changes []*change
	seen := map[lvs.ServiceKey]bool{}
	total, n := len(plan.Ops()), 0
	var refused error
batches:
	for _, b := range plan {
		if seen[b.Key] {
			refused = fmt.Errorf("lvs/nft: %v: two batches in one plan", b.Key)
			break
		}
		seen[b.Key] = true
		ch := &change{key: b.Key, old: k.state[b.Key], first: n}
		ch.next = ch.old
		for i, op := range b.Ops {
			next, err := nextState(ch.next, op)
			if err == nil && op.Service.Key() != b.Key {
				err = fmt.Errorf("%v in the batch of %v", op.Service.Key(), b.Key)
			}
			if err != nil {
				refused = &lvs.OpError{Op: op, Index: n + i, Total: total, Err: fmt.Errorf("lvs/nft: %w", err)}
				break batches
			}
			ch.next = next
		}
		if ch.old != nil || ch.next != nil {
			changes = append(changes, ch)
		}
		n += len(b.Ops)
	}
	if c, err := k.commitChanges(ctx, changes); err != nil {
		k.state = nil // memory and kernel may disagree; re-read before the next op
		ch := changes[c]
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return ch.first, err
		}
		return ch.first, fmt.Errorf("lvs/nft: commit %v: %w", ch.key, err)
	}
	return n, refused
}

// commitChanges commits changes in order: NAT services one transaction
// each, consecutive DR services in chunks (commitDR). It returns how many
// were committed.
func (k *Kernel) commitChanges(ctx context.Context, changes []*change) (int, error) {
	for i := 0; i < len(changes); {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		ch := changes[i]
		if methodOf(ch.old, ch.next) != lvs.DR {
			// The NAT dispatch chains list every NAT service of the
			// family, so they are rebuilt only when that set changes.
			k.state[ch.key] = ch.next
			if ch.next == nil {
				delete(k.state, ch.key)
			}
			if err := k.commit(ch.key.Family, ch.old, ch.next, k.state, ch.old == nil || ch.next == nil); err != nil {
				return i, err
			}
			i++
			continue
		}
		j := i + 1
		for budget := drWeight(ch); j < len(changes) && methodOf(changes[j].old, changes[j].next) == lvs.DR; j++ {
			if budget += drWeight(changes[j]); budget > drChunk {
				break
			}
		}
		if err := k.commitDR(changes[i:j]); err != nil {
			if j-i == 1 {
				return i, err
			}
			// Find the service that fails, committing the others one
			// by one, from what the kernel holds now: a failed chunk
			// may have left unreferenced counters and chains.
			if err := k.load(); err != nil {
				return i, err
			}
			for ; i < j; i++ {
				if err := k.commitDR(changes[i : i+1]); err != nil {
					return i, err
				}
			}
		}
		i = j
	}
	return len(changes), nil
}

// nextState is the service cur (nil: absent) after op, or an error naming
// what the backend refuses. It changes nothing.
func nextState(cur *service, op lvs.Op) (*service, error) {
	key := op.Service.Key()
	if cur == nil && op.Kind != lvs.AddService {
		return nil, fmt.Errorf("%v: no such service: %w", key, os.ErrNotExist)
	}
	var next *service
	switch op.Kind {
	case lvs.AddService, lvs.UpdateService:
		if op.Kind == lvs.AddService && cur != nil {
			return nil, fmt.Errorf("add %v: %w", key, os.ErrExist)
		}
		svc := op.Service
		if svc.Method == lvs.MethodUnset {
			svc.Method = lvs.NAT // keepalived's default lb_kind
		}
		next = &service{Service: svc, dests: map[netip.AddrPort]dest{}}
		if cur != nil {
			next.num, next.legacy, next.oldSlots = cur.num, cur.legacy, cur.oldSlots
			next.Method = cur.Method // a service's method is part of its identity
			maps.Copy(next.dests, cur.dests)
		}
	case lvs.DelService:
		return nil, nil
	case lvs.AddDest, lvs.UpdateDest, lvs.DelDest:
		next = &service{Service: cur.Service, dests: maps.Clone(cur.dests), num: cur.num, legacy: cur.legacy, oldSlots: cur.oldSlots}
		old, exists := next.dests[op.Dest.Addr]
		switch {
		case op.Kind == lvs.AddDest && exists:
			return nil, fmt.Errorf("%v: add real server %v: %w", key, op.Dest.Addr, os.ErrExist)
		case op.Kind != lvs.AddDest && !exists:
			return nil, fmt.Errorf("%v: real server %v: %w", key, op.Dest.Addr, os.ErrNotExist)
		case op.Kind == lvs.DelDest:
			delete(next.dests, op.Dest.Addr)
		case op.Kind == lvs.AddDest:
			next.dests[op.Dest.Addr] = dest{Dest: op.Dest, id: freeID(next.dests)}
		default:
			next.dests[op.Dest.Addr] = dest{Dest: op.Dest, id: old.id}
		}
	default:
		return nil, fmt.Errorf("%v: unknown op kind %v", key, op.Kind)
	}
	return next, next.check()
}

// methodOf is the forwarding method of a service being changed from old to
// next (one may be nil; a service's method never changes).
func methodOf(old, next *service) lvs.Method {
	if next != nil {
		return next.Method
	}
	return old.Method
}

// freeID returns the smallest id no dest of ds uses.
func freeID(ds map[netip.AddrPort]dest) uint32 {
	used := make(map[uint32]bool, len(ds))
	for _, d := range ds {
		used[d.id] = true
	}
	var id uint32
	for used[id] {
		id++
	}
	return id
}

// check rejects what this backend cannot program, naming the service.
func (s *service) check() error {
	k := s.Key()
	switch s.Method {
	case lvs.TUN:
		return fmt.Errorf("%v: lb_kind TUN is not supported by the nftables backend (it has no IP-in-IP encapsulation); use the ipvs backend", k)
	case lvs.DR:
		if k.FWMark != 0 {
			return fmt.Errorf("%v: lb_kind DR with a firewall mark is not supported by the nftables backend: DR is scheduled at the netdev ingress hook, before any rule can set a mark", k)
		}
	}
	if s.Flags&lvs.FlagOnePacket != 0 {
		return fmt.Errorf("%v: one-packet scheduling (ops) is not supported by the nftables backend", k)
	}
	for _, d := range s.dests {
		if d.Method != s.Method {
			return fmt.Errorf("%v: real server %v: lb_kind %v differs from the service's %v; the nftables backend needs one method per service", k, d.Addr, d.Method, s.Method)
		}
	}
	return nil
}

// DestStats are a real server's counters.
type DestStats struct {
	Addr netip.AddrPort
	// Conns counts connections scheduled to the server (NAT only: DR sees
	// packets, not connections, and leaves it 0).
	Conns uint64
	// Packets and Bytes count traffic from clients to the server: in NAT
	// every packet of its connections in the original direction, in DR
	// every packet forwarded to it.
	Packets, Bytes uint64
}

// Stats returns the counters of service key's real servers, sorted by
// address, for `tandem lvs list`. Counters live as long as the real server
// stays in the service: weight changes and other rebuilds keep them. It
// reads the service's counters by name; Counters reads every service's in
// one listing per table.
func (k *Kernel) Stats(key lvs.ServiceKey) ([]DestStats, error) {
	t, s, err := k.find(key)
	if err != nil {
		return nil, err
	}
	return s.stats(func(name string) (*nftables.CounterObj, error) {
		o, err := k.conn.GetObject(&nftables.CounterObj{Table: t, Name: name})
		if err != nil {
			return nil, err
		}
		c, ok := o.(*nftables.CounterObj)
		if !ok {
			return nil, fmt.Errorf("a %T, not a counter", o)
		}
		return c, nil
	})
}

// Counters implements lvs.Kernel: Stats of every service, from one dump
// of each table's counters (what `tandem status` shows, at the cost of one
// listing whatever the number of services). nftables keeps no connection
// state per real server: the connections scheduled to it (NAT) are
// reported as active ones.
func (k *Kernel) Counters() (map[lvs.ServiceKey][]lvs.DestCounters, error) {
	if err := k.fresh(); err != nil {
		return nil, err
	}
	counters := map[nftables.TableFamily]map[string]*nftables.CounterObj{}
	for _, s := range k.state {
		t := tableOf(s)
		if counters[t.Family] != nil {
			continue
		}
		objs, err := k.conn.GetObjects(t)
		if err != nil {
			return nil, fmt.Errorf("lvs/nft: list counters of %s: %w", tableText(t), err)
		}
		byName := make(map[string]*nftables.CounterObj, len(objs))
		for _, o := range objs {
			if c, ok := o.(*nftables.CounterObj); ok {
				byName[c.Name] = c
			}
		}
		counters[t.Family] = byName
	}
	out := make(map[lvs.ServiceKey][]lvs.DestCounters, len(k.state))
	for key, s := range k.state {
		byName := counters[tableOf(s).Family]
		ds, err := s.stats(func(name string) (*nftables.CounterObj, error) {
			if c := byName[name]; c != nil {
				return c, nil
			}
			return nil, os.ErrNotExist
		})
		if err != nil {
			return nil, err
		}
		cs := make([]lvs.DestCounters, len(ds))
		for i, d := range ds {
			cs[i] = lvs.DestCounters{Addr: d.Addr, ActiveConns: d.Conns, Packets: d.Packets, Bytes: d.Bytes}
		}
		out[key] = cs
	}
	return out, nil
}

// stats are s's counters, read by get.
func (s *service) stats(get func(name string) (*nftables.CounterObj, error)) ([]DestStats, error) {
	n := objName(s.Key())
	read := func(name string) (*nftables.CounterObj, error) {
		c, err := get(name)
		if err != nil {
			return nil, fmt.Errorf("lvs/nft: %v: read counter %s: %w", s.Key(), name, err)
		}
		return c, nil
	}
	out := make([]DestStats, 0, len(s.dests))
	for _, d := range s.dests {
		st := DestStats{Addr: d.Addr}
		c, err := read(pktsName(n, d.id))
		if err != nil {
			return nil, err
		}
		st.Packets, st.Bytes = c.Packets, c.Bytes
		if s.Method == lvs.NAT {
			if c, err = read(connsName(n, d.id)); err != nil {
				return nil, err
			}
			st.Conns = c.Packets
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b DestStats) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// Flush deletes Tandem's tables, and with them every service, in one
// transaction. The Kernel stays usable: the next Apply starts afresh.
func (k *Kernel) Flush() error {
	for _, t := range allTables() {
		ok, err := k.hasTable(t)
		if err != nil {
			return fmt.Errorf("lvs/nft: flush: %w", err)
		}
		if ok {
			k.conn.DelTable(t)
		}
	}
	if err := k.flush(k.conn); err != nil {
		k.state = nil
		return fmt.Errorf("lvs/nft: flush: %w", err)
	}
	k.state, k.dr = map[lvs.ServiceKey]*service{}, newDRState()
	return nil
}

// Close removes everything the Kernel programmed (Flush), as a stopping
// director must (DESIGN.md, principle 4), and releases its sockets.
func (k *Kernel) Close() error {
	err := k.Flush()
	k.route.Close()
	if k.genConn != nil {
		k.genConn.Close()
	}
	return err
}
