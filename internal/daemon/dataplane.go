package daemon

import (
	"fmt"
	"slices"
	"strings"

	"tandem/internal/config"
	"tandem/internal/config/syntax"
)

// dataplaneMethods are the forwarding methods (lb_kind) each data plane
// forwards: kernel IPVS all three; nftables NAT (dnat) and DR (fwd), not
// TUN (it has no IP-in-IP encapsulation); XDP DR and TUN (ipip and gue;
// gre is refused, see planeLimits), not NAT, which stays with conntrack,
// in nftables or IPVS.
var dataplaneMethods = map[string][]config.Method{
	DataplaneIPVS: {config.NAT, config.DR, config.TUN},
	DataplaneNFT:  {config.NAT, config.DR},
	DataplaneXDP:  {config.DR, config.TUN},
}

// dataplanesFor names the data planes that forward method m.
func dataplanesFor(m config.Method) string {
	var out []string
	for _, dp := range []string{DataplaneIPVS, DataplaneNFT, DataplaneXDP} {
		if slices.Contains(dataplaneMethods[dp], m) {
			out = append(out, dp)
		}
	}
	return strings.Join(out, ", ")
}

// planeLimits are the warnings, one per virtual server and what it asks,
// about what data plane dp cannot program of cfg's virtual servers: the
// services the reconciler will find refused. Auto and none refuse
// nothing (auto's IPVS does it all, and its nftables fallback says so
// at start).
func planeLimits(cfg *config.Config, dp string) config.Diagnostics {
	ok, known := dataplaneMethods[dp]
	if !known {
		return nil
	}
	var out config.Diagnostics
	warn := func(vs *config.VirtualServer, format string, args ...any) {
		out = append(out, syntax.Diagnostic{Pos: vs.Pos, Severity: syntax.Warning,
			Msg: fmt.Sprintf("virtual_server %s: ", vs.Name()) + fmt.Sprintf(format, args...)})
	}
	for _, vs := range cfg.VirtualServers {
		methods := []config.Method{vs.Method}
		for _, rs := range vs.RealServers {
			if !slices.Contains(methods, rs.Method) {
				methods = append(methods, rs.Method)
			}
		}
		for _, m := range methods {
			if !slices.Contains(ok, m) {
				warn(vs, "lb_kind %v: the %s data plane does not forward it (%v: %s); its service is refused", m, dp, m, dataplanesFor(m))
			}
		}
		if dp != DataplaneXDP {
			continue
		}
		switch {
		case vs.FWMark != 0:
			warn(vs, "fwmark: the xdp data plane matches VIP, protocol and port, not firewall marks (ipvs, nft); its service is refused")
		case vs.Protocol == config.SCTP:
			warn(vs, "protocol SCTP: the xdp data plane forwards TCP and UDP (ipvs); its service is refused")
		case vs.SchedFlags&config.SchedOnePacket != 0:
			warn(vs, "ops: the xdp data plane schedules flows, not datagrams (ipvs); its service is refused")
		}
		for _, rs := range vs.RealServers {
			if rs.Method == config.TUN && rs.Tunnel.Type == config.TunnelGRE {
				warn(vs, "real_server %s: lb_kind TUN type gre: the xdp data plane encapsulates in ipip and gue (ipvs); its service is refused", rs.IP)
			}
		}
	}
	return out
}
