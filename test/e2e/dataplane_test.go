package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// spread sends n requests from the client to target and counts the answers
// per real server; failed requests count under "".
func spread(l *lab.Lab, target netip.AddrPort, n int) map[string]int {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := get(l, target)
		if err != nil {
			name = ""
		}
		got[name]++
	}
	return got
}

func lvsList(t *testing.T, l *lab.Lab, d *daemon) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, d.node, tandemBin, "lvs", "list", "--socket", d.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem lvs list: %v\n%s", err, out)
	}
	return string(out)
}

// TestSeed003NAT runs seed003-lvs-nat.conf unmodified on its layout (the
// director owns the virtual address outside, the real servers route through
// it inside): rr spreads the client's connections evenly, `tandem lvs list`
// shows the service, a stopped real server leaves the pool and no request
// fails after its removal, and a started one comes back.
func TestSeed003NAT(t *testing.T) {
	l := lab.NewT(t, lab.Seed003NAT().Spec())
	ng := map[string]*lab.Proc{"rs1": startNginx(t, l, "rs1"), "rs2": startNginx(t, l, "rs2")}
	dir := startTandem(t, l, "dir1", seedConf(t, "seed003-lvs-nat.conf"))
	const vs = "192.168.142.147:80"
	waitFor(t, "both real servers healthy", 15*time.Second, func() bool {
		return dir.healthy(vs, "192.168.188.129") && dir.healthy(vs, "192.168.188.137")
	})
	target := netip.MustParseAddrPort(vs)
	// The status shows the checkers' verdicts; the data plane applies
	// them a few milliseconds later (more on a loaded machine), so the
	// requests count from the rules' presence in the data plane.
	inPlane := func(rs string) bool { return strings.Contains(lvsList(t, l, dir), "-> "+rs+":80") }
	waitFor(t, "both rules in the data plane", 5*time.Second, func() bool { return inPlane("192.168.188.129") && inPlane("192.168.188.137") })
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	got := spread(l, target, 40)
	t.Logf("rr NAT, 40 connections: %v", got)
	// rr alternates, 20/20; a SYN lost before conntrack confirmed the
	// connection (a loaded machine) is scheduled again when resent.
	if got[""] > 0 || got["rs1"] < 16 || got["rs2"] < 16 {
		t.Errorf("rr over two real servers: %v, want about 20/20 and no failure", got)
	}
	list := lvsList(t, l, dir)
	for _, want := range []string{"TCP  192.168.142.147:80 rr", "-> 192.168.188.129:80", "-> 192.168.188.137:80", "Masq"} {
		if !strings.Contains(list, want) {
			t.Errorf("tandem lvs list lacks %q:\n%s", want, list)
		}
	}
	if err := ng["rs1"].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "rs1 out of the pool", 20*time.Second, func() bool { return !dir.healthy(vs, "192.168.188.129") })
	t.Logf("rs1 left the pool %v after nginx stopped", took)
	waitFor(t, "rs1's rule out of the data plane", 5*time.Second, func() bool { return !inPlane("192.168.188.129") })
	if got := spread(l, target, 20); got["rs2"] != 20 {
		t.Errorf("after rs1's removal: %v, want every request served by rs2", got)
	}
	ng["rs1"] = startNginx(t, l, "rs1")
	waitFor(t, "rs1 back", 15*time.Second, func() bool { return dir.healthy(vs, "192.168.188.129") })
	waitFor(t, "rs1's rule back in the data plane", 5*time.Second, func() bool { return inPlane("192.168.188.129") })
	if got := spread(l, target, 20); got["rs1"] < 8 || got[""] > 0 {
		t.Errorf("after rs1's return: %v, want it served again", got)
	}
}

// TestSeed004DR runs seed004's director pair unmodified (rr DR, VIP
// 172.16.0.30/24 floating by VRRP): the client's connections reach both
// real servers through the master's nftables DR forwarding, the real servers
// answering directly.
func TestSeed004DR(t *testing.T) {
	l := lab.NewT(t, lab.Seed004().Spec())
	vip := netip.MustParseAddr("172.16.0.30")
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	m := startTandem(t, l, "dir1", seedConf(t, "seed004-lvs-dr-master.conf"))
	b := startTandem(t, l, "dir2", seedConf(t, "seed004-lvs-dr-backup.conf"))
	waitFor(t, "dir1 MASTER", 10*time.Second, func() bool { return m.state("VI_1") == "MASTER" && b.state("VI_1") == "BACKUP" })
	const vs = "172.16.0.30:80"
	waitFor(t, "both real servers healthy", 15*time.Second, func() bool {
		return m.healthy(vs, "172.16.0.31") && m.healthy(vs, "172.16.0.32")
	})
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	got := spread(l, target, 60)
	t.Logf("rr DR (flow hash), 60 connections: %v", got)
	// DR has no conntrack: flows are hashed, so the split is even only on
	// average; each server must still get a fair share.
	if got[""] > 0 || got["rs1"] < 15 || got["rs2"] < 15 {
		t.Errorf("DR over two real servers: %v, want both well used and no failure", got)
	}
	if list := lvsList(t, l, m); !strings.Contains(list, "Route") {
		t.Errorf("tandem lvs list shows no Route (DR) destinations:\n%s", list)
	}
}
