package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/api"
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

// lvsList is `tandem lvs list` against d, with flags.
func lvsList(t *testing.T, l *lab.Lab, d *daemon, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, d.node, tandemBin, append([]string{"lvs", "list", "--socket", d.socket}, flags...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem lvs list %v: %v\n%s", flags, err, out)
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

// seed004Pair builds seed004's layout with nginx on the real servers
// (VIP on lo) and its two directors running unmodified on data plane dp,
// and returns once dir1 is MASTER and dir2 BACKUP.
func seed004Pair(t *testing.T, dp string) (l *lab.Lab, vip netip.Addr, master, backup *daemon) {
	t.Helper()
	y := lab.Seed004()
	l = lab.NewT(t, y.Spec())
	flags := onPlane(t, l, y, dp)
	vip = y.VIPs[0]
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	master = startTandem(t, l, "dir1", seedConf(t, "seed004-lvs-dr-master.conf"), flags...)
	backup = startTandem(t, l, "dir2", seedConf(t, "seed004-lvs-dr-backup.conf"), flags...)
	waitFor(t, "dir1 MASTER", 10*time.Second, func() bool {
		return master.state("VI_1") == "MASTER" && backup.state("VI_1") == "BACKUP"
	})
	return l, vip, master, backup
}

// TestSeed004DR runs seed004's director pair unmodified (rr DR, VIP
// 172.16.0.30/24 floating by VRRP) on each DR data plane: the client's
// connections reach both real servers through the master's DR forwarding,
// the real servers answering directly, and the master counts each
// server's packets in step with the requests it answered.
func TestSeed004DR(t *testing.T) { forPlanes(t, seed004DR) }

func seed004DR(t *testing.T, dp string) {
	l, vip, m, _ := seed004Pair(t, dp)
	const vs = "172.16.0.30:80"
	waitFor(t, "both real servers healthy", 15*time.Second, func() bool {
		return m.healthy(vs, "172.16.0.31") && m.healthy(vs, "172.16.0.32")
	})
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	before := m.packets(t)
	got := spread(l, target, 60)
	t.Logf("rr DR (flow hash), 60 connections: %v", got)
	checkCounted(t, m, before, got, map[string]string{"rs1": "172.16.0.31:80", "rs2": "172.16.0.32:80"})
	// DR has no conntrack: flows are hashed, so the split is even only on
	// average; each server must still get a fair share.
	if got[""] > 0 || got["rs1"] < 15 || got["rs2"] < 15 {
		t.Errorf("DR over two real servers: %v, want both well used and no failure", got)
	}
	if list := lvsList(t, l, m); !strings.Contains(list, "Route") {
		t.Errorf("tandem lvs list shows no Route (DR) destinations:\n%s", list)
	}
}

// nsConn is an nftables connection to node's network namespace.
func nsConn(t *testing.T, l *lab.Lab, node string) *nftables.Conn {
	t.Helper()
	h, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName(node)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countSYNs installs in node a counter of the TCP SYNs to vip:80 that
// its IP stack receives (frames addressed to it; a flooded frame for
// another host is dropped before prerouting) and returns a reader.
func countSYNs(t *testing.T, l *lab.Lab, node string, vip netip.Addr) func() uint64 {
	t.Helper()
	c := nsConn(t, l, node)
	tb := c.AddTable(&nftables.Table{Name: "e2e_count", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "pre", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	cnt := c.AddObj(&nftables.CounterObj{Table: tb, Name: "syn"}).(*nftables.CounterObj)
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 80}},
		// SYN set, ACK clear: the first packet of a connection.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: "syn"},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("SYN counter in %s: %v", node, err)
	}
	return func() uint64 {
		t.Helper()
		o, err := c.GetObject(cnt)
		if err != nil {
			t.Fatalf("read the SYN counter of %s: %v", node, err)
		}
		return o.(*nftables.CounterObj).Packets
	}
}

// TestDRFloodingSwitch runs seed004's DR pair behind a switch that floods
// every frame (a bridge with ageing_time 0, what any switch does for a
// MAC it has not learned yet or has aged out). Both directors' ingress
// hooks see the client's SYN to the master's MAC, and each sees what the
// other forwards to the real servers' MACs. Only the master may forward,
// and only frames addressed to it: one request puts exactly one SYN on the
// real servers, and the backup forwards nothing. On each DR data plane.
func TestDRFloodingSwitch(t *testing.T) { forPlanes(t, drFloodingSwitch) }

func drFloodingSwitch(t *testing.T, dp string) {
	l, vip, m, b := seed004Pair(t, dp)
	const vs = "172.16.0.30:80"
	for _, d := range []*daemon{m, b} {
		waitFor(t, d.node+": both real servers healthy", 15*time.Second, func() bool {
			return d.healthy(vs, "172.16.0.31") && d.healthy(vs, "172.16.0.32")
		})
		waitFor(t, d.node+": both rules in the data plane", 5*time.Second, func() bool {
			list := lvsList(t, l, d)
			return strings.Contains(list, "-> 172.16.0.31:80") && strings.Contains(list, "-> 172.16.0.32:80")
		})
	}
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })

	ipBin, err := lab.IPPath()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, ipBin, "-n", l.Name(), "link", "set", "br0", "type", "bridge", "ageing_time", "0").CombinedOutput(); err != nil {
		t.Fatalf("bridge ageing_time 0: %v: %s", err, out)
	}
	syns := map[string]func() uint64{"rs1": countSYNs(t, l, "rs1", vip), "rs2": countSYNs(t, l, "rs2", vip)}
	before := forwarded(t, b)
	if before != 0 {
		t.Errorf("the backup forwarded %d packets before the test's request", before)
	}

	got, err := get(l, target)
	if err != nil {
		t.Fatalf("request through the VIP: %v", err)
	}
	// Copies forwarded in a loop (before the fix, the directors bounced a
	// flooded SYN between them until its TTL ran out) arrive within
	// microseconds; a short wait lets any straggler be counted.
	time.Sleep(200 * time.Millisecond)
	n1, n2 := syns["rs1"](), syns["rs2"]()
	t.Logf("one request, answered by %s; SYNs at rs1 %d, rs2 %d; packets forwarded by dir1 %d, by dir2 %d",
		got, n1, n2, forwarded(t, m), forwarded(t, b))
	if n1+n2 != 1 {
		t.Errorf("one request put %d SYNs on the real servers (rs1 %d, rs2 %d), want exactly 1", n1+n2, n1, n2)
	}
	if n := forwarded(t, b); n != 0 {
		t.Errorf("the backup, which does not hold the VIP, forwarded %d packets", n)
	}
}

// drPlanes are the data planes the DR seed scenarios run on: auto (which
// takes nftables on a kernel without IPVS, as here) and XDP.
var drPlanes = []string{"auto", "xdp"}

// forPlanes runs test once per DR data plane, as subtests named after it.
func forPlanes(t *testing.T, test func(t *testing.T, dp string)) {
	for _, dp := range drPlanes {
		t.Run(dp, func(t *testing.T) { test(t, dp) })
	}
}

// onPlane readies lab l, of layout y, for data plane dp and returns the
// flags that make tandem run use it. XDP: the hosts and directors are
// prepared by lab.XDPReadyT, and the maps are pinned on a BPF file system
// of the test's own (--bpf-dir; none is mounted on the host).
func onPlane(t *testing.T, l *lab.Lab, y lab.Layout, dp string) []string {
	t.Helper()
	if dp != "xdp" {
		return nil
	}
	hosts := []string{y.Client.Name}
	for _, r := range y.Reals {
		hosts = append(hosts, r.Name)
	}
	var dirs []string
	for _, d := range y.Directors {
		dirs = append(dirs, d.Name)
	}
	l.XDPReadyT(t, hosts, dirs, []string{lab.SwitchLAN})
	return []string{"--dataplane", dp, "--bpf-dir", lab.BPFFST(t)}
}

// table is d's live data-plane table (what `tandem lvs list` prints).
func (d *daemon) table(t *testing.T) api.Table {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tb, err := api.FetchTable(ctx, d.socket)
	if err != nil {
		t.Fatalf("%s's table: %v", d.node, err)
	}
	return tb
}

// packets is the packets (and bytes) d's data plane counted per real
// server, by address.
func (d *daemon) packets(t *testing.T) map[string][2]uint64 {
	t.Helper()
	out := map[string][2]uint64{}
	for _, s := range d.table(t).Services {
		for _, r := range s.Dests {
			c := out[r.Address]
			out[r.Address] = [2]uint64{c[0] + r.Packets, c[1] + r.Bytes}
		}
	}
	return out
}

// checkCounted checks that the packets d counted per real server between
// before and now follow got, the requests each answered (by name, addr
// giving each name's address): every request of the client (connect,
// send, read to the end, close) is 4 to 10 packets from it, of 40 bytes
// at least.
func checkCounted(t *testing.T, d *daemon, before map[string][2]uint64, got map[string]int, addr map[string]string) {
	t.Helper()
	after := d.packets(t)
	for name, a := range addr {
		pk, by := after[a][0]-before[a][0], after[a][1]-before[a][1]
		n := uint64(got[name])
		t.Logf("%s (%s): %d requests, %d packets, %d bytes counted", name, a, n, pk, by)
		if pk < 4*n || pk > 10*n || by < 40*pk {
			t.Errorf("%s: %d packets, %d bytes counted for %d requests; want 4 to 10 packets of 40 bytes or more per request", name, pk, by, n)
		}
	}
}

// xdpPins lists what tandem pinned under a --bpf-dir: its directories
// per network namespace and what they hold (a BPF file system has files
// of its own at the top, maps.debug and progs.debug).
func xdpPins(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if rel := strings.TrimPrefix(p, root); err == nil && strings.HasPrefix(rel, "/xdp-") {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// xdpAttached names node's interfaces that run an XDP program.
func xdpAttached(t *testing.T, l *lab.Lab, node string) []string {
	t.Helper()
	h, err := netlink.NewHandleAt(l.NSHandle(t, node))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ln := range links {
		if x := ln.Attrs().Xdp; x != nil && x.Attached {
			out = append(out, ln.Attrs().Name)
		}
	}
	return out
}

// TestXDPLifecycle runs seed004's master alone on the XDP data plane: the
// live table, /metrics and /status.json show the service and per-server
// packets and bytes that follow the requests' split; a SIGKILLed tandem
// leaves forwarding in place (requests go on succeeding while it is down),
// and the one started next adopts the pinned maps and links, without a
// failed request and without changing the data plane (0 operations: its
// reconcile with the same configuration finds nothing to do, nor does a
// reload of the same file); SIGTERM then detaches the program and removes
// every pin. After one more crash, a tandem on nftables removes what the
// XDP one left.
func TestXDPLifecycle(t *testing.T) {
	y := lab.Seed004()
	l := lab.NewT(t, y.Spec())
	flags := onPlane(t, l, y, "xdp")
	root := flags[len(flags)-1]
	vip := y.VIPs[0]
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	conf := seedConf(t, "seed004-lvs-dr-master.conf")
	args := append([]string{"--http", statusAddr}, flags...)
	d := startTandem(t, l, "dir1", conf, args...)
	const vs = "172.16.0.30:80"
	addr := map[string]string{"rs1": "172.16.0.31:80", "rs2": "172.16.0.32:80"}
	waitFor(t, "dir1 MASTER, both real servers healthy", 15*time.Second, func() bool {
		return d.state("VI_1") == "MASTER" && d.healthy(vs, "172.16.0.31") && d.healthy(vs, "172.16.0.32")
	})
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "both real servers in the data plane", 5*time.Second, func() bool {
		c := d.packets(t)
		_, ok1 := c[addr["rs1"]]
		_, ok2 := c[addr["rs2"]]
		return ok1 && ok2
	})
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	if a := xdpAttached(t, l, "dir1"); len(a) != 1 || a[0] != y.Iface {
		t.Errorf("XDP attached to %v, want [%s]", a, y.Iface)
	}

	before := d.packets(t)
	got := spread(l, target, 40)
	if got[""] > 0 || got["rs1"] == 0 || got["rs2"] == 0 {
		t.Errorf("rr over two real servers: %v, want both used and no failure", got)
	}
	checkCounted(t, d, before, got, addr)
	// /metrics has the table's counters (a straggling packet may be
	// counted between the reads).
	low := d.packets(t)
	metrics, err := httpIn(l, "dir1", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	high := d.packets(t)
	for _, rs := range []string{"rs1", "rs2"} {
		for i, m := range []string{"packets", "bytes"} {
			name := fmt.Sprintf(`tandem_dataplane_%s_total{protocol="TCP",real_server="%s",service="%s"} `, m, addr[rs], vs)
			_, rest, _ := strings.Cut(metrics, "\n"+name)
			var v uint64
			if _, err := fmt.Sscan(rest, &v); err != nil || v < low[addr[rs]][i] || v > high[addr[rs]][i] || v == 0 {
				t.Errorf("/metrics: %s%d (%v), want the table's %d", name, v, err, high[addr[rs]][i])
			}
		}
	}
	doc, err := httpIn(l, "dir1", "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(doc), &st); err != nil || st.Dataplane != "xdp" || len(st.VirtualServers) != 1 || st.VirtualServers[0].Name != vs {
		t.Errorf("/status.json: %v: data plane %q, virtual servers %+v", err, st.Dataplane, st.VirtualServers)
	}
	stats := lvsList(t, l, d, "--stats")
	for _, want := range []string{"Tandem data plane: xdp", "TCP  " + vs, "-> " + addr["rs1"], "-> " + addr["rs2"]} {
		if !strings.Contains(stats, want) {
			t.Errorf("tandem lvs list --stats lacks %q:\n%s", want, stats)
		}
	}

	// A crash: the program, its maps and the VIP stay; requests go on.
	load := l.HTTPLoad("client", target, 50*time.Millisecond, 2*time.Second)
	if err := d.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	pinned := xdpPins(t, root)
	if !strings.Contains(strings.Join(pinned, " "), "/link_") {
		t.Errorf("pinned after the kill: %v, want the maps and the link", pinned)
	}
	if got := spread(l, target, 20); got[""] > 0 {
		t.Errorf("with tandem killed: %v, want every request served", got)
	}
	// The next one adopts them.
	d = startTandem(t, l, "dir1", conf, args...)
	waitFor(t, "dir1 MASTER again, both real servers healthy", 15*time.Second, func() bool {
		return d.state("VI_1") == "MASTER" && d.healthy(vs, "172.16.0.31") && d.healthy(vs, "172.16.0.32")
	})
	if got := spread(l, target, 20); got[""] > 0 || got["rs1"] == 0 || got["rs2"] == 0 {
		t.Errorf("after the restart: %v, want both used and no failure", got)
	}
	ok, failed := load.Stop()
	t.Logf("requests through the kill and restart: %d served, %d failed", ok, len(failed))
	if len(failed) > 0 {
		t.Errorf("requests failed through the kill and restart: %v", failed)
	}
	st, err = d.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.DataplaneOps != 0 {
		t.Errorf("the restarted tandem changed the adopted data plane: %d operations, want 0", st.DataplaneOps)
	}
	if p := xdpPins(t, root); strings.Join(p, " ") != strings.Join(pinned, " ") {
		t.Errorf("pins after the restart %v, before %v", p, pinned)
	}
	// A reload of the same file changes nothing either.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := api.Reload(ctx, d.socket); err != nil {
		t.Fatal(err)
	}
	if st, err = d.status(); err != nil || st.DataplaneOps != 0 {
		t.Errorf("after a reload of the same file: %d data-plane operations (%v), want 0", st.DataplaneOps, err)
	}

	// A stop: nothing attached, nothing pinned.
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.Wait(); err != nil {
		t.Errorf("tandem stopped by SIGTERM: %v\n%s", err, d.proc.Output())
	}
	if a := xdpAttached(t, l, "dir1"); len(a) != 0 {
		t.Errorf("after SIGTERM, XDP attached to %v", a)
	}
	if p := xdpPins(t, root); len(p) != 0 {
		t.Errorf("after SIGTERM, pinned: %v", p)
	}

	// A crash, then a Tandem on another data plane: it removes what the
	// crashed one left, which would go on forwarding ahead of it by stale
	// tables.
	d = startTandem(t, l, "dir1", conf, args...)
	waitFor(t, "dir1 on XDP again", 15*time.Second, func() bool { return len(xdpPins(t, root)) > 0 && len(xdpAttached(t, l, "dir1")) == 1 })
	if err := d.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	d = startTandem(t, l, "dir1", conf, "--dataplane", "nft", "--bpf-dir", root)
	waitFor(t, "dir1 MASTER on nftables, both real servers healthy", 15*time.Second, func() bool {
		return d.state("VI_1") == "MASTER" && d.healthy(vs, "172.16.0.31") && d.healthy(vs, "172.16.0.32")
	})
	// The kernel lets go of an unpinned link from a work queue.
	waitFor(t, "the crashed run's XDP program gone", 2*time.Second, func() bool { return len(xdpAttached(t, l, "dir1")) == 0 })
	if p := xdpPins(t, root); len(p) != 0 {
		t.Errorf("on nftables after a crash on XDP, still pinned: %v", p)
	}
	if !strings.Contains(d.proc.Output(), "removed the XDP data plane a previous run left") {
		t.Errorf("tandem on nftables did not say it removed the XDP leftovers:\n%s", d.proc.Output())
	}
	if got := spread(l, target, 20); got[""] > 0 || got["rs1"] == 0 || got["rs2"] == 0 {
		t.Errorf("on nftables after the XDP leftovers went: %v, want both used and no failure", got)
	}
}
