package ipvs

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/realserver"
)

// tunLab: the client and the director on one subnet (front, 10.1.0.0/24),
// the real servers on another (back, 10.2.0.0/24) behind a router, so
// that only encapsulated packets can reach them: LVS-TUN's reason to be.
// The director holds the VIP as VRRP would; the real servers answer the
// client directly, through the router.
func tunLab(t *testing.T) (netip.Addr, *lab.Lab) {
	t.Helper()
	p := netip.MustParsePrefix
	front := func(addr string) lab.Iface {
		return lab.Iface{Name: "eth0", Switch: "front", Addrs: []netip.Prefix{p(addr)}}
	}
	back := func(name, addr string) lab.Iface {
		return lab.Iface{Name: name, Switch: "back", Addrs: []netip.Prefix{p(addr)}}
	}
	toBack := lab.Route{Dst: p("10.2.0.0/24"), Via: netip.MustParseAddr("10.1.0.254")}
	viaRouter := lab.Route{Via: netip.MustParseAddr("10.2.0.254")}
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "client", Ifaces: []lab.Iface{front("10.1.0.100/24")}},
		{Name: "dir", Ifaces: []lab.Iface{front("10.1.0.1/24")}, Routes: []lab.Route{toBack}},
		{Name: "router", Ifaces: []lab.Iface{front("10.1.0.254/24"), back("eth1", "10.2.0.254/24")},
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
		{Name: "rs1", Ifaces: []lab.Iface{back("eth0", "10.2.0.11/24")}, Routes: []lab.Route{viaRouter}},
		{Name: "rs2", Ifaces: []lab.Iface{back("eth0", "10.2.0.12/24")}, Routes: []lab.Route{viaRouter}},
	}})
	vip := netip.MustParseAddr("10.1.0.10")
	run(t, l, "dir", "ip", "addr", "add", vip.String()+"/32", "dev", "eth0")
	return vip, l
}

// TestTUNForwarding sends TCP through kernel IPVS's TUN method to real
// servers on another subnet, prepared by the realserver package: rs1
// decapsulating IPIP (through the package), rs2 GUE on UDP port 6080 with
// the UDP checksum (through `tandem realserver up --tun` in the VM). Connections alternate between
// them (rr) and IPVS counts them; then DownTun on each leaves no VIP, no
// fou port and the catch-all device down again.
func TestTUNForwarding(t *testing.T) {
	requireIPVS(t)
	vip, l := tunLab(t)
	tuns := map[string]realserver.Tun{"rs1": {Type: realserver.TunIPIP}, "rs2": {Type: realserver.TunGUE, Port: 6080}}
	hosts := map[string]realserver.Host{}
	// rs2 is prepared by the tandem binary where test/vm provides it
	// (TANDEM_BIN), with the command line an operator would type.
	bin := os.Getenv("TANDEM_BIN")
	gueArgs := []string{"--vip", vip.String(), "--tun", "--tun-type", "gue", "--tun-port", "6080"}
	for _, rs := range []string{"rs1", "rs2"} {
		h := realserver.Host{SysctlDir: realserver.DefaultHost.SysctlDir, StateDir: t.TempDir()}
		hosts[rs] = h
		if rs == "rs2" && bin != "" {
			out := run(t, l, rs, bin, append(append([]string{"realserver", "up"}, gueArgs...), "--state-dir", h.StateDir)...)
			t.Logf("rs2: tandem realserver up %s: %s", strings.Join(gueArgs, " "), out)
			run(t, l, rs, bin, append(append([]string{"realserver", "status"}, gueArgs...), "--state-dir", h.StateDir)...) // exit 0: ready
		} else if err := l.Do(rs, func() error {
			_, err := h.UpTun([]netip.Addr{vip}, tuns[rs])
			return err
		}); err != nil {
			t.Fatalf("%s: realserver up --tun: %v", rs, err)
		}
		l.ServeName(t, rs, ":80", true)
	}

	k := newKernel(t, l, "dir", "")
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: vip, Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.TUN}
	want := mustDesired(t, lvs.VirtualServer{Service: svc, Dests: []lvs.Dest{
		{Addr: netip.MustParseAddrPort("10.2.0.11:80"), Weight: 1},
		{Addr: netip.MustParseAddrPort("10.2.0.12:80"), Weight: 1, Tunnel: lvs.Tunnel{Type: lvs.TunnelGUE, Port: 6080, Csum: lvs.TunnelCsumOn}}}})
	r := lvs.NewReconciler(k, k.Owns)
	reconcile(t, r, want)
	checkState(t, l, k, want)
	checkForwarding(t, l, k, svc, 20)
	if rep := reconcile(t, r, want); len(rep.Ops) != 0 {
		t.Errorf("reconcile after forwarding sent %v", rep.Ops)
	}

	for _, rs := range []string{"rs1", "rs2"} {
		if rs == "rs2" && bin != "" {
			run(t, l, rs, bin, "realserver", "down", "--tun", "--state-dir", hosts[rs].StateDir)
		}
		var checks []realserver.Check
		if err := l.Do(rs, func() (err error) {
			if rs == "rs1" || bin == "" {
				if _, err := hosts[rs].DownTun(); err != nil {
					return err
				}
			}
			checks, err = hosts[rs].StatusTun([]netip.Addr{vip}, tuns[rs])
			return err
		}); err != nil {
			t.Fatalf("%s: realserver down --tun: %v", rs, err)
		}
		n := 0
		for _, c := range checks {
			var want string
			switch {
			case strings.HasPrefix(c.What, "tunnel device"):
				want = "down" // the kernel's (ipip is loaded): it stays
			case strings.HasPrefix(c.What, "fou port"), strings.HasPrefix(c.What, "VIP"):
				want = "absent"
			default:
				continue // sysctls: back to the namespace's own values
			}
			n++
			if c.Have != want {
				t.Errorf("%s after down --tun: %s is %s, want %s", rs, c.What, c.Have, want)
			}
		}
		if want := map[realserver.TunType]int{realserver.TunIPIP: 2, realserver.TunGUE: 3}[tuns[rs].Type]; n != want {
			t.Errorf("%s: status --tun after down: %+v", rs, checks)
		}
	}
}
