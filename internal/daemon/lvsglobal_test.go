package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"tandem/internal/check"
	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/nft"
)

// directorLab is a lab of one node, d, on 10.0.0.254/24, for a data plane.
func directorLab(t *testing.T) *lab.Lab {
	t.Helper()
	return lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "d", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.254/24")}}}}}})
}

// nftDirector builds directorLab and returns an opener of the nftables
// data plane in its node; what it opens is closed at the end of the test.
func nftDirector(t *testing.T) func() *nft.Kernel {
	t.Helper()
	l := directorLab(t)
	ns, err := netns.GetFromName(l.NSName("d"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return func() *nft.Kernel {
		k, err := nft.New(nft.WithNetNS(int(ns)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
}

// TestNFTPlaneGlobals: on the nftables data plane (a real one, in a lab
// namespace), a virtual server with persistence_engine is programmed
// without it, and neither a second reconcile nor a restarted process
// changes it (the engine is not asked for, so its absence is no
// difference); lvs_timeouts and
// persistence_engine are warned about at their positions, naming the data
// plane; lvs_flush at start deletes what Tandem's tables held; and stop
// deletes the tables.
func TestNFTPlaneGlobals(t *testing.T) {
	open := nftDirector(t)
	cfg := lab.ParseConfig(t, `global_defs {
    lvs_flush
    lvs_timeouts tcp 7200 udp 60
}
virtual_server 10.0.0.1 5060 {
    protocol UDP
    lb_algo rr
    lb_kind NAT
    persistence_timeout 60
    persistence_engine sip
    real_server 10.0.1.1 5060 {
    }
}
`)
	var logs lab.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	k := open()
	b := &balancer{cfg: cfg, log: log, name: DataplaneNFT, kernel: k, rec: lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true }), pool: lvs.NewPool()}
	b.configurePlane(cfg)
	for _, want := range []string{
		`msg="lvs_timeouts: the nftables data plane has no IPVS connection table`,
		`pos=t.conf:1:1`,
		`msg="persistence_engine: the nftables data plane has no persistence engines; ignored, the IPVS data plane applies it" dataplane=nft vs=10.0.0.1:5060 engine=sip pos=t.conf:5:1`,
	} {
		if logs.Count(want) != 1 {
			t.Errorf("log has not %q once:\n%s", want, logs.String())
		}
	}
	ctx := context.Background()
	b.reconcile(ctx)
	if b.ops != 1 {
		t.Fatalf("first reconcile: %d ops, want the service", b.ops)
	}
	b.reconcile(ctx)
	if b.ops != 1 {
		t.Fatalf("second reconcile sent %d more ops: the engine nftables lacks reads as a difference", b.ops-1)
	}

	// A restart with lvs_flush: the new Kernel finds the service, and
	// startPlane deletes it before the first reconcile.
	k2 := open()
	if svcs, err := k2.Services(); err != nil || len(svcs) != 1 {
		t.Fatalf("restart finds %v, %v; want the service", svcs, err)
	}
	b2 := &balancer{cfg: cfg, log: log, name: DataplaneNFT, kernel: k2}
	b2.startPlane(cfg, false) // a reload that opens the data plane: no flush
	if svcs, err := k2.Services(); err != nil || len(svcs) != 1 {
		t.Fatalf("lvs_flush on a reload: %v, %v; want the service kept", svcs, err)
	}
	b2.startPlane(cfg, true)
	if svcs, err := k2.Services(); err != nil || len(svcs) != 0 {
		t.Fatalf("after lvs_flush: %v, %v; want nothing", svcs, err)
	}
	if !strings.Contains(logs.String(), "lvs_flush: data plane flushed at start") {
		t.Errorf("flush not logged:\n%s", logs.String())
	}

	// Without lvs_flush the service a restart finds stays for the
	// reconciler to adopt.
	b.reconcile(ctx)
	cfg.Global.LVSFlush = false
	b2.startPlane(cfg, true)
	if svcs, err := k2.Services(); err != nil || len(svcs) != 1 {
		t.Fatalf("without lvs_flush: %v, %v; want the service kept", svcs, err)
	}
	// ... and adopts it as it is: what nftables read back from its
	// tables (no engine) is what it is asked for.
	b2.rec, b2.pool = lvs.NewReconciler(k2, func(lvs.ServiceKey) bool { return true }), lvs.NewPool()
	b2.reconcile(ctx)
	if b2.ops != 0 {
		t.Errorf("the restarted process changed the service it found (%d ops)", b2.ops)
	}
	if err := b2.stopPlane(); err != nil {
		t.Fatal(err)
	}
	if svcs, err := open().Services(); err != nil || len(svcs) != 0 {
		t.Fatalf("after stop: %v, %v; want nothing", svcs, err)
	}
}

// TestRestartChangesNothing: a Tandem started where a crashed one left
// its service programmed (nftables, in a lab namespace; the XDP data plane
// in TestXDPLifecycle) changes nothing: its first reconcile waits for the
// checks' initial states (real servers start up, as keepalived's do)
// instead of taking every real server out until their events come.
func TestRestartChangesNothing(t *testing.T) {
	open := nftDirector(t)
	cfg := lab.ParseConfig(t, `virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 80 {
    }
    real_server 10.0.1.2 80 {
    }
}
`)
	all := func(lvs.ServiceKey) bool { return true }
	// The crashed run's work: the service with both servers, left behind.
	full := lvs.NewPool()
	for _, rs := range cfg.VirtualServers[0].RealServers {
		full.Weights[rs] = rs.Weight
	}
	d, err := lvs.FromConfig(cfg, full)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := lvs.NewReconciler(open(), all).Reconcile(context.Background(), d); err != nil || len(rep.Ops) != 3 {
		t.Fatalf("the first run's reconcile: %v, %v", rep.Ops, err)
	}

	k2 := open()
	reconciled := make(chan struct{}, 1)
	b := &balancer{cfg: cfg, log: slog.New(slog.DiscardHandler), name: DataplaneNFT, kernel: k2, rec: lvs.NewReconciler(k2, all),
		pool: lvs.NewPool(), checks: make(chan check.Event, 16), reloads: make(chan reloadReq),
		ready: func(map[netip.Addr]bool) {
			select {
			case reconciled <- struct{}{}:
			default:
			}
		}}
	if b.sched, err = check.NewScheduler(cfg.VirtualServers, b.log, check.Options{Events: b.checks}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); b.run(ctx) }()
	defer func() { cancel(); <-stopped }()
	select {
	case <-reconciled:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconcile within 10 s")
	}
	b.mu.Lock()
	ops := b.ops
	b.mu.Unlock()
	if ops != 0 {
		t.Errorf("the restarted run's first reconcile sent %d operations to a data plane already as configured, want 0", ops)
	}
}
