package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Packet delay without netem: this kernel has no netem qdisc
// (CONFIG_NET_SCH_NETEM is not set) and no nftables `queue` statement
// (CONFIG_NFT_QUEUE), but it has nfnetlink_queue and the xtables NFQUEUE
// target, which nftables reaches through nft_compat. So rules in the
// node's namespace hand its IPv4 packets to a queue, and a netlink socket
// of this process, opened in that namespace, gives each one its ACCEPT
// verdict when its time has come.

// nfnetlink_queue's protocol (include/uapi/linux/netfilter/nfnetlink_queue.h).
// Integers inside the messages are big-endian.
const (
	nfqnlMsgPacket  = 0 // kernel -> us: a queued packet
	nfqnlMsgVerdict = 1 // us -> kernel: what to do with one
	nfqnlMsgConfig  = 2 // us -> kernel: bind a queue, set it up

	nfqaPacketHdr  = 1 // struct nfqnl_msg_packet_hdr: be32 id, be16 hw_protocol, u8 hook
	nfqaVerdictHdr = 2 // struct nfqnl_msg_verdict_hdr: be32 verdict, be32 id

	nfqaCfgCmd         = 1 // struct nfqnl_msg_config_cmd: u8 command, u8 pad, be16 pf
	nfqaCfgParams      = 2 // struct nfqnl_msg_config_params (packed): be32 copy_range, u8 copy_mode
	nfqaCfgQueueMaxlen = 3 // be32
	nfqaCfgMask        = 4 // be32: which flags NFQA_CFG_FLAGS sets
	nfqaCfgFlags       = 5 // be32

	nfqnlCfgCmdBind  = 1
	nfqnlCopyMeta    = 1 // the packet's metadata (its id) without its bytes
	nfqaCfgFFailOpen = 1 // a full queue accepts rather than drops

	nfAccept = 1 // include/uapi/linux/netfilter.h

	// nfqFlagBypass (include/uapi/linux/netfilter/xt_NFQUEUE.h) makes
	// the NFQUEUE target accept packets while no socket is bound to the
	// queue: a delayer that died does not cut the node off.
	nfqFlagBypass = 1
)

// delayQueue is the queue number the rules use. Queues are per network
// namespace, so every node has its own queue 7; a node has one Delayer at
// a time.
const delayQueue = 7

// delayQueueLen bounds the packets the kernel holds for a Delayer; with
// nfqaCfgFFailOpen the ones beyond it pass undelayed. At a few hundred
// packets per second and at most a second of delay, it is never reached.
const delayQueueLen = 4096

// delayTable is the nftables table of the rules (IPv4 family).
const delayTable = "lab_delay"

// drainIdle: once the rules are emptied, Close reads until nothing has
// come for this long, for the packets queued while they went.
const drainIdle = 50 * time.Millisecond

// Delayer holds every IPv4 packet a node receives (prerouting) and sends
// (output) for a while before letting it go on, as netem's delay would:
// a round trip through the node takes about twice the delay longer.
// Packets leave in the order they came, so jitter spreads them out but
// does not reorder them. Close heals.
type Delayer struct {
	l     *Lab
	node  string
	conn  *netlink.Conn
	delay time.Duration
	// jitter: each packet's delay is delay ± up to jitter, uniformly.
	jitter time.Duration

	held     chan heldPacket // reader -> releaser, in arrival order
	healing  chan struct{}   // closed by Close: release everything now
	released chan struct{}   // the releaser is done

	count atomic.Int64 // packets held so far
	lost  atomic.Int64 // packets the kernel dropped while they were held

	mu  sync.Mutex
	err error // the reader's and releaser's errors

	closeOnce sync.Once
	closeErr  error
}

type heldPacket struct {
	id    uint32
	until time.Time
}

// Delay starts delaying node's IPv4 packets, both ways, by delay ± jitter
// (each packet's share of the jitter drawn uniformly). It returns once
// the rules are in place. Close removes them and lets every held packet
// go at once.
func (l *Lab) Delay(node string, delay, jitter time.Duration) (*Delayer, error) {
	if delay < 0 || jitter < 0 || jitter > delay {
		return nil, fmt.Errorf("lab %s: delay %s: want 0 <= jitter (%v) <= delay (%v)", l.name, node, jitter, delay)
	}
	d := &Delayer{l: l, node: node, delay: delay, jitter: jitter,
		held: make(chan heldPacket, delayQueueLen), healing: make(chan struct{}),
		released: make(chan struct{})}
	err := l.Do(node, func() (err error) {
		d.conn, err = netlink.Dial(unix.NETLINK_NETFILTER, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab %s: delay %s: netlink: %w", l.name, node, err)
	}
	if err := d.bind(); err != nil {
		d.conn.Close()
		return nil, fmt.Errorf("lab %s: delay %s: bind queue %d: %w", l.name, node, delayQueue, err)
	}
	go d.read()
	go d.release()
	if err := d.addRules(); err != nil {
		return nil, errors.Join(fmt.Errorf("lab %s: delay %s: nftables: %w", l.name, node, err), d.Close())
	}
	return d, nil
}

// Held is how many packets d has held so far.
func (d *Delayer) Held() int { return int(d.count.Load()) }

// Lost is how many held packets the kernel dropped before their time: it
// drops every queued packet of a namespace whenever a netfilter hook
// there goes away (an nftables base chain deleted, as Tandem's ARP
// silencing does when a drain ends), and a verdict for one of them is
// answered "no such packet".
func (d *Delayer) Lost() int { return int(d.lost.Load()) }

// Close heals: every held packet goes on at once (in order), the rules
// go, and the queue is unbound with the socket. It returns the first
// error the delayer met on the way, if any.
//
// The order matters: the rules are emptied first (no packet enters the
// queue any more, and the hooks stay), the held packets are let go, and
// only then does the table go: removing its hooks makes the kernel drop
// whatever is still queued.
func (d *Delayer) Close() error {
	d.closeOnce.Do(func() {
		close(d.healing)
		err := d.nft(func(c *nftables.Conn, t *nftables.Table) { c.FlushTable(t) })
		// The reader stops once nothing has come for drainIdle.
		d.conn.SetReadDeadline(time.Now().Add(drainIdle))
		<-d.released
		err = errors.Join(err, d.nft(func(c *nftables.Conn, t *nftables.Table) { c.DelTable(t) }))
		d.mu.Lock()
		err = errors.Join(err, d.err)
		d.mu.Unlock()
		d.closeErr = errors.Join(err, d.conn.Close())
	})
	return d.closeErr
}

func (d *Delayer) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

// nfgen is the header of every nfnetlink message (struct nfgenmsg):
// family, version, and the queue number as res_id.
func nfgen() []byte {
	return binary.BigEndian.AppendUint16([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0}, delayQueue)
}

func nfqMsgType(m int) netlink.HeaderType { return netlink.HeaderType(unix.NFNL_SUBSYS_QUEUE<<8 | m) }

// bind binds the socket to the queue, with metadata copies only (the
// verdict needs the id alone), a long queue and fail-open.
func (d *Delayer) bind() error {
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: nfqaCfgCmd, Data: []byte{nfqnlCfgCmdBind, 0, 0, 0}},
		{Type: nfqaCfgParams, Data: append(be32(0), nfqnlCopyMeta)},
		{Type: nfqaCfgQueueMaxlen, Data: be32(delayQueueLen)},
		{Type: nfqaCfgMask, Data: be32(nfqaCfgFFailOpen)},
		{Type: nfqaCfgFlags, Data: be32(nfqaCfgFFailOpen)},
	})
	if err != nil {
		return err
	}
	if _, err := d.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: nfqMsgType(nfqnlMsgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(nfgen(), attrs...),
	}); err != nil {
		return err
	}
	// A burst must not be lost in the socket: the kernel would drop
	// (or, being fail-open, pass) what does not fit.
	if err := d.conn.SetReadBuffer(4 << 20); err != nil {
		return err
	}
	return d.conn.SetOption(netlink.NoENOBUFS, true)
}

// read takes the queued packets in the order the kernel queued them and
// gives each its time to go: its arrival plus its delay.
func (d *Delayer) read() {
	defer close(d.held)
	for {
		msgs, err := d.conn.Receive()
		var sys *os.SyscallError
		switch {
		case err == nil:
		case errors.As(err, &sys) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed):
			select {
			case <-d.healing: // Close's deadline: done
			default:
				d.fail(fmt.Errorf("queue: %w", err))
			}
			return
		case errors.Is(err, unix.ENOENT):
			// An answer to a verdict: no such packet. The kernel
			// dropped it (see Lost).
			d.lost.Add(1)
		default:
			d.fail(fmt.Errorf("queue: %w", err))
		}
		now := time.Now()
		select {
		case <-d.healing: // Close has begun: read on while messages come
			d.conn.SetReadDeadline(now.Add(drainIdle))
		default:
		}
		for _, m := range msgs {
			id, ok := packetID(m)
			if !ok {
				continue
			}
			until := now
			select {
			case <-d.healing:
			default:
				until = now.Add(d.delay + d.drawJitter())
			}
			d.count.Add(1)
			d.held <- heldPacket{id: id, until: until}
		}
	}
}

// drawJitter is uniform in [-jitter, +jitter].
func (d *Delayer) drawJitter() time.Duration {
	if d.jitter == 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(2*d.jitter)+1)) - d.jitter
}

// packetID is the id of a queued packet's message.
func packetID(m netlink.Message) (uint32, bool) {
	if m.Header.Type != nfqMsgType(nfqnlMsgPacket) || len(m.Data) < 4 {
		return 0, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return 0, false
	}
	for ad.Next() {
		if ad.Type() == nfqaPacketHdr && len(ad.Bytes()) >= 4 {
			return binary.BigEndian.Uint32(ad.Bytes()), true
		}
	}
	return 0, false
}

// release gives the held packets their verdicts as their times come, or
// at once once Close has begun. It takes them one after the other, so a
// packet whose jitter made it due earlier than the one ahead of it waits
// for that one: none overtakes another.
func (d *Delayer) release() {
	defer close(d.released)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for p := range d.held {
		if wait := time.Until(p.until); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.healing:
			}
		}
		if err := d.accept(p.id); err != nil {
			d.fail(fmt.Errorf("verdict: %w", err))
		}
	}
}

func (d *Delayer) accept(id uint32) error {
	hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, nfAccept), id)
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: nfqaVerdictHdr, Data: hdr}})
	if err != nil {
		return err
	}
	_, err = d.conn.Send(netlink.Message{
		Header: netlink.Header{Type: nfqMsgType(nfqnlMsgVerdict), Flags: netlink.Request},
		Data:   append(nfgen(), attrs...),
	})
	return err
}

// addRules sends the node's IPv4 packets, as they arrive (prerouting) and
// as it sends them (output), to the queue, through xtables' NFQUEUE
// target (revision 3) with the bypass flag.
func (d *Delayer) addRules() error {
	// struct xt_NFQ_info_v3: u16 queuenum, u16 queues_total, u16 flags,
	// in host order, padded to 8 bytes (XT_ALIGN).
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], delayQueue)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	return d.l.Do(d.node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: delayTable})
		for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookOutput} {
			ch := c.AddChain(&nftables.Chain{Name: fmt.Sprintf("h%d", *hook), Table: tab, Type: nftables.ChainTypeFilter,
				Hooknum: hook, Priority: nftables.ChainPriorityFilter})
			c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: []expr.Any{
				&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info},
			}})
		}
		return c.Flush()
	})
}

// nft applies change to the table addRules made, if it is there.
func (d *Delayer) nft(change func(*nftables.Conn, *nftables.Table)) error {
	err := d.l.Do(d.node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tabs, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return err
		}
		for _, t := range tabs {
			if t.Name == delayTable {
				change(c, t)
				return c.Flush()
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab %s: delay %s: nftables table %s: %w", d.l.name, d.node, delayTable, err)
	}
	return nil
}
