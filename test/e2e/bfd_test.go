package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// bfdPairOpts is what differs between the pair's configurations.
type bfdPairOpts struct {
	fastFailover bool // fast_failover_bfd peer in VI_1
	trackBFD     bool // track_bfd { peer } in VI_1 (weight 0: FAULT while the session is not Up)
}

// The BFD pair: seed001's routers, ka1 (192.168.1.4, priority 100) and
// ka2 (192.168.1.8, priority 90), VRRPv2 at advert_int 1 between unicast
// peers, each with a BFD session "peer" to the other at 10 ms x 3.
const (
	bfdSession = "peer"
	ka1Addr    = "192.168.1.4"
	ka2Addr    = "192.168.1.8"
)

// bfdPairConf is node's (ka1 or ka2) configuration.
func bfdPairConf(node string, o bfdPairOpts) string {
	prio, src, peer := 100, ka1Addr, ka2Addr
	if node == "ka2" {
		prio, src, peer = 90, ka2Addr, ka1Addr
	}
	extra := fmt.Sprintf("    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }\n", src, peer)
	if o.fastFailover {
		extra += "    fast_failover_bfd " + bfdSession + "\n"
	}
	if o.trackBFD {
		extra += "    track_bfd {\n        " + bfdSession + "\n    }\n"
	}
	return fmt.Sprintf(`bfd_instance %s {
    neighbor_ip %s
    source_ip %s
    min_rx 10
    min_tx 10
    multiplier 3
}
`, bfdSession, peer, src) + vrrpConf(2, prio, "1", extra)
}

// bfdSessionOf is the session "peer" in d's status, or false.
func bfdSessionOf(d *daemon) (api.BFDSessionStatus, bool) {
	st, err := d.status()
	if err != nil {
		return api.BFDSessionStatus{}, false
	}
	for _, b := range st.BFD {
		if b.Name == bfdSession {
			return b, true
		}
	}
	return api.BFDSessionStatus{}, false
}

// bfdState is the state of d's session "peer" ("" when it reports none).
func bfdState(d *daemon) string {
	b, _ := bfdSessionOf(d)
	return b.State
}

// startBFDPair starts ka1, then ka2 (ka2 with --http on its own address
// for /metrics), and waits until ka1 is MASTER, ka2 BACKUP having heard
// ka1, and the BFD session Up on both at its fast rate (detection time
// 30 ms, not the 1 s slow rate of a session coming up).
func startBFDPair(t *testing.T, o bfdPairOpts) (l *lab.Lab, ka1, ka2 *daemon) {
	t.Helper()
	l = lab.NewT(t, lab.Seed001().Spec())
	ka1 = startTandem(t, l, "ka1", writeConf(t, "ka1.conf", bfdPairConf("ka1", o)))
	if !o.trackBFD { // with track_bfd ka1 is FAULT until ka2's session answers
		waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	}
	ka2 = startTandem(t, l, "ka2", writeConf(t, "ka2.conf", bfdPairConf("ka2", o)), "--http", ka2Addr+":9400")
	waitBFDPair(t, ka1, ka2)
	return l, ka1, ka2
}

// waitBFDPair waits until ka1 is MASTER, ka2 BACKUP having heard ka1, and
// the BFD session Up on both at its fast rate. On a loaded machine a
// session can go down falsely (30 ms without a packet) and come back; a
// test waits again right before it acts.
func waitBFDPair(t *testing.T, ka1, ka2 *daemon) {
	t.Helper()
	waitFor(t, "ka1 MASTER, ka2 BACKUP of ka1, BFD Up at 30 ms on both", 20*time.Second, func() bool {
		fast := func(d *daemon) bool {
			b, ok := bfdSessionOf(d)
			return ok && b.State == "Up" && b.Detection > 0 && b.Detection <= 0.031
		}
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" &&
			ka2.instance(t, "VI_1").MasterIP == ka1Addr && fast(ka1) && fast(ka2)
	})
}

// loseMaster crashes ka1 as a machine failure does (switch port cut and
// SIGKILL, lab.Crash) and returns how long ka2 took to report MASTER.
func loseMaster(t *testing.T, l *lab.Lab, ka1, ka2 *daemon) time.Duration {
	t.Helper()
	waitBFDPair(t, ka1, ka2)
	start := time.Now()
	if err := l.Crash("ka1", ka1.proc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka2 MASTER after ka1 is lost", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	return time.Since(start)
}

// TestBFDFastFailover: with fast_failover_bfd, a backup takes over as soon
// as the BFD session to its master goes down (30 ms detection) instead of
// after Master_Down_Interval (3 x advert_int 1 + skew = 3.65 s). The
// master is lost as a machine is: its port cut and its process killed.
// The status, `tandem status` and /metrics show the session Down and the
// reason. TestBFDFastFailoverControl is the same run without
// fast_failover_bfd.
func TestBFDFastFailover(t *testing.T) {
	l, ka1, ka2 := startBFDPair(t, bfdPairOpts{fastFailover: true})
	metricUp := func(v int) string {
		return fmt.Sprintf(`tandem_bfd_session_up{neighbor=%q,session=%q} %d`, ka1Addr, bfdSession, v)
	}
	metrics, err := l.HTTPGet("ka2", netip.MustParseAddrPort(ka2Addr+":9400"), "/metrics", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, metricUp(1)) {
		t.Errorf("/metrics lacks %q before the failover", metricUp(1))
	}

	took := loseMaster(t, l, ka1, ka2)
	t.Logf("ka2 MASTER %v after ka1 was lost", took.Round(time.Millisecond))
	// VRRP alone takes at least 3 s here (TestBFDFastFailoverControl);
	// BFD detects in 30 ms. 1 s leaves room for a loaded machine.
	if took >= time.Second {
		t.Errorf("takeover took %v, want < 1 s with fast_failover_bfd", took)
	}
	if why, want := ka2.instance(t, "VI_1").Reason, "bfd "+bfdSession+" down: master "+ka1Addr+" lost"; why != want {
		t.Errorf("ka2's reason %q, want %q", why, want)
	}
	if b, _ := bfdSessionOf(ka2); b.State != "Down" || b.Flaps == 0 {
		t.Errorf("ka2's BFD session after the loss: %+v, want Down with a flap", b)
	}
	if !holds(t, l, "ka2", "ens33", vip001) {
		t.Error("ka2 does not hold the VIP")
	}
	if err := l.Ping("client", vip001, 3*time.Second); err != nil {
		t.Errorf("client to the VIP on ka2: %v", err)
	}

	out, err := exec.Command(tandemBin, "status", "--socket", ka2.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "bfd "+bfdSession+" down: master "+ka1Addr+" lost") ||
		!containsLine(string(out), bfdSession, ka1Addr, "Down") {
		t.Errorf("tandem status shows neither the reason nor the session Down:\n%s", out)
	}
	metrics, err = l.HTTPGet("ka2", netip.MustParseAddrPort(ka2Addr+":9400"), "/metrics", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, metricUp(0)) {
		t.Errorf("/metrics lacks %q after the failover", metricUp(0))
	}
}

// containsLine reports whether one line of s holds every one of words as
// a field.
func containsLine(s string, words ...string) bool {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		all := true
		for _, w := range words {
			all = all && slices.Contains(f, w)
		}
		if all {
			return true
		}
	}
	return false
}

// TestBFDFastFailoverControl is TestBFDFastFailover's run without
// fast_failover_bfd: the same BFD session goes down, but the backup waits
// for Master_Down_Interval (3.65 s less the time since ka1's last advert,
// so more than 2.6 s), which shows the fast takeover is BFD's doing.
func TestBFDFastFailoverControl(t *testing.T) {
	l, ka1, ka2 := startBFDPair(t, bfdPairOpts{})
	took := loseMaster(t, l, ka1, ka2)
	t.Logf("ka2 MASTER %v after ka1 was lost (VRRP alone)", took.Round(time.Millisecond))
	if took <= 2*time.Second {
		t.Errorf("takeover without fast_failover_bfd took %v, want > 2 s (Master_Down_Interval at advert_int 1)", took)
	}
	if why, want := ka2.instance(t, "VI_1").Reason, "advert timeout from "+ka1Addr; why != want {
		t.Errorf("ka2's reason %q, want %q", why, want)
	}
	if s := bfdState(ka2); s != "Down" {
		t.Errorf("ka2's BFD session %q, want Down", s)
	}
}

// TestBFDMasterKeepsOnPeerLoss: on the master, fast_failover_bfd's session
// going down (the backup lost) changes nothing: ka1 stays MASTER, with no
// transition, for longer than a backup's Master_Down_Interval.
func TestBFDMasterKeepsOnPeerLoss(t *testing.T) {
	l, ka1, ka2 := startBFDPair(t, bfdPairOpts{fastFailover: true})
	waitBFDPair(t, ka1, ka2)
	before := ka1.instance(t, "VI_1").Transitions
	if err := l.Crash("ka2", ka2.proc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1's BFD session Down", 5*time.Second, func() bool { return bfdState(ka1) == "Down" })
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if s := ka1.state("VI_1"); s != "MASTER" {
			t.Fatalf("ka1 went %s when its backup was lost", s)
		}
	}
	if in := ka1.instance(t, "VI_1"); in.Transitions != before {
		t.Errorf("ka1 made %d transitions when its backup was lost", in.Transitions-before)
	}
	if !holds(t, l, "ka1", "ens33", vip001) {
		t.Error("ka1 no longer holds the VIP")
	}
}

// TestTrackBFD: an instance tracking a BFD session with weight 0
// (track_bfd, keepalived's syntax) is FAULT while the session is not Up:
// ka1 goes FAULT when its neighbor ka2 dies, and MASTER again when ka2
// comes back and the session is Up again.
func TestTrackBFD(t *testing.T) {
	o := bfdPairOpts{trackBFD: true}
	l, ka1, ka2 := startBFDPair(t, o)
	if err := ka2.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1 FAULT once ka2 is gone", 5*time.Second, func() bool { return ka1.state("VI_1") == "FAULT" })
	if s := bfdState(ka1); s != "Down" {
		t.Errorf("ka1's BFD session %q while FAULT, want Down", s)
	}
	if in := ka1.instance(t, "VI_1"); !strings.Contains(in.Reason, bfdSession) {
		t.Errorf("ka1's FAULT reason %q does not name the session %s", in.Reason, bfdSession)
	}
	if holds(t, l, "ka1", "ens33", vip001) {
		t.Error("ka1 holds the VIP while FAULT")
	}
	ka2 = startTandem(t, l, "ka2", writeConf(t, "ka2.conf", bfdPairConf("ka2", o)))
	waitFor(t, "ka1 MASTER again once ka2's session is Up", 20*time.Second, func() bool {
		return bfdState(ka1) == "Up" && ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	if !holds(t, l, "ka1", "ens33", vip001) {
		t.Error("ka1 does not hold the VIP after recovering")
	}
}
