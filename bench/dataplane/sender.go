package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// sender is the packets-per-second part's generator, in the kernel: an
// XDP program run with BPF_PROG_TEST_RUN in live-frame mode
// (BPF_F_TEST_XDP_LIVE_FRAMES, the mechanism of xdp-tools' trafficgen).
// Each run writes the next of a list of frames into the packet and
// returns XDP_TX, which live-frame mode turns into a transmission out of
// the "ingress" interface given in the context: the switch side of the
// director's veth, so the frames land in the director's NAPI ring as XDP
// frames, the way a NIC's driver hands its receive buffers to XDP (no
// socket buffer is built before the director's program runs). Debian's
// trafgen could not drive a veth here: in a network namespace it cannot
// raise the socket buffer sysctls and exits on the first EAGAIN, and a
// socket's frames reach the director as socket buffers that veth's XDP
// must first copy into a page.
type sender struct {
	prog    *ebpf.Program
	counter *ebpf.Map // per-CPU u64: runs so far
	frames  *ebpf.Map // index -> frame (frameCopy bytes)
	n       int       // frames
	sent    atomic.Uint64
}

const (
	// frameCopy is how much of each 60-byte frame the program writes: all
	// of the headers (54 bytes), in 8-byte words.
	frameCopy = 56
	// genRepeat is the runs of one BPF_PROG_TEST_RUN call.
	genRepeat = 1 << 15
)

func newSender(frames [][]byte) (*sender, error) {
	if len(frames) == 0 {
		return nil, errors.New("sender: no frames")
	}
	s := &sender{n: len(frames)}
	var err error
	if s.counter, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_gen_n", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if s.frames, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_gen_f", Type: ebpf.Array, KeySize: 4, ValueSize: frameCopy, MaxEntries: uint32(len(frames))}); err != nil {
		s.Close()
		return nil, fmt.Errorf("sender: %w", err)
	}
	keys := make([]uint32, len(frames))
	vals := make([][frameCopy]byte, len(frames))
	for i, f := range frames {
		if len(f) < frameCopy {
			s.Close()
			return nil, fmt.Errorf("sender: frame %d: %d bytes", i, len(f))
		}
		keys[i] = uint32(i)
		copy(vals[i][:], f)
	}
	if _, err := s.frames.BatchUpdate(keys, vals, nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("sender: frames: %w", err)
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// i = runs++ % n
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, s.counter.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Imm(asm.R8, 1),
		asm.StoreMem(asm.R0, 0, asm.R8, asm.DWord),
		asm.Mod.Imm(asm.R7, int32(len(frames))),
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		// frame = frames[i]
		asm.LoadMapPtr(asm.R1, s.frames.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // ctx->data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // ctx->data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, frameCopy),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),
	}
	// Every byte, MACs included: live-frame mode recycles pages that the
	// director's program has rewritten.
	for off := int16(0); off < frameCopy; off += 8 {
		insns = append(insns, asm.LoadMem(asm.R5, asm.R0, off, asm.DWord), asm.StoreMem(asm.R2, off, asm.R5, asm.DWord))
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 3), // XDP_TX
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	if s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_gen", Type: ebpf.XDP, License: "GPL", Instructions: insns}); err != nil {
		s.Close()
		return nil, fmt.Errorf("sender: program: %w", err)
	}
	return s, nil
}

// run transmits out of interface ifindex until stop is closed, from the
// calling thread pinned to cpu. Call it on a thread in ifindex's
// network namespace (lab.DoPorts).
func (s *sender) run(stop <-chan struct{}, ifindex, cpu int, first []byte) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sender: pin to CPU %d: %w", cpu, err)
	}
	defer func() {
		// The thread goes back to the Go runtime: let it run anywhere.
		var all unix.CPUSet
		for i := range runtime.NumCPU() {
			all.Set(i)
		}
		unix.SchedSetaffinity(0, &all)
	}()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := s.burst(ifindex, first, genRepeat); err != nil {
			return err
		}
	}
}

// burst transmits the next n frames of the list out of ifindex, from
// the calling thread (in ifindex's namespace).
func (s *sender) burst(ifindex int, first []byte, n uint32) error {
	_, err := s.prog.Run(&ebpf.RunOptions{Data: first, Repeat: n, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: xdpMD{DataEnd: uint32(len(first)), IngressIfindex: uint32(ifindex)}})
	if err != nil {
		return fmt.Errorf("sender: BPF_PROG_TEST_RUN (live frames): %w", err)
	}
	s.sent.Add(uint64(n))
	return nil
}

func (s *sender) Close() error {
	return errors.Join(s.prog.Close(), s.counter.Close(), s.frames.Close())
}
