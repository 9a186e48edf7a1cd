package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

var (
	vip001 = netip.MustParseAddr("192.168.1.100")
)

// TestSeed001 runs the seeds' three tests on seed001's two VRRP routers with
// their configurations unmodified: the master owns the VIP and the client
// reaches it; the master is killed (SIGKILL, whole process group) and the
// backup owns the VIP and the client reaches it (its neighbour entry now
// holds the backup's MAC: the gratuitous ARP arrived); the master comes back
// and takes the VIP back (preempt).
func TestSeed001(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"))
	ka2 := startTandem(t, l, "ka2", seedConf(t, "seed001-vip-ka2.conf"))

	waitFor(t, "ka1 MASTER, ka2 BACKUP hearing it", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" && ka2.instance(t, "VI_1").MasterIP == "192.168.1.4"
	})
	if !holds(t, l, "ka1", "ens33", vip001) || holds(t, l, "ka2", "ens33", vip001) {
		t.Fatal("the master must hold the VIP and the backup not")
	}
	if label, _ := addrLabel(t, l, "ka1", "ens33", vip001); label != "ens33:1" {
		t.Errorf("VIP label %q, want the configured ens33:1", label)
	}
	if err := l.Ping("client", vip001, 3*time.Second); err != nil {
		t.Fatalf("test 1, client reaches the VIP on the master: %v", err)
	}
	if in := ka2.instance(t, "VI_1"); in.MasterIP != "192.168.1.4" || in.AdvertsReceived == 0 {
		t.Errorf("backup's view: master %q, %d adverts received", in.MasterIP, in.AdvertsReceived)
	}

	// Test 2: crash. VRRPv2, advert_int 1, priority 90: Master_Down_Interval
	// is 3 s + (256-90)/256 s.
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "ka2 MASTER after ka1's crash", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	t.Logf("crash failover: ka2 MASTER %v after SIGKILL", took)
	if bound := 3*time.Second + 166*time.Second/256 + time.Second; took > bound {
		t.Errorf("takeover took %v, more than Master_Down_Interval plus a second (%v)", took, bound)
	}
	if !holds(t, l, "ka2", "ens33", vip001) {
		t.Fatal("the new master does not hold the VIP")
	}
	// The operator reads why, in the status and in the one log line.
	const why = "advert timeout from 192.168.1.4"
	if in := ka2.instance(t, "VI_1"); in.Reason != why {
		t.Errorf("ka2's VI_1 status reason %q, want %q", in.Reason, why)
	}
	if line := `from=BACKUP to=MASTER reason="` + why + `"`; strings.Count(ka2.proc.Output(), line) != 1 {
		t.Errorf("ka2's log has not one line with %s:\n%s", line, ka2.proc.Output())
	}
	ka2MAC := macOf(t, l, "ka2", "ens33")
	waitFor(t, "the client's neighbour entry for the VIP to point at ka2", 3*time.Second, func() bool {
		return neighbourMAC(t, l, "client", vip001).String() == ka2MAC.String()
	})
	if err := l.Ping("client", vip001, 3*time.Second); err != nil {
		t.Fatalf("test 2, client reaches the VIP on the backup: %v", err)
	}

	// Test 3: recovery. The restarted master removes the VIP its crash
	// left behind, then preempts.
	ka1 = startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"))
	waitFor(t, "ka1 MASTER again, ka2 BACKUP", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	// ka2 drains the VIP (make-before-break: still forwarding, no
	// longer answering ARP for it) for handover_drain, 5 s + 1 s.
	if !holds(t, l, "ka1", "ens33", vip001) {
		t.Fatal("after recovery the VIP must be on ka1")
	}
	waitFor(t, "the VIP gone from ka2 after its drain", 10*time.Second, func() bool { return !holds(t, l, "ka2", "ens33", vip001) })
	ka1MAC := macOf(t, l, "ka1", "ens33")
	waitFor(t, "the client's neighbour entry to point back at ka1", 3*time.Second, func() bool {
		return neighbourMAC(t, l, "client", vip001).String() == ka1MAC.String()
	})
	if err := l.Ping("client", vip001, 3*time.Second); err != nil {
		t.Fatalf("test 3, client reaches the VIP on the returned master: %v", err)
	}
}

// TestGracefulStop: SIGTERM makes the master send priority 0, so the backup
// takes over after Skew_Time instead of Master_Down_Interval, and the
// stopped node keeps no VIP.
func TestGracefulStop(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"))
	ka2 := startTandem(t, l, "ka2", seedConf(t, "seed001-vip-ka2.conf"))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	start := time.Now()
	if err := ka1.proc.Stop(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	took := waitFor(t, "ka2 MASTER", 5*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	t.Logf("graceful failover: ka2 MASTER %v after SIGTERM (process exit took %v)", took, time.Since(start)-took)
	// Skew_Time for priority 90 is 166/256 s; allow scheduling slack.
	if took > 1500*time.Millisecond {
		t.Errorf("takeover after SIGTERM took %v; priority 0 should make it Skew_Time", took)
	}
	if holds(t, l, "ka1", "ens33", vip001) {
		t.Error("the stopped node still holds the VIP")
	}
	if !strings.Contains(ka1.proc.Output(), "to=STOP reason=shutdown") {
		t.Errorf("no STOP in the stopped daemon's log:\n%s", ka1.proc.Output())
	}
}

// vrrpConf is a test-made instance on seed001's ens33.
func vrrpConf(version int, prio int, advert string, extra string) string {
	return fmt.Sprintf(`global_defs {
    vrrp_mcast_group4 224.100.100.100
}
vrrp_instance VI_1 {
    state BACKUP
    interface ens33
    virtual_router_id 88
    priority %d
    advert_int %s
    version %d
%s
    virtual_ipaddress {
        192.168.1.100/24 dev ens33 label ens33:1
    }
}
`, prio, advert, version, extra)
}

// TestNoPreemptAndPreemptDelay: a higher-priority router with nopreempt
// stays BACKUP under a lower-priority master; with preempt_delay it takes
// over only once the delay has passed.
func TestNoPreemptAndPreemptDelay(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", vrrpConf(2, 90, "1", "")))
	waitFor(t, "ka2 MASTER alone", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })

	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", vrrpConf(2, 100, "1", "    nopreempt")))
	waitFor(t, "ka1 BACKUP", 5*time.Second, func() bool { return ka1.state("VI_1") == "BACKUP" })
	time.Sleep(5 * time.Second) // more than Master_Down_Interval
	if ka1.state("VI_1") != "BACKUP" || ka2.state("VI_1") != "MASTER" {
		t.Fatalf("nopreempt: ka1 %s, ka2 %s; ka1 must not preempt", ka1.state("VI_1"), ka2.state("VI_1"))
	}
	if err := ka1.proc.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	ka1 = startTandem(t, l, "ka1", writeConf(t, "ka1d.conf", vrrpConf(2, 100, "1", "    preempt_delay 3")))
	start := time.Now()
	waitFor(t, "ka1 BACKUP", 5*time.Second, func() bool { return ka1.state("VI_1") == "BACKUP" })
	took := waitFor(t, "ka1 MASTER after preempt_delay", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	took += time.Since(start) - took
	if took < 3*time.Second {
		t.Errorf("ka1 preempted after %v, before its preempt_delay of 3 s", took)
	}
	waitFor(t, "ka2 BACKUP", 3*time.Second, func() bool { return ka2.state("VI_1") == "BACKUP" })
}
