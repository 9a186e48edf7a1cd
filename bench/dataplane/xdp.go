package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"tandem/internal/lab"
)

// XDP on the lab's veths: the programs the bench attaches beside Tandem's,
// and what the hosts need so that frames forwarded by XDP arrive intact.

// XDP return codes (include/uapi/linux/bpf.h).
const (
	xdpDrop = 1
	xdpPass = 2
)

// passProgram passes every frame to the stack. On the switch side of the
// director's veth it lets the director's XDP_TX frames through: a veth
// transmits XDP frames only to a peer that runs an XDP program (the Limits
// of internal/lvs/xdp's README).
func passProgram() (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
}

// ipv4Frame starts the bench's receiving programs: R2 is the frame, and
// they jump to "pass" unless it holds minLen bytes and is IPv4.
func ipv4Frame(minLen int32) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // ctx->data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // ctx->data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, minLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // EtherType, network order
		asm.JNE.Imm(asm.R5, 0x0008, "pass"),       // 0x0800 read little-endian
	}
}

// dropOrPass ends them: XDP_DROP, or XDP_PASS at "pass".
var dropOrPass = asm.Instructions{
	asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
	asm.Return(),
	asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
	asm.Return(),
}

// frameCounter is an XDP program that counts and drops every IPv4 frame
// and passes the others (ARP, so that the director can still resolve the
// real servers' MACs behind it): a receiver that costs a few nanoseconds a
// frame, so that the receiving stack is never the bottleneck.
type frameCounter struct {
	prog   *ebpf.Program
	counts *ebpf.Map // per-CPU array of one u64
}

func newFrameCounter() (*frameCounter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_frames", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("frame counter map: %w", err)
	}
	insns := append(ipv4Frame(14), // an Ethernet header
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord), // per CPU: no atomics needed
	)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_count", Type: ebpf.XDP, License: "GPL", Instructions: append(insns, dropOrPass...)})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("frame counter program: %w", err)
	}
	return &frameCounter{prog: p, counts: m}, nil
}

// total is the number of frames counted so far, on every CPU.
func (c *frameCounter) total() (uint64, error) {
	var per []uint64
	if err := c.counts.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("frame counter: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

func (c *frameCounter) Close() error { return errors.Join(c.prog.Close(), c.counts.Close()) }

// txChecksumOff turns off TX checksum offload on iface of each node: a
// veth leaves TCP checksums to be completed later, which a frame forwarded
// by XDP never gets (internal/lvs/xdp's README, Limits), so the hosts
// compute their own, as they would in front of a NIC.
func txChecksumOff(ctx context.Context, l *lab.Lab, iface string, nodes ...string) error {
	ethtool, err := exec.LookPath("ethtool")
	if err != nil {
		return errors.New("ethtool not found (apt-get install ethtool): the XDP cases need the hosts' TX checksum offload off")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if out, err := l.Command(ctx, n, ethtool, "-K", iface, "tx", "off").CombinedOutput(); err != nil {
			return fmt.Errorf("ethtool -K %s tx off in %s: %w: %s", iface, n, err, out)
		}
	}
	return nil
}

// flowRecorder is an XDP program that records, for each IPv4 frame, its
// destination MAC by source address and port (the last one seen), and
// drops it; other frames (ARP) pass. On the switch side of a director's
// veth it tells which real server the director sent each flow to.
type flowRecorder struct {
	prog *ebpf.Program
	seen *ebpf.Map // flowKey -> destination MAC (6 bytes, 2 zero)
}

// flowKey is the recorder's key: source address, source port (network
// order), two zero bytes.
func flowKey(src netip.AddrPort) [8]byte {
	var k [8]byte
	a := src.Addr().As4()
	copy(k[:4], a[:])
	k[4], k[5] = byte(src.Port()>>8), byte(src.Port())
	return k
}

func newFlowRecorder(flows int) (*flowRecorder, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_flows", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: uint32(flows)})
	if err != nil {
		return nil, fmt.Errorf("flow recorder map: %w", err)
	}
	insns := append(ipv4Frame(36), // Ethernet, IPv4 (no options), TCP ports
		asm.LoadMem(asm.R5, asm.R2, 26, asm.Word), // source address
		asm.StoreMem(asm.RFP, -8, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, 34, asm.Half), // source port
		asm.StoreMem(asm.RFP, -4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word), // destination MAC
		asm.StoreMem(asm.RFP, -16, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
		asm.StoreMem(asm.RFP, -12, asm.R5, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_record", Type: ebpf.XDP, License: "GPL", Instructions: append(insns, dropOrPass...)})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("flow recorder program: %w", err)
	}
	return &flowRecorder{prog: p, seen: m}, nil
}

// where returns the destination MAC recorded for src, if any.
func (r *flowRecorder) where(src netip.AddrPort) (net.HardwareAddr, bool) {
	var v [8]byte
	if err := r.seen.Lookup(flowKey(src), &v); err != nil {
		return nil, false
	}
	return net.HardwareAddr(v[:6]), true
}

// reset forgets every flow.
func (r *flowRecorder) reset() error {
	var k, v [8]byte
	var keys [][8]byte
	for it := r.seen.Iterate(); it.Next(&k, &v); {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := r.seen.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (r *flowRecorder) Close() error { return errors.Join(r.prog.Close(), r.seen.Close()) }
