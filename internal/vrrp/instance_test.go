package vrrp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tandem/internal/config"
	"tandem/internal/netio"
)

// fakeLAN connects fake VRRP sockets: what one sends to a multicast group
// every other socket on the same interface name receives, with TTL 255.
type fakeLAN struct {
	mu    sync.Mutex
	conns []*fakeConn
	// drop, when set, says whether a packet from src is lost.
	drop func(src netip.Addr) bool
}

type fakeConn struct {
	lan    *fakeLAN
	iface  string
	src    netip.Addr
	dests  []netip.Addr
	in     chan netio.Packet
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
	if c.lan.drop != nil && c.lan.drop(c.src) {
		return nil
	}
	for _, o := range c.lan.conns {
		if o == c || o.iface != c.iface {
			continue
		}
		select {
		case o.in <- netio.Packet{Data: append([]byte(nil), data...), Src: c.src, Dst: dst, TTL: 255}:
		default: // a full queue loses packets, as a real one does
		}
	}
	return nil
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
	// delFails is how many of the next DelAddress calls fail as they do
	// when the process has no descriptor left for a netlink socket.
	delFails int
}

func (h *fakeHost) Listen(cfg netio.ConnConfig) (Conn, error) {
	c := &fakeConn{lan: h.lan, iface: cfg.Interface, src: h.addr, in: make(chan netio.Packet, 64), closed: make(chan struct{}), dests: cfg.Peers}
	if len(c.dests) == 0 {
		c.dests = []netip.Addr{cfg.Group}
	}
	h.lan.mu.Lock()
	h.lan.conns = append(h.lan.conns, c)
	h.lan.mu.Unlock()
	return c, nil
}

func (h *fakeHost) AddAddress(_ string, a *config.IPAddress) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vips[a.Prefix] = true
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
	return nil
}

func (h *fakeHost) AddRoute(string, *config.Route) error { return nil }
func (h *fakeHost) DelRoute(string, *config.Route) error { return nil }
func (h *fakeHost) AddRule(*config.Rule) error           { return nil }
func (h *fakeHost) DelRule(*config.Rule) error           { return nil }
func (h *fakeHost) Announce(string, netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.arps++
	return nil
}

func (h *fakeHost) holds(p string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vips[netip.MustParsePrefix(p)]
}

// router is one engine running on a fake host.
type router struct {
	host   *fakeHost
	engine *Engine
	cancel context.CancelFunc
	done   chan error
}

func startRouter(t *testing.T, lan *fakeLAN, addr, conf string) *router {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(conf), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	h := &fakeHost{lan: lan, addr: netip.MustParseAddr(addr), vips: map[netip.Prefix]bool{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := NewEngine(cfg, h, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &router{host: h, engine: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *router) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // later stops return at once
}

func (r *router) state(name string) State {
	for _, s := range r.engine.Status() {
		if s.Name == name {
			return s.State
		}
	}
	return Init
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
	lan := &fakeLAN{}
	a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
	b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
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
	waitFor(t, "b master", time.Second, func() bool { return b.state("VI_1") == Master })
	if !b.host.holds("10.0.0.101/24") {
		t.Error("the new master has no VIP")
	}
	b.host.mu.Lock()
	arps := b.host.arps
	b.host.mu.Unlock()
	if arps == 0 {
		t.Error("no gratuitous ARP on becoming master")
	}
}

func TestEngineCrashAndPreempt(t *testing.T) {
	lan := &fakeLAN{}
	var mu sync.Mutex
	dead := map[netip.Addr]bool{}
	lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return dead[src] }
	a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
	b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
	// A crash: a's adverts stop without a priority-0 goodbye.
	mu.Lock()
	dead[netip.MustParseAddr("10.0.0.1")] = true
	mu.Unlock()
	start := time.Now()
	waitFor(t, "b master after a's crash", time.Second, func() bool { return b.state("VI_1") == Master })
	// Master_Down_Interval for priority 100 at 50 ms: 3*50ms + (156/256)*50ms.
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("b took over after %v, before Master_Down_Interval", took)
	}
	// a comes back with a higher priority and preempts.
	mu.Lock()
	dead[netip.MustParseAddr("10.0.0.1")] = false
	mu.Unlock()
	waitFor(t, "a master again", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
}

func TestEngineNoPreempt(t *testing.T) {
	lan := &fakeLAN{}
	b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	waitFor(t, "b master alone", 2*time.Second, func() bool { return b.state("VI_1") == Master })
	a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, "nopreempt"))
	waitFor(t, "a backup", 2*time.Second, func() bool { return a.state("VI_1") == Backup })
	time.Sleep(500 * time.Millisecond) // ten advert intervals
	if a.state("VI_1") != Backup || b.state("VI_1") != Master {
		t.Fatalf("nopreempt: a %v, b %v; a higher-priority nopreempt backup must not take over", a.state("VI_1"), b.state("VI_1"))
	}
}

func TestEngineTrackFaultAndSyncGroup(t *testing.T) {
	lan := &fakeLAN{}
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
	waitFor(t, "a master of both", 2*time.Second, func() bool {
		return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
	})
	// A tracked object with weight 0 failing faults VI_1; the group takes
	// VI_2 with it, and b takes both.
	a.engine.Track("VI_1", "chk", 0, true)
	waitFor(t, "a in fault, b master of both", 2*time.Second, func() bool {
		return a.state("VI_1") == Fault && a.state("VI_2") == Fault && b.state("VI_1") == Master && b.state("VI_2") == Master
	})
	if a.host.holds("10.0.0.101/24") || a.host.holds("10.0.0.102/24") {
		t.Error("a faulty router keeps VIPs")
	}
	a.engine.Track("VI_1", "chk", 0, false)
	waitFor(t, "a master of both again", 2*time.Second, func() bool {
		return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
	})
}

// TestEngineTrackWeight: a negative tracker weight lowers the effective
// priority below the peer's, which preempts (outside a sync group, where
// only faults move the group).
func TestEngineTrackWeight(t *testing.T) {
	lan := &fakeLAN{}
	a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
	b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
	waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
	a.engine.Track("VI_1", "chk", -150, false)
	waitFor(t, "b master after a's priority drop", 2*time.Second, func() bool { return b.state("VI_1") == Master && a.state("VI_1") == Backup })
	if p := a.engine.Status()[0].EffectivePriority; p != 50 {
		t.Errorf("effective priority %d, want 200-150=50", p)
	}
	a.engine.Track("VI_1", "chk", 0, false)
	waitFor(t, "a master again", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
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
	lan := &fakeLAN{}
	a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
	waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master })
	a.host.failDeletes(3)
	b := startRouter(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 200, ""))
	waitFor(t, "b master, a backup", 5*time.Second, func() bool { return b.state("VI_1") == Master && a.state("VI_1") == Backup })
	waitFor(t, "a's VIP removed", 30*time.Second, func() bool { return !a.host.holds("10.0.0.101/24") })
}

// TestStopRetriesRemoval: a stop retries a refused removal, and gives up
// after Engine.stopRetry rather than never exit.
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
			a := startRouter(t, &fakeLAN{}, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
			a.engine.stopRetry = 500 * time.Millisecond
			waitFor(t, "a master", 5*time.Second, func() bool { return a.state("VI_1") == Master })
			a.host.failDeletes(c.fails)
			a.stop() // returns: a stop that never ends fails the test by its timeout
			if held := a.host.holds("10.0.0.101/24"); held == c.gone {
				t.Errorf("after the stop, VIP held: %v, want %v", held, !c.gone)
			}
		})
	}
}

// Packets the kernel dropped before they were read (netio.Packet.Overflow,
// from SO_RXQ_OVFL) are counted with the instance's drops, as
// socket_overflow.
func TestEngineCountsSocketOverflow(t *testing.T) {
	lan := &fakeLAN{}
	r := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 100, ""))
	lan.mu.Lock()
	c := lan.conns[0]
	lan.mu.Unlock()
	for _, n := range []uint32{3, 0, 4} {
		c.in <- netio.Packet{Data: []byte{0x31}, Src: netip.MustParseAddr("10.0.0.2"), TTL: 255, Overflow: n}
	}
	dropped := func() map[string]uint64 { return r.engine.Status()[0].Dropped }
	waitFor(t, "3 packets read", 5*time.Second, func() bool { return dropped()["too_short"] == 3 })
	if got := dropped()["socket_overflow"]; got != 7 {
		t.Errorf("socket_overflow = %d, want 7 (3 + 4); drops %v", got, dropped())
	}
}
