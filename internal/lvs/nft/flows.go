package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// The DR flow table: what keeps an established flow on its real server
// when the director's Maglev table changes under it (a weight change,
// a server added, or two directors' health views differing for a moment
// around a failover), so that only new flows move. It is Katran's LRU
// idea (facebookincubator/katran, the per-CPU connection table looked up
// before the consistent hash) in nftables terms.
//
// Each DR service's chain (drRules) first tries, for each of its real
// servers with slots, whether the flow's entry names that server:
//
//	num . client . port . id  in @flows4  ->  refresh, count, fwd to id
//
// and only then schedules by Maglev; the rule of the chosen server adds
// the flow's entry before forwarding. When the set is full, adding fails
// the rule, and the flow goes on to the service's fallback chain (dr.go,
// fallbackRules: shared by the services of equal pools), which forwards
// by Maglev alone, as before there was a flow table; those packets are
// counted in no per-service counter. The entry is the flow's stickiness
// key, the same one persistence uses, with the timeout that goes with it:
//
//   - no persistence: client address and port (the unit Maglev hashes for
//     DR), idle timeout flowTimeout of the protocol (IPVS's defaults);
//   - persistence_timeout T: the client address masked to the persistence
//     granularity, port 0, timeout T. This is IPVS's persistence template:
//     a client stays on its server while it is active, even if the pool
//     changes; it goes back to the Maglev choice after T idle.
//
// Entries are refreshed by every packet that uses them. The sets are
// plain sets keyed by the server's id, not maps from flow to server: a
// rule looking up a map, a data map as much as a verdict map, binds to
// it, and binding walks the rules bound to the map before (all of them,
// unless one is of the same chain) and, for a chain's first, every
// element of the map (nf_tables_bind_set; see dr.go): here every service
// and every live flow. Lookups and dynset updates of a plain set bind in
// constant time, whatever the number of services and flows. (A dynset cannot write a verdict map at
// all: the kernel refuses it, EOPNOTSUPP.)
//
// A server that loses its slots (removed, or weight 0: down with
// inhibit_on_failure) has no rule any more, so its entries stop matching
// at once and its flows are rescheduled, as DR must (the server is not
// there to finish them). Its stale entries are then deleted (sweep), so
// that when it comes back under the same id it gets none of the flows
// that moved away meanwhile. Two directors need not share these tables:
// a flow that fails over finds no entry on the new master and is
// scheduled by the same Maglev table (maglev.go: the table depends only
// on the set of servers and weights), hence to the same server.

// flowTimeout is how long an entry outlives the last packet of its flow
// without persistence: IPVS's defaults for an established TCP connection
// (15 minutes) and for UDP (5 minutes). A new flow's entry gets
// flowSetupTimeout until its second packet (IPVS's SYN_RECV timeout), so
// that a flood of first packets (SYNs from random ports) leaves entries
// for a minute, not a quarter of an hour. There is no connection state in
// the ingress hook to shorten a closed connection's entry (IPVS's FIN_WAIT
// 2 minutes): an entry of a closed connection only pins a reused client
// port to the server it had, which is a live server.
func flowTimeout(s *service, first bool) time.Duration {
	switch {
	case s.PersistenceTimeout > 0:
		return time.Duration(s.PersistenceTimeout) * time.Second
	case first:
		return flowSetupTimeout
	case s.Protocol == lvs.UDP:
		return 5 * time.Minute
	}
	return 15 * time.Minute
}

// flowSetupTimeout is a new flow's entry's timeout (see flowTimeout).
const flowSetupTimeout = time.Minute

// flowCapacity bounds each flow set (the kernel caps a dynamic set at
// 65535 elements unless it is given a size). A new flow that finds the
// set full is forwarded by Maglev alone, with no entry (fallbackRules),
// as before there was a flow table. About 100 bytes of kernel memory per
// entry in use.
var flowCapacity uint32 = 1 << 20 // a variable for tests

// flowSet is the name of family f's flow set.
func flowSet(f lvs.AddressFamily) string {
	if f == lvs.IPv6 {
		return "flows6"
	}
	return "flows4"
}

// addFlowSets queues the flow sets of both families.
func addFlowSets(c *nftables.Conn, t *nftables.Table) error {
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		kt, err := nftables.ConcatSetType(nftables.TypeInteger, familyOf(f).addrType, nftables.TypeInetService, nftables.TypeInteger)
		if err != nil {
			return err
		}
		if err := c.AddSet(&nftables.Set{Table: t, Name: flowSet(f), Concatenation: true, KeyType: kt,
			HasTimeout: true, Dynamic: true, Size: flowCapacity}, nil); err != nil {
			return fmt.Errorf("flow set: %w", err)
		}
	}
	return nil
}

// flowKey loads the flow's entry for real server id into reg32 onwards:
// service number . client . port . id, each field in whole 4-byte
// registers as the set's concatenation lays them out.
func (l *layout) flowKey(id uint32) []expr.Any {
	addr := uint32(reg32 + 1)
	port := addr + l.fam.addrLen/4
	exprs := []expr.Any{
		&expr.Immediate{Register: reg32, Data: nativeEndian.PutUint32(l.s.num)},
		&expr.Payload{DestRegister: addr, Base: expr.PayloadBaseNetworkHeader, Offset: l.fam.saddrOff, Len: l.fam.addrLen},
	}
	if l.s.PersistenceTimeout > 0 {
		mask := l.s.PersistenceMask.AsSlice()
		if len(mask) == int(l.fam.addrLen) {
			exprs = append(exprs, &expr.Bitwise{SourceRegister: addr, DestRegister: addr, Len: l.fam.addrLen,
				Mask: mask, Xor: make([]byte, l.fam.addrLen)})
		}
		exprs = append(exprs, &expr.Immediate{Register: port, Data: make([]byte, 4)})
	} else {
		// The payload load zeroes the register's other two bytes.
		exprs = append(exprs, &expr.Payload{DestRegister: port, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
	}
	return append(exprs, &expr.Immediate{Register: port + 1, Data: nativeEndian.PutUint32(id)})
}

// flowUpdate adds the entry flowKey loaded, or refreshes its timeout;
// first for a flow's first packet. When the set is full it adds nothing
// and fails its rule.
func (l *layout) flowUpdate(first bool) *expr.Dynset {
	return &expr.Dynset{SrcRegKey: reg32, SetName: flowSet(l.s.Family), Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: flowTimeout(l.s, first)}
}

// flowPair names the entries of one real server of one service.
type flowPair struct{ num, id uint32 }

// livePairs adds the (service number, id) pairs of s's servers with
// slots, those whose entries some rule matches, with their addresses.
func livePairs(s *service, into map[flowPair]netip.AddrPort) {
	l, err := layoutOf(s)
	if err != nil {
		return // nothing of it was committed
	}
	for _, d := range l.rs {
		into[flowPair{s.num, d.id}] = d.Addr
	}
}

// departed returns the (service number, id) pairs whose entries a commit
// from the items' current states to their next ones leaves stale: those
// of servers that lose their slots, and those whose id now names another
// server (one removed and one added in the same batch).
func departed(items []drItem) map[flowPair]bool {
	gone := map[flowPair]bool{}
	for _, it := range items {
		if it.cur == nil || it.cur.legacy {
			continue
		}
		before := map[flowPair]netip.AddrPort{}
		livePairs(it.cur, before)
		after := map[flowPair]netip.AddrPort{}
		if it.next != nil {
			livePairs(it.next, after)
		}
		for p, a := range before {
			if after[p] != a {
				gone[p] = true
			}
		}
	}
	return gone
}

// sweepChunk bounds the elements of one deletion message.
const sweepChunk = 4096

// nftMsgDestroySetElem is NFT_MSG_DESTROYSETELEM (kernel 6.3+), which
// golang.org/x/sys/unix does not define: a deletion that does not fail
// on an element already gone.
const nftMsgDestroySetElem = 30

// sweep deletes the flow entries that name no real server with slots:
// those of servers removed or inhibited, and of services deleted; no rule
// adds such entries any more, so once deleted they stay away. It also
// deletes those of the pairs in also, whose id names a new server now:
// a few entries the new server's flows made since the commit may go with
// them, and come back with those flows' next packets. An entry
// may expire between the listing and the deletion, so the deletion is a
// destroy (no error for an element already gone); a kernel older than
// 6.3 refuses that, and gets a plain deletion instead.
func (k *Kernel) sweep(also map[flowPair]bool) error {
	live := map[flowPair]netip.AddrPort{}
	for _, s := range k.state {
		if s.Method == lvs.DR && !s.legacy {
			livePairs(s, live)
		}
	}
	t := drTable()
	stale := map[string][]nftables.SetElement{}
	for _, f := range []lvs.AddressFamily{lvs.IPv4, lvs.IPv6} {
		name := flowSet(f)
		elems, err := k.conn.GetSetElements(&nftables.Set{Table: t, Name: name})
		if err != nil {
			return fmt.Errorf("lvs/nft: read %s %s: %w", tableText(t), name, err)
		}
		for _, e := range elems {
			if len(e.Key) < 8 {
				continue
			}
			p := flowPair{nativeEndian.Uint32(e.Key[:4]), nativeEndian.Uint32(e.Key[len(e.Key)-4:])}
			if _, ok := live[p]; !ok || also[p] {
				stale[name] = append(stale[name], nftables.SetElement{Key: e.Key})
			}
		}
	}
	msgs, err := capture(func(c *nftables.Conn) error {
		for name, es := range stale {
			for chunk := range slices.Chunk(es, sweepChunk) {
				if err := c.SetDeleteElements(&nftables.Set{Table: t, Name: name}, chunk); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lvs/nft: sweep flow entries: %w", err)
	}
	destroy := slices.Clone(msgs)
	for i := range destroy {
		if destroy[i].Header.Type&0xff == unix.NFT_MSG_DELSETELEM {
			destroy[i].Header.Type = destroy[i].Header.Type&^0xff | nftMsgDestroySetElem
		}
	}
	if err := k.send(destroy); err == nil {
		return nil
	}
	if err := k.send(msgs); err != nil {
		return fmt.Errorf("lvs/nft: sweep flow entries: %w", err)
	}
	return nil
}
