package netio

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SilenceTable is the nftables table (families arp and ip6) that keeps a
// draining director from answering for the addresses it still holds.
const SilenceTable = "tandem_drain"

// Silence makes the host send no ARP reply and no neighbour advertisement
// for exactly addrs, while it keeps the addresses and so still takes the
// packets that reach it for them: a VRRP master that another router took
// over from drains them so (make-before-break), and two hosts answering
// for one address would make the clients' caches flip between them. The
// kernel has no per-address switch for it (arp_ignore is per interface),
// hence two small tables, rebuilt whole in one transaction:
//
//	table arp tandem_drain { chain out { type filter hook output priority 0
//	    arp hlen 6 arp plen 4 arp operation reply arp saddr ip ADDR drop } }
//	table ip6 tandem_drain { chain out { type filter hook output priority 0
//	    meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert
//	    (target) ADDR drop } }
//
// Gratuitous ARPs are requests and go out: the draining director sends
// none anyway. An empty addrs deletes the tables.
func Silence(addrs []netip.Addr) error {
	// google/nftables waits for an ack per message of a batch, but a
	// kernel without nf_tables (and no modprobe to load it) answers the
	// batch with one error: without a deadline, tandem would hang here.
	c, err := nftables.New(nftables.WithSockOptions(func(nc *netlink.Conn) error {
		return nc.SetReadDeadline(time.Now().Add(silenceTimeout))
	}))
	if err != nil {
		return fmt.Errorf("silence: open netlink: %w", err)
	}
	// A plain request gets its error at once where nf_tables is missing.
	if _, err := c.ListTables(); err != nil {
		return fmt.Errorf("silence: nf_tables: %w", err)
	}
	arp := &nftables.Table{Name: SilenceTable, Family: nftables.TableFamilyARP}
	ip6 := &nftables.Table{Name: SilenceTable, Family: nftables.TableFamilyIPv6}
	for _, t := range []*nftables.Table{arp, ip6} {
		// Adding first makes the deletion valid whether or not the
		// table exists; both happen in the one transaction.
		c.AddTable(t)
		c.DelTable(t)
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	if len(v4) > 0 {
		ch := silenceChain(c, arp)
		for _, a := range v4 {
			// hlen 6, plen 4 (Ethernet, IPv4: the sender address is at
			// offset 14), operation reply.
			ex := slices.Concat(match(expr.PayloadBaseNetworkHeader, 4, []byte{6, 4}),
				match(expr.PayloadBaseNetworkHeader, 6, []byte{0, 2}),
				match(expr.PayloadBaseNetworkHeader, 14, a.AsSlice()))
			c.AddRule(&nftables.Rule{Table: arp, Chain: ch, Exprs: append(ex, &expr.Verdict{Kind: expr.VerdictDrop})})
		}
	}
	if len(v6) > 0 {
		ch := silenceChain(c, ip6)
		for _, a := range v6 {
			ex := slices.Concat([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			},
				match(expr.PayloadBaseTransportHeader, 0, []byte{136}), // neighbour advertisement
				match(expr.PayloadBaseTransportHeader, 8, a.AsSlice())) // its target
			c.AddRule(&nftables.Rule{Table: ip6, Chain: ch, Exprs: append(ex, &expr.Verdict{Kind: expr.VerdictDrop})})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("silence %v: %w", addrs, err)
	}
	return nil
}

// silenceTimeout bounds each netlink exchange of Silence.
const silenceTimeout = 5 * time.Second

// nfARPOut is the arp family's output hook (linux/netfilter_arp.h
// NF_ARP_OUT), which is not the inet families' NF_INET_LOCAL_OUT.
const nfARPOut = 1

func silenceChain(c *nftables.Conn, t *nftables.Table) *nftables.Chain {
	c.AddTable(t)
	hook := nftables.ChainHookOutput
	if t.Family == nftables.TableFamilyARP {
		hook = nftables.ChainHookRef(nfARPOut)
	}
	return c.AddChain(&nftables.Chain{Name: "out", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter})
}

// match compares len(data) bytes at off of base with data.
func match(base expr.PayloadBase, off uint32, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: uint32(len(data))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}
