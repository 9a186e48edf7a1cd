package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// outcome is one run's result.
type outcome struct {
	conns, kept int
	stall       time.Duration // the longest wait for an answer over every connection
	failover    time.Duration // from the crash to the backup reporting MASTER
	errs        []string      // the broken connections' errors, first few
}

// director is a tandem run in a lab node.
type director struct {
	proc   *lab.Proc
	socket string
}

func (d director) status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return api.Fetch(ctx, d.socket)
}

// ready reports whether d's instance is in state and every real server
// of m is healthy there.
func (d director) ready(ctx context.Context, m mode, state string) bool {
	st, err := d.status(ctx)
	if err != nil || len(st.Instances) == 0 || st.Instances[0].State != state {
		return false
	}
	healthy := map[string]bool{}
	for _, vs := range st.VirtualServers {
		if vs.Name != m.vsName {
			continue
		}
		for _, rs := range vs.RealServers {
			healthy[rs.IP] = rs.Healthy
		}
	}
	for _, r := range m.reals {
		if !healthy[r.Addr.String()] {
			return false
		}
	}
	return true
}

// measure does one run of mode m with n connections talking every
// interval, in a fresh lab.
func measure(ctx context.Context, m mode, bin string, n int, interval time.Duration) (outcome, error) {
	var o outcome
	dir, err := os.MkdirTemp("", "conns-")
	if err != nil {
		return o, err
	}
	defer os.RemoveAll(dir)
	l, err := lab.New(m.spec)
	if err != nil {
		return o, err
	}
	defer l.Close()
	for _, r := range m.reals {
		if m.prepare != nil {
			if err := m.prepare(ctx, l, bin, r.Name, filepath.Join(dir, r.Name)); err != nil {
				return o, err
			}
		}
		stop, err := l.Serve(r.Name, fmt.Sprintf(":%d", m.vip.Port()), lab.NameEcho(r.Name))
		if err != nil {
			return o, err
		}
		defer stop()
	}
	var ds [2]director
	for i, node := range []string{"dir1", "dir2"} {
		conf := filepath.Join(dir, node+".conf")
		if err := os.WriteFile(conf, []byte(m.conf(node)), 0o644); err != nil {
			return o, err
		}
		ds[i].socket = filepath.Join(dir, node+".sock")
		args := append([]string{"run", "-f", conf, "--socket", ds[i].socket, "--log-format", "text"}, m.args...)
		if ds[i].proc, err = l.Start(node, bin, args...); err != nil {
			return o, err
		}
	}
	if err := lab.Poll(ctx, "dir1 MASTER, dir2 BACKUP, the pool healthy on both", 30*time.Second, func() bool {
		return ds[0].ready(ctx, m, "MASTER") && ds[1].ready(ctx, m, "BACKUP")
	}); err != nil {
		return o, err
	}
	cs, err := l.OpenConns(m.client, m.vip, n, interval)
	if err != nil {
		return o, err
	}
	defer cs.Stop()
	if m.synced != nil {
		if err := lab.Poll(ctx, "the backup holding the connections' state", 30*time.Second, func() bool {
			return m.synced(ctx, l, ds[1].socket, n)
		}); err != nil {
			return o, err
		}
	}
	time.Sleep(time.Second) // steady state: every connection has talked a while
	before := cs.Results()
	crashed := time.Now()
	if err := l.Crash("dir1", ds[0].proc); err != nil {
		return o, err
	}
	if err := lab.Poll(ctx, "dir2 MASTER", 10*time.Second, func() bool {
		st, err := ds[1].status(ctx)
		return err == nil && len(st.Instances) > 0 && st.Instances[0].State == "MASTER"
	}); err != nil {
		return o, err
	}
	o.failover = time.Since(crashed)
	// Every connection answered twice since the crash, or failed; then
	// a second more of talking through the new master.
	if err := cs.WaitPast(before, 2, 30*time.Second); err != nil {
		return o, err
	}
	time.Sleep(time.Second)
	for _, r := range cs.Stop() {
		o.conns++
		o.stall = max(o.stall, r.MaxStall)
		if r.Err == nil {
			o.kept++
		} else if len(o.errs) < 3 {
			o.errs = append(o.errs, fmt.Sprintf("%v on %s: %v", r.Local, r.Server, r.Err))
		}
	}
	return o, nil
}
