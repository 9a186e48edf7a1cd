package vrrp

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPeerDown is fast_failover_bfd in the machine: a BACKUP whose master
// (the sender of the last advert it accepted) loses its BFD session takes
// over at once, exactly as when Master_Down_Timer expires; anywhere else
// the session going down changes nothing.
func TestPeerDown(t *testing.T) {
	const at = 1500 * time.Millisecond
	down := PeerDown{Name: "peer", Peer: addrHigh}
	startBackup := step{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup}
	tests := []struct {
		name  string
		mod   func(*MachineConfig)
		steps []step
	}{
		{"backup takes over from its master at once", nil, []step{
			startBackup,
			{time.Second, adv(200, addrHigh), []Action{arm(2, time.Second+down100)}, Backup},
			{at, down, toMaster(100, 3, at+time.Second), Master},
		}},
		{"backup whose master is another peer ignores it", nil, []step{
			startBackup,
			{time.Second, adv(200, addrLow), []Action{arm(2, time.Second+down100)}, Backup},
			{at, down, nil, Backup},
			// Master_Down_Timer still runs as armed.
			{time.Second + down100, TimerFired{Gen: 2}, toMaster(100, 3, time.Second+down100+time.Second), Master},
		}},
		{"backup that has heard no master ignores it", nil, []step{
			startBackup,
			{at, down, nil, Backup},
		}},
		{"backup that discarded the peer's adverts (preempting) ignores it", nil, []step{
			startBackup,
			{time.Second, adv(50, addrHigh), nil, Backup},
			{at, down, nil, Backup},
		}},
		{"master ignores it", nil, []step{
			startBackup,
			{down100, TimerFired{Gen: 1}, toMaster(100, 2, down100+time.Second), Master},
			{down100 + at, down, nil, Master},
		}},
		{"a sync group member only wants master, as at Master_Down_Timer", func(c *MachineConfig) { c.SyncGroup = true }, []step{
			startBackup,
			{time.Second, adv(200, addrHigh), []Action{arm(2, time.Second+down100)}, Backup},
			{at, down, []Action{arm(3, at+down100)}, Backup},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			if tt.mod != nil {
				tt.mod(&c)
			}
			m := runSteps(t, c, tt.steps)
			if tt.mod != nil && m.Want() != Master {
				t.Errorf("want %v, want MASTER", m.Want())
			}
		})
	}
}

// TestPeerDownReason: the takeover says why.
func TestPeerDownReason(t *testing.T) {
	m, err := NewMachine(baseConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Handle(t0, Start{})
	m.Handle(t0.Add(time.Second), adv(200, addrHigh))
	var got []Reason
	for _, a := range m.Handle(t0.Add(2*time.Second), PeerDown{Name: "peer", Peer: addrHigh}) {
		if n, ok := a.(Notify); ok {
			got = append(got, n.Reason)
		}
	}
	want := []Reason{{Kind: ReasonBFDDown, Peer: addrHigh, Name: "peer"}}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b Reason) bool { return a.String() == b.String() && a.Kind == b.Kind })); d != "" {
		t.Errorf("reasons (-want +got):\n%s", d)
	}
	if s := want[0].String(); s != "bfd peer down: master 192.0.2.9 lost" {
		t.Errorf("reason reads %q", s)
	}
}

// TestSimBFDTakeover: routers 100, 150 and 200 on one LAN. When 200
// crashes, 150 learns it from its BFD session (30 ms later, say) and is
// master at once, not after its Master_Down_Interval; 100, whose session
// went down too, stays backup and hears 150. A BFD session that goes down
// while its neighbor is not the master (a link flap between two backups)
// and one seen by the master change nothing.
func TestSimBFDTakeover(t *testing.T) {
	s := newSim(t, 7, simConfigs(100, 150, 200)...)
	for i := range s.nodes {
		s.start(i)
	}
	s.runUntil(settle)
	s.expectMasters(2)
	peer := func(i int) netip.Addr { return s.nodes[i].cfg.PrimaryAddr }

	// Backups' sessions to each other, and the master's to a backup, go
	// down: nothing moves.
	flap := 10 * time.Second
	s.at(flap, func() {
		s.handle(1, PeerDown{Name: "to0", Peer: peer(0)})
		s.handle(0, PeerDown{Name: "to1", Peer: peer(1)})
		s.handle(2, PeerDown{Name: "to1", Peer: peer(1)})
	})
	s.runUntil(flap + time.Second)
	s.expectMasters(2)
	if n := s.transitions(flap); n != 0 {
		s.fail("%d transitions after sessions to non-masters went down", n)
	}

	crash := 20 * time.Second
	detect := 30 * time.Millisecond
	s.at(crash, func() { s.crash(2) })
	s.at(crash+detect, func() {
		s.handle(1, PeerDown{Name: "to2", Peer: peer(2)})
		s.handle(0, PeerDown{Name: "to2", Peer: peer(2)})
	})
	s.runUntil(crash + detect)
	// Both backups act at the BFD event; 100 yields to 150's advert.
	s.runUntil(crash + detect + 3*time.Millisecond)
	s.expectMasters(1)
	// Far inside 150's Master_Down_Interval (3.4 s).
	if got := s.elapsed() - crash; got > 100*time.Millisecond {
		s.fail("takeover took %v", got)
	}
	s.runUntil(crash + 10*time.Second)
	s.expectMasters(1)
}

// TestEnginePeerDown: the engine hands a BFD session's going down to the
// instances whose fast_failover_bfd names it. The backup of a crashed
// master takes over at the event, long before its Master_Down_Interval;
// a session of another name, or a master told, changes nothing.
func TestEnginePeerDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		var mu sync.Mutex
		dead := map[netip.Addr]bool{}
		lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return dead[src] }
		bfd := "bfd_instance peer {\n neighbor_ip 10.0.0.1\n}\nbfd_instance other {\n neighbor_ip 10.0.0.3\n}\n"
		// advert_int 1: Master_Down_Interval is over 3 s.
		slow := func(prio int) string {
			return bfd + strings.Replace(instanceConf("VI_1", 1, prio, "fast_failover_bfd peer"), "advert_int 0.05", "advert_int 1", 1)
		}
		a := startRouter(t, lan, "10.0.0.1", slow(200))
		b := startRouter(t, lan, "10.0.0.2", slow(100))
		lan.waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })

		aAddr := netip.MustParseAddr("10.0.0.1")
		a.engine.PeerDown("peer", netip.MustParseAddr("10.0.0.2")) // a master: ignored
		b.engine.PeerDown("other", aAddr)                          // not b's fast_failover_bfd
		lan.advance(100 * time.Millisecond)
		if a.state("VI_1") != Master || b.state("VI_1") != Backup {
			t.Fatalf("states a %v b %v after sessions that do not count went down", a.state("VI_1"), b.state("VI_1"))
		}

		mu.Lock()
		dead[aAddr] = true
		mu.Unlock()
		lan.advance(10 * time.Millisecond)
		crashed := lan.clock.Now()
		b.engine.PeerDown("peer", aAddr)
		lan.waitFor(t, "b master", time.Second, func() bool { return b.state("VI_1") == Master })
		st := b.engine.Status()[0]
		if took := st.Since.Sub(crashed); took > 50*time.Millisecond {
			t.Errorf("b took over %v after the BFD event, want at once", took)
		}
		if st.Reason.Kind != ReasonBFDDown || st.Reason.String() != "bfd peer down: master 10.0.0.1 lost" {
			t.Errorf("reason %v (%s)", st.Reason.Kind, st.Reason)
		}
	})
}
