package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// xdpMd is struct xdp_md, the context BPF_PROG_TEST_RUN takes.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// probe runs the director's program (BPF_PROG_TEST_RUN) on TCP SYNs
// built for it, as if they came in on its eth0, and says which real
// server each was sent to.
type probe struct {
	t     *testing.T
	f     *fixture
	k     *Kernel
	in    int              // eth0's ifindex
	mac   net.HardwareAddr // eth0's
	names map[string]string
}

func newProbe(t *testing.T, f *fixture, k *Kernel) *probe {
	t.Helper()
	p := &probe{t: t, f: f, k: k, names: map[string]string{}}
	for node, name := range map[string]string{f.dir: "", "rs1": "rs1", "rs2": "rs2"} {
		h, err := netlink.NewHandleAt(f.l.NSHandle(t, node))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := h.LinkByName("eth0")
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		if node == f.dir {
			p.in, p.mac = ln.Attrs().Index, ln.Attrs().HardwareAddr
			continue
		}
		p.names[ln.Attrs().HardwareAddr.String()] = name
	}
	return p
}

// send runs the program on a SYN from client to the VIP and returns the
// name of the real server whose MAC it now has; the program must send it
// back out of eth0 (XDP_TX).
func (p *probe) send(client netip.AddrPort) string {
	p.t.Helper()
	frame := make([]byte, 14+20+20)
	copy(frame[0:6], p.mac)
	copy(frame[6:12], []byte{2, 0xc1, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_IP)
	ip := frame[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(ip[2:], 40)
	c4, v4 := client.Addr().As4(), p.f.vip.Addr().As4()
	copy(ip[12:16], c4[:])
	copy(ip[16:20], v4[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], client.Port())
	binary.BigEndian.PutUint16(tcp[2:], p.f.vip.Port())
	tcp[12], tcp[13] = 5<<4, 0x02 // SYN
	out := make([]byte, len(frame))
	var ret uint32
	err := p.f.l.Do(p.f.dir, func() (err error) {
		ret, err = p.k.objs.XdpLb.Run(&ebpf.RunOptions{Data: frame, DataOut: out,
			Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(p.in)}})
		return err
	})
	if err != nil {
		p.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	if ret != 3 { // XDP_TX
		p.t.Fatalf("SYN from %v: verdict %d, want XDP_TX (3)", client, ret)
	}
	name, ok := p.names[net.HardwareAddr(out[0:6]).String()]
	if !ok {
		p.t.Fatalf("SYN from %v sent to MAC %v, not a real server's", client, net.HardwareAddr(out[0:6]))
	}
	return name
}

// TestPersistenceGranularity: with persistence_granularity 255.255.255.0
// every client of a /24 goes to one real server; with the default (a
// single address) the same clients spread over both.
func TestPersistenceGranularity(t *testing.T) {
	f := oneSegment(t)
	k := f.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"))
	p := newProbe(t, f, k)
	clients := func() map[string]int {
		got := map[string]int{}
		for i := range 40 {
			got[p.send(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 8, byte(10 + i)}), uint16(30000+i)))]++
		}
		return got
	}
	vs := f.wrr(1, 1)
	vs.Service.PersistenceTimeout = 300
	for _, tc := range []struct {
		mask netip.Addr
		one  bool // all on one server
	}{
		{lvs.PrefixMask(lvs.IPv4, 24), true},
		{netip.Addr{}, false},
	} {
		vs.Service.PersistenceMask = tc.mask
		f.reconcile(t, k, vs)
		got := clients()
		t.Logf("40 clients of 10.9.8.0/24, persistence granularity %s: %v", lvs.MaskText(tc.mask), got)
		if tc.one != (len(got) == 1) {
			t.Errorf("granularity %s: %v, want one server: %v", lvs.MaskText(tc.mask), got, tc.one)
		}
	}
}

// TestFlowTimeouts: a flow's entry keeps it on its server until it has
// been idle for the service's flow timeout, which is IPVS's default (15
// minutes for TCP) or lvs_timeouts tcp (SetTimeouts), changed in place.
// The entry's last-seen time is set back by hand instead of waiting.
func TestFlowTimeouts(t *testing.T) {
	f := oneSegment(t)
	k := f.newKernel(t, filepath.Join(lab.BPFFST(t), "tandem"))
	p := newProbe(t, f, k)
	vs := f.wrr(1, 1)
	f.reconcile(t, k, vs)
	client := netip.MustParseAddrPort("10.9.8.7:40000")
	first := p.send(client)
	other, otherName := f.rs1, "rs1"
	if first == "rs1" {
		other, otherName = f.rs2, "rs2"
	}
	s := k.state[vs.Service.Key()]
	fk := lbFlowKey{Svc: s.id, Addr: addr16(client.Addr()), Port: htons(client.Port())}
	if err := k.objs.Flows.Lookup(fk, new(lbFlowVal)); err != nil {
		t.Fatalf("the SYN left no flow entry: %v", err)
	}
	// idleOn makes the client's flow one on the other server, last seen
	// ago.
	idleOn := func(ago time.Duration) {
		t.Helper()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil { // bpf_ktime_get_ns
			t.Fatal(err)
		}
		d := s.dests[other]
		if err := k.objs.Flows.Put(fk, lbFlowVal{Real: d.id, Gen: d.gen, Seen: uint64(ts.Nano()) - uint64(ago)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		timeouts lvs.Timeouts
		ago      time.Duration
		kept     bool
	}{
		{lvs.Timeouts{}, 10 * time.Minute, true},
		{lvs.Timeouts{}, 16 * time.Minute, false},
		{lvs.Timeouts{TCP: 5 * time.Minute, UDP: time.Hour}, 10 * time.Minute, false},
		{lvs.Timeouts{TCP: 5 * time.Minute}, 4 * time.Minute, true},
		{lvs.Timeouts{TCP: time.Hour}, 50 * time.Minute, true},
	} {
		if err := k.SetTimeouts(tc.timeouts); err != nil {
			t.Fatal(err)
		}
		idleOn(tc.ago)
		want := first
		if tc.kept {
			want = otherName
		}
		if got := p.send(client); got != want {
			t.Errorf("lvs_timeouts %+v, flow on %s idle for %v: sent to %s, want %s", tc.timeouts, otherName, tc.ago, got, want)
		}
	}
}
