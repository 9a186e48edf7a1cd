package lvs

import (
	"net/netip"
	"time"

	"tandem/internal/config"
)

// Pool is what the health checks say about the servers of the
// configuration: who is in the pool at which weight, and which virtual
// servers have their sorry server in.
type Pool struct {
	// Weights holds the real servers in the pool, at their current weight
	// (0 for a failed server kept by inhibit_on_failure). A real server
	// not in the map is out of the pool.
	Weights map[*config.RealServer]int
	// Sorry marks the virtual servers whose sorry server replaces the
	// real servers (quorum lost: true). With sorry_server_inhibit a sorry
	// server that was in stays, at weight 0, once quorum is back (false),
	// as inhibit_on_failure keeps a failed real server (keepalived.conf(5)
	// sorry_server_inhibit).
	Sorry map[*config.VirtualServer]bool
}

// NewPool returns an empty pool: no server in, no sorry server.
func NewPool() *Pool {
	return &Pool{Weights: map[*config.RealServer]int{}, Sorry: map[*config.VirtualServer]bool{}}
}

// methods maps the configuration's forwarding methods (MethodUnset, never
// left by config.Load, stays unset).
var methods = map[config.Method]Method{config.NAT: NAT, config.DR: DR, config.TUN: TUN}

// tunnelOf is the encapsulation of a server of method m with tunnel
// options t (config numbers types and checksum options as IPVS does, as
// lvs does); zero unless m is TUN.
func tunnelOf(m config.Method, t config.Tunnel) Tunnel {
	if m != config.TUN {
		return Tunnel{}
	}
	return Tunnel{Type: TunnelType(t.Type), Port: uint16(t.Port), Csum: TunnelCsum(t.Csum)}
}

// FromConfig computes the desired state of the data plane: one service per
// virtual server (or per address and fwmark of its virtual_server_group),
// each with the real servers the pool holds, or its sorry server.
func FromConfig(cfg *config.Config, pool *Pool) (*Desired, error) {
	var vss []VirtualServer
	for _, vs := range cfg.VirtualServers {
		svc := serviceOf(vs)
		dests := destsOf(vs, pool)
		keys, err := keysOf(cfg, vs)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			s := svc
			s.ServiceKey = k
			vss = append(vss, VirtualServer{Service: s, Dests: dests})
		}
	}
	return NewDesired(vss...)
}

// serviceOf maps a virtual server's scheduling settings.
func serviceOf(vs *config.VirtualServer) Service {
	s := Service{Scheduler: Scheduler(vs.Scheduler.String()), Method: methods[vs.Method], PersistenceTimeout: uint32(time.Duration(vs.Persistence) / time.Second)}
	if vs.SchedFlags&config.SchedOnePacket != 0 {
		s.Flags |= FlagOnePacket
	}
	// Fallback and port are the first two flags of whichever scheduler
	// reads them (0 for the others); config has checked that sh-* and
	// mh-* name theirs.
	var fallback, port Flags
	switch vs.Scheduler {
	case config.SchedulerSH:
		fallback, port = FlagSHFallback, FlagSHPort
	case config.SchedulerMH:
		fallback, port = FlagMHFallback, FlagMHPort
	}
	if vs.SchedFlags&config.SchedFallback != 0 {
		s.Flags |= fallback
	}
	if vs.SchedFlags&config.SchedPort != 0 {
		s.Flags |= port
	}
	s.PersistenceMask = vs.Granularity
	s.PersistenceEngine = vs.PersistenceEngine
	return s
}

// keysOf lists the service keys of a virtual server: its address and port,
// its fwmark, or every address (ranges expanded) and fwmark of its group.
func keysOf(cfg *config.Config, vs *config.VirtualServer) ([]ServiceKey, error) {
	// config numbers families and protocols as the kernel does.
	fam, proto := AddressFamily(vs.Family), Protocol(vs.Protocol)
	switch {
	case vs.FWMark != 0:
		return []ServiceKey{{Family: fam, FWMark: vs.FWMark}}, nil
	case vs.Group == "":
		return []ServiceKey{{Family: familyOf(vs.IP), Protocol: proto, VIP: vs.IP, Port: uint16(vs.Port)}}, nil
	}
	var keys []ServiceKey
	for _, g := range cfg.ServerGroups {
		if g.Name != vs.Group {
			continue
		}
		for _, e := range g.Entries {
			if e.FWMark != 0 {
				f := fam
				if e.FWMarkFamily != config.FamilyUnset {
					f = AddressFamily(e.FWMarkFamily)
				}
				keys = append(keys, ServiceKey{Family: f, FWMark: e.FWMark})
				continue
			}
			last := e.IP
			if e.LastIP.IsValid() {
				last = e.LastIP
			}
			for a := e.IP; a.Compare(last) <= 0; a = a.Next() {
				keys = append(keys, ServiceKey{Family: familyOf(a), Protocol: proto, VIP: a, Port: uint16(e.Port)})
				if a == last {
					break
				}
			}
		}
	}
	return keys, nil
}

// destsOf lists the real servers the pool holds for vs, or its sorry
// server when it is in.
func destsOf(vs *config.VirtualServer, pool *Pool) []Dest {
	ss := vs.SorryServer
	in, kept := pool.Sorry[vs]
	if ss != nil && in {
		return []Dest{{Addr: netip.AddrPortFrom(ss.IP, uint16(ss.Port)), Weight: 1, Method: methods[ss.Method], Tunnel: tunnelOf(ss.Method, ss.Tunnel)}}
	}
	var out []Dest
	if ss != nil && kept && ss.Inhibit {
		out = append(out, Dest{Addr: netip.AddrPortFrom(ss.IP, uint16(ss.Port)), Weight: 0, Method: methods[ss.Method], Tunnel: tunnelOf(ss.Method, ss.Tunnel)})
	}
	for _, rs := range vs.RealServers {
		w, in := pool.Weights[rs]
		if !in {
			continue
		}
		out = append(out, Dest{Addr: netip.AddrPortFrom(rs.IP, uint16(rs.Port)), Weight: w, Method: methods[rs.Method],
			UpperThreshold: uint32(rs.UThreshold), LowerThreshold: uint32(rs.LThreshold), Tunnel: tunnelOf(rs.Method, rs.Tunnel)})
	}
	return out
}
