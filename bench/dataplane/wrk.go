package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tandem/internal/lab"
)

// wrkParams are the load generator's settings, the same for every case.
type wrkParams struct {
	bin         string
	threads     int
	connections int
	duration    time.Duration
	timeout     time.Duration
}

// args is wrk's command line for url.
func (p wrkParams) args(d time.Duration, url string) []string {
	return []string{
		"-t", strconv.Itoa(p.threads),
		"-c", strconv.Itoa(p.connections),
		"-d", fmt.Sprintf("%ds", int((d+time.Second-1)/time.Second)),
		"--timeout", fmt.Sprintf("%ds", int((p.timeout+time.Second-1)/time.Second)),
		"--latency",
		url,
	}
}

// wrkResult is what wrk printed, parsed.
type wrkResult struct {
	Requests      int64         `json:"requests"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	RPS           float64       `json:"requests_per_second"`
	P50           time.Duration `json:"p50_ns"`
	P90           time.Duration `json:"p90_ns"`
	P99           time.Duration `json:"p99_ns"`
	SocketErrors  int64         `json:"socket_errors"`
	Non2xx3xx     int64         `json:"non_2xx_3xx"`
	ConnectErrors int64         `json:"connect_errors"`
}

// runWrk runs wrk from the lab's client node for d against url. It also
// returns the CPU time wrk used (`ip netns exec` execs wrk in its own
// process, so that is wrk's rusage).
func runWrk(ctx context.Context, l *lab.Lab, p wrkParams, d time.Duration, url string) (wrkResult, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d+p.timeout+30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, "client", p.bin, p.args(d, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, 0, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r, err := parseWrk(string(out))
	if err != nil {
		return r, cpu, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return r, cpu, nil
}

// parseWrk reads wrk 4's report:
//
//	  Latency Distribution
//	     50%  401.00us
//	     ...
//	     99%    1.86ms
//	  471862 requests in 10.00s, 69.75MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 12
//	  Non-2xx or 3xx responses: 3
//	Requests/sec:  47141.12
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveP99, haveCount bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency line %q: %w", line, err)
			}
			switch f[0] {
			case "50%", "50.000%":
				r.P50 = d
			case "90%", "90.000%":
				r.P90 = d
			case "99%", "99.000%":
				r.P99, haveP99 = d, true
			}
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("count line %q: %w", line, err)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("count line %q: %w", line, err)
			}
			r.Requests, r.Elapsed, haveCount = n, d, true
		case strings.HasPrefix(line, "Socket errors:"):
			// connect 0, read 0, write 0, timeout 0
			kv := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "Socket errors:"), ",", ""))
			for i := 0; i+1 < len(kv); i += 2 {
				n, err := strconv.ParseInt(kv[i+1], 10, 64)
				if err != nil {
					return r, fmt.Errorf("socket errors line %q: %w", line, err)
				}
				r.SocketErrors += n
				if kv[i] == "connect" {
					r.ConnectErrors = n
				}
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("non-2xx line %q: %w", line, err)
			}
			r.Non2xx3xx = n
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return r, fmt.Errorf("rate line %q: %w", line, err)
			}
			r.RPS, haveRPS = v, true
		}
	}
	switch {
	case !haveRPS:
		return r, fmt.Errorf("no Requests/sec line in wrk's output")
	case !haveP99:
		return r, fmt.Errorf("no 99%% latency line in wrk's output (was --latency given?)")
	case !haveCount:
		return r, fmt.Errorf("no request count line in wrk's output")
	}
	return r, nil
}

// parseWrkDuration reads wrk's durations ("401.00us", "1.86ms", "10.00s",
// "1.02m"): its units are Go's.
func parseWrkDuration(s string) (time.Duration, error) {
	return time.ParseDuration(s)
}
