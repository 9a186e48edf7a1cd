// Package vrrp implements the Virtual Router Redundancy Protocol.
//
// This file holds the protocol state machine of one VRRP instance
// (RFC 3768 §6.4 for VRRPv2, RFC 5798 §6.4 for VRRPv3), following
// keepalived where keepalived deliberately differs from the RFCs.
//
// The Machine is pure: it owns no sockets, goroutines or clocks. The caller
// passes the current time with every event and performs the returned
// actions (send an advertisement, add addresses, arm the single timer, ...).
// Keeping it pure lets the whole protocol be tested, and simulated across
// many routers, in virtual time.
package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// State is the state of a VRRP instance.
type State uint8

// The instance states. Init, Backup and Master are the RFC states; Fault
// and Stop are keepalived's additions (an instance that is administratively
// or operationally unable to serve, and one that has been shut down).
const (
	Init State = iota
	Backup
	Master
	Fault
	Stop
)

// String returns the state's name as keepalived prints it in logs and passes
// it to notify scripts.
func (s State) String() string {
	switch s {
	case Init:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	case Stop:
		return "STOP"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// LogValue logs the state's name: slog's JSON handler would print the
// number (it marshals the value, not its String).
func (s State) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ownerPriority is the priority of the IP address owner (RFC 5798 §5.2.4).
const ownerPriority = 255

// MachineConfig is the static configuration of one VRRP instance as far as
// the state machine is concerned.
type MachineConfig struct {
	// Version is the VRRP version, 2 (RFC 3768) or 3 (RFC 5798).
	Version uint8
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Priority is the base priority, 1..255; 255 marks the address owner,
	// whose priority tracking never changes (keepalived
	// vrrp_set_effective_priority).
	Priority uint8
	// AdvertInt is the configured advertisement interval. VRRPv2 carries it
	// in whole seconds (1..255s), VRRPv3 in centiseconds (10ms..40.95s).
	AdvertInt time.Duration
	// Preempt lets a higher priority backup take over from a lower priority
	// master (RFC 5798 §6.1 Preempt_Mode). keepalived's default is to
	// preempt; the zero value here means keepalived's `nopreempt`.
	Preempt bool
	// PreemptDelay holds a backup off preempting: it is counted from the
	// first lower priority advertisement seen since entering BACKUP
	// (keepalived vrrp_state_backup, preempt_time), not from process start.
	// It only has an effect with Preempt.
	PreemptDelay time.Duration
	// InitialState is keepalived's `state`: Master or Backup. The zero value
	// (Init) derives it from the priority as keepalived does when `state` is
	// absent: Master for the address owner, Backup otherwise.
	//
	// As in keepalived (vrrp_init_state), Master only makes the address owner
	// take over at once. A non-owner starting as Master still enters BACKUP,
	// but waits only one advertisement interval plus the minimum skew (rather
	// than Master_Down_Interval) before taking over; it sends nothing first.
	// keepalived also clears nopreempt and preempt_delay for a `state MASTER`
	// instance (vrrp_complete_instance); NewMachine does the same.
	InitialState State
	// PrimaryAddr is the instance's own source address. When a master hears
	// an advertisement of equal priority, the higher source address wins
	// (RFC 3768 §6.4.3, RFC 5798 §6.4.3).
	PrimaryAddr netip.Addr
	// Accept is RFC 5798 Accept_Mode. The machine does not act on it; it is
	// carried for the instance layer, which owns the addresses.
	Accept bool
	// SyncGroup marks the instance as a member of a sync group. Such a
	// member never takes over on its own: when it would, it only reports
	// that it wants MASTER (Want) and keeps waiting, and the group
	// coordinator (SyncGroup) decides, as keepalived's
	// vrrp_sync_can_goto_master does. Note that keepalived turns weighted
	// trackers of sync group members into weight-0 (fault) trackers unless
	// the group sets sync_group_tracking_weight (vrrp_complete_instance):
	// a priority drop of one member alone cannot move a unanimous group.
	// That is for the caller to apply.
	SyncGroup bool
	// LowerPrioNoAdvert makes a master that hears a lower priority advert
	// only refresh ARP caches instead of also advertising at once
	// (keepalived.conf(5) lower_prio_no_advert; RFC 5798 §6.4.3 says to
	// discard such an advert, which is what this does; strict mode forces
	// it).
	LowerPrioNoAdvert bool
	// HigherPrioSendAdvert makes a master that hears a higher priority
	// advert send one more advert of its own before it becomes backup, so
	// that the new master, hearing a lower priority, refreshes ARP caches
	// that our gratuitous ARPs may have poisoned (keepalived.conf(5)
	// higher_prio_send_advert, vrrp_state_master_rx).
	HigherPrioSendAdvert bool
}

// Validation errors returned by NewMachine.
var (
	ErrVersion   = errors.New("vrrp: version must be 2 or 3")
	ErrVRID      = errors.New("vrrp: VRID must be 1..255")
	ErrPriority  = errors.New("vrrp: priority must be 1..255")
	ErrAdvertInt = errors.New("vrrp: advertisement interval out of range")
	ErrState     = errors.New("vrrp: initial state must be MASTER or BACKUP")
)

func (c *MachineConfig) validate() error {
	switch {
	case c.Version != 2 && c.Version != 3:
		return ErrVersion
	case c.VRID == 0:
		return ErrVRID
	case c.Priority == 0:
		return ErrPriority
	case c.InitialState != Init && c.InitialState != Master && c.InitialState != Backup:
		return ErrState
	}
	// The wire formats bound the interval: an 8-bit count of seconds (v2) or
	// a 12-bit count of centiseconds (v3).
	lo, hi := time.Second, 255*time.Second
	if c.Version == 3 {
		lo, hi = 10*time.Millisecond, 4095*10*time.Millisecond
	}
	if c.AdvertInt < lo || c.AdvertInt > hi {
		return fmt.Errorf("%w: %v not in [%v, %v]", ErrAdvertInt, c.AdvertInt, lo, hi)
	}
	return nil
}

// normalize applies keepalived's defaults and overrides to a valid config.
func (c *MachineConfig) normalize() {
	if c.InitialState == Init {
		c.InitialState = Backup
		if c.Priority == ownerPriority {
			c.InitialState = Master
		}
	}
	if c.InitialState == Master {
		// keepalived: "nopreempt will not work with initial state MASTER"
		// and likewise preempt_delay (vrrp_complete_instance).
		c.Preempt = true
		c.PreemptDelay = 0
	}
	if !c.Preempt {
		c.PreemptDelay = 0
	}
}

// Event is an input to Machine.Handle.
type Event interface{ isEvent() }

// Start brings the instance up from Init (RFC 5798 §6.4.1 Startup).
// Reason says what started it (the zero value: ReasonStartup).
type Start struct{ Reason Reason }

// AdvertReceived is a validated advertisement for our VRID. Packet checks
// (TTL, checksum, version, addresses, authentication) belong to the packet
// layer; only the fields that drive the state machine are carried.
type AdvertReceived struct {
	Priority uint8
	// MaxAdvertInt is the interval the sender advertises. VRRPv3 backups
	// adopt it as Master_Adver_Interval (RFC 5798 §6.4.2); VRRPv2 ignores it
	// (RFC 3768 requires it to match, which the packet layer checks).
	MaxAdvertInt time.Duration
	Src          netip.Addr
	// At is when the advert reached the host (the kernel's receive
	// timestamp, on the clock Handle's now comes from); zero, or later
	// than now, means now. A BACKUP's Master_Down_Timer restarts from it,
	// so that an advert read late restarts the timer as of its arrival.
	At time.Time
}

// TimerFired reports that the timer armed by ArmTimer{Gen} expired. Timers of
// an older generation are stale and ignored, so the caller need not cancel a
// timer race-free.
type TimerFired struct{ Gen uint64 }

// TrackerChanged sets the current contribution of one tracked object
// (track_interface, track_script, track_file, track_process, ...), keyed by
// Name. Weight is the signed amount the object currently adds to the base
// priority (keepalived: total_priority); Fault puts the instance into FAULT
// while set, as a tracked object with weight 0 does in keepalived. Each event
// replaces the object's previous contribution, so repeats are harmless.
type TrackerChanged struct {
	Name   string
	Weight int
	Fault  bool
	// Detail says how the object is, in words, for the transition's
	// reason ("track_script chk_nginx failed").
	Detail string
}

// FaultChanged sets or clears one named fault reason (for example the
// instance's interface going down). The instance is in FAULT while any fault
// reason or faulty tracker is set.
type FaultChanged struct {
	Reason string
	On     bool
}

// GroupForce is a transition forced on a sync group member by SyncGroup:
// Master, Backup or Fault (keepalived vrrp_sync_master, vrrp_sync_backup,
// vrrp_sync_fault). A forced Fault is held until a forced Backup releases it.
type GroupForce struct {
	To State
	// Reason names the member that moved the group; a member that
	// wanted MASTER on its own keeps its own reason.
	Reason Reason
}

// Shutdown stops the instance for good (keepalived STOP). A master first
// advertises priority 0 so that a backup takes over after only Skew_Time
// (RFC 5798 §6.4.3).
type Shutdown struct{ Reason Reason } // zero Reason: ReasonShutdown

// Reconfigure gives a running instance the settings of a reloaded
// configuration: priority, advertisement interval, preemption, initial
// state, accept mode. It causes no state transition: a master stays master
// and its next advertisement carries the new priority and interval; a
// backup whose priority now beats the master's preempts the normal way
// (RFC 5798 §6.4.2: with Preempt_Mode, lower-priority adverts are
// discarded and Master_Down_Timer runs out), and a master that now loses
// keeps advertising until a preempting backup takes over and it hears
// the higher priority (RFC 5798 §6.4.3) — never by a priority-0 advert.
// What makes the instance what it is (version, VRID, sync group
// membership, own address) stays: changing it takes a new Machine. A
// config that NewMachine would refuse is ignored.
type Reconfigure struct{ Config MachineConfig }

// PeerDown reports that the BFD session Name to Peer went down (Tandem's
// fast_failover_bfd). A BACKUP whose master is Peer (the sender of the
// last advertisement it accepted) acts at once as if Master_Down_Timer had
// expired (RFC 5798 §6.4.2), as routers pair BFD with VRRP; in any other
// state, or when Peer is not the master, nothing changes: the adverts
// (or their absence) decide as usual.
type PeerDown struct {
	Name string
	Peer netip.Addr
}

func (PeerDown) isEvent() {}

// Handover makes a master hand its mastership over, make-before-break
// (`tandem handover`): it advertises priority 0 (to To alone when To is
// set: a unicast peer), so that a backup takes over after Skew_Time
// (RFC 5798 §6.4.2), and enters BACKUP without dropping its addresses: it
// stops advertising but keeps claiming them until it hears the new
// master's advertisement, and only then lets them drain (DrainVIPs), so
// that no moment passes with nobody answering for them. If no backup
// takes over within Master_Down_Interval, the instance becomes master
// again. It then does not preempt (it yielded) until it is master again:
// by a handover back, or because the new master went silent. Ignored in
// any state but MASTER.
type Handover struct{ To netip.Addr }

func (Start) isEvent()          {}
func (Handover) isEvent()       {}
func (Reconfigure) isEvent()    {}
func (AdvertReceived) isEvent() {}
func (TimerFired) isEvent()     {}
func (TrackerChanged) isEvent() {}
func (FaultChanged) isEvent()   {}
func (GroupForce) isEvent()     {}
func (Shutdown) isEvent()       {}

// Action is an output of Machine.Handle, to be performed in order.
type Action interface{ isAction() }

// SendAdvert sends one advertisement with the given priority; the shell
// fills in the configured interval and addresses. To, when set, is the
// one destination (a unicast peer) instead of all of them.
type SendAdvert struct {
	Priority uint8
	To       netip.Addr
}

// AddVIPs installs the virtual addresses (and routes, rules, accept-mode
// firewall state) of the instance.
type AddVIPs struct{}

// RemoveVIPs removes what AddVIPs installed.
type RemoveVIPs struct{}

// DrainVIPs ends a mastership that another router took over while this
// one still works (it heard a higher priority, or it handed over):
// make-before-break, the shell keeps what AddVIPs installed for a while,
// forwarding what still reaches it, but no longer answers ARP / neighbour
// solicitations for the addresses, so that the clients move to the new
// master as its gratuitous announcements reach them; then it removes
// them. A later AddVIPs claims them again, and a later RemoveVIPs removes
// them at once.
type DrainVIPs struct{}

// SendGratuitous sends gratuitous ARPs / unsolicited neighbour
// advertisements for the virtual addresses. LowerPrio marks the ones a
// master sends on hearing a lower priority advertisement, which follow
// garp_lower_prio_repeat and garp_lower_prio_delay instead of the
// garp_master_* pair (keepalived.conf(5); vrrp.c vrrp_state_master_rx).
type SendGratuitous struct{ LowerPrio bool }

// Notify reports entry into State from From (notify scripts, FIFO, logs),
// and why.
type Notify struct {
	State  State
	From   State
	Reason Reason
}

// ArmTimer (re)arms the instance's single timer to fire at At, replacing any
// earlier timer. When it fires, feed back TimerFired{Gen}.
type ArmTimer struct {
	Gen uint64
	At  time.Time
}

// CancelTimer cancels the timer; states FAULT and STOP have none. The
// generation moves on as well, so a TimerFired that slips through is stale.
type CancelTimer struct{}

func (SendAdvert) isAction()     {}
func (AddVIPs) isAction()        {}
func (RemoveVIPs) isAction()     {}
func (DrainVIPs) isAction()      {}
func (SendGratuitous) isAction() {}
func (Notify) isAction()         {}
func (ArmTimer) isAction()       {}
func (CancelTimer) isAction()    {}

// Machine is the state machine of one VRRP instance. It is not safe for
// concurrent use; the instance layer serialises events.
type Machine struct {
	cfg MachineConfig

	state State
	// want is the state the instance would be in if it were not in a sync
	// group (keepalived wantstate): the group may hold a member in BACKUP
	// that wants MASTER, or in FAULT that has no fault of its own.
	want State

	// masterAdverInt is RFC 5798 Master_Adver_Interval: learnt from the
	// master while BACKUP (v3 only), reset to AdvertInt when becoming
	// master or leaving FAULT (keepalived vrrp_state_leave_fault).
	masterAdverInt time.Duration

	trackWeight map[string]int
	trackFault  map[string]bool
	faults      map[string]bool
	// groupFault is a FAULT imposed by the sync group.
	groupFault bool
	priority   uint8 // effective priority

	// preemptAt is when a pending preempt delay ends (zero: none pending).
	preemptAt time.Time

	// downWhy is why the BACKUP's Master_Down_Timer will have expired
	// when it fires: the last master heard went silent, advertised
	// priority 0, or advertises a priority we preempt.
	downWhy Reason
	// master is the sender of the last advertisement the BACKUP accepted
	// (zero: none since it entered BACKUP), the peer PeerDown names.
	master netip.Addr
	// faultWhy is the latest fault that came on; groupWhy the reason of
	// a group FAULT given before Start.
	faultWhy, groupWhy Reason

	// yielded: the instance handed its mastership over and does not
	// preempt until it is master again. handing: it advertised priority
	// 0 for a handover and still claims the addresses until it hears the
	// new master.
	yielded, handing bool

	gen      uint64    // generation of the armed timer
	deadline time.Time // when the armed timer fires; zero if none
}

// NewMachine returns a machine in Init for cfg. Feed it Start to bring it up.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.normalize()
	return &Machine{
		cfg:            cfg,
		state:          Init,
		want:           Init,
		masterAdverInt: cfg.AdvertInt,
		trackWeight:    map[string]int{},
		trackFault:     map[string]bool{},
		faults:         map[string]bool{},
		priority:       cfg.Priority,
	}, nil
}

// Config returns the configuration in effect, after NewMachine's defaults.
func (m *Machine) Config() MachineConfig { return m.cfg }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Want returns the state the instance would be in outside a sync group.
func (m *Machine) Want() State { return m.want }

// Status returns the state and wanted state, as SyncGroup.Observe takes them.
func (m *Machine) Status() MemberStatus { return MemberStatus{State: m.state, Want: m.want} }

// Priority returns the effective priority: the base priority plus tracker
// weights, clamped to 1..254 unless the instance is the address owner.
func (m *Machine) Priority() uint8 { return m.priority }

// MasterAdverInt returns the current Master_Adver_Interval.
func (m *Machine) MasterAdverInt() time.Duration { return m.masterAdverInt }

// Handle applies ev at time now and returns the actions to perform.
func (m *Machine) Handle(now time.Time, ev Event) []Action {
	if m.state == Stop {
		return nil
	}
	var a actions
	switch ev := ev.(type) {
	case Start:
		if m.state == Init {
			why := ev.Reason
			if why.Kind == ReasonNone {
				why = Reason{Kind: ReasonStartup}
			}
			m.start(now, why, &a)
		}
	case AdvertReceived:
		switch m.state {
		case Backup:
			m.backupRx(now, ev, &a)
		case Master:
			m.masterRx(now, ev, &a)
		}
	case TimerFired:
		if ev.Gen == m.gen && !m.deadline.IsZero() {
			due := m.deadline
			m.deadline = time.Time{}
			m.timerFired(now, due, &a)
		}
	case PeerDown:
		if m.state == Backup && m.master.IsValid() && m.master == ev.Peer {
			m.downWhy = Reason{Kind: ReasonBFDDown, Peer: ev.Peer, Name: ev.Name}
			m.takeOver(now, &a)
		}
	case TrackerChanged:
		why := Reason{Kind: ReasonFaultCleared, Name: ev.Name, Detail: ev.Detail}
		if ev.Fault {
			m.trackFault[ev.Name] = true
			delete(m.trackWeight, ev.Name)
			why.Kind = ReasonTracker
			m.faultWhy = why
		} else {
			delete(m.trackFault, ev.Name)
			m.trackWeight[ev.Name] = ev.Weight
		}
		m.setPriority(now, &a)
		m.faultsChanged(now, why, &a)
	case FaultChanged:
		why := Reason{Kind: ReasonFaultCleared, Name: ev.Reason}
		if ev.On {
			m.faults[ev.Reason] = true
			why.Kind = ReasonFault
			m.faultWhy = why
		} else {
			delete(m.faults, ev.Reason)
		}
		m.faultsChanged(now, why, &a)
	case GroupForce:
		m.groupForce(now, ev, &a)
	case Reconfigure:
		m.reconfigure(now, ev.Config, &a)
	case Handover:
		if m.state == Master {
			a.add(SendAdvert{Priority: 0, To: ev.To})
			m.enterBackup(now, m.masterDown(), Reason{Kind: ReasonHandover, Peer: ev.To}, &a)
			m.yielded, m.handing = true, true
		}
	case Shutdown:
		m.dropVIPs(&a)
		why := ev.Reason
		if why.Kind == ReasonNone {
			why = Reason{Kind: ReasonShutdown}
		}
		m.enter(Stop, why, &a)
		m.cancelTimer(&a)
	}
	return a
}

type actions []Action

func (a *actions) add(x ...Action) { *a = append(*a, x...) }

// ownFault reports whether the instance itself (not its sync group) has a
// reason to be in FAULT.
func (m *Machine) ownFault() bool { return len(m.faults) > 0 || len(m.trackFault) > 0 }

func (m *Machine) start(now time.Time, why Reason, a *actions) {
	if m.ownFault() || m.groupFault {
		m.want = Backup
		fwhy := m.groupWhy
		if m.ownFault() {
			m.want = Fault
			fwhy = m.faultWhy
		}
		m.enter(Fault, fwhy, a)
		return
	}
	owner := m.cfg.InitialState == Master && m.cfg.Priority == ownerPriority
	if owner && !m.cfg.SyncGroup {
		// RFC 5798 §6.4.1: the address owner takes over at once.
		m.becomeMaster(now, why, a)
		return
	}
	m.enter(Backup, why, a)
	m.downWhy = Reason{Kind: ReasonAdvertTimeout}
	switch {
	case owner:
		// In a sync group the owner only wants MASTER; the group decides.
		m.takeOver(now, a)
	case m.cfg.InitialState == Master:
		// keepalived vrrp_init_state: allow one advertisement interval to
		// pass to make sure there is no other master.
		m.want = Backup
		m.arm(now.Add(m.masterAdverInt+m.skewFor(1)), a)
	default:
		m.want = Backup
		m.arm(now.Add(m.masterDown()), a)
	}
}

// skewFor returns the skew for a priority distance of d (256-priority).
func (m *Machine) skewFor(d int) time.Duration { return skewTime(m.cfg.Version, m.masterAdverInt, d) }

// skewTime is Skew_Time for a priority distance of d (256-priority).
// RFC 3768 §6.1: (256-Priority)/256 seconds. RFC 5798 §6.1:
// ((256-Priority) * Master_Adver_Interval)/256. keepalived VRRP_TIMER_SKEW.
func skewTime(version uint8, masterAdverInt time.Duration, d int) time.Duration {
	if version == 3 {
		return time.Duration(d) * masterAdverInt / 256
	}
	return time.Duration(d) * time.Second / 256
}

func (m *Machine) skew() time.Duration { return m.skewFor(256 - int(m.priority)) }

// masterDown is Master_Down_Interval = 3*Master_Adver_Interval + Skew_Time
// (for v2 Master_Adver_Interval is always the configured interval).
func (m *Machine) masterDown() time.Duration {
	return MasterDownInterval(m.cfg.Version, m.masterAdverInt, m.priority)
}

// MasterDownInterval is how long a backup of the given priority waits
// without an advertisement before it takes over: 3*Master_Adver_Interval
// + Skew_Time (RFC 3768 §6.1, RFC 5798 §6.1). It bounds the outage a
// master's crash causes, which is what `tandem lab demo` reports against.
func MasterDownInterval(version uint8, masterAdverInt time.Duration, priority uint8) time.Duration {
	return 3*masterAdverInt + skewTime(version, masterAdverInt, 256-int(priority))
}

func (m *Machine) arm(at time.Time, a *actions) {
	m.gen++
	m.deadline = at
	a.add(ArmTimer{Gen: m.gen, At: at})
}

func (m *Machine) cancelTimer(a *actions) {
	if m.deadline.IsZero() {
		return
	}
	m.gen++
	m.deadline = time.Time{}
	a.add(CancelTimer{})
}

func (m *Machine) enter(s State, why Reason, a *actions) {
	a.add(Notify{State: s, From: m.state, Reason: why})
	m.state = s
}

func (m *Machine) timerFired(now, due time.Time, a *actions) {
	switch m.state {
	case Backup:
		// Master_Down_Timer expired (RFC 5798 §6.4.2).
		m.takeOver(now, a)
	case Master:
		// Adver_Timer expired (RFC 5798 §6.4.3). The next advert is due
		// one interval after this one was due, not after it was handled,
		// so that a late wake-up does not push every later advert back
		// (a stalled master would otherwise drift towards the backups'
		// Master_Down_Interval); intervals missed altogether are skipped.
		a.add(SendAdvert{Priority: m.priority})
		next := due.Add(m.cfg.AdvertInt)
		for !next.After(now) {
			next = next.Add(m.cfg.AdvertInt)
		}
		m.arm(next, a)
	}
}

// takeOver is the BACKUP instance deciding to become master. A sync group
// member only records the wish and keeps waiting a full Master_Down_Interval
// for the group to agree (keepalived vrrp_sync_can_goto_master).
func (m *Machine) takeOver(now time.Time, a *actions) {
	m.want = Master
	if m.cfg.SyncGroup {
		m.arm(now.Add(m.masterDown()), a)
		return
	}
	m.becomeMaster(now, m.downWhy, a)
}

// becomeMaster performs the transition to MASTER. The advertisement goes
// first so that the old master drops the addresses before our gratuitous
// ARPs claim them (keepalived vrrp_state_master_tx).
func (m *Machine) becomeMaster(now time.Time, why Reason, a *actions) {
	m.want = Master
	m.masterAdverInt = m.cfg.AdvertInt
	a.add(SendAdvert{Priority: m.priority})
	if !m.handing {
		// A handover nobody took still holds and claims them.
		a.add(AddVIPs{})
	}
	a.add(SendGratuitous{})
	m.yielded, m.handing = false, false
	m.enter(Master, why, a)
	m.arm(now.Add(m.cfg.AdvertInt), a)
}

// leaveMasterForBackup: no priority 0 advertisement is sent (keepalived
// vrrp_state_leave_master with wantstate BACKUP). Another router took
// over while this one works, so the addresses drain rather than go at
// once (make-before-break; keepalived removes them at once).
func (m *Machine) leaveMasterForBackup(now time.Time, why Reason, a *actions) {
	a.add(DrainVIPs{})
	m.enterBackup(now, m.masterDown(), why, a)
}

// enterBackup enters BACKUP from MASTER or FAULT; any preempt delay restarts
// (keepalived clears preempt_time on both paths).
func (m *Machine) enterBackup(now time.Time, down time.Duration, why Reason, a *actions) {
	m.want = Backup
	m.preemptAt = time.Time{}
	m.downWhy = Reason{Kind: ReasonAdvertTimeout}
	m.master = netip.Addr{}
	m.enter(Backup, why, a)
	m.arm(now.Add(down), a)
}

// higherThanUs reports whether an advertisement from src with priority p
// beats us: higher priority, or equal priority and a higher primary address
// (RFC 5798 §6.4.3).
func (m *Machine) higherThanUs(p uint8, src netip.Addr) bool {
	return p > m.priority || p == m.priority && src.Compare(m.cfg.PrimaryAddr) > 0
}

// backupRx is RFC 5798 §6.4.2 "If an ADVERTISEMENT is received" with
// keepalived's preempt_delay (vrrp_state_backup).
func (m *Machine) backupRx(now time.Time, ev AdvertReceived, a *actions) {
	if m.handing && ev.Priority > 0 && ev.Src != m.cfg.PrimaryAddr {
		// The new master of a handover announced itself: the addresses
		// are its now.
		m.handing = false
		a.add(DrainVIPs{})
	}
	if ev.Priority == 0 {
		// The master is shutting down: take over after Skew_Time only.
		m.downWhy = Reason{Kind: ReasonPriorityZero, Peer: ev.Src}
		m.arm(arrival(now, ev.At).Add(m.skew()), a)
		return
	}
	delaying := m.cfg.PreemptDelay > 0 && (m.preemptAt.IsZero() || now.Before(m.preemptAt))
	if m.cfg.Preempt && !m.yielded && ev.Priority < m.priority && !delaying {
		// Discard: Master_Down_Timer keeps running and we preempt when it
		// expires.
		m.downWhy = Reason{Kind: ReasonPreempt, Peer: ev.Src, Priority: ev.Priority}
		return
	}
	if m.cfg.Version == 3 && ev.MaxAdvertInt > 0 {
		m.masterAdverInt = ev.MaxAdvertInt
	}
	if m.cfg.PreemptDelay > 0 {
		if ev.Priority >= m.priority {
			m.preemptAt = time.Time{}
		} else if m.preemptAt.IsZero() {
			m.preemptAt = now.Add(m.cfg.PreemptDelay)
		}
	}
	// Accepted: a sync group member that wanted MASTER now wants BACKUP.
	// The timer restarts as of the advert's arrival: if that is more
	// than Master_Down_Interval ago it fires at once, and the caller
	// takes over unless a later advert is waiting to be read.
	m.want = Backup
	m.downWhy = Reason{Kind: ReasonAdvertTimeout, Peer: ev.Src}
	m.master = ev.Src
	m.arm(arrival(now, ev.At).Add(m.masterDown()), a)
}

// arrival is when an advert stamped at arrived, handled at now.
func arrival(now, at time.Time) time.Time {
	if at.IsZero() || at.After(now) {
		return now
	}
	return at
}

// masterRx is RFC 5798 §6.4.3 "If an ADVERTISEMENT is received" as
// keepalived's vrrp_state_master_rx does it, with its lower_prio_no_advert
// and higher_prio_send_advert.
func (m *Machine) masterRx(now time.Time, ev AdvertReceived, a *actions) {
	switch {
	case ev.Priority == 0:
		// Another router is shutting down as master: assert ourselves.
		a.add(SendAdvert{Priority: m.priority})
		m.arm(now.Add(m.cfg.AdvertInt), a)
	case ev.Src == m.cfg.PrimaryAddr:
		// Our own advertisement looped back; neither higher nor lower.
	case m.higherThanUs(ev.Priority, ev.Src):
		if m.cfg.HigherPrioSendAdvert {
			a.add(SendAdvert{Priority: m.priority})
		}
		if m.cfg.Version == 3 && ev.MaxAdvertInt > 0 {
			m.masterAdverInt = ev.MaxAdvertInt
		}
		m.leaveMasterForBackup(now, Reason{Kind: ReasonHigherPriority, Peer: ev.Src, Priority: ev.Priority}, a)
		m.downWhy = Reason{Kind: ReasonAdvertTimeout, Peer: ev.Src}
	case m.cfg.LowerPrioNoAdvert:
		// RFC 5798 §6.4.3: discard; the Adver_Timer keeps running. ARP
		// caches the other router may have poisoned are still refreshed.
		a.add(SendGratuitous{LowerPrio: true})
	default:
		// A lower priority router thinks it is master (a split brain is
		// healing, or it missed our adverts): advertise at once to force it
		// back, and refresh ARP caches it may have poisoned. The advert
		// restarts the Adver_Timer.
		a.add(SendAdvert{Priority: m.priority}, SendGratuitous{LowerPrio: true})
		m.arm(now.Add(m.cfg.AdvertInt), a)
	}
}

// setPriority recomputes the effective priority after a tracker change
// (keepalived vrrp_set_effective_priority): base plus weights, clamped to
// 1..254; the address owner's priority never changes. A BACKUP's running
// Master_Down_Timer moves by the change in Skew_Time, as keepalived moves
// sands by the change in ms_down_timer.
func (m *Machine) setPriority(now time.Time, a *actions) {
	p := m.cfg.Priority
	if p != ownerPriority {
		total := int(p)
		for _, w := range m.trackWeight {
			total += w
		}
		p = uint8(min(max(total, 1), ownerPriority-1))
	}
	if p == m.priority {
		return
	}
	oldSkew := m.skew()
	m.priority = p
	if m.state == Backup && !m.deadline.IsZero() {
		m.arm(later(now, m.deadline.Add(m.skew()-oldSkew)), a)
	}
}

// reconfigure applies Reconfigure (see there).
func (m *Machine) reconfigure(now time.Time, c MachineConfig, a *actions) {
	c.Version, c.VRID, c.SyncGroup, c.PrimaryAddr = m.cfg.Version, m.cfg.VRID, m.cfg.SyncGroup, m.cfg.PrimaryAddr
	if c.validate() != nil {
		return
	}
	c.normalize()
	oldInt := m.cfg.AdvertInt
	m.cfg = c
	if !c.Preempt || c.PreemptDelay == 0 {
		m.preemptAt = time.Time{}
	}
	// Master_Adver_Interval is our own interval except in a VRRPv3
	// backup, which learnt the master's (RFC 5798 §6.4.2).
	if m.state != Backup || c.Version != 3 {
		m.masterAdverInt = c.AdvertInt
	}
	if m.state == Master && c.AdvertInt != oldInt && !m.deadline.IsZero() {
		// The advert due next comes one new interval after the last one.
		m.arm(later(now, m.deadline.Add(c.AdvertInt-oldInt)), a)
	}
	m.setPriority(now, a)
}

// later returns the later of now and at.
func later(now, at time.Time) time.Time {
	if at.Before(now) {
		return now
	}
	return at
}

// faultsChanged moves into or out of FAULT after the fault reasons changed
// (keepalived down_instance / try_up_instance).
func (m *Machine) faultsChanged(now time.Time, why Reason, a *actions) {
	own := m.ownFault()
	switch {
	case own && m.want != Fault:
		m.want = Fault
		if m.state == Backup || m.state == Master {
			m.enterFault(why, a)
		}
	case !own && m.want == Fault && m.state == Init:
		m.want = Init
	case !own && m.want == Fault:
		m.want = Backup
		if m.state == Fault && !m.groupFault {
			m.leaveFault(now, why, a)
		}
	}
}

// enterFault: a master advertises priority 0 so a backup takes over
// quickly, and drops the addresses (keepalived vrrp_state_leave_master with
// wantstate FAULT, which may send the priority 0 advert twice; once is
// enough). FAULT sends nothing and has no timer.
func (m *Machine) enterFault(why Reason, a *actions) {
	m.dropVIPs(a)
	m.enter(Fault, why, a)
	m.cancelTimer(a)
}

// dropVIPs is a master failing or stopping: it advertises priority 0 and
// its addresses go at once. A handover still waiting for its new master
// only drops the addresses, its priority 0 advert already sent.
func (m *Machine) dropVIPs(a *actions) {
	if m.state == Master {
		a.add(SendAdvert{Priority: 0})
	}
	if m.state == Master || m.handing {
		a.add(RemoveVIPs{})
	}
	m.handing = false
}

// leaveFault always goes to BACKUP with a fresh Master_Down_Interval from
// the configured interval, even for the address owner (keepalived
// try_up_instance: down_instance set wantstate FAULT, so it becomes BACKUP;
// vrrp_state_leave_fault resets master_adver_int).
func (m *Machine) leaveFault(now time.Time, why Reason, a *actions) {
	m.masterAdverInt = m.cfg.AdvertInt
	m.enterBackup(now, m.masterDown(), why, a)
}

// groupForce applies a sync group decision. A member not started yet only
// remembers a group FAULT, so that it starts in FAULT as keepalived starts
// members of a faulty group (vrrp_init_state uses the group's state).
func (m *Machine) groupForce(now time.Time, ev GroupForce, a *actions) {
	why := ev.Reason
	if m.state == Init {
		m.groupFault = ev.To == Fault
		m.groupWhy = why
		return
	}
	switch ev.To {
	case Fault:
		m.groupFault = true
		if m.state != Fault {
			m.enterFault(why, a)
		}
	case Backup:
		m.groupFault = false
		// A member already in BACKUP is left alone, even if it wants
		// MASTER (keepalived vrrp_sync_backup skips it).
		switch {
		case m.state == Master:
			m.leaveMasterForBackup(now, why, a)
		case m.state == Fault && !m.ownFault():
			m.leaveFault(now, why, a)
		}
	case Master:
		if m.state == Backup {
			if m.want == Master {
				// Its own Master_Down_Timer expired: that is the news.
				why = m.downWhy
			}
			m.becomeMaster(now, why, a)
		}
	}
}
