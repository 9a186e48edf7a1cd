// Package bfd is Tandem's Bidirectional Forwarding Detection engine:
// asynchronous-mode sessions (RFC 5880) over UDP, single hop (RFC 5881)
// and multihop (RFC 5883), configured by keepalived's bfd_instance blocks
// (keepalived.conf(5), BFD section).
//
// This file is the contract between the engine and its users (the daemon
// wires sessions to VRRP's track_bfd and fast_failover_bfd and to
// BFD_CHECK): the types every side shares and the Sessions interface the
// daemon holds.
package bfd

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a session state, with its RFC 5880 section 4.1 wire value.
type State uint8

// The session states (RFC 5880 section 4.1, "Sta").
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText gives logs and JSON the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config is one session, from one bfd_instance block.
type Config struct {
	// Name is the bfd_instance's name, the key that track_bfd,
	// fast_failover_bfd and BFD_CHECK refer to.
	Name string
	// Neighbor is neighbor_ip; Source is source_ip (zero: the kernel's
	// choice of source).
	Neighbor, Source netip.Addr
	// MinRx and MinTx are min_rx and min_tx (Required Min RX Interval,
	// Desired Min TX Interval); IdleTx is idle_tx, the interval used
	// while the session is not Up.
	MinRx, MinTx, IdleTx time.Duration
	// Multiplier is the detection time multiplier.
	Multiplier uint8
	// Passive: do not send until the neighbor has sent (RFC 5880
	// section 6.1, passive role).
	Passive bool
	// TTL is the TTL (IPv4) or hop limit (IPv6) of sent packets; MaxHops
	// is how far below TTL a received packet's TTL may be (0: it must
	// equal TTL, as RFC 5881 section 5 requires of single hop; 255: not
	// checked), as keepalived reads them.
	TTL, MaxHops uint8
	// Multihop selects RFC 5883 (UDP port 4784) instead of RFC 5881
	// (port 3784).
	Multihop bool
}

// Event is one state change of a session.
type Event struct {
	Name      string
	From, To  State
	Diag      uint8 // the RFC 5880 diagnostic code that came with it
	At        time.Time
	Neighbor  netip.Addr
	Multihop  bool
	Detection time.Duration // the detection time in force at the change
}

// Status is a session as `tandem status`, /metrics and the status page
// show it.
type Status struct {
	Name       string
	Neighbor   netip.Addr
	Source     netip.Addr
	State      State
	RemoteDiag uint8
	LocalDiag  uint8
	// Detection is the current detection time; TxInterval the
	// negotiated transmit interval.
	Detection, TxInterval time.Duration
	// Flaps counts transitions out of Up.
	Flaps      uint64
	LastChange time.Time
	// LateDetections counts detection times that ran out late (a
	// stalled machine) and were extended by one interval (Run).
	LateDetections uint64
	// Sent, Received and Dropped count control packets (Dropped: failed
	// validation, RFC 5880 section 6.8.6).
	Sent, Received, Dropped uint64
}

// Sessions is what the daemon needs of the engine.
type Sessions interface {
	// Apply makes the running sessions those of cfgs: new names start,
	// missing names stop (sending AdminDown first), changed timers are
	// changed in place with a Poll sequence (RFC 5880 section 6.8.3);
	// a changed neighbor, source or hop mode restarts that session only.
	Apply(cfgs []Config) error
	// Events delivers every state change, in order. The channel is
	// closed by Close.
	Events() <-chan Event
	// Status reports every session, sorted by name.
	Status() []Status
	// OnThread runs fn on the engine's own OS thread and returns its
	// error: where bfd_rt_priority and its friends are set.
	OnThread(fn func() error) error
	// Close sends AdminDown on every session and releases the sockets.
	Close() error
}
