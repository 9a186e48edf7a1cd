// Command conns measures whether established TCP connections survive the
// loss of the director carrying them: the "connections kept" row.
// In a lab of network namespaces it runs a Tandem director pair, opens
// long-lived connections from a client through the VIP (each sending a
// line every -interval and reading the real server's answer on the same
// connection), crashes the master (switch port cut and SIGKILL, as a
// machine failure), and counts the connections that carry on through the
// backup with no error and no reset, and the longest stall any of them
// saw.
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/conns [-runs N] [-conns N] [-interval D] [-mode NAME,...] [-json] [-tandem BIN]
//
// README.md says what is measured and how to read it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

// goal is the issue's: at least 99.5% of the connections continue.
const goal = 0.995

func run() int {
	runs := flag.Int("runs", 5, "runs per mode, each in a fresh lab")
	n := flag.Int("conns", 200, "connections per run")
	interval := flag.Duration("interval", 50*time.Millisecond, "how often each connection sends a request")
	only := flag.String("mode", "", "run only the modes whose name contains one of these, comma-separated (controls only when that one contains \"control\")")
	asJSON := flag.Bool("json", false, "print the results as JSON on stdout (the table then goes to stderr)")
	bin := flag.String("tandem", "", "tandem binary to test (default: build ./cmd/tandem)")
	flag.Parse()
	if *runs < 1 || *n < 1 || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "conns: must run as root: it builds network namespaces")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	// As bench/failover: CPU-bound neighbours on a shared machine would
	// otherwise measure the scheduler.
	if err := lab.Renice(-10); err != nil {
		fmt.Fprintln(os.Stderr, "conns: raising priority (results may be noisy):", err)
	}
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "conns: sweeping stale labs:", err)
	}
	tandem, cleanup, err := lab.TandemFor(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		return 1
	}
	defer cleanup()
	*bin = tandem

	var results []modeResult
	failed := false
	for _, m := range modes {
		if !selected(m, *only) {
			continue
		}
		if m.needs != "" {
			if _, err := exec.LookPath(m.needs); err != nil {
				failed = true
				fmt.Fprintf(os.Stderr, "%s: not run: %s not installed (Debian package %s)\n", m.name, m.needs, m.needs)
				continue
			}
		}
		r := modeResult{Mode: m.name, Control: m.control}
		for i := range *runs {
			o, err := measure(ctx, m, *bin, *n, *interval)
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "conns: interrupted")
				return 130
			}
			if err != nil {
				failed = true
				r.Failed++
				fmt.Fprintf(os.Stderr, "%s run %d/%d: FAILED: %v\n", m.name, i+1, *runs, err)
				continue
			}
			r.add(o)
			fmt.Fprintf(os.Stderr, "%s run %d/%d: %d/%d kept, longest stall %v, backup MASTER after %v\n",
				m.name, i+1, *runs, o.kept, o.conns, o.stall.Round(time.Millisecond), o.failover.Round(time.Millisecond))
			for _, e := range o.errs {
				fmt.Fprintln(os.Stderr, "  broken:", e)
			}
		}
		results = append(results, r)
		failed = failed || (!m.control && !r.pass())
	}
	out := io.Writer(os.Stdout)
	if *asJSON {
		out = os.Stderr
	}
	printTable(out, results)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintln(os.Stderr, "conns:", err)
			return 1
		}
	}
	if failed {
		return 1
	}
	return 0
}

// selected reports whether -mode only names m: m's name contains one of
// its comma-separated items, an item that contains "control" for a
// control mode.
func selected(m mode, only string) bool {
	for _, item := range strings.Split(only, ",") {
		if strings.Contains(m.name, item) && (!m.control || strings.Contains(item, "control")) {
			return true
		}
	}
	return false
}

// modeResult sums one mode's runs.
type modeResult struct {
	Mode    string
	Control bool // not held to the goal (mode.control)
	lab.KeptRuns
	Failed    int             // runs that could not be measured
	Failovers []time.Duration // each run's crash to backup MASTER
}

func (r *modeResult) add(o outcome) {
	r.Add(o.conns, o.kept, o.stall)
	r.Failovers = append(r.Failovers, o.failover)
}

func (r modeResult) pass() bool { return r.Runs > 0 && r.Share() >= goal }

func printTable(w io.Writer, rs []modeResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\truns\tconnections kept\tkept\tworst run\tlongest stall median\tmax\tbackup MASTER median\tgoal >= 99.5%")
	for _, r := range rs {
		verdict := "met"
		switch {
		case r.Control:
			verdict = "control: should not be met"
		case !r.pass():
			verdict = "NOT met"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%.2f%%\t%.2f%%\t%v\t%v\t%v\t%s\n", r.Mode, r.Runs, r.Kept, r.Conns, 100*r.Share(), 100*r.MinKept,
			lab.Median(r.Stalls).Round(time.Millisecond), slices.Max(append([]time.Duration{0}, r.Stalls...)).Round(time.Millisecond),
			lab.Median(r.Failovers).Round(time.Millisecond), verdict)
	}
	tw.Flush()
}
