// Command chaos runs Tandem directors through a seeded random schedule of
// faults in a lab of network namespaces (internal/lab) and checks, all the
// time, that VRRP comes back to one master per virtual router after each
// heal, with the VIP, its virtual route and its virtual rule on that
// master alone, that a director stopped cleanly leaves nothing behind,
// and how much of the time a client reaches the VIPs.
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/chaos [-directors 2|3] [-duration D] [-seed N] [-advert D]
//	    [-vips N] [-kinds crash,stop,...] [-margin D] [-garp-refresh S] [-replay FILE|SEED]
//	    [-tandem BIN] [-json]
//
// The seed is always printed; on a violation the whole schedule is
// printed and written to a file that -replay runs again. README.md says
// what each fault does and how the invariants are judged.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

func run() int {
	directors := flag.Int("directors", 2, "directors: 2 or 3")
	length := flag.Duration("duration", 5*time.Minute, "how long the schedule runs")
	seed := flag.Uint64("seed", 0, "the schedule's seed (default: random; always printed)")
	advert := flag.Duration("advert", 100*time.Millisecond, "advert_int (VRRPv3)")
	vips := flag.Int("vips", 2, "VRRP instances, one VIP each, masters spread over the directors")
	kindList := flag.String("kinds", kindsString(kinds), "the faults to draw from, comma-separated")
	margin := flag.Duration("margin", 350*time.Millisecond, "added to 3 x advert + skew to make the window after a heal")
	refresh := flag.Int("garp-refresh", 0, "garp_master_refresh in seconds (0: none, keepalived's default)")
	replay := flag.String("replay", "", "run a schedule file (as a violation writes) or the schedule of a seed")
	tandemBin := flag.String("tandem", "", "tandem binary (default: build ./cmd/tandem)")
	asJSON := flag.Bool("json", false, "print the result as JSON on stdout (the table then goes to stderr)")
	flag.Parse()
	if flag.NArg() > 0 || *directors < 2 || *directors > 3 || *vips < 1 || *vips > 50 || *advert <= 0 || *refresh < 0 {
		flag.Usage()
		return 2
	}
	allowed, err := parseKinds(*kindList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "chaos: must run as root: it builds network namespaces (sudo go run ./bench/chaos)")
		return 2
	}

	var sch schedule
	switch {
	case *replay != "":
		s, seedOnly, err := loadReplay(*replay)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		sch = s
		if seedOnly {
			*seed = s.Seed
		}
		if !seedOnly {
			break
		}
		fallthrough
	default:
		if *seed == 0 {
			*seed = rand.Uint64()
		}
		sch = generate(*seed, *directors, *vips, *advert, *length, window(*advert, *directors, *margin), allowed)
	}
	fmt.Fprintf(os.Stderr, "chaos: seed %d (replay: -replay %d with the same flags, or the schedule file a violation writes)\n", sch.Seed, sch.Seed)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: sweeping stale labs:", err)
	}
	bin := *tandemBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if bin, err = lab.BuildTandem(dir); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %v (run from inside the module, or pass -tandem)\n", err)
			return 1
		}
	}
	res, err := chaos(ctx, sch, options{tandem: bin, margin: *margin, garpRefresh: *refresh, log: os.Stderr, logDir: "."})
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "chaos: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		printSchedule(os.Stderr, sch)
		return 1
	}
	table := os.Stdout
	if *asJSON {
		table = os.Stderr
	}
	printTable(table, res)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
	}
	if len(res.Violations) > 0 {
		printSchedule(os.Stderr, sch)
		return 1
	}
	return 0
}

func kindsString(ks []kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func parseKinds(list string) ([]kind, error) {
	var out []kind
	for _, f := range strings.Split(list, ",") {
		k := kind(strings.TrimSpace(f))
		if !slices.Contains(kinds, k) {
			return nil, fmt.Errorf("-kinds: unknown fault %q (have %s)", k, kindsString(kinds))
		}
		out = append(out, k)
	}
	return out, nil
}
