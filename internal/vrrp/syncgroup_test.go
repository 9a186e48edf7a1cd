package vrrp

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// groupHarness drives sync group members the way the instance layer does:
// every event's resulting status goes to the coordinator and forced events
// go back to the members until nothing more is forced.
type groupHarness struct {
	t  *testing.T
	ms []*Machine
	g  *SyncGroup
}

func newGroupHarness(t *testing.T, prios ...uint8) *groupHarness {
	t.Helper()
	h := &groupHarness{t: t, g: NewSyncGroup(len(prios))}
	for i, p := range prios {
		c := baseConfig()
		c.VRID = uint8(10 + i)
		c.Priority = p
		c.SyncGroup = true
		m, err := NewMachine(c)
		if err != nil {
			t.Fatal(err)
		}
		h.ms = append(h.ms, m)
	}
	return h
}

// handle feeds ev to member i and returns every member's actions.
func (h *groupHarness) handle(at time.Duration, i int, ev Event) map[int][]Action {
	now := t0.Add(at)
	out := map[int][]Action{}
	queue := []Forced{{Member: i}}
	first := true
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		var acts []Action
		if first {
			acts = h.ms[f.Member].Handle(now, ev)
			first = false
		} else {
			acts = h.ms[f.Member].Handle(now, f.Event)
		}
		out[f.Member] = append(out[f.Member], acts...)
		queue = append(queue, h.g.Observe(f.Member, h.ms[f.Member].Status())...)
		if len(queue) > 10*len(h.ms) {
			h.t.Fatalf("sync group does not settle: %v", queue)
		}
	}
	for k, v := range out {
		if len(v) == 0 {
			delete(out, k)
		}
	}
	return out
}

func (h *groupHarness) states() []State {
	var s []State
	for _, m := range h.ms {
		s = append(s, m.State())
	}
	return s
}

func (h *groupHarness) expect(states ...State) {
	h.t.Helper()
	if diff := cmp.Diff(states, h.states()); diff != "" {
		h.t.Fatalf("member states (-want +got):\n%s", diff)
	}
}

// startBoth starts two members and lets both time out, which makes the
// group MASTER (keepalived vrrp_sync_master once all members want MASTER).
func startBoth(t *testing.T) *groupHarness {
	h := newGroupHarness(t, 100, 100)
	h.handle(0, 0, Start{})
	h.handle(0, 1, Start{})
	h.expect(Backup, Backup)
	if got := h.handle(down100, 0, TimerFired{Gen: 1}); !cmp.Equal(got, map[int][]Action{0: {arm(2, 2*down100)}}) {
		t.Fatalf("first timeout: %v", got)
	}
	h.expect(Backup, Backup)
	got := h.handle(down100, 1, TimerFired{Gen: 1})
	want := map[int][]Action{
		0: toMaster(100, 3, down100+time.Second),
		1: append([]Action{arm(2, 2*down100)}, toMaster(100, 3, down100+time.Second)...),
	}
	if diff := cmp.Diff(want, got, ignoreWhy); diff != "" {
		t.Fatalf("second timeout (-want +got):\n%s", diff)
	}
	h.expect(Master, Master)
	if h.g.State() != Master {
		t.Fatalf("group state %v", h.g.State())
	}
	return h
}

func TestSyncGroupMasterIsUnanimous(t *testing.T) {
	startBoth(t)
}

func TestSyncGroupWaitsForUnstartedMember(t *testing.T) {
	h := newGroupHarness(t, 100, 100)
	h.handle(0, 0, Start{})
	h.handle(down100, 0, TimerFired{Gen: 1})
	h.expect(Backup, Init)
	// An accepted advert withdraws member 0's wish, so member 1 alone
	// cannot take the group to MASTER.
	h.handle(time.Second+down100, 0, adv(200, addrLow))
	h.handle(2*down100, 1, Start{})
	h.handle(3*down100, 1, TimerFired{Gen: 1})
	h.expect(Backup, Backup)
}

func TestSyncGroupBackupFollows(t *testing.T) {
	h := startBoth(t)
	got := h.handle(5*time.Second, 0, adv(200, addrLow))
	want := map[int][]Action{
		0: {DrainVIPs{}, Notify{State: Backup}, arm(4, 5*time.Second+down100)},
		1: {DrainVIPs{}, Notify{State: Backup}, arm(4, 5*time.Second+down100)},
	}
	if diff := cmp.Diff(want, got, ignoreWhy); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	h.expect(Backup, Backup)
	if h.g.State() != Backup {
		t.Fatalf("group state %v", h.g.State())
	}
}

func TestSyncGroupFault(t *testing.T) {
	h := startBoth(t)
	got := h.handle(5*time.Second, 1, FaultChanged{Reason: "eth1", On: true})
	leave := []Action{SendAdvert{Priority: 0}, RemoveVIPs{}, Notify{State: Fault}, CancelTimer{}}
	if diff := cmp.Diff(map[int][]Action{0: leave, 1: leave}, got, ignoreWhy); diff != "" {
		t.Fatalf("fault (-want +got):\n%s", diff)
	}
	h.expect(Fault, Fault)
	// Member 0 gets a fault of its own; member 1 recovering must not take
	// the group out of FAULT (keepalived num_member_fault).
	h.handle(6*time.Second, 0, FaultChanged{Reason: "eth0", On: true})
	if got := h.handle(7*time.Second, 1, FaultChanged{Reason: "eth1"}); len(got) != 0 {
		t.Fatalf("partial recovery produced %v", got)
	}
	h.expect(Fault, Fault)
	got = h.handle(8*time.Second, 0, FaultChanged{Reason: "eth0"})
	want := map[int][]Action{
		0: {Notify{State: Backup}, arm(5, 8*time.Second+down100)},
		1: {Notify{State: Backup}, arm(5, 8*time.Second+down100)},
	}
	if diff := cmp.Diff(want, got, ignoreWhy); diff != "" {
		t.Fatalf("recovery (-want +got):\n%s", diff)
	}
	h.expect(Backup, Backup)
	if h.g.State() != Backup {
		t.Fatalf("group state %v", h.g.State())
	}
}

func TestSyncGroupFaultBeforeStart(t *testing.T) {
	h := newGroupHarness(t, 100, 100)
	h.handle(0, 0, FaultChanged{Reason: "eth0", On: true})
	h.handle(0, 0, Start{})
	h.handle(0, 1, Start{})
	h.expect(Fault, Fault)
	h.handle(time.Second, 0, FaultChanged{Reason: "eth0"})
	h.expect(Backup, Backup)
}

// TestSyncGroupObserve exercises the coordinator alone on status sequences.
func TestSyncGroupObserve(t *testing.T) {
	type obs struct {
		member int
		st     MemberStatus
		want   []Forced
		group  State
	}
	force := func(to State, members ...int) []Forced {
		var f []Forced
		for _, m := range members {
			f = append(f, Forced{Member: m, Event: GroupForce{To: to}})
		}
		return f
	}
	bb := MemberStatus{State: Backup, Want: Backup}
	bm := MemberStatus{State: Backup, Want: Master}
	mm := MemberStatus{State: Master, Want: Master}
	ff := MemberStatus{State: Fault, Want: Fault}
	fb := MemberStatus{State: Fault, Want: Backup}
	tests := []struct {
		name string
		n    int
		seq  []obs
	}{
		{"three members go master together", 3, []obs{
			{0, bb, nil, Backup}, {1, bb, nil, Backup}, {2, bb, nil, Backup},
			{0, bm, nil, Backup}, {2, bm, nil, Backup},
			{1, bm, force(Master, 0, 1, 2), Master},
			{0, mm, nil, Master}, {1, mm, nil, Master}, {2, mm, nil, Master},
		}},
		{"master falling back takes the others", 2, []obs{
			{0, bm, nil, Backup}, {1, bm, force(Master, 0, 1), Master},
			{0, mm, nil, Master}, {1, mm, nil, Master},
			{1, bb, force(Backup, 0), Backup},
			{0, bb, nil, Backup},
		}},
		{"fault forces everyone, release waits for the last", 2, []obs{
			{0, bb, nil, Backup}, {1, bb, nil, Backup},
			{0, ff, force(Fault, 0, 1), Fault},
			{1, fb, nil, Fault},
			{1, ff, nil, Fault},
			{0, fb, nil, Fault},
			{1, fb, force(Backup, 0, 1), Backup},
			{0, bb, nil, Backup}, {1, bb, nil, Backup},
		}},
		{"unstarted member is released from fault too", 2, []obs{
			{0, ff, force(Fault, 0, 1), Fault},
			{0, fb, force(Backup, 0, 1), Backup},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewSyncGroup(tt.n)
			for i, o := range tt.seq {
				got := g.Observe(o.member, o.st)
				if diff := cmp.Diff(o.want, got, ignoreWhy); diff != "" {
					t.Fatalf("observation %d: forced (-want +got):\n%s", i, diff)
				}
				if g.State() != o.group {
					t.Fatalf("observation %d: group %v, want %v", i, g.State(), o.group)
				}
			}
		})
	}
}
