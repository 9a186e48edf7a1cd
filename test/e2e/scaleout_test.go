package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/lab"
)

// scaleOut is lab.ScaleOut built and running: bird on the router, nginx
// and the VIP on lo on the real servers, tandem on every director.
type scaleOut struct {
	lab.ScaleOut
	l    *lab.Lab
	bird *lab.Bird
	dirs []*daemon
	web  map[string]*lab.Proc
	// stopEcho stops a real server's line-echo server (startScaleOut
	// with echo).
	stopEcho map[string]func()
}

var scaleOutVIP = netip.PrefixFrom(lab.ScaleOutVIP.Addr(), 32)

// startScaleOut builds the scale-out lab with n directors and waits until
// the router's route to the VIP has all n next hops. The real servers run
// nginx, or with echo a line-echo server (lab.NameEcho) for long-lived
// connections.
func startScaleOut(t *testing.T, n int, echo bool) *scaleOut {
	t.Helper()
	return startScaleOutLab(t, lab.ScaleOut{Directors: n}, echo)
}

// startScaleOutLab is startScaleOut for a lab.ScaleOut of any shape.
func startScaleOutLab(t *testing.T, so lab.ScaleOut, echo bool) *scaleOut {
	t.Helper()
	if err := lab.BirdMissing(); err != nil {
		t.Skip(err)
	}
	s := &scaleOut{ScaleOut: so, web: map[string]*lab.Proc{}, stopEcho: map[string]func(){}}
	s.l = lab.NewT(t, s.Spec())
	s.bird = lab.StartBird(t, s.l, lab.ScaleOutRouterNode, lab.ScaleOutRouter, s.BirdProtocols())
	for _, r := range lab.ScaleOutReals {
		carryVIP(t, s.l, r.Name, lab.ScaleOutVIP.Addr())
		if !echo {
			s.web[r.Name] = startNginx(t, s.l, r.Name)
			continue
		}
		stop, err := s.l.Serve(r.Name, fmt.Sprintf(":%d", lab.ScaleOutVIP.Port()), lab.NameEcho(r.Name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		s.stopEcho[r.Name] = stop
	}
	for i := range so.Directors {
		s.dirs = append(s.dirs, s.startDirector(t, i))
	}
	s.waitHops(t, "every director's next hop", 60*time.Second, s.addrs(s.dirs...)...)
	return s
}

func (s *scaleOut) startDirector(t *testing.T, i int) *daemon {
	t.Helper()
	d := s.Director(i)
	return startTandem(t, s.l, d.Name, writeConf(t, d.Name+".conf", s.Conf(i)), "--dataplane", "nft")
}

// addrs are the directors' addresses.
func (s *scaleOut) addrs(ds ...*daemon) []netip.Addr {
	var out []netip.Addr
	for _, d := range ds {
		for i := range s.Directors {
			if s.Director(i).Name == d.node {
				out = append(out, s.Director(i).Addr)
			}
		}
	}
	return out
}

// waitHops waits until the router's next hops for the VIP are want, and
// returns how long that took.
func (s *scaleOut) waitHops(t *testing.T, what string, timeout time.Duration, want ...netip.Addr) time.Duration {
	t.Helper()
	took, err := s.l.WaitNextHops(t.Context(), lab.ScaleOutRouterNode, scaleOutVIP, want, timeout)
	if err != nil {
		t.Fatalf("router: %s: %v\nbird:\n%s", what, err, s.bird.Route(t, scaleOutVIP))
	}
	return took
}

// forwarded is how many packets director d's data plane has sent to the
// real servers.
func forwarded(t *testing.T, d *daemon) uint64 {
	t.Helper()
	var n uint64
	for _, svc := range d.table(t).Services {
		for _, dst := range svc.Dests {
			n += dst.Packets
		}
	}
	return n
}

// gets makes n GETs from the client, each a new connection (so a new
// source port, a new ECMP hash), and returns the errors.
func (s *scaleOut) gets(n int) []error {
	var errs []error
	for range n {
		if _, err := s.l.HTTPGet(lab.ScaleOutClient.Name, lab.ScaleOutVIP, "/", time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// TestScaleOutECMP: three directors announce the VIP to bird, the router's
// kernel route has the three next hops, and the client's flows reach all
// three directors. A crashed director (SIGKILL and its link cut) leaves
// the route within the hold time, and after that no request fails.
func TestScaleOutECMP(t *testing.T) {
	s := startScaleOut(t, 3, false)
	for _, d := range s.dirs {
		waitFor(t, d.node+": the real servers healthy", 20*time.Second, func() bool {
			st, err := d.status()
			if err != nil || len(st.VirtualServers) != 1 {
				return false
			}
			for _, rs := range st.VirtualServers[0].RealServers {
				if !rs.Healthy {
					return false
				}
			}
			return true
		})
	}
	before := make([]uint64, len(s.dirs))
	for i, d := range s.dirs {
		before[i] = forwarded(t, d)
	}
	if errs := s.gets(60); len(errs) > 0 {
		t.Fatalf("%d of 60 GETs through three directors failed, the first: %v", len(errs), errs[0])
	}
	for i, d := range s.dirs {
		// 60 flows over 3 next hops: a director with none would be a
		// 1-in-10^10 draw if the hash spreads them.
		if got := forwarded(t, d) - before[i]; got == 0 {
			t.Errorf("%s forwarded no packet of 60 client flows: ECMP does not spread them (or it does not forward)", d.node)
		} else {
			t.Logf("%s forwarded %d packets", d.node, got)
		}
	}

	// Crash dir1: its route goes with the hold timer.
	if err := s.l.Crash(s.dirs[0].node, s.dirs[0].proc); err != nil {
		t.Fatal(err)
	}
	gone := s.waitHops(t, "dir1's next hop gone after its crash", 30*time.Second, s.addrs(s.dirs[1:]...)...)
	t.Logf("dir1's next hop gone %v after the crash (hold time %d s)", gone.Round(time.Millisecond), lab.ScaleOutHoldTime)
	// bird polls the session each second at most: the hold time plus
	// a margin for a loaded machine.
	if limit := time.Duration(lab.ScaleOutHoldTime)*time.Second + 2*time.Second; gone > limit {
		t.Errorf("dir1's next hop gone %v after the crash, want within the hold time (%v with the margin)", gone, limit)
	}
	if errs := s.gets(60); len(errs) > 0 {
		t.Errorf("after dir1's route went, %d of 60 GETs failed, the first: %v", len(errs), errs[0])
	}
}

// dropChecks makes director d's health checks to the real servers fail
// (its outgoing TCP to their port dropped), or lets them through again.
func (s *scaleOut) dropChecks(t *testing.T, d *daemon, drop bool) {
	t.Helper()
	var err error
	if drop {
		err = s.l.DropTCPOut(d.node, lab.ScaleOutVIP.Port())
	} else {
		err = s.l.UndropTCP(d.node)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestScaleOutQuorum: a director whose real servers all fail their health
// checks (its checks alone are cut) withdraws its route and the router
// keeps the others; with its checks back it announces it again.
func TestScaleOutQuorum(t *testing.T) {
	s := startScaleOut(t, 2, false)
	s.dropChecks(t, s.dirs[1], true)
	s.waitHops(t, "dir2's next hop gone with its quorum", 30*time.Second, s.addrs(s.dirs[0])...)
	if errs := s.gets(30); len(errs) > 0 {
		t.Errorf("with dir2 out, %d of 30 GETs failed, the first: %v", len(errs), errs[0])
	}
	s.dropChecks(t, s.dirs[1], false)
	s.waitHops(t, "dir2's next hop back with its quorum", 30*time.Second, s.addrs(s.dirs...)...)
}

// TestScaleOutSIGTERM: a director stopped with SIGTERM marks its route
// GRACEFUL_SHUTDOWN, which the router's filter turns into LOCAL_PREF 0, so
// the route leaves the multipath route while the director still forwards;
// then it is withdrawn. A client asking all along sees no failure.
func TestScaleOutSIGTERM(t *testing.T) {
	s := startScaleOut(t, 3, false)
	load := s.l.HTTPLoad(lab.ScaleOutClient.Name, lab.ScaleOutVIP, 10*time.Millisecond, time.Second)
	d := s.dirs[2]
	// Watch bird from here on: the marked route lasts
	// graceful_shutdown_delay.
	marked := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, _ := s.bird.Birdc("show", "route", "all", "for", scaleOutVIP.String(), "protocol", d.node)
			if strings.Contains(out, "(65535,0)") {
				marked <- true
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		marked <- false
	}()
	time.Sleep(500 * time.Millisecond) // the load running before the stop
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !<-marked {
		t.Errorf("bird never saw %s's route marked (65535,0)", d.node)
	}
	s.waitHops(t, "dir3's next hop gone", 20*time.Second, s.addrs(s.dirs[:2]...)...)
	s.bird.WaitRoute(t, scaleOutVIP, "dir3's route withdrawn", 20*time.Second, func(r string) bool {
		return lab.HasBGPRoute(r) && !strings.Contains(r, "from "+s.Director(2).Addr.String())
	})
	select {
	case <-d.proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("tandem on %s still running 30 s after SIGTERM", d.node)
	}
	time.Sleep(time.Second) // the load going on after the director left
	ok, failed := load.Stop()
	if len(failed) > 0 {
		t.Errorf("%d of %d GETs failed across the graceful shutdown: %s", len(failed), ok+len(failed), strings.Join(failed[:min(5, len(failed))], "; "))
	}
	if ok < 50 {
		t.Errorf("only %d GETs made: the load did not run across the shutdown", ok)
	}
	t.Logf("%d GETs, none failed", ok)
}

// TestScaleOutConnsKept: 200 long-lived connections through the VIP,
// each asking every 50 ms, across a director's crash, a director joining,
// tandem drain of a director (each: at most 0.5% broken, the issue's
// goal), and a real server leaving the pool (only its own connections
// broken: the others stay where the directors' flow tables keep them).
func TestScaleOutConnsKept(t *testing.T) {
	s := startScaleOut(t, 3, true)
	const n = 200
	cs, err := s.l.OpenConns(lab.ScaleOutClient.Name, lab.ScaleOutVIP, n, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	broken := func(rs []lab.ConnResult) (out []lab.ConnResult) {
		for _, r := range rs {
			if r.Err != nil {
				out = append(out, r)
			}
		}
		return out
	}
	// step runs event, waits until every connection has had two more
	// answers (or failed), checks that at most allowed more broke, and
	// returns those.
	step := func(name string, allowed int, event func()) []lab.ConnResult {
		t.Helper()
		time.Sleep(time.Second)
		before := cs.Results()
		start := time.Now()
		event()
		t.Logf("%s: done in %v", name, time.Since(start).Round(time.Millisecond))
		if err := cs.WaitPast(before, 2, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(time.Second)
		after := cs.Results()
		var stall time.Duration
		for _, r := range after {
			stall = max(stall, r.MaxStall)
		}
		newly := len(broken(after)) - len(broken(before))
		t.Logf("%s: %d of %d connections broken, longest stall so far %v", name, newly, n, stall.Round(time.Millisecond))
		var out []lab.ConnResult
		for i, r := range after {
			if r.Err != nil && before[i].Err == nil {
				out = append(out, r)
			}
		}
		if newly > allowed {
			t.Errorf("%s: %d connections broke, want at most %d: %v", name, newly, allowed, out[:min(3, newly)])
		}
		return out
	}
	allowed := n * 5 / 1000 // 0.5%
	step("crash dir1", allowed, func() {
		if err := s.l.Crash(s.dirs[0].node, s.dirs[0].proc); err != nil {
			t.Fatal(err)
		}
		s.waitHops(t, "dir1's next hop gone", 30*time.Second, s.addrs(s.dirs[1:]...)...)
	})
	step("dir1 joins again", allowed, func() {
		if err := s.l.Heal(lab.SwitchLAN, s.dirs[0].node); err != nil {
			t.Fatal(err)
		}
		s.dirs[0] = s.startDirector(t, 0)
		s.waitHops(t, "dir1's next hop back", 60*time.Second, s.addrs(s.dirs...)...)
	})
	step("tandem drain dir3", allowed, func() {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		d := s.dirs[2]
		if out, err := s.l.Command(ctx, d.node, tandemBin, "drain", "--socket", d.socket).CombinedOutput(); err != nil {
			t.Fatalf("tandem drain: %v: %s", err, out)
		}
		s.waitHops(t, "dir3's next hop gone", 30*time.Second, s.addrs(s.dirs[:2]...)...)
	})
	// rs1 leaves: its listener closes, its checks fail on every
	// director, and its connections move (and break: another server
	// does not know them); the others' must not.
	leaving := lab.ScaleOutReals[0]
	var onLeaving int
	for _, r := range cs.Results() {
		if r.Err == nil && r.Server == leaving.Name {
			onLeaving++
		}
	}
	lost := step("rs1 leaves", onLeaving, func() {
		s.stopEcho[leaving.Name]()
		waitFor(t, "rs1 out of every live director's pool", 30*time.Second, func() bool {
			for _, d := range s.dirs[:2] {
				st, err := d.status()
				if err != nil || len(st.VirtualServers) != 1 {
					return false
				}
				for _, rs := range st.VirtualServers[0].RealServers {
					if rs.IP == leaving.Addr.String() && rs.Healthy {
						return false
					}
				}
			}
			return true
		})
	})
	for _, r := range lost {
		if r.Server != leaving.Name {
			t.Errorf("rs1 left, and a connection to %s broke: %v", r.Server, r.Err)
		}
	}
	if len(lost) == 0 {
		t.Errorf("rs1 left and none of its %d connections broke: were they still forwarded to it?", onLeaving)
	}
}

// TestScaleOutBFD: with a BFD session beside each BGP session (50 ms x 3),
// bird has the sessions up, and a crashed director's next hop goes when
// BFD detects it: well before the hold timer (3 s after the last
// keepalive, so at least 2 s after the crash) could have removed it.
func TestScaleOutBFD(t *testing.T) {
	s := startScaleOutLab(t, lab.ScaleOut{Directors: 2, BFD: true}, false)
	waitFor(t, "bird's BFD sessions to both directors up", 30*time.Second, func() bool {
		out, err := s.bird.Birdc("show", "bfd", "sessions")
		if err != nil {
			return false
		}
		up := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[0] == s.Director(0).Addr.String() || f[0] == s.Director(1).Addr.String()) && f[2] == "Up" {
				up++
			}
		}
		return up == 2
	})
	if err := s.l.Crash(s.dirs[0].node, s.dirs[0].proc); err != nil {
		t.Fatal(err)
	}
	gone := s.waitHops(t, "dir1's next hop gone after its crash", 30*time.Second, s.addrs(s.dirs[1])...)
	t.Logf("dir1's next hop gone %v after the crash (BFD detection %d ms)", gone.Round(time.Millisecond), lab.ScaleOutBFDInterval*lab.ScaleOutBFDMultiplier)
	if gone > 1500*time.Millisecond {
		t.Errorf("dir1's next hop gone %v after the crash: the hold timer's time, not BFD's", gone)
	}
	if errs := s.gets(30); len(errs) > 0 {
		t.Errorf("after dir1's route went, %d of 30 GETs failed, the first: %v", len(errs), errs[0])
	}
}
