package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestReload: SIGHUP and `tandem reload` apply only the difference. The
// seed000 master runs with nginx real servers; an unchanged configuration
// changes nothing in the kernel and no VRRP state; a changed weight is one
// data-plane operation; a new instance starts without disturbing the
// running one; a broken configuration is refused and the running one stays.
func TestReload(t *testing.T) {
	l := lab.NewT(t, lab.Seed000().Spec())
	vip := "172.16.7.5"
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, netip.MustParseAddr(vip))
		startNginx(t, l, rs)
	}
	orig, err := os.ReadFile(seedConf(t, "seed000-lvs-dr-master.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := writeConf(t, "master.conf", string(orig))
	dir1 := startTandem(t, l, "dir1", conf)
	const vs = "172.16.7.5:80"
	waitFor(t, "dir1 MASTER with both real servers healthy", 15*time.Second, func() bool {
		return dir1.state("VI_1") == "MASTER" && dir1.healthy(vs, "172.16.7.3") && dir1.healthy(vs, "172.16.7.4")
	})
	snapshot := func() (transitions, ops uint64) {
		st, err := dir1.status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Instances[0].Transitions, st.DataplaneOps
	}
	time.Sleep(time.Second) // let the initial reconciles settle
	tr0, ops0 := snapshot()
	reload := func() (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := l.Command(ctx, "dir1", tandemBin, "reload", "--socket", dir1.socket).CombinedOutput()
		code := 0
		if err != nil {
			code = 1
		}
		return string(out), code
	}

	// Unchanged, by SIGHUP.
	if err := dir1.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP reload logged", 10*time.Second, func() bool { return strings.Contains(dir1.proc.Output(), "msg=reloaded kept=[VI_1]") })
	time.Sleep(time.Second)
	if tr, ops := snapshot(); tr != tr0 || ops != ops0 {
		t.Fatalf("an unchanged reload changed something: transitions %d->%d, data-plane ops %d->%d", tr0, tr, ops0, ops)
	}

	// A weight: exactly one data-plane operation.
	changed := strings.Replace(string(orig), "weight 1\n", "weight 2\n", 1)
	if changed == string(orig) {
		t.Fatal("test premise: the seed has no \"weight 1\" line")
	}
	if err := os.WriteFile(conf, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := reload(); code != 0 || !strings.Contains(out, "kept: VI_1") {
		t.Fatalf("tandem reload: exit %d\n%s", code, out)
	}
	time.Sleep(time.Second)
	if tr, ops := snapshot(); tr != tr0 || ops != ops0+1 {
		t.Errorf("a weight change: transitions %d->%d (want unchanged), data-plane ops %d->%d (want exactly one more)", tr0, tr, ops0, ops)
	}
	list, found := lvsList(t, l, dir1), false
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		found = found || len(f) >= 4 && f[1] == "172.16.7.4:80" && f[2] == "Route" && f[3] == "2"
	}
	if !found {
		t.Errorf("the new weight is not in the kernel:\n%s", list)
	}

	// A new instance starts beside the running one.
	withVI2 := changed + `
vrrp_instance VI_2 {
    state MASTER
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 1
    virtual_ipaddress {
        172.16.7.6
    }
}
`
	if err := os.WriteFile(conf, []byte(withVI2), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := reload(); code != 0 || !strings.Contains(out, "started: VI_2") || !strings.Contains(out, "kept: VI_1") {
		t.Fatalf("tandem reload: exit %d\n%s", code, out)
	}
	waitFor(t, "VI_2 MASTER", 10*time.Second, func() bool { return dir1.state("VI_2") == "MASTER" })
	if tr, _ := snapshot(); tr != tr0 {
		t.Errorf("starting VI_2 moved VI_1: transitions %d->%d", tr0, tr)
	}

	// A new virtual server: its service and real server are added, and
	// nothing else in the kernel changes.
	_, opsBefore := snapshot()
	withVS := withVI2 + `
virtual_server 172.16.7.5 8080 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 172.16.7.3 8080 {
        weight 1
    }
}
`
	if err := os.WriteFile(conf, []byte(withVS), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := reload(); code != 0 {
		t.Fatalf("tandem reload: exit %d\n%s", code, out)
	}
	waitFor(t, "the new service in the kernel", 5*time.Second, func() bool { return strings.Contains(lvsList(t, l, dir1), "TCP  172.16.7.5:8080 rr") })
	if tr, ops := snapshot(); tr != tr0 || ops != opsBefore+2 {
		t.Errorf("a new virtual server: transitions %d->%d (want unchanged), ops %d->%d (want one service and one real server)", tr0, tr, opsBefore, ops)
	}

	// A broken configuration is refused; nothing changes.
	_, opsBefore = snapshot()
	if err := os.WriteFile(conf, []byte(withVS+"vrrp_instance {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := reload(); code == 0 || !strings.Contains(out, "master.conf:") {
		t.Errorf("a broken configuration must be refused with its errors: exit %d\n%s", code, out)
	}
	if tr, ops := snapshot(); tr != tr0 || ops != opsBefore || dir1.state("VI_2") != "MASTER" {
		t.Errorf("a refused reload changed something: transitions %d->%d, ops %d->%d", tr0, tr, opsBefore, ops)
	}
}

// TestReloadVRRPPriority: a priority change is applied in place (issue
// 11). Raised on the master, which still wins: no transition on either
// router, and the adverts on the wire carry the new priority. Raised on
// the backup above the master: the VIP moves once, as an RFC 5798
// preemption; the old master keeps its normal adverts and never sends
// priority 0 (as a restart would).
func TestReloadVRRPPriority(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed (apt-get install tshark); sudo test/run installs it")
	}
	l := lab.NewT(t, lab.Seed001().Spec())
	conf1 := writeConf(t, "ka1.conf", vrrpConf(3, 100, "0.1", ""))
	conf2 := writeConf(t, "ka2.conf", vrrpConf(3, 90, "0.1", ""))
	ka1 := startTandem(t, l, "ka1", conf1)
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	ka2 := startTandem(t, l, "ka2", conf2)
	waitFor(t, "ka2 BACKUP", 10*time.Second, func() bool { return ka2.state("VI_1") == "BACKUP" })
	transitions := func(d *daemon) uint64 { return d.instance(t, "VI_1").Transitions }
	t1, t2 := transitions(ka1), transitions(ka2)
	reload := func(d *daemon, conf, text string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d.node+"'s reload logged", 10*time.Second, func() bool { return strings.Contains(d.proc.Output(), "updated=[VI_1]") })
	}
	// prios returns the priorities of the adverts captured on ka2 for d,
	// during running from half a second into the capture.
	prios := func(d time.Duration, during func()) []string {
		t.Helper()
		wait, err := startCapture(l, "ka2", "ens33", d, "vrrp.prio")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // some adverts before
		during()
		lines, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		return lines
	}

	// Still winning.
	got := prios(4*time.Second, func() { reload(ka1, conf1, vrrpConf(3, 120, "0.1", "")) })
	if len(got) < 10 || slices.Contains(got, "0") || got[len(got)-1] != "120" {
		t.Errorf("adverts around the reload: %v; want the last ones at 120 and none at 0", got)
	}
	if a, b := transitions(ka1), transitions(ka2); a != t1 || b != t2 {
		t.Errorf("a priority change that still wins: transitions ka1 %d->%d, ka2 %d->%d; want none", t1, a, t2, b)
	}

	// The backup now wins.
	got = prios(4*time.Second, func() {
		reload(ka2, conf2, vrrpConf(3, 150, "0.1", ""))
		waitFor(t, "ka2 MASTER", 5*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	})
	if slices.Contains(got, "0") || !slices.Contains(got, "120") || !slices.Contains(got, "150") {
		t.Errorf("adverts around the preemption: %v; want 120 then 150, none at 0", got)
	}
	if a, b := transitions(ka1), transitions(ka2); a != t1+1 || b != t2+1 {
		t.Errorf("preemption: transitions ka1 %d->%d, ka2 %d->%d; want one each", t1, a, t2, b)
	}
	// ka1 drains the VIP (make-before-break; handover_drain defaults to
	// garp_master_delay 5 s + 1 s), then lets it go.
	if in := ka1.instance(t, "VI_1"); in.DrainingUntil.IsZero() && holds(t, l, "ka1", "ens33", vip001) {
		t.Error("ka1 holds the VIP after the preemption without draining it")
	}
	waitFor(t, "the VIP on ka2 alone", 10*time.Second, func() bool {
		return !holds(t, l, "ka1", "ens33", vip001) && holds(t, l, "ka2", "ens33", vip001)
	})
}
