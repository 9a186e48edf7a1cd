package vrrp

import (
	"fmt"
	"log/slog"
	"net/netip"
)

// ReasonKind says why an instance changed state.
type ReasonKind uint8

// The reasons for a transition. The machine decides which one applies;
// the engine adds what only it knows (startup, reload, sync group names).
const (
	ReasonNone ReasonKind = iota
	// ReasonStartup: the daemon started the instance.
	ReasonStartup
	// ReasonStartupDelay: vrrp_startup_delay ran out and the instance
	// started.
	ReasonStartupDelay
	// ReasonInterfaceAppeared: the instance waited for its interface
	// (dynamic_interfaces) and it appeared.
	ReasonInterfaceAppeared
	// ReasonReload: a reload started or stopped the instance.
	ReasonReload
	// ReasonShutdown: the daemon is stopping.
	ReasonShutdown
	// ReasonAdvertTimeout: Master_Down_Timer expired (RFC 5798 §6.4.2);
	// Peer is the last master heard, if any.
	ReasonAdvertTimeout
	// ReasonPriorityZero: the master (Peer) advertised priority 0 as it
	// stopped (RFC 5798 §6.4.2), and Skew_Time passed.
	ReasonPriorityZero
	// ReasonHigherPriority: a master heard Peer advertise a higher
	// priority, Priority (RFC 5798 §6.4.3).
	ReasonHigherPriority
	// ReasonPreempt: a backup with Preempt_Mode discarded the adverts of
	// a lower priority master, Peer at Priority, and took over.
	ReasonPreempt
	// ReasonTracker: a tracked object (Name) put the instance in FAULT.
	ReasonTracker
	// ReasonFault: a named fault (Name) of the instance, such as its
	// interface going down.
	ReasonFault
	// ReasonFaultCleared: the last fault (Name) went away.
	ReasonFaultCleared
	// ReasonSyncGroup: the sync group Group moved the instance because
	// its member Name went to (or wants) State.
	ReasonSyncGroup
	// ReasonBFDDown: the BFD session Name to the master Peer went down
	// and fast_failover_bfd took over without waiting for
	// Master_Down_Timer.
	ReasonBFDDown
	// ReasonHandover: the master handed its mastership over (`tandem
	// handover`), to Peer if one was named.
	ReasonHandover
)

var reasonKindNames = [...]string{
	ReasonNone:              "none",
	ReasonStartup:           "startup",
	ReasonStartupDelay:      "startup_delay",
	ReasonInterfaceAppeared: "interface_appeared",
	ReasonReload:            "reload",
	ReasonShutdown:          "shutdown",
	ReasonAdvertTimeout:     "advert_timeout",
	ReasonPriorityZero:      "priority_zero",
	ReasonHigherPriority:    "higher_priority",
	ReasonPreempt:           "preempt",
	ReasonTracker:           "tracker",
	ReasonFault:             "fault",
	ReasonFaultCleared:      "fault_cleared",
	ReasonSyncGroup:         "sync_group",
	ReasonBFDDown:           "bfd_down",
	ReasonHandover:          "handover",
}

// String returns the kind's name.
func (k ReasonKind) String() string {
	if int(k) < len(reasonKindNames) {
		return reasonKindNames[k]
	}
	return fmt.Sprintf("ReasonKind(%d)", uint8(k))
}

// MarshalText writes the kind's name, not its number, in JSON.
func (k ReasonKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Reason says why an instance changed state, with the peer, priority or
// object involved. String phrases it for logs, the status and the event
// log.
type Reason struct {
	Kind ReasonKind
	// Peer is the router whose advert (or silence) caused the change.
	Peer netip.Addr
	// Priority is Peer's advertised priority.
	Priority uint8
	// Name is the tracked object, fault, sync group member or interface.
	Name string
	// Detail is how a tracked object is, in words ("track_script chk
	// failed"), as the tracker reported it.
	Detail string
	// Group and State are the sync group and the state its member Name
	// went to, for ReasonSyncGroup.
	Group string
	State State
}

// String phrases the reason as an operator reads it in a log.
func (r Reason) String() string {
	switch r.Kind {
	case ReasonStartupDelay:
		return "vrrp_startup_delay over"
	case ReasonInterfaceAppeared:
		return "interface " + r.Name + " appeared"
	case ReasonAdvertTimeout:
		if r.Peer.IsValid() {
			return "advert timeout from " + r.Peer.String()
		}
		return "advert timeout, no master heard"
	case ReasonPriorityZero:
		return "priority 0 received from " + r.Peer.String()
	case ReasonHigherPriority:
		return fmt.Sprintf("higher priority advert from %s (prio %d)", r.Peer, r.Priority)
	case ReasonPreempt:
		return fmt.Sprintf("preempting lower priority master %s (prio %d)", r.Peer, r.Priority)
	case ReasonTracker:
		if r.Detail != "" {
			return r.Detail
		}
		return r.Name + " in fault"
	case ReasonFault:
		return r.Name
	case ReasonFaultCleared:
		if r.Detail != "" {
			return "fault cleared: " + r.Detail
		}
		return "fault cleared: " + r.Name
	case ReasonBFDDown:
		return fmt.Sprintf("bfd %s down: master %s lost", r.Name, r.Peer)
	case ReasonHandover:
		if r.Peer.IsValid() {
			return "handover to " + r.Peer.String()
		}
		return "handover"
	case ReasonSyncGroup:
		verb := "went"
		if r.State == Master {
			verb = "wants"
		}
		return fmt.Sprintf("sync group %s member %s %s %s", r.Group, r.Name, verb, r.State)
	}
	return r.Kind.String()
}

// LogValue logs the phrase.
func (r Reason) LogValue() slog.Value { return slog.StringValue(r.String()) }
