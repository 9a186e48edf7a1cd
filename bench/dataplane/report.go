package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// environment is what the machine was doing around the run.
type environment struct {
	CPUs       int     `json:"cpus"`
	LoadBefore float64 `json:"loadavg_1m_before"`
	LoadAfter  float64 `json:"loadavg_1m_after"`
}

// ratio is one target: num's requests/s over den's, both from one layout.
type ratio struct {
	Name   string  `json:"name"`
	Layout string  `json:"layout"`
	Num    string  `json:"numerator"`
	Den    string  `json:"denominator"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Pass   bool    `json:"pass"`
	// P99Ratio is num's p99 latency over den's, for information.
	P99Ratio float64 `json:"p99_ratio"`
}

// targets: DR >= 0.9 x direct, NAT >= 0.8 x direct, both >= 1.5 x haproxy;
// XDP DR >= nftables DR and >= 0.95 x direct.
var targets = []struct {
	name, layout, num, den string
	min                    float64
}{
	{"NAT/direct", "NAT", caseNFT, caseDirect, 0.8},
	{"DR/direct", "DR", caseNFT, caseDirect, 0.9},
	{"NAT/haproxy", "NAT", caseNFT, caseHAProxy, 1.5},
	{"DR/haproxy", "DR", caseNFT, caseHAProxy, 1.5},
	{"XDP DR/nftables DR", "DR", caseXDP, caseNFT, 1.0},
	{"XDP DR/direct", "DR", caseXDP, caseDirect, 0.95},
}

type report struct {
	Wrk         string        `json:"wrk"`
	Threads     int           `json:"threads"`
	Connections int           `json:"connections"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Runs        int           `json:"runs"`
	Env         environment   `json:"environment"`
	// Measurements has the median run of each case (by requests/s),
	// the one the table and the ratios use; AllRuns has every run.
	Measurements []measurement `json:"measurements"`
	AllRuns      []measurement `json:"all_runs"`
	Ratios       []ratio       `json:"ratios"`
	// PPS and Consistency are the other parts, when run (-cases).
	PPS         *ppsReport          `json:"pps,omitempty"`
	Consistency []consistencyResult `json:"consistency,omitempty"`
	Pass        bool                `json:"pass"`
}

func newReport(p wrkParams, warmup time.Duration, runs int, env environment, all []measurement) report {
	r := report{
		Wrk:         strings.Join(append([]string{"wrk"}, p.args(p.duration, "URL")...), " "),
		Threads:     p.threads,
		Connections: p.connections,
		Duration:    p.duration,
		Warmup:      warmup,
		Runs:        runs,
		Env:         env,
		AllRuns:     all,
		Pass:        true,
	}
	if len(all) == 0 { // wrk not run (-cases)
		return r
	}
	ms := medians(all)
	r.Measurements = ms
	find := func(layout, kase string) *measurement {
		for i := range ms {
			if ms[i].Layout == layout && ms[i].Case == kase {
				return &ms[i]
			}
		}
		return nil
	}
	for _, t := range targets {
		num, den := find(t.layout, t.num), find(t.layout, t.den)
		if num == nil || den == nil || den.RPS == 0 || den.P99 == 0 {
			r.Pass = false
			continue
		}
		q := ratio{Name: t.name, Layout: t.layout, Num: t.num, Den: t.den, Target: t.min,
			Value: num.RPS / den.RPS, P99Ratio: float64(num.P99) / float64(den.P99)}
		q.Pass = q.Value >= q.Target
		r.Pass = r.Pass && q.Pass
		r.Ratios = append(r.Ratios, q)
	}
	return r
}

func (r *report) setPPS(p *ppsReport) {
	r.PPS = p
	r.Pass = r.Pass && (p == nil || p.Pass)
}

func (r *report) setConsistency(cs []consistencyResult) {
	r.Consistency = cs
	for _, c := range cs {
		r.Pass = r.Pass && c.Pass
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (r report) print(w io.Writer) {
	if r.PPS != nil {
		r.PPS.print(w)
		fmt.Fprintln(w)
	}
	if r.Consistency != nil {
		printConsistency(w, r.Consistency)
		fmt.Fprintln(w)
	}
	if len(r.AllRuns) > 0 {
		r.printWrk(w)
		fmt.Fprintln(w)
	}
	verdict := "PASS: every target met"
	if !r.Pass {
		verdict = "FAIL: at least one target missed"
	}
	fmt.Fprintln(w, verdict)
}

// printWrk prints the requests/s part.
func (r report) printWrk(w io.Writer) {
	fmt.Fprintf(w, "%s  (%d runs per case, median shown; warm-up %v per run; %d CPUs; load average %.2f before, %.2f after)\n\n",
		r.Wrk, r.Runs, r.Warmup, r.Env.CPUs, r.Env.LoadBefore, r.Env.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layout\tcase\tpath\treq/s\tp50\tp99\terrors\tserved rs1/rs2\tcpu busy\tsoftirq\tevery run req/s\t")
	for _, m := range r.Measurements {
		var every []string
		for _, a := range r.AllRuns {
			if a.Layout == m.Layout && a.Case == m.Case {
				every = append(every, fmt.Sprintf("%.0f", a.RPS))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%d\t%s\t%.0f%%\t%.0f%%\t%s\t\n",
			m.Layout, m.Case, m.Path, m.RPS, fmtMS(m.P50), fmtMS(m.P99),
			m.SocketErrors+m.Non2xx3xx, split(m.Served), m.CPU.Busy, m.CPU.Softirq, strings.Join(every, " "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CPU us per request\tclient (wrk)\tservers (nginx)\tdirector procs\tsoftirq (machine)\ttotal\t")
	for _, m := range r.Measurements {
		c := m.PerRequest
		fmt.Fprintf(tw, "%s %s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", m.Layout, m.Case, c.Client, c.Servers, c.Director, c.Softirq, c.total())
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio (req/s)\tvalue\ttarget\tresult\tp99 ratio\t")
	for _, q := range r.Ratios {
		fmt.Fprintf(tw, "%s\t%.2f\t>= %.2f\t%s\t%.2f\t\n", q.Name, q.Value, q.Target, passFail(q.Pass), q.P99Ratio)
	}
	tw.Flush()
}

// print prints the packets-per-second part.
func (p ppsReport) print(w io.Writer) {
	fmt.Fprintf(w, "packets per second, LVS-DR, one director core: %s\n\n", p.Setup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "data plane\toffered pps\tdirector counted pps\tforwarded pps\tdirector CPU\tpps per core\tevery run pps per core\tmachine CPU busy (per CPU)\t")
	for _, m := range []ppsRun{p.XDP, p.NFT} {
		var every []string
		for _, x := range p.Runs {
			if x.Dataplane == m.Dataplane {
				every = append(every, fmt.Sprintf("%.0f", x.PerCore))
			}
		}
		busy := make([]string, len(m.CPUBusy))
		for i, b := range m.CPUBusy {
			busy[i] = fmt.Sprintf("%.0f%%", b)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f%%\t%.0f\t%s\t%s\t\n", m.Dataplane, m.Offered, m.Director, m.Forwarded, 100*m.DirectorCPU, m.PerCore,
			strings.Join(every, " "), strings.Join(busy, " "))
	}
	tw.Flush()
	rounds := make([]string, len(p.RoundRatios))
	for i, q := range p.RoundRatios {
		rounds[i] = fmt.Sprintf("%.2f", q)
	}
	fmt.Fprintf(w, "%s\nXDP/nftables per core: %.2f (median of the rounds' ratios: %s; ratio of the medians %.2f), target >= %.2f: %s\n",
		p.IPVS, p.Ratio, strings.Join(rounds, " "), p.MedianRatio, p.Target, passFail(p.Pass))
}

// printConsistency prints the connection-consistency part: the XDP
// target, and nftables DR for information.
func printConsistency(w io.Writer, cs []consistencyResult) {
	fmt.Fprintf(w, "connection consistency, DR, rs1-rs4 at weights 1:1:1:1\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "data plane\tchange\testablished flows moved\tgoal\tcheck on new flows\tresult\t")
	for _, c := range cs {
		result := passFail(c.Pass)
		if c.Dataplane != caseXDP {
			result = "(information)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d of %d (%.2f%%)\t<= 1%%\t%s's share %.1f%% -> %.1f%%\t%s\t\n", c.Dataplane, c.WeightChange, c.WeightMoved, c.Flows,
			100*float64(c.WeightMoved)/float64(max(c.Flows, 1)), ccWeightRS, 100*c.InitialShare, 100*c.NewShare, result)
		fmt.Fprintf(tw, "\t%s\t%d of its %d; %d of the others\tall of its; none else\t%d new flows to %s\t\t\n", c.Removal,
			c.RemovedMoved, c.RemovedFlows, c.OthersMoved, c.NewOnRemoved, ccLeaving)
	}
	tw.Flush()
	for _, c := range cs {
		fmt.Fprintf(w, "%s: %d flows (%s), through %s\n", c.Dataplane, c.Flows, flowsPer(c.Initial), c.Method)
	}
}

func (r report) printJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// medians returns, per layout and case in order of first appearance, the
// run with the median requests/s (the lower middle one for an even count).
func medians(all []measurement) []measurement {
	type key struct{ layout, kase string }
	var order []key
	runs := map[key][]measurement{}
	for _, m := range all {
		k := key{m.Layout, m.Case}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = append(runs[k], m)
	}
	out := make([]measurement, 0, len(order))
	for _, k := range order {
		rs := runs[k]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
		out = append(out, rs[(len(rs)-1)/2])
	}
	return out
}

// split shows each real server's share of the requests it served.
func split(served map[string]int64) string {
	var total int64
	names := make([]string, 0, len(served))
	for n, v := range served {
		total += v
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(served[n]) / float64(total)
		}
		parts[i] = fmt.Sprintf("%.0f%%", pct)
	}
	return strings.Join(parts, "/")
}

// fmtMS formats a latency in milliseconds, in ASCII.
func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
