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

// ipvsMethod is a forwarding method of TestIPVSConnsKept: its lab,
// and what differs in the directors' keepalived configurations.
type ipvsMethod struct {
	name   string
	spec   lab.Spec
	client string
	vip    netip.AddrPort
	reals  []lab.Host
	dr     bool   // the real servers carry the VIP on lo
	syncIf string // the sync daemon's interface
	vips   string // virtual_ipaddress's lines
}

// ipvsMethods are IPVS DR on seed000's layout and IPVS NAT on
// lab.NATPairSpec's (the inside gateway floating with the VIP, the sync
// daemon on the directors' own link), as bench/conns runs Tandem.
func ipvsMethods() []ipvsMethod {
	y := lab.Seed000()
	vip := netip.AddrPortFrom(y.VIPs[0], 80)
	return []ipvsMethod{
		{name: "DR", spec: y.Spec(), client: y.Client.Name, vip: vip, reals: y.Reals, dr: true, syncIf: "eth0",
			vips: fmt.Sprintf("    %s/32\n", vip.Addr())},
		{name: "NAT", spec: lab.NATPairSpec(), client: lab.NATPairClient.Name, vip: lab.NATPairVIP, reals: lab.NATPairReals, syncIf: "eth2",
			vips: fmt.Sprintf("    %s/24 dev eth0\n    %s/24 dev eth1\n", lab.NATPairVIP.Addr(), lab.NATPairGW)},
	}
}

// conf is a director of TestIPVSConnsKept, in keepalived's syntax, which
// Tandem reads too: VRRPv3 at advert_int 1 (not bench/conns' 0.1: the
// emulated guest, on a loaded host, misses 0.1 s adverts and fails over
// falsely) for the VIP and an IPVS
// service over the real servers (no checker: they count as up), with, if
// sync is set, lvs_sync_daemon following the instance.
func (m ipvsMethod) conf(node string, prio int, sync bool) string {
	syncd := ""
	if sync {
		syncd = fmt.Sprintf("  lvs_sync_daemon %s VI_1 id 7\n", m.syncIf)
	}
	var rs strings.Builder
	for _, r := range m.reals {
		fmt.Fprintf(&rs, "  real_server %s %d {\n    weight 1\n  }\n", r.Addr, m.vip.Port())
	}
	kind := map[bool]string{true: "DR", false: "NAT"}[m.dr]
	return fmt.Sprintf(`global_defs {
  router_id %s
%s}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  version 3
  priority %d
  advert_int 1
  virtual_ipaddress {
%s  }
}
virtual_server %s %d {
  lb_algo rr
  lb_kind %s
  protocol TCP
%s}
`, node, syncd, prio, m.vips, m.vip.Addr(), m.vip.Port(), kind, rs.String())
}

// failoverConns is how many connections TestIPVSConnsKept keeps through
// the VIP, each sending a request every 50 ms: the measure.
const failoverConns = 200

// ipvsDaemon runs a director of TestIPVSConnsKept.
type ipvsDaemon struct {
	name string
	env  string // the variable test/vm sets to its binary
	// command runs configuration conf in node with the binary bin,
	// with dir for its files.
	command func(bin, conf, dir, node string) []string
}

var ipvsDaemons = []ipvsDaemon{
	{"keepalived", "KEEPALIVED_BIN", func(bin, conf, dir, node string) []string {
		// -l: keepalived logs to the console, which test/vm prints when
		// the guest fails.
		pid := func(s string) string { return filepath.Join(dir, node+"."+s+".pid") }
		return []string{bin, "-n", "-l", "-D", "-f", conf, "-p", pid("main"), "-r", pid("vrrp"), "-c", pid("check")}
	}},
	{"tandem", "TANDEM_BIN", func(bin, conf, dir, node string) []string {
		return []string{bin, "run", "-f", conf, "--socket", filepath.Join(dir, node+".sock"), "--dataplane", "ipvs", "--log-format", "text"}
	}},
}

// TestIPVSConnsKept is the "connections kept" row for the kernel's
// IPVS, DR and NAT, run by keepalived (the baseline Tandem's bench/conns
// is compared with) and by Tandem: two directors, long-lived connections
// through the VIP, the master crashed (its switch ports cut, its daemon
// killed). With lvs_sync_daemon the backup's IPVS has the connections and
// carries them on; without it (keepalived's control) its IPVS does not
// schedule their next segments (not SYNs) and its stack, holding the VIP,
// resets them. It logs "DAEMON+IPVS DR|NAT failover (...): K of N
// connections kept, longest stall D, ..."; the control must lose
// connections, or the harness could not see them lost.
func TestIPVSConnsKept(t *testing.T) {
	requireIPVS(t)
	for _, d := range ipvsDaemons {
		bin := os.Getenv(d.env)
		for _, m := range ipvsMethods() {
			for _, sync := range []bool{true, false} {
				if !sync && d.name != "keepalived" {
					continue // the control shows the kernel's behaviour once
				}
				name := map[bool]string{true: "lvs_sync_daemon", false: "control without lvs_sync_daemon"}[sync]
				t.Run(d.name+" "+m.name+" "+name, func(t *testing.T) {
					if bin == "" {
						t.Skipf("%s is not set (test/vm sets it to the %s binary in the guest)", d.env, d.name)
					}
					command := func(conf, dir, node string) []string { return d.command(bin, conf, dir, node) }
					kept, total, stall, takeover := ipvsFailover(t, command, m, sync)
					t.Logf("%s+IPVS %s failover (%s): %d of %d connections kept, longest stall %v, backup holding the VIP after %v",
						d.name, m.name, name, kept, total, stall.Round(time.Millisecond), takeover.Round(time.Millisecond))
					if !sync && kept == total {
						t.Errorf("without lvs_sync_daemon all %d connections were kept: the test cannot see connections lost", total)
					}
				})
			}
		}
	}
}

// ipvsFailover does one run of TestIPVSConnsKept, the directors run by
// command; takeover is from the crash to dir2 showing the VIP (polled
// with ip, every 100 ms).
func ipvsFailover(t *testing.T, command func(conf, dir, node string) []string, m ipvsMethod, sync bool) (kept, total int, stall, takeover time.Duration) {
	l := lab.NewT(t, m.spec)
	for _, r := range m.reals {
		if m.dr {
			run(t, l, r.Name, "ip", "addr", "add", m.vip.Addr().String()+"/32", "dev", "lo")
		}
		stop, err := l.Serve(r.Name, fmt.Sprintf(":%d", m.vip.Port()), lab.NameEcho(r.Name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	dir := t.TempDir()
	start := func(node string, prio int) *lab.Proc {
		conf := filepath.Join(dir, node+".conf")
		if err := os.WriteFile(conf, []byte(m.conf(node, prio, sync)), 0o644); err != nil {
			t.Fatal(err)
		}
		args := command(conf, dir, node)
		p, err := l.Start(node, args[0], args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s's output:\n%s", node, p.Output())
			}
		})
		return p
	}
	hasVIP := func(node string) bool {
		return strings.Contains(run(t, l, node, "ip", "-o", "addr", "show", "dev", "eth0"), " "+m.vip.Addr().String()+"/")
	}
	waitUntil := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s after %v", what, timeout)
			}
		}
	}
	// dir2 starts once dir1 is master: started together, both time out
	// waiting for adverts in the emulated guest and become master, and
	// keepalived's NAT pair with lvs_sync_daemon once did not settle from
	// there within 30 s. Even so a slow start can make dir2 master for a
	// moment, its gratuitous ARPs leaving the client's neighbour entry
	// for the VIP on dir2 (keepalived's master, hearing dir2's lower
	// priority, does not send its own by default), so the client forgets
	// it once dir1 holds the VIP alone.
	p1 := start("dir1", 150)
	waitUntil("dir1 holding the VIP", 30*time.Second, func() bool { return hasVIP("dir1") })
	start("dir2", 100)
	waitUntil("dir1 holding the VIP alone", 30*time.Second, func() bool { return hasVIP("dir1") && !hasVIP("dir2") })
	run(t, l, m.client, "ip", "neigh", "flush", "all")
	if sync {
		// dir2's backup sync daemon must be up before the connections
		// open: the master sends a connection's state once it has seen
		// 3 of its packets, then only every 50.
		s2 := newSyncerIn(t, l, "dir2")
		waitUntil("dir2's backup sync daemon running", 30*time.Second, func() bool {
			ds, err := s2.Daemons()
			return err == nil && slices.ContainsFunc(ds, func(d SyncDaemon) bool { return d.State == SyncBackup })
		})
	}
	cs, err := l.OpenConns(m.client, m.vip, failoverConns, 50*time.Millisecond)
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
	crashed := time.Now()
	if err := l.Crash("dir1", p1); err != nil {
		t.Fatal(err)
	}
	waitUntil("dir2 holding the VIP", 30*time.Second, func() bool { return hasVIP("dir2") })
	takeover = time.Since(crashed)
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
	return kept, total, stall, takeover
}
