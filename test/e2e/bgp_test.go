package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// bgpConf is a DR virtual server on 192.0.2.80 with one real server,
// announced to the router 10.78.0.254 over BGP; extra goes in the bgp
// block.
func bgpConf(extra string) string {
	return `virtual_server 192.0.2.80 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.78.1.10 80 {
    TCP_CHECK {
      connect_timeout 1
      retry 0
    }
  }
}
bgp {
  router_id 10.78.0.1
  local_as 65001
  neighbor 10.78.0.254 {
    remote_as 65000
    hold_time 3
    keepalive_time 1
  }
  community 65001:10
  graceful_shutdown_delay 5
` + extra + "}\n"
}

const bgpRouter = `protocol bgp director {
  local 10.78.0.254 as 65000;
  neighbor 10.78.0.1 as 65001;
  passive on;
  hold time 3;
  keepalive time 1;
  ipv4 { import all; export none; };
}
`

// bgpOf is the speaker's part of d's status (nil: none, or no status).
func bgpOf(d *daemon) *api.BGPStatus {
	st, err := d.status()
	if err != nil {
		return nil
	}
	return st.BGP
}

// TestBGPAnnounce runs tandem with a bgp block against bird: the VIP is
// announced once its virtual server has quorum, withdrawn when the real
// server stops answering and announced again when it is back; a reload
// that adds a neighbor leaves the running session alone; tandem drain
// withdraws it gracefully until --undo; SIGTERM marks
// the route GRACEFUL_SHUTDOWN while the data plane still forwards, then
// withdraws it before the data plane goes.
func TestBGPAnnounce(t *testing.T) {
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "router", Ifaces: []lab.Iface{{Name: "eth0", Switch: "up", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.254/24")}}}},
		{Name: "dir", Ifaces: []lab.Iface{
			{Name: "eth0", Switch: "up", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}},
			{Name: "eth1", Switch: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.1.1/24")}},
		}},
		{Name: "rs", Ifaces: []lab.Iface{{Name: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.1.10/24")}}}},
	}})
	bird := lab.StartBird(t, l, "router", netip.MustParseAddr("10.78.0.254"), bgpRouter)
	vip := netip.MustParsePrefix("192.0.2.80/32")
	nginx := startNginx(t, l, "rs")
	d := startTandem(t, l, "dir", writeConf(t, "bgp.conf", bgpConf("")), "--dataplane", "nft")

	bird.WaitRoute(t, vip, "the VIP announced", 60*time.Second, lab.HasBGPRoute)
	if r := bird.Route(t, vip); !strings.Contains(r, "(65001,10)") || !strings.Contains(r, "BGP.next_hop: 10.78.0.1") {
		t.Errorf("the route lacks its community or next hop:\n%s", r)
	}
	waitFor(t, "the status to show the session and the VIP", 10*time.Second, func() bool {
		b := bgpOf(d)
		return b != nil && len(b.Neighbors) == 1 && b.Neighbors[0].State == "established" && b.Neighbors[0].PrefixesSent == 1 &&
			len(b.VIPs) == 1 && b.VIPs[0] == api.BGPVIPStatus{VIP: "192.0.2.80", Announced: true}
	})
	since := bgpOf(d).Neighbors[0].Since

	// Quorum lost: the only real server stops answering.
	if err := nginx.Kill(); err != nil {
		t.Fatal(err)
	}
	bird.WaitRoute(t, vip, "the VIP withdrawn on quorum loss", 30*time.Second, lab.NoRoute)
	if b := bgpOf(d); b == nil || b.VIPs[0].Announced {
		t.Errorf("status after the quorum loss: %+v", b)
	}
	startNginx(t, l, "rs")
	bird.WaitRoute(t, vip, "the VIP announced again with quorum back", 30*time.Second, lab.HasBGPRoute)

	// A reload adds a neighbor (no router answers there): the running
	// session is not touched.
	if err := os.WriteFile(d.conf, []byte(bgpConf("  neighbor 10.78.0.253 {\n    remote_as 65000\n  }\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	reloadApplied(t, d)
	waitFor(t, "the new neighbor in the status", 10*time.Second, func() bool {
		b := bgpOf(d)
		return b != nil && len(b.Neighbors) == 2
	})
	for _, n := range bgpOf(d).Neighbors {
		if n.Address == "10.78.0.254" && (n.State != "established" || !n.Since.Equal(since)) {
			t.Errorf("the reload touched the running session: %+v (established since %v before)", n, since)
		}
	}
	if r := bird.Route(t, vip); !lab.HasBGPRoute(r) {
		t.Errorf("the route went with the reload:\n%s", bird.Proc.Output())
	}

	// tandem drain: GRACEFUL_SHUTDOWN, then the withdraw, with tandem
	// running; the VIP stays out until the undo.
	drain := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := l.Command(ctx, "dir", tandemBin, append([]string{"drain", "--socket", d.socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tandem drain %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	marked := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if out, _ := bird.Birdc("show", "route", "all", "for", vip.String()); strings.Contains(out, "(65535,0)") {
				marked <- true
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		marked <- false
	}()
	if out := drain(); out != "drained; withdrawn: 192.0.2.80\n" {
		t.Errorf("tandem drain said %q", out)
	}
	if !<-marked {
		t.Error("tandem drain: bird never saw the route marked (65535,0)")
	}
	if r := bird.Route(t, vip); !lab.NoRoute(r) {
		t.Errorf("the route is still there after tandem drain returned:\n%s", r)
	}
	if b := bgpOf(d); b == nil || !b.Drained || b.VIPs[0].Announced || len(b.Neighbors) != 2 || b.Neighbors[1].State != "established" {
		t.Errorf("status after the drain: %+v", b)
	}
	if out := drain("--undo"); out != "back in rotation; announced: 192.0.2.80\n" {
		t.Errorf("tandem drain --undo said %q", out)
	}
	bird.WaitRoute(t, vip, "the VIP back after the undo, without 65535:0", 15*time.Second, func(r string) bool {
		return lab.HasBGPRoute(r) && !strings.Contains(r, "(65535,0)")
	})

	// SIGTERM: GRACEFUL_SHUTDOWN with the data plane still in place,
	// then the withdraw, then the data plane goes.
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the route marked GRACEFUL_SHUTDOWN (65535,0)", 10*time.Second, func() bool {
		return strings.Contains(bird.Route(t, vip), "(65535,0)")
	})
	if tables := nftTables(t, l, "dir"); !strings.Contains(tables, "tandem") {
		t.Errorf("the data plane was removed during the graceful shutdown: tables %q", tables)
	}
	bird.WaitRoute(t, vip, "the VIP withdrawn after the delay", 15*time.Second, lab.NoRoute)
	select {
	case <-d.proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("tandem still running 30 s after SIGTERM:\n%s", d.proc.Output())
	}
	if err := d.proc.Wait(); err != nil {
		t.Errorf("tandem exited with %v:\n%s", err, d.proc.Output())
	}
	if tables := nftTables(t, l, "dir"); strings.Contains(tables, "tandem") {
		t.Errorf("the data plane outlived tandem: tables %q", tables)
	}
	out := d.proc.Output()
	for _, want := range []string{"graceful shutdown: routes marked 65535:0", "VIP withdrawn"} {
		if !strings.Contains(out, want) {
			t.Errorf("tandem's log lacks %q", want)
		}
	}
}
