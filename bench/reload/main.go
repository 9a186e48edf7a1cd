// Command reload reloads a running Tandem DR pair many times with random
// in-place edits while a client loop goes through the VIP, and reports
// what a reload costs: failed client requests, VRRP transitions (both
// must be 0) and the time from SIGHUP to applied.
//
// Usage (root only: it builds network namespaces):
//
//	go run ./bench/reload [-n 200] [-seed S] [-gap D] [-tandem BIN]
//
// The lab is seed000's DR pair (internal/lab.Seed000, PairConf): dir1
// MASTER, dir2 BACKUP, rs1 and rs2 serving HTTP with the VIP on lo, the
// nftables data plane. Each reload picks one edit (priority, advert_int,
// a VIP, a route, the notify script, the SMTP server, the track weight, a
// real server's weight, the checker timeout, the quorum), writes both
// directors' files and sends SIGHUP to dir2, then dir1. README.md says how
// to read the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

func main() { os.Exit(run()) }

func run() int {
	n := flag.Int("n", 200, "reloads")
	seed := flag.Uint64("seed", 0, "seed of the random edits (0: from the clock; the one used is printed)")
	gap := flag.Duration("gap", 200*time.Millisecond, "longest random pause between two reloads")
	tandemBin := flag.String("tandem", "", "tandem binary (default: build ./cmd/tandem)")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "reload: must run as root: it builds network namespaces (sudo go run ./bench/reload)")
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	// Shared machine: as bench/failover, so that neighbours delay the
	// daemons' timers less.
	if err := lab.Renice(-10); err != nil {
		fmt.Fprintln(os.Stderr, "reload: raising priority (results may be noisy):", err)
	}
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "reload: sweeping stale labs:", err)
	}
	work, err := os.MkdirTemp("", "bench-reload-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reload:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "reload:", err)
		return 1
	}
	if *tandemBin == "" {
		if *tandemBin, err = lab.BuildTandem(work); err != nil {
			fmt.Fprintln(os.Stderr, "reload:", err)
			return 1
		}
	}
	r, err := bench(ctx, *tandemBin, work, *n, *gap, rand.New(rand.NewPCG(*seed, 0)))
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "reload: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reload:", err)
		return 1
	}
	r.print(os.Stdout, *seed)
	if r.failed > 0 || len(r.transitions) > 0 {
		return 1
	}
	return 0
}

var vip = netip.MustParseAddr("172.16.7.5")

// result is what a run measured.
type result struct {
	reloads     int
	edits       map[string]int
	ok, failed  int
	failures    []string
	transitions []string                   // VRRP events during the reloads, "dir: event"
	applied     map[string][]time.Duration // per director, SIGHUP to applied
}

// director is a tandem run in a lab node.
type director struct {
	node, conf, socket string
	proc               *lab.Proc
	seen               time.Time // the newest VRRP event counted
}

func bench(ctx context.Context, bin, work string, n int, gap time.Duration, rnd *rand.Rand) (*result, error) {
	l, err := lab.New(lab.Seed000().Spec())
	if err != nil {
		return nil, err
	}
	defer l.Close()
	for _, rs := range []string{"rs1", "rs2"} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := l.Command(cctx, rs, bin, "realserver", "up", "--vip", vip.String(), "--state-dir", filepath.Join(work, rs)).CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("tandem realserver up on %s: %w: %s", rs, err, out)
		}
		stop, err := serveHTTP(l, rs)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	script := func(name, body string) (string, error) {
		p := filepath.Join(work, name)
		return p, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755)
	}
	chk, err1 := script("chk.sh", "exit 0")
	notifyA, err2 := script("notifyA.sh", "exit 0")
	notifyB, err3 := script("notifyB.sh", "exit 0")
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	// Nothing listens at the SMTP servers: with no transition, no mail.
	smtps := []string{"127.0.0.1:2525", "127.0.0.1:2526"}
	cur := lab.PairConf{Prio: 100, Advert: 1, Notify: notifyA, SMTP: smtps[0], Check: chk, TrackWeight: 10, RSWeight: 1, Timeout: 3, Quorum: 1}

	dirs := []*director{{node: "dir2"}, {node: "dir1"}} // reloaded in this order: the backup first
	write := func(m lab.PairConf) error {
		for _, d := range dirs {
			if err := os.WriteFile(d.conf, []byte(m.Conf(d.node)), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range dirs {
		d.conf, d.socket = filepath.Join(work, d.node+".conf"), filepath.Join(work, d.node+".sock")
	}
	if err := write(cur); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		d.proc, err = l.Start(d.node, bin, "run", "-f", d.conf, "--socket", d.socket, "--log-format", "text", "--dataplane", "nft")
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := d.proc.Stop(10 * time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "reload: stopping %s: %v\n", d.node, err)
			}
		}()
	}
	if err := waitReady(ctx, dirs); err != nil {
		return nil, err
	}
	start := time.Now()
	for _, d := range dirs {
		d.seen = start
	}

	r := &result{edits: map[string]int{}, applied: map[string][]time.Duration{}}
	load := l.HTTPLoad("client", netip.AddrPortFrom(vip, 80), 20*time.Millisecond, 500*time.Millisecond)
	for i := range n {
		next, kind := edit(cur, rnd, notifyA, notifyB, smtps)
		r.edits[kind]++
		if err := write(next); err != nil {
			load.Stop()
			return nil, err
		}
		cur = next
		for _, d := range dirs {
			sent := time.Now()
			if err := d.proc.Signal(syscall.SIGHUP); err != nil {
				load.Stop()
				return nil, err
			}
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			at, err := api.ReloadApplied(actx, d.socket, sent)
			cancel()
			if err != nil {
				load.Stop()
				return nil, fmt.Errorf("reload %d (%s), %s: %w", i+1, kind, d.node, err)
			}
			r.applied[d.node] = append(r.applied[d.node], at.Sub(sent))
		}
		r.reloads++
		if err := r.countTransitions(ctx, dirs); err != nil {
			load.Stop()
			return nil, err
		}
		time.Sleep(rand.N(gap + 1))
	}
	// A backup that lost the master takes over after 3 adverts: wait
	// as long before the last count.
	time.Sleep(time.Duration(3*cur.Advert)*time.Second + 500*time.Millisecond)
	r.ok, r.failures = load.Stop()
	r.failed = len(r.failures)
	return r, r.countTransitions(ctx, dirs)
}

// countTransitions adds the VRRP events the directors recorded since the
// last call (the event log keeps the last 256: a call per reload loses
// none).
func (r *result) countTransitions(ctx context.Context, dirs []*director) error {
	for _, d := range dirs {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := api.Fetch(fctx, d.socket)
		cancel()
		if err != nil {
			return fmt.Errorf("%s status: %w", d.node, err)
		}
		seen := d.seen
		for _, e := range st.Events {
			if e.Kind == "vrrp" && e.Time.After(d.seen) {
				r.transitions = append(r.transitions, d.node+": "+e.Object+" "+e.Message)
				if e.Time.After(seen) {
					seen = e.Time
				}
			}
		}
		d.seen = seen
	}
	return nil
}

// waitReady waits for dir1 MASTER, dir2 BACKUP and both real servers
// healthy on both.
func waitReady(ctx context.Context, dirs []*director) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, d := range dirs {
			fctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := api.Fetch(fctx, d.socket)
			cancel()
			want := map[string]string{"dir1": "MASTER", "dir2": "BACKUP"}[d.node]
			ready = ready && err == nil && len(st.Instances) == 1 && st.Instances[0].State == want &&
				len(st.VirtualServers) == 2 && len(st.VirtualServers[0].RealServers) == 2 &&
				st.VirtualServers[0].RealServers[0].Healthy && st.VirtualServers[0].RealServers[1].Healthy
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the pair did not come up (dir1 MASTER, dir2 BACKUP, both real servers healthy) within 30 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// edit returns m with one setting changed in place, at random, and the
// setting's name. dir1 keeps winning: its priority stays at least 95 and
// its tracked weight at least 5, over dir2's 90.
func edit(m lab.PairConf, rnd *rand.Rand, notifyA, notifyB string, smtps []string) (lab.PairConf, string) {
	other := func(s, a, b string) string {
		if s == a {
			return b
		}
		return a
	}
	for {
		next, kind := m, ""
		switch rnd.IntN(10) {
		case 0:
			next.Prio, kind = 95+rnd.IntN(56), "priority"
		case 1:
			next.Advert, kind = 3-m.Advert, "advert_int"
		case 2:
			next.ExtraVIP, kind = !m.ExtraVIP, "VIP"
		case 3:
			next.Route, kind = !m.Route, "route"
		case 4:
			next.Notify, kind = other(m.Notify, notifyA, notifyB), "notify script"
		case 5:
			next.SMTP, kind = other(m.SMTP, smtps[0], smtps[1]), "smtp_server"
		case 6:
			next.TrackWeight, kind = 5+rnd.IntN(26), "track weight"
		case 7:
			next.RSWeight, kind = 1+rnd.IntN(5), "real-server weight"
		case 8:
			next.Timeout, kind = 1+rnd.IntN(5), "checker timeout"
		case 9:
			next.Quorum, kind = 1+rnd.IntN(3+m.RSWeight), "quorum"
		}
		if next != m {
			return next, kind
		}
	}
}

// serveHTTP answers every connection to node's port 80 with a 200 and the
// node's name, until the returned stop.
func serveHTTP(l *lab.Lab, node string) (stop func(), err error) {
	stop, err = l.Serve(node, ":80", func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Read the request head (it fits one segment) before answering,
		// so the client's write never meets a reset.
		if _, err := c.Read(make([]byte, 1024)); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s\n", node)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listen on port 80: %w", node, err)
	}
	return stop, nil
}

// print writes the report.
func (r *result) print(w io.Writer, seed uint64) {
	fmt.Fprintf(w, "reloads: %d (seed %d), edits:", r.reloads, seed)
	kinds := make([]string, 0, len(r.edits))
	for k := range r.edits {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, " %s %d;", k, r.edits[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "client requests: %d ok, %d failed\n", r.ok, r.failed)
	for i, f := range r.failures {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(r.failures)-i)
			break
		}
		fmt.Fprintln(w, "  "+f)
	}
	fmt.Fprintf(w, "VRRP transitions: %d\n", len(r.transitions))
	for i, tr := range r.transitions {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(r.transitions)-i)
			break
		}
		fmt.Fprintln(w, "  "+tr)
	}
	for _, node := range []string{"dir1", "dir2"} {
		ds := slices.Clone(r.applied[node])
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Fprintf(w, "SIGHUP to applied, %s (%s): median %v, p99 %v, max %v (%d reloads)\n", node,
			map[string]string{"dir1": "master", "dir2": "backup"}[node],
			q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond), len(ds))
	}
	if r.failed == 0 && len(r.transitions) == 0 {
		fmt.Fprintln(w, "PASS: no failed request, no transition")
	} else {
		fmt.Fprintln(w, "FAIL: reloads disturbed the pair")
	}
}
