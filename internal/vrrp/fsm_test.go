package vrrp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	addrLow  = netip.MustParseAddr("192.0.2.1")
	addrSelf = netip.MustParseAddr("192.0.2.5")
	addrHigh = netip.MustParseAddr("192.0.2.9")
)

// v2 timers for priority 100 and a 1s interval: Skew_Time = 156/256 s.
const (
	skew100 = 609375 * time.Microsecond
	down100 = 3*time.Second + skew100
)

func baseConfig() MachineConfig {
	return MachineConfig{
		Version:     2,
		VRID:        51,
		Priority:    100,
		AdvertInt:   time.Second,
		Preempt:     true,
		PrimaryAddr: addrSelf,
	}
}

// step feeds ev at t0+at and expects the actions and the resulting state.
type step struct {
	at    time.Duration
	ev    Event
	want  []Action
	state State
}

func runSteps(t *testing.T, cfg MachineConfig, steps []step) *Machine {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine: %v", err)
	}
	for i, s := range steps {
		got := m.Handle(t0.Add(s.at), s.ev)
		if diff := cmp.Diff(s.want, got, ignoreWhy); diff != "" {
			t.Fatalf("step %d (%T%+v at %v): actions (-want +got):\n%s", i, s.ev, s.ev, s.at, diff)
		}
		if m.State() != s.state {
			t.Fatalf("step %d (%T at %v): state %v, want %v", i, s.ev, s.at, m.State(), s.state)
		}
	}
	return m
}

func arm(gen uint64, at time.Duration) ArmTimer { return ArmTimer{Gen: gen, At: t0.Add(at)} }

// toMaster is the action sequence of becoming master.
func toMaster(prio uint8, gen uint64, at time.Duration) []Action {
	return []Action{SendAdvert{Priority: prio}, AddVIPs{}, SendGratuitous{}, Notify{State: Master}, arm(gen, at)}
}

func adv(prio uint8, src netip.Addr) AdvertReceived {
	return AdvertReceived{Priority: prio, MaxAdvertInt: time.Second, Src: src}
}

func TestMasterDownInterval(t *testing.T) {
	for _, tt := range []struct {
		version  uint8
		advert   time.Duration
		priority uint8
		want     time.Duration
	}{
		{2, time.Second, 100, down100},
		// seed000's backup: (256-99)/256 s of skew.
		{2, time.Second, 99, 3*time.Second + 613281250},
		// v3 scales the skew with the interval: 156*100ms/256.
		{3, 100 * time.Millisecond, 100, 300*time.Millisecond + 60937500},
	} {
		if got := MasterDownInterval(tt.version, tt.advert, tt.priority); got != tt.want {
			t.Errorf("MasterDownInterval(v%d, %v, %d) = %v, want %v", tt.version, tt.advert, tt.priority, got, tt.want)
		}
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Init: "INIT", Backup: "BACKUP", Master: "MASTER", Fault: "FAULT", Stop: "STOP", 9: "State(9)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestNewMachineValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*MachineConfig)
		want error
	}{
		{"ok", func(*MachineConfig) {}, nil},
		{"version", func(c *MachineConfig) { c.Version = 4 }, ErrVersion},
		{"vrid", func(c *MachineConfig) { c.VRID = 0 }, ErrVRID},
		{"priority", func(c *MachineConfig) { c.Priority = 0 }, ErrPriority},
		{"state", func(c *MachineConfig) { c.InitialState = Fault }, ErrState},
		{"v2 subsecond", func(c *MachineConfig) { c.AdvertInt = 500 * time.Millisecond }, ErrAdvertInt},
		{"v2 too long", func(c *MachineConfig) { c.AdvertInt = 256 * time.Second }, ErrAdvertInt},
		{"v3 subsecond", func(c *MachineConfig) { c.Version, c.AdvertInt = 3, 10*time.Millisecond }, nil},
		{"v3 too short", func(c *MachineConfig) { c.Version, c.AdvertInt = 3, time.Millisecond }, ErrAdvertInt},
		{"v3 too long", func(c *MachineConfig) { c.Version, c.AdvertInt = 3, 41*time.Second }, ErrAdvertInt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.mod(&c)
			_, err := NewMachine(c)
			if !errors.Is(err, tt.want) {
				t.Errorf("NewMachine() error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewMachineDefaults(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*MachineConfig)
		want func(*MachineConfig)
	}{
		{"non-owner defaults to BACKUP", func(*MachineConfig) {}, func(c *MachineConfig) { c.InitialState = Backup }},
		{"owner defaults to MASTER", func(c *MachineConfig) { c.Priority = 255 },
			func(c *MachineConfig) { c.Priority, c.InitialState = 255, Master }},
		// keepalived vrrp_complete_instance: nopreempt and preempt_delay
		// do not work with `state MASTER` and are cleared.
		{"state MASTER clears nopreempt and delay", func(c *MachineConfig) {
			c.InitialState, c.Preempt, c.PreemptDelay = Master, false, time.Minute
		}, func(c *MachineConfig) { c.InitialState = Master }},
		{"nopreempt clears delay", func(c *MachineConfig) { c.Preempt, c.PreemptDelay = false, time.Minute },
			func(c *MachineConfig) { c.InitialState, c.Preempt = Backup, false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, want := baseConfig(), baseConfig()
			tt.mod(&c)
			tt.want(&want)
			m, err := NewMachine(c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, m.Config(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Config() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStart(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*MachineConfig)
		pre   []Event
		want  []Action
		state State
	}{
		{"backup waits Master_Down_Interval", func(*MachineConfig) {}, nil,
			[]Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{"owner takes over at once", func(c *MachineConfig) { c.Priority = 255 }, nil,
			toMaster(255, 1, time.Second), Master},
		{"owner with state BACKUP waits", func(c *MachineConfig) { c.Priority, c.InitialState = 255, Backup }, nil,
			[]Action{Notify{State: Backup}, arm(1, 3*time.Second+time.Second/256)}, Backup},
		// keepalived vrrp_init_state: one interval plus the minimum skew.
		{"state MASTER non-owner waits one interval", func(c *MachineConfig) { c.InitialState = Master }, nil,
			[]Action{Notify{State: Backup}, arm(1, time.Second+time.Second/256)}, Backup},
		{"v3 timers scale with the interval", func(c *MachineConfig) { c.Version, c.AdvertInt = 3, 100*time.Millisecond }, nil,
			[]Action{Notify{State: Backup}, arm(1, 300*time.Millisecond+156*100*time.Millisecond/256)}, Backup},
		{"fault before start", func(*MachineConfig) {}, []Event{FaultChanged{Reason: "eth0", On: true}},
			[]Action{Notify{State: Fault}}, Fault},
		{"tracker fault before start", func(*MachineConfig) {}, []Event{TrackerChanged{Name: "chk", Fault: true}},
			[]Action{Notify{State: Fault}}, Fault},
		{"tracker weight before start", func(*MachineConfig) {}, []Event{TrackerChanged{Name: "chk", Weight: 50}},
			[]Action{Notify{State: Backup}, arm(1, 3*time.Second+106*time.Second/256)}, Backup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.mod(&c)
			m, err := NewMachine(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range tt.pre {
				if got := m.Handle(t0, ev); len(got) != 0 {
					t.Fatalf("event %T in INIT produced %v", ev, got)
				}
			}
			got := m.Handle(t0, Start{})
			if diff := cmp.Diff(tt.want, got, ignoreWhy); diff != "" {
				t.Errorf("Start actions (-want +got):\n%s", diff)
			}
			if m.State() != tt.state {
				t.Errorf("state %v, want %v", m.State(), tt.state)
			}
			if got := m.Handle(t0, Start{}); got != nil {
				t.Errorf("second Start produced %v", got)
			}
		})
	}
}

func TestBackupReceive(t *testing.T) {
	const at = 2 * time.Second
	tests := []struct {
		name string
		mod  func(*MachineConfig)
		ev   AdvertReceived
		want []Action
	}{
		{"higher priority resets Master_Down_Timer", nil, adv(200, addrLow), []Action{arm(2, at+down100)}},
		{"equal priority resets regardless of address", nil, adv(100, addrLow), []Action{arm(2, at+down100)}},
		{"lower priority discarded with preempt", nil, adv(50, addrHigh), nil},
		{"lower priority accepted with nopreempt", func(c *MachineConfig) { c.Preempt = false }, adv(50, addrHigh),
			[]Action{arm(2, at+down100)}},
		{"priority 0 shortens to Skew_Time", nil, adv(0, addrHigh), []Action{arm(2, at+skew100)}},
		{"v2 ignores the advertised interval", nil, AdvertReceived{Priority: 200, MaxAdvertInt: 5 * time.Second, Src: addrLow},
			[]Action{arm(2, at+down100)}},
		// RFC 5798 §6.4.2: Master_Adver_Interval := advertised interval.
		{"v3 learns the master's interval", func(c *MachineConfig) { c.Version = 3 },
			adv200ms(), []Action{arm(2, at+600*time.Millisecond+156*200*time.Millisecond/256)}},
		{"v3 priority 0 does not learn the interval", func(c *MachineConfig) { c.Version = 3 },
			AdvertReceived{Priority: 0, MaxAdvertInt: 200 * time.Millisecond, Src: addrHigh}, []Action{arm(2, at+skew100)}},
		// An advert handled at 2 s that reached the host at 1.5 s restarts
		// the timer as of its arrival; one stamped in the future, as of now.
		{"restarts from the arrival", nil, AdvertReceived{Priority: 200, Src: addrLow, At: t0.Add(at - 500*time.Millisecond)},
			[]Action{arm(2, at-500*time.Millisecond+down100)}},
		{"priority 0 from the arrival", nil, AdvertReceived{Priority: 0, Src: addrHigh, At: t0.Add(at - 500*time.Millisecond)},
			[]Action{arm(2, at-500*time.Millisecond+skew100)}},
		{"arrival after now is now", nil, AdvertReceived{Priority: 200, Src: addrLow, At: t0.Add(at + time.Second)},
			[]Action{arm(2, at+down100)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			if tt.mod != nil {
				tt.mod(&c)
			}
			m := runSteps(t, c, []step{{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup}})
			got := m.Handle(t0.Add(at), tt.ev)
			if diff := cmp.Diff(tt.want, got, ignoreWhy); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if m.State() != Backup {
				t.Errorf("state %v, want BACKUP", m.State())
			}
		})
	}
}

func adv200ms() AdvertReceived {
	return AdvertReceived{Priority: 200, MaxAdvertInt: 200 * time.Millisecond, Src: addrLow}
}

func TestBackupTimeoutTakesOver(t *testing.T) {
	runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{time.Second, adv(50, addrHigh), nil, Backup},
		{down100, TimerFired{Gen: 1}, toMaster(100, 2, down100+time.Second), Master},
		{down100 + time.Second, TimerFired{Gen: 2}, []Action{SendAdvert{Priority: 100}, arm(3, down100+2*time.Second)}, Master},
	})
}

func TestStaleTimerIgnored(t *testing.T) {
	runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{time.Second, adv(200, addrLow), []Action{arm(2, time.Second+down100)}, Backup},
		{down100, TimerFired{Gen: 1}, nil, Backup},
		{time.Second + down100, TimerFired{Gen: 2}, toMaster(100, 3, 2*time.Second+down100), Master},
		{2*time.Second + down100, TimerFired{Gen: 2}, nil, Master},
	})
}

func TestMasterReceive(t *testing.T) {
	// The master has been master since t=0 (owner-style start via state
	// MASTER would wait; use a timeout instead).
	const at = 10 * time.Second
	tests := []struct {
		name  string
		mod   func(*MachineConfig)
		ev    AdvertReceived
		want  []Action
		state State
	}{
		{"higher priority: step down without priority 0", nil, adv(200, addrLow),
			[]Action{DrainVIPs{}, Notify{State: Backup}, arm(3, at+down100)}, Backup},
		{"equal priority, higher address: step down", nil, adv(100, addrHigh),
			[]Action{DrainVIPs{}, Notify{State: Backup}, arm(3, at+down100)}, Backup},
		{"equal priority, lower address: assert", nil, adv(100, addrLow),
			[]Action{SendAdvert{Priority: 100}, SendGratuitous{LowerPrio: true}, arm(3, at+time.Second)}, Master},
		{"lower priority: advert and GARP at once", nil, adv(99, addrHigh),
			[]Action{SendAdvert{Priority: 100}, SendGratuitous{LowerPrio: true}, arm(3, at+time.Second)}, Master},
		{"lower_prio_no_advert: GARP only, the Adver_Timer runs on", func(c *MachineConfig) { c.LowerPrioNoAdvert = true }, adv(99, addrHigh),
			[]Action{SendGratuitous{LowerPrio: true}}, Master},
		{"higher_prio_send_advert: one advert, then step down", func(c *MachineConfig) { c.HigherPrioSendAdvert = true }, adv(200, addrLow),
			[]Action{SendAdvert{Priority: 100}, DrainVIPs{}, Notify{State: Backup}, arm(3, at+down100)}, Backup},
		{"higher_prio_send_advert: also on equal priority and higher address", func(c *MachineConfig) { c.HigherPrioSendAdvert = true }, adv(100, addrHigh),
			[]Action{SendAdvert{Priority: 100}, DrainVIPs{}, Notify{State: Backup}, arm(3, at+down100)}, Backup},
		{"priority 0: advert at once", nil, adv(0, addrHigh),
			[]Action{SendAdvert{Priority: 100}, arm(3, at+time.Second)}, Master},
		{"own advert looped back", nil, adv(100, addrSelf), nil, Master},
		{"v3 steps down with the new master's interval", func(c *MachineConfig) { c.Version = 3 }, adv200ms(),
			[]Action{DrainVIPs{}, Notify{State: Backup}, arm(3, at+600*time.Millisecond+156*200*time.Millisecond/256)}, Backup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			if tt.mod != nil {
				tt.mod(&c)
			}
			m, _ := NewMachine(c)
			m.Handle(t0, Start{})
			m.Handle(t0.Add(down100), TimerFired{Gen: 1})
			if m.State() != Master {
				t.Fatalf("setup: state %v", m.State())
			}
			got := m.Handle(t0.Add(at), tt.ev)
			if diff := cmp.Diff(tt.want, got, ignoreWhy); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if m.State() != tt.state {
				t.Errorf("state %v, want %v", m.State(), tt.state)
			}
		})
	}
}

func TestMasterResetsLearntInterval(t *testing.T) {
	c := baseConfig()
	c.Version = 3
	m, _ := NewMachine(c)
	m.Handle(t0, Start{})
	m.Handle(t0, adv200ms())
	if got := m.MasterAdverInt(); got != 200*time.Millisecond {
		t.Fatalf("MasterAdverInt = %v after advert", got)
	}
	m.Handle(t0.Add(5*time.Second), TimerFired{Gen: 2})
	if m.State() != Master || m.MasterAdverInt() != time.Second {
		t.Fatalf("state %v, MasterAdverInt %v; want MASTER, 1s", m.State(), m.MasterAdverInt())
	}
}

// keepalived preempt_delay: counted from the first lower priority advert
// seen in BACKUP; until then lower priority adverts are accepted.
func TestPreemptDelay(t *testing.T) {
	c := baseConfig()
	c.Priority = 200
	c.PreemptDelay = 30 * time.Second
	// Priority 200: Skew_Time = 56/256 s.
	down := 3*time.Second + 56*time.Second/256
	steps := []step{{0, Start{}, []Action{Notify{State: Backup}, arm(1, down)}, Backup}}
	gen := uint64(1)
	// A lower priority master advertises every second from t=1s; the delay
	// starts at t=1s and ends at t=31s.
	for s := 1; s < 31; s++ {
		gen++
		at := time.Duration(s) * time.Second
		steps = append(steps, step{at, adv(100, addrLow), []Action{arm(gen, at+down)}, Backup})
	}
	steps = append(steps,
		step{31 * time.Second, adv(100, addrLow), nil, Backup},
		step{32 * time.Second, adv(100, addrLow), nil, Backup},
		step{30*time.Second + down, TimerFired{Gen: gen}, toMaster(200, gen+1, 31*time.Second+down), Master},
	)
	runSteps(t, c, steps)
}

func TestPreemptDelayRestartsAfterHigherAdvert(t *testing.T) {
	c := baseConfig()
	c.Priority = 200
	c.PreemptDelay = 10 * time.Second
	down := 3*time.Second + 56*time.Second/256
	runSteps(t, c, []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down)}, Backup},
		{1 * time.Second, adv(100, addrLow), []Action{arm(2, time.Second+down)}, Backup},
		// A higher priority advert stops the running delay ...
		{2 * time.Second, adv(250, addrHigh), []Action{arm(3, 2*time.Second+down)}, Backup},
		// ... so the next lower one starts it afresh (ends at 13s).
		{3 * time.Second, adv(100, addrLow), []Action{arm(4, 3*time.Second+down)}, Backup},
		{12 * time.Second, adv(100, addrLow), []Action{arm(5, 12*time.Second+down)}, Backup},
		{13 * time.Second, adv(100, addrLow), nil, Backup},
	})
}

// keepalived clears preempt_time on entering BACKUP, so a delay that ran
// out before a FAULT counts again from the next lower priority advert.
func TestPreemptDelayRestartsAfterFault(t *testing.T) {
	c := baseConfig()
	c.Priority = 200
	c.PreemptDelay = 10 * time.Second
	down := 3*time.Second + 56*time.Second/256
	runSteps(t, c, []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down)}, Backup},
		{1 * time.Second, adv(100, addrLow), []Action{arm(2, time.Second+down)}, Backup},
		{2 * time.Second, FaultChanged{Reason: "eth0", On: true}, []Action{Notify{State: Fault}, CancelTimer{}}, Fault},
		{20 * time.Second, FaultChanged{Reason: "eth0"}, []Action{Notify{State: Backup}, arm(4, 20*time.Second+down)}, Backup},
		{21 * time.Second, adv(100, addrLow), []Action{arm(5, 21*time.Second+down)}, Backup},
		{30 * time.Second, adv(100, addrLow), []Action{arm(6, 30*time.Second+down)}, Backup},
		{31 * time.Second, adv(100, addrLow), nil, Backup},
	})
}

func TestTracking(t *testing.T) {
	tests := []struct {
		name   string
		prio   uint8
		events []TrackerChanged
		want   uint8
	}{
		{"weights add", 100, []TrackerChanged{{Name: "a", Weight: 20}, {Name: "b", Weight: -5}}, 115},
		{"event replaces the tracker's weight", 100, []TrackerChanged{{Name: "a", Weight: 20}, {Name: "a", Weight: 5}}, 105},
		{"clamped to 254", 200, []TrackerChanged{{Name: "a", Weight: 100}}, 254},
		{"clamped to 1", 10, []TrackerChanged{{Name: "a", Weight: -100}}, 1},
		{"owner unaffected", 255, []TrackerChanged{{Name: "a", Weight: -100}}, 255},
		{"fault drops the weight", 100, []TrackerChanged{{Name: "a", Weight: 20}, {Name: "a", Fault: true}}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			c.Priority = tt.prio
			m, _ := NewMachine(c)
			for _, ev := range tt.events {
				m.Handle(t0, ev)
			}
			if got := m.Priority(); got != tt.want {
				t.Errorf("Priority() = %d, want %d", got, tt.want)
			}
		})
	}
}

// keepalived vrrp_set_effective_priority moves a running down timer by the
// change in Master_Down_Interval, i.e. in Skew_Time.
func TestPriorityChangeMovesDownTimer(t *testing.T) {
	runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{time.Second, TrackerChanged{Name: "chk", Weight: 100}, []Action{arm(2, down100-100*time.Second/256)}, Backup},
		{2 * time.Second, TrackerChanged{Name: "chk", Weight: 100}, nil, Backup},
		{2 * time.Second, TrackerChanged{Name: "chk"}, []Action{arm(3, down100)}, Backup},
		// Priority 0 set the timer to Skew_Time; raising the priority a lot
		// cannot move it into the past.
		{3 * time.Second, adv(0, addrLow), []Action{arm(4, 3*time.Second+skew100)}, Backup},
		{3*time.Second + skew100 - time.Millisecond, TrackerChanged{Name: "chk", Weight: 150},
			[]Action{arm(5, 3*time.Second+skew100-time.Millisecond)}, Backup},
	})
}

func TestFault(t *testing.T) {
	masterAt := down100
	steps := []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{masterAt, TimerFired{Gen: 1}, toMaster(100, 2, masterAt+time.Second), Master},
		// keepalived vrrp_state_leave_master(FAULT): priority 0, VIPs go.
		{5 * time.Second, FaultChanged{Reason: "eth0", On: true},
			[]Action{SendAdvert{Priority: 0}, RemoveVIPs{}, Notify{State: Fault}, CancelTimer{}}, Fault},
		{6 * time.Second, TrackerChanged{Name: "chk", Fault: true}, nil, Fault},
		{7 * time.Second, adv(50, addrLow), nil, Fault},
		{7 * time.Second, TimerFired{Gen: 2}, nil, Fault},
		{8 * time.Second, FaultChanged{Reason: "eth0"}, nil, Fault},
		// Leaving FAULT always goes to BACKUP with a full down interval.
		{9 * time.Second, TrackerChanged{Name: "chk"},
			[]Action{Notify{State: Backup}, arm(4, 9*time.Second+down100)}, Backup},
		{10 * time.Second, FaultChanged{Reason: "other"}, nil, Backup},
		{11 * time.Second, FaultChanged{Reason: "eth0", On: true}, []Action{Notify{State: Fault}, CancelTimer{}}, Fault},
		{12 * time.Second, FaultChanged{Reason: "eth0", On: true}, nil, Fault},
	}
	runSteps(t, baseConfig(), steps)
}

// Even the address owner leaves FAULT for BACKUP and waits a full
// Master_Down_Interval (keepalived try_up_instance).
func TestOwnerLeavesFaultToBackup(t *testing.T) {
	c := baseConfig()
	c.Priority = 255
	runSteps(t, c, []step{
		{0, FaultChanged{Reason: "eth0", On: true}, nil, Init},
		{0, Start{}, []Action{Notify{State: Fault}}, Fault},
		{time.Second, FaultChanged{Reason: "eth0"},
			[]Action{Notify{State: Backup}, arm(1, 4*time.Second+time.Second/256)}, Backup},
		{4*time.Second + time.Second/256, TimerFired{Gen: 1}, toMaster(255, 2, 5*time.Second+time.Second/256), Master},
	})
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name string
		pre  []step
		want []Action
	}{
		{"from master: priority 0", []step{
			{0, Start{}, nil, 0},
			{down100, TimerFired{Gen: 1}, nil, 0},
		}, []Action{SendAdvert{Priority: 0}, RemoveVIPs{}, Notify{State: Stop}, CancelTimer{}}},
		{"from backup", []step{{0, Start{}, nil, 0}}, []Action{Notify{State: Stop}, CancelTimer{}}},
		{"from init", nil, []Action{Notify{State: Stop}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := NewMachine(baseConfig())
			for _, s := range tt.pre {
				m.Handle(t0.Add(s.at), s.ev)
			}
			if diff := cmp.Diff(tt.want, m.Handle(t0.Add(10*time.Second), Shutdown{}), ignoreWhy); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			for _, ev := range []Event{Start{}, adv(200, addrLow), TimerFired{Gen: 2}, FaultChanged{Reason: "x", On: true}, Shutdown{}} {
				if got := m.Handle(t0.Add(11*time.Second), ev); got != nil || m.State() != Stop {
					t.Errorf("after Shutdown, %T: %v in %v", ev, got, m.State())
				}
			}
		})
	}
}

func TestSyncMemberDefersTakeover(t *testing.T) {
	c := baseConfig()
	c.SyncGroup = true
	m := runSteps(t, c, []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		// The timer only records the wish and waits another interval.
		{down100, TimerFired{Gen: 1}, []Action{arm(2, 2*down100)}, Backup},
	})
	if m.Want() != Master {
		t.Fatalf("Want() = %v, want MASTER", m.Want())
	}
	// An accepted advert withdraws the wish (keepalived vrrp_state_backup).
	m.Handle(t0.Add(5*time.Second), adv(200, addrLow))
	if got := m.Status(); got != (MemberStatus{State: Backup, Want: Backup}) {
		t.Fatalf("Status() = %+v", got)
	}
}

func TestGroupForce(t *testing.T) {
	c := baseConfig()
	c.SyncGroup = true
	m := runSteps(t, c, []step{
		{0, GroupForce{To: Fault}, nil, Init},
		// A member of a faulty group starts in FAULT with no fault of its own.
		{0, Start{}, []Action{Notify{State: Fault}}, Fault},
		{time.Second, GroupForce{To: Backup}, []Action{Notify{State: Backup}, arm(1, time.Second+down100)}, Backup},
		{2 * time.Second, GroupForce{To: Backup}, nil, Backup},
		{3 * time.Second, GroupForce{To: Master}, toMaster(100, 2, 4*time.Second), Master},
		{4 * time.Second, GroupForce{To: Master}, nil, Master},
		{5 * time.Second, GroupForce{To: Backup}, []Action{DrainVIPs{}, Notify{State: Backup}, arm(3, 5*time.Second+down100)}, Backup},
		{6 * time.Second, GroupForce{To: Fault}, []Action{Notify{State: Fault}, CancelTimer{}}, Fault},
		// Its own fault coming and going does not end a group FAULT.
		{7 * time.Second, FaultChanged{Reason: "eth0", On: true}, nil, Fault},
		{8 * time.Second, FaultChanged{Reason: "eth0"}, nil, Fault},
		{9 * time.Second, GroupForce{To: Master}, nil, Fault},
		{10 * time.Second, FaultChanged{Reason: "eth0", On: true}, nil, Fault},
		// Nor does the group's release while it has one.
		{11 * time.Second, GroupForce{To: Backup}, nil, Fault},
		{12 * time.Second, FaultChanged{Reason: "eth0"}, []Action{Notify{State: Backup}, arm(5, 12*time.Second+down100)}, Backup},
	})
	if got := m.Status(); got != (MemberStatus{State: Backup, Want: Backup}) {
		t.Fatalf("Status() = %+v", got)
	}
}

// Before Start a member wants nothing, so the group cannot count it as
// wanting MASTER; a fault of its own is reported at once.
func TestWantBeforeStart(t *testing.T) {
	c := baseConfig()
	c.Priority = 255
	c.SyncGroup = true
	m, _ := NewMachine(c)
	init := MemberStatus{State: Init, Want: Init}
	for _, tt := range []struct {
		ev   Event
		want MemberStatus
	}{
		{TrackerChanged{Name: "chk", Weight: 10}, init},
		{FaultChanged{Reason: "eth0", On: true}, MemberStatus{State: Init, Want: Fault}},
		{FaultChanged{Reason: "eth0"}, init},
	} {
		m.Handle(t0, tt.ev)
		if got := m.Status(); got != tt.want {
			t.Errorf("after %T%+v: Status() = %+v, want %+v", tt.ev, tt.ev, got, tt.want)
		}
	}
}

func TestGroupForceFaultFromMaster(t *testing.T) {
	c := baseConfig()
	c.SyncGroup = true
	runSteps(t, c, []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{time.Second, GroupForce{To: Master}, toMaster(100, 2, 2*time.Second), Master},
		// keepalived vrrp_sync_fault -> vrrp_state_leave_master(FAULT).
		{2 * time.Second, GroupForce{To: Fault},
			[]Action{SendAdvert{Priority: 0}, RemoveVIPs{}, Notify{State: Fault}, CancelTimer{}}, Fault},
	})
}

func TestSyncOwnerStart(t *testing.T) {
	c := baseConfig()
	c.Priority = 255
	c.SyncGroup = true
	m := runSteps(t, c, []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, 3*time.Second+time.Second/256)}, Backup},
	})
	if m.Want() != Master {
		t.Fatalf("Want() = %v, want MASTER", m.Want())
	}
}

// reconf is baseConfig with mod applied, as a Reconfigure event.
func reconf(mod func(*MachineConfig)) Reconfigure {
	c := baseConfig()
	mod(&c)
	return Reconfigure{Config: c}
}

// A reloaded configuration changes no state. A master's next advert
// carries the new priority and comes one new interval after the last; a
// master whose new priority loses sends no priority 0 and stays master
// until it hears the winner (RFC 5798 §6.4.3), and then steps down
// without one either.
func TestReconfigureMaster(t *testing.T) {
	toM := append([]Action{}, toMaster(100, 2, down100+time.Second)...)
	runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{down100, TimerFired{Gen: 1}, toM, Master},
		{down100 + 100*time.Millisecond, reconf(func(c *MachineConfig) { c.Priority = 150 }), nil, Master},
		{down100 + time.Second, TimerFired{Gen: 2}, []Action{SendAdvert{Priority: 150}, arm(3, down100+2*time.Second)}, Master},
		// advert_int 1 -> 3: the armed advert moves 2 s later.
		{down100 + 1500*time.Millisecond, reconf(func(c *MachineConfig) { c.Priority = 150; c.AdvertInt = 3 * time.Second }),
			[]Action{arm(4, down100+4*time.Second)}, Master},
		{down100 + 4*time.Second, TimerFired{Gen: 4}, []Action{SendAdvert{Priority: 150}, arm(5, down100+7*time.Second)}, Master},
		// Now losing: still master, adverts at the lower priority.
		{down100 + 5*time.Second, reconf(func(c *MachineConfig) { c.Priority = 50; c.AdvertInt = 3 * time.Second }), nil, Master},
		{down100 + 7*time.Second, TimerFired{Gen: 5}, []Action{SendAdvert{Priority: 50}, arm(6, down100+10*time.Second)}, Master},
		// The peer preempts: we step down, without a priority 0 advert.
		{down100 + 8*time.Second, adv(100, addrLow),
			[]Action{DrainVIPs{}, Notify{State: Backup}, arm(7, down100+8*time.Second+3*3*time.Second+206*time.Second/256)}, Backup},
	})
}

// A backup whose new priority beats the master's preempts as RFC 5798
// §6.4.2 says: it discards the lower adverts and takes over when its
// Master_Down_Timer (moved by the change in Skew_Time) runs out. With
// nopreempt it stays backup.
func TestReconfigureBackupPreempts(t *testing.T) {
	m := runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{time.Second, adv(120, addrHigh), []Action{arm(2, time.Second+down100)}, Backup},
		{1500 * time.Millisecond, reconf(func(c *MachineConfig) { c.Priority = 200 }),
			[]Action{arm(3, time.Second+down100-100*time.Second/256)}, Backup},
		{2 * time.Second, adv(120, addrHigh), nil, Backup},
		{time.Second + down100 - 100*time.Second/256, TimerFired{Gen: 3},
			toMaster(200, 4, time.Second+down100-100*time.Second/256+time.Second), Master},
	})
	if m.Priority() != 200 {
		t.Errorf("priority %d, want 200", m.Priority())
	}

	runSteps(t, baseConfig(), []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{1500 * time.Millisecond, reconf(func(c *MachineConfig) { c.Priority = 200; c.Preempt = false }),
			[]Action{arm(2, down100-100*time.Second/256)}, Backup},
		// Without preemption a lower advert is accepted and resets the timer.
		{2 * time.Second, adv(120, addrHigh), []Action{arm(3, 2*time.Second+3*time.Second+56*time.Second/256)}, Backup},
	})
}

// What identifies the instance is not taken from a Reconfigure, and a
// config NewMachine would refuse is ignored.
func TestReconfigureKeepsIdentity(t *testing.T) {
	m, _ := NewMachine(baseConfig())
	m.Handle(t0, Start{})
	m.Handle(t0, reconf(func(c *MachineConfig) { c.VRID = 9; c.Version = 3; c.Priority = 90 }))
	if c := m.Config(); c.VRID != 51 || c.Version != 2 || c.Priority != 90 {
		t.Errorf("config after reconfigure: %+v", c)
	}
	m.Handle(t0, reconf(func(c *MachineConfig) { c.AdvertInt = time.Millisecond }))
	if c := m.Config(); c.AdvertInt != time.Second || c.Priority != 90 {
		t.Errorf("an invalid reconfigure was applied: %+v", c)
	}
}

// ignoreWhy leaves the reasons of transitions out of comparisons;
// reason_test.go checks them.
var ignoreWhy = cmp.Options{
	cmpopts.IgnoreFields(Notify{}, "From", "Reason"),
	cmpopts.IgnoreFields(GroupForce{}, "Reason"),
	cmpopts.IgnoreFields(Forced{}, "Cause"),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}
