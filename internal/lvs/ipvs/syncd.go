package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SyncState names one of IPVS's two connection-sync daemons: the master
// multicasts the director's connection table, the backup receives it into
// its own (ipvsadm(8), --start-daemon master|backup). The values are the
// kernel's IP_VS_STATE_MASTER and IP_VS_STATE_BACKUP.
type SyncState uint32

// The sync daemons.
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("state %d", uint32(s))
}

// SyncDaemon is one sync daemon and its settings. The zero MaxLen, Port
// and TTL and an invalid Group leave the kernel's defaults (payload sized
// from the interface's MTU, UDP port 8848, TTL 1, group 224.0.0.81;
// net/netfilter/ipvs/ip_vs_sync.c); Daemons reports the values in force.
type SyncDaemon struct {
	State     SyncState
	Interface string
	// SyncID tags the messages; a backup with SyncID 0 takes any.
	SyncID uint8
	MaxLen uint16
	Port   uint16
	TTL    uint8
	Group  netip.Addr
}

// Generic netlink commands and attributes of the sync daemons
// (include/uapi/linux/ip_vs.h), on the family genl.go names.
// cloudflare/ipvs has no daemon commands.
const (
	cmdNewDaemon = 9  // IPVS_CMD_NEW_DAEMON
	cmdDelDaemon = 10 // IPVS_CMD_DEL_DAEMON
	cmdGetDaemon = 11 // IPVS_CMD_GET_DAEMON

	cmdAttrDaemon = 3 // IPVS_CMD_ATTR_DAEMON, nesting the ones below

	daemonAttrState       = 1 // u32
	daemonAttrMcastIfn    = 2 // NUL-terminated string, < IP_VS_IFNAME_MAXLEN (16)
	daemonAttrSyncID      = 3 // u32
	daemonAttrSyncMaxLen  = 4 // u16 (Linux 4.3+, as are the ones below)
	daemonAttrMcastGroup  = 5 // IPv4 address, network order
	daemonAttrMcastGroup6 = 6 // IPv6 address
	daemonAttrMcastPort   = 7 // u16, host order
	daemonAttrMcastTTL    = 8 // u8
)

// Syncer starts, stops and lists IPVS's sync daemons over generic netlink,
// in the network namespace of the thread that called NewSyncer. It has a
// netlink socket of its own (cloudflare/ipvs does not share its), and is
// safe for concurrent use.
type Syncer struct {
	mu     sync.Mutex
	c      *genetlink.Conn
	family uint16
}

// NewSyncer opens IPVS's generic netlink family. On a kernel without IPVS
// the error wraps ErrUnavailable.
func NewSyncer() (*Syncer, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("lvs/ipvs: sync daemon: open generic netlink: %w", err)
	}
	return newSyncer(c)
}

func newSyncer(c *genetlink.Conn) (*Syncer, error) {
	f, err := c.GetFamily(genlName)
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lvs/ipvs: sync daemon: %w", ErrUnavailable)
		}
		return nil, fmt.Errorf("lvs/ipvs: sync daemon: %w", err)
	}
	return &Syncer{c: c, family: f.ID}, nil
}

// Start starts the daemon d.State with d's settings. The kernel runs one
// master and one backup at most: starting one that runs fails with EEXIST.
func (s *Syncer) Start(d SyncDaemon) error {
	b, err := encodeDaemon(d)
	if err != nil {
		return fmt.Errorf("lvs/ipvs: start %s sync daemon: %w", d.State, err)
	}
	if err := s.execute(cmdNewDaemon, b, netlink.Request|netlink.Acknowledge, nil); err != nil {
		return fmt.Errorf("lvs/ipvs: start %s sync daemon on %s (syncid %d): %w", d.State, d.Interface, d.SyncID, err)
	}
	return nil
}

// syncTimeout bounds the wait for the kernel's answer. Linux answers
// nothing at all to the stop of a sync daemon whose thread has not run
// yet (one started a moment before, as a quick VRRP flap does; seen in
// TCG): kthread_stop returns -EINTR, stop_sync_thread passes it on, and
// netlink_rcv_skb sends no ack for -EINTR. The daemon is stopped all the
// same.
const syncTimeout = 3 * time.Second

// Stop stops the daemon state; ESRCH if it does not run.
func (s *Syncer) Stop(state SyncState) error {
	b, err := encodeDaemon(SyncDaemon{State: state})
	if err != nil {
		return fmt.Errorf("lvs/ipvs: stop %s sync daemon: %w", state, err)
	}
	err = s.execute(cmdDelDaemon, b, netlink.Request|netlink.Acknowledge, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// No answer: see syncTimeout. The list says whether it stopped.
		ds, lerr := s.Daemons()
		if lerr == nil && !slices.ContainsFunc(ds, func(d SyncDaemon) bool { return d.State == state }) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("lvs/ipvs: stop %s sync daemon: %w", state, err)
	}
	return nil
}

// Daemons lists the running sync daemons, master first.
func (s *Syncer) Daemons() ([]SyncDaemon, error) {
	var out []SyncDaemon
	err := s.execute(cmdGetDaemon, nil, netlink.Request|netlink.Dump, func(m genetlink.Message) error {
		d, err := decodeDaemon(m.Data)
		if err == nil {
			out = append(out, d)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lvs/ipvs: list sync daemons: %w", err)
	}
	return out, nil
}

// Close closes the netlink socket; the daemons keep running.
func (s *Syncer) Close() error { return s.c.Close() }

func (s *Syncer) execute(cmd uint8, data []byte, flags netlink.HeaderFlags, each func(genetlink.Message) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Best effort: genltest's fake socket has no deadlines.
	_ = s.c.SetReadDeadline(time.Now().Add(syncTimeout))
	msgs, err := s.c.Execute(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: genlVersion}, Data: data}, s.family, flags)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if each != nil {
			if err := each(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeDaemon writes IPVS_CMD_ATTR_DAEMON for d: the state alone when d
// has no interface (a stop), else everything the kernel needs to start it,
// and the optional settings only when set, as ipvsadm and keepalived do
// (kernels before 4.3 do not know them).
func encodeDaemon(d SyncDaemon) ([]byte, error) {
	if d.State != SyncMaster && d.State != SyncBackup {
		return nil, fmt.Errorf("sync daemon state %d: want master (1) or backup (2)", uint32(d.State))
	}
	if len(d.Interface) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q is longer than %d bytes", d.Interface, unix.IFNAMSIZ-1)
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return nil, fmt.Errorf("group %s is not a multicast address", d.Group)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(daemonAttrState, uint32(d.State))
		if d.Interface == "" {
			return nil
		}
		nae.String(daemonAttrMcastIfn, d.Interface)
		nae.Uint32(daemonAttrSyncID, uint32(d.SyncID))
		if d.MaxLen != 0 {
			nae.Uint16(daemonAttrSyncMaxLen, d.MaxLen)
		}
		switch {
		case d.Group.Is4():
			a := d.Group.As4()
			nae.Bytes(daemonAttrMcastGroup, a[:])
		case d.Group.Is6():
			a := d.Group.As16()
			nae.Bytes(daemonAttrMcastGroup6, a[:])
		}
		if d.Port != 0 {
			nae.Uint16(daemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			nae.Uint8(daemonAttrMcastTTL, d.TTL)
		}
		return nil
	})
	return ae.Encode()
}

// decodeDaemon reads one IPVS_CMD_GET_DAEMON reply (the kernel answers
// with IPVS_CMD_NEW_DAEMON messages, one per running daemon).
func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return d, err
	}
	found := false
	for ad.Next() {
		if ad.Type() != cmdAttrDaemon {
			continue
		}
		found = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case daemonAttrState:
					d.State = SyncState(nad.Uint32())
				case daemonAttrMcastIfn:
					d.Interface = nad.String()
				case daemonAttrSyncID:
					d.SyncID = uint8(nad.Uint32())
				case daemonAttrSyncMaxLen:
					d.MaxLen = nad.Uint16()
				case daemonAttrMcastGroup:
					a, ok := netip.AddrFromSlice(nad.Bytes())
					if !ok || !a.Is4() {
						return fmt.Errorf("sync daemon: IPv4 group of %d bytes", len(nad.Bytes()))
					}
					d.Group = a
				case daemonAttrMcastGroup6:
					a, ok := netip.AddrFromSlice(nad.Bytes())
					if !ok || !a.Is6() {
						return fmt.Errorf("sync daemon: IPv6 group of %d bytes", len(nad.Bytes()))
					}
					d.Group = a
				case daemonAttrMcastPort:
					d.Port = nad.Uint16()
				case daemonAttrMcastTTL:
					d.TTL = nad.Uint8()
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return d, fmt.Errorf("sync daemon: %w", err)
	}
	if !found || (d.State != SyncMaster && d.State != SyncBackup) {
		return d, fmt.Errorf("sync daemon: reply without a daemon state")
	}
	return d, nil
}
