package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/lab"
)

// options are a run's settings besides its schedule.
type options struct {
	tandem string        // the binary
	margin time.Duration // added to Master_Down_Interval to make the window
	// garpRefresh is garp_master_refresh in seconds (0: none, the
	// default).
	garpRefresh int
	// sabotage, for the test that proves the checker: the heals of the
	// split events are not done (the directors stay cut off from each
	// other), while the run believes they are.
	sabotage bool
	log      io.Writer // progress lines
	// logDir is where the directors' logs go when there are violations
	// ("": nowhere).
	logDir string
}

// logf prints a progress line to o.log.
func (o options) logf() func(format string, args ...any) {
	return log.New(o.log, "chaos: ", log.Ltime|log.Lmicroseconds).Printf
}

// window is how long after a heal the invariants may be broken: the
// Master_Down_Interval of the slowest backup, 3 × advert + Skew_Time at
// the lowest priority (RFC 5798 §6.1), plus margin for the checker's own
// view (a status report may be fresh's age, samples are pollEvery apart)
// and for scheduling on a loaded machine.
func window(advert time.Duration, directors int, margin time.Duration) time.Duration {
	skew := time.Duration(256-minPriority(directors)) * advert / 256
	return 3*advert + skew + margin
}

// phase tracks whether faults are active and when the last one healed.
type phase struct {
	mu     sync.Mutex
	active int
	healed time.Time
	window time.Duration
}

func (p *phase) begin() {
	p.mu.Lock()
	p.active++
	p.mu.Unlock()
}

func (p *phase) end() {
	p.mu.Lock()
	p.active--
	p.healed = time.Now()
	p.mu.Unlock()
}

// judging reports whether now is quiet: no fault active and the window
// after the last heal has passed.
func (p *phase) judging(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active == 0 && !p.healed.IsZero() && now.Sub(p.healed) >= p.window
}

// result is what a run found.
type result struct {
	Schedule      schedule       `json:"schedule"`
	Window        time.Duration  `json:"window_ns"`
	Elapsed       time.Duration  `json:"elapsed_ns"`
	Executed      map[kind]int   `json:"executed"`
	Skipped       map[kind]int   `json:"skipped,omitempty"`
	Violations    []violation    `json:"violations"`
	MasterChanges int            `json:"master_changes"`
	Judged        int            `json:"judged_samples"`
	Unjudged      int            `json:"unjudged_samples"`
	Avail         []availability `json:"availability"`
	// Logs is the directory holding the directors' logs, written when
	// there are violations.
	Logs string `json:"logs,omitempty"`
}

// availability is the client's view of one VIP.
type availability struct {
	VIP       string        `json:"vip"`
	Requests  int           `json:"requests"`
	OK        int           `json:"ok"`
	QuietReqs int           `json:"quiet_requests"` // sent and answered while judging
	QuietOK   int           `json:"quiet_ok"`
	Longest   time.Duration `json:"longest_outage_ns"`
	WorstSec  float64       `json:"worst_second"` // the lowest success share in any one-second bucket
	Outages   []outage      `json:"outages"`
}

// chaos runs sch in a fresh lab.
func chaos(ctx context.Context, sch schedule, o options) (res result, err error) {
	logf := o.logf()
	insts := instances(sch.VIPs)
	w := window(time.Duration(sch.Advert), sch.Directors, o.margin)
	res = result{Schedule: sch, Window: w, Executed: map[kind]int{}, Skipped: map[kind]int{}}

	l, err := lab.New(layout(sch.Directors).Spec())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	dir, ds, err := scratch(sch.Directors, insts, time.Duration(sch.Advert), o.garpRefresh)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	for _, d := range ds {
		stop, err := serve(l, d.node)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	probes := make([]*kernelProbe, len(ds))
	for i, d := range ds {
		if probes[i], err = newKernelProbe(l, d.node, insts); err != nil {
			return res, err
		}
		defer probes[i].close()
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			for _, d := range ds {
				if p := d.current(); p != nil {
					err = fmt.Errorf("%w\n--- %s:\n%s", err, d.node, tail(p))
				}
			}
		}
	}()

	macs := map[string]string{}
	for i, d := range ds {
		mac, err := probes[i].mac()
		if err != nil {
			return res, err
		}
		macs[mac] = d.node
	}

	ph := &phase{window: w}
	ph.begin() // the start is the first fault: nothing runs yet
	for _, d := range ds {
		if err := d.start(ctx, l, o.tandem); err != nil {
			return res, err
		}
	}
	start := time.Now()
	ph.end()
	logf("lab %s up: %d directors, %d VIPs, advert %v, window %v, %d events over %v",
		l.Name(), sch.Directors, sch.VIPs, time.Duration(sch.Advert), w, len(sch.Events), time.Duration(sch.Duration))

	var chkMu sync.Mutex
	var rightful []int
	for i := range insts {
		best := 0
		for d := range ds {
			if priority(i, d, len(ds)) > priority(i, best, len(ds)) {
				best = d
			}
		}
		rightful = append(rightful, best)
	}
	chk := newChecker(instNames(insts), rightful)
	sctx, stopSampling := context.WithCancel(ctx)
	var bg sync.WaitGroup
	pollers := make([]*statusPoller, len(ds))
	for i, d := range ds {
		pollers[i] = &statusPoller{}
		bg.Go(func() { pollers[i].run(sctx, d.socket) })
	}
	var sampleErr error
	bg.Go(func() {
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			judge := ph.judging(now)
			obs := make([]observation, len(ds))
			for i := range ds {
				k, err := probes[i].read()
				if err != nil {
					sampleErr = err
					return
				}
				obs[i] = observation{states: pollers[i].latest(now), kernel: k}
			}
			chkMu.Lock()
			chk.sample(now.Sub(start), judge && ph.judging(time.Now()), obs)
			chkMu.Unlock()
		}
	})
	avail := make([]*clientLoop, len(insts))
	for i, in := range insts {
		avail[i] = &clientLoop{vip: in.vip, start: start, macs: macs, states: func() string {
			var b []string
			for j, p := range pollers {
				b = append(b, dirName(j)+"="+p.latest(time.Now())[in.name])
			}
			return strings.Join(b, " ")
		}}
		bg.Go(func() { avail[i].run(sctx, l, ph) })
	}

	// The events, each on a goroutine of its own, since they may overlap.
	var evs sync.WaitGroup
	var evMu sync.Mutex
	var evErr error
	for _, e := range sch.Events {
		if err := sleepUntil(ctx, start.Add(time.Duration(e.At))); err != nil {
			break
		}
		logf("%v", e)
		ph.begin()
		evs.Go(func() {
			defer ph.end()
			for _, t := range e.Targets { // sorted: no lock-order cycle
				ds[t].busy.Lock()
				defer ds[t].busy.Unlock()
			}
			skipped, err := inject(ctx, l, ds, probes, e, o, func(node string, left map[string]holdings) {
				chkMu.Lock()
				chk.stopped(time.Since(start), node, left)
				chkMu.Unlock()
			})
			evMu.Lock()
			defer evMu.Unlock()
			if skipped {
				res.Skipped[e.Kind]++
			} else {
				res.Executed[e.Kind]++
			}
			if err != nil && ctx.Err() == nil {
				evErr = errors.Join(evErr, fmt.Errorf("%v: %w", e, err))
			}
		})
	}
	evs.Wait()
	// Judge the last heal too, and run for the whole duration.
	end := start.Add(time.Duration(sch.Duration))
	if settled := time.Now().Add(w + 2*time.Second); settled.After(end) {
		end = settled
	}
	sleepUntil(ctx, end)
	stopSampling()
	bg.Wait()
	res.Elapsed = time.Since(start)
	if err := errors.Join(ctx.Err(), evErr, sampleErr); err != nil {
		return res, err
	}

	// Every director stops cleanly at the end: none may leave state.
	for i, d := range ds {
		if err := d.current().Stop(10 * time.Second); err != nil {
			return res, fmt.Errorf("%s: %w", d.node, err)
		}
		left, err := probes[i].read()
		if err != nil {
			return res, err
		}
		chk.stopped(time.Since(start), d.node, left)
	}
	res.Violations = chk.violations()
	if len(res.Violations) > 0 && o.logDir != "" {
		res.Logs = filepath.Join(o.logDir, fmt.Sprintf("chaos-%d-logs", sch.Seed))
		if err := os.MkdirAll(res.Logs, 0o755); err != nil {
			return res, err
		}
		for _, d := range ds {
			if err := d.saveLogs(res.Logs); err != nil {
				return res, err
			}
		}
	}
	res.MasterChanges = chk.masterChanges
	res.Judged, res.Unjudged = chk.judged, chk.unjudged
	for _, a := range avail {
		res.Avail = append(res.Avail, a.result())
	}
	return res, nil
}

// inject applies e, waits its duration and heals it. skipped is true when
// the machine cannot do e (stress-ng missing).
func inject(ctx context.Context, l *lab.Lab, ds []*director, probes []*kernelProbe, e event, o options,
	stopped func(node string, left map[string]holdings)) (skipped bool, err error) {
	hold := func() error { return lab.Sleep(ctx, time.Duration(e.Dur)) }
	var d *director
	if len(e.Targets) > 0 {
		d = ds[e.Targets[0]]
	}
	switch e.Kind {
	case crash, stop:
		p := d.current()
		if e.Kind == crash {
			err = p.Kill()
		} else if err = p.Stop(10 * time.Second); err == nil {
			left, rerr := probes[d.idx].read()
			if rerr != nil {
				return false, rerr
			}
			stopped(d.node, left)
		}
		if err != nil {
			return false, err
		}
		if err := hold(); err != nil {
			return false, err
		}
		return false, d.start(ctx, l, o.tandem)
	case pause:
		p := d.current()
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return false, err
		}
		herr := hold()
		return false, errors.Join(herr, p.Signal(syscall.SIGCONT))
	case partition:
		if err := l.Partition(lab.SwitchLAN, d.node); err != nil {
			return false, err
		}
		herr := hold()
		return false, errors.Join(herr, l.Heal(lab.SwitchLAN, d.node))
	case split:
		a, b := ds[e.Targets[0]], ds[e.Targets[1]]
		if err := dropFrom(l, a.node, []netip.Addr{b.addr}); err != nil {
			return false, err
		}
		if err := dropFrom(l, b.node, []netip.Addr{a.addr}); err != nil {
			return false, err
		}
		herr := hold()
		if o.sabotage {
			return false, herr
		}
		return false, errors.Join(herr, nftDelete(l, a.node, split), nftDelete(l, b.node, split))
	case flap:
		each := time.Duration(e.Dur) / time.Duration(2*e.Count)
		for range e.Count {
			if err := l.SetLink(d.node, iface, false); err != nil {
				return false, err
			}
			herr := lab.Sleep(ctx, each)
			if err := errors.Join(herr, l.SetLink(d.node, iface, true)); err != nil {
				return false, err
			}
			if err := lab.Sleep(ctx, each); err != nil {
				return false, err
			}
		}
		return false, nil
	case loss:
		if err := dropRandom(l, d.node, e.Percent); err != nil {
			return false, err
		}
		herr := hold()
		return false, errors.Join(herr, nftDelete(l, d.node, loss))
	case delay:
		dl, err := l.Delay(d.node, time.Duration(e.Delay), time.Duration(e.Jitter))
		if err != nil {
			return false, err
		}
		herr := hold()
		err = errors.Join(herr, dl.Close())
		o.logf()("%s: delay healed; %d packets were held, %d of them dropped by the kernel", d.node, dl.Held(), dl.Lost())
		return false, err
	case starve:
		bin := stressNG()
		if bin == "" {
			return true, hold()
		}
		// Its own --timeout ends it should this process die first.
		p, err := l.Start(clientNode, bin, "--cpu", strconv.Itoa(e.Count), "--timeout",
			strconv.Itoa(int(time.Duration(e.Dur).Seconds())+2), "--quiet")
		if err != nil {
			return false, err
		}
		herr := hold()
		return false, errors.Join(herr, p.Kill())
	}
	return false, fmt.Errorf("unknown kind %q", e.Kind)
}

// clientLoop sends requests to one VIP from the client, one at a time,
// pollEvery apart at most, and counts the answers.
type clientLoop struct {
	vip   netip.Addr
	start time.Time         // the run's
	macs  map[string]string // director MAC -> name
	// states describes the directors' states for the VIP's instance.
	states func() string

	mu         sync.Mutex
	reqs, ok   int
	qReqs, qOK int
	failing    *outage // the current one
	lastBy     string  // who answered last
	outages    []outage
	buckets    map[int64][2]int // unix second -> requests, answered
}

// outage is a run of failed requests to one VIP.
type outage struct {
	At     time.Duration `json:"at_ns"` // since the run's start
	Lasted time.Duration `json:"lasted_ns"`
	// Before and After are the directors that answered just before and
	// just after.
	Before string `json:"before"`
	After  string `json:"after"`
	// Quiet: it started while the invariants were judged.
	Quiet bool `json:"quiet"`
	// Neighbor is the client's ARP entry for the VIP half a second into
	// the outage: which director's MAC it points to, and its state.
	Neighbor string `json:"neighbor,omitempty"`
}

func (o outage) String() string {
	q := ""
	if o.Quiet {
		q = ", began in a quiet period"
	}
	if o.Neighbor != "" {
		q += "; client's ARP entry: " + o.Neighbor
	}
	return fmt.Sprintf("+%v for %v (answered by %s before, %s after%s)",
		o.At.Round(time.Millisecond), o.Lasted.Round(time.Millisecond), o.Before, o.After, q)
}

// requestTimeout bounds one request: a SYN to a director that lost the VIP
// is not answered.
const requestTimeout = 200 * time.Millisecond

func (c *clientLoop) run(ctx context.Context, l *lab.Lab, ph *phase) {
	c.buckets = map[int64][2]int{}
	addr := netip.AddrPortFrom(c.vip, servePort).String()
	for ctx.Err() == nil {
		t0 := time.Now()
		quiet := ph.judging(t0)
		var by string
		err := l.Do(clientNode, func() error {
			conn, err := net.DialTimeout("tcp4", addr, requestTimeout)
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(t0.Add(requestTimeout))
			b, err := io.ReadAll(io.LimitReader(conn, 64))
			if err == nil && len(b) == 0 {
				err = errors.New("empty answer")
			}
			by = string(b)
			return err
		})
		if ctx.Err() != nil {
			return
		}
		c.record(t0, time.Now(), quiet && ph.judging(time.Now()), by, err == nil)
		c.mu.Lock()
		look := c.failing != nil && c.failing.Neighbor == "" && t0.Sub(c.start)-c.failing.At > 500*time.Millisecond
		c.mu.Unlock()
		if look {
			n := c.neighbor(l) + "; " + c.states()
			c.mu.Lock()
			if c.failing != nil {
				c.failing.Neighbor = n
			}
			c.mu.Unlock()
		}
		sleepUntil(ctx, t0.Add(pollEvery))
	}
}

// neighbor describes the client's ARP entry for the VIP.
func (c *clientLoop) neighbor(l *lab.Lab) string {
	out := "none"
	err := l.Do(clientNode, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if addrOf(n.IP) == c.vip {
				out = n.HardwareAddr.String() + " " + neighState(n.State)
				if d, ok := c.macs[n.HardwareAddr.String()]; ok {
					out = d + "'s MAC, " + neighState(n.State)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return out
}

func neighState(s int) string {
	for _, x := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&x.bit != 0 {
			return x.name
		}
	}
	return fmt.Sprintf("state %#x", s)
}

// record counts one request sent at t0 and done at t1.
func (c *clientLoop) record(t0, t1 time.Time, quiet bool, by string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs++
	b := c.buckets[t0.Unix()]
	b[0]++
	if quiet {
		c.qReqs++
	}
	switch {
	case ok:
		c.ok++
		b[1]++
		if quiet {
			c.qOK++
		}
		if c.failing != nil {
			c.failing.Lasted, c.failing.After = t1.Sub(c.start)-c.failing.At, by
			c.outages = append(c.outages, *c.failing)
			c.failing = nil
		}
		c.lastBy = by
	case c.failing == nil:
		c.failing = &outage{At: t0.Sub(c.start), Before: c.lastBy, Quiet: quiet}
	}
	c.buckets[t0.Unix()] = b
}

func (c *clientLoop) result() availability {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := availability{VIP: c.vip.String(), Requests: c.reqs, OK: c.ok, QuietReqs: c.qReqs, QuietOK: c.qOK, WorstSec: 1, Outages: c.outages}
	for _, o := range c.outages {
		a.Longest = max(a.Longest, o.Lasted)
	}
	for _, b := range c.buckets {
		if b[0] > 0 {
			a.WorstSec = min(a.WorstSec, float64(b[1])/float64(b[0]))
		}
	}
	return a
}

func instNames(insts []vrrpInst) []string {
	var out []string
	for _, in := range insts {
		out = append(out, in.name)
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) error { return lab.Sleep(ctx, time.Until(t)) }
