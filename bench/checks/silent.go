package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"tandem/internal/check"
	"tandem/internal/config"
)

// silentNet holds the never-answering servers: 127.30.*.*.
const silentNet = 30

// oldConcurrency is the fixed cap the scheduler had before it ran every
// checker at once: the baseline of the silent comparison.
const oldConcurrency = 256

// silentRun is one scheduler's run against the never-answering servers.
type silentRun struct {
	Concurrency string        `json:"concurrency"`
	AllDown     time.Duration `json:"all_down_ns"` // 0: not all within the limit
	Down        int           `json:"down"`
}

// silentCompare runs n HTTP_GETs (the usual timing: delay_loop 1,
// connect_timeout 1, retry 1, delay_before_retry 1) against n servers
// that accept connections (the kernel completes the handshake into a
// listen queue nobody reads) and never answer, first with the old fixed
// cap of 256 checks at a time, then with the default, and reports how
// long each took until every server was down. keepalived's bound for one
// server is warmup (up to delay_loop) + 2 x connect_timeout +
// delay_before_retry = 4 s.
func silentCompare(ctx context.Context, w io.Writer, n int, limit time.Duration) ([]silentRun, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", serverAddr(silentNet, i).String())
		if err != nil {
			return nil, fmt.Errorf("silent server %d: %w", i, err)
		}
		ls = append(ls, l)
	}
	c := benchCase{name: "silent", n: n, subnet: silentNet, checker: httpChecker}
	cfg, diags := config.Parse("silent.conf", []byte(configText(c, nil)), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		return nil, fmt.Errorf("configuration: %v", diags)
	}
	var runs []silentRun
	for _, conc := range []int{oldConcurrency, 0} {
		r, err := silentRunOnce(ctx, cfg.VirtualServers, conc, n, limit)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
		took := "not all within " + limit.String()
		if r.AllDown > 0 {
			took = r.AllDown.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "silent: %d never-answering HTTP servers, concurrency %s: %d down, all down in %s\n", n, r.Concurrency, r.Down, took)
	}
	if len(runs) == 2 && runs[0].AllDown > 0 && runs[1].AllDown > 0 {
		fmt.Fprintf(w, "silent: the default took %.2fx the time of a cap of %d (keepalived's bound per server: 4s)\n",
			runs[1].AllDown.Seconds()/runs[0].AllDown.Seconds(), oldConcurrency)
	}
	return runs, nil
}

// silentRunOnce runs a scheduler with the given concurrency (0: the
// default) until every one of the n servers is down, or limit passes.
func silentRunOnce(ctx context.Context, vss []*config.VirtualServer, conc, n int, limit time.Duration) (silentRun, error) {
	r := silentRun{Concurrency: fmt.Sprint(conc)}
	if conc == 0 {
		r.Concurrency = "default"
	}
	events := make(chan check.Event, 1024)
	sched, err := check.NewScheduler(vss, slog.New(slog.DiscardHandler), check.Options{Events: events, Concurrency: conc})
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); sched.Run(ctx) }()
	defer func() { cancel(); <-done }()
	down := map[string]bool{}
	for {
		select {
		case e := <-events:
			if e.Kind == check.RealServerDown && !e.Initial {
				down[e.RS.IP.String()+":"+fmt.Sprint(e.RS.Port)] = true
				r.Down = len(down)
				if r.Down == n {
					r.AllDown = time.Since(start)
					return r, nil
				}
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return r, nil
			}
			return r, ctx.Err()
		}
	}
}
