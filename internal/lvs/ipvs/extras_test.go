package ipvs

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lvs"
)

// sipService is a persistent UDP service with the SIP persistence engine
// (keepalived's persistence_engine sip).
func sipService(pe string) lvs.VirtualServer {
	return lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.UDP, VIP: netip.MustParseAddr("10.0.0.5"), Port: 5060},
		Scheduler: lvs.RoundRobin, PersistenceTimeout: 60, PersistenceEngine: pe},
		Dests: []lvs.Dest{{Addr: netip.MustParseAddrPort("10.0.1.1:5060"), Weight: 1}}}
}

// TestPersistenceEngineFake: a service with a persistence engine is
// created and updated through Tandem's own socket, one without through
// cloudflare/ipvs (which drops the engine, as the kernel does for an
// update that names none); the engine read back makes a second reconcile
// send nothing.
func TestPersistenceEngineFake(t *testing.T) {
	k, c := fakeKernel(t)
	r := lvs.NewReconciler(k, k.Owns)
	steps := []struct {
		pe    string
		calls []string
	}{
		{"sip", []string{"put-service 1 10.0.0.5 pe=sip", "create-dest 10.0.0.5 10.0.1.1:5060"}},
		{"sip", nil},
		{"", []string{"update-service 10.0.0.5"}},
		{"sip", []string{"put-service 2 10.0.0.5 pe=sip"}},
	}
	for i, st := range steps {
		c.calls = nil
		want := mustDesired(t, sipService(st.pe))
		reconcile(t, r, want)
		if diff := cmp.Diff(st.calls, c.calls); diff != "" {
			t.Fatalf("step %d (pe %q): requests (-want +got):\n%s", i, st.pe, diff)
		}
		if diff := cmp.Diff(wantState(want), kernelState(t, k), cmpOpts); diff != "" {
			t.Fatalf("step %d: read back (-want +got):\n%s", i, diff)
		}
	}
}

// TestTimeoutsFake: the first change remembers IPVS's timeouts; a zero
// timeout is the remembered one; no timeouts at all puts them back, and so
// does Close.
func TestTimeoutsFake(t *testing.T) {
	k, c := fakeKernel(t)
	c.cfg.TCPTimeout, c.cfg.TCPFinTimeout, c.cfg.UDPTimeout = 900, 120, 300
	if err := k.SetTimeouts(lvs.Timeouts{}); err != nil || len(c.calls) != 0 {
		t.Fatalf("nothing to change: err %v, requests %v", err, c.calls)
	}
	if err := k.SetTimeouts(lvs.Timeouts{TCP: 7200 * time.Second, UDP: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := k.SetTimeouts(lvs.Timeouts{TCPFin: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"set-config 7200 120 60", "set-config 900 30 300", "set-config 900 120 300"}
	if diff := cmp.Diff(want, c.calls); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestFlushAllFake: FlushAll empties the table, foreign services
// included, and Tandem forgets the services it had made.
func TestFlushAllFake(t *testing.T) {
	k, c := fakeKernel(t)
	r := lvs.NewReconciler(k, k.Owns)
	want := mustDesired(t, sipService(""))
	reconcile(t, r, want)
	foreign := toService(lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.MustParseAddr("10.9.9.9"), Port: 80}, Scheduler: lvs.RoundRobin})
	if err := c.CreateService(foreign); err != nil {
		t.Fatal(err)
	}
	if err := k.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if len(c.svcs) != 0 || k.Owns(want.Keys()[0]) {
		t.Errorf("after FlushAll: %d services, owns %v: %v", len(c.svcs), k.Owns(want.Keys()[0]), c.calls)
	}
}

// TestPersistenceEngine (IPVS VM): the SIP persistence engine
// (ip_vs_pe_sip) reaches the kernel, ipvsadm shows it ("pe sip"), the
// backend reads it back, and dropping it from the configuration drops it
// from the service in place.
func TestPersistenceEngine(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	k := newKernel(t, l, "dir", filepath.Join(t.TempDir(), "state"))
	r := lvs.NewReconciler(k, k.Owns)
	want := mustDesired(t, sipService("sip"))
	reconcile(t, r, want)
	checkState(t, l, k, want)
	if out := run(t, l, "dir", "ipvsadm", "-Ln"); !strings.Contains(out, "pe sip") {
		t.Errorf("ipvsadm -Ln shows no persistence engine:\n%s", out)
	}
	if rep := reconcile(t, r, want); len(rep.Ops) != 0 {
		t.Errorf("second reconcile sent %v", rep.Ops)
	}
	want = mustDesired(t, sipService(""))
	if rep := reconcile(t, r, want); rep.Count(lvs.UpdateService) != 1 || len(rep.Ops) != 1 {
		t.Errorf("dropping the engine sent %v, want one service update", rep.Ops)
	}
	checkState(t, l, k, want)
	if out := run(t, l, "dir", "ipvsadm", "-Ln"); strings.Contains(out, "pe sip") {
		t.Errorf("ipvsadm -Ln still shows the persistence engine:\n%s", out)
	}
	// A persistence engine the kernel does not have is named.
	bad := sipService("nosuch")
	bad.Service.VIP = netip.MustParseAddr("10.0.0.6")
	_, err := r.Reconcile(t.Context(), mustDesired(t, sipService(""), bad))
	if err == nil || !strings.Contains(err.Error(), "ip_vs_pe_nosuch") {
		t.Errorf("unknown engine: err %v, want it to name module ip_vs_pe_nosuch", err)
	}
}

// TestTimeouts (IPVS VM): SetTimeouts changes what ipvsadm -L --timeout
// shows, leaves a timeout not given as it was, and Close puts back the
// kernel's own.
func TestTimeouts(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	k := newKernel(t, l, "dir", "")
	timeouts := func() string {
		return strings.TrimSpace(run(t, l, "dir", "ipvsadm", "-L", "--timeout"))
	}
	orig, err := k.Timeouts()
	if err != nil {
		t.Fatal(err)
	}
	before := timeouts()
	if err := k.SetTimeouts(lvs.Timeouts{TCP: 7200 * time.Second, UDP: 45 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got, err := k.Timeouts()
	if err != nil {
		t.Fatal(err)
	}
	if want := (lvs.Timeouts{TCP: 7200 * time.Second, TCPFin: orig.TCPFin, UDP: 45 * time.Second}); got != want {
		t.Errorf("timeouts %+v, want %+v", got, want)
	}
	if want := "Timeout (tcp tcpfin udp): 7200 " + strings.Fields(before)[len(strings.Fields(before))-2] + " 45"; timeouts() != want {
		t.Errorf("ipvsadm: %q, want %q", timeouts(), want)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if after := timeouts(); after != before {
		t.Errorf("after Close: %q, want the kernel's own %q", after, before)
	}
}

// TestFlushAll (IPVS VM): FlushAll removes every service, one made with
// ipvsadm included, as lvs_flush asks.
func TestFlushAll(t *testing.T) {
	requireIPVS(t)
	l := oneNode(t)
	k := newKernel(t, l, "dir", filepath.Join(t.TempDir(), "state"))
	r := lvs.NewReconciler(k, k.Owns)
	reconcile(t, r, mustDesired(t, testServices()...))
	run(t, l, "dir", "ipvsadm", "-A", "-t", "10.9.9.9:80", "-s", "rr")
	if err := k.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if out := run(t, l, "dir", "ipvsadm", "-Sn"); out != "" {
		t.Errorf("after FlushAll, ipvsadm -Sn shows:\n%s", out)
	}
}
