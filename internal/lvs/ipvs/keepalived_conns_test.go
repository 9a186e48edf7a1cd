package ipvs

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// keepalivedConf is a keepalived director of TestKeepalivedConnsKept:
// VRRPv3 at advert_int 0.1 (as bench/conns runs Tandem) for seed000's VIP
// and an IPVS DR service over rs1 and rs2 (no
// checker: both count as up), with, if sync is set, lvs_sync_daemon
// following the instance.
func keepalivedConf(node string, prio int, sync bool) string {
	syncd := ""
	if sync {
		syncd = "  lvs_sync_daemon eth0 VI_1 id 7\n"
	}
	return fmt.Sprintf(`global_defs {
  router_id %s
%s}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  version 3
  advert_int 0.1
  virtual_ipaddress {
    172.16.7.5/32
  }
}
virtual_server 172.16.7.5 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 172.16.7.3 80 {
    weight 1
  }
  real_server 172.16.7.4 80 {
    weight 1
  }
}
`, node, syncd, prio)
}

// keepalivedConns is how many connections TestKeepalivedConnsKept keeps
// through the VIP, each sending a request every 50 ms: the issue's
// measure.
const keepalivedConns = 200

// TestKeepalivedConnsKept is the "connections kept" row for
// keepalived with IPVS DR, the baseline Tandem's bench/conns is compared
// with: two keepalived directors, long-lived connections through the VIP,
// the master crashed (its switch port cut, keepalived killed). With
// lvs_sync_daemon the backup's IPVS has the connections and carries them
// on; without it (the control) its IPVS does not schedule their next
// segments (not SYNs) and its stack, holding the VIP, resets them. It
// logs "keepalived+IPVS DR failover (...): K of N connections kept,
// longest stall D"; the control must lose connections, or the harness
// could not see them lost.
func TestKeepalivedConnsKept(t *testing.T) {
	requireIPVS(t)
	bin := os.Getenv("KEEPALIVED_BIN")
	if bin == "" {
		t.Skip("KEEPALIVED_BIN is not set (test/vm sets it when the host has keepalived, Debian package keepalived)")
	}
	for _, sync := range []bool{true, false} {
		name := map[bool]string{true: "lvs_sync_daemon", false: "control without lvs_sync_daemon"}[sync]
		t.Run(name, func(t *testing.T) {
			kept, total, stall := keepalivedFailover(t, bin, sync)
			t.Logf("keepalived+IPVS DR failover (%s): %d of %d connections kept, longest stall %v", name, kept, total, stall.Round(time.Millisecond))
			if !sync && kept == total {
				t.Errorf("without lvs_sync_daemon all %d connections were kept: the test cannot see connections lost", total)
			}
		})
	}
}

func keepalivedFailover(t *testing.T, bin string, sync bool) (kept, total int, stall time.Duration) {
	y := lab.Seed000()
	l := lab.NewT(t, y.Spec())
	vip := y.VIPs[0]
	for _, r := range y.Reals {
		run(t, l, r.Name, "ip", "addr", "add", vip.String()+"/32", "dev", "lo")
		stop, err := l.Serve(r.Name, ":80", lab.NameEcho(r.Name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	dir := t.TempDir()
	start := func(node string, prio int) *lab.Proc {
		conf := filepath.Join(dir, node+".conf")
		if err := os.WriteFile(conf, []byte(keepalivedConf(node, prio, sync)), 0o644); err != nil {
			t.Fatal(err)
		}
		// -l: keepalived logs to the console, which test/vm prints when
		// the guest fails.
		pid := func(s string) string { return filepath.Join(dir, node+"."+s+".pid") }
		p, err := l.Start(node, bin, "-n", "-l", "-D", "-f", conf, "-p", pid("main"), "-r", pid("vrrp"), "-c", pid("check"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hasVIP := func(node string) bool {
		return strings.Contains(run(t, l, node, "ip", "-o", "addr", "show", "dev", "eth0"), " "+vip.String()+"/32 ")
	}
	waitUntil := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s after %v", what, timeout)
			}
		}
	}
	p1 := start("dir1", 150)
	start("dir2", 100)
	waitUntil("dir1 holding the VIP", 30*time.Second, func() bool { return hasVIP("dir1") && !hasVIP("dir2") })
	cs, err := l.OpenConns(y.Client.Name, netip.AddrPortFrom(vip, 80), keepalivedConns, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	if sync {
		waitUntil("dir2's IPVS holding every connection", 30*time.Second, func() bool {
			table := connTable(t, l, "dir2")
			return !slices.ContainsFunc(cs.Results(), func(r lab.ConnResult) bool {
				return !slices.ContainsFunc(table, func(e ipvsConn) bool { return e.Client == r.Local })
			})
		})
	}
	time.Sleep(time.Second)
	before := cs.Results()
	if err := l.Crash("dir1", p1); err != nil {
		t.Fatal(err)
	}
	waitUntil("dir2 holding the VIP", 30*time.Second, func() bool { return hasVIP("dir2") })
	if err := cs.WaitPast(before, 2, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, r := range cs.Stop() {
		total++
		stall = max(stall, r.MaxStall)
		if r.Err == nil {
			kept++
		}
	}
	return kept, total, stall
}
