package xdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"tandem/internal/lab"
)

// outer wraps inner (an Ethernet frame) in an outer IPv4 header of
// protocol proto from 10.0.0.1 to 10.0.0.2, with the extra bytes between
// them (a UDP and GUE header), keeping inner's Ethernet addresses.
func outer(inner []byte, proto byte, extra []byte) []byte {
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(extra)+len(inner)-14))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	out := append(append([]byte{}, inner[:12]...), 0x08, 0x00)
	return append(append(append(out, ip...), extra...), inner[14:]...)
}

// udpGUE is a UDP header to port (length for payload n) and, with gue,
// the 4 bytes of a GUE header.
func udpGUE(port uint16, n int, gue []byte) []byte {
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], 50000)
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(gue)+n))
	return append(u, gue...)
}

// TestDecap runs the decapsulation program (BPF_PROG_TEST_RUN) on IPIP,
// GUE (versions 0 and 1, with optional fields) and other packets: it
// gives back the inner frame of each tunnel packet and passes the rest
// unchanged.
func TestDecap(t *testing.T) {
	lab.RequireRoot(t)
	var objs decapObjects
	if err := loadDecapObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	if err := objs.GuePorts.Put(htons(6080), uint8(1)); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	inner := frame(mac, netip.MustParseAddr("10.9.9.9"), 40000, netip.MustParseAddrPort("10.1.1.1:80"), 0, 64, true, 50)
	n := len(inner) - 14
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte // nil: unchanged
	}{
		{"ipip", outer(inner, 4, nil), inner},
		{"gue", outer(inner, 17, udpGUE(6080, n, []byte{0, 4, 0, 0})), inner},
		{"gue with 8 bytes of options", outer(inner, 17, udpGUE(6080, n, []byte{2, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})), inner},
		{"gue version 1", outer(inner, 17, udpGUE(6080, n, nil)), inner},
		{"gue to another port", outer(inner, 17, udpGUE(6081, n, []byte{0, 4, 0, 0})), nil},
		{"gue control message", outer(inner, 17, udpGUE(6080, n, []byte{0x20, 4, 0, 0})), nil},
		{"gue of protocol 47", outer(inner, 17, udpGUE(6080, n, []byte{0, 47, 0, 0})), nil},
		{"plain tcp", inner, nil},
		{"gre", outer(inner, 47, []byte{0, 0, 8, 0}), nil},
	} {
		out := make([]byte, len(tc.in)+64)
		opts := &ebpf.RunOptions{Data: tc.in, DataOut: out}
		ret, err := objs.XdpDecap.Run(opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := tc.want
		if want == nil {
			want = tc.in
		}
		if ret != xdpPass || !bytes.Equal(opts.DataOut, want) {
			t.Errorf("%s: verdict %d, frame\n %x\nwant\n %x", tc.name, ret, opts.DataOut, want)
		}
	}
}

// TestDecapPin: a pinned decapsulator stays attached after its process
// lets go of it (as `tandem realserver up` exits), until DetachDecap;
// Close of an unpinned one detaches it.
func TestDecapPin(t *testing.T) {
	f := &fixture{dir: "dir"}
	f.l = lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.85.0.1/24")}}}}}})
	dir := filepath.Join(bpffs(t), "tandem")
	var d *Decap
	if err := f.l.Do("dir", func() (err error) {
		if d, err = AttachDecap("eth0", []uint16{6080}); err != nil {
			return err
		}
		return d.Pin(dir)
	}); err != nil {
		t.Fatal(err)
	}
	// What the end of the process does: its file descriptors close.
	d.link.Close()
	d.objs.Close()
	if !f.attached(t, "eth0")["eth0"] || len(pins(t, dir)) != 1 {
		t.Fatalf("after the process let go: attached %v, pins %v; want attached, one pin", f.attached(t, "eth0"), pins(t, dir))
	}
	if err := f.l.Do("dir", func() error { return DetachDecap(dir, "eth0") }); err != nil {
		t.Fatal(err)
	}
	if f.attached(t, "eth0")["eth0"] || len(pins(t, dir)) != 0 {
		t.Errorf("after DetachDecap: attached %v, pins %v; want neither", f.attached(t, "eth0"), pins(t, dir))
	}
	if err := f.l.Do("dir", func() error { return DetachDecap(dir, "eth0") }); err != nil {
		t.Errorf("DetachDecap with nothing attached: %v", err)
	}
	if err := f.l.Do("dir", func() (err error) {
		if d, err = AttachDecap("eth0", nil); err != nil {
			return err
		}
		return d.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if f.attached(t, "eth0")["eth0"] {
		t.Error("after Close: still attached")
	}
}
