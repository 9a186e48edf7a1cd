package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

const xdpTunConf = `vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 61
    priority 200
    advert_int 1
    virtual_ipaddress {
        10.86.9.1/32
        10.86.9.2/32
    }
}
%s
%s
`

const xdpTunVS = `virtual_server %s 80 {
    delay_loop 1
    lb_algo rr
    lb_kind %s
    protocol TCP
    real_server 10.86.3.2 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.86.3.3 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}`

// TestXDPTun: `tandem run --dataplane xdp` forwards two VIPs, one over
// IPIP and one over GUE, to real servers on another subnet behind a
// router, which `tandem realserver up --tun` prepared (this kernel has
// neither ipip nor fou: with Tandem's XDP decapsulator); the clients' packets come in on the VRRP instance's
// interface, which reaches no real server (the daemon attaches the
// program there because it carries the VIPs). HTTP requests all succeed
// and spread over both servers; once a stopped server is found down, no
// request fails.
func TestXDPTun(t *testing.T) {
	l := lab.NewT(t, lab.RoutedTUN(86)) // the VRRP instance holds the VIPs, on dir's eth0
	l.XDPReadyT(t, []string{"client", "rs1", "rs2"}, []string{"dir"}, []string{"f", "b"})
	ipip, gue := netip.MustParseAddr("10.86.9.1"), netip.MustParseAddr("10.86.9.2")
	nginx := map[string]*lab.Proc{}
	bpf := lab.BPFFST(t)
	for _, rs := range []string{"rs1", "rs2"} {
		nginx[rs] = startNginx(t, l, rs)
		prepareTUN(t, l, rs, bpf, ipip, gue)
	}
	conf := writeConf(t, "tun.conf", fmt.Sprintf(xdpTunConf,
		fmt.Sprintf(xdpTunVS, ipip, "TUN"), fmt.Sprintf(xdpTunVS, gue, "TUN type gue port 6080 csum")))
	// The XDP data plane pins its maps on a BPF file system: one of the
	// daemon's own, in a mount namespace of its own.
	via := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t bpf bpf /sys/fs/bpf && exec "$@"`, "sh"}
	m := startTandemVia(t, l, "dir", conf, via, "--dataplane", "xdp")
	waitFor(t, "dir MASTER", 15*time.Second, func() bool { return m.state("VI_1") == "MASTER" })
	vips := []netip.Addr{ipip, gue}
	for _, v := range vips {
		vs := v.String() + ":80"
		waitFor(t, "both real servers of "+vs+" healthy", 15*time.Second, func() bool {
			return m.healthy(vs, "10.86.3.2") && m.healthy(vs, "10.86.3.3")
		})
		target := netip.AddrPortFrom(v, 80)
		waitFor(t, "the client served by "+vs, 10*time.Second, func() bool { _, err := get(l, target); return err == nil })
		got := spread(l, target, 40)
		t.Logf("%s (rr TUN, flow hash), 40 requests: %v", vs, got)
		if got[""] > 0 || got["rs1"] < 8 || got["rs2"] < 8 {
			t.Errorf("%s: %v, want both servers well used and no failure", vs, got)
		}
	}
	if list := lvsList(t, l, m); strings.Count(list, "Tunnel") < 4 {
		t.Errorf("tandem lvs list shows fewer than 4 Tunnel destinations:\n%s", list)
	}

	// rs1's nginx stops: once its checks find it down, every request
	// goes to rs2, none fails.
	if err := nginx["rs1"].Stop(5 * time.Second); err != nil {
		t.Logf("stop nginx on rs1: %v", err)
	}
	for _, v := range vips {
		vs := v.String() + ":80"
		waitFor(t, "rs1 of "+vs+" down", 15*time.Second, func() bool { return !m.healthy(vs, "10.86.3.2") })
	}
	for _, v := range vips {
		got := spread(l, netip.AddrPortFrom(v, 80), 30)
		t.Logf("%v:80 after rs1 stopped, 30 requests: %v", v, got)
		if got["rs2"] != 30 {
			t.Errorf("%v:80 after rs1 stopped: %v, want all 30 on rs2", v, got)
		}
	}
}

// prepareTUN runs `tandem realserver up --tun` for GUE on port 6080 (IPIP
// is decapsulated too) with vips on node, and its down at the end of t.
func prepareTUN(t *testing.T, l *lab.Lab, node, bpf string, vips ...netip.Addr) {
	t.Helper()
	var list []string
	for _, v := range vips {
		list = append(list, v.String())
	}
	args := []string{"--vip", strings.Join(list, ","), "--tun", "--tun-type", "gue", "--tun-port", "6080", "--bpf-dir", bpf, "--state-dir", t.TempDir()}
	realserver := func(verb string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return l.Command(ctx, node, tandemBin, append([]string{"realserver", verb}, args...)...).CombinedOutput()
	}
	if out, err := realserver("up"); err != nil {
		t.Fatalf("tandem realserver up --tun on %s: %v: %s", node, err, out)
	}
	t.Cleanup(func() {
		if out, err := realserver("down"); err != nil {
			t.Errorf("tandem realserver down --tun on %s: %v: %s", node, err, out)
		}
	})
}
