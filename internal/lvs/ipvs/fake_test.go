package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// These tests need no kernel: a fake ipvs.Client stands in for IPVS's
// generic netlink family, with its answers (EEXIST for a duplicate,
// ESRCH/ENOENT for a missing service or destination), so that what the
// backend sends, one request per op, can be checked everywhere. test/vm
// runs the same backend against the real IPVS.

// fakeIdent is what identifies a service to IPVS.
type fakeIdent struct {
	fam   ipvs.AddressFamily
	proto ipvs.Protocol
	addr  netip.Addr
	port  uint16
	mark  uint32
}

func identOf(s ipvs.Service) fakeIdent {
	return fakeIdent{s.Family, s.Protocol, s.Address, s.Port, s.FWMark}
}

type fakeService struct {
	svc   ipvs.Service
	pe    string // persistence engine
	dests map[netip.AddrPort]ipvs.DestinationExtended
}

type fakeClient struct {
	svcs  map[fakeIdent]*fakeService
	cfg   ipvs.Config // the timeouts
	calls []string    // every request, refused ones included
	// before runs before each request with its text; an error refuses it.
	before func(call string) error
}

func newFakeClient() *fakeClient { return &fakeClient{svcs: map[fakeIdent]*fakeService{}} }

func (c *fakeClient) call(format string, args ...any) error {
	s := fmt.Sprintf(format, args...)
	c.calls = append(c.calls, s)
	if c.before != nil {
		return c.before(s)
	}
	return nil
}

func (c *fakeClient) Info() (ipvs.Info, error)     { return ipvs.Info{}, nil }
func (c *fakeClient) Config() (ipvs.Config, error) { return c.cfg, nil }
func (c *fakeClient) SetConfig(cfg ipvs.Config) error {
	if err := c.call("set-config %d %d %d", cfg.TCPTimeout, cfg.TCPFinTimeout, cfg.UDPTimeout); err != nil {
		return err
	}
	c.cfg = cfg
	return nil
}

// The extras (genl.go), on the same table.

func (c *fakeClient) flush() error {
	if err := c.call("flush"); err != nil {
		return err
	}
	clear(c.svcs)
	return nil
}

func (c *fakeClient) putService(cmd uint8, s lvs.Service) error {
	svc := toService(s)
	if err := c.call("put-service %d %v pe=%s", cmd, svc.Address, s.PersistenceEngine); err != nil {
		return err
	}
	f := c.svcs[identOf(svc)]
	switch {
	case cmd == cmdNewService && f != nil:
		return unix.EEXIST
	case cmd == cmdSetService && f == nil:
		return unix.ESRCH
	case f == nil:
		f = &fakeService{dests: map[netip.AddrPort]ipvs.DestinationExtended{}}
		c.svcs[identOf(svc)] = f
	}
	f.svc, f.pe = svc, s.PersistenceEngine
	return nil
}

func (c *fakeClient) persistenceEngines() (map[lvs.ServiceKey]string, error) {
	out := map[lvs.ServiceKey]string{}
	for _, f := range c.svcs {
		if f.pe != "" {
			out[fromService(f.svc).Key()] = f.pe
		}
	}
	return out, nil
}

func (c *fakeClient) close() error { return nil }

// Services answers as cloudflare/ipvs does for an empty table.
func (c *fakeClient) Services() ([]ipvs.ServiceExtended, error) {
	if len(c.svcs) == 0 {
		return nil, unix.ENOENT
	}
	var out []ipvs.ServiceExtended
	for _, s := range c.svcs {
		out = append(out, ipvs.ServiceExtended{Service: s.svc})
	}
	return out, nil
}

func (c *fakeClient) Service(s ipvs.Service) (ipvs.ServiceExtended, error) {
	if f := c.svcs[identOf(s)]; f != nil {
		return ipvs.ServiceExtended{Service: f.svc}, nil
	}
	return ipvs.ServiceExtended{}, unix.ESRCH
}

func (c *fakeClient) CreateService(s ipvs.Service) error {
	if err := c.call("create-service %v", s.Address); err != nil {
		return err
	}
	if c.svcs[identOf(s)] != nil {
		return unix.EEXIST
	}
	c.svcs[identOf(s)] = &fakeService{svc: s, dests: map[netip.AddrPort]ipvs.DestinationExtended{}}
	return nil
}

func (c *fakeClient) UpdateService(s ipvs.Service) error {
	if err := c.call("update-service %v", s.Address); err != nil {
		return err
	}
	f := c.svcs[identOf(s)]
	if f == nil {
		return unix.ESRCH
	}
	f.svc, f.pe = s, "" // the kernel drops the engine of an update that names none
	return nil
}

func (c *fakeClient) RemoveService(s ipvs.Service) error {
	if err := c.call("remove-service %v", s.Address); err != nil {
		return err
	}
	if c.svcs[identOf(s)] == nil {
		return unix.ESRCH
	}
	delete(c.svcs, identOf(s))
	return nil
}

func (c *fakeClient) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	f := c.svcs[identOf(s)]
	if f == nil {
		return nil, unix.ESRCH
	}
	if len(f.dests) == 0 {
		return nil, unix.ENOENT
	}
	return slices.Collect(maps.Values(f.dests)), nil
}

// dest runs one destination request: op changes the table if the service
// exists and the destination's presence is as want says.
func (c *fakeClient) dest(verb string, s ipvs.Service, d ipvs.Destination, present bool, op func(*fakeService, netip.AddrPort)) error {
	addr := netip.AddrPortFrom(d.Address, d.Port)
	if err := c.call("%s-dest %v %v", verb, s.Address, addr); err != nil {
		return err
	}
	f := c.svcs[identOf(s)]
	if f == nil {
		return unix.ESRCH
	}
	switch _, ok := f.dests[addr]; {
	case ok && !present:
		return unix.EEXIST
	case !ok && present:
		return unix.ENOENT
	}
	op(f, addr)
	return nil
}

func (c *fakeClient) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	return c.dest("create", s, d, false, func(f *fakeService, a netip.AddrPort) {
		f.dests[a] = ipvs.DestinationExtended{Destination: d}
	})
}

func (c *fakeClient) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	return c.dest("update", s, d, true, func(f *fakeService, a netip.AddrPort) {
		e := f.dests[a]
		e.Destination = d
		f.dests[a] = e
	})
}

func (c *fakeClient) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	return c.dest("remove", s, d, true, func(f *fakeService, a netip.AddrPort) { delete(f.dests, a) })
}

// fakeKernel is a Kernel on a fake client, owning nothing yet.
func fakeKernel(t *testing.T) (*Kernel, *fakeClient) {
	t.Helper()
	owned, err := loadStateFile("")
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeClient()
	return &Kernel{c: c, nl: c, owned: owned}, c
}

// TestApplyPerOp: behind lvs.Kernel's batches, IPVS gets one request per
// op, in the plan's order; a refused request stops the plan there, inside
// a service's batch (IPVS has no transactions), and the reconciler names
// it; the context is checked between requests; and the services created
// are owned.
func TestApplyPerOp(t *testing.T) {
	k, c := fakeKernel(t)
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: lvs.WeightedRoundRobin}
	dests := func(w ...int) []lvs.Dest {
		var out []lvs.Dest
		for i, w := range w {
			out = append(out, lvs.Dest{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 80), Weight: w, Method: lvs.NAT})
		}
		return out
	}
	other := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.UDP, VIP: netip.MustParseAddr("10.0.0.2"), Port: 53},
		Scheduler: lvs.RoundRobin}, Dests: dests(1)}
	r := lvs.NewReconciler(k, k.Owns)
	want := mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests(1, 1, 1)}, other)
	rep := reconcile(t, r, want)
	wantCalls := []string{
		"create-service 10.0.0.1", "create-dest 10.0.0.1 10.0.1.1:80", "create-dest 10.0.0.1 10.0.1.2:80", "create-dest 10.0.0.1 10.0.1.3:80",
		"create-service 10.0.0.2", "create-dest 10.0.0.2 10.0.1.1:80",
	}
	if diff := cmp.Diff(wantCalls, c.calls); diff != "" || len(rep.Ops) != len(wantCalls) {
		t.Fatalf("requests (-want +got):\n%s\nops: %v", diff, rep.Ops)
	}
	if diff := cmp.Diff(wantState(want), kernelState(t, k), cmpOpts); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	for _, key := range want.Keys() {
		if !k.Owns(key) {
			t.Errorf("%v created but not owned", key)
		}
	}

	// Three weights: the second update refused. The first stays applied
	// (one request each, nothing to roll back), the third is not sent.
	c.calls = nil
	refused := errors.New("injected")
	c.before = func(call string) error {
		if call == "update-dest 10.0.0.1 10.0.1.2:80" {
			return refused
		}
		return nil
	}
	rep, err := r.Reconcile(context.Background(), mustDesired(t, lvs.VirtualServer{Service: svc, Dests: dests(2, 3, 4)}, other))
	var opErr *lvs.OpError
	if !errors.As(err, &opErr) || !errors.Is(err, refused) || opErr.Index != 1 || opErr.Total != 3 || opErr.Op.Dest.Addr != dests(1, 1)[1].Addr {
		t.Fatalf("err = %v, want the OpError of op 2 of 3", err)
	}
	if len(rep.Ops) != 1 || len(c.calls) != 2 {
		t.Errorf("applied %v after requests %v, want the first update only", rep.Ops, c.calls)
	}
	c.before = nil
	if got, _ := k.Dests(svc.Key()); got[0].Weight != 2 || got[1].Weight != 1 || got[2].Weight != 1 {
		t.Errorf("dests %+v, want weights 2 1 1", got)
	}

	// Cancelled after the first request: that one is applied, no other
	// is sent.
	c.calls = nil
	ctx, cancel := context.WithCancel(context.Background())
	c.before = func(string) error { cancel(); return nil }
	rep, err = r.Reconcile(ctx, mustDesired(t))
	if !errors.Is(err, context.Canceled) || len(rep.Ops) != 1 || len(c.calls) != 1 {
		t.Errorf("cancelled: err %v, applied %v, requests %v", err, rep.Ops, c.calls)
	}
}

// TestCounters: Counters reports every service's real servers with IPVS's
// connection counts and the 64-bit counters, or the 32-bit ones from a
// kernel older than 4.1 that sends no others.
func TestCounters(t *testing.T) {
	k, c := fakeKernel(t)
	want := mustDesired(t, testServices()[:2]...)
	reconcile(t, lvs.NewReconciler(k, k.Owns), want)
	wantCounters := map[lvs.ServiceKey][]lvs.DestCounters{}
	n := uint64(0)
	for _, f := range c.svcs {
		key := fromService(f.svc).Key()
		for a, d := range f.dests {
			n++
			d.ActiveConnections, d.InactiveConnections = uint32(n), uint32(10*n)
			st := ipvs.Stats{IncomingPackets: 100 * n, IncomingBytes: 1000 * n, OutgoingPackets: 7}
			if n%2 == 0 {
				d.Stats64 = st
			} else {
				d.Stats = st
			}
			f.dests[a] = d
			wantCounters[key] = append(wantCounters[key], lvs.DestCounters{Addr: a, ActiveConns: n, InactiveConns: 10 * n, Packets: 100 * n, Bytes: 1000 * n})
		}
	}
	for _, cs := range wantCounters {
		slices.SortFunc(cs, func(a, b lvs.DestCounters) int { return a.Addr.Compare(b.Addr) })
	}
	got, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantCounters, got, cmpOpts); diff != "" || n != 4 {
		t.Errorf("counters of %d dests (-want +got):\n%s", n, diff)
	}
}

// TestTunnelUpdateInPlace: a TUN server's encapsulation is read back as it
// was sent (a second reconcile sends nothing), and a change of only the
// encapsulation updates the server in place (IPVS_CMD_SET_DEST), without
// removing it and its connections.
func TestTunnelUpdateInPlace(t *testing.T) {
	k, c := fakeKernel(t)
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.TUN}
	dest := func(tun lvs.Tunnel) lvs.VirtualServer {
		return lvs.VirtualServer{Service: svc, Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.0.2.1:80"), Weight: 1, Tunnel: tun}}}
	}
	r := lvs.NewReconciler(k, k.Owns)
	gue := lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelCsumOn}
	reconcile(t, r, mustDesired(t, dest(gue)))
	if got, _ := k.Dests(svc.Key()); len(got) != 1 || got[0].Tunnel != gue {
		t.Fatalf("read back %+v, want one server with tunnel %+v", got, gue)
	}
	if rep := reconcile(t, r, mustDesired(t, dest(gue))); len(rep.Ops) != 0 {
		t.Errorf("second reconcile sent %v", rep.Ops)
	}
	for _, tun := range []lvs.Tunnel{{Type: lvs.TunnelGUE, Port: 6081, Csum: lvs.TunnelCsumOn}, {Type: lvs.TunnelGUE, Port: 6081, Csum: lvs.TunnelRemCsum}, {Type: lvs.TunnelGRE}, {}} {
		c.calls = nil
		reconcile(t, r, mustDesired(t, dest(tun)))
		if want := []string{"update-dest 10.0.0.1 10.0.2.1:80"}; !slices.Equal(c.calls, want) {
			t.Errorf("to %+v: requests %q, want %q", tun, c.calls, want)
		}
		if got, _ := k.Dests(svc.Key()); len(got) != 1 || got[0].Tunnel != tun {
			t.Errorf("read back %+v, want tunnel %+v", got, tun)
		}
	}
}
