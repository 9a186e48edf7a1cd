package xdp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/nft"
)

// TestMain checks that a Kernel stops the goroutines it starts (the
// address watch, watchLocals). The lab's servers may still hold
// connections whose clients moved to another server (TestDREndToEnd:
// the server that left never hears of them), until their deadline.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("tandem/internal/lab.(*Lab).Serve.func2.1"))
}

var (
	vip = netip.MustParseAddrPort("10.81.9.1:80")
	rs1 = netip.MustParseAddrPort("10.81.2.2:80")
	rs2 = netip.MustParseAddrPort("10.81.2.3:80")
)

// drSpec is LVS-DR with the client on a segment of its own: client
// (10.81.1.2, switch c) — director (eth1 10.81.1.1 on c, holding the VIP
// 10.81.9.1; eth0 10.81.2.1 on r, routing the servers' answers) — real
// servers rs1 and rs2 (10.81.2.2 and .3 on r, the VIP on lo, answering
// through the director). The program sees the client's packets on eth1
// and redirects them out of eth0.
func drSpec() lab.Spec {
	p := netip.MustParsePrefix
	rs := func(name, addr string) lab.Node {
		return lab.Node{Name: name, Ifaces: []lab.Iface{{Name: "eth0", Switch: "r", Addrs: []netip.Prefix{p(addr)}}},
			Sysctls: map[string]string{"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
				"net.ipv4.conf.eth0.arp_ignore": "1", "net.ipv4.conf.eth0.arp_announce": "2"},
			Routes: []lab.Route{{Dst: p("0.0.0.0/0"), Via: netip.MustParseAddr("10.81.2.1")}}}
	}
	return lab.Spec{Nodes: []lab.Node{
		{Name: "client", Ifaces: []lab.Iface{{Name: "eth0", Switch: "c", Addrs: []netip.Prefix{p("10.81.1.2/24")}}},
			Routes: []lab.Route{{Dst: p("0.0.0.0/0"), Via: netip.MustParseAddr("10.81.1.1")}}},
		{Name: "dir", Ifaces: []lab.Iface{
			{Name: "eth1", Switch: "c", Addrs: []netip.Prefix{p("10.81.1.1/24"), p("10.81.9.1/32")}},
			{Name: "eth0", Switch: "r", Addrs: []netip.Prefix{p("10.81.2.1/24")}},
		}, Sysctls: map[string]string{"net.ipv4.ip_forward": "1",
			// The servers' answers come from the VIP, which the
			// director holds: routing them needs accept_local.
			"net.ipv4.conf.eth0.accept_local": "1"}},
		rs("rs1", "10.81.2.2/24"),
		rs("rs2", "10.81.2.3/24"),
	}}
}

// fixture is a lab with a director ("dir" of drSpec, "dir1" of seed000)
// and real servers rs1 and rs2 answering NameEcho on the VIP.
type fixture struct {
	l        *lab.Lab
	dir      string
	vip      netip.AddrPort
	rs1, rs2 netip.AddrPort
	// vip6 is an IPv6 VIP (oneSegment), rs6 the servers' IPv6 addresses.
	vip6 netip.AddrPort
	rs6  [2]netip.AddrPort
}

// twoSegments is drSpec's fixture: the client's packets come in on eth1
// and go out of eth0 (XDP_REDIRECT).
func twoSegments(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: "dir", vip: vip, rs1: rs1, rs2: rs2}
	f.l = newLab(t, drSpec(), f, []string{"c", "r"})
	return f
}

// oneSegment is seed000's fixture, LVS-DR as keepalived's users run it:
// client, director (not routing) and real servers on one segment, the
// VIP on the director's eth0; packets go back out of eth0 (XDP_TX).
func oneSegment(t *testing.T) *fixture {
	t.Helper()
	y := lab.Seed000()
	f := &fixture{dir: "dir1", vip: netip.AddrPortFrom(y.VIPs[0], 80),
		rs1: netip.AddrPortFrom(y.Reals[0].Addr, 80), rs2: netip.AddrPortFrom(y.Reals[1].Addr, 80),
		vip6: netip.MustParseAddrPort("[fd07::5]:80"),
		rs6:  [2]netip.AddrPort{netip.MustParseAddrPort("[fd07::3]:80"), netip.MustParseAddrPort("[fd07::4]:80")}}
	// IPv6 beside seed000's addresses: fd07::<last byte of the IPv4 one>.
	spec := y.Spec()
	for i, n := range spec.Nodes {
		ifc := &spec.Nodes[i].Ifaces[0]
		a4 := ifc.Addrs[0].Addr().As4()
		ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x07, 15: a4[3]}), 64))
		if n.Name == f.dir {
			ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(f.vip.Addr(), 32), netip.PrefixFrom(f.vip6.Addr(), 128))
		}
	}
	f.l = newLab(t, spec, f, []string{lab.SwitchLAN})
	return f
}

// newLab builds spec with the real servers of f answering NameEcho on
// the VIP (held on their lo), ready for XDP on the director's ports on
// switches (lab.XDPReadyT).
func newLab(t *testing.T, spec lab.Spec, f *fixture, switches []string) *lab.Lab {
	t.Helper()
	l := lab.NewT(t, spec)
	l.XDPReadyT(t, []string{"client", "rs1", "rs2"}, []string{f.dir}, switches)
	for _, rs := range []string{"rs1", "rs2"} {
		h, err := netlink.NewHandleAt(l.NSHandle(t, rs))
		if err != nil {
			t.Fatal(err)
		}
		vips := []netip.AddrPort{f.vip}
		if f.vip6.IsValid() {
			vips = append(vips, f.vip6)
		}
		lo, err := h.LinkByName("lo")
		for _, v := range vips {
			if err == nil {
				a := v.Addr()
				// NODAD: usable at once, as the lab's own addresses.
				err = h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
					Flags: unix.IFA_F_NODAD})
			}
		}
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vips {
			l.ServeT(t, rs, v.String(), lab.NameEcho(rs))
		}
	}
	return l
}

// newKernel is New in the director's namespace, closed at the end.
func (f *fixture) newKernel(t *testing.T, dir string, opts ...Option) *Kernel {
	t.Helper()
	var k *Kernel
	err := f.l.Do(f.dir, func() (err error) {
		k, err = New(append([]Option{WithPinDir(dir)}, opts...)...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.l.Do(f.dir, k.Close) })
	return k
}

// reconcile drives k to vss from the director's namespace.
func (f *fixture) reconcile(t *testing.T, k lvs.Kernel, vss ...lvs.VirtualServer) lvs.Report {
	t.Helper()
	d, err := lvs.NewDesired(vss...)
	if err != nil {
		t.Fatal(err)
	}
	var rep lvs.Report
	err = f.l.Do(f.dir, func() (err error) {
		rep, err = lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true }).Reconcile(context.Background(), d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// wrr is the wrr DR service on f's VIP over rs1 and rs2 at weights w1, w2.
func (f *fixture) wrr(w1, w2 int) lvs.VirtualServer {
	return lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: f.vip.Addr(), Port: f.vip.Port()},
			Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR},
		Dests: []lvs.Dest{{Addr: f.rs1, Weight: w1}, {Addr: f.rs2, Weight: w2}},
	}
}

// ask makes one connection from the client to the VIP, from port (0:
// any), and returns who answered; the client resets it (no TIME_WAIT), so
// that the port can be used again at once.
func (f *fixture) ask(port int) (string, error) { return f.askAt(f.vip, port) }

// askAt is ask to vip.
func (f *fixture) askAt(vip netip.AddrPort, port int) (string, error) {
	var who string
	err := f.l.Do("client", func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{Port: port}}
		c, err := d.Dial("tcp", vip.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.(*net.TCPConn).SetLinger(0)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		who = strings.TrimSpace(line)
		return err
	})
	return who, err
}

// hits makes n connections from the client and counts who answers.
func (f *fixture) hits(t *testing.T, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		who, err := f.ask(0)
		if err != nil {
			t.Fatalf("connection to %v: %v (so far %v)", f.vip, err, out)
		}
		out[who]++
	}
	return out
}

// pins lists what is pinned in dir and its subdirectories.
func pins(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

// attached reports which of f's director's interfaces run an XDP program.
func (f *fixture) attached(t *testing.T, names ...string) map[string]bool {
	t.Helper()
	h, err := netlink.NewHandleAt(f.l.NSHandle(t, f.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	out := map[string]bool{}
	for _, n := range names {
		ln, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = ln.Attrs().Xdp != nil && ln.Attrs().Xdp.Attached
	}
	return out
}

// TestDREndToEnd: real TCP connections through the VIP reach the real
// servers in the weights' proportion, counted per server; an established
// flow stays on its server when the weights change, and moves when its
// server leaves; a restarted Kernel adopts the pinned state and changes
// nothing; only packets for a VIP the director holds are forwarded;
// Close leaves nothing attached or pinned.
func TestDREndToEnd(t *testing.T) {
	f := twoSegments(t)
	l := f.l
	dir := filepath.Join(lab.BPFFST(t), "tandem")
	k := f.newKernel(t, dir, WithInterfaces("eth1"))

	f.reconcile(t, k, f.wrr(3, 1))
	if a := f.attached(t, "eth0", "eth1"); !a["eth0"] || !a["eth1"] {
		t.Fatalf("XDP attached %v: want eth0 (the servers') and eth1 (WithInterfaces)", a)
	}
	const n = 400
	got := f.hits(t, n)
	t.Logf("wrr 3:1 over %d connections: %v", n, got)
	// Flows hash to slots: each connection is a draw, so allow for
	// chance (binomial sd ≈ 8.7 of 300).
	if got["rs1"] < 270 || got["rs1"] > 330 || got["rs1"]+got["rs2"] != n {
		t.Errorf("spread %v: want about 300:100", got)
	}
	cs, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, c := range cs[f.wrr(3, 1).Service.Key()] {
		t.Logf("counters %+v", c)
		if c.Packets == 0 || c.Bytes < 40*c.Packets {
			t.Errorf("counters of %v: %+v", c.Addr, c)
		}
		total += c.Packets
	}
	// Each connection: SYN, ACK, data, RST at least from the client.
	if total < 4*n {
		t.Errorf("%d packets counted for %d connections", total, n)
	}

	// Established flows stay put when the weights turn to 1:100 ...
	conns, err := l.OpenConns("client", f.vip, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Stop()
	on := map[string]int{}
	for _, r := range conns.Results() {
		on[r.Server]++
	}
	if on["rs1"] == 0 {
		t.Fatalf("20 connections %v: want some on rs1", on)
	}
	f.reconcile(t, k, f.wrr(1, 100))
	if err := conns.WaitPast(conns.Results(), 5, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range conns.Results() {
		if r.Err != nil {
			t.Errorf("connection from %v (on %s) after the weight change: %v", r.Local, r.Server, r.Err)
		}
	}
	// ... while new ones follow the new table.
	got = f.hits(t, 50)
	t.Logf("new connections at 1:100: %v", got)
	if got["rs2"] < 45 {
		t.Errorf("new connections at 1:100: %v", got)
	}

	// Tandem crashes (its program and pins stay, forwarding goes on) and
	// a new one adopts the pinned state: the same services read back, a
	// reconcile sends nothing, and the new one carries on.
	k.close()
	if err := conns.WaitPast(conns.Results(), 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	k = f.newKernel(t, dir, WithInterfaces("eth1"))
	if rep := f.reconcile(t, k, f.wrr(1, 100)); len(rep.Ops) != 0 {
		t.Errorf("reconcile after adoption: %v, want nothing", rep.Ops)
	}
	if err := conns.WaitPast(conns.Results(), 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// rs1 leaves: its flows move (to rs2, which resets them), the others
	// stay.
	f.reconcile(t, k, lvs.VirtualServer{Service: f.wrr(1, 1).Service, Dests: []lvs.Dest{{Addr: f.rs2, Weight: 1}}})
	if err := conns.WaitPast(conns.Results(), 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range conns.Stop() {
		switch {
		case r.Server == "rs1" && r.Err == nil:
			t.Errorf("connection from %v stayed on rs1, which left", r.Local)
		case r.Server == "rs2" && r.Err != nil:
			t.Errorf("connection from %v on rs2: %v", r.Local, r.Err)
		}
	}
	if got := f.hits(t, 20); got["rs2"] != 20 {
		t.Errorf("after rs1 left: %v", got)
	}

	// Without the VIP (a VRRP backup) the director forwards nothing: the
	// packet goes to its stack, which has no route for it.
	h, err := netlink.NewHandleAt(l.NSHandle(t, f.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth1, err := h.LinkByName("eth1")
	if err == nil {
		err = h.AddrDel(eth1, &netlink.Addr{IPNet: &net.IPNet{IP: f.vip.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}})
	}
	if err != nil {
		t.Fatal(err)
	}
	// The address notification comes when it comes, and the closed
	// connections' last packets too: wait for a connection that fails
	// while no counter moves (one that the program forwarded would
	// count its SYNs).
	deadline := time.Now().Add(20 * time.Second)
	for {
		before, err := k.Counters()
		if err != nil {
			t.Fatal(err)
		}
		who, err := f.ask(0)
		after, cerr := k.Counters()
		if cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil && reflect.DeepEqual(before, after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without the VIP: answered by %q (%v), counters %v -> %v", who, err, before, after)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := l.Do(f.dir, k.Close); err != nil {
		t.Fatal(err)
	}
	if a := f.attached(t, "eth0", "eth1"); a["eth0"] || a["eth1"] {
		t.Errorf("after Close, XDP attached: %v", a)
	}
	if p := pins(t, dir); len(p) != 0 {
		t.Errorf("after Close, pinned: %v", p)
	}
}

// TestDROneSegmentSameAsNFT: on seed000's segment, with a director that
// does not route, XDP sends back out of the interface (XDP_TX), and sends
// every flow to the server the nftables DR data plane sends it to: the
// same Maglev table (lvs.Slots), the same jhash of the flow.
func TestDROneSegmentSameAsNFT(t *testing.T) {
	f := oneSegment(t)
	vs := f.wrr(2, 1)
	const first, flows = 21000, 60
	route := func() map[int]string {
		out := map[int]string{}
		for p := first; p < first+flows; p++ {
			who, err := f.ask(p)
			if err != nil {
				t.Fatalf("connection from port %d: %v", p, err)
			}
			out[p] = who
		}
		return out
	}

	nk, err := nft.New(nft.WithNetNS(int(f.l.NSHandle(t, f.dir))))
	if err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, nk, vs)
	byNFT := route()
	if err := nk.Close(); err != nil {
		t.Fatal(err)
	}

	k := f.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"))
	f.reconcile(t, k, vs)
	if a := f.attached(t, "eth0"); !a["eth0"] {
		t.Fatalf("XDP attached %v: want eth0", a)
	}
	byXDP := route()
	if d := cmp.Diff(byNFT, byXDP); d != "" {
		t.Errorf("servers by client port, nftables (-) and XDP (+):\n%s", d)
	}
	n := map[string]int{}
	for _, who := range byXDP {
		n[who]++
	}
	t.Logf("%d flows at 2:1: %v", flows, n)
	if n["rs1"] == 0 || n["rs2"] == 0 {
		t.Errorf("%d flows at 2:1: %v, want both servers used", flows, n)
	}
	cs, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[vs.Service.Key()] {
		if c.Packets == 0 {
			t.Errorf("counters %+v: nothing counted", c)
		}
	}
}

// TestDRIPv6: an IPv6 DR service on seed000's segment: connections reach
// both servers by flow hash, each counted, and the flow table holds them.
func TestDRIPv6(t *testing.T) {
	f := oneSegment(t)
	k := f.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"))
	vs := lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv6, Protocol: lvs.TCP, VIP: f.vip6.Addr(), Port: f.vip6.Port()},
			Scheduler: lvs.RoundRobin, Method: lvs.DR},
		Dests: []lvs.Dest{{Addr: f.rs6[0], Weight: 1}, {Addr: f.rs6[1], Weight: 1}},
	}
	f.reconcile(t, k, vs)
	got := map[string]int{}
	// From 40 ports: 40 flows, however the kernel picks ports.
	for i := range 40 {
		who, err := f.askAt(f.vip6, 22000+i)
		if err != nil {
			t.Fatalf("connection to %v: %v (so far %v)", f.vip6, err, got)
		}
		got[who]++
	}
	t.Logf("rr over 40 IPv6 connections: %v", got)
	if got["rs1"] < 8 || got["rs2"] < 8 {
		t.Errorf("IPv6 spread %v: want both servers well used", got)
	}
	cs, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[vs.Service.Key()] {
		if c.Packets < 4*8 || c.Bytes < 60*c.Packets {
			t.Errorf("IPv6 counters %+v: want at least 4 packets of 60 bytes per connection", c)
		}
	}
	var fk lbFlowKey
	var fv lbFlowVal
	n := 0
	for it := k.objs.Flows.Iterate(); it.Next(&fk, &fv); {
		n++
	}
	if n < 40 {
		t.Errorf("%d flow entries for 40 connections", n)
	}
}

// TestRefused: NAT and GRE TUN real servers, firewall marks and one-packet
// scheduling are refused with the data planes that do them named, and
// change nothing.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		vs   lvs.VirtualServer
		want string
	}{
		{lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.NAT},
			Dests: []lvs.Dest{{Addr: rs1, Weight: 1}}}, "nftables or ipvs"},
		{lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip.Addr(), Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.TUN},
			Dests: []lvs.Dest{{Addr: rs1, Weight: 1, Tunnel: lvs.Tunnel{Type: lvs.TunnelGRE}}}}, "ipvs data plane"},
		{lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 7}, Scheduler: lvs.RoundRobin, Method: lvs.DR},
			Dests: []lvs.Dest{{Addr: rs1, Weight: 1}}}, "firewall marks"},
		{lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.UDP, VIP: vip.Addr(), Port: 53}, Scheduler: lvs.RoundRobin, Method: lvs.DR, Flags: lvs.FlagOnePacket},
			Dests: []lvs.Dest{{Addr: rs1, Weight: 1}}}, "ops"},
	} {
		d, err := lvs.NewDesired(tc.vs)
		if err != nil {
			t.Fatal(err)
		}
		k := &Kernel{state: map[lvs.ServiceKey]*service{}}
		_, err = lvs.NewReconciler(k, nil).Reconcile(context.Background(), d)
		var opErr *lvs.OpError
		if !errors.As(err, &opErr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an op error naming %q", tc.vs.Service.Key(), err, tc.want)
		}
		if len(k.state) != 0 {
			t.Errorf("%v: state %v after a refused batch", tc.vs.Service.Key(), k.state)
		}
	}
}

// TestRemove: what a crashed Tandem left (the program attached, its maps
// and links pinned) forwards on until Remove, run by a Tandem that uses
// another data plane: then nothing is attached or pinned; a second Remove
// finds nothing.
func TestRemove(t *testing.T) {
	f := oneSegment(t)
	root := lab.BPFFST(t)
	var k *Kernel
	if err := f.l.Do(f.dir, func() (err error) { k, err = New(WithPinRoot(root)); return err }); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, k, f.wrr(1, 1))
	k.close() // the crash
	if a := f.attached(t, "eth0"); !a["eth0"] {
		t.Fatal("no XDP program on eth0 after the crash: nothing for Remove to do")
	}
	if got := f.hits(t, 4); got["rs1"]+got["rs2"] != 4 {
		t.Fatalf("forwarding after the crash: %v", got)
	}
	for i, want := range []bool{true, false} {
		var found bool
		if err := f.l.Do(f.dir, func() (err error) { found, err = Remove(root); return err }); err != nil {
			t.Fatal(err)
		}
		if found != want {
			t.Errorf("Remove #%d found %v, want %v", i+1, found, want)
		}
	}
	// The kernel releases a link whose last reference went in a work
	// queue: give it a moment.
	for i := 0; f.attached(t, "eth0")["eth0"]; i++ {
		if i == 100 {
			t.Fatal("XDP still attached to eth0 a second after Remove")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "xdp-*")); len(left) != 0 {
		t.Errorf("left pinned: %v", left)
	}
}
