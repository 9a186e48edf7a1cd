package xdp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

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

// bpffs mounts a BPF file system of the test's own and returns it, so
// that nothing is pinned in the host's.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("cannot mount a BPF file system: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// drLab builds drSpec with the real servers answering with NameEcho on
// the VIP, and a pass-through XDP program on the director's switch ports:
// a veth transmits XDP frames (XDP_TX, XDP_REDIRECT) only to a peer that
// runs XDP or NAPI, as a physical NIC needs nothing of.
func drLab(t *testing.T) *lab.Lab {
	t.Helper()
	ethtool, err := exec.LookPath("ethtool")
	if err != nil {
		t.Skip("ethtool not found (Debian package ethtool): needed to turn off the veths' checksum offload")
	}
	l := lab.NewT(t, drSpec())
	// A veth leaves TCP checksums to be filled in later (offload), which a
	// packet forwarded by XDP never gets: hosts compute their own here, as
	// a NIC would.
	for _, n := range []string{"client", "rs1", "rs2"} {
		err := l.Do(n, func() error {
			if out, err := exec.Command(ethtool, "-K", "eth0", "tx", "off").CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool: %v: %s", err, out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, rs := range []string{"rs1", "rs2"} {
		h, err := netlink.NewHandleAt(l.NSHandle(t, rs))
		if err != nil {
			t.Fatal(err)
		}
		lo, err := h.LinkByName("lo")
		if err == nil {
			err = h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: vip.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}})
		}
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		l.ServeT(t, rs, vip.String(), lab.NameEcho(rs))
	}
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // XDP_PASS
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	for _, sw := range []string{"c", "r"} {
		err := l.DoPorts("dir", sw, func(ports []string) error {
			for _, p := range ports {
				ifc, err := net.InterfaceByName(p)
				if err != nil {
					return err
				}
				ln, err := link.AttachXDP(link.XDPOptions{Program: pass, Interface: ifc.Index, Flags: link.XDPDriverMode})
				if err != nil {
					return err
				}
				t.Cleanup(func() { ln.Close() })
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// newKernel is New in the director's namespace, closed at the end.
func newKernel(t *testing.T, l *lab.Lab, dir string) *Kernel {
	t.Helper()
	var k *Kernel
	err := l.Do("dir", func() (err error) {
		k, err = New(WithPinDir(dir), WithInterfaces("eth1"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Do("dir", k.Close) })
	return k
}

func reconcile(t *testing.T, l *lab.Lab, k *Kernel, vss ...lvs.VirtualServer) lvs.Report {
	t.Helper()
	d, err := lvs.NewDesired(vss...)
	if err != nil {
		t.Fatal(err)
	}
	var rep lvs.Report
	err = l.Do("dir", func() (err error) {
		rep, err = lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true }).Reconcile(context.Background(), d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wrr(w1, w2 int) lvs.VirtualServer {
	return lvs.VirtualServer{
		Service: lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: vip.Addr(), Port: vip.Port()},
			Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR},
		Dests: []lvs.Dest{{Addr: rs1, Weight: w1}, {Addr: rs2, Weight: w2}},
	}
}

// hits makes n connections from the client, each reading who answers.
func hits(t *testing.T, l *lab.Lab, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := l.Do("client", func() error {
		for range n {
			c, err := net.DialTimeout("tcp", vip.String(), 5*time.Second)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("x\n"))
			buf := make([]byte, 16)
			m, err := io.ReadAtLeast(c, buf, 4)
			c.Close()
			if err != nil {
				return err
			}
			out[strings.TrimSpace(string(buf[:m]))]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("connections to %v: %v (so far %v)", vip, err, out)
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

// attached reports which of the director's interfaces run an XDP program.
func attached(t *testing.T, l *lab.Lab) map[string]bool {
	t.Helper()
	h, err := netlink.NewHandleAt(l.NSHandle(t, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	out := map[string]bool{}
	for _, n := range []string{"eth0", "eth1"} {
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
// nothing; Close leaves nothing attached or pinned.
func TestDREndToEnd(t *testing.T) {
	l := drLab(t)
	dir := filepath.Join(bpffs(t), "tandem")
	k := newKernel(t, l, dir)

	reconcile(t, l, k, wrr(3, 1))
	if a := attached(t, l); !a["eth0"] || !a["eth1"] {
		t.Fatalf("XDP attached %v: want eth0 (the servers') and eth1 (WithInterfaces)", a)
	}
	const n = 400
	got := hits(t, l, n)
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
	for _, c := range cs[wrr(3, 1).Service.Key()] {
		t.Logf("counters %+v", c)
		if c.Packets == 0 || c.Bytes < 40*c.Packets {
			t.Errorf("counters of %v: %+v", c.Addr, c)
		}
		total += c.Packets
	}
	// Each connection: SYN, ACK, data, FIN and ACK at least from the client.
	if total < 4*n {
		t.Errorf("%d packets counted for %d connections", total, n)
	}

	// Established flows stay put when the weights turn to 1:100 ...
	conns, err := l.OpenConns("client", vip, 20, 50*time.Millisecond)
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
	reconcile(t, l, k, wrr(1, 100))
	if err := conns.WaitPast(conns.Results(), 5, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range conns.Results() {
		if r.Err != nil {
			t.Errorf("connection from %v (on %s) after the weight change: %v", r.Local, r.Server, r.Err)
		}
	}
	// ... while new ones follow the new table.
	got = hits(t, l, 50)
	t.Logf("new connections at 1:100: %v", got)
	if got["rs2"] < 45 {
		t.Errorf("new connections at 1:100: %v", got)
	}

	// A Kernel started after a crash adopts the pinned state: the same
	// services read back, a reconcile sends nothing.
	var k2 *Kernel
	if err := l.Do("dir", func() (err error) { k2, err = New(WithPinDir(dir), WithInterfaces("eth1")); return err }); err != nil {
		t.Fatal(err)
	}
	if rep := reconcile(t, l, k2, wrr(1, 100)); len(rep.Ops) != 0 {
		t.Errorf("reconcile after adoption: %v, want nothing", rep.Ops)
	}
	k2.close() // the crash: pins stay, forwarding goes on
	if err := conns.WaitPast(conns.Results(), 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// rs1 leaves: its flows move (to rs2, which resets them), the others
	// stay.
	reconcile(t, l, k, lvs.VirtualServer{Service: wrr(1, 1).Service, Dests: []lvs.Dest{{Addr: rs2, Weight: 1}}})
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
	if got := hits(t, l, 20); got["rs2"] != 20 {
		t.Errorf("after rs1 left: %v", got)
	}

	if err := l.Do("dir", k.Close); err != nil {
		t.Fatal(err)
	}
	if a := attached(t, l); a["eth0"] || a["eth1"] {
		t.Errorf("after Close, XDP attached: %v", a)
	}
	if p := pins(t, dir); len(p) != 0 {
		t.Errorf("after Close, pinned: %v", p)
	}
}

// TestRefused: NAT and TUN real servers, firewall marks and one-packet
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
			Dests: []lvs.Dest{{Addr: rs1, Weight: 1}}}, "ipvs data plane"},
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
