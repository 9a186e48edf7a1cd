package main

import (
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

func TestTCPFrame(t *testing.T) {
	dmac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	smac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	src := netip.MustParseAddrPort("198.18.0.1:1024")
	dst := netip.MustParseAddrPort("10.84.0.100:80")
	for _, flags := range []byte{tcpSYN, tcpACK} {
		f := tcpFrame(dmac, smac, src, dst, flags)
		if len(f) != 60 {
			t.Fatalf("frame of %d bytes, want 60 (64 on the wire)", len(f))
		}
		if net.HardwareAddr(f[0:6]).String() != dmac.String() || net.HardwareAddr(f[6:12]).String() != smac.String() ||
			binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			t.Errorf("Ethernet header % x", f[:14])
		}
		ip := f[14:34]
		if ip[0] != 0x45 || ip[9] != 6 || binary.BigEndian.Uint16(ip[2:]) != 40 ||
			netip.AddrFrom4([4]byte(ip[12:16])) != src.Addr() || netip.AddrFrom4([4]byte(ip[16:20])) != dst.Addr() {
			t.Errorf("IPv4 header % x", ip)
		}
		// A header with its checksum in sums to 0xffff: checksum 0.
		if c := lab.Checksum(0, ip); c != 0 {
			t.Errorf("IPv4 checksum does not verify: %#04x", c)
		}
		tcp := f[34:54]
		if binary.BigEndian.Uint16(tcp[0:]) != 1024 || binary.BigEndian.Uint16(tcp[2:]) != 80 || tcp[13] != flags || tcp[12] != 0x50 {
			t.Errorf("TCP header % x", tcp)
		}
		pseudo := append(append(append([]byte{}, ip[12:20]...), 0, 6, 0, 20), tcp...)
		if c := lab.Checksum(0, pseudo); c != 0 {
			t.Errorf("TCP checksum does not verify: %#04x", c)
		}
	}
}

func TestPPSFrames(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	fs := ppsFrames(mac, mac, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddrPort("10.84.0.100:80"))
	if len(fs) != 2*64512 {
		t.Fatalf("%d frames, want a SYN and an ACK for each of 64512 ports", len(fs))
	}
	for i, f := range fs {
		port, flags := binary.BigEndian.Uint16(f[34:]), f[47]
		want := byte(tcpSYN)
		if i%2 == 1 {
			want = tcpACK
		}
		if int(port) != 1024+i/2 || flags != want {
			t.Fatalf("frame %d: port %d flags %#x, want %d %#x", i, port, flags, 1024+i/2, want)
		}
	}
}

func TestParseParts(t *testing.T) {
	got, err := parseParts("pps, wrk")
	if err != nil || len(got) != 2 || !got[partPPS] || !got[partWrk] {
		t.Errorf("parseParts(pps, wrk) = %v, %v", got, err)
	}
	if _, err := parseParts("pps,tcp"); err == nil || !strings.Contains(err.Error(), `"tcp"`) {
		t.Errorf("parseParts(pps,tcp): %v, want an error naming tcp", err)
	}
}

func TestParseSchedstat(t *testing.T) {
	n, err := parseSchedstat("1234567890 2345 67\n")
	if err != nil || n != 1234567890 {
		t.Errorf("parseSchedstat = %d, %v", n, err)
	}
	if _, err := parseSchedstat("12 34"); err == nil {
		t.Error("two fields: no error")
	}
}

func TestParseCPUs(t *testing.T) {
	stat := `cpu  30 0 30 140 0 0 20 0 0 0
cpu0 10 0 10 80 0 0 0 0 0 0
cpu1 20 0 20 60 0 0 20 0 0 0
intr 12345
ctxt 999
`
	cs, err := parseCPUs(stat)
	if err != nil {
		t.Fatal(err)
	}
	want := []cpuTimes{{total: 100, idle: 80}, {total: 120, idle: 60, softirq: 20}}
	if len(cs) != 2 || cs[0] != want[0] || cs[1] != want[1] {
		t.Errorf("parseCPUs = %+v, want %+v", cs, want)
	}
	if _, err := parseCPUs("cpu1 1 2 3 4 5 6 7 8\n"); err == nil {
		t.Error("cpu1 without cpu0: no error")
	}
}

func TestPPSBetween(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := ppsSample{at: t0, counted: 1000, offered: 5000, director: 1100, dirRuntime: 7e9,
		cpus: []cpuTimes{{total: 100, idle: 50}, {total: 100, idle: 100}}}
	b := ppsSample{at: t0.Add(2 * time.Second), counted: 1_001_000, offered: 4_005_000, director: 1_001_100, dirRuntime: 8e9,
		cpus: []cpuTimes{{total: 300, idle: 50}, {total: 300, idle: 200}}}
	r := ppsBetween(caseXDP, a, b)
	if r.Seconds != 2 || r.Forwarded != 500_000 || r.Offered != 2_000_000 || r.Director != 500_000 || r.DirectorCPU != 0.5 {
		t.Errorf("ppsBetween = %+v", r)
	}
	// 500,000 pps on half a CPU: a million per core.
	if r.PerCore != 1_000_000 {
		t.Errorf("per core %v, want 1e6", r.PerCore)
	}
	if len(r.CPUBusy) != 2 || r.CPUBusy[0] != 100 || r.CPUBusy[1] != 50 {
		t.Errorf("CPU busy %v, want [100 50]", r.CPUBusy)
	}
	if perCore(1000, 0) != 0 {
		t.Error("perCore with no CPU time is not 0")
	}
}

func TestPPSMedians(t *testing.T) {
	// Rounds in order: xdp, nftables; the machine gets busier in round 2.
	rep := ppsReport{Runs: []ppsRun{
		{Dataplane: caseXDP, PerCore: 3e6}, {Dataplane: caseNFT, PerCore: 0.9e6},
		{Dataplane: caseXDP, PerCore: 1.5e6}, {Dataplane: caseNFT, PerCore: 0.5e6},
		{Dataplane: caseXDP, PerCore: 2.8e6}, {Dataplane: caseNFT, PerCore: 1e6},
	}}
	rep.ppsMedians()
	// Rounds: 3.33, 3.0, 2.8: median 3.0. Medians: 2.8e6 / 0.9e6 = 3.11.
	if rep.XDP.PerCore != 2.8e6 || rep.NFT.PerCore != 0.9e6 || math.Abs(rep.MedianRatio-2.8/0.9) > 1e-9 {
		t.Errorf("medians %v / %v = %v, want 2.8e6 / 0.9e6", rep.XDP.PerCore, rep.NFT.PerCore, rep.MedianRatio)
	}
	if len(rep.RoundRatios) != 3 || math.Abs(rep.Ratio-3) > 1e-9 || !rep.Pass {
		t.Errorf("round ratios %v, ratio %v, pass %v: want the median 3.0, pass", rep.RoundRatios, rep.Ratio, rep.Pass)
	}
	rep.Runs[2].PerCore = 1.4e6 // round 2: 2.8
	rep.ppsMedians()
	if math.Abs(rep.Ratio-2.8) > 1e-9 || rep.Pass {
		t.Errorf("ratio %v, pass %v: want 2.8 (rounds 3.33, 2.8, 2.8), fail", rep.Ratio, rep.Pass)
	}
	if median(nil) != 0 || median([]float64{4, 1, 3, 2}) != 2 {
		t.Error("median")
	}
}

func TestMovesAndJudge(t *testing.T) {
	before := []string{"rs1", "rs2", "rs3", "rs4", "rs4", "rs2"}
	after := []string{"rs1", "rs3", "rs3", "rs1", "rs4", "rs2"}
	goneFlows, goneMoved, others := moves(before, after, "rs4")
	if goneFlows != 2 || goneMoved != 1 || others != 1 {
		t.Errorf("moves = %d, %d, %d; want 2 on rs4, 1 of them moved, 1 other moved", goneFlows, goneMoved, others)
	}
	if _, _, n := moves(before, after, ""); n != 2 {
		t.Errorf("moves with no server gone: %d moved, want 2", n)
	}
	if s := share(before, "rs2"); s != 2.0/6 {
		t.Errorf("share = %v", s)
	}

	good := consistencyResult{Flows: 10000, WeightMoved: 100, InitialShare: 0.25, NewShare: 0.4,
		RemovedFlows: 2500, RemovedMoved: 2500}
	good.judge()
	if !good.Pass {
		t.Errorf("%+v: want PASS", good)
	}
	for name, bad := range map[string]func(*consistencyResult){
		"weight change moved over 1%":     func(r *consistencyResult) { r.WeightMoved = 101 },
		"weight change had no effect":     func(r *consistencyResult) { r.NewShare = r.InitialShare },
		"a removed server's flow stayed":  func(r *consistencyResult) { r.RemovedMoved-- },
		"another server's flow moved":     func(r *consistencyResult) { r.OthersMoved = 1 },
		"new flows to the removed server": func(r *consistencyResult) { r.NewOnRemoved = 1 },
	} {
		r := good
		bad(&r)
		r.judge()
		if r.Pass {
			t.Errorf("%s: PASS", name)
		}
	}
}

func TestStaleBPFMounts(t *testing.T) {
	mounts := `sysfs /sys sysfs rw 0 0
bpf /tmp/dataplane-bpf-100-123 bpf rw,relatime 0 0
bpf /tmp/dataplane-bpf-200-456 bpf rw,relatime 0 0
tmpfs /tmp/dataplane-bpf-300-789 tmpfs rw 0 0
bpf /tmp/other-bpf-100-1 bpf rw 0 0
bpf /var/tmp/dataplane-bpf-100-2 bpf rw 0 0
bpf /tmp/dataplane-bpf-x-3 bpf rw 0 0
`
	got := staleBPFMounts(mounts, "/tmp", func(pid int) bool { return pid == 200 })
	if len(got) != 1 || got[0] != "/tmp/dataplane-bpf-100-123" {
		t.Errorf("staleBPFMounts = %v, want only the BPF mount of gone PID 100 in /tmp", got)
	}
}
