package vrrp

// MemberStatus is what the sync group coordinator needs to know about one
// member after each event it handled: its state, and the state it would be
// in on its own (Machine.Status).
type MemberStatus struct {
	State State
	Want  State
}

// Forced is an event the coordinator forces on one member.
type Forced struct {
	Member int
	Event  GroupForce
	// Cause is the member whose status moved the group; the caller
	// names it (and the group) in Event.Reason.
	Cause int
}

// SyncGroup coordinates the members of a keepalived vrrp_sync_group so that
// they change state together (keepalived vrrp_sync.c):
//
//   - FAULT wins: when any member has a fault of its own, every member is
//     forced to FAULT, and the group leaves FAULT, to BACKUP, only once no
//     member has a fault of its own (down_instance / try_up_instance count
//     num_member_fault; vrrp_sync_fault).
//   - MASTER is unanimous: a member whose Master_Down_Timer expires only
//     wants MASTER; the group goes MASTER when it already is MASTER or when
//     every member wants MASTER, which prefers BACKUP to thrashing
//     (vrrp_sync_can_goto_master, vrrp_sync_master).
//   - A member falling from MASTER to BACKUP takes the others with it
//     (vrrp_sync_backup).
//
// It is pure: the caller hands each member's status after every event the
// member handled (Observe) and feeds the returned events to the members,
// observing them in turn. Members must be configured with
// MachineConfig.SyncGroup so that they defer taking over to the group.
type SyncGroup struct {
	members []MemberStatus
	state   State
}

// NewSyncGroup returns a coordinator for n members, numbered 0..n-1, all not
// started yet. The group starts in BACKUP.
func NewSyncGroup(n int) *SyncGroup {
	g := &SyncGroup{members: make([]MemberStatus, n), state: Backup}
	for i := range g.members {
		// A member that has not started yet holds the group back from
		// MASTER, like keepalived's num_member_init.
		g.members[i] = MemberStatus{State: Init, Want: Init}
	}
	return g
}

// State returns the group's state (for group notify scripts).
func (g *SyncGroup) State() State { return g.state }

// Observe records member's status after it handled an event and returns
// the events to force on members, possibly including member itself.
func (g *SyncGroup) Observe(member int, st MemberStatus) []Forced {
	prev := g.members[member]
	g.members[member] = st

	if g.state == Fault {
		for _, m := range g.members {
			if m.Want == Fault {
				return nil
			}
		}
		g.state = Backup
		// Members not started yet are released too, or they would start in
		// FAULT and stay there.
		return g.force(member, st.Want, Backup, func(m MemberStatus) bool { return m.State == Fault || m.State == Init })
	}
	if st.Want == Fault {
		g.state = Fault
		// The member at fault is forced too, so that its own recovery does
		// not take it out of FAULT while another member is still faulty.
		return g.force(member, st.Want, Fault, func(MemberStatus) bool { return true })
	}
	if prev.State == Master && st.State == Backup && g.state == Master {
		g.state = Backup
		return g.force(member, st.Want, Backup, func(m MemberStatus) bool { return m.State == Master })
	}
	if st.Want == Master && st.State != Master && g.state != Master {
		for _, m := range g.members {
			if m.Want != Master {
				return nil
			}
		}
		g.state = Master
	}
	if g.state == Master && st.Want == Master && st.State == Backup {
		return g.force(member, st.Want, Master, func(m MemberStatus) bool { return m.State == Backup })
	}
	return nil
}

func (g *SyncGroup) force(cause int, went, to State, which func(MemberStatus) bool) []Forced {
	var out []Forced
	for i, m := range g.members {
		if which(m) {
			out = append(out, Forced{Member: i, Cause: cause, Event: GroupForce{To: to, Reason: Reason{Kind: ReasonSyncGroup, State: went}}})
		}
	}
	return out
}
