// Command checks benchmarks the health-check scheduler (internal/check) at
// scale: 10,000 TCP_CHECKs and 2,000 HTTP_GETs against real servers on
// loopback, one check per server per second.
//
// Usage:
//
//	go run ./bench/checks [-tcp 10000] [-http 2000] [-duration 60s] [-baseline=true] [-json] [-cpuprofile FILE]
//
// The real servers run in a child process (this binary re-executed with
// -serve), so the CPU time and peak RSS read from getrusage and
// /proc/self/status are the checker's alone. The cases run one after the
// other, each with its own scheduler, for -duration each: TCP (TCP_CHECK
// through io_uring, the default), TCP-plain (the same on Go's sockets,
// check.Options.PlainSockets: the baseline, off with -baseline=false) and
// HTTP. Halfway through each case two listeners are closed and the time
// until the scheduler reports them down is compared with keepalived's
// bound. With -json the table goes to stderr and a JSON document to stdout.
// README.md says how to read the results.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tandem/internal/check"
	"tandem/internal/config"
	"tandem/internal/fdlimit"
)

// Timing of every checker (seconds), as the health-check issue asks.
const (
	delayLoop        = 1
	connectTimeout   = 1
	delayBeforeRetry = 1
	rsPerVS          = 100 // real servers per virtual_server block
)

// The cases, in the order they run.
const (
	tcpCase   = "TCP"       // TCP_CHECK through io_uring; the targets apply
	plainCase = "TCP-plain" // the same on plain sockets: the baseline
	httpCase  = "HTTP"
)

// Targets of the TCP case.
const (
	cpuTarget = 0.25 // of one core
	rssTarget = 150 << 20
	slack     = 100 * time.Millisecond
)

func main() { os.Exit(run()) }

func run() int {
	nTCP := flag.Int("tcp", 10000, "TCP real servers (TCP_CHECK)")
	nHTTP := flag.Int("http", 2000, "HTTP real servers (HTTP_GET)")
	duration := flag.Duration("duration", 60*time.Second, "how long each case runs")
	baseline := flag.Bool("baseline", true, "after the TCP case, run it again on plain sockets (check.Options.PlainSockets) to compare")
	asJSON := flag.Bool("json", false, "print the results as JSON on stdout (the table then goes to stderr)")
	cpuProfile := flag.String("cpuprofile", "", "write the checker's CPU profile (all cases) to this file")
	silent := flag.Int("silent", 0, "instead of the cases: HTTP_GETs of this many never-answering servers, the old cap of 256 against the default")
	serveMode := flag.Bool(serveFlag, false, "internal: be the real servers (the child process)")
	flag.Parse()
	if flag.NArg() > 0 || *nTCP < 0 || *nHTTP < 0 || *duration <= 0 || *silent < 0 || *silent > 250*portsPerIP*256 ||
		*nTCP > 250*portsPerIP*256 || *nHTTP > 250*portsPerIP*256 {
		flag.Usage()
		return 2
	}

	before, after, err := fdlimit.Raise() // the child holds one socket per real server (12,000 by default)
	if *serveMode {
		if err != nil {
			fmt.Fprintln(os.Stderr, "checks: real servers: RLIMIT_NOFILE:", err)
		}
		if err := serve(*nTCP, *nHTTP); err != nil {
			fmt.Fprintln(os.Stderr, "checks: real servers:", err)
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "checks: RLIMIT_NOFILE:", err)
		return 1
	}
	// Go's runtime already lifts the soft limit to the hard one at start;
	// the explicit Setrlimit also lifts the hard limit when we are root.
	fmt.Fprintf(os.Stderr, "checks: RLIMIT_NOFILE raised with setrlimit: soft %d hard %d -> soft %d hard %d\n",
		before.Cur, before.Max, after.Cur, after.Max)

	// The first Ctrl-C cancels ctx: the case stops, the child is killed
	// and reaped (deferred stop); a second one kills us at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	if *silent > 0 {
		runs, err := silentCompare(ctx, os.Stderr, *silent, 2*time.Minute)
		if err == nil && *asJSON {
			err = json.NewEncoder(os.Stdout).Encode(runs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "checks: silent:", err)
			return 1
		}
		return 0
	}

	start := time.Now()
	srv, err := startServers(*nTCP, *nHTTP)
	if err != nil {
		fmt.Fprintln(os.Stderr, "checks:", err)
		return 1
	}
	defer srv.stop()
	fmt.Fprintf(os.Stderr, "checks: %d TCP + %d HTTP real servers listening in child pid %d (%v); %d CPUs, load %s\n",
		*nTCP, *nHTTP, srv.cmd.Process.Pid, time.Since(start).Round(time.Millisecond), runtime.NumCPU(), loadAvg())

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "checks: cpu profile:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	cases := []benchCase{{name: tcpCase, n: *nTCP, subnet: tcpNet, checker: tcpChecker, sockets: ioUring, targets: true, floor: true}}
	if *baseline {
		cases = append(cases, benchCase{name: plainCase, n: *nTCP, subnet: tcpNet, checker: tcpChecker, sockets: plainSockets})
	}
	cases = append(cases, benchCase{name: httpCase, n: *nHTTP, subnet: httpNet, checker: httpChecker})
	var results []*result
	for _, c := range cases {
		if c.n == 0 {
			continue
		}
		r, err := runCase(ctx, c, srv, *duration)
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "checks: interrupted")
			return 130
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "checks: %s case: %v\n", c.name, err)
			return 1
		}
		results = append(results, r)
	}
	compareBaseline(results)

	table := os.Stdout
	if *asJSON {
		table = os.Stderr
	}
	printTable(table, results)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintln(os.Stderr, "checks:", err)
			return 1
		}
	}
	for _, r := range results {
		if !r.pass() {
			return 1
		}
	}
	return 0
}

// benchCase is one kind of checker against its real servers.
type benchCase struct {
	name    string
	n       int
	subnet  byte
	checker func(retry int) string // the checker block, keepalived syntax
	sockets string                 // how TCP_CHECK runs: ioUring, plainSockets, or "" (none in the case)
	targets bool                   // the CPU and RSS targets apply
	floor   bool                   // measure connectFloor after the case
}

// benchCase.sockets and result.Sockets.
const (
	ioUring      = "io_uring"
	plainSockets = "plain"
	// The scheduler was asked for io_uring but logged that it could not
	// use it (kernel too old, io_uring disabled): the case measured plain
	// sockets.
	ioUringRefused = "plain (io_uring refused)"
)

func tcpChecker(retry int) string {
	return fmt.Sprintf("TCP_CHECK {\n connect_timeout %d\n retry %d\n delay_before_retry %d\n }",
		connectTimeout, retry, delayBeforeRetry)
}

func httpChecker(retry int) string {
	return fmt.Sprintf("HTTP_GET {\n url {\n path /\n status_code 200\n }\n connect_timeout %d\n retry %d\n delay_before_retry %d\n }",
		connectTimeout, retry, delayBeforeRetry)
}

// victim is a real server whose listener is closed halfway through.
type victim struct {
	Addr  netip.AddrPort `json:"addr"`
	Retry int            `json:"retry"`
	// Bound is keepalived's worst case for noticing a dead server: the
	// next check starts at most delay_loop after the last good one, each
	// of the retry+1 failing attempts takes at most connect_timeout, with
	// delay_before_retry between them; plus 100 ms of slack.
	Bound    time.Duration `json:"bound_ns"`
	Took     time.Duration `json:"took_ns"` // from the close command to the event
	Detected bool          `json:"detected"`
	// DownBefore: the server was reported down before it was killed (a
	// spurious failure, e.g. a starved machine), so the kill could not
	// be seen.
	DownBefore bool `json:"down_before_kill"`

	killed time.Time
}

func (v *victim) pass() bool { return v.Detected && v.Took <= v.Bound }

// victims are the last two servers: one with retry 0, whose bound is the
// issue's delay_loop + connect_timeout + 100 ms, and one with the retry 1
// of every other checker.
func victims(c benchCase) []*victim {
	var vs []*victim
	for i, retry := range []int{0, 1} {
		if i >= c.n {
			break
		}
		bound := time.Duration(delayLoop+(retry+1)*connectTimeout+retry*delayBeforeRetry)*time.Second + slack
		vs = append(vs, &victim{Addr: serverAddr(c.subnet, c.n-1-i), Retry: retry, Bound: bound})
	}
	return vs
}

// configText is a keepalived.conf with c.n real servers, rsPerVS per
// virtual server, all with retry 1 except the retry-0 victim.
func configText(c benchCase, vics []*victim) string {
	retry := map[netip.AddrPort]int{}
	for _, v := range vics {
		retry[v.Addr] = v.Retry
	}
	var b strings.Builder
	for i := range c.n {
		if i%rsPerVS == 0 {
			if i > 0 {
				b.WriteString("}\n")
			}
			vs := i / rsPerVS
			fmt.Fprintf(&b, "virtual_server 10.%d.%d.%d 80 {\n delay_loop %d\n lb_algo rr\n lb_kind NAT\n protocol TCP\n",
				c.subnet, vs>>8, vs&255, delayLoop)
		}
		ap := serverAddr(c.subnet, i)
		r, ok := retry[ap]
		if !ok {
			r = 1
		}
		fmt.Fprintf(&b, " real_server %s %d {\n weight 1\n %s\n }\n", ap.Addr(), ap.Port(), c.checker(r))
	}
	b.WriteString("}\n")
	return b.String()
}

// result is what one case measured.
type result struct {
	Case     string        `json:"case"`
	Checkers int           `json:"checkers"`
	Duration time.Duration `json:"duration_ns"`
	// ChecksPerSec counts the connections the real servers accepted (one
	// per successful check) over the case's wall time.
	ChecksPerSec float64 `json:"checks_per_s"`
	// SampledRuns counts the runs seen by sampling Snapshot once a second
	// (a checker run twice between samples counts once).
	SampledRuns int64 `json:"sampled_runs"`
	// CPU is user+system time over wall time: 1.0 is one core busy.
	CPU float64 `json:"cpu_fraction_of_one_core"`
	// CPUAtRate is CPU scaled to the rate the configuration asks for (every
	// checker once per delay_loop): on a starved machine fewer checks run,
	// and the raw CPU would pass the target for doing less work. CPU per
	// check is nearly constant with the rate, so scaling is fair.
	CPUAtRate float64       `json:"cpu_fraction_at_full_rate"`
	PeakRSS   int64         `json:"peak_rss_bytes"`
	RSSOwn    bool          `json:"peak_rss_of_this_case_only"` // VmHWM was reset before the case
	P50       time.Duration `json:"latency_p50_ns"`
	P99       time.Duration `json:"latency_p99_ns"`
	// Floor is the CPU of a bare blocking connect+close (connectFloor),
	// and FloorCPU that at ChecksPerSec, as a fraction of one core.
	Floor    time.Duration `json:"floor_cpu_per_connect_ns,omitempty"`
	FloorCPU float64       `json:"floor_cpu_fraction_of_one_core,omitempty"`
	// PlainCPUAtRate is the TCP-plain case's CPUAtRate, and CPURatio this
	// case's over it: what io_uring costs relative to plain sockets per
	// check (set on the TCP case when the baseline ran).
	PlainCPUAtRate float64   `json:"plain_sockets_cpu_fraction_at_full_rate,omitempty"`
	CPURatio       float64   `json:"cpu_ratio_to_plain_sockets,omitempty"`
	Failures       int64     `json:"failures"` // failed runs of checkers other than the victims
	Downs          int       `json:"unexpected_down_events"`
	Victims        []*victim `json:"detection"`
	LoadStart      string    `json:"loadavg_start"`
	LoadEnd        string    `json:"loadavg_end"`
	// Sockets is how TCP_CHECK ran (see benchCase.sockets), empty in a
	// case without TCP_CHECKs.
	Sockets string `json:"tcp_check_sockets,omitempty"`
	// Targets applies to the TCP case only.
	Targets bool `json:"targets_apply"`
}

func (r *result) cpuOK() bool { return r.CPUAtRate < cpuTarget }
func (r *result) rssOK() bool { return r.PeakRSS < rssTarget }

func (r *result) pass() bool {
	ok := r.Failures == 0 && r.Downs == 0
	if r.Targets {
		ok = ok && r.cpuOK() && r.rssOK()
	}
	for _, v := range r.Victims {
		ok = ok && v.pass()
	}
	return ok
}

// compareBaseline sets the TCP case's CPURatio from the TCP-plain case,
// when both ran and TCP_CHECK did run through io_uring in the first.
func compareBaseline(rs []*result) {
	var tcp, plain *result
	for _, r := range rs {
		switch r.Case {
		case tcpCase:
			tcp = r
		case plainCase:
			plain = r
		}
	}
	if tcp != nil && plain != nil && tcp.Sockets == ioUring && plain.CPUAtRate > 0 {
		tcp.PlainCPUAtRate = plain.CPUAtRate
		tcp.CPURatio = tcp.CPUAtRate / plain.CPUAtRate
	}
}

// schedLog is the scheduler's log as shown on stderr: warnings, and the
// notice that TCP_CHECK runs on plain sockets because io_uring could not
// be used, which it records (the case then does not measure io_uring).
// Health changes (the victims') are left out.
type schedLog struct {
	slog.Handler
	plain *atomic.Bool
}

func newSchedLog() *schedLog {
	return &schedLog{Handler: slog.NewTextHandler(os.Stderr, nil), plain: new(atomic.Bool)}
}

func (h *schedLog) Handle(ctx context.Context, r slog.Record) error {
	fellBack := strings.Contains(r.Message, "plain sockets")
	if fellBack {
		h.plain.Store(true)
	}
	if r.Level < slog.LevelWarn && !fellBack {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *schedLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &schedLog{Handler: h.Handler.WithAttrs(as), plain: h.plain}
}

func (h *schedLog) WithGroup(name string) slog.Handler {
	return &schedLog{Handler: h.Handler.WithGroup(name), plain: h.plain}
}

func runCase(ctx context.Context, c benchCase, srv *servers, d time.Duration) (*result, error) {
	vics := victims(c)
	cfg, diags := config.Parse(strings.ToLower(c.name)+".conf", []byte(configText(c, vics)), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		return nil, fmt.Errorf("configuration: %v", diags)
	}
	events := make(chan check.Event, 1024)
	logs := newSchedLog()
	sched, err := check.NewScheduler(cfg.VirtualServers, slog.New(logs),
		check.Options{Events: events, PlainSockets: c.sockets == plainSockets})
	if err != nil {
		return nil, err
	}
	r := &result{Case: c.name, Checkers: c.n, Victims: vics, Sockets: c.sockets, Targets: c.targets, LoadStart: loadAvg()}

	// Events are read as they come so the time of a victim's
	// RealServerDown is when a consumer (the IPVS programmer) gets it.
	var mu sync.Mutex
	var evWG sync.WaitGroup
	evWG.Add(1)
	go func() {
		defer evWG.Done()
		for e := range events {
			if e.Kind != check.RealServerDown || e.Initial {
				continue
			}
			now := time.Now()
			ap := netip.AddrPortFrom(e.RS.IP, uint16(e.RS.Port))
			mu.Lock()
			r.Downs++
			for _, v := range vics {
				switch {
				case v.Addr != ap:
				case v.killed.IsZero():
					v.DownBefore = true
				case !v.Detected:
					v.Detected, v.Took = true, now.Sub(v.killed)
					r.Downs--
				}
			}
			mu.Unlock()
		}
	}()

	// Start from a clean heap and peak so the case pays only for itself
	// (the configuration stays: the daemon holds it too).
	runtime.GC()
	debug.FreeOSMemory()
	r.RSSOwn = resetPeakRSS()
	acc0, err := srv.accepted()
	if err != nil {
		return nil, err
	}
	cpu0, t0 := cpuTime(), time.Now()

	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { sched.Run(runCtx); close(runDone) }()
	stopRun := func() {
		cancel()
		<-runDone
		close(events)
		evWG.Wait()
	}

	var h hist
	prev := map[netip.AddrPort]time.Time{}
	isVictim := map[netip.AddrPort]bool{}
	var lastErr string
	for _, v := range vics {
		isVictim[v.Addr] = true
	}
	sample := func() {
		for _, vs := range sched.Snapshot() {
			for _, rs := range vs.RealServers {
				for _, ck := range rs.Checkers {
					if ck.LastRun.IsZero() || ck.LastRun.Equal(prev[rs.Addr]) {
						continue
					}
					prev[rs.Addr] = ck.LastRun
					r.SampledRuns++
					h.add(ck.Latency)
					if ck.LastResult == check.ResultFailed && !isVictim[rs.Addr] {
						r.Failures++
						// The latency tells a real timeout (about
						// connect_timeout) from a stalled process (far more).
						lastErr = fmt.Sprintf("%s (took %v)", ck.LastError, ck.Latency.Round(time.Millisecond))
					}
				}
			}
		}
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	killAt := time.NewTimer(d / 2)
	defer killAt.Stop()
	end := t0.Add(d)
	var giveUp time.Time // a victim never detected must not stall us
loop:
	for {
		select {
		case <-ctx.Done():
			stopRun()
			return nil, ctx.Err()
		case <-killAt.C:
			for _, v := range vics {
				t := time.Now()
				if err := srv.kill(v.Addr); err != nil {
					stopRun()
					return nil, err
				}
				mu.Lock()
				v.killed = t
				mu.Unlock()
				giveUp = t.Add(2 * v.Bound)
			}
		case now := <-tick.C:
			sample()
			mu.Lock()
			waiting := false
			for _, v := range vics {
				waiting = waiting || !v.Detected
			}
			mu.Unlock()
			if now.After(end) && (!waiting || now.After(giveUp)) {
				break loop
			}
		}
	}
	stopRun()
	if c.sockets == ioUring && logs.plain.Load() {
		r.Sockets = ioUringRefused
	}
	r.Duration = time.Since(t0)
	r.CPU = float64(cpuTime()-cpu0) / float64(r.Duration)
	r.PeakRSS = peakRSS()
	acc1, err := srv.accepted()
	if err != nil {
		return nil, err
	}
	r.ChecksPerSec = float64(acc1-acc0) / r.Duration.Seconds()
	r.CPUAtRate = r.CPU * float64(c.n) / delayLoop / max(r.ChecksPerSec, 1)
	r.P50, r.P99 = h.quantile(0.50), h.quantile(0.99)
	r.LoadEnd = loadAvg()
	if c.floor {
		// Measured after the case, with the same load on the machine.
		if r.Floor, err = connectFloor(c.subnet, c.n, 20000); err != nil {
			return nil, fmt.Errorf("connect floor: %w", err)
		}
		r.FloorCPU = float64(r.Floor) * r.ChecksPerSec / float64(time.Second)
	}
	// The next case may check the same real servers (TCP-plain after TCP).
	for _, v := range vics {
		if v.killed.IsZero() {
			continue
		}
		if err := srv.revive(v.Addr); err != nil {
			return nil, err
		}
	}
	if lastErr != "" {
		fmt.Fprintf(os.Stderr, "checks: %s case: %d failed runs, last: %s\n", c.name, r.Failures, lastErr)
	}
	return r, nil
}
