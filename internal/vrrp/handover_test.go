package vrrp

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/lab"
)

const vip1 = "10.0.0.101"

// drainOf reports a router's hold on VI_1's VIP: held, and silenced.
func drainOf(r *router) (held, quiet bool) {
	return r.host.holds(vip1 + "/24"), r.host.quiet(vip1)
}

// TestHandoverMakeBeforeBreak: `tandem handover` on the master moves the
// VIP to the backup with no moment where nobody claims it, keeps it on
// the old master (silenced) for the drain, does not preempt back, and
// a handover the other way moves it back.
func TestHandoverMakeBeforeBreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := startPair(t)
		done, err := p.a.engine.Handover(nil, netip.Addr{})
		if err != nil || !slices.Equal(done, []string{"VI_1"}) {
			t.Fatalf("handover: %v, %v", done, err)
		}
		// The priority 0 advert is out; until b announces itself, a
		// still claims the VIP.
		if held, quiet := drainOf(p.a); p.a.state("VI_1") != Backup || !held || quiet {
			t.Fatalf("a right after the handover: %v, holds %v, silenced %v; want BACKUP, holding, answering", p.a.state("VI_1"), held, quiet)
		}
		p.lan.waitFor(t, "b master", time.Second, func() bool { return p.b.state("VI_1") == Master })
		p.lan.settle()
		if held, quiet := drainOf(p.a); !held || !quiet {
			t.Fatalf("a once b is master: holds %v, silenced %v; want draining", held, quiet)
		}
		st := p.a.engine.Status()[0]
		if st.Reason.Kind != ReasonHandover || st.DrainingUntil.IsZero() {
			t.Errorf("a's status: reason %v, draining until %v", st.Reason, st.DrainingUntil)
		}
		if p.a.host.deletions(vip1+"/24") != p.deletions0 {
			t.Error("a removed the VIP before its drain ended")
		}
		// The drain: garp_master_delay (5 s) + 1 s.
		p.lan.advance(5900 * time.Millisecond)
		if held, _ := drainOf(p.a); !held {
			t.Error("a dropped the VIP before its drain time")
		}
		p.lan.advance(200 * time.Millisecond)
		if held, quiet := drainOf(p.a); held || quiet {
			t.Errorf("a after the drain: holds %v, silenced %v", held, quiet)
		}
		// a (200) yielded to b (100): it does not preempt back.
		p.lan.advance(5 * time.Second)
		if p.b.state("VI_1") != Master || p.a.state("VI_1") != Backup {
			t.Fatalf("after the handover: a %v, b %v; want a BACKUP, b MASTER", p.a.state("VI_1"), p.b.state("VI_1"))
		}
		if _, err := p.b.engine.Handover([]string{"VI_1"}, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		p.lan.waitFor(t, "a master again", time.Second, func() bool { return p.a.state("VI_1") == Master })
		p.lan.settle()
		if held, quiet := drainOf(p.b); !held || !quiet {
			t.Errorf("b once a is master: holds %v, silenced %v; want draining", held, quiet)
		}
		if held, quiet := drainOf(p.a); !held || quiet {
			t.Errorf("a master again: holds %v, silenced %v", held, quiet)
		}
	})
}

// TestHandoverDrainZero: handover_drain 0 removes the VIP as soon as the
// new master is heard, as keepalived does: the e2e test shows the
// failures that costs.
func TestHandoverDrainZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, "handover_drain 0"))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, "handover_drain 0"))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		if _, err := a.engine.Handover(nil, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		lan.waitFor(t, "b master", time.Second, func() bool { return b.state("VI_1") == Master })
		lan.settle()
		if held, quiet := drainOf(a); held || quiet {
			t.Errorf("a with handover_drain 0: holds %v, silenced %v; want neither", held, quiet)
		}
	})
}

// TestHandoverNobodyTakesOver: with no backup, the master takes its
// mastership back after Master_Down_Interval, and the VIP never left.
func TestHandoverNobodyTakesOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if _, err := a.engine.Handover(nil, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		lan.waitFor(t, "a master again", time.Second, func() bool { return a.state("VI_1") == Master })
		if held, quiet := drainOf(a); !held || quiet || a.host.deletions(vip1+"/24") != 1 {
			// 1: the start's cleanup of a crashed run's leftovers.
			t.Errorf("a: holds %v, silenced %v, deletions %d", held, quiet, a.host.deletions(vip1+"/24"))
		}
	})
}

// TestDrainEndsOnFault: a fault during the drain removes the VIP at once.
func TestDrainEndsOnFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := drainingPair(t)
		if held, _ := drainOf(p.a); !held {
			t.Fatal("a is not draining")
		}
		p.a.engine.SetFault("VI_1", "eth0 down", true)
		p.lan.settle()
		if held, quiet := drainOf(p.a); held || quiet || p.a.state("VI_1") != Fault {
			t.Errorf("a after a fault: %v, holds %v, silenced %v", p.a.state("VI_1"), held, quiet)
		}
	})
}

// TestHandoverRefused: what cannot be handed over is refused, saying why,
// and nothing moves.
func TestHandoverRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := startPair(t)
		for _, c := range []struct {
			r     *router
			names []string
			to    string
			want  string
		}{
			{p.b, nil, "", "no instance outside a sync group is MASTER"},
			{p.b, []string{"VI_1"}, "", "VI_1 is BACKUP: only a master hands over"},
			{p.a, []string{"VI_9"}, "", "no vrrp_instance VI_9"},
			{p.a, nil, "10.0.0.2", "needs 10.0.0.2 in its unicast_peer list"},
		} {
			var to netip.Addr
			if c.to != "" {
				to = netip.MustParseAddr(c.to)
			}
			if _, err := c.r.engine.Handover(c.names, to); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("handover %v to %q: %v, want %q", c.names, c.to, err, c.want)
			}
		}
		p.lan.advance(time.Second)
		if p.a.state("VI_1") != Master || p.transitions(p.a) != p.ta0 {
			t.Error("a refused handover moved a")
		}
	})
}

// TestHandoverTo: with unicast peers, --to sends the priority 0 advert to
// the named peer alone, which takes over ahead of a higher priority
// backup; that backup then preempts it, as VRRP says.
func TestHandoverTo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		peers := func(self string) string {
			var b strings.Builder
			b.WriteString("unicast_peer {\n")
			for _, p := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
				if p != self {
					b.WriteString(p + "\n")
				}
			}
			return b.String() + "}"
		}
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, peers("10.0.0.1")))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 150, peers("10.0.0.2")))
		c := startRouter(t, lan, "10.0.0.3", instanceConf("VI_1", 1, 100, peers("10.0.0.3")))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if _, err := a.engine.Handover(nil, netip.MustParseAddr("10.0.0.3")); err != nil {
			t.Fatal(err)
		}
		lan.waitFor(t, "c master", time.Second, func() bool { return c.state("VI_1") == Master })
		if b.state("VI_1") != Backup {
			t.Errorf("b %v when c took over; want BACKUP", b.state("VI_1"))
		}
		if st := a.engine.Status()[0]; st.Reason.String() != "handover to 10.0.0.3" {
			t.Errorf("a's reason %q", st.Reason)
		}
		lan.waitFor(t, "b preempts c", 2*time.Second, func() bool { return b.state("VI_1") == Master && c.state("VI_1") == Backup })
	})
}

// TestHandoverMachine: the machine's side of a handover, step by step.
func TestHandoverMachine(t *testing.T) {
	const h = 10 * time.Second // the handover
	peer := netip.MustParseAddr("192.0.2.9")
	master := []step{
		{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
		{down100, TimerFired{Gen: 1}, toMaster(100, 2, down100+time.Second), Master},
	}
	t.Run("hand over, drain, do not preempt back", func(t *testing.T) {
		runSteps(t, baseConfig(), append(master,
			step{h, Handover{To: peer}, []Action{SendAdvert{Priority: 0, To: peer}, Notify{State: Backup}, arm(3, h+down100)}, Backup},
			// Still claimed: no drain before the new master is heard.
			step{h + 100*time.Millisecond, adv(0, addrHigh), []Action{arm(4, h+100*time.Millisecond+skew100)}, Backup},
			step{h + 200*time.Millisecond, adv(50, peer), []Action{DrainVIPs{}, arm(5, h+200*time.Millisecond+down100)}, Backup},
			// yielded: a lower priority master is accepted, not preempted.
			step{h + time.Second, adv(50, peer), []Action{arm(6, h+time.Second+down100)}, Backup},
			// The new master goes silent: the old one takes over, and
			// preempts again from then on.
			step{h + time.Second + down100, TimerFired{Gen: 6}, toMaster(100, 7, h+2*time.Second+down100), Master},
		))
	})
	t.Run("handover on a backup does nothing", func(t *testing.T) {
		runSteps(t, baseConfig(), []step{
			{0, Start{}, []Action{Notify{State: Backup}, arm(1, down100)}, Backup},
			{time.Second, Handover{}, nil, Backup},
		})
	})
	t.Run("fault before the new master is heard drops the VIPs", func(t *testing.T) {
		runSteps(t, baseConfig(), append(master,
			step{h, Handover{}, []Action{SendAdvert{Priority: 0}, Notify{State: Backup}, arm(3, h+down100)}, Backup},
			step{h + time.Millisecond, FaultChanged{Reason: "eth0", On: true}, []Action{RemoveVIPs{}, Notify{State: Fault}, CancelTimer{}}, Fault},
		))
	})
	t.Run("stop before the new master is heard drops the VIPs", func(t *testing.T) {
		runSteps(t, baseConfig(), append(master,
			step{h, Handover{}, []Action{SendAdvert{Priority: 0}, Notify{State: Backup}, arm(3, h+down100)}, Backup},
			step{h + time.Millisecond, Shutdown{}, []Action{RemoveVIPs{}, Notify{State: Stop}, CancelTimer{}}, Stop},
		))
	})
	t.Run("nobody takes over: master again", func(t *testing.T) {
		runSteps(t, baseConfig(), append(master,
			step{h, Handover{}, []Action{SendAdvert{Priority: 0}, Notify{State: Backup}, arm(3, h+down100)}, Backup},
			// The VIPs were never let go: no AddVIPs.
			step{h + down100, TimerFired{Gen: 3}, []Action{SendAdvert{Priority: 100}, SendGratuitous{}, Notify{State: Master}, arm(4, h+down100+time.Second)}, Master},
		))
	})
}

// TestDrainEndsOnStop: stopping the daemon, or a reload removing the
// instance, during a drain removes the VIP and lifts the silence.
func TestDrainEndsOnStop(t *testing.T) {
	for _, reload := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "reload removes it"}[reload], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := drainingPair(t)
				if held, quiet := drainOf(p.a); !held || !quiet {
					t.Fatal("a is not draining")
				}
				if reload {
					p.a.engine.Reload(lab.ParseConfig(t, instanceConf("VI_2", 2, 100, "")))
				} else {
					p.a.stop()
				}
				if held, quiet := drainOf(p.a); held || quiet {
					t.Errorf("a after the %s: holds %v, silenced %v", map[bool]string{false: "stop", true: "reload"}[reload], held, quiet)
				}
			})
		})
	}
}

// drainingPair is a started pair whose master a has handed over to b:
// b is MASTER and a drains.
func drainingPair(t *testing.T) *pair {
	t.Helper()
	p := startPair(t)
	if _, err := p.a.engine.Handover(nil, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	p.lan.waitFor(t, "b master", time.Second, func() bool { return p.b.state("VI_1") == Master })
	p.lan.settle()
	return p
}

// TestDrainReclaimRuleOnce: a master that claims its addresses again
// while draining them (the router that took over went silent) does not
// add its virtual rules a second time: a rule without a priority would be
// in the kernel twice, and the removal at the end of the next drain would
// leave one copy behind (bench/chaos saw it).
func TestDrainReclaimRuleOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		rule := "virtual_rules {\n        from 10.0.0.101/32 table 101\n    }"
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, rule))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 200, ""))
		lan.waitFor(t, "b master, a draining", 2*time.Second, func() bool { return b.state("VI_1") == Master && a.state("VI_1") == Backup })
		lan.settle()
		if held, _ := drainOf(a); !held {
			t.Fatal("a is not draining")
		}
		var mu sync.Mutex
		dead := false
		lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return dead && src == b.host.addr }
		mu.Lock()
		dead = true
		mu.Unlock()
		lan.waitFor(t, "a master again", time.Second, func() bool { return a.state("VI_1") == Master })
		if n := a.host.ruleCopies(); n != 1 {
			t.Errorf("a master again holds %d copies of its rule, want 1", n)
		}
		a.stop()
		if n := a.host.ruleCopies(); n != 0 {
			t.Errorf("a stopped holds %d copies of its rule, want 0", n)
		}
	})
}
