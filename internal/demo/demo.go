package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/vrrp"
)

// Run builds the lab, runs its tests (the seeds' three for seed000's pair), printing each
// step to opts.Out, tears everything down, also when ctx is cancelled
// (then it returns ctx's error), and prints a summary of the tests. The
// results are nil when the lab could not be set up (err says why).
func Run(ctx context.Context, opts Options) ([]Result, error) {
	nginx, err := probe().check(opts.Web)
	if err != nil {
		return nil, err
	}
	p := newProgress(opts.Out)
	if removed, err := lab.Sweep(); err != nil {
		p.step("removing labs left by killed earlier runs: %v", err)
	} else if len(removed) > 0 {
		p.step("removed %d namespaces left by killed earlier runs", len(removed))
	}
	results, err := runLab(ctx, opts, nginx, p)
	if err != nil || len(results) == 0 {
		return results, err
	}
	fmt.Fprintln(opts.Out)
	return results, writeSummary(opts.Out, results, time.Since(p.start))
}

// runLab is Run's part that has the lab up.
func runLab(ctx context.Context, opts Options, nginx string, p *progress) (results []Result, err error) {
	dir, err := os.MkdirTemp("", "tandem-demo-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	topo, err := newTopology(opts, dir)
	if err != nil {
		return nil, err
	}

	built := time.Now()
	l, err := lab.New(topo.spec())
	if err != nil {
		return nil, err
	}
	defer func() {
		t := time.Now()
		err = errors.Join(err, l.Close())
		p.step("lab torn down: processes killed, namespaces removed (%s)", ms(time.Since(t)))
	}()
	s := newStack(l, topo.layout(), opts.Bin, dir, nginx, l.Start)
	p.step("lab %s: %s, no link to the host (%s)", l.Name(), topo.describe(), ms(time.Since(built)))
	target, err := topo.populate(ctx, s, p)
	if err != nil {
		return nil, err
	}
	tests := topo.tests()
	for _, t := range tests {
		fmt.Fprintf(opts.Out, "test %d/%d: %s\n", len(results)+1, len(tests), t.name)
		r := t.run(ctx, s, p, target)
		r.Name = t.name
		if err := ctx.Err(); err != nil {
			return results, err
		}
		if !r.Pass {
			p.step("FAIL: %s", r.Detail)
			s.printLogs(opts.Out)
		}
		results = append(results, r)
	}
	return results, nil
}

// topology is a lab Run and Up build: seed000's pair, or the scale-out
// lab.
type topology interface {
	spec() lab.Spec
	// layout names the directors, real servers and client for the
	// stack.
	layout() lab.Layout
	// describe says what the lab holds, for the first step.
	describe() string
	// populate starts the lab's processes and waits until they serve;
	// it returns the service the tests use.
	populate(ctx context.Context, s *stack, p *progress) (netip.AddrPort, error)
	tests() []labTest
	// try are commands for `tandem lab exec` to suggest once the lab is
	// up: NODE -- CMD [ARGS...].
	try(s *stack, target netip.AddrPort) []string
}

// labTest is one test of the demo.
type labTest struct {
	name string
	run  func(context.Context, *stack, *progress, netip.AddrPort) Result
}

// newTopology is the lab opts ask for, with its configurations written
// under dir.
func newTopology(opts Options, dir string) (topology, error) {
	if opts.ScaleOut > 0 {
		so := scaleOut{ScaleOut: lab.ScaleOut{Directors: opts.ScaleOut}, dir: dir}
		if opts.Configs != [2]string{} {
			return nil, errors.New("the scale-out lab runs its own configurations: give no files with --scale-out")
		}
		if err := so.Validate(); err != nil {
			return nil, err
		}
		return so, lab.BirdMissing()
	}
	confs, names, err := configFiles(opts.Configs, dir)
	return seedPair{confs: confs, names: names}, err
}

// seedPair is seed000's LVS-DR pair with the seeds' three tests.
type seedPair struct {
	confs, names [2]string
}

func (seedPair) spec() lab.Spec     { return lab.Seed000().Spec() }
func (seedPair) layout() lab.Layout { return lab.Seed000() }

func (seedPair) describe() string {
	y := lab.Seed000()
	return fmt.Sprintf("dir1 %s, dir2 %s, rs1 %s, rs2 %s, client %s on one bridge",
		y.Directors[0].Addr, y.Directors[1].Addr, y.Reals[0].Addr, y.Reals[1].Addr, y.Client.Addr)
}

func (t seedPair) populate(ctx context.Context, s *stack, p *progress) (netip.AddrPort, error) {
	return s.populate(ctx, p, t.confs, t.names)
}

func (seedPair) tests() []labTest {
	return []labTest{{"health check", healthCheck}, {"failover", failover}, {"recovery", recovery}}
}

func (seedPair) try(s *stack, target netip.AddrPort) []string {
	return []string{
		"client -- curl -s http://" + target.String() + "/",
		"dir1 -- ip addr show eth0",
	}
}

// populate starts the real servers and the directors, and waits until
// dir1 is MASTER with both real servers healthy. It returns the virtual
// server's address.
func (s *stack) populate(ctx context.Context, p *progress, confs, names [2]string) (netip.AddrPort, error) {
	if err := s.startReals(ctx, p); err != nil {
		return netip.AddrPort{}, err
	}
	for i, conf := range confs {
		if err := s.startDirector(ctx, i, conf); err != nil {
			return netip.AddrPort{}, err
		}
		p.step("%s: tandem run -f %s", s.dirs[i].node, names[i])
	}
	target, err := s.service(ctx)
	if err != nil {
		return netip.AddrPort{}, err
	}
	dir1, dir2 := s.dirs[0], s.dirs[1]
	took, err := waitFor(ctx, 15*time.Second, func() bool { return dir1.state(ctx) == "MASTER" && dir2.state(ctx) == "BACKUP" })
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dir1 MASTER, dir2 BACKUP: %w (dir1 %s, dir2 %s)", err, dir1.state(ctx), dir2.state(ctx))
	}
	p.step("dir1 MASTER, dir2 BACKUP (%s)", secs(took))
	took, err = waitFor(ctx, 20*time.Second, func() bool {
		return dir1.is(ctx, s.layout.Reals[0].Addr, true) && dir1.is(ctx, s.layout.Reals[1].Addr, true)
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("real servers healthy on dir1: %w", err)
	}
	p.step("dir1: both real servers in the pool (%s)", secs(took))
	return target, nil
}

// Result is one test's outcome.
type Result struct {
	Name   string
	Pass   bool
	Took   time.Duration
	Detail string // the measurements, or what failed
	// Outage is what the client saw in the failover test.
	Outage *Outage
}

func fail(start time.Time, format string, args ...any) Result {
	return Result{Took: time.Since(start), Detail: fmt.Sprintf(format, args...)}
}

// healthCheck is the seeds' first test: the web server of the real server
// the client is on stops; it leaves the pool and the client is served by
// the other; it starts again and comes back.
func healthCheck(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	dir1 := s.dirs[0]
	var first string
	if _, err := waitFor(ctx, 10*time.Second, func() bool {
		var err error
		first, err = s.get(target, 2*time.Second)
		return err == nil
	}); err != nil {
		return fail(start, "client -> %s: no answer: %v", target, err)
	}
	other := s.layout.Reals[0].Name
	if other == first {
		other = s.layout.Reals[1].Name
	}
	ip := s.realAddr(first)
	if !ip.IsValid() {
		return fail(start, "the VIP answered %q, not a real server", first)
	}
	p.step("client -> %s: served by %s; stop %s's %s", target, first, first, s.webName())
	stopped := time.Now()
	if err := s.web[first].Stop(5 * time.Second); err != nil {
		return fail(start, "stop %s's web server: %v", first, err)
	}
	// TCP_CHECK with delay_loop 6, retry 3, delay_before_retry 3 and the
	// connection refused at once: out within 6 + 3*3 s.
	if _, err := waitFor(ctx, 30*time.Second, func() bool { return dir1.is(ctx, ip, false) }); err != nil {
		return fail(start, "%s still healthy on dir1: %v", first, err)
	}
	left := time.Since(stopped)
	p.step("dir1: %s healthy=false, out of the pool (%s after the stop)", first, secs(left))
	if _, err := waitFor(ctx, 5*time.Second, func() bool {
		got, err := s.get(target, 2*time.Second)
		return err == nil && got == other
	}); err != nil {
		return fail(start, "client not served by %s once %s left: %v", other, first, err)
	}
	p.step("client -> %s: served by %s; start %s's %s", target, other, first, s.webName())
	if err := s.startWeb(ctx, first); err != nil {
		return fail(start, "%v", err)
	}
	back, err := waitFor(ctx, 20*time.Second, func() bool { return dir1.is(ctx, ip, true) })
	if err != nil {
		return fail(start, "%s not healthy again on dir1: %v", first, err)
	}
	p.step("dir1: %s healthy=true, back in the pool (%s)", first, secs(back))
	return Result{Pass: true, Took: time.Since(start),
		Detail: fmt.Sprintf("%s out in %s, client on %s, back in %s", first, secs(left), other, secs(back))}
}

// failover is the seeds' second test: the master crashes and the backup
// takes the VIP over. A SIGKILL leaves the crashed director's kernel as it
// was: the VIP on eth0 and the data plane's rules still forwarding to the
// real servers, which a crashed machine would not do. So the director is
// also cut off the segment (its switch port detached, its link still up),
// as a powered-off machine is. The client then asks until it is served:
// the outage is the time from the kill to its first answer.
func failover(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	dir1, dir2 := s.dirs[0], s.dirs[1]
	bound, err := masterDown(dir2.conf)
	if err != nil {
		return fail(start, "%v", err)
	}
	p.step("crash dir1: SIGKILL to tandem's process group, dir1 off the switch")
	killed := time.Now()
	if err := dir1.proc.Kill(); err != nil {
		return fail(start, "kill dir1's tandem: %v", err)
	}
	if err := s.l.Partition(lab.SwitchLAN, dir1.node); err != nil {
		return fail(start, "cut dir1 off: %v", err)
	}
	// The client asks on its own, so that polling dir2's status does not
	// slow it down; it gives up with the test.
	askCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	asked := make(chan []attempt, 1)
	go func() {
		asked <- askUntilServed(askCtx, func() (string, error) { return s.get(target, askTimeout) })
	}()
	var promoted time.Time
	_, err = waitFor(askCtx, 15*time.Second, func() bool {
		st, err := dir2.status(askCtx)
		if err != nil || len(st.Instances) == 0 || st.Instances[0].State != "MASTER" {
			return false
		}
		promoted = st.Instances[0].Since
		return true
	})
	if promoted.IsZero() {
		cancel()
		<-asked
		return fail(start, "dir2 not MASTER after the crash: %v (%s)", err, dir2.state(ctx))
	}
	p.step("dir2 MASTER (%s after the kill; Master_Down_Interval %s)", secs3(promoted.Sub(killed)), secs3(bound))
	o, err := measureOutage(killed, promoted, bound, <-asked)
	if err != nil {
		return Result{Took: time.Since(start), Outage: &o, Detail: err.Error()}
	}
	p.step("client -> %s: served by %s %s after the kill, %d requests failed before", target, o.By, secs3(o.Served), o.Failed)
	return Result{Pass: true, Took: o.Served, Outage: &o,
		Detail: fmt.Sprintf("dir2 MASTER in %s, client unserved for %s (%d requests failed)", secs(o.Promoted), secs(o.Served), o.Failed)}
}

// masterDown is the Master_Down_Interval of the first VRRP instance in
// the backup's configuration file.
func masterDown(conf string) (time.Duration, error) {
	cfg, diags := config.Load(conf, config.Options{})
	if diags.HasErrors() {
		return 0, fmt.Errorf("%s: %v", conf, diags)
	}
	if len(cfg.Instances) == 0 {
		return 0, fmt.Errorf("%s: no vrrp_instance", conf)
	}
	in := cfg.Instances[0]
	return vrrp.MasterDownInterval(uint8(in.Version), time.Duration(in.AdvertInt), uint8(in.Priority)), nil
}

// recovery is the seeds' third test: the master comes back (tandem
// started again, its switch port reattached), preempts, and the VIP and
// the client's traffic are back on it.
func recovery(ctx context.Context, s *stack, p *progress, target netip.AddrPort) Result {
	start := time.Now()
	dir1, dir2 := s.dirs[0], s.dirs[1]
	p.step("start dir1's tandem again, then put dir1 back on the switch")
	// Started while still cut off, tandem first removes the VIP and
	// rules its crashed run left, so dir1 comes back as a rebooted
	// machine would: without answering ARP for the VIP next to dir2.
	if err := s.startDirector(ctx, 0, dir1.conf); err != nil {
		return fail(start, "%v", err)
	}
	if err := s.l.Heal(lab.SwitchLAN, dir1.node); err != nil {
		return fail(start, "reattach dir1: %v", err)
	}
	dir1 = s.dirs[0]
	master, err := waitFor(ctx, 15*time.Second, func() bool { return dir1.state(ctx) == "MASTER" && dir2.state(ctx) == "BACKUP" })
	if err != nil {
		return fail(start, "dir1 MASTER, dir2 BACKUP: %v (dir1 %s, dir2 %s)", err, dir1.state(ctx), dir2.state(ctx))
	}
	p.step("dir1 MASTER, dir2 BACKUP (%s after the start)", secs(time.Since(start)))
	// dir2 drains the VIP (make-before-break, docs/handover.md: still
	// forwarding what reaches it, no longer answering ARP for it) for
	// handover_drain, garp_master_delay + 1 s by default, then removes it.
	var on1, on2 bool
	var herr error
	if _, err := waitFor(ctx, 15*time.Second, func() bool {
		var err1, err2 error
		on1, err1 = s.holdsVIP(dir1.node)
		on2, err2 = s.holdsVIP(dir2.node)
		herr = errors.Join(err1, err2)
		return herr != nil || (on1 && !on2)
	}); err != nil || herr != nil {
		return fail(start, "VIP %s: on dir1 %t, on dir2 %t; want dir1 only once dir2 has drained it (%v)", s.vip(), on1, on2, errors.Join(err, herr))
	}
	p.step("VIP on dir1 only: dir2 drained it (%s after the start)", secs(time.Since(start)))
	mac, err := s.mac(dir1.node)
	if err != nil {
		return fail(start, "%v", err)
	}
	// The client's neighbour entry for the VIP says whose eth0 its
	// packets go to: dir1's once its gratuitous ARP has arrived.
	var by string
	if _, err := waitFor(ctx, 10*time.Second, func() bool {
		var gerr error
		by, gerr = s.get(target, 300*time.Millisecond)
		via, _ := s.neighbour(target.Addr())
		return gerr == nil && via.String() == mac.String()
	}); err != nil {
		return fail(start, "client not served through dir1: %v", err)
	}
	p.step("client -> %s: served by %s through dir1 (its ARP entry for the VIP is dir1's MAC)", target, by)
	return Result{Pass: true, Took: time.Since(start),
		Detail: fmt.Sprintf("dir1 MASTER in %s, VIP back on dir1, client served through it", secs(master))}
}

// holdsVIP reports whether node has the VIP on its lab interface.
func (s *stack) holdsVIP(node string) (bool, error) {
	found := false
	err := s.l.Do(node, func() error {
		link, err := netlink.LinkByName(s.layout.Iface)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == s.vip() {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: addresses of %s: %w", node, s.layout.Iface, err)
	}
	return found, nil
}

// mac is node's hardware address on the lab interface.
func (s *stack) mac(node string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := s.l.Do(node, func() error {
		link, err := netlink.LinkByName(s.layout.Iface)
		if err != nil {
			return err
		}
		mac = link.Attrs().HardwareAddr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: MAC of %s: %w", node, s.layout.Iface, err)
	}
	return mac, nil
}

// neighbour is the MAC the client's neighbour table has for addr.
func (s *stack) neighbour(addr netip.Addr) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := s.l.Do(s.layout.Client.Name, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				mac = n.HardwareAddr
			}
		}
		return nil
	})
	return mac, err
}

// printLogs shows the end of each director's log after a failed test.
func (s *stack) printLogs(w io.Writer) {
	for _, d := range s.dirs {
		fmt.Fprintf(w, "  last lines of %s's tandem log:\n%s\n", d.node, indent(tail(d.proc.Output(), 15)))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// progress prints one line per step, prefixed with the time since the
// demo started.
type progress struct {
	w     io.Writer
	start time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, start: time.Now()}
}

func (p *progress) step(format string, args ...any) {
	fmt.Fprintf(p.w, "%7s  %s\n", secs(time.Since(p.start)), strings.TrimSpace(fmt.Sprintf(format, args...)))
}
