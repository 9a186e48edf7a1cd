package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/nft"
)

// Packets per second that one director core forwards, LVS-DR, XDP against
// nftables. The lab is one segment (seed000's shape): the director "dir"
// holds the VIP on eth0, rs1 and rs2 only answer ARP. The bench's sender
// (sender.go) sends 64-byte TCP SYNs and ACKs (SYN then ACK on each of
// 64,512 client ports) from the switch side of dir's veth straight into
// dir's eth0, with no bridge on the way; dir forwards each frame back out of eth0 to a real
// server's MAC (XDP_TX, or nft's fwd), and the switch side of the veth
// counts and drops it with frameCounter before the bridge. So every hop
// of the measured path is a veth, and the receiving stack never runs.
//
// Where the work runs: a veth delivers to a peer through a NAPI instance
// when the peer runs XDP or has GRO on (the bench turns GRO on dir's eth0
// so that the nftables case has one too), and threaded NAPI puts that
// instance in a kernel thread of its own. The bench pins dir's NAPI
// thread to CPU 1 and everything else (the sender; the receiving port's
// NAPI thread) to CPU 0, and reads the
// director's CPU time from its thread's schedstat: that is the XDP
// program or the nft ingress hook and fwd, the veth's receive and its
// transmit to the peer. pps per core = forwarded pps / the thread's share
// of a CPU.

var (
	ppsVIP   = netip.MustParseAddrPort("10.84.0.100:80")
	ppsReals = []netip.Addr{netip.MustParseAddr("10.84.0.11"), netip.MustParseAddr("10.84.0.12")}
)

const (
	ppsGenCPU = 0
	ppsDirCPU = 1
	ppsWarmup = time.Second
	ppsTarget = 3.0 // XDP >= 3 x nftables per core
)

func ppsSpec() lab.Spec {
	nodes := []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: lab.SwitchLAN,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.84.0.1/24"), netip.PrefixFrom(ppsVIP.Addr(), 32)}}}}}
	for i, a := range ppsReals {
		nodes = append(nodes, lab.Node{Name: realNames[i], Ifaces: []lab.Iface{{Name: "eth0", Switch: lab.SwitchLAN,
			Addrs: []netip.Prefix{netip.PrefixFrom(a, 24)}}}})
	}
	return lab.Spec{Nodes: nodes}
}

// ppsService is rr DR over rs1 and rs2.
func ppsService() lvs.VirtualServer {
	vs := lvs.VirtualServer{Service: lvs.Service{
		ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: ppsVIP.Addr(), Port: ppsVIP.Port()},
		Scheduler:  lvs.RoundRobin, Method: lvs.DR}}
	for _, a := range ppsReals {
		vs.Dests = append(vs.Dests, lvs.Dest{Addr: netip.AddrPortFrom(a, 80), Weight: 1})
	}
	return vs
}

// ppsFrames are the sender's frames: from client, to the VIP, a 64-byte
// SYN and then an ACK from each source port 1024-65535.
func ppsFrames(dmac, smac net.HardwareAddr, client netip.Addr, vip netip.AddrPort) [][]byte {
	var out [][]byte
	for p := 1024; p <= 65535; p++ {
		src := netip.AddrPortFrom(client, uint16(p))
		out = append(out, tcpFrame(dmac, smac, src, vip, tcpSYN), tcpFrame(dmac, smac, src, vip, tcpACK))
	}
	return out
}

// ppsRun is one measured run of one data plane.
type ppsRun struct {
	Dataplane string  `json:"dataplane"`
	Seconds   float64 `json:"seconds"`
	// Offered is what the sender put on the veth (delivered, or dropped
	// by it because dir's queue was full), Forwarded what the receiver counted,
	// both per second.
	// Director is what the data plane's own counters counted (tandem
	// lvs list's packets), per second: close to Forwarded unless frames
	// were lost after the director.
	Offered   float64 `json:"offered_pps"`
	Director  float64 `json:"director_pps"`
	Forwarded float64 `json:"forwarded_pps"`
	// DirectorCPU is the share of one CPU that dir's NAPI thread used.
	DirectorCPU float64 `json:"director_cpu"`
	PerCore     float64 `json:"pps_per_core"`
	// CPUBusy is each CPU's busy share, the whole machine's load.
	CPUBusy []float64 `json:"cpu_busy"`
}

// perCore is forwarded pps per fully used core.
func perCore(forwarded, cpuShare float64) float64 {
	if cpuShare <= 0 {
		return 0
	}
	return forwarded / cpuShare
}

// ppsReport is the packets-per-second part.
type ppsReport struct {
	Setup string   `json:"setup"`
	IPVS  string   `json:"ipvs"`
	Runs  []ppsRun `json:"runs"`
	XDP   ppsRun   `json:"xdp"`      // median run by pps per core
	NFT   ppsRun   `json:"nftables"` // median run by pps per core
	// RoundRatios are XDP / nftables per core of each round (the two
	// runs next to each other in time); Ratio is their median, the
	// figure the target applies to: pairing cancels the drift of the
	// machine's other load, which moves each data plane's figure more
	// than the ratio. MedianRatio is XDP's median over nftables'.
	RoundRatios []float64 `json:"round_ratios"`
	Ratio       float64   `json:"ratio"`
	MedianRatio float64   `json:"ratio_of_medians"`
	Target      float64   `json:"target"`
	Pass        bool      `json:"pass"`
}

// ppsMedians fills XDP, NFT, the ratios and Pass from Runs.
func (r *ppsReport) ppsMedians() {
	runs := map[string][]ppsRun{}
	for _, x := range r.Runs {
		runs[x.Dataplane] = append(runs[x.Dataplane], x)
	}
	r.RoundRatios = nil
	for i := range min(len(runs[caseXDP]), len(runs[caseNFT])) {
		if n := runs[caseNFT][i].PerCore; n > 0 {
			r.RoundRatios = append(r.RoundRatios, runs[caseXDP][i].PerCore/n)
		}
	}
	r.Ratio = median(r.RoundRatios)
	med := func(dp string) ppsRun {
		rs := slices.Clone(runs[dp])
		if len(rs) == 0 {
			return ppsRun{Dataplane: dp}
		}
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].PerCore < rs[j].PerCore })
		return rs[(len(rs)-1)/2]
	}
	r.XDP, r.NFT = med(caseXDP), med(caseNFT)
	r.MedianRatio = 0
	if r.NFT.PerCore > 0 {
		r.MedianRatio = r.XDP.PerCore / r.NFT.PerCore
	}
	r.Target = ppsTarget
	r.Pass = r.Ratio >= r.Target
}

// median is the middle value of vs (the lower middle one for an even
// count, as medians picks runs), 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// ipvsNote says why IPVS is not measured.
func ipvsNote() string {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return "IPVS: not measured: this kernel has no IPVS (/proc/net/ip_vs is missing)"
	}
	return "IPVS: not measured: the bench has no IPVS case yet"
}

// benchPPS measures runs rounds of XDP and nftables, interleaved.
func benchPPS(ctx context.Context, d time.Duration, runs int) (rep ppsReport, err error) {
	rep.IPVS = ipvsNote()
	ncpu := runtime.NumCPU()
	dirCPU := ppsDirCPU
	if ncpu < 2 {
		dirCPU = ppsGenCPU
	}
	rep.Setup = fmt.Sprintf("sender (CPU %d) -> veth -> dir eth0: NAPI thread on CPU %d runs the data plane, "+
		"sends back out of eth0 -> veth peer: XDP counter drops (its NAPI thread on CPU %d); 64-byte TCP SYN+ACK over 64,512 flows; "+
		"%d CPUs; pps per core = forwarded pps / the director thread's CPU share", ppsGenCPU, dirCPU, ppsGenCPU, ncpu)
	ip, err := lab.IPPath()
	if err != nil {
		return rep, err
	}
	l, pins, closeLab, err := newXDPLab(ppsSpec())
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, closeLab()) }()
	counter, err := newFrameCounter()
	if err != nil {
		return rep, err
	}
	defer counter.Close()
	ports, detach, err := l.AttachXDPPorts("dir", lab.SwitchLAN, counter.prog)
	if err != nil {
		return rep, err
	}
	defer detach()
	port := ports[0]

	// NAPI on dir's eth0 for nftables too (GRO), then threaded NAPI on
	// both ends.
	if err := nsShell(ctx, ip, l.NSName("dir"), "ethtool -K eth0 gro on && echo 1 >/sys/class/net/eth0/threaded"); err != nil {
		return rep, err
	}
	if err := nsShell(ctx, ip, l.Name(), "echo 1 >/sys/class/net/"+port+"/threaded"); err != nil {
		return rep, err
	}
	var dirMAC net.HardwareAddr
	var dirIndex int
	if err := l.Do("dir", func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err == nil {
			dirMAC, dirIndex = ifc.HardwareAddr, ifc.Index
		}
		return err
	}); err != nil {
		return rep, err
	}
	var portMAC net.HardwareAddr
	var portIndex int
	if err := l.DoPorts("dir", lab.SwitchLAN, func([]string) error {
		ifc, err := net.InterfaceByName(port)
		if err == nil {
			portMAC, portIndex = ifc.HardwareAddr, ifc.Index
		}
		return err
	}); err != nil {
		return rep, err
	}
	frames := ppsFrames(dirMAC, portMAC, netip.MustParseAddr("198.18.0.1"), ppsVIP)
	snd, err := newSender(frames)
	if err != nil {
		return rep, err
	}
	defer snd.Close()
	nsFD, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName("dir")))
	if err != nil {
		return rep, err
	}
	defer nsFD.Close()

	env := ppsEnv{l: l, snd: snd, first: frames[0], portIndex: portIndex,
		dirIndex: dirIndex, dirCPU: dirCPU, counter: counter, d: d}
	open := map[string]func() (lvs.Kernel, func() error, error){
		caseXDP: func() (lvs.Kernel, func() error, error) { return openXDP(l, "dir", pins) },
		caseNFT: func() (lvs.Kernel, func() error, error) {
			k, err := nft.New(nft.WithNetNS(int(nsFD)))
			if err != nil {
				return nil, nil, err
			}
			return k, k.Close, nil
		},
	}
	for range runs {
		for _, dp := range []string{caseXDP, caseNFT} {
			k, closeK, err := open[dp]()
			if err != nil {
				return rep, fmt.Errorf("%s: %w", dp, err)
			}
			fmt.Fprintf(os.Stderr, "dataplane: pps %-8s ...", dp)
			var r ppsRun
			err = reconcileIn(ctx, l, "dir", k, ppsService())
			if err == nil {
				r, err = env.measure(ctx, dp, k)
			}
			if err = errors.Join(err, closeK()); err != nil {
				fmt.Fprintln(os.Stderr)
				return rep, fmt.Errorf("%s: %w", dp, err)
			}
			fmt.Fprintf(os.Stderr, " %.0f pps forwarded (offered %.0f), director CPU %.0f%%: %.0f pps per core\n",
				r.Forwarded, r.Offered, 100*r.DirectorCPU, r.PerCore)
			rep.Runs = append(rep.Runs, r)
		}
	}
	rep.ppsMedians()
	return rep, nil
}

// reconcileIn drives k to vs from node's namespace.
func reconcileIn(ctx context.Context, l *lab.Lab, node string, k lvs.Kernel, vs lvs.VirtualServer) error {
	d, err := lvs.NewDesired(vs)
	if err != nil {
		return err
	}
	return l.Do(node, func() error {
		_, err := lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true }).Reconcile(ctx, d)
		return err
	})
}

// nsShell runs a shell command in namespace ns with `ip netns exec`, which
// mounts a /sys of that namespace (the bench's own /sys shows the host's
// interfaces, whatever its thread's namespace).
func nsShell(ctx context.Context, ip, ns, script string) error {
	out, err := exec.CommandContext(ctx, ip, "netns", "exec", ns, "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("in %s: %s: %w: %s", ns, script, err, out)
	}
	return nil
}

// ppsEnv is what a measured run needs.
type ppsEnv struct {
	l                   *lab.Lab
	snd                 *sender
	first               []byte // the sender's initial frame
	portIndex, dirIndex int
	dirCPU              int
	counter             *frameCounter
	d                   time.Duration
}

// ppsSample is what the bench reads at each end of a measured run.
type ppsSample struct {
	at         time.Time
	counted    uint64
	offered    uint64 // the sender's frames
	director   uint64 // packets the data plane's counters counted
	dirRuntime uint64 // ns on CPU of dir's NAPI thread
	cpus       []cpuTimes
}

// measure pins the NAPI threads, runs the sender, and samples after the
// warm-up and after d.
func (e ppsEnv) measure(ctx context.Context, dp string, k lvs.Kernel) (ppsRun, error) {
	r := ppsRun{Dataplane: dp}
	var dirPID, sinkPID int
	err := e.l.Do("dir", func() (err error) { dirPID, err = napiThread(e.dirIndex); return err })
	if err == nil {
		err = e.l.DoPorts("dir", lab.SwitchLAN, func([]string) (err error) { sinkPID, err = napiThread(e.portIndex); return err })
	}
	if err != nil {
		return r, err
	}
	for pid, cpu := range map[int]int{dirPID: e.dirCPU, sinkPID: ppsGenCPU} {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			return r, fmt.Errorf("pin NAPI thread %d to CPU %d: %w", pid, cpu, err)
		}
	}
	// The receiver shares CPU 0 with the sender: real-time priority lets
	// it drain its ring as soon as the director fills it, rather than when
	// the scheduler next turns from the sender (a 256-frame ring
	// overflows in well under a time slice).
	if err := unix.SchedSetAttr(sinkPID, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		return r, fmt.Errorf("receiver's NAPI thread %d: SCHED_FIFO: %w", sinkPID, err)
	}
	stopSend := make(chan struct{})
	done := make(chan struct{}) // closed when the sender has returned
	var sendErr error
	go func() {
		sendErr = e.l.DoPorts("dir", lab.SwitchLAN, func([]string) error { return e.snd.run(stopSend, e.portIndex, ppsGenCPU, e.first) })
		close(done)
	}()
	stop := func() error {
		select {
		case <-stopSend:
		default:
			close(stopSend)
		}
		<-done
		return sendErr
	}
	defer stop()
	sample := func() (ppsSample, error) {
		s := ppsSample{at: time.Now()}
		var err error
		if s.counted, err = e.counter.total(); err != nil {
			return s, err
		}
		if s.dirRuntime, err = readSchedRuntime(dirPID); err != nil {
			return s, err
		}
		s.offered = e.snd.sent.Load()
		if s.director, err = forwardedBy(e.l, k); err != nil {
			return s, err
		}
		s.cpus, err = readCPUs()
		return s, err
	}
	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return fmt.Errorf("the sender stopped: %v", sendErr)
		case <-time.After(d):
			return nil
		}
	}
	if err := wait(ppsWarmup); err != nil {
		return r, err
	}
	s0, err := sample()
	if err != nil {
		return r, err
	}
	if err := wait(e.d); err != nil {
		return r, err
	}
	s1, err := sample()
	if err != nil {
		return r, err
	}
	if err := stop(); err != nil {
		return r, err
	}
	r = ppsBetween(dp, s0, s1)
	if r.Forwarded == 0 {
		return r, fmt.Errorf("nothing forwarded (offered %.0f pps)", r.Offered)
	}
	return r, nil
}

// forwardedBy sums the packets counted by k's real servers.
func forwardedBy(l *lab.Lab, k lvs.Kernel) (uint64, error) {
	var n uint64
	err := l.Do("dir", func() error {
		cs, err := k.Counters()
		for _, ds := range cs {
			for _, d := range ds {
				n += d.Packets
			}
		}
		return err
	})
	return n, err
}

// ppsBetween computes a run's rates from two samples.
func ppsBetween(dp string, a, b ppsSample) ppsRun {
	r := ppsRun{Dataplane: dp, Seconds: b.at.Sub(a.at).Seconds()}
	if r.Seconds <= 0 {
		return r
	}
	r.Forwarded = float64(b.counted-a.counted) / r.Seconds
	r.Offered = float64(b.offered-a.offered) / r.Seconds
	r.Director = float64(b.director-a.director) / r.Seconds
	r.DirectorCPU = float64(b.dirRuntime-a.dirRuntime) / 1e9 / r.Seconds
	r.PerCore = perCore(r.Forwarded, r.DirectorCPU)
	for i := range min(len(a.cpus), len(b.cpus)) {
		r.CPUBusy = append(r.CPUBusy, cpuBetween(a.cpus[i], b.cpus[i]).Busy)
	}
	return r
}

// readSchedRuntime is the time pid has run on a CPU, in nanoseconds (the
// first field of /proc/<pid>/schedstat).
func readSchedRuntime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, err
	}
	return parseSchedstat(string(b))
}

func parseSchedstat(s string) (uint64, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return 0, fmt.Errorf("schedstat: unexpected %q", s)
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// Generic netlink family "netdev" (include/uapi/linux/netdev.h).
const (
	netdevCmdNAPIGet  = 11
	netdevANAPIIndex  = 1 // NETDEV_A_NAPI_IFINDEX
	netdevANAPIThread = 4 // NETDEV_A_NAPI_PID
)

// napiThread returns the PID of the kernel thread that polls the NAPI
// instance of interface ifindex (one: a veth has one receive queue here),
// in the calling thread's network namespace. Threaded NAPI must be on.
func napiThread(ifindex int) (int, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fam, err := c.GetFamily("netdev")
	if err != nil {
		return 0, fmt.Errorf("generic netlink family netdev: %w", err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(netdevANAPIIndex, uint32(ifindex))
	data, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: netdevCmdNAPIGet, Version: fam.Version}, Data: data},
		fam.ID, netlink.Request|netlink.Dump)
	if err != nil {
		return 0, fmt.Errorf("netdev napi-get: %w", err)
	}
	var pids []int
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return 0, err
		}
		var idx, pid uint32
		for ad.Next() {
			switch ad.Type() {
			case netdevANAPIIndex:
				idx = ad.Uint32()
			case netdevANAPIThread:
				pid = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			return 0, err
		}
		if idx == uint32(ifindex) && pid != 0 {
			pids = append(pids, int(pid))
		}
	}
	if len(pids) != 1 {
		return 0, fmt.Errorf("interface %d: NAPI threads %v, want one (threaded NAPI off?)", ifindex, pids)
	}
	return pids[0], nil
}
