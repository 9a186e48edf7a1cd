// Package lvs is the pure core of Tandem's load-balancing data plane: the
// desired-state model (virtual services and their real servers), the
// reconciler that drives a kernel backend (IPVS, nftables) towards that
// state, and the scheduling math (Maglev tables, IPVS weighted round-robin
// order) that a backend without an in-kernel scheduler needs.
//
// Nothing in this package touches the kernel; backends implement [Kernel].
package lvs

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Protocol is a virtual service's transport protocol. The values are the IP
// protocol numbers, which is what IPVS stores (IPVS_SVC_ATTR_PROTOCOL).
type Protocol uint8

// Protocols IPVS can balance.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// AddressFamily is a service's address family. The values are the Linux
// AF_* constants, which is what IPVS stores (IPVS_SVC_ATTR_AF).
type AddressFamily uint8

// Address families.
const (
	IPv4 AddressFamily = 2  // AF_INET
	IPv6 AddressFamily = 10 // AF_INET6
)

func (f AddressFamily) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "af(" + strconv.Itoa(int(f)) + ")"
}

// bits is the address length of the family, or 0 if the family is unknown.
func (f AddressFamily) bits() int {
	switch f {
	case IPv4:
		return 32
	case IPv6:
		return 128
	}
	return 0
}

func familyOf(a netip.Addr) AddressFamily {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Method is a real server's packet-forwarding method. The zero value means
// "unset": on a Dest it inherits the service's Method, and on a Service it
// means NAT, keepalived's default lb_kind.
type Method uint8

// Forwarding methods (IPVS conn flags MASQ, DROUTE and TUNNEL).
const (
	MethodUnset Method = iota
	NAT
	DR
	TUN
)

func (m Method) String() string {
	switch m {
	case MethodUnset:
		return "unset"
	case NAT:
		return "nat"
	case DR:
		return "dr"
	case TUN:
		return "tun"
	}
	return "method(" + strconv.Itoa(int(m)) + ")"
}

// Scheduler is an IPVS scheduler name, exactly as keepalived's lb_algo and
// ipvsadm -s spell it (and as the kernel module ip_vs_<name> registers it).
type Scheduler string

// The schedulers keepalived accepts.
const (
	RoundRobin                    Scheduler = "rr"
	WeightedRoundRobin            Scheduler = "wrr"
	LeastConn                     Scheduler = "lc"
	WeightedLeastConn             Scheduler = "wlc"
	LocalityLeastConn             Scheduler = "lblc"
	LocalityLeastConnReplicated   Scheduler = "lblcr"
	DestinationHash               Scheduler = "dh"
	SourceHash                    Scheduler = "sh"
	ShortestExpectedDelay         Scheduler = "sed"
	NeverQueue                    Scheduler = "nq"
	WeightedFailover              Scheduler = "fo"
	WeightedOverflow              Scheduler = "ovf"
	MaglevHash                    Scheduler = "mh"
	TwoRandomChoicesLeastConnPair Scheduler = "twos"
)

var schedulers = []Scheduler{
	RoundRobin, WeightedRoundRobin, LeastConn, WeightedLeastConn,
	LocalityLeastConn, LocalityLeastConnReplicated, DestinationHash,
	SourceHash, ShortestExpectedDelay, NeverQueue, WeightedFailover,
	WeightedOverflow, MaglevHash, TwoRandomChoicesLeastConnPair,
}

// Valid reports whether s is one of the scheduler names keepalived accepts.
func (s Scheduler) Valid() bool { return slices.Contains(schedulers, s) }

// Flags are a service's scheduler options. They are Tandem's own bits, not
// the kernel's: IPVS reuses IP_VS_SVC_F_SCHED1/2 for both sh and mh, and a
// backend translates.
type Flags uint8

// Scheduler flags, as keepalived names them (ipvsadm -b).
const (
	// FlagOnePacket is "ops": one-packet scheduling, each UDP datagram is
	// scheduled on its own (IP_VS_SVC_F_ONEPACKET).
	FlagOnePacket Flags = 1 << iota
	// FlagSHFallback lets sh skip an unavailable server (sh-fallback).
	FlagSHFallback
	// FlagSHPort hashes the source port too (sh-port).
	FlagSHPort
	// FlagMHFallback lets mh skip an unavailable server (mh-fallback).
	FlagMHFallback
	// FlagMHPort hashes the source port too (mh-port).
	FlagMHPort

	flagsAll = FlagOnePacket | FlagSHFallback | FlagSHPort | FlagMHFallback | FlagMHPort
)

func (f Flags) String() string {
	names := []string{"ops", "sh-fallback", "sh-port", "mh-fallback", "mh-port"}
	s := ""
	for i, n := range names {
		if f&(1<<i) != 0 {
			if s != "" {
				s += ","
			}
			s += n
		}
	}
	if rest := f &^ flagsAll; rest != 0 {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%#x", uint8(rest))
	}
	return s
}

// ServiceKey identifies a virtual service the way IPVS does: either by
// (family, protocol, VIP, port) or by (family, firewall mark). Exactly one of
// VIP and FWMark is set. It is comparable, so it can key a map.
type ServiceKey struct {
	Family   AddressFamily
	Protocol Protocol   // zero for a firewall-mark service
	VIP      netip.Addr // invalid (zero) for a firewall-mark service
	Port     uint16     // zero for a firewall-mark service; zero with a VIP means all ports
	FWMark   uint32     // zero for a VIP service
}

// Compare orders keys by family, then VIP services before firewall-mark
// services, then VIP, protocol, port, mark. It is a total order, used to make
// every iteration in this package deterministic.
func (k ServiceKey) Compare(o ServiceKey) int {
	return cmp.Or(
		cmp.Compare(k.Family, o.Family),
		cmp.Compare(k.FWMark, o.FWMark), // 0 (VIP services) sorts first
		k.VIP.Compare(o.VIP),
		cmp.Compare(k.Protocol, o.Protocol),
		cmp.Compare(k.Port, o.Port),
	)
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		return fmt.Sprintf("fwm:%d/%s", k.FWMark, k.Family)
	}
	return k.Protocol.String() + "/" + netip.AddrPortFrom(k.VIP, k.Port).String()
}

func (k ServiceKey) validate() error {
	switch {
	case k.Family != IPv4 && k.Family != IPv6:
		return fmt.Errorf("address family %v: want ipv4 or ipv6", k.Family)
	case k.FWMark != 0:
		if k.VIP.IsValid() || k.Port != 0 || k.Protocol != 0 {
			return errors.New("a firewall-mark service has no VIP, port or protocol")
		}
		return nil
	case !k.VIP.IsValid():
		return errors.New("a service needs a VIP or a firewall mark")
	case k.VIP.Zone() != "" || k.VIP.Is4In6():
		return fmt.Errorf("VIP %v: want a plain IPv4 or IPv6 address", k.VIP)
	case familyOf(k.VIP) != k.Family:
		return fmt.Errorf("VIP %v is not %v", k.VIP, k.Family)
	case k.Protocol != TCP && k.Protocol != UDP && k.Protocol != SCTP:
		return fmt.Errorf("protocol %v: want tcp, udp or sctp", k.Protocol)
	}
	return nil
}

// Service is a virtual service: its key and the attributes IPVS keeps per
// service. Everything but Key and Method can be changed in place
// (IPVS_CMD_SET_SERVICE), so the reconciler never re-creates a service for it.
type Service struct {
	ServiceKey

	Scheduler Scheduler
	// Method is the default forwarding method of the service's real servers.
	// IPVS has no such attribute: the method is per destination
	// (IPVS_DEST_ATTR_FWD_METHOD), so NewDesired copies it into every Dest
	// that leaves its own Method unset, and the reconciler ignores it.
	Method Method
	Flags  Flags
	// PersistenceTimeout in seconds; 0 means not persistent. IPVS keeps
	// seconds (IPVS_SVC_ATTR_TIMEOUT), so this is not a time.Duration that
	// the kernel would silently round.
	PersistenceTimeout uint32
	// PersistenceMask is the persistence granularity as a netmask: clients
	// whose addresses are equal under the mask share a real server. IPVS
	// applies an IPv4 mask bitwise, so it need not be a prefix (ipvsadm -M
	// and keepalived's persistence_granularity take 255.0.255.0); an IPv6
	// one is a prefix length in the kernel. The zero Addr means a single
	// address (all ones), which is what the kernel reports when none was
	// given; NewDesired and the reconciler fill it in so the two compare
	// equal.
	PersistenceMask netip.Addr
	// PersistenceEngine names an IPVS persistence engine ("sip": the
	// Call-ID of SIP messages is the persistence key,
	// IPVS_SVC_ATTR_PE_NAME); "" is none. Only the IPVS backend has
	// persistence engines (see Desired.WithoutPersistenceEngines).
	PersistenceEngine string
}

// Timeouts are a data plane's connection timeouts (keepalived's
// lvs_timeouts): an established TCP connection's, a TCP connection's
// once it has seen a FIN, and a UDP flow's. Zero is the kernel's own.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// PrefixMask is the netmask of a /bits prefix in family f.
func PrefixMask(f AddressFamily, bits int) netip.Addr {
	b := make([]byte, f.bits()/8)
	for i := range b {
		n := min(max(bits-8*i, 0), 8)
		b[i] = ^byte(0xff >> n)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// MaskText is mask m as its prefix length ("24"), as the dotted mask when
// it is not a prefix ("255.0.255.0"), or "0" for the zero Addr.
func MaskText(m netip.Addr) string {
	if !m.IsValid() {
		return "0"
	}
	if n := MaskBits(m); n >= 0 {
		return strconv.Itoa(n)
	}
	return m.String()
}

// MaskBits is the prefix length of mask m, or -1 when m is not a prefix.
func MaskBits(m netip.Addr) int {
	b := m.AsSlice()
	ones := 0
	for ones < 8*len(b) && b[ones/8]&(0x80>>(ones%8)) != 0 {
		ones++
	}
	if PrefixMask(familyOf(m), ones) != m {
		return -1
	}
	return ones
}

// Key returns the service's identity.
func (s Service) Key() ServiceKey { return s.ServiceKey }

// normalize fills in defaults so that a service read back from the kernel and
// the one configured compare equal.
func (s Service) normalize() Service {
	if s.Family == 0 && s.VIP.IsValid() {
		s.Family = familyOf(s.VIP)
	}
	if !s.PersistenceMask.IsValid() {
		s.PersistenceMask = PrefixMask(s.Family, s.Family.bits())
	}
	if s.Method == MethodUnset {
		s.Method = NAT
	}
	return s
}

// sameAttrs reports whether the kernel-visible, in-place-updatable
// attributes of two normalized services are equal.
func (s Service) sameAttrs(o Service) bool {
	return s.Scheduler == o.Scheduler && s.Flags == o.Flags &&
		s.PersistenceTimeout == o.PersistenceTimeout &&
		s.PersistenceMask == o.PersistenceMask && s.PersistenceEngine == o.PersistenceEngine
}

func (s Service) validate() error {
	if err := s.ServiceKey.validate(); err != nil {
		return err
	}
	if !s.Scheduler.Valid() {
		return fmt.Errorf("scheduler %q: want one of %v", s.Scheduler, schedulers)
	}
	if s.Method > TUN {
		return fmt.Errorf("method %v: want nat, dr or tun", s.Method)
	}
	if s.Flags&^flagsAll != 0 {
		return fmt.Errorf("unknown flags %v", s.Flags&^flagsAll)
	}
	if s.Flags&(FlagSHFallback|FlagSHPort) != 0 && s.Scheduler != SourceHash {
		return fmt.Errorf("flags %v need scheduler sh, not %s", s.Flags&(FlagSHFallback|FlagSHPort), s.Scheduler)
	}
	if s.Flags&(FlagMHFallback|FlagMHPort) != 0 && s.Scheduler != MaglevHash {
		return fmt.Errorf("flags %v need scheduler mh, not %s", s.Flags&(FlagMHFallback|FlagMHPort), s.Scheduler)
	}
	if m := s.PersistenceMask; m.IsValid() && familyOf(m) != s.Family {
		return fmt.Errorf("persistence granularity %s is not an %v netmask", m, s.Family)
	}
	if m := s.PersistenceMask; m.Is6() && MaskBits(m) < 0 {
		// IPVS_SVC_ATTR_NETMASK is a prefix length for IPv6.
		return fmt.Errorf("persistence granularity %s is not an IPv6 prefix", m)
	}
	// ipvsadm refuses "zero port specified for non-persistent service":
	// without persistence a port-0 service would send each connection of a
	// multi-port protocol to a different server.
	if s.FWMark == 0 && s.Port == 0 && s.PersistenceTimeout == 0 {
		return errors.New("port 0 (all ports) needs persistence")
	}
	return nil
}

// Dest is a real server (an IPVS destination) of a service. Its identity
// within the service is Addr (address and port).
type Dest struct {
	Addr netip.AddrPort
	// Weight is the server's relative capacity, 0..math.MaxInt32 (IPVS
	// rejects negative weights with ERANGE). 0 inhibits the server: it stays
	// in the table, keeps its established connections and gets no new ones,
	// which is how keepalived drains a failed real server.
	Weight int
	// Method is how packets reach the server; unset inherits the service's.
	Method Method
	// UpperThreshold and LowerThreshold bound active connections (IPVS
	// u_threshold, l_threshold); 0 means no limit.
	UpperThreshold uint32
	LowerThreshold uint32
	// Tunnel is a TUN server's encapsulation (keepalived's "lb_kind TUN
	// type ipip|gue|gre [port N] [nocsum|csum|remcsum]"); the zero value
	// is IPIP. Ignored for NAT and DR.
	Tunnel Tunnel
}

// TunnelType is a TUN server's encapsulation, numbered as IPVS numbers it
// (IP_VS_CONN_F_TUNNEL_TYPE_*).
type TunnelType uint8

// Tunnel types.
const (
	TunnelIPIP TunnelType = iota // IP in IP (RFC 2003)
	TunnelGUE                    // Generic UDP Encapsulation, to Tunnel.Port
	TunnelGRE                    // GRE (RFC 2784)
)

// TunnelCsum is a GUE or GRE tunnel's checksum option, as IPVS numbers it
// (IP_VS_TUNNEL_ENCAP_FLAG_*).
type TunnelCsum uint8

// Checksum options.
const (
	TunnelNoCsum  TunnelCsum = iota // no outer checksum (keepalived's default)
	TunnelCsumOn                    // "csum": UDP or GRE checksum
	TunnelRemCsum                   // "remcsum": remote checksum offload (GUE only)
)

// Tunnel is how a TUN server's packets are encapsulated.
type Tunnel struct {
	Type TunnelType
	// Port is the GUE destination port (1..65535); 0 for IPIP and GRE.
	Port uint16
	Csum TunnelCsum
}

func (d Dest) validate(svc Service) error {
	a := d.Addr.Addr()
	switch {
	case !d.Addr.IsValid():
		return errors.New("no address")
	case a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("address %v: want a plain IPv4 or IPv6 address", a)
	case d.Weight < 0 || d.Weight > math.MaxInt32:
		return fmt.Errorf("weight %d: want 0..%d", d.Weight, math.MaxInt32)
	case d.Method == MethodUnset || d.Method > TUN:
		return fmt.Errorf("method %v: want nat, dr or tun", d.Method)
	// Mixed-family pools are only possible through a tunnel (the packet is
	// encapsulated, so the inner family does not matter); NAT and DR
	// rewrite or forward the original packet.
	case familyOf(a) != svc.Family && d.Method != TUN:
		return fmt.Errorf("%v real server %v behind an %v service needs method tun", familyOf(a), a, svc.Family)
	case d.Method != TUN && d.Tunnel != Tunnel{}:
		return fmt.Errorf("tunnel %v: only a tun real server has one (method %v)", d.Tunnel, d.Method)
	}
	return d.Tunnel.validate()
}

// validate applies keepalived's rules (check_parser.c,
// svr_forwarding_handler), which are the kernel's: a GUE tunnel has a
// port and only GUE has one; IPIP has no checksum option, GRE no remote
// checksum offload.
func (t Tunnel) validate() error {
	switch {
	case t.Type > TunnelGRE:
		return fmt.Errorf("tunnel type %d: want ipip, gue or gre", t.Type)
	case t.Csum > TunnelRemCsum:
		return fmt.Errorf("tunnel checksum option %d: want nocsum, csum or remcsum", t.Csum)
	case t.Type == TunnelGUE && t.Port == 0:
		return errors.New("a gue tunnel needs a port")
	case t.Type != TunnelGUE && t.Port != 0:
		return fmt.Errorf("tunnel port %d: only gue tunnels have a port", t.Port)
	case t.Type == TunnelIPIP && t.Csum != TunnelNoCsum:
		return errors.New("an ipip tunnel has no checksum option")
	case t.Type == TunnelGRE && t.Csum == TunnelRemCsum:
		return errors.New("a gre tunnel has no remote checksum option (remcsum)")
	}
	return nil
}

// String is t as keepalived writes it: "ipip", "gue port 6080 csum".
func (t Tunnel) String() string {
	s := fmt.Sprintf("type%d", t.Type)
	if types := []string{"ipip", "gue", "gre"}; int(t.Type) < len(types) {
		s = types[t.Type]
	}
	if t.Port != 0 {
		s += fmt.Sprintf(" port %d", t.Port)
	}
	if csums := []string{"", " csum", " remcsum"}; int(t.Csum) < len(csums) {
		s += csums[t.Csum]
	} else {
		s += fmt.Sprintf(" csum%d", t.Csum)
	}
	return s
}

// VirtualServer is one configured service with its real servers, as
// keepalived's virtual_server block describes it.
type VirtualServer struct {
	Service Service
	Dests   []Dest
}

// Desired is a validated, normalized set of virtual servers: the state the
// reconciler drives the kernel towards. Build it with NewDesired. The zero
// value is the empty set (reconciling it removes every owned service).
type Desired struct {
	keys []ServiceKey // sorted
	vs   map[ServiceKey]VirtualServer
}

// NewDesired validates and normalizes vss: families are filled in from VIPs,
// persistence granularity defaults to a single address, each Dest's unset
// Method becomes the service's (NAT by default), and dests are sorted by
// address. It rejects duplicate services and duplicate dests within a service.
// vss is not modified.
func NewDesired(vss ...VirtualServer) (*Desired, error) {
	d := &Desired{vs: make(map[ServiceKey]VirtualServer, len(vss))}
	for i, in := range vss {
		svc := in.Service.normalize()
		if err := svc.validate(); err != nil {
			return nil, fmt.Errorf("lvs: virtual server %d (%v): %w", i, svc.ServiceKey, err)
		}
		k := svc.Key()
		if _, dup := d.vs[k]; dup {
			return nil, fmt.Errorf("lvs: virtual server %d: duplicate service %v", i, k)
		}
		dests := make([]Dest, len(in.Dests))
		for j, dst := range in.Dests {
			if dst.Method == MethodUnset {
				dst.Method = svc.Method
			}
			if err := dst.validate(svc); err != nil {
				return nil, fmt.Errorf("lvs: %v: real server %v: %w", k, dst.Addr, err)
			}
			dests[j] = dst
		}
		slices.SortFunc(dests, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
		for j := 1; j < len(dests); j++ {
			if dests[j].Addr == dests[j-1].Addr {
				return nil, fmt.Errorf("lvs: %v: duplicate real server %v", k, dests[j].Addr)
			}
		}
		d.vs[k] = VirtualServer{Service: svc, Dests: dests}
		d.keys = append(d.keys, k)
	}
	slices.SortFunc(d.keys, ServiceKey.Compare)
	return d, nil
}

// WithoutPersistenceEngines is d with no service naming a persistence
// engine, for a backend that has none (nftables): what it reads back
// then matches what it is asked for.
func (d *Desired) WithoutPersistenceEngines() *Desired {
	out := &Desired{keys: d.keys, vs: make(map[ServiceKey]VirtualServer, len(d.vs))}
	for k, vs := range d.vs {
		vs.Service.PersistenceEngine = ""
		out.vs[k] = vs
	}
	return out
}

// Keys returns the desired services' keys in ServiceKey.Compare order.
func (d *Desired) Keys() []ServiceKey { return slices.Clone(d.keys) }

// Lookup returns the normalized virtual server for k, dests sorted by address.
func (d *Desired) Lookup(k ServiceKey) (VirtualServer, bool) {
	vs, ok := d.vs[k]
	vs.Dests = slices.Clone(vs.Dests)
	return vs, ok
}
