package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// handoverConf is the pair's instance for the handover tests: VRRPv3 at
// advert_int 0.1 (so a handover, Skew_Time, takes tens of ms), with
// handover_drain drain ("" for the default).
func handoverConf(prio int, drain string) string {
	extra := ""
	if drain != "" {
		extra = "    handover_drain " + drain
	}
	return vrrpConf(3, prio, "0.1", extra)
}

// handoverRun hands the VIP back and forth n times between ka1 and ka2
// under a client making rate connections per second to a server on each
// director (the one holding the VIP answers), and returns what the client
// saw.
func handoverRun(t *testing.T, drain string, n, rate int) lab.LoadResult {
	t.Helper()
	l := lab.NewT(t, lab.Seed001().Spec())
	for _, node := range []string{"ka1", "ka2"} {
		l.ServeName(t, node, ":7070", false)
	}
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", handoverConf(100, drain)))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", handoverConf(90, drain)))
	waitFor(t, "ka2 BACKUP", 10*time.Second, func() bool { return ka2.state("VI_1") == "BACKUP" })
	vip := netip.AddrPortFrom(vip001, 7070)
	if err := l.Do("client", func() error { _, _, err := lab.AskName(t.Context(), vip, time.Second); return err }); err != nil {
		t.Fatalf("client does not reach the VIP: %v", err)
	}
	load := l.StartConnLoad("client", vip, rate, 8, time.Second)
	from, to := ka1, ka2
	for i := range n {
		time.Sleep(500 * time.Millisecond)
		out, err := exec.Command(tandemBin, "handover", "--socket", from.socket).CombinedOutput()
		if err != nil {
			load.Stop()
			t.Fatalf("handover %d on %s: %v\n%s", i, from.node, err, out)
		}
		want := fmt.Sprintf("VI_1: handed over to %s", lab.Seed001().Directors[map[string]int{"ka1": 1, "ka2": 0}[from.node]].Addr)
		if !strings.Contains(string(out), want) {
			t.Errorf("handover %d on %s said %q, want %q", i, from.node, out, want)
		}
		waitFor(t, to.node+" MASTER", 5*time.Second, func() bool { return to.state("VI_1") == "MASTER" })
		from, to = to, from
	}
	time.Sleep(time.Second)
	res, err := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drain %q: %d handovers, answered %v, failed %d", drain, n, res.OK, len(res.Failed))
	return res
}

// TestHandoverNoFailedRequests: `tandem handover`, back and forth under a
// client making 1,000 connections a second through the VIP, loses none
// (the measure of issue 13's make-before-break handover).
func TestHandoverNoFailedRequests(t *testing.T) {
	const n, rate = 10, 1000
	res := handoverRun(t, "", n, rate)
	if len(res.Failed) > 0 {
		t.Errorf("%d of %d connections failed across %d handovers:\n%s", len(res.Failed), len(res.Failed)+res.Total(), n, strings.Join(res.Failed[:min(len(res.Failed), 20)], "\n"))
	}
	// Both directors answered: the VIP really moved under the load.
	if res.OK["ka1"] == 0 || res.OK["ka2"] == 0 {
		t.Errorf("answers %v: the VIP did not move between the directors", res.OK)
	}
}
