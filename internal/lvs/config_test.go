package lvs

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lab"
)

func TestFromConfig(t *testing.T) {
	cfg := lab.ParseConfig(t, `virtual_server_group G {
    10.0.0.1-2 80
    fwmark 7
}
virtual_server 172.16.7.5 80 {
    lb_algo wrr
    lb_kind DR
    persistence_timeout 60
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server 172.16.7.9 80
    real_server 172.16.7.3 80 {
        weight 3
    }
    real_server 172.16.7.4 80 {
        weight 1
    }
}
virtual_server group G {
    lb_algo sh
    sh-port
    lb_kind NAT
    protocol TCP
    real_server 192.168.0.1 8080 {
    }
}
`)
	pool := NewPool()
	rs := cfg.VirtualServers[0].RealServers
	pool.Weights[rs[0]] = 3
	pool.Weights[rs[1]] = 0 // failed, inhibited
	pool.Weights[cfg.VirtualServers[1].RealServers[0]] = 1
	d, err := FromConfig(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range d.Keys() {
		vs, _ := d.Lookup(k)
		got = append(got, k.String()+" "+string(vs.Service.Scheduler)+" "+vs.Service.Method.String()+" "+vs.Service.Flags.String())
		for _, dst := range vs.Dests {
			got = append(got, "  "+dst.Addr.String()+" w"+strconv.Itoa(dst.Weight))
		}
	}
	want := []string{
		"tcp/10.0.0.1:80 sh nat sh-port", "  192.168.0.1:8080 w1",
		"tcp/10.0.0.2:80 sh nat sh-port", "  192.168.0.1:8080 w1",
		"tcp/172.16.7.5:80 wrr dr ", "  172.16.7.3:80 w3", "  172.16.7.4:80 w0",
		"fwm:7/ipv4 sh nat sh-port", "  192.168.0.1:8080 w1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("desired state (-want +got):\n%s", diff)
	}
	svc, _ := d.Lookup(ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("172.16.7.5"), Port: 80})
	if svc.Service.PersistenceTimeout != 60 || svc.Service.PersistenceMask != netip.MustParseAddr("255.255.255.0") {
		t.Errorf("persistence %d s %v, want 60 s 255.255.255.0", svc.Service.PersistenceTimeout, svc.Service.PersistenceMask)
	}

	// Quorum lost: the sorry server replaces the real servers.
	pool.Sorry[cfg.VirtualServers[0]] = true
	d, err = FromConfig(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ = d.Lookup(ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("172.16.7.5"), Port: 80})
	if len(svc.Dests) != 1 || svc.Dests[0].Addr.String() != "172.16.7.9:80" {
		t.Errorf("with the sorry server in: %v", svc.Dests)
	}

	// Quorum back: the sorry server goes, or with sorry_server_inhibit
	// stays at weight 0.
	for _, inhibit := range []bool{false, true} {
		cfg.VirtualServers[0].SorryServer.Inhibit = inhibit
		pool.Sorry[cfg.VirtualServers[0]] = false
		d, err = FromConfig(cfg, pool)
		if err != nil {
			t.Fatal(err)
		}
		svc, _ = d.Lookup(ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("172.16.7.5"), Port: 80})
		sorry := slices.IndexFunc(svc.Dests, func(d Dest) bool { return d.Addr.String() == "172.16.7.9:80" })
		if inhibit != (sorry >= 0) || sorry >= 0 && svc.Dests[sorry].Weight != 0 || len(svc.Dests) != 2+btoi(inhibit) {
			t.Errorf("sorry_server_inhibit %v, quorum back: %v", inhibit, svc.Dests)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSchedFlags: the scheduler options config resolved at load map to
// the data plane's flags; flag-1 and flag-2 are the scheduler's own first
// two flags, and nothing for a scheduler without them.
func TestSchedFlags(t *testing.T) {
	for _, tt := range []struct {
		sched, proto string
		flags        []string
		want         Flags
	}{
		{"sh", "TCP", []string{"sh-fallback", "sh-port"}, FlagSHFallback | FlagSHPort},
		{"sh", "TCP", []string{"flag-1"}, FlagSHFallback},
		{"mh", "TCP", []string{"flag-2"}, FlagMHPort},
		{"mh", "TCP", []string{"mh-fallback", "flag-2"}, FlagMHFallback | FlagMHPort},
		{"rr", "TCP", []string{"flag-1", "flag-2", "flag-3", "hashed"}, 0},
		{"rr", "UDP", []string{"ops"}, FlagOnePacket},
	} {
		src := "virtual_server 10.0.0.1 80 {\n lb_algo " + tt.sched + "\n lb_kind NAT\n protocol " + tt.proto + "\n"
		for _, f := range tt.flags {
			src += " " + f + "\n"
		}
		cfg := lab.ParseConfig(t, src+"}\n")
		if got := serviceOf(cfg.VirtualServers[0]).Flags; got != tt.want {
			t.Errorf("%s %v: flags %v, want %v", tt.sched, tt.flags, got, tt.want)
		}
	}
}

// TestFromConfigEnums: every family, protocol and forwarding method the
// configuration can hold reaches the data plane as the same kind (config
// numbers families and protocols as the kernel does; methods are mapped).
func TestFromConfigEnums(t *testing.T) {
	for _, tt := range []struct {
		head, body string
		key        ServiceKey
		method     Method
		rsMethod   Method
	}{
		{"10.0.0.1 80", "protocol TCP\nlb_kind NAT", ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}, NAT, NAT},
		{"10.0.0.1 53", "protocol UDP\nlb_kind DR", ServiceKey{Family: IPv4, Protocol: UDP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 53}, DR, DR},
		{"fd00::1 80", "protocol SCTP\nlb_kind TUN", ServiceKey{Family: IPv6, Protocol: SCTP, VIP: netip.MustParseAddr("fd00::1"), Port: 80}, TUN, TUN},
		{"fwmark 5", "ip_family inet6\nlb_kind DR", ServiceKey{Family: IPv6, FWMark: 5}, DR, DR},
		{"fwmark 6", "lb_kind NAT", ServiceKey{Family: IPv4, FWMark: 6}, NAT, NAT},
		{"10.0.0.1 80", "protocol TCP\nlb_kind DR\nreal_server 10.0.0.3 80 {\nlvs_method TUN\n}", ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("10.0.0.1"), Port: 80}, DR, TUN},
	} {
		rsAddr := "10.0.0.2"
		if tt.key.Family == IPv6 {
			rsAddr = "fd00::2"
		}
		src := "virtual_server " + tt.head + " {\nlb_algo rr\n" + tt.body + "\n"
		if !strings.Contains(tt.body, "real_server") {
			src += "real_server " + rsAddr + " 80 {\n}\n"
		}
		cfg := lab.ParseConfig(t, src+"}\n")
		pool := NewPool()
		rs := cfg.VirtualServers[0].RealServers[0]
		pool.Weights[rs] = 1
		d, err := FromConfig(cfg, pool)
		if err != nil {
			t.Fatalf("%s: %v", tt.head, err)
		}
		vs, ok := d.Lookup(tt.key)
		if !ok {
			t.Errorf("%s %q: no service %v among %v", tt.head, tt.body, tt.key, d.Keys())
			continue
		}
		if vs.Service.Method != tt.method || len(vs.Dests) != 1 || vs.Dests[0].Method != tt.rsMethod {
			t.Errorf("%s %q: method %v, dests %v; want %v and one dest with %v", tt.head, tt.body, vs.Service.Method, vs.Dests, tt.method, tt.rsMethod)
		}
	}
}

// TestFromConfigTunnel: a TUN real server's tunnel options reach its
// Dest, inherited from lb_kind or its own lvs_method; a DR server behind
// a TUN service has none; so does the sorry server's.
func TestFromConfigTunnel(t *testing.T) {
	cfg := lab.ParseConfig(t, `virtual_server 10.0.0.1 80 {
lb_algo rr
protocol TCP
lb_kind TUN type gue port 6080 csum
sorry_server 10.0.0.9 80
sorry_server_lvs_method TUN type gre csum
real_server 10.0.0.2 80 {
}
real_server 10.0.0.3 80 {
lvs_method DR
}
real_server 10.0.0.4 80 {
lvs_method TUN
}
}
`)
	pool := NewPool()
	vs := cfg.VirtualServers[0]
	for _, rs := range vs.RealServers {
		pool.Weights[rs] = 1
	}
	d, err := FromConfig(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Tunnel{}
	for _, dst := range d.vs[d.keys[0]].Dests {
		got[dst.Addr.Addr().String()] = dst.Tunnel
	}
	want := map[string]Tunnel{"10.0.0.2": {Type: TunnelGUE, Port: 6080, Csum: TunnelCsumOn}, "10.0.0.3": {}, "10.0.0.4": {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tunnels (-want +got):\n%s", diff)
	}
	pool.Sorry[vs] = true
	if d, err = FromConfig(cfg, pool); err != nil {
		t.Fatal(err)
	}
	if ds := d.vs[d.keys[0]].Dests; len(ds) != 1 || ds[0].Tunnel != (Tunnel{Type: TunnelGRE, Csum: TunnelCsumOn}) {
		t.Errorf("sorry server: %+v, want a gre csum tunnel", ds)
	}
}

// TestFromConfigGranularityNotAPrefix: keepalived takes any IPv4
// persistence_granularity, and IPVS applies it bitwise; the service keeps
// the mask as written.
func TestFromConfigGranularityNotAPrefix(t *testing.T) {
	cfg := lab.ParseConfig(t, `virtual_server 172.16.7.5 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    persistence_timeout 60
    persistence_granularity 255.0.255.0
    real_server 172.16.7.3 80 {
    }
}
`)
	d, err := FromConfig(cfg, NewPool())
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := d.Lookup(ServiceKey{Family: IPv4, Protocol: TCP, VIP: netip.MustParseAddr("172.16.7.5"), Port: 80})
	if got, want := vs.Service.PersistenceMask, netip.MustParseAddr("255.0.255.0"); got != want {
		t.Errorf("persistence mask %v, want %v", got, want)
	}
}

// TestFromConfigGroupFWMarkFamily: "fwmark N inet6" in a group is an IPv6
// fwmark service whatever the virtual server's own family.
func TestFromConfigGroupFWMarkFamily(t *testing.T) {
	cfg := lab.ParseConfig(t, `virtual_server_group G {
    fwmark 3 inet6
    fwmark 4
}
virtual_server group G {
    lb_algo rr
    lb_kind DR
    real_server 10.0.0.2 80 {
    }
}
`)
	d, err := FromConfig(cfg, NewPool())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range d.Keys() {
		got = append(got, k.String())
	}
	if diff := cmp.Diff([]string{"fwm:4/ipv4", "fwm:3/ipv6"}, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}
