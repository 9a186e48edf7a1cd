package nft

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables (v0.3.0) has no `fwd` expression, and expr.Any has
// unexported methods, so a rule holding one cannot go through Conn.AddRule.
// DR transactions are therefore sent by us: the messages google/nftables
// would send (capture), with the chains holding fwd (chainMsgs) between
// them, the standard expressions encoded by expr.Marshal, fwd by fwdExpr.

// Attributes of the kernel's fwd expression (nf_tables.h, enum
// nft_fwd_attributes); golang.org/x/sys/unix defines only the first.
const (
	nftaFwdSregDev  = unix.NFTA_FWD_SREG_DEV
	nftaFwdSregAddr = 2
	nftaFwdNfproto  = 3
)

// fwdTimeout bounds the wait for the kernel's answer to a batch, so that a
// lost reply cannot hang the reconcile loop.
const fwdTimeout = 10 * time.Second

// fwdRule is a rule: exprs, then, if nfproto is set, `fwd` to the
// address in addrReg (nfproto's family) out of the interface whose index
// is in devReg. The kernel resolves the next hop's MAC in the neighbour
// table, which is LVS-DR's MAC rewrite.
type fwdRule struct {
	exprs           []expr.Any
	addrReg, devReg uint32
	nfproto         uint32
}

// fwdExpr encodes the fwd expression as the kernel's nft_fwd_netdev reads
// it: registers and family as big-endian u32.
func fwdExpr(r fwdRule) ([]byte, error) {
	data, err := mnl.MarshalAttributes([]mnl.Attribute{
		{Type: nftaFwdSregDev, Data: binaryutil.BigEndian.PutUint32(r.devReg)},
		{Type: nftaFwdSregAddr, Data: binaryutil.BigEndian.PutUint32(r.addrReg)},
		{Type: nftaFwdNfproto, Data: binaryutil.BigEndian.PutUint32(r.nfproto)},
	})
	if err != nil {
		return nil, err
	}
	return mnl.MarshalAttributes([]mnl.Attribute{
		{Type: unix.NFTA_EXPR_NAME, Data: []byte("fwd\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA, Data: data},
	})
}

// chainMsgs are the messages that make rules the whole content of chain:
// create it if needed, flush it, add the rules. In a transaction, a chain
// in use goes from its old rules to its new ones in one step.
func chainMsgs(t *nftables.Table, chain string, rules []fwdRule) ([]mnl.Message, error) {
	fam := byte(t.Family)
	msg := func(typ int, flags mnl.HeaderFlags, attrs []mnl.Attribute) (mnl.Message, error) {
		b, err := mnl.MarshalAttributes(attrs)
		if err != nil {
			return mnl.Message{}, err
		}
		return mnl.Message{
			Header: mnl.Header{Type: mnl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: mnl.Request | mnl.Acknowledge | flags},
			Data:   append(nfgenmsg(fam, 0), b...),
		}, nil
	}
	tableAttr := []byte(t.Name + "\x00")
	chainAttr := []byte(chain + "\x00")
	var msgs []mnl.Message
	for _, m := range []struct {
		typ   int
		flags mnl.HeaderFlags
		attrs []mnl.Attribute
	}{
		{unix.NFT_MSG_NEWCHAIN, mnl.Create, []mnl.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: tableAttr}, {Type: unix.NFTA_CHAIN_NAME, Data: chainAttr}}},
		{unix.NFT_MSG_DELRULE, 0, []mnl.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: tableAttr}, {Type: unix.NFTA_RULE_CHAIN, Data: chainAttr}}},
	} {
		nm, err := msg(m.typ, m.flags, m.attrs)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		msgs = append(msgs, nm)
	}
	for _, r := range rules {
		elems := make([]mnl.Attribute, 0, len(r.exprs)+1)
		for _, e := range r.exprs {
			b, err := expr.Marshal(fam, e)
			if err != nil {
				return nil, fmt.Errorf("chain %s: %w", chain, err)
			}
			elems = append(elems, mnl.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
		}
		if r.nfproto != 0 {
			fwd, err := fwdExpr(r)
			if err != nil {
				return nil, fmt.Errorf("chain %s: %w", chain, err)
			}
			elems = append(elems, mnl.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: fwd})
		}
		list, err := mnl.MarshalAttributes(elems)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		nm, err := msg(unix.NFT_MSG_NEWRULE, mnl.Create|mnl.Append, []mnl.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: tableAttr},
			{Type: unix.NFTA_RULE_CHAIN, Data: chainAttr}, {Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: list}})
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		msgs = append(msgs, nm)
	}
	return msgs, nil
}

// capture returns the messages that build queues on a google/nftables
// Conn, without sending them, so that they can go out in one transaction
// with the rules it cannot send.
func capture(build func(c *nftables.Conn) error) ([]mnl.Message, error) {
	var msgs []mnl.Message
	c, err := nftables.New(nftables.WithTestDial(func(req []mnl.Message) ([]mnl.Message, error) {
		if req == nil { // Flush reads an acknowledgement per message
			return []mnl.Message{{Header: mnl.Header{Type: mnl.Error}, Data: make([]byte, 4)}}, nil
		}
		if len(req) > 2 { // without the batch delimiters
			msgs = append(msgs, req[1:len(req)-1]...)
		}
		return nil, nil
	}))
	if err != nil {
		return nil, err
	}
	if err := build(c); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// send commits msgs as one nf_tables transaction (atomic in the kernel)
// and counts it (Kernel.gen).
func (k *Kernel) send(msgs []mnl.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// Only the last message asks for an acknowledgement: the kernel
	// queues every reply until the batch has committed or aborted, and
	// sends an error for each message that failed (and one for the
	// batch if the commit itself fails) whether asked or not, so the
	// last message's ack arriving means the whole batch committed. An
	// ack per message cost a third of a large commit's time (profiled:
	// recvmsg of one reply per rule).
	batch := make([]mnl.Message, 0, len(msgs)+2)
	batch = append(batch, mnl.Message{Header: mnl.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: mnl.Request},
		Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)})
	for _, m := range msgs {
		m.Header.Flags &^= mnl.Acknowledge
		batch = append(batch, m)
	}
	last := len(batch) - 1
	batch[last].Header.Flags |= mnl.Acknowledge
	batch = append(batch, mnl.Message{Header: mnl.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: mnl.Request},
		Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)})

	// A connection of our own per batch, in the namespace the Kernel
	// programs, so that an unread reply never reaches another request.
	c, err := mnl.Dial(unix.NETLINK_NETFILTER, &mnl.Config{NetNS: max(k.netns, 0)})
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer c.Close()
	if err := bigBuffers(c); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(fwdTimeout)); err != nil {
		return err
	}
	sent, err := c.SendMessages(batch)
	if err != nil {
		return fmt.Errorf("send transaction: %w", err)
	}
	// Receive fails on the first error reply: an error aborts the whole
	// batch, and comes before the last message's ack.
	for want := sent[last].Header.Sequence; ; {
		replies, err := c.Receive()
		if err != nil {
			return fmt.Errorf("transaction: %w", err)
		}
		if slices.ContainsFunc(replies, func(r mnl.Message) bool { return r.Header.Sequence == want }) {
			break
		}
	}
	k.sent++
	return nil
}

// sockBuffer is the send and receive buffer of a transaction's socket.
// The whole batch goes out in one sendmsg: a DR chunk (drChunk) is a few
// MB, and google/nftables (NAT commits, dumps) asks an acknowledgement
// per message, which the kernel queues (about 1 KB of buffer each) before
// the first is read; both are far more than the default rmem_max and
// wmem_max (208 KB) allow, hence the FORCE variants, which CAP_NET_ADMIN
// permits.
const sockBuffer = 32 << 20

// bigBuffers sizes c's buffers to sockBuffer, or as close as an
// unprivileged process may.
func bigBuffers(c *mnl.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink buffers: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], sockBuffer) != nil {
				if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], sockBuffer); e != nil && serr == nil {
					serr = e
				}
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("netlink buffers: %w", err)
	}
	return nil
}

// nfgenmsg is the nfnetlink header: family, version, resource id.
func nfgenmsg(family byte, resID uint16) []byte {
	return append([]byte{family, unix.NFNETLINK_V0}, binaryutil.BigEndian.PutUint16(resID)...)
}
