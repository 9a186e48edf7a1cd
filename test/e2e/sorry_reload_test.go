package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// sorryConf is a Seed000 director's configuration: VI_1 holding the VIP
// and a DR virtual server whose two real servers are checked on port 81,
// where nothing listens, so quorum is lost and sorry is its sorry server.
func sorryConf(sorry string) string {
	rs := func(ip string) string {
		return fmt.Sprintf(`    real_server %s 80 {
        TCP_CHECK {
            connect_port 81
            connect_timeout 1
        }
    }
`, ip)
	}
	return fmt.Sprintf(`vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        172.16.7.5
    }
}
virtual_server 172.16.7.5 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    sorry_server %s 80
%s%s}
`, sorry, rs("172.16.7.3"), rs("172.16.7.4"))
}

// TestReloadSorryServer changes the sorry_server of a virtual server whose
// sorry server is in, and reloads: the change applies in place. The
// master stays master, the data plane swaps the old sorry server for the
// new one in exactly two operations (add the new, delete the old), the
// checkers keep their state, and the client through the VIP is answered
// by the new sorry server. One director (dir1 of Seed000) suffices: what
// is under test is its own reload.
func TestReloadSorryServer(t *testing.T) {
	l := lab.NewT(t, lab.Seed000().Spec())
	vip := netip.MustParseAddr("172.16.7.5")
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	conf := writeConf(t, "dir1.conf", sorryConf("172.16.7.3"))
	dir1 := startTandem(t, l, "dir1", conf, "--dataplane", "nft")
	const vs = "172.16.7.5:80"
	sorryIn := func() bool {
		st, err := dir1.status()
		if err != nil || len(st.VirtualServers) != 1 {
			return false
		}
		v := st.VirtualServers[0]
		down := 0
		for _, rs := range v.RealServers {
			for _, c := range rs.Checkers {
				if c.LastResult == "failed" && !c.LastChange.IsZero() {
					down++
				}
			}
		}
		return v.Name == vs && !v.QuorumOK && v.SorryServer && down == 2
	}
	waitFor(t, "dir1 MASTER, both real servers' checkers down and the sorry server in", 20*time.Second, func() bool {
		return dir1.state("VI_1") == "MASTER" && sorryIn()
	})
	answer := func(want string) {
		t.Helper()
		waitFor(t, "the client through the VIP answered by "+want, 10*time.Second, func() bool {
			got, err := get(l, netip.AddrPortFrom(vip, 80))
			return err == nil && strings.TrimSpace(got) == want
		})
	}
	answer("rs1")
	time.Sleep(time.Second) // the initial reconciles settle

	before, err := dir1.status()
	if err != nil {
		t.Fatal(err)
	}
	checkers := checkerChanges(t, dir1)
	logged := len(dir1.proc.Output())
	if err := os.WriteFile(conf, []byte(sorryConf("172.16.7.4")), 0o644); err != nil {
		t.Fatal(err)
	}
	reloadApplied(t, dir1)
	answer("rs2")
	// Long enough for checker runs (delay_loop 1) and a reconcile after
	// the reload to show.
	time.Sleep(3 * time.Second)

	after, err := dir1.status()
	if err != nil {
		t.Fatal(err)
	}
	transitions := func(ins []api.InstanceStatus) uint64 {
		var n uint64
		for _, in := range ins {
			n += in.Transitions
		}
		return n
	}
	if b, a := transitions(before.Instances), transitions(after.Instances); a != b {
		t.Errorf("VRRP transitions %d -> %d across the reload", b, a)
	}
	// The sorry server's dest is replaced: AddDest of the new one and
	// DelDest of the old (lvs diffDests), in the one reconcile of the
	// reload. A rebuilt service costs more operations; a sorry server
	// that flaps (out at the reload, in again at the new checkers'
	// initial events) costs as many but in two updates, with no dest
	// between them.
	if after.DataplaneOps != before.DataplaneOps+2 {
		t.Errorf("data-plane operations %d -> %d, want 2 more", before.DataplaneOps, after.DataplaneOps)
	}
	var updates []string
	for _, line := range strings.Split(dir1.proc.Output()[logged:], "\n") {
		if strings.Contains(line, `msg="data plane updated"`) {
			updates = append(updates, line)
		}
	}
	if len(updates) != 1 || !strings.Contains(updates[0], " ops=2") {
		t.Errorf("want one data-plane update of 2 operations after the reload, got:\n%s", strings.Join(updates, "\n"))
	}
	if got := checkerChanges(t, dir1); got != checkers {
		t.Errorf("a checker's state was reset: last changes %s -> %s", checkers, got)
	}
	if !sorryIn() {
		t.Errorf("the sorry server is not in after the reload: %+v", after.VirtualServers)
	}
	list := lvsList(t, l, dir1)
	if !strings.Contains(list, "172.16.7.4:80") || strings.Contains(list, "172.16.7.3:80") {
		t.Errorf("dir1's data plane does not hold the new sorry server alone:\n%s", list)
	}
	for i := 0; i < 5; i++ {
		if got, err := get(l, netip.AddrPortFrom(vip, 80)); err != nil || strings.TrimSpace(got) != "rs2" {
			t.Errorf("the client through the VIP after the reload: %q, %v; want rs2", got, err)
		}
	}
}
