package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// outcome is one run's result.
type outcome struct {
	// conns and kept count the connections that should survive (for
	// leave, those not on the leaving server).
	conns, kept          int
	leaving, leavingKept int           // leave: the connections on the leaving server
	stall                time.Duration // the longest wait for an answer over the connections that should survive
	// route is from the event to the router's next hops changing (for
	// leave: to every director having the server out of its pool).
	route time.Duration
	errs  []string // the broken connections' errors, first few
}

// bench is one run's lab.
type bench struct {
	lab.ScaleOut
	l    *lab.Lab
	bin  string
	dir  string
	dirs []*director
}

// director is a tandem run in a lab node.
type director struct {
	lab.Host
	proc   *lab.Proc
	socket string
}

func (d *director) status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return api.Fetch(ctx, d.socket)
}

// healthy reports whether d has real server ip in its pool.
func (d *director) healthy(ctx context.Context, ip netip.Addr) bool {
	st, err := d.status(ctx)
	if err != nil {
		return false
	}
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			if rs.IP == ip.String() {
				return rs.Healthy
			}
		}
	}
	return false
}

// start runs tandem on director i.
func (b *bench) start(i int) error {
	d := &director{Host: b.Director(i), socket: filepath.Join(b.dir, b.Director(i).Name+".sock")}
	conf := filepath.Join(b.dir, d.Name+".conf")
	if err := os.WriteFile(conf, []byte(b.Conf(i)), 0o644); err != nil {
		return err
	}
	var err error
	d.proc, err = b.l.Start(d.Name, b.bin, "run", "-f", conf, "--socket", d.socket, "--log-format", "text", "--dataplane", "nft")
	b.dirs = append(b.dirs, d)
	return err
}

// waitHops waits until the router's next hops for the VIP are ds'
// addresses.
func (b *bench) waitHops(ctx context.Context, timeout time.Duration, ds ...*director) error {
	var want []netip.Addr
	for _, d := range ds {
		want = append(want, d.Addr)
	}
	_, err := b.l.WaitNextHops(ctx, lab.ScaleOutRouterNode, netip.PrefixFrom(lab.ScaleOutVIP.Addr(), 32), want, timeout)
	return err
}

// setUp builds so's lab in dir with its router, its real servers
// serving, and directors 0 to first-1 running, and waits until the
// router has them all as next hops. stops stops each real server's
// service; closing the lab (the bench's l) ends everything else.
func setUp(ctx context.Context, dir, bin string, so lab.ScaleOut, first int) (b *bench, stops map[string]func(), err error) {
	l, err := lab.New(so.Spec())
	if err != nil {
		return nil, nil, err
	}
	b = &bench{ScaleOut: so, l: l, bin: bin, dir: dir}
	stops = map[string]func(){}
	defer func() {
		if err != nil {
			b.close(stops)
		}
	}()
	bird, args, err := lab.BirdCommand(dir, lab.ScaleOutRouter, so.BirdProtocols())
	if err != nil {
		return b, stops, err
	}
	if bird.Proc, err = l.Start(lab.ScaleOutRouterNode, args[0], args[1:]...); err != nil {
		return b, stops, err
	}
	if err := bird.WaitReady(10 * time.Second); err != nil {
		return b, stops, err
	}
	// The real servers answer each line with their name, on port 80,
	// which the directors' TCP_CHECKs connect to.
	for _, r := range lab.ScaleOutReals {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := l.Command(cctx, r.Name, bin, "realserver", "up", "--vip", lab.ScaleOutVIP.Addr().String(), "--state-dir", filepath.Join(dir, r.Name)).CombinedOutput()
		cancel()
		if err != nil {
			return b, stops, fmt.Errorf("%s: tandem realserver up: %w: %s", r.Name, err, out)
		}
		stop, err := l.Serve(r.Name, fmt.Sprintf(":%d", lab.ScaleOutVIP.Port()), lab.NameEcho(r.Name))
		if err != nil {
			return b, stops, err
		}
		stops[r.Name] = stop
	}
	for i := range first {
		if err := b.start(i); err != nil {
			return b, stops, err
		}
	}
	return b, stops, b.waitHops(ctx, 60*time.Second, b.dirs...)
}

// close stops the real servers' services and closes the lab.
func (b *bench) close(stops map[string]func()) {
	for _, stop := range stops {
		stop()
	}
	b.l.Close()
}

// measure does one run of event ev with n connections talking every
// interval, in a fresh lab.
func measure(ctx context.Context, ev, bin string, so lab.ScaleOut, n int, interval time.Duration) (outcome, error) {
	var o outcome
	dir, err := os.MkdirTemp("", "scaleout-")
	if err != nil {
		return o, err
	}
	defer os.RemoveAll(dir)
	first := so.Directors
	if ev == "join" {
		first--
	}
	b, stops, err := setUp(ctx, dir, bin, so, first)
	if err != nil {
		return o, err
	}
	defer b.close(stops)
	l := b.l
	cs, err := l.OpenConns(lab.ScaleOutClient.Name, lab.ScaleOutVIP, n, interval)
	if err != nil {
		return o, err
	}
	defer cs.Stop()
	time.Sleep(time.Second) // steady state: every connection has talked a while
	before := cs.Results()
	leaving := lab.ScaleOutReals[0]
	t0 := time.Now()
	switch ev {
	case "crash":
		if err := l.Crash(b.dirs[0].Name, b.dirs[0].proc); err != nil {
			return o, err
		}
		err = b.waitHops(ctx, 30*time.Second, b.dirs[1:]...)
	case "join":
		if err := b.start(first); err != nil {
			return o, err
		}
		err = b.waitHops(ctx, 60*time.Second, b.dirs...)
	case "drain":
		d := b.dirs[len(b.dirs)-1]
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, derr := l.Command(cctx, d.Name, bin, "drain", "--socket", d.socket).CombinedOutput()
		cancel()
		if derr != nil {
			return o, fmt.Errorf("tandem drain: %w: %s", derr, out)
		}
		err = b.waitHops(ctx, 30*time.Second, b.dirs[:len(b.dirs)-1]...)
	case "leave":
		stops[leaving.Name]()
		err = lab.Poll(ctx, leaving.Name+" out of every director's pool", 30*time.Second, func() bool {
			for _, d := range b.dirs {
				if d.healthy(ctx, leaving.Addr) {
					return false
				}
			}
			return true
		})
	}
	if err != nil {
		return o, err
	}
	o.route = time.Since(t0)
	// Every connection answered twice since the event, or failed; then
	// a second more of talking.
	if err := cs.WaitPast(before, 2, 30*time.Second); err != nil {
		return o, err
	}
	time.Sleep(time.Second)
	for _, r := range cs.Stop() {
		if ev == "leave" && r.Server == leaving.Name {
			o.leaving++
			if r.Err == nil {
				o.leavingKept++
			}
			continue
		}
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
