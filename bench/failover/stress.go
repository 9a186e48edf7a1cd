package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"tandem/internal/lab"
)

// stressAdvert is the false-failover case's interval: centisecond VRRPv3
// adverts, where a late wake-up of a few tens of milliseconds is enough
// to make a backup take a live master for dead.
var stressAdvert = advert{10 * time.Millisecond, 3, "0.01"}

// stressCase is "false failovers under stress": both implementations'
// pairs run at once, each in a lab of its own, under the same stress-ng
// load, for a while; every VRRP transition after both pairs have settled
// is a false one, since neither master is ever stopped.
type stressCase struct {
	duration time.Duration
	// sched is the thread scheduling both implementations get:
	// keepalived.conf(5) tells its users to use real-time scheduling
	// against exactly this.
	sched      threadSched
	stressArgs []string
}

func (c stressCase) String() string {
	s := fmt.Sprintf("false failovers under stress advert %s (v%d)", stressAdvert.text, stressAdvert.version)
	if c.sched.bfd {
		s += fmt.Sprintf(" with BFD %v x %d", bfdInterval, bfdMultiplier)
	}
	return s
}

// pair is one implementation's master and backup, and their transition
// (and BFD flap) counts when the stress started and when it was stopped.
type pair struct {
	im            impl
	l             *lab.Lab
	dir           string
	m, b          *daemon
	baseline, end [2]transitions
}

// transitions counts what a daemon's log says of its instance's states:
// every transition, and those into MASTER; and the BFD session's changes
// from Up to Down.
type transitions struct{ all, toMaster, bfdDown int }

func (t transitions) sub(u transitions) transitions {
	return transitions{t.all - u.all, t.toMaster - u.toMaster, t.bfdDown - u.bfdDown}
}

// stressResult is one implementation's count over the run (both routers).
type stressResult struct {
	transitions
	counted bool // the pair settled and was counted
	err     error
}

// runStress runs c and returns one result per implementation, in the
// order of impls, and what the scheduling probe saw during the load.
func runStress(ctx context.Context, impls []impl, c stressCase) ([]stressResult, probeResult, error) {
	var probed probeResult
	if _, err := exec.LookPath("stress-ng"); err != nil {
		return nil, probed, errors.New("stress-ng not found (apt-get install stress-ng)")
	}
	// The daemons and the load run at the normal nice value, as they
	// would on a loaded director: the bench's own boost (see main) would
	// otherwise shield the daemons from the very load being measured.
	if err := lab.Renice(0); err != nil {
		return nil, probed, fmt.Errorf("resetting the bench's priority: %w", err)
	}
	var pairs []*pair
	defer func() {
		for _, p := range pairs {
			p.close()
		}
	}()
	// A pair that does not settle (keepalived's BFD at 5 ms may not come
	// up even before the load) is a failed row; the others run.
	settled := make([]error, len(impls))
	for i, im := range impls {
		p, err := startPair(ctx, im, c.sched)
		if p != nil {
			pairs = append(pairs, p)
		}
		if err != nil && (p == nil || i == 0 || ctx.Err() != nil) {
			return nil, probed, fmt.Errorf("%s: %w", im.name, err)
		}
		settled[i] = err
	}
	for _, p := range pairs {
		p.baseline = [2]transitions{p.im.count(p.m), p.im.count(p.b)}
	}
	// stress-ng runs in a lab node (its hogs load the whole machine
	// anyway) so that the lab's Close kills it with everything else.
	load, err := pairs[0].l.Start(clientNode, "stress-ng", c.stressArgs...)
	if err != nil {
		return nil, probed, err
	}
	fmt.Fprintf(os.Stderr, "%s: stress-ng %s for %v with\n%s", c, strings.Join(c.stressArgs, " "), c.duration, c.sched)
	probe := startProbe(c.sched.rtPriority)
	defer probe.end()
	select {
	case <-ctx.Done():
		return nil, probed, ctx.Err()
	case <-load.Done():
		return nil, probed, fmt.Errorf("stress-ng exited early (%v):\n%s", load.Wait(), load.Output())
	case <-time.After(c.duration):
	}
	// Counted up to the end of the load: stopping it (tens of hogs
	// exiting, a quarter of the memory freed at once) is the bench's
	// act, not the load being measured.
	for _, p := range pairs {
		p.end = [2]transitions{p.im.count(p.m), p.im.count(p.b)}
	}
	probed = probe.end()
	if err := load.Kill(); err != nil {
		return nil, probed, fmt.Errorf("stopping stress-ng: %w", err)
	}
	var out []stressResult
	for i, p := range pairs {
		if settled[i] != nil {
			out = append(out, stressResult{err: fmt.Errorf("did not settle before the load: %w", settled[i])})
			continue
		}
		out = append(out, p.result())
	}
	return out, probed, nil
}

// startPair starts im's master, then its backup, in a lab of its own,
// and waits until they have settled.
func startPair(ctx context.Context, im impl, sched threadSched) (p *pair, err error) {
	l, err := lab.New(lab.Seed001().Spec())
	if err != nil {
		return nil, err
	}
	p = &pair{im: im, l: l}
	defer func() {
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w\n--- %s output:\n%s--- %s output:\n%s", err, masterNode, tail(p.m), backupNode, tail(p.b))
		}
	}()
	if p.dir, err = os.MkdirTemp("", "failover-stress-"); err != nil {
		return p, err
	}
	if p.m, err = startRouter(im, l, p.dir, masterNode, "MASTER", 100, stressAdvert, sched.bfd, sched); err != nil {
		return p, err
	}
	// With keepalived's track_bfd an instance stays in FAULT until its
	// session is up, which needs the backup running.
	if !sched.bfd {
		if err := waitState(ctx, p.m, "MASTER", 15*time.Second); err != nil {
			return p, fmt.Errorf("%s: %w", masterNode, err)
		}
	}
	if p.b, err = startRouter(im, l, p.dir, backupNode, "BACKUP", 90, stressAdvert, sched.bfd, sched); err != nil {
		return p, err
	}
	routers := []struct {
		d          *daemon
		node, want string
	}{{p.m, masterNode, "MASTER"}, {p.b, backupNode, "BACKUP"}}
	for _, x := range routers {
		if sched.bfd {
			if err := waitBFD(ctx, x.d, 15*time.Second); err != nil {
				return p, fmt.Errorf("%s: %w", x.node, err)
			}
		}
	}
	for _, x := range routers {
		if err := waitState(ctx, x.d, x.want, 15*time.Second); err != nil {
			return p, fmt.Errorf("%s: %w", x.node, err)
		}
	}
	// Well past the backup's first Master_Down_Interval, so that
	// start-up is over before counting begins.
	return p, lab.Sleep(ctx, time.Second)
}

// result counts the pair's transitions during the load; a router
// that died, or a pair that does not end with its master as MASTER and
// its backup as BACKUP, is an error.
func (p *pair) result() stressResult {
	r := stressResult{transitions: p.end[0].sub(p.baseline[0]), counted: true}
	b := p.end[1].sub(p.baseline[1])
	r.all += b.all
	r.toMaster += b.toMaster
	r.bfdDown += b.bfdDown
	// The first false transitions, with the reasons the daemons give.
	for i, x := range []struct {
		d    *daemon
		node string
	}{{p.m, masterNode}, {p.b, backupNode}} {
		lines := p.im.lines(x.d)[p.baseline[i].all:p.end[i].all]
		for _, line := range lines[:min(len(lines), 3)] {
			fmt.Fprintf(os.Stderr, "%s %s: %s", p.im.name, x.node, line)
		}
	}
	for _, x := range []struct {
		d          *daemon
		node, want string
	}{{p.m, masterNode, "MASTER"}, {p.b, backupNode, "BACKUP"}} {
		select {
		case <-x.d.proc.Done():
			r.err = errors.Join(r.err, fmt.Errorf("%s on %s exited (%v):\n%s", p.im.name, x.node, x.d.proc.Wait(), tail(x.d)))
			continue
		default:
		}
		// The state may be moving back after a false takeover: give it
		// a moment.
		if err := waitState(context.Background(), x.d, x.want, 2*time.Second); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("%s on %s at the end: %w", p.im.name, x.node, err))
		}
	}
	return r
}

func (p *pair) close() {
	if err := p.l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// count reads d's log for its instance's transitions and its BFD
// session's flaps.
func (im impl) count(d *daemon) transitions {
	var t transitions
	for _, line := range im.lines(d) {
		t.all++
		if strings.Contains(line, im.toMaster) {
			t.toMaster++
		}
	}
	for line := range strings.Lines(d.proc.Output()) {
		if len(im.bfdDown) > 0 && !slices.ContainsFunc(im.bfdDown, func(m string) bool { return !strings.Contains(line, m) }) {
			t.bfdDown++
		}
	}
	return t
}

// lines are d's log lines of its instance's transitions.
func (im impl) lines(d *daemon) []string {
	var out []string
	for line := range strings.Lines(d.proc.Output()) {
		if strings.Contains(line, im.transition) {
			out = append(out, line)
		}
	}
	return out
}

// printStress prints the false-failover table: per implementation, the
// transitions of both routers during the run and how many of them were
// into MASTER (a backup taking over from a live master, or the master
// taking its place back).
func printStress(w io.Writer, c stressCase, impls []impl, res []stressResult, probed probeResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "case\tduration\trt_priority\trlimit_rttime\tno_swap")
	for _, im := range impls {
		fmt.Fprintf(tw, "\t%s transitions\tinto MASTER", im.name)
		if c.sched.bfd {
			fmt.Fprint(tw, "\tBFD flaps")
		}
	}
	fmt.Fprintln(tw, "\ttandem")
	fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%v", c, c.duration, c.sched.rtPriority, c.sched.rlimitRTTime, c.sched.noSwap)
	for _, r := range res {
		// A pair that ended in the wrong state still has its counts
		// (the error goes to stderr); one that never settled has none.
		cells := []any{r.all, r.toMaster, r.bfdDown}
		if !r.counted {
			cells = []any{"FAILED", "-", "-"}
		}
		if !c.sched.bfd {
			cells = cells[:2]
		}
		for _, v := range cells {
			fmt.Fprintf(tw, "\t%v", v)
		}
	}
	fmt.Fprintf(tw, "\t%s\n", verdict(stressPass(res)))
	tw.Flush()
	fmt.Fprintln(w, probed)
}

// stressPass: Tandem (the first implementation) made no transition and
// ended as it started.
func stressPass(res []stressResult) bool {
	return len(res) > 0 && res[0].err == nil && res[0].all == 0
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}
