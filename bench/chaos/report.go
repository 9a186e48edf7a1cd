package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

func printTable(w io.Writer, r result) {
	s := r.Schedule
	fmt.Fprintf(w, "chaos: seed %d, %d directors, %d VIPs, advert %v, window %v, ran %v\n",
		s.Seed, s.Directors, s.VIPs, time.Duration(s.Advert), r.Window.Round(time.Millisecond), r.Elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tinjected\tskipped")
	total := 0
	for _, k := range kinds {
		if r.Executed[k]+r.Skipped[k] == 0 {
			continue
		}
		total += r.Executed[k]
		skipped := "-"
		if n := r.Skipped[k]; n > 0 {
			skipped = fmt.Sprintf("%d (stress-ng not installed: apt-get install stress-ng)", n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, r.Executed[k], skipped)
	}
	fmt.Fprintf(tw, "all\t%d\t\n", total)
	tw.Flush()
	fmt.Fprintf(w, "master changes: %d; samples judged: %d, not judged (a status report not fresh): %d\n",
		r.MasterChanges, r.Judged, r.Unjudged)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP\trequests\tanswered\tquiet requests\tquiet answered\tworst second\tlongest outage")
	for _, a := range r.Avail {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%.0f%%\t%v\n", a.VIP, a.Requests, pct(a.OK, a.Requests),
			a.QuietReqs, pct(a.QuietOK, a.QuietReqs), 100*a.WorstSec, a.Longest.Round(time.Millisecond))
	}
	tw.Flush()
	for _, a := range r.Avail {
		var long []outage
		for _, o := range a.Outages {
			if o.Lasted >= time.Second {
				long = append(long, o)
			}
		}
		if len(long) > 0 {
			fmt.Fprintf(w, "%s: %d outages of 1 s or more:\n", a.VIP, len(long))
			for _, o := range long {
				fmt.Fprintf(w, "  %v\n", o)
			}
		}
	}
	fmt.Fprintf(w, "violations: %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  %v\n", v)
	}
	if r.Logs != "" {
		fmt.Fprintf(w, "the directors' logs are in %s\n", r.Logs)
	}
}

func pct(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

// printSchedule prints the seed and the schedule and writes it to a file
// for -replay.
func printSchedule(w io.Writer, s schedule) {
	fmt.Fprintf(w, "chaos: seed %d, %d directors, %d VIPs, advert %v, %v; schedule:\n",
		s.Seed, s.Directors, s.VIPs, time.Duration(s.Advert), time.Duration(s.Duration))
	for _, e := range s.Events {
		fmt.Fprintf(w, "  %v\n", e)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		f := fmt.Sprintf("chaos-%d.json", s.Seed)
		if err = os.WriteFile(f, append(b, '\n'), 0o644); err == nil {
			fmt.Fprintf(w, "chaos: schedule written to %s; replay: go run ./bench/chaos -replay %s (or -replay %d -directors %d -vips %d -advert %v -duration %v -kinds %s with the same -margin)\n",
				f, f, s.Seed, s.Directors, s.VIPs, time.Duration(s.Advert), time.Duration(s.Duration), kindsString(s.Kinds))
			return
		}
	}
	fmt.Fprintln(w, "chaos: writing the schedule file:", err)
}
