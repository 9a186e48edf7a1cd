package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

func needBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
}

// TestFrameCounter: IPv4 frames are counted and dropped; ARP and runts
// pass, uncounted.
func TestFrameCounter(t *testing.T) {
	needBPF(t)
	c, err := newFrameCounter()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ipv4 := tcpFrame(mac, mac, netip.MustParseAddrPort("198.18.0.1:1024"), netip.MustParseAddrPort("10.0.0.1:80"), tcpSYN)
	arp := append([]byte(nil), ipv4...)
	arp[12], arp[13] = 0x08, 0x06
	for _, tc := range []struct {
		name  string
		frame []byte
		ret   uint32
		count uint64
	}{
		{"IPv4", ipv4, xdpDrop, 1},
		{"IPv4 again", ipv4, xdpDrop, 2},
		{"ARP", arp, xdpPass, 2},
	} {
		ret, err := c.prog.Run(&ebpf.RunOptions{Data: tc.frame})
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.total()
		if err != nil {
			t.Fatal(err)
		}
		if ret != tc.ret || n != tc.count {
			t.Errorf("%s: returned %d, count %d; want %d, %d", tc.name, ret, n, tc.ret, tc.count)
		}
	}
}

// TestSenderProgram: each run writes the next frame of the list, in
// order and round again, and returns XDP_TX.
func TestSenderProgram(t *testing.T) {
	needBPF(t)
	dmac, smac := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	var frames [][]byte
	for p := range 3 {
		frames = append(frames, tcpFrame(dmac, smac, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), uint16(1024+p)),
			netip.MustParseAddrPort("10.0.0.1:80"), tcpACK))
	}
	s, err := newSender(frames)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The input is something else entirely: the program must overwrite
	// all the headers (live-frame mode recycles rewritten pages).
	in := make([]byte, 60)
	for i := range in {
		in[i] = 0xee
	}
	out := make([]byte, 60)
	for i := range 5 {
		ret, err := s.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		want := frames[i%3]
		if ret != 3 || !bytes.Equal(out[:54], want[:54]) {
			t.Errorf("run %d: returned %d, frame\n% x\nwant\n% x", i, ret, out[:54], want[:54])
		}
	}
}

// TestFlowRecorder: an IPv4 frame is recorded by source address and port
// with its destination MAC, and dropped; a later frame of the flow
// overwrites it; ARP passes, unrecorded; reset forgets.
func TestFlowRecorder(t *testing.T) {
	needBPF(t)
	r, err := newFlowRecorder(16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := netip.MustParseAddrPort("198.18.0.7:40001")
	dst := netip.MustParseAddrPort("10.0.0.1:80")
	smac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	for _, dmac := range []net.HardwareAddr{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}} {
		ret, err := r.prog.Run(&ebpf.RunOptions{Data: tcpFrame(dmac, smac, src, dst, tcpSYN)})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := r.where(src)
		if ret != xdpDrop || !ok || got.String() != dmac.String() {
			t.Errorf("frame to %v: returned %d, recorded %v %v", dmac, ret, got, ok)
		}
	}
	other := netip.MustParseAddrPort("198.18.0.7:40002")
	if _, ok := r.where(other); ok {
		t.Errorf("%v recorded, never sent", other)
	}
	arp := tcpFrame(smac, smac, other, dst, tcpSYN)
	arp[12], arp[13] = 0x08, 0x06
	if ret, err := r.prog.Run(&ebpf.RunOptions{Data: arp}); err != nil || ret != xdpPass {
		t.Errorf("ARP: returned %d, %v; want XDP_PASS", ret, err)
	}
	if _, ok := r.where(other); ok {
		t.Error("ARP frame recorded")
	}
	if err := r.reset(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.where(src); ok {
		t.Error("recorded after reset")
	}
}
