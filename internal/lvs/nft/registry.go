package nft

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"tandem/internal/lvs"
)

// The registry is how a Kernel remembers, inside the ruleset itself, what it
// programmed: one set per service (reg_<name>) whose elements carry the
// definitions as element comments (NFTNL_UDATA_SET_ELEM_COMMENT, what
// `nft list set` prints as comment "..."). The element with key svcElemKey
// holds the service; every other element is a real server, keyed by its
// stable id. Data-plane objects are a pure function of the registry, so a
// process that starts after a crash reads the registry back and knows both
// the services and every object it has to replace or delete.
//
// Comments are "word k=v k=v ...": human-readable in `nft list ruleset`,
// and at most 128 bytes even for IPv6 and every field at its maximum, which
// is what nft(8) prints (NFTNL_UDATA_COMMENT_MAXLEN; the kernel keeps 256).
// The service's keys are abbreviated to fit: p(rotocol), fwm(ark),
// s(cheduler), f(lags), to (persistence timeout), b(its), m(ethod). b is
// the persistence mask's prefix length (0: none given), or the dotted mask
// when an IPv4 mask is not a prefix.

// svcElemKey keys the service's own registry element; dest ids are below it.
const svcElemKey = ^uint32(0)

// encodeService renders the attributes of s that the registry keeps.
func encodeService(s lvs.Service) string {
	return fmt.Sprintf("svc af=%d p=%d vip=%s port=%d fwm=%d s=%s f=%d to=%d b=%s m=%s",
		s.Family, s.Protocol, addrText(s.VIP), s.Port, s.FWMark, s.Scheduler, s.Flags,
		s.PersistenceTimeout, lvs.MaskText(s.PersistenceMask), s.Method)
}

// encodeDest renders a real server.
func encodeDest(d lvs.Dest) string {
	return fmt.Sprintf("rs addr=%s weight=%d method=%s lower=%d upper=%d",
		d.Addr, d.Weight, d.Method, d.LowerThreshold, d.UpperThreshold)
}

// addrText is a's text form, or "-" for the zero Addr of a firewall-mark
// service (netip prints "invalid IP", which does not parse back).
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// fields splits a registry comment into its key=value pairs after checking
// its leading word.
func fields(comment, word string) (map[string]string, error) {
	f := strings.Fields(comment)
	if len(f) == 0 || f[0] != word {
		return nil, fmt.Errorf("registry comment %q: want %q first", comment, word)
	}
	kv := make(map[string]string, len(f)-1)
	for _, p := range f[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("registry comment %q: %q is not key=value", comment, p)
		}
		kv[k] = v
	}
	return kv, nil
}

// decoder accumulates the first parse error, so that decodeService and
// decodeDest read as a list of fields.
type decoder struct {
	kv  map[string]string
	err error
}

func (d *decoder) uint(key string, bits int) uint64 {
	v, err := strconv.ParseUint(d.kv[key], 10, bits)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("registry field %s=%q: %w", key, d.kv[key], err)
	}
	return v
}

func (d *decoder) method(key string) lvs.Method {
	for _, m := range []lvs.Method{lvs.NAT, lvs.DR, lvs.TUN} {
		if d.kv[key] == m.String() {
			return m
		}
	}
	if d.err == nil {
		d.err = fmt.Errorf("registry field %s=%q: not a forwarding method", key, d.kv[key])
	}
	return lvs.MethodUnset
}

func decodeService(comment string) (lvs.Service, error) {
	kv, err := fields(comment, "svc")
	if err != nil {
		return lvs.Service{}, err
	}
	d := &decoder{kv: kv}
	s := lvs.Service{
		ServiceKey: lvs.ServiceKey{
			Family:   lvs.AddressFamily(d.uint("af", 8)),
			Protocol: lvs.Protocol(d.uint("p", 8)),
			Port:     uint16(d.uint("port", 16)),
			FWMark:   uint32(d.uint("fwm", 32)),
		},
		Scheduler:          lvs.Scheduler(kv["s"]),
		Flags:              lvs.Flags(d.uint("f", 8)),
		PersistenceTimeout: uint32(d.uint("to", 32)),
		Method:             d.method("m"),
	}
	if v := kv["b"]; strings.Contains(v, ".") {
		if s.PersistenceMask, err = netip.ParseAddr(v); err != nil && d.err == nil {
			d.err = fmt.Errorf("registry field b=%q: %w", v, err)
		}
	} else if n := d.uint("b", 8); n > 0 {
		s.PersistenceMask = lvs.PrefixMask(s.Family, int(n))
	}
	if v := kv["vip"]; v != "-" {
		if s.VIP, err = netip.ParseAddr(v); err != nil && d.err == nil {
			d.err = fmt.Errorf("registry field vip=%q: %w", v, err)
		}
	}
	return s, d.err
}

func decodeDest(comment string) (lvs.Dest, error) {
	kv, err := fields(comment, "rs")
	if err != nil {
		return lvs.Dest{}, err
	}
	d := &decoder{kv: kv}
	dst := lvs.Dest{
		Weight:         int(d.uint("weight", 31)),
		Method:         d.method("method"),
		LowerThreshold: uint32(d.uint("lower", 32)),
		UpperThreshold: uint32(d.uint("upper", 32)),
	}
	if dst.Addr, err = netip.ParseAddrPort(kv["addr"]); err != nil && d.err == nil {
		d.err = fmt.Errorf("registry field addr=%q: %w", kv["addr"], err)
	}
	return dst, d.err
}

// objName is the name of service k's objects (chains, sets, counters) after
// their role prefix: "tcp_10.0.0.1_80", "udp_2001-db8--5_53", "fwm_42".
// It uses only characters nft(8) accepts in an unquoted identifier, so an
// operator can type `nft list chain ip tandem svc_tcp_10.0.0.1_80`.
func objName(k lvs.ServiceKey) string {
	if k.FWMark != 0 {
		return "fwm_" + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return k.Protocol.String() + "_" + strings.ReplaceAll(k.VIP.String(), ":", "-") + "_" + strconv.Itoa(int(k.Port))
}
