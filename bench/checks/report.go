package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func printTable(w io.Writer, rs []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tcheckers\tduration\tchecks/s\tCPU (1 core)\tCPU at N/s\tpeak RSS\tp50\tp99\tfailures\tCPU < 25%\tRSS < 150 MB\t")
	for _, r := range rs {
		cpuV, rssV := "-", "-"
		if r.Targets {
			cpuV, rssV = verdict(r.cpuOK()), verdict(r.rssOK())
		}
		rss := fmt.Sprintf("%.1f MB", float64(r.PeakRSS)/(1<<20))
		if !r.RSSOwn {
			rss += "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%.0f\t%.3f\t%.3f\t%s\t%v\t%v\t%d\t%s\t%s\t\n",
			r.Case, r.Checkers, r.Duration.Seconds(), r.ChecksPerSec, r.CPU, r.CPUAtRate, rss,
			r.P50, r.P99, r.Failures+int64(r.Downs), cpuV, rssV)
	}
	tw.Flush()

	fmt.Fprintln(w, "\ndetection: listener closed halfway, time until RealServerDown reached the consumer")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\treal server\tretry\tdetected in\tbound\tresult\t")
	for _, r := range rs {
		for _, v := range r.Victims {
			took := "never"
			switch {
			case v.DownBefore && !v.Detected:
				took = "down before kill"
			case v.Detected:
				took = v.Took.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%s\t\n", r.Case, v.Addr, v.Retry, took, v.Bound, verdict(v.pass()))
		}
	}
	tw.Flush()

	fmt.Fprintln(w)
	for _, r := range rs {
		fmt.Fprintf(w, "%s case: load average %s at start, %s at end; %d runs sampled\n", r.Case, r.LoadStart, r.LoadEnd, r.SampledRuns)
	}
	for _, r := range rs {
		if r.Floor > 0 {
			fmt.Fprintf(w, "%s case: a bare blocking connect+close costs %.1fµs of CPU here; at %.0f checks/s that alone is %.3f of a core\n",
				r.Case, float64(r.Floor)/1e3, r.ChecksPerSec, r.FloorCPU)
		}
	}
	for _, r := range rs {
		switch {
		case r.CPURatio > 0:
			fmt.Fprintf(w, "%s case: io_uring uses %.2fx the CPU of plain sockets (%.3f vs %.3f of a core at N/s)\n",
				r.Case, r.CPURatio, r.CPUAtRate, r.PlainCPUAtRate)
		case r.Sockets == ioUringRefused:
			fmt.Fprintf(w, "%s case: the scheduler could not use io_uring (logged above): TCP_CHECK ran on plain sockets\n", r.Case)
		}
	}
	for _, r := range rs {
		if !r.RSSOwn {
			fmt.Fprintln(w, "* peak RSS since process start: /proc/self/clear_refs could not reset it")
			break
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
