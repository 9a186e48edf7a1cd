package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The keywords whose value is one of a fixed set of words are read into
// small typed enums: the parser resolves the word once, and every package
// downstream compares typed constants. This package owns the words: each
// enum's vocabulary is the only list of them, used to parse, to format and
// to dump.

// word is one value of an enum and its canonical spelling.
type word[T ~uint8 | ~uint16] struct {
	v    T
	text string
}

// vocabulary lists an enum's words in the order diagnostics name them.
type vocabulary[T ~uint8 | ~uint16] []word[T]

// name is the spelling of v; a value with no word (the unset zero of most
// enums) is "", any other value its number.
func (vc vocabulary[T]) name(v T) string {
	for _, w := range vc {
		if w.v == v {
			return w.text
		}
	}
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(v), 10)
}

// parse reads a word, ignoring case as keepalived does.
func (vc vocabulary[T]) parse(s string) (T, bool) {
	for _, w := range vc {
		if strings.EqualFold(s, w.text) {
			return w.v, true
		}
	}
	return 0, false
}

// words are the canonical spellings of vs (all the vocabulary's when none
// is given).
func (vc vocabulary[T]) words(vs ...T) []string {
	var out []string
	for _, w := range vc {
		if len(vs) == 0 || slices.Contains(vs, w.v) {
			out = append(out, w.text)
		}
	}
	return out
}

// unmarshal is UnmarshalText for an enum: the dump's words read back.
func (vc vocabulary[T]) unmarshal(dst *T, b []byte) error {
	if len(b) == 0 {
		*dst = 0
		return nil
	}
	v, ok := vc.parse(string(b))
	if !ok {
		return fmt.Errorf("%q is not one of %s", b, strings.Join(vc.words(), ", "))
	}
	*dst = v
	return nil
}

// setEnumOf reads a keyword's one word of vc into dst, allowing only the
// values of allowed when given.
func setEnumOf[T ~uint8 | ~uint16](p *parser, dst *T, vc vocabulary[T], allowed ...T) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if v, ok := enumOf(p, n, 0, vc, allowed...); ok {
			*dst = v
		}
	}
}

// enumOf reads argument i of n as one of the words of vc (of allowed, when
// given); the diagnostic for any other word names them.
func enumOf[T ~uint8 | ~uint16](p *parser, n *node, i int, vc vocabulary[T], allowed ...T) (T, bool) {
	s, ok := p.enumTok(n, n.Args[i], vc.words(allowed...)...)
	if !ok {
		return 0, false
	}
	v, _ := vc.parse(s)
	return v, true
}

// ParamMatch is how a vrrp_track_process compares a process's parameters
// (param_match, vrrp_parser.c vrrp_tprocess_match_handler).
type ParamMatch uint8

// The param_match modes.
const (
	// ParamMatchUnset: param_match not given; parameters, if any, are
	// matched exactly.
	ParamMatchUnset ParamMatch = iota
	// ParamExact: the arguments are exactly the configured parameters.
	ParamExact
	// ParamInitial: the configured parameters start the arguments, the
	// last one possibly only as a prefix.
	ParamInitial
	// ParamPartial: the configured parameters are the first arguments.
	ParamPartial
)

var paramMatches = vocabulary[ParamMatch]{{ParamExact, "exact"}, {ParamInitial, "initial"}, {ParamPartial, "partial"}}

func (m ParamMatch) String() string { return paramMatches.name(m) }

// MarshalText writes the mode's word.
func (m ParamMatch) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads the mode's word.
func (m *ParamMatch) UnmarshalText(b []byte) error { return paramMatches.unmarshal(m, b) }

// AuthType is a VRRPv2 instance's auth_type (RFC 2338 §5.3.6).
type AuthType uint8

// The authentication types.
const (
	AuthUnset AuthType = iota
	AuthPass
	AuthAH
)

var authTypes = vocabulary[AuthType]{{AuthPass, "PASS"}, {AuthAH, "AH"}}

func (t AuthType) String() string { return authTypes.name(t) }

// MarshalText writes the type's word.
func (t AuthType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads the type's word.
func (t *AuthType) UnmarshalText(b []byte) error { return authTypes.unmarshal(t, b) }

// InitialState is a vrrp_instance's state keyword: the state it starts in.
type InitialState uint8

// The initial states; finalize resolves an unset state (BACKUP, or MASTER
// for priority 255).
const (
	StateUnset InitialState = iota
	StateMaster
	StateBackup
)

var initialStates = vocabulary[InitialState]{{StateMaster, "MASTER"}, {StateBackup, "BACKUP"}}

func (s InitialState) String() string { return initialStates.name(s) }

// MarshalText writes the state's word.
func (s InitialState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the state's word.
func (s *InitialState) UnmarshalText(b []byte) error { return initialStates.unmarshal(s, b) }

// Family is a virtual server's address family (ip_family). The values are
// Linux's AF_INET and AF_INET6, as IPVS numbers families.
type Family uint8

// The address families.
const (
	FamilyUnset Family = 0
	Inet        Family = 2
	Inet6       Family = 10
)

var families = vocabulary[Family]{{Inet, "inet"}, {Inet6, "inet6"}}

func (f Family) String() string { return families.name(f) }

// MarshalText writes the family's word.
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads the family's word.
func (f *Family) UnmarshalText(b []byte) error { return families.unmarshal(f, b) }

// Protocol is a virtual server's transport protocol. The values are IP
// protocol numbers (RFC 790, RFC 4960), as IPVS takes them; 0 is unset (a
// fwmark service matches any protocol).
type Protocol uint8

// The protocols IPVS balances.
const (
	ProtocolUnset Protocol = 0
	TCP           Protocol = 6
	UDP           Protocol = 17
	SCTP          Protocol = 132
)

var protocols = vocabulary[Protocol]{{TCP, "TCP"}, {UDP, "UDP"}, {SCTP, "SCTP"}}

func (p Protocol) String() string { return protocols.name(p) }

// MarshalText writes the protocol's word.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads the protocol's word.
func (p *Protocol) UnmarshalText(b []byte) error { return protocols.unmarshal(p, b) }

// Method is an LVS forwarding method (lb_kind, lvs_method).
type Method uint8

// The forwarding methods; an unset one is resolved at finalize (NAT, or
// the enclosing virtual server's).
const (
	MethodUnset Method = iota
	NAT
	DR
	TUN
)

var methods = vocabulary[Method]{{NAT, "NAT"}, {DR, "DR"}, {TUN, "TUN"}}

func (m Method) String() string { return methods.name(m) }

// MarshalText writes the method's word.
func (m Method) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads the method's word.
func (m *Method) UnmarshalText(b []byte) error { return methods.unmarshal(m, b) }

// TunnelType is a TUN real server's encapsulation ("lb_kind TUN type
// ipip|gue|gre"); the zero value is ipip, keepalived's default.
type TunnelType uint8

// The tunnel types, numbered as IPVS numbers them
// (IP_VS_CONN_F_TUNNEL_TYPE_*).
const (
	TunnelIPIP TunnelType = iota
	TunnelGUE
	TunnelGRE
)

var tunnelTypes = vocabulary[TunnelType]{{TunnelIPIP, "ipip"}, {TunnelGUE, "gue"}, {TunnelGRE, "gre"}}

func (t TunnelType) String() string { return tunnelTypes.name(t) }

// MarshalText writes the tunnel type's word.
func (t TunnelType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads the tunnel type's word.
func (t *TunnelType) UnmarshalText(b []byte) error { return tunnelTypes.unmarshal(t, b) }

// TunnelCsum is a GUE or GRE tunnel's checksum option; the zero value is
// nocsum, keepalived's default.
type TunnelCsum uint8

// The checksum options, numbered as IPVS numbers them
// (IP_VS_TUNNEL_ENCAP_FLAG_*).
const (
	TunnelNoCsum TunnelCsum = iota
	TunnelCsumOn
	TunnelRemCsum
)

var tunnelCsums = vocabulary[TunnelCsum]{{TunnelNoCsum, "nocsum"}, {TunnelCsumOn, "csum"}, {TunnelRemCsum, "remcsum"}}

func (c TunnelCsum) String() string { return tunnelCsums.name(c) }

// MarshalText writes the checksum option's word.
func (c TunnelCsum) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads the checksum option's word.
func (c *TunnelCsum) UnmarshalText(b []byte) error { return tunnelCsums.unmarshal(c, b) }

// CheckType is a health checker's kind, the keyword of its block.
type CheckType uint8

// The checker kinds, as keepalived names them.
const (
	CheckUnset CheckType = iota
	CheckTCP
	CheckHTTP
	CheckSSL
	CheckMisc
	CheckSMTP
	CheckDNS
	CheckUDP
	CheckPing
	CheckFile
	CheckBFD
)

var checkTypes = vocabulary[CheckType]{
	{CheckTCP, "TCP_CHECK"}, {CheckHTTP, "HTTP_GET"}, {CheckSSL, "SSL_GET"}, {CheckMisc, "MISC_CHECK"},
	{CheckSMTP, "SMTP_CHECK"}, {CheckDNS, "DNS_CHECK"}, {CheckUDP, "UDP_CHECK"}, {CheckPing, "PING_CHECK"},
	{CheckFile, "FILE_CHECK"}, {CheckBFD, "BFD_CHECK"},
}

func (t CheckType) String() string { return checkTypes.name(t) }

// MarshalText writes the kind's keyword.
func (t CheckType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads the kind's keyword.
func (t *CheckType) UnmarshalText(b []byte) error { return checkTypes.unmarshal(t, b) }

// HTTPVersion is an HTTP_GET/SSL_GET request's http_protocol
// (check_http.c). The zero value is keepalived's default, 1.0.
type HTTPVersion uint8

// The request versions.
const (
	// HTTP10 is HTTP/1.0.
	HTTP10 HTTPVersion = iota
	// HTTP10Close is HTTP/1.0 with "Connection: close".
	HTTP10Close
	// HTTP11 is HTTP/1.1, with "Connection: close".
	HTTP11
)

var httpVersions = vocabulary[HTTPVersion]{{HTTP10, "1.0"}, {HTTP10Close, "1.0C"}, {HTTP11, "1.1"}}

func (v HTTPVersion) String() string { return httpVersions.name(v) }

// MarshalText writes the version as http_protocol does.
func (v HTTPVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads the version as http_protocol does.
func (v *HTTPVersion) UnmarshalText(b []byte) error { return httpVersions.unmarshal(v, b) }

// Scheduler is a virtual server's IPVS scheduler (lb_algo, lvs_sched);
// its word is the kernel module's name (ip_vs_NAME).
type Scheduler uint8

// The schedulers keepalived accepts (check_parser.c lvs_schedulers); an
// unset one is resolved at finalize (wlc, with a warning).
const (
	SchedulerUnset Scheduler = iota
	SchedulerRR
	SchedulerWRR
	SchedulerLC
	SchedulerWLC
	SchedulerLBLC
	SchedulerSH
	SchedulerMH
	SchedulerDH
	SchedulerFO
	SchedulerOVF
	SchedulerLBLCR
	SchedulerSED
	SchedulerNQ
)

var schedulers = vocabulary[Scheduler]{
	{SchedulerRR, "rr"}, {SchedulerWRR, "wrr"}, {SchedulerLC, "lc"}, {SchedulerWLC, "wlc"}, {SchedulerLBLC, "lblc"},
	{SchedulerSH, "sh"}, {SchedulerMH, "mh"}, {SchedulerDH, "dh"}, {SchedulerFO, "fo"}, {SchedulerOVF, "ovf"},
	{SchedulerLBLCR, "lblcr"}, {SchedulerSED, "sed"}, {SchedulerNQ, "nq"},
}

func (s Scheduler) String() string { return schedulers.name(s) }

// MarshalText writes the scheduler's name.
func (s Scheduler) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the scheduler's name.
func (s *Scheduler) UnmarshalText(b []byte) error { return schedulers.unmarshal(s, b) }

// FlushOnStop is global_defs' lvs_flush_onstop: what of the IPVS table is
// removed at stop.
type FlushOnStop uint8

// The lvs_flush_onstop settings.
const (
	// FlushNone: the keyword is not given.
	FlushNone FlushOnStop = iota
	// FlushAll: the keyword alone.
	FlushAll
	// FlushVS is its VS argument: each of Tandem's virtual services is
	// deleted whole, the kernel removing its real servers, instead of
	// real server by real server (keepalived ipwrapper.c
	// clear_service_vs). keepalived knows no other argument.
	FlushVS
)

var flushOnStops = vocabulary[FlushOnStop]{{FlushAll, "all"}, {FlushVS, "VS"}}

func (f FlushOnStop) String() string { return flushOnStops.name(f) }

// MarshalText writes the setting's word.
func (f FlushOnStop) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads the setting's word.
func (f *FlushOnStop) UnmarshalText(b []byte) error { return flushOnStops.unmarshal(f, b) }
