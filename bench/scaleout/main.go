// Command scaleout measures whether established TCP connections through
// the scale-out lab's VIP (lab.ScaleOut: a bird2 router spreading flows
// over BGP directors with ECMP) survive four events: a director's crash,
// a director joining, `tandem drain` of a director, and a real server
// leaving the pool. It prints, per event, the connections kept, the
// longest stall, and the time the router took to change its route.
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/scaleout [-runs N] [-conns N] [-interval D] [-directors N] [-event NAME,...] [-tandem BIN]
//	go run ./bench/scaleout -cost [-directors N] [-conns N] [-interval D] [-window D]
//
// With -cost it measures instead the machine's CPU per 1,000 requests
// through the VIP with 1 to N directors at the same offered load.
//
// README.md says what is measured and how to read it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

// goal is the issue's: at least 99.5% of the connections continue (for
// leave: of those on the servers that stay).
const goal = 0.995

// events, in the order they run.
var events = []string{"crash", "join", "drain", "leave"}

func run() int {
	runs := flag.Int("runs", 3, "runs per event, each in a fresh lab")
	n := flag.Int("conns", 200, "connections per run")
	interval := flag.Duration("interval", 50*time.Millisecond, "how often each connection sends a request")
	dirs := flag.Int("directors", 3, "directors (2-4); join starts with one less")
	bfd := flag.Bool("bfd", false, "a BFD session beside each BGP session (50 ms x 3)")
	only := flag.String("event", strings.Join(events, ","), "events to run, comma-separated: "+strings.Join(events, ", "))
	bin := flag.String("tandem", "", "tandem binary to test (default: build ./cmd/tandem)")
	costMode := flag.Bool("cost", false, "measure the CPU per 1,000 requests with 1 to -directors directors instead of the events")
	window := flag.Duration("window", 10*time.Second, "-cost: how long each count is measured")
	flag.Parse()
	so := lab.ScaleOut{Directors: *dirs, BFD: *bfd}
	if *runs < 1 || *n < 1 || flag.NArg() > 0 || so.Validate() != nil {
		flag.Usage()
		return 2
	}
	for _, e := range strings.Split(*only, ",") {
		if !slices.Contains(events, e) {
			fmt.Fprintf(os.Stderr, "scaleout: no event %q; the events: %s\n", e, strings.Join(events, ", "))
			return 2
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "scaleout: must run as root: it builds network namespaces")
		return 2
	}
	if err := lab.BirdMissing(); err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "scaleout: sweeping stale labs:", err)
	}
	tandem, cleanup, err := lab.TandemFor(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		return 1
	}
	defer cleanup()
	*bin = tandem
	if *costMode {
		rs, err := cost(ctx, *bin, *dirs, *n, *interval, *window)
		if len(rs) > 0 {
			printCost(os.Stdout, rs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scaleout: cost:", err)
			return 1
		}
		return 0
	}
	var results []eventResult
	failed := false
	for _, ev := range events {
		if !slices.Contains(strings.Split(*only, ","), ev) {
			continue
		}
		r := eventResult{Event: ev}
		for i := range *runs {
			o, err := measure(ctx, ev, *bin, so, *n, *interval)
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "scaleout: interrupted")
				return 130
			}
			if err != nil {
				failed = true
				r.Failed++
				fmt.Fprintf(os.Stderr, "%s run %d/%d: FAILED: %v\n", ev, i+1, *runs, err)
				continue
			}
			r.add(o)
			leaving := ""
			if ev == "leave" {
				leaving = fmt.Sprintf(" (and %d/%d on the leaving server)", o.leavingKept, o.leaving)
			}
			fmt.Fprintf(os.Stderr, "%s run %d/%d: %d/%d kept%s, longest stall %v, route or pool changed after %v\n",
				ev, i+1, *runs, o.kept, o.conns, leaving, o.stall.Round(time.Millisecond), o.route.Round(time.Millisecond))
			for _, e := range o.errs {
				fmt.Fprintln(os.Stderr, "  broken:", e)
			}
		}
		results = append(results, r)
		failed = failed || !r.pass()
	}
	printTable(os.Stdout, results)
	if failed {
		return 1
	}
	return 0
}

// eventResult sums one event's runs. Its KeptRuns count the connections
// that should survive: all of them, or for leave those on the servers that
// stay.
type eventResult struct {
	Event string
	lab.KeptRuns
	Failed int // runs that could not be measured
	// Leaving and LeavingKept count leave's connections on the leaving
	// server.
	Leaving, LeavingKept int
	Routes               []time.Duration // each run's event to the router's new next hops (leave: the pools' change)
}

func (r *eventResult) add(o outcome) {
	r.Add(o.conns, o.kept, o.stall)
	r.Leaving += o.leaving
	r.LeavingKept += o.leavingKept
	r.Routes = append(r.Routes, o.route)
}

func (r eventResult) pass() bool { return r.Runs > 0 && r.Failed == 0 && r.Share() >= goal }

func printTable(w io.Writer, rs []eventResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "event\truns\tconnections kept\tkept\tworst run\ton the leaving server kept\tlongest stall median\tmax\troute/pool changed median\tgoal >= 99.5%")
	for _, r := range rs {
		verdict := "met"
		if !r.pass() {
			verdict = "NOT met"
		}
		leaving := "-"
		if r.Event == "leave" {
			leaving = fmt.Sprintf("%d/%d", r.LeavingKept, r.Leaving)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%.2f%%\t%.2f%%\t%s\t%v\t%v\t%v\t%s\n", r.Event, r.Runs, r.Kept, r.Conns, 100*r.Share(), 100*r.MinKept, leaving,
			lab.Median(r.Stalls).Round(time.Millisecond), slices.Max(append([]time.Duration{0}, r.Stalls...)).Round(time.Millisecond),
			lab.Median(r.Routes).Round(time.Millisecond), verdict)
	}
	tw.Flush()
}
