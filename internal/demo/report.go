package demo

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeSummary prints the results as a table and a verdict line.
func writeSummary(w io.Writer, results []Result, total time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TEST\tRESULT\tTIME\tDETAIL\n")
	passed := 0
	for _, r := range results {
		verdict := "FAIL"
		if r.Pass {
			verdict = "PASS"
			passed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, verdict, secs(r.Took), r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "PASS"
	if passed < len(results) {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "%s: %d of %d tests passed in %s\n", verdict, passed, len(results), secs(total))
	return err
}

// AllPassed reports whether there are results and all of them passed.
func AllPassed(results []Result) bool {
	for _, r := range results {
		if !r.Pass {
			return false
		}
	}
	return len(results) > 0
}
