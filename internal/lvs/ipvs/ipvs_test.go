package ipvs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/ipvs/netmask"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// The tests below need kernel IPVS and root. This machine's kernel and CI's
// have no IPVS, so they skip there with New's one-line reason; test/vm runs
// them inside a Debian kernel under qemu. Every test works in namespaces of
// its own lab, never in the caller's: IPVS state is per network namespace.

var cmpOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// requireIPVS skips t unless kernel IPVS is there and the test may build
// labs.
func requireIPVS(t *testing.T) {
	t.Helper()
	k, err := New(WithStateFile(""))
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	lab.RequireRoot(t)
	if err != nil {
		t.Fatal(err)
	}
	k.closeConn()
}

// newKernel opens a Kernel in node's namespace (the netlink socket stays in
// the namespace it was created in) with state in stateFile.
func newKernel(t *testing.T, l *lab.Lab, node, stateFile string) *Kernel {
	t.Helper()
	var k *Kernel
	err := l.Do(node, func() (err error) {
		k, err = New(WithStateFile(stateFile))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.closeConn)
	return k
}

func mustDesired(t *testing.T, vss ...lvs.VirtualServer) *lvs.Desired {
	t.Helper()
	d, err := lvs.NewDesired(vss...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func reconcile(t *testing.T, r *lvs.Reconciler, d *lvs.Desired) lvs.Report {
	t.Helper()
	rep, err := r.Reconcile(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// oneNode is a lab with a single director; enough to program IPVS.
func oneNode(t *testing.T) *lab.Lab {
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.1.254/24"), netip.MustParsePrefix("2001:db8::fe/64")}}}}}})
}

// run runs a command inside node and returns its output.
func run(t *testing.T, l *lab.Lab, node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, node, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), node, err, out)
	}
	return string(out)
}

// kernelState reads k back as virtual servers, keyed by service.
func kernelState(t *testing.T, k *Kernel) map[lvs.ServiceKey]lvs.VirtualServer {
	t.Helper()
	svcs, err := k.Services()
	if err != nil {
		t.Fatal(err)
	}
	out := map[lvs.ServiceKey]lvs.VirtualServer{}
	for _, s := range svcs {
		ds, err := k.Dests(s.Key())
		if err != nil {
			t.Fatal(err)
		}
		out[s.Key()] = lvs.VirtualServer{Service: s, Dests: ds}
	}
	return out
}

// wantState is d as the kernel should report it: Service.Method is not a
// kernel attribute (see lvs.Service), so it is cleared.
func wantState(d *lvs.Desired) map[lvs.ServiceKey]lvs.VirtualServer {
	out := map[lvs.ServiceKey]lvs.VirtualServer{}
	for _, k := range d.Keys() {
		vs, _ := d.Lookup(k)
		vs.Service.Method = lvs.MethodUnset
		out[k] = vs
	}
	return out
}

// checkState compares d with what the backend reads back and with what
// Debian's ipvsadm prints, which reads the kernel independently.
func checkState(t *testing.T, l *lab.Lab, k *Kernel, d *lvs.Desired) {
	t.Helper()
	want := wantState(d)
	if diff := cmp.Diff(want, kernelState(t, k), cmpOpts); diff != "" {
		t.Errorf("backend reads back (-want +got):\n%s", diff)
	}
	out := run(t, l, "dir", "ipvsadm", "-Ln")
	thresholds := run(t, l, "dir", "ipvsadm", "-Ln", "--thresholds")
	tunnels := run(t, l, "dir", "ipvsadm", "-Ln", "--tun-info")
	got, err := parseIPVSADM(out, thresholds, tunnels)
	if err != nil {
		t.Fatalf("%v\n%s\n%s\n%s", err, out, thresholds, tunnels)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("ipvsadm -Ln shows (-want +got):\n%s\n%s", diff, out)
	}
}

// testServices covers every attribute the backend programs: protocols,
// families, firewall marks, all-ports services, forwarding methods (mixed
// families through a tunnel; IPIP and GUE with a port and a checksum
// option), inhibited servers, thresholds, persistence
// with a granularity, and scheduler flags.
func testServices() []lvs.VirtualServer {
	a, ap := netip.MustParseAddr, netip.MustParseAddrPort
	return []lvs.VirtualServer{
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: a("10.0.0.1"), Port: 80},
			Scheduler: lvs.WeightedRoundRobin, PersistenceTimeout: 300, PersistenceMask: lvs.PrefixMask(lvs.IPv4, 24)},
			Dests: []lvs.Dest{{Addr: ap("10.0.1.1:8080"), Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
				{Addr: ap("10.0.1.2:8080"), Weight: 0}}},
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.UDP, VIP: a("2001:db8::1"), Port: 53},
			Scheduler: lvs.SourceHash, Method: lvs.DR, Flags: lvs.FlagSHFallback | lvs.FlagSHPort | lvs.FlagOnePacket},
			Dests: []lvs.Dest{{Addr: ap("[2001:db8::10]:53"), Weight: 1}, {Addr: ap("[2001:db8::11]:53"), Weight: 2}}},
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.SCTP, VIP: a("10.0.0.2"), Port: 3868},
			Scheduler: lvs.MaglevHash, Method: lvs.TUN, Flags: lvs.FlagMHFallback | lvs.FlagMHPort},
			Dests: []lvs.Dest{{Addr: ap("10.0.2.1:3868"), Weight: 1, Tunnel: lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelRemCsum}},
				{Addr: ap("[2001:db8::20]:3868"), Weight: 1}}},
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 42},
			Scheduler: lvs.RoundRobin, Method: lvs.DR, PersistenceTimeout: 60},
			Dests: []lvs.Dest{{Addr: ap("10.0.1.1:0"), Weight: 1}}},
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, FWMark: 43},
			Scheduler: lvs.LeastConn, PersistenceTimeout: 120, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 64)},
			Dests: []lvs.Dest{{Addr: ap("[2001:db8::10]:80"), Weight: 5}}},
		{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: a("10.0.0.3"), Port: 0},
			Scheduler: lvs.WeightedLeastConn, Method: lvs.DR, PersistenceTimeout: 600},
			Dests: []lvs.Dest{{Addr: ap("10.0.1.3:0"), Weight: 1}}},
	}
}

func TestReconcileAndReadBack(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	k := newKernel(t, l, "dir", filepath.Join(t.TempDir(), "state"))
	r := lvs.NewReconciler(k, k.Owns)

	vss := testServices()
	want := mustDesired(t, vss...)
	rep := reconcile(t, r, want)
	if n := rep.Count(lvs.AddService); n != len(vss) {
		t.Errorf("first reconcile added %d services, want %d: %v", n, len(vss), rep.Ops)
	}
	checkState(t, l, k, want)
	for _, s := range vss {
		if !k.Owns(mustDesired(t, s).Keys()[0]) {
			t.Errorf("%v is not recorded as Tandem's", s.Service.ServiceKey)
		}
	}

	if rep := reconcile(t, r, want); len(rep.Ops) != 0 {
		t.Errorf("second reconcile sent %v", rep.Ops)
	}

	// Change everything that can change in place, and drop a service.
	vss[0].Service.Scheduler, vss[0].Service.PersistenceTimeout, vss[0].Service.PersistenceMask = lvs.LeastConn, 0, netip.Addr{}
	vss[0].Dests[0].Weight = 7
	vss[0].Dests[1] = lvs.Dest{Addr: netip.MustParseAddrPort("10.0.1.9:8080"), Weight: 1, Method: lvs.DR}
	vss[1].Service.Flags = lvs.FlagSHPort
	vss[1].Dests[1].Weight = 0
	vss[2].Dests[0].Tunnel = lvs.Tunnel{Type: lvs.TunnelGRE, Csum: lvs.TunnelCsumOn} // GUE to GRE: in place
	vss = vss[:len(vss)-1]
	want = mustDesired(t, vss...)
	rep = reconcile(t, r, want)
	t.Logf("update: %v", rep.Ops)
	for kind, n := range map[lvs.OpKind]int{lvs.UpdateService: 2, lvs.UpdateDest: 3, lvs.AddDest: 1, lvs.DelDest: 1, lvs.DelService: 1, lvs.AddService: 0} {
		if got := rep.Count(kind); got != n {
			t.Errorf("update sent %d %v, want %d", got, kind, n)
		}
	}
	checkState(t, l, k, want)
	if rep := reconcile(t, r, want); len(rep.Ops) != 0 {
		t.Errorf("reconcile after the update sent %v", rep.Ops)
	}

	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if out := run(t, l, "dir", "ipvsadm", "-Sn"); out != "" {
		t.Errorf("after Close, ipvsadm -Sn shows:\n%s", out)
	}
}

// TestForeignServicesUntouched checks ownership: services made with
// ipvsadm are reported and left alone, also by a process restarted after a
// crash, which removes exactly the services its predecessor made.
func TestForeignServicesUntouched(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	state := filepath.Join(t.TempDir(), "run", "tandem", "ipvs-services")
	run(t, l, "dir", "ipvsadm", "-A", "-t", "10.0.0.9:80", "-s", "wlc")
	run(t, l, "dir", "ipvsadm", "-a", "-t", "10.0.0.9:80", "-r", "10.0.1.1:80", "-m", "-w", "4")
	run(t, l, "dir", "ipvsadm", "-A", "-f", "7", "-s", "rr")
	handMade := run(t, l, "dir", "ipvsadm", "-Sn")

	vss := testServices()
	k1 := newKernel(t, l, "dir", state)
	rep := reconcile(t, lvs.NewReconciler(k1, k1.Owns), mustDesired(t, vss...))
	if len(rep.Foreign) != 2 {
		t.Errorf("foreign services %v, want the two made by hand", rep.Foreign)
	}
	// The process dies without cleaning up; its successor wants only the
	// first service.
	k1.closeConn()
	k2 := newKernel(t, l, "dir", state)
	r2 := lvs.NewReconciler(k2, k2.Owns)
	want := mustDesired(t, vss[0])
	rep = reconcile(t, r2, want)
	if n := rep.Count(lvs.DelService); n != len(vss)-1 || len(rep.Ops) != n {
		t.Errorf("restart sent %v, want %d service deletions only", rep.Ops, len(vss)-1)
	}
	checkAlone := func(when string) {
		t.Helper()
		out := run(t, l, "dir", "ipvsadm", "-Sn")
		for _, line := range strings.Split(strings.TrimSpace(handMade), "\n") {
			if !strings.Contains(out, line+"\n") {
				t.Errorf("%s: hand-made %q is gone from:\n%s", when, line, out)
			}
		}
	}
	checkAlone("after the restart")

	// Reconciling the empty state, and closing, remove only ours.
	rep = reconcile(t, r2, nil)
	if n := rep.Count(lvs.DelService); n != 1 || len(rep.Ops) != 1 {
		t.Errorf("empty state sent %v, want one service deletion", rep.Ops)
	}
	checkAlone("after reconciling nothing")
	reconcile(t, r2, want)
	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	checkAlone("after Close")
	if got := kernelState(t, newKernel(t, l, "dir", state)); len(got) != 2 {
		t.Errorf("after Close: %v, want the two hand-made services", got)
	}
}

// TestSchedulers creates a service with every scheduler keepalived knows.
// twos (Linux 6.2) may be missing: then the error must name its module.
func TestSchedulers(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	k := newKernel(t, l, "dir", "")
	all := []lvs.Scheduler{lvs.RoundRobin, lvs.WeightedRoundRobin, lvs.LeastConn, lvs.WeightedLeastConn,
		lvs.LocalityLeastConn, lvs.LocalityLeastConnReplicated, lvs.DestinationHash, lvs.SourceHash,
		lvs.ShortestExpectedDelay, lvs.NeverQueue, lvs.WeightedFailover, lvs.WeightedOverflow, lvs.MaglevHash,
		lvs.TwoRandomChoicesLeastConnPair}
	for i, s := range all {
		vs := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP,
			VIP: netip.MustParseAddr("10.0.0.1"), Port: uint16(1000 + i)}, Scheduler: s},
			Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 1}}}
		_, err := lvs.NewReconciler(k, k.Owns).Reconcile(context.Background(), mustDesired(t, vs))
		switch {
		case err == nil:
			got := kernelState(t, k)[vs.Service.Key()]
			if got.Service.Scheduler != s {
				t.Errorf("%s: kernel reports scheduler %q", s, got.Service.Scheduler)
			}
		case s == lvs.TwoRandomChoicesLeastConnPair && strings.Contains(err.Error(), "module ip_vs_twos"):
			t.Logf("%s: %v", s, err)
		default:
			t.Errorf("%s: %v", s, err)
		}
	}
}

// dial connects the client to vip and returns the connection and the name
// of the server that answered.
func dial(l *lab.Lab, vip netip.AddrPort) (net.Conn, string, error) {
	var c net.Conn
	err := l.Do("client", func() (err error) {
		c, err = net.DialTimeout("tcp", vip.String(), 3*time.Second)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("connection to %v: %w", vip, err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	who, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("connection to %v: %w", vip, err)
	}
	return c, strings.TrimSuffix(who, "\n"), nil
}

// hits opens n connections from the client to vip, one after the other,
// and counts the answers by server.
func hits(t *testing.T, l *lab.Lab, vip netip.AddrPort, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		c, who, err := dial(l, vip)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		out[who]++
	}
	return out
}

// checkForwarding sends n connections through rr, checks that they
// alternate between the two real servers, holds one more open, and checks
// that the counters saw them all.
func checkForwarding(t *testing.T, l *lab.Lab, k *Kernel, svc lvs.Service, n int) {
	t.Helper()
	vip := netip.AddrPortFrom(svc.VIP, svc.Port)
	got := hits(t, l, vip, n)
	t.Logf("%v: %v", svc.Key(), got)
	if got["rs1"] != n/2 || got["rs2"] != n/2 {
		t.Errorf("rr over %d connections: %v, want %d each", n, got, n/2)
	}
	held, _, err := dial(l, vip)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// The kernel sums its per-CPU counters into what it reports from the
	// rate estimator's timer, every 2 s (ip_vs_est.c), so wait for it.
	// Connection entries (ActiveConn, InActConn) are live.
	var stats []DestStats
	var conns uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if stats, err = k.Stats(svc.Key()); err != nil {
			t.Fatal(err)
		}
		conns = 0
		for _, s := range stats {
			conns += s.Conns
		}
		if conns > uint64(n) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("stats: %+v", stats)
	if len(stats) != 2 {
		t.Fatalf("stats for %d real servers, want 2", len(stats))
	}
	if conns != uint64(n+1) {
		t.Errorf("%d connections counted, want %d", conns, n+1)
	}
	var active, inactive uint32
	for _, s := range stats {
		active += s.ActiveConns
		inactive += s.InactiveConns
		// SYN, ACK, data ACK, FIN, ACK at least, from the client.
		if s.Packets < 4*uint64(n/2) || s.Bytes < 40*s.Packets {
			t.Errorf("%v: %d packets, %d bytes for %d connections", s.Addr, s.Packets, s.Bytes, s.Conns)
		}
		if svc.Method == lvs.NAT && s.OutPackets < 3*uint64(n/2) {
			t.Errorf("%v: NAT saw only %d reply packets", s.Addr, s.OutPackets)
		}
	}
	// The held connection is established; the closed ones linger in
	// TIME_WAIT or FIN states, which IPVS counts as inactive.
	if active != 1 || inactive == 0 {
		t.Errorf("%d active and %d inactive connections, want 1 and some", active, inactive)
	}

	// Counters (what `tandem status` reads) reports the same, read a
	// moment later: the same real servers, the held connection still
	// active, no fewer packets.
	all, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Keyed as Services reports them, the family filled in.
	key := svc.Key()
	if key.Family == 0 {
		key.Family = lvs.IPv4
		if key.VIP.Is6() {
			key.Family = lvs.IPv6
		}
	}
	cs := all[key]
	if len(cs) != len(stats) {
		t.Fatalf("Counters: %+v, Stats: %+v", cs, stats)
	}
	for i, c := range cs {
		s := stats[i]
		if c.Addr != s.Addr || c.ActiveConns != uint64(s.ActiveConns) || c.Packets < s.Packets || c.Bytes < s.Bytes {
			t.Errorf("Counters: %+v, Stats: %+v", c, s)
		}
	}
}

func TestNATForwarding(t *testing.T) {
	requireIPVS(t)
	y := lab.Seed003NAT()
	l := lab.NewT(t, y.Spec())
	l.ServeName(t, "rs1", ":8080", true)
	l.ServeName(t, "rs2", ":8080", true)
	state := filepath.Join(t.TempDir(), "state")
	k := newKernel(t, l, "dir1", state)
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: y.VIPs[0], Port: 80}, Scheduler: lvs.RoundRobin}
	dests := []lvs.Dest{{Addr: netip.AddrPortFrom(y.Reals[0].Addr, 8080), Weight: 1},
		{Addr: netip.AddrPortFrom(y.Reals[1].Addr, 8080), Weight: 1}}
	reconcile(t, lvs.NewReconciler(k, k.Owns), mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests}))
	checkForwarding(t, l, k, svc, 20)

	// A new process adopts the service without a change, and inhibits a
	// server (weight 0) without touching the other.
	k2 := newKernel(t, l, "dir1", state)
	r2 := lvs.NewReconciler(k2, k2.Owns)
	if rep := reconcile(t, r2, mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests})); len(rep.Ops) != 0 {
		t.Errorf("reconcile after a restart sent %v", rep.Ops)
	}
	dests[1].Weight = 0
	if rep := reconcile(t, r2, mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests})); rep.Count(lvs.UpdateDest) != 1 || len(rep.Ops) != 1 {
		t.Errorf("inhibiting rs2 sent %v", rep.Ops)
	}
	if got := hits(t, l, netip.AddrPortFrom(svc.VIP, svc.Port), 10); got["rs1"] != 10 {
		t.Errorf("rs2 at weight 0: %v, want everything on rs1", got)
	}
}

// TestNATForwardingIPv6 routes IPv6 through IPVS-NAT: persistence with a
// /64 granularity keeps the client on one server, and a second service
// without it alternates.
func TestNATForwardingIPv6(t *testing.T) {
	requireIPVS(t)
	l := lab.NewT(t, lab.NAT6())
	l.ServeName(t, "rs1", ":8080", true)
	l.ServeName(t, "rs2", ":8080", true)
	k := newKernel(t, l, "dir", "")
	dests := []lvs.Dest{{Addr: netip.MustParseAddrPort("[fd02::2]:8080"), Weight: 1}, {Addr: netip.MustParseAddrPort("[fd02::3]:8080"), Weight: 1}}
	vip := netip.MustParseAddr("fd01::1")
	sticky := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip, Port: 80},
		Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 64)}
	plain := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip, Port: 81}, Scheduler: lvs.RoundRobin}
	reconcile(t, lvs.NewReconciler(k, k.Owns), mustDesired(t,
		lvs.VirtualServer{Service: sticky, Dests: dests}, lvs.VirtualServer{Service: plain, Dests: dests}))
	got := hits(t, l, netip.AddrPortFrom(vip, 80), 10)
	t.Logf("persistent /64: %v", got)
	if len(got) != 1 {
		t.Errorf("persistence: connections spread over %v", got)
	}
	checkForwarding(t, l, k, plain, 20)
}

// drLab is the seed topology for DR: dir1 holds the VIP as VRRP would,
// and the real servers have it on lo and serve HTTP on port 80.
func drLab(t *testing.T) (lab.Layout, *lab.Lab) {
	t.Helper()
	y := lab.Seed000()
	l := lab.NewT(t, y.Spec())
	vip := netip.PrefixFrom(y.VIPs[0], 32).String()
	run(t, l, "dir1", "ip", "addr", "add", vip, "dev", y.Iface)
	for _, r := range y.Reals {
		run(t, l, r.Name, "ip", "addr", "add", vip, "dev", "lo")
		l.ServeName(t, r.Name, ":80", true)
	}
	return y, l
}

func TestDRForwarding(t *testing.T) {
	requireIPVS(t)
	y, l := drLab(t)
	k := newKernel(t, l, "dir1", "")
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: y.VIPs[0], Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.DR}
	reconcile(t, lvs.NewReconciler(k, k.Owns), mustDesired(t, lvs.VirtualServer{Service: svc, Dests: []lvs.Dest{
		{Addr: netip.AddrPortFrom(y.Reals[0].Addr, 80), Weight: 1},
		{Addr: netip.AddrPortFrom(y.Reals[1].Addr, 80), Weight: 1}}}))
	checkForwarding(t, l, k, svc, 20)
}

// parseIPVSADM reads `ipvsadm -Ln` (forwarding method, weight) and `ipvsadm
// -Ln --thresholds` and `--tun-info` (the same lines with thresholds
// instead, and with the tunnel after the forwarding) into virtual
// servers in this package's terms, normalized as lvs.NewDesired does.
func parseIPVSADM(out, thresholds, tunnels string) (map[lvs.ServiceKey]lvs.VirtualServer, error) {
	lines, tlines, ulines := strings.Split(out, "\n"), strings.Split(thresholds, "\n"), strings.Split(tunnels, "\n")
	if len(lines) != len(tlines) || len(lines) != len(ulines) {
		return nil, fmt.Errorf("ipvsadm: %d lines, %d with --thresholds, %d with --tun-info", len(lines), len(tlines), len(ulines))
	}
	vss := map[lvs.ServiceKey]lvs.VirtualServer{}
	var cur *lvs.VirtualServer
	flush := func() {
		if cur != nil {
			slices.SortFunc(cur.Dests, func(a, b lvs.Dest) int { return a.Addr.Compare(b.Addr) })
			vss[cur.Service.Key()] = *cur
		}
	}
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "IP" || f[0] == "Prot" || (f[0] == "->" && f[1] == "RemoteAddress:Port") {
			continue
		}
		if f[0] == "->" {
			d, err := parseDestLines(f, strings.Fields(tlines[i]), strings.Fields(ulines[i]))
			if err != nil {
				return nil, fmt.Errorf("ipvsadm: real server line %q: %w", line, err)
			}
			if cur == nil {
				return nil, fmt.Errorf("ipvsadm: real server line %q before any service", line)
			}
			cur.Dests = append(cur.Dests, d)
			continue
		}
		flush()
		s, err := parseServiceLine(f)
		if err != nil {
			return nil, fmt.Errorf("ipvsadm: service line %q: %w", line, err)
		}
		cur = &lvs.VirtualServer{Service: s}
	}
	flush()
	return vss, nil
}

// parseServiceLine reads "TCP  10.0.0.1:80 wrr persistent 300 mask
// 255.255.255.0", "FWM  43 IPv6 lc ...", "UDP  [::1]:53 sh (flag-1) ops".
func parseServiceLine(f []string) (lvs.Service, error) {
	var s lvs.Service
	s.Family = lvs.IPv4
	switch f[0] {
	case "FWM":
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return s, err
		}
		s.FWMark = uint32(m)
		f = f[2:]
		if f[0] == "IPv6" {
			s.Family, f = lvs.IPv6, f[1:]
		}
	case "TCP", "UDP", "SCTP":
		s.Protocol = map[string]lvs.Protocol{"TCP": lvs.TCP, "UDP": lvs.UDP, "SCTP": lvs.SCTP}[f[0]]
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return s, err
		}
		s.VIP, s.Port = ap.Addr(), ap.Port()
		if s.VIP.Is6() {
			s.Family = lvs.IPv6
		}
		f = f[2:]
	default:
		return s, fmt.Errorf("unknown protocol %q", f[0])
	}
	s.Scheduler, f = lvs.Scheduler(f[0]), f[1:]
	for len(f) > 0 {
		switch {
		case strings.HasPrefix(f[0], "("):
			for _, name := range strings.Split(strings.Trim(f[0], "()"), ",") {
				flag, ok := map[string]lvs.Flags{"sh-fallback": lvs.FlagSHFallback, "sh-port": lvs.FlagSHPort,
					"mh-fallback": lvs.FlagMHFallback, "mh-port": lvs.FlagMHPort}[name]
				if !ok {
					return s, fmt.Errorf("scheduler flag %q", name)
				}
				s.Flags |= flag
			}
			f = f[1:]
		case f[0] == "ops":
			s.Flags |= lvs.FlagOnePacket
			f = f[1:]
		case f[0] == "persistent" && len(f) > 1:
			t, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return s, err
			}
			s.PersistenceTimeout, f = uint32(t), f[2:]
		case f[0] == "pe" && len(f) > 1:
			s.PersistenceEngine, f = f[1], f[2:]
		case f[0] == "mask" && len(f) > 1:
			if s.Family == lvs.IPv6 {
				bits, err := strconv.ParseUint(f[1], 10, 8)
				if err != nil {
					return s, err
				}
				s.PersistenceMask = lvs.PrefixMask(lvs.IPv6, int(bits))
			} else {
				m, err := netip.ParseAddr(f[1])
				if err != nil {
					return s, err
				}
				s.PersistenceMask = m
			}
			f = f[2:]
		default:
			return s, fmt.Errorf("unknown field %q", f[0])
		}
	}
	if !s.PersistenceMask.IsValid() {
		s.PersistenceMask = lvs.PrefixMask(s.Family, 32)
		if s.Family == lvs.IPv6 {
			s.PersistenceMask = lvs.PrefixMask(s.Family, 128)
		}
	}
	return s, nil
}

// parseDestLines reads "-> 10.0.1.1:8080 Masq 3 0 0" (address, forwarding,
// weight, active and inactive connections), the same real server's
// "-> 10.0.1.1:8080 100 10 0 0" (upper and lower threshold instead of
// forwarding and weight) and its "-> 10.0.2.1:80 Tunnel gue:6080:csum 1 0
// 0" (--tun-info: the encapsulation after the forwarding).
func parseDestLines(f, tf, uf []string) (lvs.Dest, error) {
	var d lvs.Dest
	if len(f) != 6 || len(tf) != 6 || len(uf) != 7 || f[1] != tf[1] || f[1] != uf[1] {
		return d, fmt.Errorf("want 6, 6 and 7 fields and the same address in all, got %q, %q", tf, uf)
	}
	var err error
	if d.Addr, err = netip.ParseAddrPort(f[1]); err != nil {
		return d, err
	}
	method, ok := map[string]lvs.Method{"Masq": lvs.NAT, "Route": lvs.DR, "Tunnel": lvs.TUN}[f[2]]
	if !ok {
		return d, fmt.Errorf("forwarding method %q", f[2])
	}
	d.Method = method
	if method == lvs.TUN {
		if d.Tunnel, err = parseTunInfo(uf[3]); err != nil {
			return d, err
		}
	}
	var nums [3]uint64
	for i, s := range []string{f[3], tf[2], tf[3]} {
		if nums[i], err = strconv.ParseUint(s, 10, 32); err != nil {
			return d, err
		}
	}
	d.Weight, d.UpperThreshold, d.LowerThreshold = int(nums[0]), uint32(nums[1]), uint32(nums[2])
	return d, nil
}

// parseTunInfo reads ipvsadm's TunnelInfo column: "ipip", "gue:PORT:F"
// or "gre:F", F being the checksum option: -c (none), +c or r+c (remote).
func parseTunInfo(s string) (lvs.Tunnel, error) {
	f := strings.Split(s, ":")
	csum, ok := map[string]lvs.TunnelCsum{"-c": lvs.TunnelNoCsum, "+c": lvs.TunnelCsumOn, "r+c": lvs.TunnelRemCsum}[f[len(f)-1]]
	switch {
	case s == "ipip":
		return lvs.Tunnel{}, nil
	case len(f) == 2 && f[0] == "gre" && ok:
		return lvs.Tunnel{Type: lvs.TunnelGRE, Csum: csum}, nil
	case len(f) == 3 && f[0] == "gue" && ok:
		port, err := strconv.ParseUint(f[1], 10, 16)
		if err != nil {
			return lvs.Tunnel{}, fmt.Errorf("tunnel info %q: %w", s, err)
		}
		return lvs.Tunnel{Type: lvs.TunnelGUE, Port: uint16(port), Csum: csum}, nil
	}
	return lvs.Tunnel{}, fmt.Errorf("tunnel info %q", s)
}

// TestPersistenceMaskToKernel checks that the persistence mask reaches
// IPVS as given, a non-prefix IPv4 mask included (the kernel ANDs it with
// the client address, ip_vs_sched_persist), and is read back the same.
func TestPersistenceMaskToKernel(t *testing.T) {
	for _, tc := range []struct {
		svc  lvs.Service
		want netmask.Mask
	}{
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceMask: netip.MustParseAddr("255.0.255.0")},
			netmask.MaskFrom4([4]byte{255, 0, 255, 0})},
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: lvs.RoundRobin},
			netmask.MaskFrom(32, 32)},
		{lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.TCP, VIP: netip.MustParseAddr("2001:db8::1"), Port: 80},
			Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceMask: lvs.PrefixMask(lvs.IPv6, 48)},
			netmask.MaskFrom(48, 128)},
	} {
		k := toService(tc.svc)
		if k.Netmask != tc.want {
			t.Errorf("%v: netmask %v, want %v", tc.svc.PersistenceMask, k.Netmask, tc.want)
		}
		back := fromService(k)
		want := tc.svc.PersistenceMask
		if !want.IsValid() {
			want = lvs.PrefixMask(tc.svc.Family, 32)
		}
		if back.PersistenceMask != want {
			t.Errorf("%v: read back as %v", tc.svc.PersistenceMask, back.PersistenceMask)
		}
	}
}
