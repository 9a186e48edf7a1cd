package vrrp

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/lab"
	"tandem/internal/netio"
)

// twoVIPs is a VRRPv3 instance on eth0 with two addresses, one
// gratuitous burst of three per address and no second burst.
func twoVIPs(prio int, extra string) string {
	return `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority ` + strconv.Itoa(prio) + `
    version 3
    advert_int 0.05
    garp_master_repeat 3
    garp_master_delay 0
    garp_lower_prio_repeat 1
    garp_lower_prio_delay 0
    ` + extra + `
    virtual_ipaddress {
        10.0.0.101/24
        10.0.0.102/24
    }
}
`
}

func (h *fakeHost) announcedAt() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.arpAt)
}

// vrrp_garp_interval spaces the gratuitous ARPs sent on one interface:
// the burst of 2 addresses x 3 goes out one every 100 ms, not at once.
func TestGarpInterval(t *testing.T) {
	for _, tc := range []struct {
		name   string
		global string
		gap    time.Duration
	}{
		{"unpaced", "", 0},
		{"vrrp_garp_interval 0.1", "global_defs {\n    vrrp_garp_interval 0.1\n}\n", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				a := startRouter(t, lan, "10.0.0.1", tc.global+twoVIPs(200, ""))
				lan.waitFor(t, "six announcements", 2*time.Second, func() bool { return len(a.host.announcedAt()) >= 6 })
				at := a.host.announcedAt()
				if len(at) != 6 {
					t.Fatalf("%d announcements, want 6", len(at))
				}
				for i := 1; i < len(at); i++ {
					if gap := at[i].Sub(at[i-1]); gap != tc.gap {
						t.Errorf("announcement %d came %v after the previous, want %v", i, gap, tc.gap)
					}
				}
			})
		})
	}
}

// vrrp_startup_delay holds the instances in INIT: a lone router that
// would be master after Master_Down_Interval (about 0.2 s) stays INIT
// for the delay and only then starts.
func TestStartupDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", "global_defs {\n    vrrp_startup_delay 2\n}\n"+instanceConf("VI_1", 1, 100, ""))
		lan.advance(1900 * time.Millisecond)
		if st := a.state("VI_1"); st != Init {
			t.Fatalf("state %v 1.9 s into a 2 s startup delay, want INIT", st)
		}
		start := lan.clock.Now()
		lan.waitFor(t, "master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		if d := lan.clock.Now().Sub(start); d < 100*time.Millisecond+MasterDownInterval(3, 50*time.Millisecond, 100) {
			t.Errorf("master %v after the delay's end, before Master_Down_Interval", d)
		}
	})
}

// skip_check_adv_addr compares a received address list only when the
// sender changes: a master whose list differs from ours is counted once,
// not for every advert.
func TestSkipCheckAdvAddr(t *testing.T) {
	for _, tc := range []struct {
		extra string
		many  bool
	}{{"", true}, {"skip_check_adv_addr", false}} {
		t.Run("with "+tc.extra, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
				// The backup's VIP is another address: every advert's
				// list differs from its own.
				b := startRouter(t, lan, "10.0.0.2", strings.Replace(instanceConf("VI_1", 1, 100, tc.extra), "10.0.0.101/24", "10.0.0.109/24", 1))
				lan.advance(time.Second)
				st := b.engine.Status()[0]
				if st.AdvertsReceived < 10 {
					t.Fatalf("backup received %d adverts", st.AdvertsReceived)
				}
				got := st.Dropped["addr_list"]
				if tc.many && got != st.AdvertsReceived || !tc.many && got != 1 {
					t.Errorf("address list mismatches counted %d times in %d adverts (skip %v)", got, st.AdvertsReceived, !tc.many)
				}
			})
		})
	}
}

// notify_priority_changes reports a change of the effective priority
// that leaves the state as it is, and only with the option.
func TestNotifyPriorityChanges(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				var mu sync.Mutex
				var got []StateChange
				extra := ""
				if on {
					extra = "notify_priority_changes"
				}
				a := startRouterNotify(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, extra), func(sc StateChange) {
					mu.Lock()
					defer mu.Unlock()
					if sc.PriorityChange {
						got = append(got, sc)
					}
				})
				lan.waitFor(t, "master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
				a.engine.Track("VI_1", "chk", -10, false, "")
				lan.advance(100 * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				if !on {
					if len(got) != 0 {
						t.Errorf("priority changes reported without notify_priority_changes: %+v", got)
					}
					return
				}
				if len(got) != 1 || got[0].State != Master || got[0].Priority != 90 || got[0].Instance.Name != "VI_1" {
					t.Errorf("priority changes %+v, want one: VI_1 MASTER 90", got)
				}
			})
		})
	}
}

// A master that hears a lower priority (a split brain healing) answers
// with an advert at once, unless lower_prio_no_advert (or strict mode);
// either way it refreshes ARP caches with garp_lower_prio_repeat
// announcements per address.
func TestLowerPrioNoAdvert(t *testing.T) {
	for _, extra := range []string{"", "lower_prio_no_advert"} {
		t.Run("with "+extra, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				aAddr := netip.MustParseAddr("10.0.0.1")
				lan.drop = func(src netip.Addr) bool { return src == aAddr } // a is never heard
				a := startRouter(t, lan, "10.0.0.1", twoVIPs(200, extra))
				b := startRouter(t, lan, "10.0.0.2", twoVIPs(100, "nopreempt"))
				lan.waitFor(t, "two masters", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Master })
				lan.advance(time.Second) // the masters' first bursts are over
				arps := len(a.host.announcedAt())
				since := lan.clock.Now()
				lan.advance(500 * time.Millisecond)
				// An answer goes out at the instant b's advert arrives
				// (delivery takes no virtual time); a's own adverts keep
				// their phase, which is not b's.
				bAt := map[time.Time]bool{}
				var aAt []time.Time
				lan.mu.Lock()
				for _, p := range lan.sent {
					switch {
					case p.at.Before(since):
					case p.src == aAddr:
						aAt = append(aAt, p.at)
					default:
						bAt[p.at] = true
					}
				}
				lan.mu.Unlock()
				answers := 0
				for _, at := range aAt {
					if bAt[at] {
						answers++
					}
				}
				heard := len(bAt)
				if extra == "" && answers < heard-1 || extra != "" && answers != 0 {
					t.Errorf("a answered %d of the %d lower priority adverts it heard (%s)", answers, heard, extra)
				}
				if got := len(a.host.announcedAt()) - arps; got < 2*(heard-1) {
					t.Errorf("a sent %d announcements hearing %d lower priority adverts, want 2 each", got, heard)
				}
			})
		})
	}
}

// In strict mode the address owner ignores adverts (keepalived's
// owner_ignore_adverts): a router that took over while the owner was
// cut off is heard, counted as dropped, and never acted on.
func TestStrictOwnerIgnoresAdverts(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "not strict", true: "strict"}[strict], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				aAddr := netip.MustParseAddr("10.0.0.1")
				lan.drop = func(src netip.Addr) bool { return src == aAddr } // a is never heard
				extra := ""
				if strict {
					extra = "strict_mode"
				}
				a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 255, extra))
				b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
				lan.waitFor(t, "two masters", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Master })
				lan.advance(200 * time.Millisecond)
				st := a.engine.Status()[0]
				if got := st.Dropped["owner_ignores"]; strict && got == 0 || !strict && got != 0 {
					t.Errorf("owner dropped %d adverts as owner_ignores (strict %v); received %d", got, strict, st.AdvertsReceived)
				}
			})
		})
	}
}

// promote_secondaries is set on the instance's interface while the engine
// runs, and turned off again at its end where it was off before.
func TestPromoteSecondaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, "promote_secondaries"))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.advance(100 * time.Millisecond)
		sysctl := func(h *fakeHost) (on, set bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			on, set = h.sysctls["eth0"]
			return on, set
		}
		if on, _ := sysctl(a.host); !on {
			t.Error("promote_secondaries not set on eth0 while running")
		}
		if _, set := sysctl(b.host); set {
			t.Error("promote_secondaries touched without the keyword")
		}
		a.stop()
		if on, _ := sysctl(a.host); on {
			t.Error("promote_secondaries left on after the stop")
		}
	})
}

// With dynamic_interfaces an instance whose interface does not exist yet
// waits for it instead of failing the start, and runs once it appears;
// without, the start fails.
func TestDynamicInterfaces(t *testing.T) {
	conf := strings.Replace(instanceConf("VI_1", 1, 100, ""), "eth0", "eth9", 1)
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		h := &fakeHost{lan: lan, addr: netip.MustParseAddr("10.0.0.1"), vips: map[netip.Prefix]bool{}, missing: map[string]bool{"eth9": true}}
		if _, err := NewEngine(lab.ParseConfig(t, conf), h, lab.TestLogger(t), nil, WithClock(lan.clock)); err == nil {
			t.Fatal("an instance on a missing interface started without dynamic_interfaces")
		}
		e, err := NewEngine(lab.ParseConfig(t, "global_defs {\n    dynamic_interfaces\n}\n"+conf), h, lab.TestLogger(t), nil, WithClock(lan.clock))
		if err != nil {
			t.Fatalf("dynamic_interfaces: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		lan.advance(3 * time.Second)
		if st := e.Status(); len(st) != 0 {
			t.Fatalf("instances running before their interface exists: %+v", st)
		}
		// What a tracker says meanwhile reaches the instance when it starts.
		e.Track("VI_1", "chk", -10, false, "")
		h.mu.Lock()
		h.missing = nil
		h.mu.Unlock()
		lan.waitFor(t, "master once eth9 exists", 2*time.Second, func() bool {
			st := e.Status()
			return len(st) == 1 && st[0].State == Master
		})
		if p := e.Status()[0].EffectivePriority; p != 90 {
			t.Errorf("effective priority %d, want 90: the tracker's report while waiting was lost", p)
		}
		cancel()
		lan.waitFor(t, "stop", 2*stopRetryFor, func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
	})
}

// garp_lower_prio_delay: a master hearing a lower priority sends
// garp_lower_prio_repeat announcements per address at once and as many
// again after the delay.
func TestGarpLowerPrioDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := strings.Replace(twoVIPs(200, ""), "garp_lower_prio_delay 0", "garp_lower_prio_delay 1", 1)
		a := startRouter(t, lan, "10.0.0.1", conf)
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		lan.advance(time.Second)
		before := len(a.host.announcedAt())
		// One lower priority advert, as a router that missed a's would
		// send it.
		p := &Packet{Version: 3, Type: TypeAdvertisement, VRID: 1, Priority: 100, AdvertInt: 50 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.101"), netip.MustParseAddr("10.0.0.102")}}
		src, group := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("224.0.0.18")
		b, err := p.MarshalIPv4(IPv4Header{Src: src, Dst: group, ID: 1, TTL: VRRPTTL}, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		at := lan.clock.Now()
		a.engine.send(loopEvent{inst: a.engine.insts[0], packet: &netio.Packet{Data: b, Src: src, Dst: group, TTL: VRRPTTL}})
		lan.advance(2 * time.Second)
		var got []time.Duration
		for _, t := range a.host.announcedAt()[before:] {
			got = append(got, t.Sub(at))
		}
		if want := []time.Duration{0, 0, time.Second, time.Second}; !slices.Equal(got, want) {
			t.Errorf("announcements after a lower priority advert at %v, want %v", got, want)
		}
	})
}
