package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// handoverConf is a director of the handover tests (lab.HandoverVRRP and
// its DR service).
func handoverConf(prio int, drain string) string {
	return lab.HandoverVRRP(prio, drain) + lab.HandoverService
}

// handoverRun hands the VIP back and forth n times between dir1 and dir2
// under a client making rate connections per second to the VIP, and
// returns what the client saw. With byReload the backup's priority is
// raised above the master's and the backup reloaded (it preempts);
// otherwise `tandem handover` runs on the master.
func handoverRun(t *testing.T, drain string, byReload bool, n, rate int) lab.LoadResult {
	t.Helper()
	y := lab.Seed004()
	l := lab.NewT(t, y.Spec())
	vip := y.VIPs[0]
	for _, rs := range y.Reals {
		carryVIP(t, l, rs.Name, vip)
		l.ServeName(t, rs.Name, fmt.Sprintf(":%d", lab.HandoverPort), false)
	}
	dir1 := startTandem(t, l, "dir1", writeConf(t, "dir1.conf", handoverConf(100, drain)))
	waitFor(t, "dir1 MASTER", 10*time.Second, func() bool { return dir1.state("VI_1") == "MASTER" })
	dir2 := startTandem(t, l, "dir2", writeConf(t, "dir2.conf", handoverConf(90, drain)))
	waitFor(t, "dir2 BACKUP", 10*time.Second, func() bool { return dir2.state("VI_1") == "BACKUP" })
	vs := fmt.Sprintf("%s:%d", vip, lab.HandoverPort)
	waitFor(t, "both real servers healthy on both directors", 20*time.Second, func() bool {
		for _, d := range []*daemon{dir1, dir2} {
			for _, rs := range y.Reals {
				if !d.healthy(vs, rs.Addr.String()) {
					return false
				}
			}
		}
		return true
	})
	target := netip.AddrPortFrom(vip, lab.HandoverPort)
	waitFor(t, "the client served", 10*time.Second, func() bool {
		return l.Do("client", func() error { _, _, err := lab.AskName(t.Context(), target, time.Second); return err }) == nil
	})
	addr := map[string]string{"dir1": y.Directors[0].Addr.String(), "dir2": y.Directors[1].Addr.String()}
	// What cannot be honoured is refused, saying why, and moves nothing.
	for _, c := range []struct {
		d    *daemon
		args []string
		want string
	}{
		{dir2, nil, "no instance outside a sync group is MASTER here"},
		{dir1, []string{"--to", addr["dir2"]}, "needs " + addr["dir2"] + " in its unicast_peer list"},
	} {
		out, err := exec.Command(tandemBin, append([]string{"handover", "--socket", c.d.socket}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("tandem handover %v on %s: %v, %q; want exit 1 saying %q", c.args, c.d.node, err, out, c.want)
		}
	}
	load := l.StartConnLoad("client", target, rate, 8, time.Second)
	prio := map[*daemon]int{dir1: 100, dir2: 90}
	from, to := dir1, dir2
	for i := range n {
		time.Sleep(500 * time.Millisecond)
		if byReload {
			prio[to] = prio[from] + 1
			if err := os.WriteFile(to.conf, []byte(handoverConf(prio[to], drain)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tandemBin, "reload", "--socket", to.socket).CombinedOutput(); err != nil {
				load.Stop()
				t.Fatalf("reload %d of %s: %v\n%s", i, to.node, err, out)
			}
		} else {
			out, err := exec.Command(tandemBin, "handover", "--socket", from.socket).CombinedOutput()
			if err != nil {
				load.Stop()
				t.Fatalf("handover %d on %s: %v\n%s", i, from.node, err, out)
			}
			if want := "VI_1: handed over to " + addr[to.node]; !strings.Contains(string(out), want) {
				t.Errorf("handover %d on %s said %q, want %q", i, from.node, out, want)
			}
		}
		waitFor(t, to.node+" MASTER", 5*time.Second, func() bool { return to.state("VI_1") == "MASTER" })
		from, to = to, from
	}
	time.Sleep(time.Second)
	res, err := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("handover_drain %q, by reload %v: %d handovers, answered %v, failed %d", drain, byReload, n, res.OK, len(res.Failed))
	return res
}

// TestHandoverNoFailedRequests: 20 `tandem handover`s, back and forth,
// under a client making 1,000 connections a second through the VIP, lose
// none (issue 13's measure of the make-before-break handover), and so do
// 20 priority changes by reload that make the backup preempt. The
// control, with handover_drain 0 (the old master drops the VIP the moment
// it hears the new one, as keepalived does), loses connections: a SYN
// that reaches the old master between its removal of the VIP and the
// client's taking in the new master's gratuitous ARP is dropped (the DR
// data plane forwards only to a local VIP), and resent only after 1 s.
// That window is short, so the control runs more handovers: at about one
// lost SYN in four handovers here, 30 of them lose none with a
// probability well under 0.1 %.
func TestHandoverNoFailedRequests(t *testing.T) {
	const rate = 1000
	for _, byReload := range []bool{false, true} {
		t.Run(map[bool]string{false: "tandem handover", true: "priority raised by reload"}[byReload], func(t *testing.T) {
			const n = 20
			res := handoverRun(t, "", byReload, n, rate)
			if len(res.Failed) > 0 {
				t.Errorf("%d of %d connections failed across %d handovers:\n%s", len(res.Failed), len(res.Failed)+res.Total(), n, strings.Join(res.Failed[:min(len(res.Failed), 20)], "\n"))
			}
			// About n/2 s of load: the client did run at its rate.
			if res.Total() < n*rate/4 {
				t.Errorf("only %d connections answered in about %d s at %d/s", res.Total(), n/2, rate)
			}
		})
	}
	t.Run("control: handover_drain 0", func(t *testing.T) {
		const n = 30
		if res := handoverRun(t, "0", false, n, rate); len(res.Failed) == 0 {
			t.Errorf("no connection failed across %d handovers without a drain: the test cannot tell make-before-break from break-before-make", n)
		}
	})
}
