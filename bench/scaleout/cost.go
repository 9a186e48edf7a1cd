package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"tandem/internal/lab"
)

// costResult is the forwarding cost with n directors: the machine's CPU
// time (every process and the kernel's packet processing, which the
// directors' forwarding is) per 1,000 requests answered through the VIP
// at the same offered load.
type costResult struct {
	directors int
	answered  int
	cpu       time.Duration
	window    time.Duration
}

func (c costResult) perThousand() time.Duration {
	if c.answered == 0 {
		return 0
	}
	return c.cpu * 1000 / time.Duration(c.answered)
}

// cost measures, with 1 to maxDirs directors in turn, the CPU the whole
// machine spends per 1,000 requests while n connections each send one
// every interval for window. On two cores the load is the same for every
// count, so the throughput cannot grow with the directors; what must not
// grow is the cost of a request, which crosses exactly one of them.
func cost(ctx context.Context, bin string, maxDirs, n int, interval, window time.Duration) ([]costResult, error) {
	var out []costResult
	for dirs := 1; dirs <= maxDirs; dirs++ {
		r, err := costOnce(ctx, bin, dirs, n, interval, window)
		if err != nil {
			return out, fmt.Errorf("%d directors: %w", dirs, err)
		}
		fmt.Fprintf(os.Stderr, "cost with %d directors: %d requests answered in %v, %v of CPU\n", dirs, r.answered, r.window.Round(time.Millisecond), r.cpu)
		out = append(out, r)
	}
	return out, nil
}

func costOnce(ctx context.Context, bin string, dirs, n int, interval, window time.Duration) (costResult, error) {
	r := costResult{directors: dirs}
	dir, err := os.MkdirTemp("", "scaleout-cost-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	// One director is no scale-out (ScaleOut.Validate), but it is the
	// baseline: the same lab with a single next hop.
	b, stops, err := setUp(ctx, dir, bin, lab.ScaleOut{Directors: dirs}, dirs)
	if err != nil {
		return r, err
	}
	defer b.close(stops)
	cs, err := b.l.OpenConns(lab.ScaleOutClient.Name, lab.ScaleOutVIP, n, interval)
	if err != nil {
		return r, err
	}
	defer cs.Stop()
	time.Sleep(2 * time.Second) // past the connections' start
	count := func() int {
		sum := 0
		for _, c := range cs.Results() {
			sum += c.Answers
		}
		return sum
	}
	a0, c0, t0 := count(), busy(), time.Now()
	if err := lab.Sleep(ctx, window); err != nil {
		return r, err
	}
	a1, c1, t1 := count(), busy(), time.Now()
	if c0 < 0 || c1 < 0 {
		return r, fmt.Errorf("reading /proc/stat")
	}
	for _, c := range cs.Stop() {
		if c.Err != nil {
			return r, fmt.Errorf("a connection broke during the measurement: %v", c.Err)
		}
	}
	r.answered, r.cpu, r.window = a1-a0, c1-c0, t1.Sub(t0)
	return r, nil
}

// busy is the CPU time the machine has spent on anything but idling,
// from /proc/stat's first line (USER_HZ ticks: user, nice, system, idle,
// iowait, irq, softirq, steal...); -1 if it cannot be read.
func busy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

func printCost(w io.Writer, rs []costResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "directors\trequests/s\tCPU per 1,000 requests\tvs 1 director")
	for _, r := range rs {
		ratio := "-"
		if base := rs[0].perThousand(); base > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(r.perThousand())/float64(base))
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%v\t%s\n", r.directors, float64(r.answered)/r.window.Seconds(), r.perThousand().Round(100*time.Microsecond), ratio)
	}
	tw.Flush()
}
