package vrrp

import (
	"testing"
	"time"
)

// notified returns the one Notify among as, failing the test if there is
// not exactly one.
func notified(t *testing.T, as []Action) Notify {
	t.Helper()
	var out []Notify
	for _, a := range as {
		if n, ok := a.(Notify); ok {
			out = append(out, n)
		}
	}
	if len(out) != 1 {
		t.Fatalf("actions %v: %d Notify, want 1", as, len(out))
	}
	return out[0]
}

// TestReasons drives a machine down each transition path and checks the
// reason its Notify carries, as the engine logs it.
func TestReasons(t *testing.T) {
	trackFault := TrackerChanged{Name: "vrrp_script chk_nginx", Fault: true, Detail: "track_script chk_nginx failed"}
	group := func(to, went State) GroupForce {
		return GroupForce{To: to, Reason: Reason{Kind: ReasonSyncGroup, Group: "G", Name: "VI_2", State: went}}
	}
	tests := []struct {
		name string
		cfg  func(*MachineConfig)
		// before are fed first (at 0, 1s, 2s, ...); last is fed at 100s
		// and must cause the transition.
		before []Event
		last   Event
		from   State
		to     State
		want   string
	}{
		{"startup", nil, nil, Start{}, Init, Backup, "startup"},
		{"startup delay", nil, nil, Start{Reason: Reason{Kind: ReasonStartupDelay}}, Init, Backup, "vrrp_startup_delay over"},
		{"owner starts master", func(c *MachineConfig) { c.Priority = 255 }, nil, Start{}, Init, Master, "startup"},
		{"master down timer, no master ever heard", nil, []Event{Start{}}, TimerFired{Gen: 1}, Backup, Master, "advert timeout, no master heard"},
		{"master down timer names the last master", nil,
			[]Event{Start{}, adv(100, addrLow), adv(150, addrHigh)}, TimerFired{Gen: 3}, Backup, Master, "advert timeout from 192.0.2.9"},
		{"priority 0", nil, []Event{Start{}, adv(150, addrHigh), adv(0, addrHigh)}, TimerFired{Gen: 3}, Backup, Master, "priority 0 received from 192.0.2.9"},
		{"preemption", nil, []Event{Start{}, adv(50, addrLow)}, TimerFired{Gen: 1}, Backup, Master, "preempting lower priority master 192.0.2.1 (prio 50)"},
		{"higher priority", nil, []Event{Start{}, TimerFired{Gen: 1}}, adv(200, addrLow), Master, Backup,
			"higher priority advert from 192.0.2.1 (prio 200)"},
		{"equal priority, higher address", nil, []Event{Start{}, TimerFired{Gen: 1}}, adv(100, addrHigh), Master, Backup,
			"higher priority advert from 192.0.2.9 (prio 100)"},
		{"tracked script fails", nil, []Event{Start{}}, trackFault, Backup, Fault, "track_script chk_nginx failed"},
		{"tracked interface down as master", nil, []Event{Start{}, TimerFired{Gen: 1}},
			TrackerChanged{Name: "track_interface eth1", Fault: true, Detail: "track_interface eth1 down"}, Master, Fault, "track_interface eth1 down"},
		{"tracked file", nil, []Event{Start{}},
			TrackerChanged{Name: "track_file f", Fault: true, Detail: "track_file f = 1"}, Backup, Fault, "track_file f = 1"},
		{"tracker without words", nil, []Event{Start{}}, TrackerChanged{Name: "vrrp_script chk", Fault: true}, Backup, Fault, "vrrp_script chk in fault"},
		{"named fault", nil, []Event{Start{}}, FaultChanged{Reason: "interface eth0 down", On: true}, Backup, Fault, "interface eth0 down"},
		{"fault cleared", nil, []Event{Start{}, trackFault},
			TrackerChanged{Name: "vrrp_script chk_nginx", Detail: "track_script chk_nginx ok"}, Fault, Backup, "fault cleared: track_script chk_nginx ok"},
		{"starts in fault", nil, []Event{trackFault}, Start{}, Init, Fault, "track_script chk_nginx failed"},
		{"sync group fault", inGroup, []Event{Start{}}, group(Fault, Fault), Backup, Fault, "sync group G member VI_2 went FAULT"},
		{"sync group fault before start", inGroup, []Event{group(Fault, Fault)}, Start{}, Init, Fault, "sync group G member VI_2 went FAULT"},
		{"sync group master falls", inGroup, []Event{Start{}, TimerFired{Gen: 1}, group(Master, Master)},
			group(Backup, Backup), Master, Backup, "sync group G member VI_2 went BACKUP"},
		{"sync group leaves fault", inGroup, []Event{Start{}, group(Fault, Fault)}, group(Backup, Backup), Fault, Backup, "sync group G member VI_2 went BACKUP"},
		{"sync group master, other member's wish", inGroup, []Event{Start{}}, group(Master, Master), Backup, Master, "sync group G member VI_2 wants MASTER"},
		{"sync group master, own timeout", inGroup, []Event{Start{}, adv(150, addrHigh), TimerFired{Gen: 2}},
			group(Master, Master), Backup, Master, "advert timeout from 192.0.2.9"},
		{"shutdown", nil, []Event{Start{}, TimerFired{Gen: 1}}, Shutdown{}, Master, Stop, "shutdown"},
		{"reload stops", nil, []Event{Start{}}, Shutdown{Reason: Reason{Kind: ReasonReload}}, Backup, Stop, "reload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			m, err := NewMachine(c)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range tt.before {
				m.Handle(t0.Add(time.Duration(i)*time.Second), ev)
			}
			if m.State() != tt.from {
				t.Fatalf("before: state %v, want %v", m.State(), tt.from)
			}
			n := notified(t, m.Handle(t0.Add(100*time.Second), tt.last))
			if n.From != tt.from || n.State != tt.to {
				t.Errorf("Notify %v -> %v, want %v -> %v", n.From, n.State, tt.from, tt.to)
			}
			if got := n.Reason.String(); got != tt.want {
				t.Errorf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

func inGroup(c *MachineConfig) { c.SyncGroup = true }

// TestSyncGroupCause checks that the coordinator names the member that
// moved the group, and what that member went to.
func TestSyncGroupCause(t *testing.T) {
	g := NewSyncGroup(2)
	g.Observe(0, MemberStatus{State: Backup, Want: Backup})
	g.Observe(1, MemberStatus{State: Backup, Want: Backup})
	forced := g.Observe(1, MemberStatus{State: Fault, Want: Fault})
	if len(forced) != 2 {
		t.Fatalf("forced %v, want both members", forced)
	}
	for _, f := range forced {
		if f.Cause != 1 || f.Event.Reason.Kind != ReasonSyncGroup || f.Event.Reason.State != Fault {
			t.Errorf("forced %+v: want cause 1, sync group reason, went FAULT", f)
		}
	}
}

func TestReasonKindNames(t *testing.T) {
	for k := ReasonNone; k <= ReasonSyncGroup; k++ {
		b, err := k.MarshalText()
		if err != nil || len(b) == 0 || b[0] == 'R' {
			t.Errorf("ReasonKind(%d).MarshalText() = %q, %v; want a name", k, b, err)
		}
	}
}
