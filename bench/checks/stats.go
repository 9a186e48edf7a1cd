package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is the user+system CPU this process has used (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS sets VmHWM back to the current RSS (clear_refs "5", Linux
// 4.0+), so each case's peak is its own and not the previous case's.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is VmHWM, the peak resident set size, in bytes.
func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadAvg is the 1, 5 and 15 minute load average, as /proc/loadavg has it,
// and the share of the last 60 s in which some task waited for a CPU
// (/proc/pressure/cpu), which says more on a machine with few CPUs.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	s := strings.Join(f[:3], " ")
	b, _ = os.ReadFile("/proc/pressure/cpu")
	for _, kv := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(kv, "avg60="); ok {
			return s + " (cpu pressure " + v + "%)"
		}
	}
	return s
}

// hist counts latencies with three significant digits in fixed memory: a
// 60 s run of 10,000 checkers yields 600,000 samples, and keeping them
// would inflate the very RSS being measured.
type hist struct {
	counts [5][1000]int64 // [decade][µs value scaled to 3 digits]
	n      int64
}

func (h *hist) add(d time.Duration) {
	us, e := d.Microseconds(), 0
	for us >= 1000 && e < 4 {
		us /= 10
		e++
	}
	h.counts[e][min(us, 999)]++
	h.n++
}

// quantile is the lower bound of the bucket holding the q-th sample.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n-1)) + 1
	scale := time.Microsecond
	for e := range h.counts {
		for v, c := range h.counts[e] {
			if rank -= c; rank <= 0 {
				return time.Duration(v) * scale
			}
		}
		scale *= 10
	}
	return 0
}
