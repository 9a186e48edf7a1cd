package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"tandem/internal/lab"
)

// startNginx runs Debian's nginx in node, answering every request with the
// node's name.
func startNginx(t *testing.T, l *lab.Lab, node string) *lab.Proc {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed (apt-get install nginx-light); sudo test/run installs it")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	text := lab.NginxConf(dir, fmt.Sprintf(`    server {
        listen 80;
        location / {
            return 200 "%s\n";
        }
    }`, node))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := l.Start(node, bin, "-c", conf, "-p", dir)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nginx on "+node, 5*time.Second, func() bool {
		return l.Do(node, func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:80", 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})
	return p
}

// carryVIP prepares a DR real server with `tandem realserver up`: the VIP
// on lo, arp_ignore/arp_announce set.
func carryVIP(t *testing.T, l *lab.Lab, node string, vip netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, node, tandemBin, "realserver", "up", "--vip", vip.String(), "--state-dir", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem realserver up on %s: %v: %s", node, err, out)
	}
}

// get fetches http://addr/ from the client node and returns the body (the
// real server's name) or an error.
func get(l *lab.Lab, addr netip.AddrPort) (string, error) {
	return l.HTTPGet("client", addr, "/", 2*time.Second)
}

func (d *daemon) healthy(vsName, rsIP string) bool {
	st, err := d.status()
	if err != nil {
		return false
	}
	for _, vs := range st.VirtualServers {
		if vs.Name != vsName {
			continue
		}
		for _, rs := range vs.RealServers {
			if rs.IP == rsIP {
				return rs.Healthy
			}
		}
	}
	return false
}

// TestSeed000HealthCheck is the seeds' health-check test on seed000's DR
// pair with its configurations unmodified and nginx as real servers, on
// each DR data plane: the client is served through the VIP; the serving
// real server's nginx stops and it leaves the pool within delay_loop +
// retries, the client being served by the other with no failed request;
// it starts again and comes back.
func TestSeed000HealthCheck(t *testing.T) { forPlanes(t, seed000HealthCheck) }

func seed000HealthCheck(t *testing.T, dp string) {
	y := lab.Seed000()
	spec := y.Spec()
	clients := moreAddrs(&spec, y.Client.Name, netip.MustParseAddr("172.16.7.101"), 40)
	l := lab.NewT(t, spec)
	flags := onPlane(t, l, y, dp)
	vip := y.VIPs[0]
	nginx := map[string]*lab.Proc{}
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		nginx[rs] = startNginx(t, l, rs)
	}
	dir1 := startTandem(t, l, "dir1", seedConf(t, "seed000-lvs-dr-master.conf"), flags...)
	dir2 := startTandem(t, l, "dir2", seedConf(t, "seed000-lvs-dr-backup.conf"), flags...)
	waitFor(t, "dir1 MASTER", 10*time.Second, func() bool { return dir1.state("VI_1") == "MASTER" && dir2.state("VI_1") == "BACKUP" })
	const vs = "172.16.7.5:80"
	waitFor(t, "both real servers healthy", 15*time.Second, func() bool {
		return dir1.healthy(vs, "172.16.7.3") && dir1.healthy(vs, "172.16.7.4")
	})
	target := netip.AddrPortFrom(vip, 80)
	ip := map[string]string{"rs1": "172.16.7.3", "rs2": "172.16.7.4"}
	var first string
	waitFor(t, "the client served through the VIP", 10*time.Second, func() bool {
		var err error
		first, err = get(l, target)
		return err == nil
	})
	// persistence_timeout 60: the same client stays on one real server.
	for i := 0; i < 10; i++ {
		got, err := get(l, target)
		if err != nil || got != first {
			t.Fatalf("request %d: %q, %v; persistence should keep the client on %s", i, got, err, first)
		}
	}
	// wrr 3:1 (rs1 weight 3): 40 clients, each kept on its server, each
	// address a draw of the flow hash (jhash, as nft's DR and XDP have it:
	// the same split on both, 31:9 for .101-.140; consecutive addresses
	// differ in one byte, which the hash spreads less evenly than a mean
	// of 30:10 with sd 2.7 would say). rr's 1:1 would give about 20:20.
	waitFor(t, "both real servers in the data plane", 5*time.Second, func() bool {
		c := dir1.packets(t)
		_, ok1 := c[ip["rs1"]+":80"]
		_, ok2 := c[ip["rs2"]+":80"]
		return ok1 && ok2
	})
	split := map[string]int{}
	for _, c := range clients {
		got, err := l.HTTPGetFrom("client", c, target, "/", 2*time.Second)
		again, err2 := l.HTTPGetFrom("client", c, target, "/", 2*time.Second)
		if err != nil || err2 != nil || got != again {
			t.Errorf("client %v: %q, %v then %q, %v; want one server twice", c, got, err, again, err2)
		}
		split[got]++
	}
	t.Logf("wrr 3:1 with persistence, 40 clients: %v", split)
	if split[""] > 0 || split["rs2"] == 0 || split["rs1"] < 2*split["rs2"] {
		t.Errorf("wrr 3:1 over 40 clients: %v, want about 30:10", split)
	}
	other, ok := map[string]string{"rs1": "rs2", "rs2": "rs1"}[first]
	if !ok {
		t.Fatalf("the VIP answered %q, not a real server", first)
	}

	start := time.Now()
	if err := nginx[first].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// TCP_CHECK, delay_loop 6, retry 3, delay_before_retry 3, connect
	// refused at once: down within 6 + 3*3 s.
	took := waitFor(t, first+" out of the pool", 25*time.Second, func() bool { return !dir1.healthy(vs, ip[first]) })
	t.Logf("health check: %s left the pool %v after nginx stopped", first, took)
	if took > 16*time.Second {
		t.Errorf("%s left after %v, more than delay_loop + retry*delay_before_retry (15 s)", first, took)
	}
	waitFor(t, "the client served by "+other, 5*time.Second, func() bool {
		got, err := get(l, target)
		return err == nil && got == other
	})
	for i := 0; i < 10; i++ {
		if got, err := get(l, target); err != nil || got != other {
			t.Errorf("after removal, request %d: %q, %v; want %s", i, got, err, other)
		}
	}
	nginx[first] = startNginx(t, l, first)
	took = waitFor(t, first+" back in the pool", 15*time.Second, func() bool { return dir1.healthy(vs, ip[first]) })
	t.Logf("health check: %s back %v after nginx started (%v since it stopped)", first, took, time.Since(start))
}

// moreAddrs gives node of spec n more addresses on its first interface,
// first and those after it, in that interface's subnet, and returns them.
func moreAddrs(spec *lab.Spec, node string, first netip.Addr, n int) []netip.Addr {
	var out []netip.Addr
	for i := range spec.Nodes {
		if spec.Nodes[i].Name != node {
			continue
		}
		ifc := &spec.Nodes[i].Ifaces[0]
		for a := first; len(out) < n; a = a.Next() {
			ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(a, ifc.Addrs[0].Bits()))
			out = append(out, a)
		}
	}
	return out
}
