// Command dataplane measures Tandem's data planes (nftables and XDP) in
// three parts, all in one run (-cases picks some):
//
//   - consistency: 10,000 flows through the real XDP program
//     (BPF_PROG_TEST_RUN), programmed by lvs's reconciler; one real
//     server's weight changes, then one leaves: the share of established
//     flows that moved.
//   - pps: packets per second one director core forwards, LVS-DR, 64-byte
//     TCP SYNs and ACKs over 64,512 flows, XDP against nftables, with an
//     in-kernel generator (sender.go) and an XDP drop counter at the
//     receiver; IPVS is named and skipped where the kernel has none.
//   - wrk: HTTP requests/s through the VIP, wrk against nginx real servers
//     in a lab of network namespaces: directly, through nftables NAT,
//     nftables DR, XDP DR, and Debian's haproxy in TCP mode.
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/dataplane [-cases consistency,pps,wrk] [-pps-duration 5s] [-duration 10s] [-json]
//
// The wrk part builds two labs, one after the other:
//
//   - NAT, lab.Seed003NAT: client 192.168.142.50 outside, director dir1
//     (192.168.142.147 outside, 192.168.188.128 inside, IP forwarding),
//     rs1 192.168.188.129 and rs2 .137 routing via the director. Cases:
//     direct (client -> dir1 routing -> rs1:80), haproxy (client ->
//     192.168.142.147:8080 -> rs1/rs2:80), nftables NAT (client ->
//     192.168.142.147:80, rr).
//   - DR, lab.Seed000: one segment 172.16.7.0/24, director dir1 .1, rs1
//     .3, rs2 .4 (VIP .5 on lo), client .100. Cases: direct (client ->
//     rs1:80 on the segment), haproxy (client -> 172.16.7.1:8080 ->
//     rs1/rs2:80), nftables DR and XDP DR (client -> VIP 172.16.7.5:80,
//     rr, replies straight from the real servers).
//
// Each ratio is taken against the figures of the same lab, and the targets
// are DR >= 0.9 x direct, NAT >= 0.8 x direct, both >= 1.5 x haproxy, XDP
// DR >= nftables DR and >= 0.95 x direct (in requests/s); XDP >= 3 x
// nftables in packets per second per core; at most 1% of the flows moved
// by the weight change, and only the leaving server's by its removal.
// With -json the tables go to stderr and a JSON document to stdout. The
// exit status is 0 when every target is met, 3 when one is missed, 1 on
// an error, 2 on a usage error, 130 when interrupted. README.md says how
// to read the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

// bins are the programs the bench runs.
type bins struct {
	tandem, nginx, haproxy string
	nginxWorkers           string // nginx's worker_processes
}

func run() int {
	duration := flag.Duration("duration", 10*time.Second, "wrk duration of each measured case")
	warmup := flag.Duration("warmup", 2*time.Second, "wrk run before each measured case, not counted (0 for none)")
	conns := flag.Int("connections", 64, "wrk connections (-c)")
	runs := flag.Int("runs", 3, "measured runs of each case, interleaved; the table shows the median (by requests/s)")
	threads := flag.Int("threads", 2, "wrk threads (-t)")
	asJSON := flag.Bool("json", false, "print the results as JSON on stdout (the table then goes to stderr)")
	tandemBin := flag.String("tandem", "", "tandem binary (default: build ./cmd/tandem)")
	workers := flag.String("nginx-workers", "auto", "nginx worker_processes of each real server (auto: one per CPU)")
	casesFlag := flag.String("cases", strings.Join(allParts, ","), "parts to run, comma-separated: "+strings.Join(allParts, ", "))
	ppsDuration := flag.Duration("pps-duration", 5*time.Second, "measured time of each packets-per-second run")
	ppsRuns := flag.Int("pps-runs", 3, "packets-per-second runs of each data plane, interleaved; the table shows the median (by pps per core)")
	flows := flag.Int("flows", 10000, "flows of the connection-consistency part")
	flag.Parse()
	parts, perr := parseParts(*casesFlag)
	if perr != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", perr)
	}
	if perr != nil || flag.NArg() > 0 || *runs < 1 || *duration < time.Second || *warmup < 0 || *conns < 1 || *threads < 1 || *conns < *threads ||
		*ppsDuration < time.Second || *ppsRuns < 1 || *flows < 100 || *flows > 20000 {
		flag.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "dataplane: must run as root: it builds network namespaces (sudo go run ./bench/dataplane)")
		return 2
	}

	// The first Ctrl-C or SIGTERM cancels ctx: wrk is killed
	// (CommandContext) and the deferred lab.Close calls tear the labs
	// down. stop() then restores the default action, so a second signal
	// kills us at once; the lab's processes die with us
	// (PR_SET_PDEATHSIG) and the next run sweeps the namespaces.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	// Namespaces of an earlier run killed hard (only those whose process
	// is gone).
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane: sweeping stale labs:", err)
	}
	if _, err := sweepBPFMounts(); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane: sweeping stale BPF file systems:", err)
	}
	// The machine may be shared; every process of every case (wrk,
	// nginx, haproxy, tandem) inherits the same boost, so it does not
	// favour one case.
	if err := lab.Renice(-10); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane: raising priority (results may be noisier):", err)
	}

	work, err := os.MkdirTemp("", "dataplane-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		return 1
	}
	defer os.RemoveAll(work)

	b, wrkBin, err := findBins(ctx, *tandemBin, work, parts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		return 1
	}
	b.nginxWorkers = *workers
	p := wrkParams{bin: wrkBin, threads: *threads, connections: *conns, duration: *duration, timeout: 2 * time.Second}
	env := environment{CPUs: runtime.NumCPU(), LoadBefore: loadavg()}
	failed := func(err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "dataplane: interrupted; labs torn down")
			return 130
		}
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		return 1
	}

	var cc []consistencyResult
	if parts[partConsistency] {
		if cc, err = benchConsistency(ctx, *flows); err != nil {
			return failed(fmt.Errorf("consistency: %w", err))
		}
	}
	var pps *ppsReport
	if parts[partPPS] {
		r, err := benchPPS(ctx, *ppsDuration, *ppsRuns)
		if err != nil {
			return failed(fmt.Errorf("pps: %w", err))
		}
		pps = &r
	}
	var ms []measurement
	if parts[partWrk] {
		for _, s := range []setup{natSetup(), drSetup(b, work)} {
			got, err := benchLayout(ctx, s, b, p, *warmup, *runs, work)
			ms = append(ms, got...)
			if err != nil {
				return failed(err)
			}
		}
	}
	env.LoadAfter = loadavg()

	rep := newReport(p, *warmup, *runs, env, ms)
	rep.setPPS(pps)
	rep.setConsistency(cc)
	table := os.Stdout
	if *asJSON {
		table = os.Stderr
	}
	rep.print(table)
	if *asJSON {
		if err := rep.printJSON(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "dataplane:", err)
			return 1
		}
	}
	if !rep.Pass {
		return 3
	}
	return 0
}

// Parts of the bench (-cases).
const (
	partConsistency = "consistency"
	partPPS         = "pps"
	partWrk         = "wrk"
)

var allParts = []string{partConsistency, partPPS, partWrk}

// parseParts reads -cases: a comma-separated list of allParts.
func parseParts(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allParts, f) {
			return nil, fmt.Errorf("-cases: %q: want a comma-separated list of %s", f, strings.Join(allParts, ", "))
		}
		out[f] = true
	}
	return out, nil
}

// findBins finds the programs parts need: ethtool for every part (it
// sets up the veths), and for wrk tandem (built unless given), wrk, nginx
// and haproxy.
func findBins(ctx context.Context, tandemBin, work string, parts map[string]bool) (b bins, wrk string, err error) {
	if _, err := exec.LookPath("ethtool"); err != nil {
		return b, "", errors.New("ethtool not found (apt-get install ethtool): every part sets up veths with it")
	}
	if !parts[partWrk] {
		return b, "", nil
	}
	if tandemBin == "" {
		if tandemBin, err = lab.BuildTandem(work); err != nil {
			return b, "", fmt.Errorf("%w (run from inside the module, or pass -tandem)", err)
		}
	}
	b.tandem = tandemBin
	var errs []error
	find := func(name, pkg string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		errs = append(errs, fmt.Errorf("%s not found (apt-get install %s)", name, pkg))
		return ""
	}
	wrk = find("wrk", "wrk")
	b.nginx = find("nginx", "nginx-light")
	b.haproxy = find("haproxy", "haproxy")
	return b, wrk, errors.Join(errs...)
}

// measurement is one case.
type measurement struct {
	Layout string `json:"layout"` // "NAT" or "DR"
	Case   string `json:"case"`   // caseDirect, caseHAProxy, caseNFT
	Path   string `json:"path"`
	URL    string `json:"url"`
	wrkResult
	// Served is how many requests each real server's nginx counted
	// during the measured run (stub_status), warm-up excluded.
	Served map[string]int64 `json:"served"`
	// CPU is the whole machine's CPU use during the measured run.
	CPU cpuUse `json:"cpu"`
	// PerRequest is the CPU time per request of each part of the lab.
	PerRequest cpuPerRequest `json:"cpu_per_request"`
}

const (
	caseDirect  = "direct"
	caseHAProxy = "haproxy"
	caseNFT     = "nftables"
	caseXDP     = "xdp"
)

// dataplanes is tandem's --dataplane for each case that runs tandem.
var dataplanes = map[string]string{caseNFT: "nft", caseXDP: "xdp"}

// measure runs a warm-up and then the measured wrk against target, and
// counts what each real server served during the latter.
func measure(ctx context.Context, l *lab.Lab, p wrkParams, warmup time.Duration, layout, kase, path string, target netip.AddrPort, reals []string) (measurement, error) {
	url := "http://" + target.String() + "/"
	m := measurement{Layout: layout, Case: kase, Path: path, URL: url, Served: map[string]int64{}}
	fmt.Fprintf(os.Stderr, "dataplane: %s %-8s %s ...", layout, kase, url)
	if warmup > 0 {
		if _, _, err := runWrk(ctx, l, p, warmup, url); err != nil {
			fmt.Fprintln(os.Stderr)
			return m, fmt.Errorf("warm-up: %w", err)
		}
	}
	before := map[string]int64{}
	for _, rs := range reals {
		n, err := nginxRequests(l, rs)
		if err != nil {
			fmt.Fprintln(os.Stderr)
			return m, err
		}
		before[rs] = n
	}
	procs := func() (map[string]map[int]uint64, error) {
		out := map[string]map[int]uint64{}
		for _, node := range append([]string{"dir1"}, reals...) {
			t, err := nsProcTicks(l.NSName(node))
			if err != nil {
				return nil, fmt.Errorf("CPU time of %s's processes: %w", node, err)
			}
			out[node] = t
		}
		return out, nil
	}
	p0, err := procs()
	if err != nil {
		fmt.Fprintln(os.Stderr)
		return m, err
	}
	c0, cerr := readCPU()
	r, wrkCPU, err := runWrk(ctx, l, p, p.duration, url)
	if err != nil {
		fmt.Fprintln(os.Stderr)
		return m, err
	}
	m.wrkResult = r
	c1, cerr1 := readCPU()
	p1, err := procs()
	if err != nil {
		fmt.Fprintln(os.Stderr)
		return m, err
	}
	if cerr == nil && cerr1 == nil {
		m.CPU = cpuBetween(c0, c1)
		m.PerRequest.Softirq = usPerRequest(ticksToUS(c1.softirq-c0.softirq), r.Requests)
	}
	var servers uint64
	for _, rs := range reals {
		servers += ticksSince(p0[rs], p1[rs])
	}
	m.PerRequest.Client = usPerRequest(float64(wrkCPU)/float64(time.Microsecond), r.Requests)
	m.PerRequest.Servers = usPerRequest(ticksToUS(servers), r.Requests)
	m.PerRequest.Director = usPerRequest(ticksToUS(ticksSince(p0["dir1"], p1["dir1"])), r.Requests)
	for _, rs := range reals {
		n, err := nginxRequests(l, rs)
		if err != nil {
			fmt.Fprintln(os.Stderr)
			return m, err
		}
		m.Served[rs] = n - before[rs]
	}
	fmt.Fprintf(os.Stderr, " %.0f req/s, p99 %s\n", r.RPS, fmtMS(r.P99))
	if r.Requests == 0 {
		return m, fmt.Errorf("%s %s: wrk completed no request", layout, kase)
	}
	return m, nil
}

var (
	natVIP   = netip.MustParseAddr("192.168.142.147")
	natReals = []netip.Addr{netip.MustParseAddr("192.168.188.129"), netip.MustParseAddr("192.168.188.137")}

	drDirector = netip.MustParseAddr("172.16.7.1")
	drVIP      = netip.MustParseAddr("172.16.7.5")
	drReals    = []netip.Addr{netip.MustParseAddr("172.16.7.3"), netip.MustParseAddr("172.16.7.4")}
)

const haproxyPort = 8080

var realNames = []string{"rs1", "rs2"}

// natConf is seed003-lvs-nat.conf: rr NAT over the two real servers.
func natConf() string {
	return fmt.Sprintf(`virtual_server %s 80 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server %s 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server %s 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`, natVIP, natReals[0], natReals[1])
}

// drConf is seed000-lvs-dr-master.conf without persistence_timeout and
// with rr (equal weights) instead of wrr 3:1.
func drConf() string {
	rs := func(a netip.Addr) string {
		return fmt.Sprintf(`    real_server %s 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
            connect_port 80
        }
    }
`, a)
	}
	return fmt.Sprintf(`vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        %s
    }
}
virtual_server %s 80 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
%s%s}
`, drVIP, drVIP, rs(drReals[0]), rs(drReals[1]))
}

// setup is one layout: what the bench builds and where each case points.
type setup struct {
	name     string // "NAT" or "DR"
	spec     lab.Spec
	prepare  func(ctx context.Context, l *lab.Lab) (cleanup func(), err error) // before nginx starts
	direct   netip.AddrPort
	haproxy  netip.AddrPort // on dir1
	vip      netip.AddrPort
	reals    []netip.AddrPort
	conf     string   // tandem's configuration
	instance string   // VRRP instance that must be MASTER, if any
	tandem   []string // the cases that run tandem, in order (caseNFT, caseXDP)
	paths    map[string]string
}

// natSetup is lab.Seed003NAT with a route on the client to the inside
// network through the director, as the real servers reach the client
// (their default route): that is the direct path in this layout. haproxy
// listens on the director's outside address, port 8080.
func natSetup() setup {
	layout := lab.Seed003NAT()
	spec := layout.Spec()
	for i := range spec.Nodes {
		if spec.Nodes[i].Name == "client" {
			spec.Nodes[i].Routes = append(spec.Nodes[i].Routes, lab.Route{Dst: layout.Net, Via: natVIP})
		}
	}
	return setup{
		name:    "NAT",
		spec:    spec,
		direct:  netip.AddrPortFrom(natReals[0], 80),
		haproxy: netip.AddrPortFrom(natVIP, haproxyPort),
		vip:     netip.AddrPortFrom(natVIP, 80),
		reals:   addrPorts(natReals, 80),
		conf:    natConf(),
		tandem:  []string{caseNFT},
		paths: map[string]string{
			caseDirect:  "client -> dir1 (router) -> rs1",
			caseHAProxy: "client -> haproxy dir1:8080 -> rs1|rs2",
			caseNFT:     "client -> VIP (nft dnat on dir1) -> rs1|rs2",
		},
	}
}

// drSetup is lab.Seed000; dir2 stays idle. The real servers carry the VIP
// on lo from the start (`tandem realserver up`), which the direct case
// does not use. haproxy listens on dir1's own address, port 8080. For the
// XDP case, and so for every case of the layout alike, the client and the
// real servers compute their own TCP checksums (TX offload off) and
// dir1's switch port runs an XDP pass program (see txChecksumOff and
// passProgram).
func drSetup(b bins, work string) setup {
	return setup{
		name: "DR",
		spec: lab.Seed000().Spec(),
		prepare: func(ctx context.Context, l *lab.Lab) (func(), error) {
			for _, rs := range realNames {
				if err := realserverUp(ctx, l, b.tandem, work, rs, drVIP); err != nil {
					return nil, err
				}
			}
			if err := txChecksumOff(ctx, l, "eth0", append([]string{"client"}, realNames...)...); err != nil {
				return nil, err
			}
			pass, err := passProgram()
			if err != nil {
				return nil, fmt.Errorf("XDP pass program: %w", err)
			}
			_, detach, err := l.AttachXDPPorts("dir1", lab.SwitchLAN, pass)
			if err != nil {
				pass.Close()
				return nil, err
			}
			return func() { detach(); pass.Close() }, nil
		},
		direct:   netip.AddrPortFrom(drReals[0], 80),
		haproxy:  netip.AddrPortFrom(drDirector, haproxyPort),
		vip:      netip.AddrPortFrom(drVIP, 80),
		reals:    addrPorts(drReals, 80),
		conf:     drConf(),
		instance: "VI_1",
		tandem:   []string{caseNFT, caseXDP},
		paths: map[string]string{
			caseDirect:  "client -> rs1 (same segment)",
			caseHAProxy: "client -> haproxy dir1:8080 -> rs1|rs2",
			caseNFT:     "client -> VIP (nft DR on dir1) -> rs1|rs2 -> client",
			caseXDP:     "client -> VIP (XDP DR on dir1) -> rs1|rs2 -> client",
		},
	}
}

// benchLayout builds s's lab, starts nginx on the real servers and runs
// rounds of the three cases, interleaved so that a change in the machine's
// background load hits every case alike. In each round: direct with no
// ruleset on the director, haproxy, then tandem (started, measured,
// stopped, which removes its tables); haproxy and tandem never run at the
// same time. It returns every run, in order.
func benchLayout(ctx context.Context, s setup, b bins, p wrkParams, warmup time.Duration, runs int, work string) (ms []measurement, err error) {
	l, err := lab.New(s.spec)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if s.prepare != nil {
		cleanup, err := s.prepare(ctx, l)
		if err != nil {
			return nil, err
		}
		defer cleanup()
	}
	for _, rs := range realNames {
		if _, err := startNginx(ctx, l, b, work, rs); err != nil {
			return nil, err
		}
	}
	if err := servedBy(l, s.direct, []string{"rs1"}, 5); err != nil {
		return nil, fmt.Errorf("%s direct: %w", s.name, err)
	}
	for range runs {
		m, err := measure(ctx, l, p, warmup, s.name, caseDirect, s.paths[caseDirect], s.direct, realNames)
		ms = append(ms, m)
		if err != nil {
			return ms, err
		}

		h, err := startHAProxy(ctx, l, b.haproxy, work, "dir1", s.haproxy, s.reals)
		if err != nil {
			return ms, err
		}
		if err := servedBy(l, s.haproxy, realNames, 10); err != nil {
			return ms, fmt.Errorf("%s haproxy: %w", s.name, err)
		}
		m, err = measure(ctx, l, p, warmup, s.name, caseHAProxy, s.paths[caseHAProxy], s.haproxy, realNames)
		ms = append(ms, m)
		if err != nil {
			return ms, err
		}
		if err := h.Stop(5 * time.Second); err != nil {
			return ms, err
		}

		for _, kase := range s.tandem {
			m, err := measureTandem(ctx, l, s, b, p, warmup, work, kase)
			ms = append(ms, m)
			if err != nil {
				return ms, err
			}
		}
	}
	return ms, nil
}

// measureTandem starts tandem on dir1 with kase's data plane, waits until
// both real servers answer through the VIP, measures, and stops tandem
// (which removes its tables or detaches its program).
func measureTandem(ctx context.Context, l *lab.Lab, s setup, b bins, p wrkParams, warmup time.Duration, work, kase string) (measurement, error) {
	d, err := startTandem(ctx, l, b.tandem, work, "dir1", s.conf, dataplanes[kase])
	if err != nil {
		return measurement{}, err
	}
	defer d.proc.Stop(10 * time.Second)
	vs := s.vip.String()
	if err := waitFor(ctx, "tandem "+s.name+" "+kase+" ready", 30*time.Second, d.proc, func() error { return d.ready(ctx, s.instance, vs, 2) }); err != nil {
		return measurement{}, err
	}
	// The status can show both servers healthy a moment before the
	// data plane has both, and DR hashes flows (source address and
	// port), so a few connections may land on one server before the
	// other shows up: wait for both to answer.
	if err := waitFor(ctx, s.name+" "+kase+": both real servers through the VIP", 10*time.Second, d.proc, func() error {
		return servedBy(l, s.vip, realNames, 40)
	}); err != nil {
		return measurement{}, err
	}
	m, err := measure(ctx, l, p, warmup, s.name, kase, s.paths[kase], s.vip, realNames)
	if err != nil {
		return m, err
	}
	return m, d.proc.Stop(10 * time.Second)
}

func addrPorts(as []netip.Addr, port uint16) []netip.AddrPort {
	out := make([]netip.AddrPort, len(as))
	for i, a := range as {
		out[i] = netip.AddrPortFrom(a, port)
	}
	return out
}

// loadavg is the 1-minute load average, or -1.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
