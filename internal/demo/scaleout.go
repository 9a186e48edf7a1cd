package demo

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// scaleOut is the active-active lab (lab.ScaleOut, docs/bgp.md): bird2
// routing the VIP over every director with ECMP, the directors announcing
// it over BGP and forwarding by DR, with its four tests: the route's next
// hops, flows spread over every director, a drain and a crash without a
// failed request.
type scaleOut struct {
	lab.ScaleOut
	dir string // configurations, bird's files
}

func (t scaleOut) spec() lab.Spec { return t.Spec() }

func (t scaleOut) layout() lab.Layout {
	y := lab.Layout{Iface: "eth0", VIPs: []netip.Addr{lab.ScaleOutVIP.Addr()}, Reals: lab.ScaleOutReals, Client: lab.ScaleOutClient}
	for i := range t.Directors {
		y.Directors = append(y.Directors, t.Director(i))
	}
	return y
}

func (t scaleOut) describe() string {
	var dirs, reals []string
	for i := range t.Directors {
		dirs = append(dirs, t.Director(i).Name)
	}
	for _, r := range lab.ScaleOutReals {
		reals = append(reals, r.Name)
	}
	return fmt.Sprintf("router %s (bird2, ECMP, layer-4 multipath hashing); %s and %s on segment lan; client %s behind the router",
		lab.ScaleOutRouter, strings.Join(dirs, " "), strings.Join(reals, " "), lab.ScaleOutClient.Addr)
}

// populate starts bird on the router, prepares the real servers and
// starts their web servers, and starts tandem on every director, waiting
// until each has its real servers healthy.
func (t scaleOut) populate(ctx context.Context, s *stack, p *progress) (netip.AddrPort, error) {
	birdDir := filepath.Join(t.dir, lab.ScaleOutRouterNode)
	if err := os.MkdirAll(birdDir, 0o755); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bird's directory: %w", err)
	}
	b, args, err := lab.BirdCommand(birdDir, lab.ScaleOutRouter, t.BirdProtocols())
	if err != nil {
		return netip.AddrPort{}, err
	}
	if b.Proc, err = s.start(lab.ScaleOutRouterNode, args[0], args[1:]...); err != nil {
		return netip.AddrPort{}, err
	}
	if err := b.WaitReady(10 * time.Second); err != nil {
		return netip.AddrPort{}, fmt.Errorf("router: %w", err)
	}
	s.bird = b
	p.step("router: bird2, merge paths into one ECMP route, a passive BGP session per director (hold %ds, keepalive %ds), GRACEFUL_SHUTDOWN -> LOCAL_PREF 0",
		lab.ScaleOutHoldTime, lab.ScaleOutKeepaliveTime)
	if err := s.startReals(ctx, p); err != nil {
		return netip.AddrPort{}, err
	}
	for i := range t.Directors {
		d := t.Director(i)
		conf := filepath.Join(t.dir, d.Name+".conf")
		if err := os.WriteFile(conf, []byte(t.Conf(i)), 0o644); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%s: configuration: %w", d.Name, err)
		}
		if err := s.startDirector(ctx, i, conf); err != nil {
			return netip.AddrPort{}, err
		}
		p.step("%s: tandem run -f %s (VIP on lo, DR over the real servers, bgp to the router)", d.Name, conf)
	}
	took, err := waitFor(ctx, 20*time.Second, func() bool {
		for _, d := range s.dirs {
			for _, r := range s.layout.Reals {
				if !d.is(ctx, r.Addr, true) {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("real servers healthy on every director: %w", err)
	}
	p.step("every director: the %d real servers in the pool (%s)", len(s.layout.Reals), secs(took))
	took, err = s.waitHops(ctx, 60*time.Second, s.dirs...)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p.step("router: every director's BGP route to %s merged into one (%s)", s.vip(), secs(took))
	return lab.ScaleOutVIP, nil
}

func (scaleOut) tests() []labTest {
	return []labTest{{"ecmp", ecmpRoute}, {"spread", spread}, {"drain", drain}, {"crash", crash}}
}

func (t scaleOut) try(s *stack, target netip.AddrPort) []string {
	return []string{
		"client -- curl -s http://" + target.String() + "/",
		"router -- ip route show " + target.Addr().String(),
		"router -- birdc -s " + s.bird.Sock + " show route all for " + target.Addr().String(),
		"dir1 -- tandem lvs list --socket " + s.dirs[0].socket,
		"dir1 -- tandem drain --socket " + s.dirs[0].socket,
	}
}

// waitHops waits until the router's next hops for the VIP are those of
// dirs, and returns how long that took.
func (s *stack) waitHops(ctx context.Context, timeout time.Duration, dirs ...*director) (time.Duration, error) {
	var want []netip.Addr
	for _, d := range dirs {
		for _, h := range s.layout.Directors {
			if h.Name == d.node {
				want = append(want, h.Addr)
			}
		}
	}
	return s.l.WaitNextHops(ctx, lab.ScaleOutRouterNode, netip.PrefixFrom(s.vip(), 32), want, timeout)
}

// ecmpRoute: with every director announcing the VIP, the router's kernel
// route to it has one next hop per director, and bird has one BGP route
// per director, each with that director as next hop.
func ecmpRoute(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	hs, err := s.l.NextHops(lab.ScaleOutRouterNode, netip.PrefixFrom(target.Addr(), 32))
	if err != nil {
		return fail(start, "%v", err)
	}
	if len(hs) != len(s.dirs) {
		return fail(start, "router: %s via %v, want one next hop per director (%d)", target.Addr(), hs, len(s.dirs))
	}
	for _, d := range s.layout.Directors {
		out, err := s.bird.Birdc("show", "route", "all", "for", target.Addr().String(), "protocol", d.Name)
		if err != nil || !strings.Contains(out, "BGP.next_hop: "+d.Addr.String()) {
			return fail(start, "bird: no BGP route from %s with next hop %s: %v\n%s", d.Name, d.Addr, err, out)
		}
	}
	p.step("router: %s/32 via %d next hops %v, one BGP route per director in bird", target.Addr(), len(hs), hs)
	return Result{Pass: true, Took: time.Since(start), Detail: fmt.Sprintf("%s/32 via %d next hops, one per director", target.Addr(), len(hs))}
}

// spreadFlows is how many connections spread and crash make: with 4
// directors, the chance that one gets none of them is 4*(3/4)^60, 1 in
// 10^7.
const spreadFlows = 60

// forwarded is how many packets each director's data plane has sent to
// the real servers.
func (s *stack) forwarded(ctx context.Context) ([]uint64, error) {
	out := make([]uint64, len(s.dirs))
	for i, d := range s.dirs {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		tab, err := api.FetchTable(ctx, d.socket)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: lvs table: %w", d.node, err)
		}
		for _, svc := range tab.Services {
			for _, dst := range svc.Dests {
				out[i] += dst.Packets
			}
		}
	}
	return out, nil
}

// gets makes n GETs from the client, each on a new connection (a new
// source port, so a new ECMP hash), and returns how many failed and the
// first error.
func (s *stack) gets(target netip.AddrPort, n int) (int, error) {
	failed := 0
	var first error
	for range n {
		if _, err := s.get(target, time.Second); err != nil {
			if failed == 0 {
				first = err
			}
			failed++
		}
	}
	return failed, first
}

// spread: the client's flows reach every director (their data planes'
// packet counters all grow) and every one is served.
func spread(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	before, err := s.forwarded(ctx)
	if err != nil {
		return fail(start, "%v", err)
	}
	if failed, err := s.gets(target, spreadFlows); failed > 0 {
		return fail(start, "%d of %d GETs failed, the first: %v", failed, spreadFlows, err)
	}
	after, err := s.forwarded(ctx)
	if err != nil {
		return fail(start, "%v", err)
	}
	var parts []string
	idle := ""
	for i, d := range s.dirs {
		n := after[i] - before[i]
		parts = append(parts, fmt.Sprintf("%s %d", d.node, n))
		if n == 0 && idle == "" {
			idle = d.node
		}
	}
	p.step("client: %d GETs served; packets forwarded: %s", spreadFlows, strings.Join(parts, ", "))
	if idle != "" {
		return fail(start, "%s forwarded nothing of %d flows (%s)", idle, spreadFlows, strings.Join(parts, ", "))
	}
	return Result{Pass: true, Took: time.Since(start), Detail: fmt.Sprintf("%d flows, packets per director: %s", spreadFlows, strings.Join(parts, ", "))}
}

// drain: `tandem drain` on the last director while the client asks all
// the time: its route leaves the router (GRACEFUL_SHUTDOWN, then the
// withdraw) without a failed request; --undo brings it back.
func drain(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	d := s.dirs[len(s.dirs)-1]
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := s.l.Command(ctx, d.node, s.bin, append([]string{"drain", "--socket", d.socket}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: tandem drain %s: %w: %s", d.node, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	load := s.l.HTTPLoad(s.layout.Client.Name, target, 10*time.Millisecond, time.Second)
	err := run()
	if err == nil {
		_, err = s.waitHops(ctx, 10*time.Second, s.dirs[:len(s.dirs)-1]...)
	}
	gone := time.Since(start)
	ok, failed := load.Stop()
	if err != nil {
		return fail(start, "%v", err)
	}
	p.step("%s drained: tandem drain returned after %s (GRACEFUL_SHUTDOWN, %ds, withdraw), its next hop gone; client: %d GETs, %d failed",
		d.node, secs(gone), lab.ScaleOutGracefulDelay, ok+len(failed), len(failed))
	if len(failed) > 0 {
		return fail(start, "%d of %d GETs failed during the drain, the first: %s", len(failed), ok+len(failed), failed[0])
	}
	if err := run("--undo"); err != nil {
		return fail(start, "%v", err)
	}
	back, err := s.waitHops(ctx, 30*time.Second, s.dirs...)
	if err != nil {
		return fail(start, "after tandem drain --undo: %v", err)
	}
	p.step("%s back in rotation (%s after tandem drain --undo)", d.node, secs(back))
	return Result{Pass: true, Took: time.Since(start),
		Detail: fmt.Sprintf("%s out in %s with %d GETs, none failed; back in %s", d.node, secs(gone), ok, secs(back))}
}

// crash: dir1 crashes (SIGKILL, its switch port cut): the router drops
// its next hop when the hold timer expires, and every request after that
// is served.
func crash(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	d := s.dirs[0]
	p.step("crash %s: SIGKILL to tandem's process group, %s off the switch", d.node, d.node)
	if err := s.l.Crash(d.node, d.proc); err != nil {
		return fail(start, "crash %s: %v", d.node, err)
	}
	gone, err := s.waitHops(ctx, 30*time.Second, s.dirs[1:]...)
	if err != nil {
		return fail(start, "%v", err)
	}
	p.step("router: %s's next hop gone %s after the crash (hold time %ds)", d.node, secs(gone), lab.ScaleOutHoldTime)
	if failed, err := s.gets(target, spreadFlows); failed > 0 {
		return fail(start, "%d of %d GETs failed after the next hop went, the first: %v", failed, spreadFlows, err)
	}
	p.step("client: %d GETs after that, none failed", spreadFlows)
	return Result{Pass: true, Took: gone,
		Detail: fmt.Sprintf("next hop gone %s after the crash (hold %ds); %d GETs after, none failed", secs(gone), lab.ScaleOutHoldTime, spreadFlows)}
}
