package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/nft"
	"tandem/internal/lvs/xdp"
)

// Connection consistency: flows are sent through Tandem's real XDP program
// (BPF_PROG_TEST_RUN on crafted frames, in the director's namespace), with
// the real xdp.Kernel programmed by lvs's reconciler; the real server each
// frame went to is read from its rewritten destination MAC.

var (
	ccVIP   = netip.MustParseAddrPort("10.82.0.100:80")
	ccReals = []string{"rs1", "rs2", "rs3", "rs4"}
)

const (
	ccWeightRS = "rs1" // whose weight changes, 1 -> 2
	ccLeaving  = "rs4" // who is removed
)

// ccSpec is one segment: the director (holding the VIP) and four real
// servers, which only need to answer ARP.
func ccSpec() lab.Spec {
	nodes := []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: lab.SwitchLAN,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.82.0.1/24"), netip.PrefixFrom(ccVIP.Addr(), 32)}}}}}
	for i, rs := range ccReals {
		nodes = append(nodes, lab.Node{Name: rs, Ifaces: []lab.Iface{{Name: "eth0", Switch: lab.SwitchLAN,
			Addrs: []netip.Prefix{netip.PrefixFrom(ccRealAddr(i), 24)}}}})
	}
	return lab.Spec{Nodes: nodes}
}

func ccRealAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 82, 0, byte(11 + i)}) }

// ccService is the wrr DR service over the real servers with weights.
func ccService(weights map[string]int) lvs.VirtualServer {
	vs := lvs.VirtualServer{Service: lvs.Service{
		ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: ccVIP.Addr(), Port: ccVIP.Port()},
		Scheduler:  lvs.WeightedRoundRobin, Method: lvs.DR}}
	for i, rs := range ccReals {
		if w, ok := weights[rs]; ok {
			vs.Dests = append(vs.Dests, lvs.Dest{Addr: netip.AddrPortFrom(ccRealAddr(i), 80), Weight: w})
		}
	}
	return vs
}

// ccFlow is flow i's client: 10,000 flows from 100 addresses × 100 ports.
func ccFlow(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 100 / 250), byte(i/100%250 + 1)}), uint16(40000+i%100))
}

// consistencyResult is what moved at each change.
type consistencyResult struct {
	Dataplane string         `json:"dataplane"`
	Method    string         `json:"method"` // how flows were sent and read
	Flows     int            `json:"flows"`
	Initial   map[string]int `json:"initial"` // flows per real server at weights 1:1:1:1
	// WeightChange: ccWeightRS's weight 1 -> 2. Moved is how many of the
	// established flows changed server; NewShare is ccWeightRS's share of
	// as many new flows after the change, against InitialShare (its share
	// before), which shows the change took effect.
	WeightChange string  `json:"weight_change"`
	WeightMoved  int     `json:"weight_moved"`
	InitialShare float64 `json:"initial_share"`
	NewShare     float64 `json:"new_share"`
	// Removal: ccLeaving removed. Its flows must all move, the others
	// none; NewOnRemoved counts new flows still sent to it.
	Removal      string `json:"removal"`
	RemovedFlows int    `json:"removed_flows"`
	RemovedMoved int    `json:"removed_moved"`
	OthersMoved  int    `json:"others_moved"`
	NewOnRemoved int    `json:"new_on_removed"`
	Pass         bool   `json:"pass"`
}

// moves counts, between two assignments of the same flows, the flows that
// changed server: among those that were on gone (the removed server, ""
// for none) and among the others.
func moves(before, after []string, gone string) (goneFlows, goneMoved, othersMoved int) {
	for i := range before {
		switch {
		case before[i] == gone:
			goneFlows++
			if after[i] != gone {
				goneMoved++
			}
		case after[i] != before[i]:
			othersMoved++
		}
	}
	return goneFlows, goneMoved, othersMoved
}

// share is name's share of servers.
func share(servers []string, name string) float64 {
	if len(servers) == 0 {
		return 0
	}
	n := 0
	for _, s := range servers {
		if s == name {
			n++
		}
	}
	return float64(n) / float64(len(servers))
}

// judge sets Pass: at the weight change at most 1% of the flows moved and
// the weighted server's share of new flows grew; at the removal every
// flow of the removed server moved, no other flow did, and no new flow
// went to it.
func (r *consistencyResult) judge() {
	r.Pass = r.Flows > 0 && float64(r.WeightMoved) <= 0.01*float64(r.Flows) && r.NewShare > r.InitialShare &&
		r.RemovedFlows > 0 && r.RemovedMoved == r.RemovedFlows && r.OthersMoved == 0 && r.NewOnRemoved == 0
}

// flowPath sends one frame with flags from each of n clients through a
// director and returns the real server each went to.
type flowPath interface {
	send(n int, client func(int) netip.AddrPort, flags byte) ([]string, error)
}

// benchConsistency builds ccSpec's lab and runs the scenario through the
// XDP program (BPF_PROG_TEST_RUN), then through nftables DR (real frames,
// for information: it has no flow table).
func benchConsistency(ctx context.Context, flows int) (res []consistencyResult, err error) {
	fmt.Fprintf(os.Stderr, "dataplane: consistency: %d flows ...", flows)
	defer func() {
		if err != nil {
			fmt.Fprintln(os.Stderr)
		}
	}()
	l, pins, closeLab, err := newXDPLab(ccSpec())
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeLab()) }()

	k, closeK, err := openXDP(l, "dir", pins)
	if err != nil {
		return nil, err
	}
	r, err := scenario(flows, func(w map[string]int) error { return reconcileIn(ctx, l, "dir", k, ccService(w)) },
		func() (flowPath, func() error, error) {
			tp, err := newTestPath(l)
			if err != nil {
				return nil, nil, err
			}
			return tp, tp.prog.Close, nil
		})
	if err = errors.Join(err, closeK()); err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	r.Dataplane, r.Method = caseXDP, "the XDP program run with BPF_PROG_TEST_RUN on crafted frames"
	r.judge()
	res = append(res, r)
	fmt.Fprintf(os.Stderr, " xdp: weight change moved %d, removal %d of %d (others %d);", r.WeightMoved, r.RemovedMoved, r.RemovedFlows, r.OthersMoved)

	nsFD, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName("dir")))
	if err != nil {
		return nil, err
	}
	defer nsFD.Close()
	nk, err := nft.New(nft.WithNetNS(int(nsFD)))
	if err != nil {
		return nil, err
	}
	r, err = scenario(flows, func(w map[string]int) error { return reconcileIn(ctx, l, "dir", nk, ccService(w)) },
		func() (flowPath, func() error, error) { return newTrafficPath(ctx, l, flows) })
	if err = errors.Join(err, nk.Close()); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	r.Dataplane, r.Method = caseNFT, "real frames into the director, the server read at its switch port"
	r.Pass = true // for information: not a target
	res = append(res, r)
	fmt.Fprintf(os.Stderr, " nftables: weight change moved %d, removal %d of %d (others %d)\n", r.WeightMoved, r.RemovedMoved, r.RemovedFlows, r.OthersMoved)
	return res, nil
}

// scenario programs weights 1:1:1:1, opens the path (after the first
// reconcile: the XDP program is attached by it), sends a SYN from each
// flow, changes ccWeightRS's weight to 2 and sends their ACKs and SYNs from
// as many new flows, removes ccLeaving and does the same.
func scenario(flows int, reconcile func(map[string]int) error, open func() (flowPath, func() error, error)) (res consistencyResult, err error) {
	weights := map[string]int{}
	for _, rs := range ccReals {
		weights[rs] = 1
	}
	if err := reconcile(weights); err != nil {
		return res, err
	}
	p, closeP, err := open()
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeP()) }()

	client := func(i int) netip.AddrPort { return ccFlow(i) }
	initial, err := p.send(flows, client, tcpSYN)
	if err != nil {
		return res, err
	}
	res = consistencyResult{Flows: flows, Initial: map[string]int{}, InitialShare: share(initial, ccWeightRS),
		WeightChange: ccWeightRS + " weight 1 -> 2", Removal: ccLeaving + " removed"}
	for _, s := range initial {
		res.Initial[s]++
	}

	weights[ccWeightRS] = 2
	if err := reconcile(weights); err != nil {
		return res, err
	}
	afterWeight, err := p.send(flows, client, tcpACK)
	if err != nil {
		return res, err
	}
	_, _, res.WeightMoved = moves(initial, afterWeight, "")
	newFlows, err := p.send(flows, func(i int) netip.AddrPort { return ccFlow(i + flows) }, tcpSYN)
	if err != nil {
		return res, err
	}
	res.NewShare = share(newFlows, ccWeightRS)

	delete(weights, ccLeaving)
	if err := reconcile(weights); err != nil {
		return res, err
	}
	afterRemoval, err := p.send(flows, client, tcpACK)
	if err != nil {
		return res, err
	}
	res.RemovedFlows, res.RemovedMoved, res.OthersMoved = moves(afterWeight, afterRemoval, ccLeaving)
	newFlows, err = p.send(flows, func(i int) netip.AddrPort { return ccFlow(i + 2*flows) }, tcpSYN)
	if err != nil {
		return res, err
	}
	res.NewOnRemoved = int(share(newFlows, ccLeaving)*float64(flows) + 0.5)
	return res, nil
}

// bpfMountPrefix starts the name of the bench's BPF file systems in the
// temporary directory, followed by the bench's PID: sweepBPFMounts
// removes those of a bench killed hard.
const bpfMountPrefix = "dataplane-bpf-"

// sweepBPFMounts unmounts and removes the BPF file systems of benches
// that are gone (their pins go with them) and returns their paths.
func sweepBPFMounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, dir := range staleBPFMounts(string(b), os.TempDir(), func(pid int) bool { return unix.Kill(pid, 0) != unix.ESRCH }) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return gone, fmt.Errorf("unmount %s: %w", dir, err)
		}
		gone = append(gone, dir)
		os.Remove(dir)
	}
	return gone, nil
}

// staleBPFMounts lists, from /proc/mounts text, the BPF file systems in
// tmp named by bpfMountPrefix whose PID is not alive.
func staleBPFMounts(mounts, tmp string, alive func(int) bool) []string {
	var out []string
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "bpf" || filepath.Dir(f[1]) != tmp {
			continue
		}
		rest, ok := strings.CutPrefix(filepath.Base(f[1]), bpfMountPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && !alive(pid) {
			out = append(out, f[1])
		}
	}
	return out
}

// newXDPLab builds spec and mounts a BPF file system of the bench's own
// in a temporary directory, for the xdp data plane's pins; closeLab
// tears both down.
func newXDPLab(spec lab.Spec) (l *lab.Lab, pins string, closeLab func() error, err error) {
	dir, err := os.MkdirTemp("", bpfMountPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, "", nil, err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		os.Remove(dir)
		return nil, "", nil, fmt.Errorf("mount a BPF file system on %s: %w", dir, err)
	}
	unmount := func() error { return errors.Join(unix.Unmount(dir, unix.MNT_DETACH), os.Remove(dir)) }
	if l, err = lab.New(spec); err != nil {
		return nil, "", nil, errors.Join(err, unmount())
	}
	return l, filepath.Join(dir, "tandem"), func() error { return errors.Join(l.Close(), unmount()) }, nil
}

// openXDP is the xdp data plane in node, pinning in pins; closeK
// detaches it.
func openXDP(l *lab.Lab, node, pins string) (k *xdp.Kernel, closeK func() error, err error) {
	if err := l.Do(node, func() (err error) { k, err = xdp.New(xdp.WithPinDir(pins)); return err }); err != nil {
		return nil, nil, err
	}
	return k, func() error { return l.Do(node, k.Close) }, nil
}

// testPath runs the program attached to the director's eth0 on frames.
type testPath struct {
	l       *lab.Lab
	prog    *ebpf.Program
	ifindex uint32
	mac     net.HardwareAddr  // the director's
	byMAC   map[string]string // real server by MAC
}

func newTestPath(l *lab.Lab) (*testPath, error) {
	tp := &testPath{l: l}
	err := l.Do("dir", func() error {
		ln, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		x := ln.Attrs().Xdp
		if x == nil || !x.Attached {
			return errors.New("no XDP program on the director's eth0 after the reconcile")
		}
		tp.ifindex, tp.mac = uint32(ln.Attrs().Index), ln.Attrs().HardwareAddr
		tp.prog, err = ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("the director's XDP program: %w", err)
	}
	if _, tp.byMAC, err = macs(l); err != nil {
		tp.prog.Close()
		return nil, err
	}
	return tp, nil
}

// macs returns the MAC of dir's eth0 and the real servers by MAC.
func macs(l *lab.Lab) (net.HardwareAddr, map[string]string, error) {
	mac := func(node string) (m net.HardwareAddr, err error) {
		err = l.Do(node, func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err == nil {
				m = ifc.HardwareAddr
			}
			return err
		})
		return m, err
	}
	dir, err := mac("dir")
	if err != nil {
		return nil, nil, err
	}
	byMAC := map[string]string{}
	for _, rs := range ccReals {
		m, err := mac(rs)
		if err != nil {
			return nil, nil, err
		}
		byMAC[m.String()] = rs
	}
	return dir, byMAC, nil
}

// xdpMD is struct xdp_md, the context of BPF_PROG_TEST_RUN: the frame
// arrives on ifindex, queue 0.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// send runs one frame with flags from each of n clients through the
// program and returns the real server each went to.
func (tp *testPath) send(n int, client func(int) netip.AddrPort, flags byte) ([]string, error) {
	out := make([]string, n)
	client0 := net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 1}
	err := tp.l.Do("dir", func() error {
		buf := make([]byte, 128)
		for i := range n {
			f := tcpFrame(tp.mac, client0, client(i), ccVIP, flags)
			ret, err := tp.prog.Run(&ebpf.RunOptions{Data: f, DataOut: buf,
				Context: xdpMD{DataEnd: uint32(len(f)), IngressIfindex: tp.ifindex}})
			if err != nil {
				return fmt.Errorf("BPF_PROG_TEST_RUN: %w", err)
			}
			if ret != 3 && ret != 4 { // XDP_TX, XDP_REDIRECT
				return fmt.Errorf("flow from %v: the program returned %d, not XDP_TX or XDP_REDIRECT", client(i), ret)
			}
			rs, ok := tp.byMAC[net.HardwareAddr(buf[0:6]).String()]
			if !ok {
				return fmt.Errorf("flow from %v: sent to %v, no real server's MAC", client(i), net.HardwareAddr(buf[0:6]))
			}
			out[i] = rs
		}
		return nil
	})
	return out, err
}

// flowsPer lists servers' flow counts in ccReals order.
func flowsPer(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for _, n := range names {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s:%d", n, m[n])
	}
	return s
}

// trafficPath sends real frames into the director's eth0 with the
// in-kernel generator (sender.go) from the switch side of its veth, and
// reads where the director sent each from a flowRecorder there.
type trafficPath struct {
	l      *lab.Lab
	port   int // the switch side of dir's veth
	dirMAC net.HardwareAddr
	rec    *flowRecorder
	byMAC  map[string]string
}

// newTrafficPath turns GRO on on dir's eth0 (a veth accepts XDP frames
// only into a NAPI ring) and attaches the recorder to its switch port.
func newTrafficPath(ctx context.Context, l *lab.Lab, flows int) (flowPath, func() error, error) {
	ip, err := lab.IPPath()
	if err != nil {
		return nil, nil, err
	}
	if err := nsShell(ctx, ip, l.NSName("dir"), "ethtool -K eth0 gro on"); err != nil {
		return nil, nil, err
	}
	rec, err := newFlowRecorder(3 * flows)
	if err != nil {
		return nil, nil, err
	}
	ports, detach, err := l.AttachXDPPorts("dir", lab.SwitchLAN, rec.prog)
	if err != nil {
		rec.Close()
		return nil, nil, err
	}
	p := &trafficPath{l: l, rec: rec}
	closeP := func() error { detach(); return rec.Close() }
	err = l.DoPorts("dir", lab.SwitchLAN, func([]string) error {
		ifc, err := net.InterfaceByName(ports[0])
		if err == nil {
			p.port = ifc.Index
		}
		return err
	})
	if err == nil {
		p.dirMAC, p.byMAC, err = macs(l)
	}
	if err != nil {
		return nil, nil, errors.Join(err, closeP())
	}
	return p, closeP, nil
}

// send sends the frames in bursts of 64 with a pause after each, so that
// the director's 256-frame ring seldom overflows, and sends again those
// not seen at the port (up to 20 times).
func (p *trafficPath) send(n int, client func(int) netip.AddrPort, flags byte) ([]string, error) {
	if err := p.rec.reset(); err != nil {
		return nil, err
	}
	out := make([]string, n)
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	cmac := net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 1}
	for try := 0; try < 20 && len(pending) > 0; try++ {
		frames := make([][]byte, len(pending))
		for j, i := range pending {
			frames[j] = tcpFrame(p.dirMAC, cmac, client(i), ccVIP, flags)
		}
		s, err := newSender(frames)
		if err != nil {
			return nil, err
		}
		err = p.l.DoPorts("dir", lab.SwitchLAN, func([]string) error {
			for sent := 0; sent < len(frames); sent += 64 {
				if err := s.burst(p.port, frames[0], uint32(min(64, len(frames)-sent))); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
			}
			return nil
		})
		if err = errors.Join(err, s.Close()); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond) // the last frames through the director
		var left []int
		for _, i := range pending {
			mac, ok := p.rec.where(client(i))
			if !ok {
				left = append(left, i)
				continue
			}
			rs, ok := p.byMAC[mac.String()]
			if !ok {
				return nil, fmt.Errorf("flow from %v: sent to %v, no real server's MAC", client(i), mac)
			}
			out[i] = rs
		}
		pending = left
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%d of %d flows never came out of the director", len(pending), n)
	}
	return out, nil
}
