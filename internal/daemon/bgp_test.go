package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/bfd"
	"tandem/internal/bgp"
	"tandem/internal/check"
	"tandem/internal/config"
	"tandem/internal/lab"
)

// fakeSpeaker records the calls the daemon makes, in order.
type fakeSpeaker struct {
	mu        sync.Mutex
	calls     []string
	announced map[netip.Prefix]bgp.Attrs
}

func (s *fakeSpeaker) call(format string, a ...any) {
	s.calls = append(s.calls, fmt.Sprintf(format, a...))
}

// take returns the calls since the last take.
func (s *fakeSpeaker) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *fakeSpeaker) AddNeighbor(_ context.Context, n *config.BGPNeighbor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("add neighbor %s hold %s", n.Addr, n.HoldTime.Seconds())
	return nil
}

func (s *fakeSpeaker) RemoveNeighbor(_ context.Context, a netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("remove neighbor %s", a)
	return nil
}

func (s *fakeSpeaker) ResetNeighbor(_ context.Context, a netip.Addr, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("reset neighbor %s: %s", a, why)
	return nil
}

func (s *fakeSpeaker) Announce(_ context.Context, p netip.Prefix, attrs bgp.Attrs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	med := "-"
	if attrs.MED != nil {
		med = fmt.Sprint(*attrs.MED)
	}
	s.call("announce %s med %s", p, med)
	s.announced[p] = attrs
	return nil
}

func (s *fakeSpeaker) Withdraw(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("withdraw %s", p)
	delete(s.announced, p)
	return nil
}

func (s *fakeSpeaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Prefix
	for p := range s.announced {
		out = append(out, p)
	}
	return out
}

func (s *fakeSpeaker) GracefulShutdown(_ context.Context, delay time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("graceful shutdown %s", delay)
	clear(s.announced)
	return nil
}

func (s *fakeSpeaker) Status(context.Context) ([]bgp.Neighbor, error) {
	return []bgp.Neighbor{{Addr: netip.MustParseAddr("10.0.0.254"), State: "established", Sent: 1}}, nil
}

func (s *fakeSpeaker) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call("close")
}

// bgpConf is two DR virtual servers on one VIP and one on another, and
// a bgp block with its body.
func bgpConf(body string) string {
	vs := func(vip string, port int) string {
		return fmt.Sprintf("virtual_server %s %d {\n protocol TCP\n lb_algo rr\n lb_kind DR\n}\n", vip, port)
	}
	return vs("192.0.2.10", 80) + vs("192.0.2.10", 443) + vs("192.0.2.11", 80) +
		"bfd_instance R {\n neighbor_ip 10.0.0.254\n}\n" +
		"bgp {\n router_id 10.0.0.1\n local_as 65001\n neighbor 10.0.0.254 {\n  remote_as 65000\n  bfd R\n }\n" + body + "}\n"
}

// TestBGPFollower: the routes follow what can be served, a reload
// changes only what config.Diff says, and the shutdown is graceful and
// final.
func TestBGPFollower(t *testing.T) {
	var sp *fakeSpeaker
	opened := 0
	f := newBGPFollower(slog.New(slog.DiscardHandler), func(_ context.Context, b *config.BGP, _ *slog.Logger) (bgpSpeaker, error) {
		opened++
		sp = &fakeSpeaker{announced: map[netip.Prefix]bgp.Attrs{}}
		sp.call("open %s with %d neighbors", b.RouterID, len(b.Neighbors))
		return sp, nil
	})
	a := netip.MustParseAddr
	ctx := context.Background()
	cfg := lab.ParseConfig(t, bgpConf(" med 5\n"))
	step := func(what string, want ...string) {
		t.Helper()
		if got := sp.take(); !cmp.Equal(got, want) {
			t.Errorf("%s: calls %q, want %q", what, got, want)
		}
	}
	reload := func(next *config.Config) {
		t.Helper()
		if err := f.apply(ctx, next, config.Diff(cfg, next)); err != nil {
			t.Fatal(err)
		}
		cfg = next
	}
	if err := f.apply(ctx, cfg, config.Diff(&config.Config{}, cfg)); err != nil {
		t.Fatal(err)
	}
	step("start", "open 10.0.0.1 with 1 neighbors")
	f.setReady(map[netip.Addr]bool{a("192.0.2.10"): true})
	step("one VIP ready", "announce 192.0.2.10/32 med 5")
	f.setReady(map[netip.Addr]bool{a("192.0.2.10"): true, a("192.0.2.11"): true, a("192.0.2.99"): true})
	step("both ready, and one the block does not name", "announce 192.0.2.11/32 med 5")
	f.setReady(map[netip.Addr]bool{a("192.0.2.11"): true})
	step("one lost", "withdraw 192.0.2.10/32")

	reload(lab.ParseConfig(t, bgpConf(" med 7\n")))
	step("new MED: announced again", "announce 192.0.2.11/32 med 7")
	reload(lab.ParseConfig(t, bgpConf(" med 7\n neighbor 10.0.0.253 {\n  remote_as 65000\n }\n")))
	step("a neighbor added", "add neighbor 10.0.0.253 hold 90")
	reload(lab.ParseConfig(t, bgpConf(" med 7\n neighbor 10.0.0.253 {\n  remote_as 65000\n  hold_time 9\n }\n")))
	step("its hold time changed: that session alone", "remove neighbor 10.0.0.253", "add neighbor 10.0.0.253 hold 9")
	reload(lab.ParseConfig(t, bgpConf(" med 7\n announce {\n  192.0.2.10\n }\n")))
	step("it is removed, and the announce list no longer has the announced VIP", "remove neighbor 10.0.0.253", "withdraw 192.0.2.11/32")
	reload(lab.ParseConfig(t, bgpConf(" med 7\n")))
	step("announce all again", "announce 192.0.2.11/32 med 7")
	old := sp
	reload(lab.ParseConfig(t, strings.Replace(bgpConf(" med 7\n"), "router_id 10.0.0.1", "router_id 10.0.0.2", 1)))
	if got := old.take(); !cmp.Equal(got, []string{"close"}) {
		t.Errorf("new router id: the old speaker got %q, want close", got)
	}
	step("new router id: a new speaker", "open 10.0.0.2 with 1 neighbors", "announce 192.0.2.11/32 med 7")

	f.bfdDown("R")
	step("BFD down", "reset neighbor 10.0.0.254: BFD session R down")
	f.bfdDown("other")
	step("another BFD session down")

	st := f.status()
	want := &struct{ vips, announced []string }{}
	for _, v := range st.VIPs {
		want.vips = append(want.vips, v.VIP)
		if v.Announced {
			want.announced = append(want.announced, v.VIP)
		}
	}
	if !slices.Equal(want.vips, []string{"192.0.2.10", "192.0.2.11"}) || !slices.Equal(want.announced, []string{"192.0.2.11"}) ||
		len(st.Neighbors) != 1 || st.Neighbors[0].RemoteAS != 65000 || st.RouterID != "10.0.0.2" {
		t.Errorf("status %+v", st)
	}

	f.shutdown(ctx)
	step("shutdown: graceful, then closed", "graceful shutdown 5s", "close")
	if !f.status().ShuttingDown {
		t.Error("status does not say shutting down")
	}
	f.setReady(map[netip.Addr]bool{a("192.0.2.10"): true})
	reload(lab.ParseConfig(t, bgpConf(" med 9\n")))
	step("after the shutdown nothing is announced")

	reload(&config.Config{})
	if opened != 2 {
		t.Errorf("%d speakers opened, want 2", opened)
	}
}

// TestBGPFollowerRemoved: a reload that drops the bgp block closes the
// speaker (its routes go with the sessions) and shows no BGP status.
func TestBGPFollowerRemoved(t *testing.T) {
	sp := &fakeSpeaker{announced: map[netip.Prefix]bgp.Attrs{}}
	f := newBGPFollower(slog.New(slog.DiscardHandler), func(context.Context, *config.BGP, *slog.Logger) (bgpSpeaker, error) { return sp, nil })
	cfg := lab.ParseConfig(t, bgpConf(""))
	if err := f.apply(context.Background(), cfg, config.Diff(&config.Config{}, cfg)); err != nil {
		t.Fatal(err)
	}
	f.setReady(map[netip.Addr]bool{netip.MustParseAddr("192.0.2.11"): true})
	sp.take()
	next := lab.ParseConfig(t, "virtual_server 192.0.2.10 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n}\n")
	if err := f.apply(context.Background(), next, config.Diff(cfg, next)); err != nil {
		t.Fatal(err)
	}
	if got := sp.take(); !cmp.Equal(got, []string{"close"}) {
		t.Errorf("calls %q, want close", got)
	}
	if st := f.status(); st != nil {
		t.Errorf("status without a bgp block: %+v", st)
	}
	f.shutdown(context.Background()) // nothing to shut down
	if got := sp.take(); len(got) != 0 {
		t.Errorf("shutdown without a speaker: %q", got)
	}
}

// TestServableVIPs: a VIP is servable while one of its virtual servers
// has quorum and the data plane took the rules.
func TestServableVIPs(t *testing.T) {
	cfg := lab.ParseConfig(t, bgpConf(""))
	a := netip.MustParseAddr
	for _, tt := range []struct {
		name    string
		quorum  []bool // per virtual server: 192.0.2.10:80, :443, 192.0.2.11:80
		planeOK bool
		want    map[netip.Addr]bool
	}{
		{"all up", []bool{true, true, true}, true, map[netip.Addr]bool{a("192.0.2.10"): true, a("192.0.2.11"): true}},
		{"one port of a VIP down", []bool{false, true, true}, true, map[netip.Addr]bool{a("192.0.2.10"): true, a("192.0.2.11"): true}},
		{"every port of a VIP down", []bool{false, false, true}, true, map[netip.Addr]bool{a("192.0.2.11"): true}},
		{"data plane not updated", []bool{true, true, true}, false, map[netip.Addr]bool{}},
		{"health not known yet", nil, true, map[netip.Addr]bool{}},
	} {
		var snap []check.VSStatus
		for _, q := range tt.quorum {
			snap = append(snap, check.VSStatus{QuorumUp: q})
		}
		if got := servableVIPs(cfg, snap, tt.planeOK); !cmp.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDaemonBGP: tandem run starts the speaker with the bgp block,
// resets the session whose bfd_instance goes down, shows the speaker in
// its status (nothing announced with --dataplane none: nothing would
// forward), and shuts the speaker down gracefully at stop.
func TestDaemonBGP(t *testing.T) {
	sp := &fakeSpeaker{announced: map[netip.Prefix]bgp.Attrs{}}
	f := newFakeSessions()
	td := startDaemon(t, bgpConf(""), lab.TestLogger(t), func(o *Options) {
		o.NewBFD = func(*slog.Logger) (bfd.Sessions, error) { return f, nil }
		o.newSpeaker = func(_ context.Context, b *config.BGP, _ *slog.Logger) (bgpSpeaker, error) {
			sp.call("open %s", b.RouterID)
			return sp, nil
		}
	})
	if got := sp.take(); !cmp.Equal(got, []string{"open 10.0.0.1"}) {
		t.Errorf("at start: %q", got)
	}
	f.events <- change("R", bfd.Up, bfd.Down)
	waitFor(t, "the BGP session reset after BFD down", func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return len(sp.calls) > 0
	})
	if got := sp.take(); !cmp.Equal(got, []string{"reset neighbor 10.0.0.254: BFD session R down"}) {
		t.Errorf("after BFD down: %q", got)
	}
	st := td.d.Status().BGP
	if st == nil || len(st.VIPs) != 2 || st.VIPs[0].Announced || st.VIPs[1].Announced {
		t.Errorf("status: %+v", st)
	}
	td.stop(t)
	if got := sp.take(); !cmp.Equal(got, []string{"graceful shutdown 5s", "close"}) {
		t.Errorf("at stop: %q", got)
	}
}

// TestBGPFollowerDrain: tandem drain withdraws gracefully and keeps the
// VIPs out whatever the health checks say, until the undo; a drain with
// no bgp block, twice, or an undo without a drain is refused.
func TestBGPFollowerDrain(t *testing.T) {
	sp := &fakeSpeaker{announced: map[netip.Prefix]bgp.Attrs{}}
	f := newBGPFollower(slog.New(slog.DiscardHandler), func(context.Context, *config.BGP, *slog.Logger) (bgpSpeaker, error) { return sp, nil })
	ctx := context.Background()
	if _, err := f.drain(ctx, false); err != errNoBGP {
		t.Errorf("drain without a bgp block: %v", err)
	}
	cfg := lab.ParseConfig(t, bgpConf(""))
	if err := f.apply(ctx, cfg, config.Diff(&config.Config{}, cfg)); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	f.setReady(map[netip.Addr]bool{a("192.0.2.10"): true})
	sp.take()
	if _, err := f.drain(ctx, true); err == nil {
		t.Error("an undo without a drain was accepted")
	}
	vips, err := f.drain(ctx, false)
	if err != nil || !slices.Equal(vips, []string{"192.0.2.10"}) {
		t.Errorf("drain: %v, %v", vips, err)
	}
	if got := sp.take(); !cmp.Equal(got, []string{"graceful shutdown 5s"}) {
		t.Errorf("drain: calls %q", got)
	}
	if _, err := f.drain(ctx, false); err == nil {
		t.Error("a second drain was accepted")
	}
	f.setReady(map[netip.Addr]bool{a("192.0.2.10"): true, a("192.0.2.11"): true})
	if got := sp.take(); len(got) != 0 {
		t.Errorf("announced while drained: %q", got)
	}
	if !f.status().Drained {
		t.Error("status does not say drained")
	}
	vips, err = f.drain(ctx, true)
	if err != nil || !slices.Equal(vips, []string{"192.0.2.10", "192.0.2.11"}) {
		t.Errorf("undo: %v, %v", vips, err)
	}
	got := sp.take()
	slices.Sort(got)
	if !cmp.Equal(got, []string{"announce 192.0.2.10/32 med -", "announce 192.0.2.11/32 med -"}) {
		t.Errorf("undo: calls %q", got)
	}
	f.shutdown(ctx)
	if _, err := f.drain(ctx, false); err != errStopping {
		t.Errorf("drain while stopping: %v", err)
	}
}
