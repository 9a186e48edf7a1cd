// Command failover measures VRRP failover as a client sees it, Tandem and
// Debian's keepalived side by side with the same configuration, in a lab of
// network namespaces (internal/lab, seed001's layout: routers ka1 and ka2
// on ens33, a client, VIP 192.168.1.100).
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/failover [-runs N] [-handovers N] [-json] [-case NAME] [-tandem BIN] [-keepalived BIN]
//	    [-stress-for D] [-stress-bfd] [-rt-priority N] [-rlimit-rttime USECS] [-no-swap] [-stress-args ARGS]
//
// It runs 6 cases, each for Tandem and keepalived: SIGKILL and SIGTERM of
// the master × advert_int 1 with VRRPv2 and advert_int 0.1 with VRRPv3,
// and the master lost (switch port cut and SIGKILL) at advert_int 0.01
// with VRRPv3, for Tandem without and with fast_failover_bfd over BFD at
// 5 ms x 3. Each case runs -runs times (default 5); the table has one row
// per case. With the
// default 5 runs it takes about 4 minutes: keepalived needs ~4 s to become
// master at advert_int 1, a crash failover there takes ~3.7 s, and every
// run builds a fresh lab. Then the planned handover rows (-handovers
// handovers under a 1,000 connections/s client through a DR pair:
// `tandem handover`, a priority change and reload in Tandem with and
// without handover_drain, and in keepalived). Then, unless -stress-for is
// 0, the false-failover case: both implementations' pairs at advert_int
// 0.01 side by side under stress-ng for -stress-for (default 10 minutes),
// counting transitions; with -stress-bfd, also with BFD at 5 ms x 3
// between the routers (Tandem's fast_failover_bfd, keepalived's
// track_bfd), counting the sessions' flaps too. With -json the tables go to stderr and a JSON
// document to stdout. README.md says how to read the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

func run() int {
	runs := flag.Int("runs", 5, "runs per implementation and case")
	asJSON := flag.Bool("json", false, "print the results as JSON on stdout (the table then goes to stderr)")
	tandemBin := flag.String("tandem", "", "tandem binary to test (default: build ./cmd/tandem)")
	kaBin := flag.String("keepalived", "", "keepalived binary (default: from PATH or /usr/sbin)")
	only := flag.String("case", "", "run only the cases whose name contains this (\"crash\", \"advert 0.1\", \"handover\", \"stress\")")
	stressFor := flag.Duration("stress-for", 10*time.Minute, "how long the false-failovers-under-stress case runs (0: skip it)")
	rtPriority := flag.Int("rt-priority", 0, "vrrp_rt_priority of both implementations in the stress case (0: none)")
	noSwap := flag.Bool("no-swap", false, "vrrp_no_swap for both implementations in the stress case")
	stressBFD := flag.Bool("stress-bfd", false, "the stress case with BFD at 5 ms x 3 between the routers too (Tandem: fast_failover_bfd, keepalived: track_bfd), with the same bfd_ scheduling")
	rlimitRTTime := flag.Int("rlimit-rttime", 0, "vrrp_rlimit_rttime (microseconds) of both implementations in the stress case (0: their default, 10000)")
	stressArgs := flag.String("stress-args", "--cpu 32 --vm 2 --vm-bytes 25%", "stress-ng's arguments in the stress case")
	handovers := flag.Int("handovers", 20, "handovers per planned handover row")
	flag.Parse()
	if *runs < 1 || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "failover: must run as root: it builds network namespaces (sudo go run ./bench/failover)")
		return 2
	}

	// The first Ctrl-C cancels ctx so that the current run tears its lab
	// down; stop() then restores the default, so a second one kills us
	// at once (the daemons die with us: lab.Start sets PR_SET_PDEATHSIG).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	// The machine may be shared: CPU-bound neighbours (tests, fuzzers)
	// delay the wake-ups of the daemons and of the client by up to
	// hundreds of milliseconds, which would measure the scheduler, not
	// VRRP. Both implementations get the same boost.
	if err := lab.Renice(-10); err != nil {
		fmt.Fprintln(os.Stderr, "failover: raising priority (results may be noisy):", err)
	}

	// Labs of an earlier bench killed hard would otherwise stay in
	// /run/netns.
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "failover: sweeping stale labs:", err)
	}
	dir, err := os.MkdirTemp("", "failover-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	impls, err := implementations(ctx, *tandemBin, *kaBin, dir)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "failover: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		return 1
	}

	var selected []benchCase
	for _, c := range cases {
		if strings.Contains(c.String(), *only) {
			selected = append(selected, c)
		}
	}
	// One run of each of the cases takes ~50 s in all (measured), most
	// of it in the advert 1 cases.
	fmt.Fprintf(os.Stderr, "failover: %d cases × %d implementations × %d runs, at most about %d minutes\n",
		len(selected), len(impls), *runs, (*runs*50+59)/60)
	var results []caseResult
	failed := false
	for _, c := range selected {
		r := caseResult{benchCase: c}
		for i := range *runs {
			phase := rand.N(c.advert.interval)
			r.phases = append(r.phases, phase)
			for j, im := range impls {
				took, why, err := measure(ctx, im, c, phase)
				if ctx.Err() != nil {
					fmt.Fprintln(os.Stderr, "failover: interrupted")
					return 130
				}
				if err != nil {
					failed = true
					r.series[j].failed++
					fmt.Fprintf(os.Stderr, "%s run %d/%d: %s: FAILED: %v\n", c, i+1, *runs, im.name, err)
					continue
				}
				r.series[j].add(took, c.bfd && im.bfd, why)
				if why != "" {
					why = " (" + why + ")"
				}
				fmt.Fprintf(os.Stderr, "%s run %d/%d (phase %v): %s %v%s\n", c, i+1, *runs, phase.Round(time.Millisecond), im.name, took.Round(time.Millisecond), why)
			}
		}
		results = append(results, r)
	}

	var hres []handoverResult
	for _, c := range handoverCases {
		if !strings.Contains(c.name, *only) {
			continue
		}
		r, err := measureHandover(ctx, impls[0].bin, impls[1], c, *handovers)
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "failover: interrupted")
			return 130
		}
		if err != nil {
			failed = true
			r.Err = err.Error()
			fmt.Fprintf(os.Stderr, "%s: FAILED: %v\n", c.name, err)
		} else {
			fmt.Fprintf(os.Stderr, "%s: %d handovers, %d connections, %d failed %v\n", c.name, r.Handovers, r.Answered+r.Failed, r.Failed, r.Errors)
		}
		hres = append(hres, r)
	}

	table := os.Stdout
	if *asJSON {
		table = os.Stderr
	}
	sc := stressCase{duration: *stressFor, sched: threadSched{*rtPriority, *rlimitRTTime, *noSwap, *stressBFD}, stressArgs: strings.Fields(*stressArgs)}
	var stress []stressResult
	var probed probeResult
	if sc.duration > 0 && strings.Contains(sc.String(), *only) {
		stress, probed, err = runStress(ctx, impls, sc)
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "failover: interrupted")
			return 130
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "failover:", sc, err)
			failed = true
		}
		for i, r := range stress {
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "%s: %s: FAILED: %v\n", sc, impls[i].name, r.err)
			}
		}
		if !stressPass(stress) {
			failed = true
		}
	}
	if len(results) > 0 {
		printTable(table, results)
	}
	if len(hres) > 0 {
		fmt.Fprintf(table, "\nplanned handover: %d handovers under %d connections/s through a DR pair\n", *handovers, handoverRate)
		printHandovers(table, hres)
	}
	if len(stress) > 0 {
		printStress(table, sc, impls, stress, probed)
	}
	if *asJSON {
		if err := printJSON(os.Stdout, *runs, results, hres, sc, stress, probed); err != nil {
			fmt.Fprintln(os.Stderr, "failover:", err)
			return 1
		}
	}
	for _, r := range results {
		if pass, ok := r.pass(); ok && !pass {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// implementations returns Tandem and keepalived, in the order of
// caseResult.series, building Tandem unless bin names a binary.
func implementations(ctx context.Context, tandemBin, kaBin, dir string) ([]impl, error) {
	if tandemBin == "" {
		var err error
		if tandemBin, err = lab.BuildTandem(dir); err != nil {
			return nil, fmt.Errorf("%w (run from inside the module, or pass -tandem)", err)
		}
	}
	if kaBin == "" {
		var err error
		if kaBin, err = exec.LookPath("keepalived"); err != nil {
			kaBin = "/usr/sbin/keepalived"
		}
	}
	if _, err := os.Stat(kaBin); err != nil {
		return nil, errors.Join(fmt.Errorf("keepalived not found (apt-get install keepalived, or pass -keepalived)"), err)
	}
	return []impl{
		{name: "tandem", bin: tandemBin, start: startTandem(tandemBin), transition: `msg="VRRP transition" instance=` + instance + " ", toMaster: " to=MASTER ", bfd: true,
			bfdUse: "    fast_failover_bfd " + bfdSession + "\n", bfdDown: []string{`msg="BFD session changed" session=` + bfdSession + " ", " from=Up "}},
		{name: "keepalived", bin: kaBin, start: startKeepalived(kaBin), transition: "(" + instance + ") Entering ", toMaster: "Entering MASTER STATE",
			bfdUse: "    track_bfd {\n        " + bfdSession + "\n    }\n", bfdDown: []string{"(" + bfdSession + ") Entering Down state"}},
	}, nil
}
