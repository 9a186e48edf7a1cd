package lvs

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

func vip(proto Protocol, addrPort string) ServiceKey {
	ap := netip.MustParseAddrPort(addrPort)
	return ServiceKey{Family: familyOf(ap.Addr()), Protocol: proto, VIP: ap.Addr(), Port: ap.Port()}
}

func rs(addrPort string, weight int) Dest {
	return Dest{Addr: netip.MustParseAddrPort(addrPort), Weight: weight}
}

func mustDesired(t testing.TB, vss ...VirtualServer) *Desired {
	t.Helper()
	d, err := NewDesired(vss...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func opStrings(ops []Op) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.String()
	}
	return out
}

// baseline returns a fresh copy of a configuration covering every key shape:
// IPv4 TCP and UDP, a firewall mark with flags and persistence, and IPv6.
func baseline() []VirtualServer {
	return []VirtualServer{
		{Service: Service{ServiceKey: vip(TCP, "10.0.0.1:80"), Scheduler: WeightedRoundRobin},
			Dests: []Dest{rs("10.1.0.2:80", 1), rs("10.1.0.1:80", 1)}},
		{Service: Service{ServiceKey: vip(UDP, "10.0.0.2:53"), Scheduler: RoundRobin},
			Dests: []Dest{rs("10.1.0.3:53", 1)}},
		{Service: Service{ServiceKey: ServiceKey{Family: IPv4, FWMark: 7}, Scheduler: SourceHash,
			Flags: FlagSHPort, PersistenceTimeout: 300, PersistenceMask: PrefixMask(IPv4, 24), Method: DR},
			Dests: []Dest{rs("10.1.0.4:0", 5)}},
		{Service: Service{ServiceKey: vip(TCP, "[2001:db8::1]:443"), Scheduler: MaglevHash},
			Dests: []Dest{rs("[2001:db8::10]:443", 1)}},
	}
}

func reconcile(t *testing.T, r *Reconciler, d *Desired) Report {
	t.Helper()
	rep, err := r.Reconcile(context.Background(), d)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return rep
}

func TestReconcileFromEmpty(t *testing.T) {
	k := newFakeKernel()
	d := mustDesired(t, baseline()[:2]...)
	rep := reconcile(t, NewReconciler(k, nil), d)

	a := Service{ServiceKey: vip(TCP, "10.0.0.1:80"), Scheduler: WeightedRoundRobin, Method: NAT, PersistenceMask: PrefixMask(IPv4, 32)}
	b := Service{ServiceKey: vip(UDP, "10.0.0.2:53"), Scheduler: RoundRobin, Method: NAT, PersistenceMask: PrefixMask(IPv4, 32)}
	nat := func(d Dest) Dest { d.Method = NAT; return d }
	want := []Op{
		{Kind: AddService, Service: a},
		{Kind: AddDest, Service: a, Dest: nat(rs("10.1.0.1:80", 1))},
		{Kind: AddDest, Service: a, Dest: nat(rs("10.1.0.2:80", 1))},
		{Kind: AddService, Service: b},
		{Kind: AddDest, Service: b, Dest: nat(rs("10.1.0.3:53", 1))},
	}
	if diff := cmp.Diff(want, rep.Ops, cmpOpts); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, k.log, cmpOpts); diff != "" {
		t.Errorf("kernel log (-want +got):\n%s", diff)
	}
	if got := rep.Count(AddDest); got != 3 {
		t.Errorf("Count(AddDest) = %d, want 3", got)
	}
	if diff := cmp.Diff(wantState(d), k.state(), cmpOpts); diff != "" {
		t.Errorf("kernel state (-want +got):\n%s", diff)
	}
}

// TestReconcileIdempotent: once applied, the same state costs nothing,
// whether reconciled again, rebuilt by a reload (in another order), or
// reconciled by a fresh process that adopts the kernel's state.
func TestReconcileIdempotent(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, nil)
	reconcile(t, r, mustDesired(t, baseline()...))
	sent := len(k.log)

	reloaded := baseline()
	slices.Reverse(reloaded)
	for _, tc := range []struct {
		name string
		r    *Reconciler
		d    *Desired
	}{
		{"again", r, mustDesired(t, baseline()...)},
		{"reload reordered", r, mustDesired(t, reloaded...)},
		{"restarted process", NewReconciler(k, nil), mustDesired(t, baseline()...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := reconcile(t, tc.r, tc.d)
			if len(rep.Ops) != 0 || len(rep.Foreign) != 0 || len(k.log) != sent {
				t.Errorf("sent %v, foreign %v; want nothing", opStrings(k.log[sent:]), rep.Foreign)
			}
		})
	}
}

// TestReconcileChanges applies the baseline, then a changed configuration,
// and checks the exact operations and the resulting kernel state.
func TestReconcileChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func([]VirtualServer) []VirtualServer
		want   []string
	}{
		{
			name:   "weight only",
			change: func(v []VirtualServer) []VirtualServer { v[0].Dests[1].Weight = 3; return v },
			want:   []string{"update-dest tcp/10.0.0.1:80 -> 10.1.0.1:80 weight=3 method=nat thresholds=0/0"},
		},
		{
			name:   "inhibit (weight 0) keeps the dest",
			change: func(v []VirtualServer) []VirtualServer { v[1].Dests[0].Weight = 0; return v },
			want:   []string{"update-dest udp/10.0.0.2:53 -> 10.1.0.3:53 weight=0 method=nat thresholds=0/0"},
		},
		{
			name: "thresholds and method",
			change: func(v []VirtualServer) []VirtualServer {
				v[3].Dests[0].UpperThreshold, v[3].Dests[0].LowerThreshold = 100, 10
				v[2].Dests[0].Method = TUN
				return v
			},
			want: []string{
				"update-dest fwm:7/ipv4 -> 10.1.0.4:0 weight=5 method=tun thresholds=0/0",
				"update-dest tcp/[2001:db8::1]:443 -> [2001:db8::10]:443 weight=1 method=nat thresholds=10/100",
			},
		},
		{
			name:   "scheduler in place",
			change: func(v []VirtualServer) []VirtualServer { v[0].Service.Scheduler = LeastConn; return v },
			want:   []string{"update-service tcp/10.0.0.1:80 sched=lc flags=[] persist=0s/32"},
		},
		{
			name: "persistence and flags in place",
			change: func(v []VirtualServer) []VirtualServer {
				v[2].Service.PersistenceTimeout = 600
				v[2].Service.Flags |= FlagSHFallback
				return v
			},
			want: []string{"update-service fwm:7/ipv4 sched=sh flags=[sh-fallback,sh-port] persist=600s/24"},
		},
		{
			name: "service default method change updates its dests only",
			change: func(v []VirtualServer) []VirtualServer {
				v[1].Service.Method = DR
				return v
			},
			want: []string{"update-dest udp/10.0.0.2:53 -> 10.1.0.3:53 weight=1 method=dr thresholds=0/0"},
		},
		{
			name: "add and remove dests: adds first",
			change: func(v []VirtualServer) []VirtualServer {
				v[0].Dests = []Dest{rs("10.1.0.1:80", 1), rs("10.1.0.9:80", 2), rs("10.1.0.8:80", 2)}
				return v
			},
			want: []string{
				"add-dest tcp/10.0.0.1:80 -> 10.1.0.8:80 weight=2 method=nat thresholds=0/0",
				"add-dest tcp/10.0.0.1:80 -> 10.1.0.9:80 weight=2 method=nat thresholds=0/0",
				"del-dest tcp/10.0.0.1:80 -> 10.1.0.2:80",
			},
		},
		{
			name: "add a service touches no other",
			change: func(v []VirtualServer) []VirtualServer {
				return append(v, VirtualServer{
					Service: Service{ServiceKey: vip(SCTP, "10.0.0.3:3868"), Scheduler: TwoRandomChoicesLeastConnPair},
					Dests:   []Dest{rs("10.1.0.5:3868", 1)},
				})
			},
			want: []string{
				"add-service sctp/10.0.0.3:3868 sched=twos flags=[] persist=0s/32",
				"add-dest sctp/10.0.0.3:3868 -> 10.1.0.5:3868 weight=1 method=nat thresholds=0/0",
			},
		},
		{
			name:   "remove a service: its dests go with it",
			change: func(v []VirtualServer) []VirtualServer { return slices.Delete(v, 0, 1) },
			want:   []string{"del-service tcp/10.0.0.1:80"},
		},
		{
			name: "port change: new service up before the old goes",
			change: func(v []VirtualServer) []VirtualServer {
				v[0].Service.Port = 8080
				return v
			},
			want: []string{
				"add-service tcp/10.0.0.1:8080 sched=wrr flags=[] persist=0s/32",
				"add-dest tcp/10.0.0.1:8080 -> 10.1.0.1:80 weight=1 method=nat thresholds=0/0",
				"add-dest tcp/10.0.0.1:8080 -> 10.1.0.2:80 weight=1 method=nat thresholds=0/0",
				"del-service tcp/10.0.0.1:80",
			},
		},
		{
			name:   "everything removed",
			change: func([]VirtualServer) []VirtualServer { return nil },
			want: []string{
				"del-service tcp/10.0.0.1:80",
				"del-service udp/10.0.0.2:53",
				"del-service fwm:7/ipv4",
				"del-service tcp/[2001:db8::1]:443",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel()
			r := NewReconciler(k, nil)
			reconcile(t, r, mustDesired(t, baseline()...))
			k.log = nil

			d := mustDesired(t, tc.change(baseline())...)
			rep := reconcile(t, r, d)
			if diff := cmp.Diff(tc.want, opStrings(rep.Ops)); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantState(d), k.state(), cmpOpts); diff != "" {
				t.Errorf("kernel state (-want +got):\n%s", diff)
			}
			if rep := reconcile(t, r, d); len(rep.Ops) != 0 {
				t.Errorf("second reconcile sent %v", opStrings(rep.Ops))
			}
		})
	}
}

// TestReconcileForeign: services the operator made by hand are never read,
// changed or removed, whatever Tandem wants, unless the owns predicate
// claims them or the configuration names the same key.
func TestReconcileForeign(t *testing.T) {
	handMade := []VirtualServer{
		{Service: Service{ServiceKey: vip(TCP, "192.0.2.1:22"), Scheduler: WeightedLeastConn},
			Dests: []Dest{{Addr: netip.MustParseAddrPort("192.0.2.10:22"), Weight: 1, Method: DR}}},
		{Service: Service{ServiceKey: ServiceKey{Family: IPv6, FWMark: 99}, Scheduler: RoundRobin}},
	}
	foreignKeys := []ServiceKey{handMade[0].Service.Key(), handMade[1].Service.Key()}

	tests := []struct {
		name        string
		owns        func(ServiceKey) bool
		desired     []VirtualServer
		wantOps     []string
		wantForeign []ServiceKey
		wantLeft    []VirtualServer // hand-made services still in the kernel
	}{
		{
			name:        "empty desired state",
			wantForeign: foreignKeys,
			wantLeft:    handMade,
		},
		{
			name:        "alongside Tandem's services",
			desired:     baseline()[1:2],
			wantOps:     []string{"add-service udp/10.0.0.2:53 sched=rr flags=[] persist=0s/32", "add-dest udp/10.0.0.2:53 -> 10.1.0.3:53 weight=1 method=nat thresholds=0/0"},
			wantForeign: foreignKeys,
			wantLeft:    handMade,
		},
		{
			name:        "owns predicate claims one",
			owns:        func(k ServiceKey) bool { return k.FWMark == 99 },
			wantOps:     []string{"del-service fwm:99/ipv6"},
			wantForeign: foreignKeys[:1],
			wantLeft:    handMade[:1],
		},
		{
			name: "configuration takes over the same key",
			desired: []VirtualServer{{Service: Service{ServiceKey: vip(TCP, "192.0.2.1:22"), Scheduler: WeightedLeastConn},
				Dests: []Dest{rs("192.0.2.11:22", 1)}}},
			wantOps: []string{
				"add-dest tcp/192.0.2.1:22 -> 192.0.2.11:22 weight=1 method=nat thresholds=0/0",
				"del-dest tcp/192.0.2.1:22 -> 192.0.2.10:22",
			},
			wantForeign: foreignKeys[1:],
			wantLeft:    handMade[1:],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel()
			for _, vs := range handMade {
				k.seed(vs)
			}
			d := mustDesired(t, tc.desired...)
			rep := reconcile(t, NewReconciler(k, tc.owns), d)
			if diff := cmp.Diff(tc.wantOps, opStrings(rep.Ops), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantForeign, rep.Foreign, cmpOpts); diff != "" {
				t.Errorf("foreign (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantState(d, tc.wantLeft...), k.state(), cmpOpts); diff != "" {
				t.Errorf("kernel state (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReconcileReloadRemovesOnlyOwn: a service Tandem applied, or adopted
// while configured, and then dropped from its configuration is removed; a
// hand-made one never is.
func TestReconcileReloadRemovesOnlyOwn(t *testing.T) {
	k := newFakeKernel()
	k.seed(VirtualServer{Service: Service{ServiceKey: vip(TCP, "192.0.2.1:22"), Scheduler: RoundRobin}})
	r := NewReconciler(k, nil)
	reconcile(t, r, mustDesired(t, baseline()[:2]...))
	rep := reconcile(t, r, mustDesired(t, baseline()[1:2]...))
	if diff := cmp.Diff([]string{"del-service tcp/10.0.0.1:80"}, opStrings(rep.Ops)); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if _, ok := k.svcs[vip(TCP, "192.0.2.1:22")]; !ok {
		t.Error("hand-made service was removed")
	}

	// A new process finds the services of the previous one: those still
	// configured are adopted, so dropping one later removes it.
	r = NewReconciler(k, nil)
	reconcile(t, r, mustDesired(t, baseline()[1:3]...))
	rep = reconcile(t, r, mustDesired(t, baseline()[2:3]...))
	if diff := cmp.Diff([]string{"del-service udp/10.0.0.2:53"}, opStrings(rep.Ops)); diff != "" {
		t.Errorf("after restart, ops (-want +got):\n%s", diff)
	}
}

func TestReconcileErrors(t *testing.T) {
	t.Run("op refused mid-batch", func(t *testing.T) {
		k := newFakeKernel()
		k.failAt = 2
		r := NewReconciler(k, nil)
		d := mustDesired(t, baseline()[:2]...)
		rep, err := r.Reconcile(context.Background(), d)
		var opErr *OpError
		if !errors.As(err, &opErr) || !errors.Is(err, errInjects) {
			t.Fatalf("err = %v, want an *OpError wrapping the kernel's", err)
		}
		wantMsg := "lvs: op 3 of 5 (add-dest tcp/10.0.0.1:80 -> 10.1.0.2:80 weight=1 method=nat thresholds=0/0): injected failure"
		if err.Error() != wantMsg {
			t.Errorf("err = %q, want %q", err, wantMsg)
		}
		if opErr.Index != 2 || opErr.Total != 5 || opErr.Op.Kind != AddDest {
			t.Errorf("OpError = %+v", opErr)
		}
		if got := len(rep.Ops); got != 2 {
			t.Errorf("report has %d ops, want the 2 applied", got)
		}
		// The next pass resumes from the actual state: only what is missing.
		rep = reconcile(t, r, d)
		want := []string{
			"add-dest tcp/10.0.0.1:80 -> 10.1.0.2:80 weight=1 method=nat thresholds=0/0",
			"add-service udp/10.0.0.2:53 sched=rr flags=[] persist=0s/32",
			"add-dest udp/10.0.0.2:53 -> 10.1.0.3:53 weight=1 method=nat thresholds=0/0",
		}
		if diff := cmp.Diff(want, opStrings(rep.Ops)); diff != "" {
			t.Errorf("retry ops (-want +got):\n%s", diff)
		}
	})
	t.Run("partial failure: only applied services are owned", func(t *testing.T) {
		k := newFakeKernel()
		k.failAt = 3 // the second service's AddService
		r := NewReconciler(k, nil)
		if _, err := r.Reconcile(context.Background(), mustDesired(t, baseline()[:2]...)); err == nil {
			t.Fatal("no error")
		}
		rep := reconcile(t, r, mustDesired(t))
		if diff := cmp.Diff([]string{"del-service tcp/10.0.0.1:80"}, opStrings(rep.Ops)); diff != "" {
			t.Errorf("ops (-want +got):\n%s", diff)
		}
	})

	listErr := errors.New("netlink: boom")
	tests := []struct {
		name    string
		setup   func(*fakeKernel)
		ctx     func() context.Context
		wantErr string
		wantIs  error
	}{
		{
			name:    "list services",
			setup:   func(k *fakeKernel) { k.servicesErr = listErr },
			wantErr: "lvs: list services: netlink: boom",
			wantIs:  listErr,
		},
		{
			name: "list dests",
			setup: func(k *fakeKernel) {
				k.seed(VirtualServer{Service: Service{ServiceKey: vip(TCP, "10.0.0.1:80"), Scheduler: WeightedRoundRobin}})
				k.destsErr = listErr
			},
			wantErr: "lvs: list dests of tcp/10.0.0.1:80: netlink: boom",
			wantIs:  listErr,
		},
		{
			name: "kernel lists a service twice",
			setup: func(k *fakeKernel) {
				k.seed(VirtualServer{Service: Service{ServiceKey: vip(TCP, "10.0.0.1:80"), Scheduler: WeightedRoundRobin}})
				// Same key once normalized: the family is filled in from the VIP.
				k.seed(VirtualServer{Service: Service{ServiceKey: ServiceKey{Protocol: TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}}})
			},
			wantErr: "lvs: kernel lists service tcp/10.0.0.1:80 twice",
		},
		{
			name: "cancelled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantErr: "lvs: reconcile stopped after 0 of 5 ops: context canceled",
			wantIs:  context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel()
			if tc.setup != nil {
				tc.setup(k)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			_, err := NewReconciler(k, nil).Reconcile(ctx, mustDesired(t, baseline()[:2]...))
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err does not wrap %v", tc.wantIs)
			}
			if len(k.log) != 0 {
				t.Errorf("sent %v", opStrings(k.log))
			}
		})
	}
}

func genDesired(t *rapid.T, label string) []VirtualServer {
	keys := rapid.SliceOfNDistinct(rapid.SampledFrom([]ServiceKey{
		vip(TCP, "10.0.0.1:80"), vip(UDP, "10.0.0.1:80"), vip(TCP, "10.0.0.2:443"),
		vip(SCTP, "10.0.0.3:3868"), vip(TCP, "[2001:db8::1]:80"),
		{Family: IPv4, FWMark: 1}, {Family: IPv6, FWMark: 1},
	}), 0, 5, func(k ServiceKey) ServiceKey { return k }).Draw(t, label+" keys")
	vss := make([]VirtualServer, len(keys))
	for i, k := range keys {
		svc := Service{
			ServiceKey:         k,
			Scheduler:          rapid.SampledFrom([]Scheduler{RoundRobin, WeightedLeastConn, SourceHash}).Draw(t, "sched"),
			PersistenceTimeout: rapid.SampledFrom([]uint32{0, 300}).Draw(t, "timeout"),
			Method:             rapid.SampledFrom([]Method{MethodUnset, DR}).Draw(t, "method"),
		}
		if svc.Scheduler == SourceHash {
			svc.Flags = rapid.SampledFrom([]Flags{0, FlagSHPort}).Draw(t, "flags")
		}
		hosts := rapid.SliceOfNDistinct(rapid.IntRange(1, 5), 0, 4, rapid.ID[int]).Draw(t, "hosts")
		for _, h := range hosts {
			a := "10.1.0." + strconv.Itoa(h) + ":80"
			if k.Family == IPv6 {
				a = "[2001:db8:1::" + strconv.Itoa(h) + "]:80"
			}
			d := rs(a, rapid.IntRange(0, 3).Draw(t, "weight"))
			d.UpperThreshold = rapid.SampledFrom([]uint32{0, 100}).Draw(t, "upper")
			vss[i].Dests = append(vss[i].Dests, d)
		}
		vss[i].Service = svc
	}
	return vss
}

// expectedCounts derives, independently of the reconciler, how many ops of
// each kind a minimal transition from a to b needs.
func expectedCounts(a, b *Desired) map[OpKind]int {
	n := map[OpKind]int{}
	for _, k := range b.Keys() {
		nb, _ := b.Lookup(k)
		na, inA := a.Lookup(k)
		if !inA {
			n[AddService]++
			n[AddDest] += len(nb.Dests)
			continue
		}
		if na.Service.Scheduler != nb.Service.Scheduler || na.Service.Flags != nb.Service.Flags ||
			na.Service.PersistenceTimeout != nb.Service.PersistenceTimeout {
			n[UpdateService]++
		}
		old := map[netip.AddrPort]Dest{}
		for _, d := range na.Dests {
			old[d.Addr] = d
		}
		for _, d := range nb.Dests {
			if o, ok := old[d.Addr]; !ok {
				n[AddDest]++
			} else if o != d {
				n[UpdateDest]++
			}
			delete(old, d.Addr)
		}
		n[DelDest] += len(old)
	}
	for _, k := range a.Keys() {
		if _, ok := b.Lookup(k); !ok {
			n[DelService]++
		}
	}
	maps.DeleteFunc(n, func(_ OpKind, c int) bool { return c == 0 })
	return n
}

func TestReconcileProperties(t *testing.T) {
	foreign := []VirtualServer{
		{Service: Service{ServiceKey: vip(TCP, "192.0.2.1:22"), Scheduler: RoundRobin}, Dests: []Dest{{Addr: netip.MustParseAddrPort("192.0.2.9:22"), Weight: 1, Method: NAT}}},
		{Service: Service{ServiceKey: ServiceKey{Family: IPv4, FWMark: 42}, Scheduler: RoundRobin}},
	}
	rapid.Check(t, func(t *rapid.T) {
		k := newFakeKernel()
		for _, vs := range foreign {
			k.seed(vs)
		}
		r := NewReconciler(k, nil)
		a, err := NewDesired(genDesired(t, "a")...)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewDesired(genDesired(t, "b")...)
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			from, to *Desired
		}{{&Desired{}, a}, {a, b}, {b, b}} {
			rep, err := r.Reconcile(context.Background(), step.to)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantState(step.to, foreign...), k.state(), cmpOpts); diff != "" {
				t.Fatalf("kernel state (-want +got):\n%s", diff)
			}
			got := map[OpKind]int{}
			for kind := AddService; kind <= DelDest; kind++ {
				if c := rep.Count(kind); c > 0 {
					got[kind] = c
				}
			}
			if diff := cmp.Diff(expectedCounts(step.from, step.to), got, cmpOpts); diff != "" {
				t.Fatalf("op counts (-want +got):\n%s\nops: %v", diff, opStrings(rep.Ops))
			}
			if diff := cmp.Diff([]ServiceKey{foreign[0].Service.Key(), foreign[1].Service.Key()}, rep.Foreign, cmpOpts); diff != "" {
				t.Fatalf("foreign (-want +got):\n%s", diff)
			}
		}
	})
}

// TestReconcileBatch: the kernel gets the whole plan in one Apply, one
// batch per service that changes, each holding all of that service's ops;
// a kernel that refuses a batch whole has none of its ops reported as
// applied, and the OpError names the op it refused.
func TestReconcileBatch(t *testing.T) {
	want := mustDesired(t, baseline()[:2]...)
	k := newFakeKernel()
	r := NewReconciler(k, nil)
	rep := reconcile(t, r, want)
	if len(k.applies) != 1 || len(rep.Ops) == 0 {
		t.Fatalf("%d Apply calls for %d ops, want one", len(k.applies), len(rep.Ops))
	}
	var keys []ServiceKey
	var ops []Op
	for _, b := range k.applies[0] {
		keys = append(keys, b.Key)
		for _, op := range b.Ops {
			if op.Service.Key() != b.Key {
				t.Errorf("batch of %v holds %v", b.Key, op)
			}
		}
		ops = append(ops, b.Ops...)
	}
	if diff := cmp.Diff(want.Keys(), keys, cmpOpts); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(opStrings(rep.Ops), opStrings(ops)); diff != "" {
		t.Errorf("ops sent and reported (-reported +sent):\n%s", diff)
	}

	// Two weights of one service and a deleted service: two batches.
	vss := baseline()[:2]
	vss[0].Dests = []Dest{rs("10.1.0.1:80", 7), rs("10.1.0.2:80", 8)}
	rep = reconcile(t, r, mustDesired(t, vss[0]))
	if len(k.applies) != 2 || len(k.applies[1]) != 2 || len(k.applies[1][0].Ops) != 2 || len(rep.Ops) != 3 {
		t.Fatalf("plan %v, want the two updates in one batch and the deletion in another", k.applies[1:])
	}
	if rep := reconcile(t, r, mustDesired(t, vss[0])); len(rep.Ops) != 0 || len(k.applies) != 2 {
		t.Errorf("nothing to do: sent %v in %d calls", rep.Ops, len(k.applies)-2)
	}

	// Refused whole: the first service's batch (ops 0-2) is applied, the
	// second's refused at its second op (op 4): nothing of it is.
	k = newFakeKernel()
	k.whole, k.failAt = true, 4
	rep, err := NewReconciler(k, nil).Reconcile(context.Background(), want)
	var opErr *OpError
	if !errors.As(err, &opErr) || opErr.Index != 4 || opErr.Total != 5 || opErr.Op.Kind != AddDest || !errors.Is(err, errInjects) {
		t.Fatalf("err = %v, want the OpError of op 5 of 5", err)
	}
	if len(rep.Ops) != 3 {
		t.Errorf("report lists %d applied ops, want the first batch's 3", len(rep.Ops))
	}
	if diff := cmp.Diff(wantState(mustDesired(t, baseline()[0])), k.state(), cmpOpts); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}
