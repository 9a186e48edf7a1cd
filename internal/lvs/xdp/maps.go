package xdp

import (
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strings"
	"time"

	"tandem/internal/lvs"
)

// htons is a port in network byte order as the program reads it from
// packet memory into a __be16 (this package builds for little-endian
// machines only: lb_bpfel.go).
func htons(p uint16) uint16 { return bits.ReverseBytes16(p) }

// addr16 is a as the maps hold addresses: 16 bytes, IPv4 in the first 4.
func addr16(a netip.Addr) [16]byte {
	var out [16]byte
	copy(out[:], a.AsSlice())
	return out
}

// addrOf reads back an address of family f stored by addr16.
func addrOf(f uint8, b [16]byte) netip.Addr {
	if f == uint8(lvs.IPv4) {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// svcKey is the services map key of key.
func svcKey(key lvs.ServiceKey) lbSvcKey {
	return lbSvcKey{Addr: addr16(key.VIP), Port: htons(key.Port), Proto: uint8(key.Protocol), Family: uint8(key.Family)}
}

// flowTimeout is how long a flow's entry outlives its last packet:
// persistence_timeout with persistence (IPVS's persistence template: the
// client stays on its server while it is active), else the connection
// timeout of the protocol in t (keepalived's lvs_timeouts tcp and udp,
// which IPVS applies to its established TCP connections and UDP flows),
// or where t has none IPVS's defaults, 15 minutes (TCP) and 5 (UDP), as
// the nftables DR flow table has them.
func flowTimeout(s lvs.Service, t lvs.Timeouts) time.Duration {
	switch {
	case s.PersistenceTimeout > 0:
		return time.Duration(s.PersistenceTimeout) * time.Second
	case s.Protocol == lvs.UDP && t.UDP > 0:
		return t.UDP
	case s.Protocol == lvs.UDP:
		return 5 * time.Minute
	case t.TCP > 0:
		return t.TCP
	}
	return 15 * time.Minute
}

// svcVal is the services map value of s whose current row has size slots,
// with connection timeouts t (flowTimeout):
// what the flow hash covers is what the nftables DR path hashes
// (nft/build.go, schedule): the client address masked to the persistence
// granularity with persistence, the client address for sh and mh, the
// VIP for dh, lblc and lblcr, else the client address and port.
func svcVal(s *service, size uint32, t lvs.Timeouts) lbSvcVal {
	v := lbSvcVal{Id: s.id, Row: s.row, Size: size, Key: keySaddrSport, Timeout: uint64(flowTimeout(s.Service, t))}
	switch {
	case s.PersistenceTimeout > 0:
		v.Key = keySaddr
		copy(v.Mask[:], s.PersistenceMask.AsSlice())
	case s.Scheduler == lvs.SourceHash && s.Flags&lvs.FlagSHPort != 0,
		s.Scheduler == lvs.MaglevHash && s.Flags&lvs.FlagMHPort != 0:
	case s.Scheduler == lvs.SourceHash, s.Scheduler == lvs.MaglevHash:
		v.Key = keySaddr
	case s.Scheduler == lvs.DestinationHash, s.Scheduler == lvs.LocalityLeastConn, s.Scheduler == lvs.LocalityLeastConnReplicated:
		v.Key = keyDaddr
	}
	return v
}

// encodeService is s's definition as the svc_defs map keeps it.
func encodeService(s lvs.Service) lbSvcDef {
	d := lbSvcDef{Vip: addr16(s.VIP), Port: s.Port, Proto: uint8(s.Protocol), Family: uint8(s.Family),
		Flags: uint32(s.Flags), Persist: s.PersistenceTimeout, Mask: addr16(s.PersistenceMask)}
	for i := range min(len(s.Scheduler), len(d.Sched)) {
		d.Sched[i] = int8(s.Scheduler[i])
	}
	return d
}

// decodeService reads back what encodeService stored.
func decodeService(d lbSvcDef) (lvs.Service, error) {
	var sched strings.Builder
	for _, c := range d.Sched {
		if c == 0 {
			break
		}
		sched.WriteByte(byte(c))
	}
	f := lvs.AddressFamily(d.Family)
	if f != lvs.IPv4 && f != lvs.IPv6 {
		return lvs.Service{}, fmt.Errorf("family %d", d.Family)
	}
	return lvs.Service{
		ServiceKey: lvs.ServiceKey{Family: f, Protocol: lvs.Protocol(d.Proto), VIP: addrOf(d.Family, d.Vip), Port: d.Port},
		Scheduler:  lvs.Scheduler(sched.String()), Method: lvs.DR, Flags: lvs.Flags(d.Flags),
		PersistenceTimeout: d.Persist, PersistenceMask: addrOf(d.Family, d.Mask),
	}, nil
}

// encodeDest is real server d of service svc as the real_defs map keeps it.
func encodeDest(svc uint32, d lvs.Dest) lbRealDef {
	a := d.Addr.Addr()
	return lbRealDef{Addr: addr16(a), Port: d.Addr.Port(), Family: uint8(familyOf(a)), Method: uint8(d.Method), Svc: svc,
		Weight: uint32(d.Weight), Lower: d.LowerThreshold, Upper: d.UpperThreshold,
		TunType: uint8(d.Tunnel.Type), TunCsum: uint8(d.Tunnel.Csum), TunPort: d.Tunnel.Port}
}

// decodeDest reads back what encodeDest stored.
func decodeDest(r lbRealDef) lvs.Dest {
	return lvs.Dest{Addr: netip.AddrPortFrom(addrOf(r.Family, r.Addr), r.Port), Weight: int(r.Weight),
		Method: lvs.Method(r.Method), LowerThreshold: r.Lower, UpperThreshold: r.Upper,
		Tunnel: lvs.Tunnel{Type: lvs.TunnelType(r.TunType), Csum: lvs.TunnelCsum(r.TunCsum), Port: r.TunPort}}
}

// Real server forwarding (real_val.tun).
const (
	tunNone = 0 // TUN_NONE: DR
	tunIPIP = 1 // TUN_IPIP
	tunGUE  = 2 // TUN_GUE
)

// realVal is the reals map value of real server d of service svc.
func realVal(svc uint32, d *dest, smac net.HardwareAddr) lbRealVal {
	rv := lbRealVal{Ifindex: d.ifindex, Svc: svc, Gen: d.gen}
	if d.live {
		rv.Live = 1
	}
	copy(rv.Dmac[:], d.mac)
	copy(rv.Smac[:], smac)
	if d.Method != lvs.TUN {
		return rv
	}
	rv.Tun = tunIPIP
	if d.Tunnel.Type == lvs.TunnelGUE {
		rv.Tun, rv.Port = tunGUE, htons(d.Tunnel.Port)
		// remcsum asks for a checksum the receiver completes, for a
		// packet whose sender left it partial; a packet from the wire
		// has its checksum, so remcsum sends a full one, as IPVS does
		// for such packets.
		if d.Tunnel.Csum != lvs.TunnelNoCsum {
			rv.Csum = 1
		}
	}
	rv.Family = uint8(familyOf(d.Addr.Addr()))
	rv.Saddr, rv.Daddr = addr16(d.src), addr16(d.Addr.Addr())
	return rv
}

// familyOf is a's address family.
func familyOf(a netip.Addr) lvs.AddressFamily {
	if a.Is4() {
		return lvs.IPv4
	}
	return lvs.IPv6
}
