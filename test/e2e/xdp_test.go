package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/api"
	"tandem/internal/lab"
)

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
// reload of the same file); SIGTERM then
// detaches the program and removes every pin.
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
	metrics, err := httpIn(l, "dir1", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	now := d.packets(t)
	for _, rs := range []string{"rs1", "rs2"} {
		for i, m := range []string{"packets", "bytes"} {
			want := fmt.Sprintf(`tandem_dataplane_%s_total{protocol="TCP",real_server="%s",service="%s"} %d`, m, addr[rs], vs, now[addr[rs]][i])
			if !strings.Contains(metrics, want+"\n") {
				t.Errorf("/metrics lacks %q", want)
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
}
