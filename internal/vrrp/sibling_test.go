package vrrp

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// siblingConf is two VRRPv3 instances sharing VRID 7 on eth0, which
// keepalived allows because they talk in different conversations: VI_A
// multicasts to the default group, VI_B per extraB (another group, or
// unicast to peers).
func siblingConf(prioA, prioB int, extraB string) string {
	inst := func(name string, prio int, extra, vip string) string {
		return fmt.Sprintf(`vrrp_instance %s {
    interface eth0
    virtual_router_id 7
    priority %d
    version 3
    advert_int 0.05
    %s
    virtual_ipaddress {
        %s
    }
}
`, name, prio, extra, vip)
	}
	return inst("VI_A", prioA, "", "10.0.0.201/24") + inst("VI_B", prioB, extraB, "10.0.0.202/24")
}

// TestEngineSiblingVRIDs: each instance of a pair sharing a VRID elects
// on its own conversation's adverts only (issue 12 item 9). Router a is
// the master of VI_A and the backup of VI_B, b the reverse; when each
// instance took its sibling's adverts for its own, the priorities 200 of
// a's VI_A and b's VI_B met in both conversations and the higher address
// won both.
func TestEngineSiblingVRIDs(t *testing.T) {
	for _, tt := range []struct {
		name string
		// extraB gives VI_B's conversation, for the router whose peer is
		// the argument.
		extraB func(peer string) string
	}{
		{"two multicast groups", func(string) string { return "mcast_dst_ip 224.0.0.19" }},
		// Check's destination test keeps these apart already; the case
		// guards that siblingOwns does not take a conversation away.
		{"multicast and unicast", func(peer string) string { return "unicast_peer {\n        " + peer + "\n    }" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				a := startRouter(t, lan, "10.0.0.1", siblingConf(200, 100, tt.extraB("10.0.0.2")))
				b := startRouter(t, lan, "10.0.0.2", siblingConf(100, 200, tt.extraB("10.0.0.1")))
				lan.waitFor(t, "a master of VI_A, b of VI_B", 2*time.Second, func() bool {
					return a.state("VI_A") == Master && a.state("VI_B") == Backup && b.state("VI_A") == Backup && b.state("VI_B") == Master
				})
				lan.advance(500 * time.Millisecond) // ten advert intervals
				if a.state("VI_A") != Master || a.state("VI_B") != Backup || b.state("VI_A") != Backup || b.state("VI_B") != Master {
					t.Fatalf("a: VI_A %v VI_B %v; b: VI_A %v VI_B %v; want a master of VI_A only, b of VI_B only",
						a.state("VI_A"), a.state("VI_B"), b.state("VI_A"), b.state("VI_B"))
				}
				if !a.host.holds("10.0.0.201/24") || a.host.holds("10.0.0.202/24") || !b.host.holds("10.0.0.202/24") || b.host.holds("10.0.0.201/24") {
					t.Error("each master must hold its own instance's VIP only")
				}
			})
		})
	}
}

// TestEngineExcludedOtherFamily: an IPv4 instance's
// virtual_ipaddress_excluded may hold IPv6 addresses (issue 12 item 3):
// the master installs and announces them with its VIPs, and advertises
// only the VIPs.
func TestEngineExcludedOtherFamily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, "virtual_ipaddress_excluded {\n        fd00::10/64\n        10.0.0.50/24\n    }"))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master })
		for _, p := range []string{"10.0.0.101/24", "fd00::10/64", "10.0.0.50/24"} {
			if !a.host.holds(p) {
				t.Errorf("the master does not hold %s", p)
			}
		}
		ads := lan.adverts(t, netip.MustParseAddr("10.0.0.1"), t0)
		if len(ads) == 0 {
			t.Fatal("no advert sent")
		}
		if got := ads[len(ads)-1].Addrs; len(got) != 1 || got[0] != netip.MustParseAddr("10.0.0.101") {
			t.Errorf("advertised %v, want the VIP 10.0.0.101 only", got)
		}
	})
}
