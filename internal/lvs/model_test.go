package lvs

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewDesiredNormalizes(t *testing.T) {
	in := []VirtualServer{
		{
			// No family: taken from the VIP. No method: NAT. No granularity: /128.
			Service: Service{ServiceKey: ServiceKey{Protocol: TCP, VIP: netip.MustParseAddr("2001:db8::1"), Port: 80}, Scheduler: RoundRobin},
			Dests:   []Dest{rs("[2001:db8::3]:80", 1), rs("[2001:db8::2]:80", 2)},
		},
		{
			Service: Service{ServiceKey: ServiceKey{Family: IPv4, FWMark: 1}, Scheduler: RoundRobin, Method: DR},
			// An explicit method wins over the service's; an IPv6 server behind
			// an IPv4 service is fine through a tunnel.
			Dests: []Dest{rs("10.0.0.2:0", 1), {Addr: netip.MustParseAddrPort("[2001:db8::9]:0"), Weight: 1, Method: TUN}},
		},
	}
	orig := slices.Clone(in[0].Dests)
	d := mustDesired(t, in...)

	want := []VirtualServer{
		{
			Service: Service{ServiceKey: ServiceKey{Family: IPv4, FWMark: 1}, Scheduler: RoundRobin, Method: DR, PersistenceMask: PrefixMask(IPv4, 32)},
			Dests: []Dest{
				{Addr: netip.MustParseAddrPort("10.0.0.2:0"), Weight: 1, Method: DR},
				{Addr: netip.MustParseAddrPort("[2001:db8::9]:0"), Weight: 1, Method: TUN},
			},
		},
		{
			Service: Service{ServiceKey: vip(TCP, "[2001:db8::1]:80"), Scheduler: RoundRobin, Method: NAT, PersistenceMask: PrefixMask(IPv6, 128)},
			Dests: []Dest{
				{Addr: netip.MustParseAddrPort("[2001:db8::2]:80"), Weight: 2, Method: NAT},
				{Addr: netip.MustParseAddrPort("[2001:db8::3]:80"), Weight: 1, Method: NAT},
			},
		},
	}
	var got []VirtualServer
	for _, k := range d.Keys() {
		vs, ok := d.Lookup(k)
		if !ok {
			t.Fatalf("Lookup(%v) missing", k)
		}
		got = append(got, vs)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("normalized (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(orig, in[0].Dests, cmpOpts); diff != "" {
		t.Errorf("input modified (-want +got):\n%s", diff)
	}
}

func TestNewDesiredRejects(t *testing.T) {
	ok := func() VirtualServer {
		return VirtualServer{
			Service: Service{ServiceKey: vip(TCP, "10.0.0.1:80"), Scheduler: WeightedRoundRobin},
			Dests:   []Dest{rs("10.1.0.1:80", 1)},
		}
	}
	tests := []struct {
		name    string
		mutate  func(*VirtualServer)
		wantErr string
	}{
		{"no VIP or mark", func(v *VirtualServer) { v.Service.ServiceKey = ServiceKey{Family: IPv4, Protocol: TCP, Port: 80} }, "needs a VIP or a firewall mark"},
		{"mark with VIP", func(v *VirtualServer) { v.Service.FWMark = 3 }, "firewall-mark service has no VIP"},
		{"mark without family", func(v *VirtualServer) { v.Service.ServiceKey = ServiceKey{FWMark: 3} }, "address family af(0)"},
		{"family mismatch", func(v *VirtualServer) { v.Service.Family = IPv6 }, "VIP 10.0.0.1 is not ipv6"},
		{"4in6 VIP", func(v *VirtualServer) {
			v.Service.VIP = netip.MustParseAddr("::ffff:10.0.0.1")
			v.Service.Family = IPv6
		}, "want a plain"},
		{"bad protocol", func(v *VirtualServer) { v.Service.Protocol = 1 }, "protocol proto(1)"},
		{"no scheduler", func(v *VirtualServer) { v.Service.Scheduler = "" }, `scheduler ""`},
		{"unknown scheduler", func(v *VirtualServer) { v.Service.Scheduler = "random" }, `scheduler "random"`},
		{"sh flag on wrr", func(v *VirtualServer) { v.Service.Flags = FlagSHPort }, "flags sh-port need scheduler sh"},
		{"mh flag on sh", func(v *VirtualServer) {
			v.Service.Scheduler = SourceHash
			v.Service.Flags = FlagMHFallback
		}, "flags mh-fallback need scheduler mh"},
		{"unknown flag", func(v *VirtualServer) { v.Service.Flags = 1 << 7 }, "unknown flags 0x80"},
		{"bad service method", func(v *VirtualServer) { v.Service.Method = 9 }, "method method(9)"},
		{"granularity of another family", func(v *VirtualServer) { v.Service.PersistenceMask = PrefixMask(IPv6, 64) }, "persistence granularity ffff:ffff:ffff:ffff:: is not an ipv4 netmask"},
		{"port 0 without persistence", func(v *VirtualServer) { v.Service.Port = 0 }, "port 0 (all ports) needs persistence"},
		{"negative weight", func(v *VirtualServer) { v.Dests[0].Weight = -1 }, "weight -1"},
		{"weight too large", func(v *VirtualServer) { v.Dests[0].Weight = math.MaxInt32 + 1 }, "weight 2147483648"},
		{"no dest address", func(v *VirtualServer) { v.Dests[0].Addr = netip.AddrPort{} }, "no address"},
		{"zoned dest", func(v *VirtualServer) { v.Dests[0].Addr = netip.MustParseAddrPort("[fe80::1%eth0]:80") }, "want a plain"},
		{"mixed family without tunnel", func(v *VirtualServer) { v.Dests[0] = rs("[2001:db8::1]:80", 1) }, "needs method tun"},
		{"duplicate dest", func(v *VirtualServer) { v.Dests = append(v.Dests, rs("10.1.0.1:80", 5)) }, "duplicate real server 10.1.0.1:80"},
		{"tunnel on a NAT server", func(v *VirtualServer) { v.Dests[0].Tunnel = Tunnel{Type: TunnelGRE} }, "tunnel gre: only a tun real server has one"},
		{"gue without port", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Type: TunnelGUE} }, "a gue tunnel needs a port"},
		{"ipip with port", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Port: 5} }, "tunnel port 5: only gue"},
		{"gre with port", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Type: TunnelGRE, Port: 5} }, "tunnel port 5: only gue"},
		{"ipip csum", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Csum: TunnelCsumOn} }, "ipip tunnel has no checksum option"},
		{"gre remcsum", func(v *VirtualServer) {
			v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Type: TunnelGRE, Csum: TunnelRemCsum}
		}, "gre tunnel has no remote checksum"},
		{"unknown tunnel type", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Type: 3} }, "tunnel type 3"},
		{"unknown csum", func(v *VirtualServer) { v.Dests[0].Method, v.Dests[0].Tunnel = TUN, Tunnel{Type: TunnelGRE, Csum: 3} }, "checksum option 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := ok()
			tc.mutate(&vs)
			_, err := NewDesired(vs)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	t.Run("duplicate service", func(t *testing.T) {
		_, err := NewDesired(ok(), ok())
		if err == nil || !strings.Contains(err.Error(), "duplicate service tcp/10.0.0.1:80") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("valid tunnels", func(t *testing.T) {
		for _, tun := range []Tunnel{{}, {Type: TunnelGUE, Port: 6080}, {Type: TunnelGUE, Port: 1, Csum: TunnelRemCsum}, {Type: TunnelGRE, Csum: TunnelCsumOn}} {
			vs := ok()
			vs.Dests[0].Method, vs.Dests[0].Tunnel = TUN, tun
			if _, err := NewDesired(vs); err != nil {
				t.Errorf("%v: %v", tun, err)
			}
		}
	})
	t.Run("all schedulers", func(t *testing.T) {
		for _, s := range []Scheduler{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"} {
			vs := ok()
			vs.Service.Scheduler = s
			if _, err := NewDesired(vs); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
}

func TestServiceKeyOrder(t *testing.T) {
	// Sorted by family, VIP services before marks, VIP, protocol, port, mark.
	want := []ServiceKey{
		vip(TCP, "10.0.0.1:80"),
		vip(TCP, "10.0.0.1:443"),
		vip(UDP, "10.0.0.1:53"),
		vip(TCP, "10.0.0.2:80"),
		{Family: IPv4, FWMark: 1},
		{Family: IPv4, FWMark: 2},
		vip(TCP, "[::1]:80"),
		{Family: IPv6, FWMark: 1},
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, ServiceKey.Compare)
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	var names []string
	for _, k := range want[3:7] {
		names = append(names, k.String())
	}
	if diff := cmp.Diff([]string{"tcp/10.0.0.2:80", "fwm:1/ipv4", "fwm:2/ipv4", "tcp/[::1]:80"}, names); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}
