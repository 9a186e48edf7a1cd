package vrrp

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/clock"
	"tandem/internal/config"
	"tandem/internal/netio"
)

// fakeLAN connects fake VRRP sockets: what one sends to a multicast group
// every other socket on the same interface name receives, with TTL 255, at
// once. Its routers share one fake clock, which the test advances: tests
// run in a synctest bubble, so that after each timer fires every router can
// be let to handle all it was sent (settle) before the next one fires.
type fakeLAN struct {
	clock *clock.Fake
	mu    sync.Mutex
	conns []*fakeConn
	// drop, when set, says whether a packet from src is lost.
	drop func(src netip.Addr) bool
	// cut, when set, says whether a packet from src is lost on its way
	// to dst (a split between two routers); it runs under mu.
	cut func(src, dst netip.Addr) bool
	// delivered is when a packet from each source last reached a peer.
	delivered map[netip.Addr]time.Time
	// sent is every packet sent, in order.
	sent []sentPacket
}

// sentPacket is one packet a router sent on the LAN.
type sentPacket struct {
	at   time.Time
	src  netip.Addr
	data []byte
}

// adverts returns the adverts src sent at or after since, decoded.
func (l *fakeLAN) adverts(t *testing.T, src netip.Addr, since time.Time) []*Message {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Message
	for _, p := range l.sent {
		if p.src != src || p.at.Before(since) {
			continue
		}
		m, err := ParseIPv4(p.data, Options{})
		if err != nil {
			t.Fatalf("a sent packet does not parse: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func newLAN() *fakeLAN {
	return &fakeLAN{clock: clock.NewFake(t0), delivered: map[netip.Addr]time.Time{}}
}

// settle returns once every router has handled all it was sent and waits
// for its next timer (or its stop).
func (l *fakeLAN) settle() { synctest.Wait() }

// run fires the timers due within d of virtual time, in order, settling
// after each, until cond holds; it reports whether cond held.
func (l *fakeLAN) run(d time.Duration, cond func() bool) bool {
	end := l.clock.Now().Add(d)
	for {
		l.settle()
		if cond() {
			return true
		}
		if !l.clock.StepUntil(end) {
			return false
		}
	}
}

// conn returns the i-th socket opened on the LAN.
func (l *fakeLAN) conn(i int) *fakeConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[i]
}

// lastDelivered is when a packet from src last reached a peer.
func (l *fakeLAN) lastDelivered(src netip.Addr) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered[src]
}

// advance lets d of virtual time pass.
func (l *fakeLAN) advance(d time.Duration) { l.run(d, func() bool { return false }) }

// waitFor runs the LAN until cond holds, failing the test if it does not
// within d of virtual time.
func (l *fakeLAN) waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !l.run(d, cond) {
		t.Fatalf("%s: not within %v", what, d)
	}
}

type fakeConn struct {
	lan    *fakeLAN
	iface  string
	src    netip.Addr
	dests  []netip.Addr
	in     chan netio.Packet
	late   []latePacket // under lan.mu: see holdBack
	closed chan struct{}
	once   sync.Once
}

func (c *fakeConn) Src() netip.Addr     { return c.src }
func (c *fakeConn) Dests() []netip.Addr { return c.dests }
func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) SendTo(dst netip.Addr, data []byte) error {
	c.lan.mu.Lock()
	defer c.lan.mu.Unlock()
	c.lan.sent = append(c.lan.sent, sentPacket{at: c.lan.clock.Now(), src: c.src, data: append([]byte(nil), data...)})
	if c.lan.drop != nil && c.lan.drop(c.src) {
		return nil
	}
	for _, o := range c.lan.conns {
		if o == c || o.iface != c.iface || !dst.IsMulticast() && o.src != dst || c.lan.cut != nil && c.lan.cut(c.src, o.src) {
			continue
		}
		select {
		case o.in <- netio.Packet{Data: append([]byte(nil), data...), Src: c.src, Dst: dst, TTL: 255}:
			c.lan.delivered[c.src] = c.lan.clock.Now()
		default: // a full queue loses packets, as a real one does
		}
	}
	return nil
}

// Pending reports packets queued for the reader, or held back from it
// (late).
func (c *fakeConn) Pending() bool {
	c.lan.mu.Lock()
	defer c.lan.mu.Unlock()
	return len(c.in) > 0 || len(c.late) > 0
}

// holdBack queues p, arrived now, where the reader cannot read it yet,
// as in a socket whose reader is late; release lets it read them, each
// with its Age as the kernel's timestamp gives it.
func (c *fakeConn) holdBack(p netio.Packet) {
	c.lan.mu.Lock()
	defer c.lan.mu.Unlock()
	c.late = append(c.late, latePacket{p, c.lan.clock.Now()})
}

func (c *fakeConn) release() {
	c.lan.mu.Lock()
	late := c.late
	c.late = nil
	c.lan.mu.Unlock()
	for _, l := range late {
		l.p.Age = c.lan.clock.Now().Sub(l.arrived)
		c.in <- l.p
	}
}

// latePacket is a packet held back from the reader, and when it arrived.
type latePacket struct {
	p       netio.Packet
	arrived time.Time
}

func (c *fakeConn) Recv(buf []byte) (netio.Packet, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return netio.Packet{}, net.ErrClosed
	}
}

// fakeHost is one router's kernel: its address and the VIPs it holds.
type fakeHost struct {
	lan  *fakeLAN
	addr netip.Addr
	mu   sync.Mutex
	vips map[netip.Prefix]bool
	arps int
	// announced is when each announcement went, by interface.
	announced map[string][]time.Time
	// arpAt is when each announcement was sent.
	arpAt []time.Time
	// sysctls are the interfaces' promote_secondaries.
	sysctls map[string]bool
	// missing are interfaces Listen fails on.
	missing map[string]bool
	// deleted lists the addresses deleted, in order.
	deleted []netip.Prefix
	// delFails is how many of the next DelAddress calls fail as they do
	// when the process has no descriptor left for a netlink socket.
	delFails int
	// vmacs are the macvlans present, by name (ours: created by AddVMAC
	// or left by an earlier run); dev is where each VIP went; listens are
	// the sockets asked for.
	vmacs   map[string]netio.VMAC
	dev     map[netip.Prefix]string
	listens []netio.ConnConfig
	// silenced are the addresses the host does not answer ARP for.
	silenced []netip.Addr
	// rules counts the copies of each rule held (see AddRule).
	rules map[*config.Rule]int
}

func (h *fakeHost) Silence(addrs []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.silenced = slices.Clone(addrs)
	return nil
}

// quiet reports whether the host answers no ARP for a.
func (h *fakeHost) quiet(a string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.silenced, netip.MustParseAddr(a))
}

func (h *fakeHost) Listen(cfg netio.ConnConfig) (Conn, error) {
	h.mu.Lock()
	missing := h.missing[cfg.Interface]
	h.listens = append(h.listens, cfg)
	h.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Interface, netio.ErrNoInterface)
	}
	c := &fakeConn{lan: h.lan, iface: cfg.Interface, src: h.addr, in: make(chan netio.Packet, 64), closed: make(chan struct{}), dests: cfg.Peers}
	if len(c.dests) == 0 {
		c.dests = []netip.Addr{cfg.Group}
	}
	h.lan.mu.Lock()
	h.lan.conns = append(h.lan.conns, c)
	h.lan.mu.Unlock()
	return c, nil
}

func (h *fakeHost) AddAddress(iface string, a *config.IPAddress) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vips[a.Prefix] = true
	if h.dev == nil {
		h.dev = map[netip.Prefix]string{}
	}
	h.dev[a.Prefix] = cmp.Or(a.Dev, iface) // netio's rule: its own dev first
	return nil
}

func (h *fakeHost) DelAddress(_ string, a *config.IPAddress) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.delFails > 0 {
		h.delFails--
		return fmt.Errorf("delete %s: %w", a.Prefix, syscall.EMFILE)
	}
	delete(h.vips, a.Prefix)
	h.deleted = append(h.deleted, a.Prefix)
	return nil
}

func (h *fakeHost) AddRoute(string, *config.Route) error { return nil }
func (h *fakeHost) DelRoute(string, *config.Route) error { return nil }

// AddRule adds a copy of r, as the kernel does for a rule without a
// priority (each add gets the next free one), and DelRule removes one.
func (h *fakeHost) AddRule(r *config.Rule) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rules == nil {
		h.rules = map[*config.Rule]int{}
	}
	h.rules[r]++
	return nil
}

func (h *fakeHost) DelRule(r *config.Rule) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rules[r] > 0 {
		h.rules[r]--
	}
	return nil
}

// ruleCopies is how many rules the host holds.
func (h *fakeHost) ruleCopies() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.rules {
		n += c
	}
	return n
}
func (h *fakeHost) SetPromoteSecondaries(iface string, on bool) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sysctls == nil {
		h.sysctls = map[string]bool{}
	}
	was := h.sysctls[iface]
	h.sysctls[iface] = on
	return was, nil
}

func (h *fakeHost) AddVMAC(v netio.VMAC) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vmacs == nil {
		h.vmacs = map[string]netio.VMAC{}
	}
	h.vmacs[v.Name] = v
	return nil
}

func (h *fakeHost) DelVMAC(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.vmacs, name)
	return nil
}

func (h *fakeHost) StaleVMACs(keep map[string]bool) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name := range h.vmacs {
		if !keep[name] {
			out = append(out, name)
		}
	}
	return out, nil
}

func (h *fakeHost) Announce(iface string, _ netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.arps++
	if h.announced == nil {
		h.announced = map[string][]time.Time{}
	}
	h.announced[iface] = append(h.announced[iface], h.lan.clock.Now())
	h.arpAt = append(h.arpAt, h.lan.clock.Now())
	return nil
}

// deletions returns how many times p was deleted.
func (h *fakeHost) deletions(p string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, d := range h.deleted {
		if d == netip.MustParsePrefix(p) {
			n++
		}
	}
	return n
}

func (h *fakeHost) arpCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.arps
}

func (h *fakeHost) holds(p string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vips[netip.MustParsePrefix(p)]
}

// router is one engine running on a fake host.
type router struct {
	t      *testing.T
	lan    *fakeLAN
	host   *fakeHost
	engine *Engine
	cancel context.CancelFunc
	done   chan error
}

// startRouter runs conf on a fake host at addr; each of adjust changes
// the engine before it runs.
func startRouter(t *testing.T, lan *fakeLAN, addr, conf string, adjust ...func(*Engine)) *router {
	t.Helper()
	return startRouterOn(t, lan, &fakeHost{lan: lan, addr: netip.MustParseAddr(addr), vips: map[netip.Prefix]bool{}}, conf, adjust...)
}

// startRouterNotify is startRouter with the engine's state callback.
func startRouterNotify(t *testing.T, lan *fakeLAN, addr, conf string, onState func(StateChange)) *router {
	t.Helper()
	return startRouterWith(t, lan, &fakeHost{lan: lan, addr: netip.MustParseAddr(addr), vips: map[netip.Prefix]bool{}}, conf, onState)
}

// startRouterOn is startRouter on a host prepared by the caller.
func startRouterOn(t *testing.T, lan *fakeLAN, h *fakeHost, conf string, adjust ...func(*Engine)) *router {
	t.Helper()
	return startRouterWith(t, lan, h, conf, nil, adjust...)
}

// startRouterWith is startRouterOn with the engine's state callback.
func startRouterWith(t *testing.T, lan *fakeLAN, h *fakeHost, conf string, onState func(StateChange), adjust ...func(*Engine)) *router {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(conf), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := NewEngine(cfg, h, log, onState, WithClock(lan.clock))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range adjust {
		f(e)
	}
	return runRouter(t, lan, h, e)
}

// runRouter runs e, on h, until the test ends.
func runRouter(t *testing.T, lan *fakeLAN, h *fakeHost, e *Engine) *router {
	ctx, cancel := context.WithCancel(context.Background())
	r := &router{t: t, lan: lan, host: h, engine: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop stops the router as SIGTERM does, running the LAN's clock while the
// stop retries removals, and returns the virtual time the stop took.
func (r *router) stop() time.Duration {
	start := r.lan.clock.Now()
	r.cancel()
	stopped := false
	// Longer than the stop may take (stopRetryFor), so that a stop that
	// would never end fails here.
	if !r.lan.run(2*stopRetryFor, func() bool {
		select {
		case <-r.done:
			stopped = true
		default:
		}
		return stopped
	}) {
		r.t.Fatalf("the engine did not stop within %v", 2*stopRetryFor)
	}
	r.done <- nil // later stops return at once
	return r.lan.clock.Now().Sub(start)
}

func (r *router) state(name string) State {
	for _, s := range r.engine.Status() {
		if s.Name == name {
			return s.State
		}
	}
	return Init
}

// instanceConf is a fast VRRPv3 instance (advert_int 50 ms) on eth0.
func instanceConf(name string, vrid, prio int, extra string) string {
	return fmt.Sprintf(`vrrp_instance %s {
    interface eth0
    virtual_router_id %d
    priority %d
    version 3
    advert_int 0.05
    %s
    virtual_ipaddress {
        10.0.0.%d/24
    }
}
`, name, vrid, prio, extra, 100+vrid)
}

func TestEngineElectsAndFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		if !a.host.holds("10.0.0.101/24") || b.host.holds("10.0.0.101/24") {
			t.Fatal("the master must hold the VIP, the backup not")
		}
		if st := b.engine.Status()[0]; st.MasterIP != netip.MustParseAddr("10.0.0.1") || st.AdvertsReceived == 0 {
			t.Errorf("backup status: master %v, received %d", st.MasterIP, st.AdvertsReceived)
		}
		// Graceful stop: priority 0 lets the backup take over after Skew_Time.
		a.stop()
		if a.host.holds("10.0.0.101/24") {
			t.Error("a stopped router keeps its VIP")
		}
		lan.waitFor(t, "b master", time.Second, func() bool { return b.state("VI_1") == Master })
		if !b.host.holds("10.0.0.101/24") {
			t.Error("the new master has no VIP")
		}
		b.host.mu.Lock()
		arps := b.host.arps
		b.host.mu.Unlock()
		if arps == 0 {
			t.Error("no gratuitous ARP on becoming master")
		}
	})
}

func TestEngineCrashAndPreempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		var mu sync.Mutex
		dead := map[netip.Addr]bool{}
		lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return dead[src] }
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		// A crash: a's adverts stop without a priority-0 goodbye.
		aAddr := netip.MustParseAddr("10.0.0.1")
		mu.Lock()
		dead[aAddr] = true
		mu.Unlock()
		lan.waitFor(t, "b master after a's crash", time.Second, func() bool { return b.state("VI_1") == Master })
		// b takes over Master_Down_Interval after the last advert it
		// heard: for priority 100 at 50 ms, 3*50ms + Skew_Time, which is
		// (256-100)/256*50ms (RFC 5798 §6.1).
		took := b.engine.Status()[0].Since.Sub(lan.lastDelivered(aAddr))
		if took < 150*time.Millisecond || took >= 200*time.Millisecond {
			t.Errorf("b took over %v after a's last advert, want Master_Down_Interval, in [150ms, 200ms)", took)
		}
		// a comes back with a higher priority and preempts.
		mu.Lock()
		dead[aAddr] = false
		mu.Unlock()
		lan.waitFor(t, "a master again", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
	})
}

// masterThenHigher starts b (10.0.0.2, VI_1 at priority 100), waits
// until it is master alone, then starts a (10.0.0.1, priority 200, with
// aExtra) and returns both.
func masterThenHigher(t *testing.T, lan *fakeLAN, aExtra string) (a, b *router) {
	t.Helper()
	b = startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	lan.waitFor(t, "b master alone", 2*time.Second, func() bool { return b.state("VI_1") == Master })
	return startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, aExtra)), b
}

func TestEngineNoPreempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a, b := masterThenHigher(t, lan, "nopreempt")
		lan.waitFor(t, "a backup", 2*time.Second, func() bool { return a.state("VI_1") == Backup })
		lan.advance(500 * time.Millisecond) // ten advert intervals
		if a.state("VI_1") != Backup || b.state("VI_1") != Master {
			t.Fatalf("nopreempt: a %v, b %v; a higher-priority nopreempt backup must not take over", a.state("VI_1"), b.state("VI_1"))
		}
	})
}

func TestEngineTrackFaultAndSyncGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		group := `vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
}
`
		conf := group + instanceConf("VI_1", 1, 200, "") + instanceConf("VI_2", 2, 200, "")
		a := startRouter(t, lan, "10.0.0.1", conf)
		b := startRouter(t, lan, "10.0.0.2", strings.ReplaceAll(conf, "priority 200", "priority 100"))
		lan.waitFor(t, "a master of both", 2*time.Second, func() bool {
			return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
		})
		// A tracked object with weight 0 failing faults VI_1; the group
		// takes VI_2 with it, and b takes both.
		a.engine.Track("VI_1", "chk", 0, true, "")
		lan.waitFor(t, "a in fault, b master of both", 2*time.Second, func() bool {
			return a.state("VI_1") == Fault && a.state("VI_2") == Fault && b.state("VI_1") == Master && b.state("VI_2") == Master
		})
		if a.host.holds("10.0.0.101/24") || a.host.holds("10.0.0.102/24") {
			t.Error("a faulty router keeps VIPs")
		}
		a.engine.Track("VI_1", "chk", 0, false, "")
		lan.waitFor(t, "a master of both again", 2*time.Second, func() bool {
			return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
		})
	})
}

// TestEngineTrackWeight: a negative tracker weight lowers the effective
// priority below the peer's, which preempts (outside a sync group, where
// only faults move the group).
func TestEngineTrackWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		a.engine.Track("VI_1", "chk", -150, false, "")
		lan.waitFor(t, "b master after a's priority drop", 2*time.Second, func() bool { return b.state("VI_1") == Master && a.state("VI_1") == Backup })
		if p := a.engine.Status()[0].EffectivePriority; p != 50 {
			t.Errorf("effective priority %d, want 200-150=50", p)
		}
		a.engine.Track("VI_1", "chk", 0, false, "")
		lan.waitFor(t, "a master again", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
	})
}

func (h *fakeHost) failDeletes(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delFails = n
}

// TestRemovalRetried: a master that loses mastership while the kernel
// refuses to remove its VIP keeps trying until the VIP is gone, instead of
// holding it beside the new master.
func TestRemovalRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master })
		a.host.failDeletes(3)
		b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 200, ""))
		lan.waitFor(t, "b master, a backup", 5*time.Second, func() bool { return b.state("VI_1") == Master && a.state("VI_1") == Backup })
		lan.waitFor(t, "a's VIP removed", 30*time.Second, func() bool { return !a.host.holds("10.0.0.101/24") })
	})
}

// TestStopRetriesRemoval: a stop retries a refused removal, and gives up
// after stopRetryFor rather than never exit.
func TestStopRetriesRemoval(t *testing.T) {
	for _, c := range []struct {
		name  string
		fails int
		gone  bool
	}{
		{"refused twice", 2, true},
		{"refused always", 1 << 30, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
				lan.waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master })
				a.host.failDeletes(c.fails)
				if took := a.stop(); took > stopRetryFor {
					t.Errorf("the stop took %v, more than stopRetryFor (%v)", took, stopRetryFor)
				}
				if held := a.host.holds("10.0.0.101/24"); held == c.gone {
					t.Errorf("after the stop, VIP held: %v, want %v", held, !c.gone)
				}
			})
		})
	}
}

// Packets the kernel dropped before they were read (netio.Packet.Overflow,
// from SO_RXQ_OVFL) are counted with the instance's drops, as
// socket_overflow.
func TestEngineCountsSocketOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		r := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
		c := lan.conn(0)
		for _, n := range []uint32{3, 0, 4} {
			c.in <- netio.Packet{Data: []byte{0x31}, Src: netip.MustParseAddr("10.0.0.2"), TTL: 255, Overflow: n}
		}
		dropped := func() map[string]uint64 { return r.engine.Status()[0].Dropped }
		lan.waitFor(t, "3 packets read", 5*time.Second, func() bool { return dropped()["too_short"] == 3 })
		if got := dropped()["socket_overflow"]; got != 7 {
			t.Errorf("socket_overflow = %d, want 7 (3 + 4); drops %v", got, dropped())
		}
	})
}

// peerAdvert is an advert of instanceConf's VI_1 (VRID 1, 50 ms) from
// peer at priority 200, as c receives it.
func peerAdvert(t *testing.T, c *fakeConn, peer netip.Addr) netio.Packet {
	t.Helper()
	adv := &Packet{Version: 3, Type: TypeAdvertisement, VRID: 1, Priority: 200, AdvertInt: 50 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.101")}}
	data, err := adv.MarshalIPv4(IPv4Header{Src: peer, Dst: c.dests[0], ID: 1, TTL: VRRPTTL}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return netio.Packet{Data: data, Src: peer, Dst: c.dests[0], TTL: VRRPTTL}
}

// TestReceiveWithoutEngineLock: the receive path, reader and loop, takes no
// engine lock for a packet that changes no state, so that whatever holds
// the lock (a Status caller on a slow API connection, say) never holds up
// the adverts, and with them the Master_Down_Timer.
func TestReceiveWithoutEngineLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		r := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
		c := lan.conn(0)
		peer := netip.MustParseAddr("10.0.0.2")
		advert := peerAdvert(t, c, peer)
		c.in <- advert
		lan.settle()
		if st := r.engine.Status()[0]; st.State != Backup || st.MasterIP != peer || st.AdvertsReceived != 1 {
			t.Fatalf("after one advert from a better peer: %v, master %v, received %d", st.State, st.MasterIP, st.AdvertsReceived)
		}

		in := r.engine.insts[0]
		r.engine.mu.Lock()
		for range 3 {
			c.in <- advert
		}
		c.in <- netio.Packet{Data: []byte{0x31}, Src: peer, TTL: VRRPTTL}
		// Spin instead of settling: a goroutine waiting for a mutex is not
		// durably blocked, so synctest.Wait would never return if the
		// receive path took the lock.
		for i := 0; i < 1e6 && (in.count.rcvd.Load() < 4 || in.count.dropped[ReasonTooShort].Load() < 1); i++ {
			runtime.Gosched()
		}
		rcvd, short := in.count.rcvd.Load(), in.count.dropped[ReasonTooShort].Load()
		r.engine.mu.Unlock()
		if rcvd != 4 || short != 1 {
			t.Errorf("while the engine lock was held: %d adverts received, %d too short; want 4 and 1", rcvd, short)
		}
	})
}

// startWatched starts instanceConf's VI_1 (priority 100) at 10.0.0.1;
// masters returns when it became master, in order.
func startWatched(t *testing.T, lan *fakeLAN) (r *router, masters func() []time.Time) {
	var mu sync.Mutex
	var masterAt []time.Time
	r = startRouterNotify(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""), func(sc StateChange) {
		if sc.Instance != nil && sc.State == Master && !sc.MasterRxLowerPri && !sc.PriorityChange {
			mu.Lock()
			masterAt = append(masterAt, sc.At)
			mu.Unlock()
		}
	})
	return r, func() []time.Time { mu.Lock(); defer mu.Unlock(); return slices.Clone(masterAt) }
}

// TestLateReadAdvertKeepsBackup: an advert that reached the host before
// the BACKUP's Master_Down_Timer expired, but was read only after it (the
// process ran late: a loaded machine), neither makes the backup take over
// nor counts as heard late: the expiry waits for the packets queued, and
// the timer restarts as of the advert's arrival (its kernel timestamp),
// not of its reading.
func TestLateReadAdvertKeepsBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		r, masters := startWatched(t, lan)
		c := lan.conn(0)
		peer := netip.MustParseAddr("10.0.0.2")
		advert := peerAdvert(t, c, peer)
		c.in <- advert
		lan.settle()
		if st := r.state("VI_1"); st != Backup {
			t.Fatalf("after an advert from a better peer: %v", st)
		}
		down := MasterDownInterval(3, 50*time.Millisecond, 100)
		// The next advert arrives 10 ms before the timer's deadline; the
		// reader gets to it 20 ms after the deadline.
		lan.advance(down - 10*time.Millisecond)
		arrived := lan.clock.Now()
		c.holdBack(advert)
		lan.advance(30 * time.Millisecond)
		if st := r.state("VI_1"); st != Backup || len(masters()) > 0 {
			t.Fatalf("the deadline passed with an advert of the master queued: %v (master at %v)", st, masters())
		}
		c.release()
		lan.settle()
		// Restarted as of arrival: it expires Master_Down_Interval after
		// it, not after the read (30 ms later).
		lan.advance(arrived.Add(down - time.Millisecond).Sub(lan.clock.Now()))
		if st := r.state("VI_1"); st != Backup || len(masters()) > 0 {
			t.Fatalf("before the restarted timer's deadline: %v (master at %v)", st, masters())
		}
		lan.advance(2 * time.Millisecond)
		if got := masters(); len(got) != 1 || !got[0].Equal(arrived.Add(down)) {
			t.Errorf("became master at %v; want once, at the advert's arrival + Master_Down_Interval (%v)", got, arrived.Add(down))
		}
	})
}

// TestLateExpiryWaitsOneInterval: a BACKUP whose Master_Down_Timer
// expiry runs late (its loop was stalled, as a loaded or paused machine
// stalls it) with nothing in its socket waits one more
// Master_Adver_Interval before taking over, once: a master that shares
// the stall and sends as soon as it runs again keeps its role, and a
// master that is gone is replaced one interval later. An expiry on time
// is not held (TestLateReadAdvertKeepsBackup's takeover at the exact
// deadline).
func TestLateExpiryWaitsOneInterval(t *testing.T) {
	for _, alive := range []bool{true, false} {
		t.Run(map[bool]string{true: "master sends again", false: "master gone"}[alive], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := newLAN()
				r, masters := startWatched(t, lan)
				c := lan.conn(0)
				advert := peerAdvert(t, c, netip.MustParseAddr("10.0.0.2"))
				c.in <- advert
				lan.settle()
				down := MasterDownInterval(3, 50*time.Millisecond, 100)
				// The loop stalls from 10 ms before the deadline until 30
				// ms after it; the master, stalled as well, sent nothing.
				lan.advance(down - 10*time.Millisecond)
				resume := make(chan struct{})
				r.engine.send(loopEvent{call: func() { <-resume }})
				lan.advance(40 * time.Millisecond)
				close(resume)
				lan.settle()
				resumed := lan.clock.Now()
				if st := r.state("VI_1"); st != Backup || len(masters()) > 0 {
					t.Fatalf("right after a stall past the deadline: %v (master at %v); want BACKUP for one more interval", st, masters())
				}
				if alive {
					lan.advance(20 * time.Millisecond)
					c.in <- advert
					lan.settle()
					lan.advance(down - time.Millisecond)
					if got := masters(); len(got) > 0 {
						t.Fatalf("became master at %v although the master sent within the grace", got)
					}
				} else {
					lan.advance(60 * time.Millisecond)
					if got, want := masters(), resumed.Add(50*time.Millisecond); len(got) != 1 || !got[0].Equal(want) {
						t.Fatalf("became master at %v; want once, one advertisement interval after the stall (%v)", got, want)
					}
				}
				for _, s := range r.engine.Status() {
					if s.LateExpiries != 1 {
						t.Errorf("LateExpiries %d; want 1", s.LateExpiries)
					}
				}
			})
		})
	}
}
