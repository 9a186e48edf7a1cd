package main

import (
	"strings"
	"testing"
	"time"
)

// wrk 4.1.0's report with --latency, as Debian's wrk prints it.
const wrkOut = `Running 10s test @ http://172.16.7.5:80/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms    2.87ms  61.04ms   95.12%
    Req/Sec    26.93k     2.61k   33.01k    71.00%
  Latency Distribution
     50%  625.00us
     75%    0.95ms
     90%    1.62ms
     99%   15.87ms
  535873 requests in 10.00s, 79.73MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  53577.34
Transfer/sec:      7.97MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{
		Requests:     535873,
		Elapsed:      10 * time.Second,
		RPS:          53577.34,
		P50:          625 * time.Microsecond,
		P90:          1620 * time.Microsecond,
		P99:          15870 * time.Microsecond,
		SocketErrors: 5,
		Non2xx3xx:    4,
	}
	if r != want {
		t.Errorf("parseWrk:\n got %+v\nwant %+v", r, want)
	}
}

func TestParseWrkIncomplete(t *testing.T) {
	// Without --latency there is no 99% line.
	noLatency := strings.Replace(wrkOut, "     99%   15.87ms\n", "", 1)
	if _, err := parseWrk(noLatency); err == nil || !strings.Contains(err.Error(), "99%") {
		t.Errorf("no 99%% line: err = %v", err)
	}
	if _, err := parseWrk("unable to connect to 172.16.7.5:80 Connection refused\n"); err == nil {
		t.Error("an error message parsed as a report")
	}
}

func TestSplit(t *testing.T) {
	if got := split(map[string]int64{"rs2": 30, "rs1": 10}); got != "25%/75%" {
		t.Errorf("split = %q", got)
	}
	if got := split(map[string]int64{"rs1": 0, "rs2": 0}); got != "0%/0%" {
		t.Errorf("split of nothing = %q", got)
	}
}

func TestMedians(t *testing.T) {
	m := func(layout, kase string, rps float64) measurement {
		return measurement{Layout: layout, Case: kase, wrkResult: wrkResult{RPS: rps}}
	}
	all := []measurement{
		m("NAT", caseDirect, 30), m("NAT", caseNFT, 5),
		m("NAT", caseDirect, 10), m("NAT", caseNFT, 7),
		m("NAT", caseDirect, 20),
	}
	got := medians(all)
	if len(got) != 2 || got[0].Case != caseDirect || got[0].RPS != 20 || got[1].Case != caseNFT || got[1].RPS != 5 {
		t.Errorf("medians = %+v", got)
	}
	if all[0].RPS != 30 {
		t.Error("medians reordered its argument")
	}
}
