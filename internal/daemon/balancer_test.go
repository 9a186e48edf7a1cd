package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/api"
	"tandem/internal/check"
	"tandem/internal/config"
	"tandem/internal/lvs"
)

// tableKernel is a data plane holding fixed services and counters, whose
// Apply refuses everything: the table is read, never written.
type tableKernel struct {
	vss      []lvs.VirtualServer
	counters map[lvs.ServiceKey][]lvs.DestCounters
}

func (k *tableKernel) Services() ([]lvs.Service, error) {
	var out []lvs.Service
	for _, vs := range k.vss {
		out = append(out, vs.Service)
	}
	return out, nil
}

func (k *tableKernel) Dests(key lvs.ServiceKey) ([]lvs.Dest, error) {
	for _, vs := range k.vss {
		if vs.Service.Key() == key {
			return vs.Dests, nil
		}
	}
	return nil, nil
}

func (k *tableKernel) Apply(context.Context, lvs.Plan) (int, error) {
	return 0, errors.New("tableKernel is read-only")
}

func (k *tableKernel) Counters() (map[lvs.ServiceKey][]lvs.DestCounters, error) {
	return k.counters, nil
}

func (k *tableKernel) Close() error { return nil }

// TestTableCounters: `tandem lvs list` shows the counters the data plane
// reports through lvs.Kernel.Counters, whatever the backend: the balancer
// knows no concrete kernel type.
func TestTableCounters(t *testing.T) {
	ap := netip.MustParseAddrPort
	nat := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80},
		Scheduler: lvs.WeightedRoundRobin, Method: lvs.NAT}
	fwm := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 7}, Scheduler: lvs.RoundRobin, PersistenceTimeout: 60}
	k := &tableKernel{
		vss: []lvs.VirtualServer{
			{Service: nat, Dests: []lvs.Dest{{Addr: ap("10.0.1.1:8080"), Weight: 3}, {Addr: ap("10.0.1.2:8080"), Weight: 0}}},
			{Service: fwm, Dests: []lvs.Dest{{Addr: ap("10.0.1.3:0"), Weight: 1, Method: lvs.DR}}},
		},
		counters: map[lvs.ServiceKey][]lvs.DestCounters{
			nat.Key(): {{Addr: ap("10.0.1.1:8080"), ActiveConns: 5, InactiveConns: 2, Packets: 1000, Bytes: 123456}},
			fwm.Key(): {{Addr: ap("10.0.1.3:0"), ActiveConns: 1, Packets: 9, Bytes: 900}},
		},
	}
	b := &balancer{name: "fake", kernel: k}
	got, err := b.table()
	if err != nil {
		t.Fatal(err)
	}
	want := api.Table{Dataplane: "fake", Services: []api.TableService{
		{Protocol: "TCP", Address: "10.0.0.1:80", Scheduler: "wrr", Dests: []api.TableDest{
			{Address: "10.0.1.1:8080", Forward: "Masq", Weight: 3, ActiveConn: 5, InActConn: 2, Packets: 1000, Bytes: 123456},
			{Address: "10.0.1.2:8080", Forward: "Masq", Weight: 0},
		}},
		{Protocol: "FWM", Address: "7", Scheduler: "rr", Persistence: 60, Dests: []api.TableDest{
			{Address: "10.0.1.3:0", Forward: "Route", Weight: 1, ActiveConn: 1, Packets: 9, Bytes: 900},
		}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// With sorry_server_inhibit the sorry server stays in the pool, at weight
// 0, once quorum is back; without, it leaves.
func TestSorryServerInhibit(t *testing.T) {
	for _, inhibit := range []bool{false, true} {
		vs := &config.VirtualServer{SorryServer: &config.SorryServer{Inhibit: inhibit}}
		b := &balancer{pool: lvs.NewPool()}
		for _, k := range []check.EventKind{check.SorryServerIn, check.SorryServerOut} {
			b.apply(check.Event{Kind: k, VS: vs, Initial: true})
		}
		if in, kept := b.pool.Sorry[vs]; in || kept != inhibit {
			t.Errorf("sorry_server_inhibit %v, quorum back: in %v, kept %v", inhibit, in, kept)
		}
	}
}

// exclusiveKernel fails the test when two of its calls overlap: neither
// backend is safe for concurrent use.
type exclusiveKernel struct {
	tableKernel
	inside  atomic.Int32
	overlap atomic.Bool
}

func (k *exclusiveKernel) enter() func() {
	if k.inside.Add(1) > 1 {
		k.overlap.Store(true)
	}
	time.Sleep(100 * time.Microsecond) // long enough for an unguarded caller to come in
	return func() { k.inside.Add(-1) }
}

func (k *exclusiveKernel) Services() ([]lvs.Service, error) {
	defer k.enter()()
	return k.tableKernel.Services()
}

func (k *exclusiveKernel) Dests(key lvs.ServiceKey) ([]lvs.Dest, error) {
	defer k.enter()()
	return k.tableKernel.Dests(key)
}

func (k *exclusiveKernel) Counters() (map[lvs.ServiceKey][]lvs.DestCounters, error) {
	defer k.enter()()
	return k.tableKernel.Counters()
}

// TestTableReadsDuringReconcile: `tandem lvs list` and the status page
// read the table while the loop reconciles; the kernel sees one caller at
// a time (CI caught the nftables backend's cache replaced under a commit).
func TestTableReadsDuringReconcile(t *testing.T) {
	k := &exclusiveKernel{}
	b := &balancer{name: "fake", kernel: k, cfg: &config.Config{}, pool: lvs.NewPool(), log: slog.New(slog.DiscardHandler)}
	b.rec = lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			b.reconcile(t.Context())
		}
	}()
	for range 200 {
		if _, err := b.table(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if k.overlap.Load() {
		t.Error("a table read and a reconcile called the kernel at the same time")
	}
}
