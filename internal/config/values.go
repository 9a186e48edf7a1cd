package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

// Value checks that follow keepalived's own (global_parser.c,
// vrrp_parser.c, check_parser.c): the ranges and spellings it takes, so
// that a configuration keepalived refuses is refused here too, and one it
// takes is taken.

// Limits of the gratuitous ARP keywords (keepalived global_parser.c,
// vrrp_parser.c; TIMER_HZ is 1000000).
const (
	// maxGarpSecs is UINT_MAX / TIMER_HZ: garp_master_delay and
	// garp_lower_prio_delay are whole seconds up to it.
	maxGarpSecs = math.MaxUint32 / 1000000
	// maxGarpRefresh: garp_master_refresh is whole seconds up to UINT_MAX.
	maxGarpRefresh = math.MaxUint32
	// maxGarpInterval: vrrp_garp_interval and vrrp_gna_interval are
	// microseconds in an unsigned int, 0.000001 .. 4294.967295 s.
	maxGarpInterval = math.MaxUint32 * time.Microsecond
)

// exactEnumOf reads argument i of n as one of the words of vc (of allowed,
// when given), matching case as keepalived does for this keyword (it
// compares with strcmp: lb_kind, lb_algo, ip_family, state, auth_type,
// lvs_flush_onstop); a word that differs only in case is an error that
// says how to write it.
func exactEnumOf[T ~uint8 | ~uint16](p *parser, n *node, i int, vc vocabulary[T], allowed ...T) (T, bool) {
	t := n.Args[i]
	for _, w := range vc {
		if t.Text == w.text && (len(allowed) == 0 || slices.Contains(allowed, w.v)) {
			return w.v, true
		}
	}
	if v, ok := vc.parse(t.Text); ok && (len(allowed) == 0 || slices.Contains(allowed, v)) {
		p.errorf(t.Pos, "%s: %q must be written %q: keepalived matches this word's case", n.Keyword.Text, t.Text, vc.name(v))
		return 0, false
	}
	return enumOf(p, n, i, vc, allowed...)
}

// setExactEnumOf is setEnumOf for the keywords whose words keepalived
// matches case-sensitively.
func setExactEnumOf[T ~uint8 | ~uint16](p *parser, dst *T, vc vocabulary[T]) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if v, ok := exactEnumOf(p, n, 0, vc); ok {
			*dst = v
		}
	}
}

// wholeSecsTok reads t as a number of whole seconds in [lo, hi]:
// keepalived reads garp_master_delay, garp_master_refresh,
// garp_lower_prio_delay, smtp_connect_timeout, persistence_timeout and
// lvs_timeouts as unsigned integers (read_unsigned_strvec), so "0.5" is
// refused.
func (p *parser) wholeSecsTok(n *node, t syntax.Token, lo, hi int) (Duration, bool) {
	if d, err := parseSeconds(t.Text); err == nil && d%time.Second != 0 {
		p.errorf(t.Pos, "%s: %q is not a whole number of seconds (keepalived reads an integer here)", n.Keyword.Text, t.Text)
		return 0, false
	}
	v, ok := p.uintTok(n, t, lo, hi)
	return Duration(time.Duration(v) * time.Second), ok
}

// setWholeSecs is a keyword of one wholeSecsTok argument.
func (p *parser) setWholeSecs(dst *Duration, lo, hi int) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if v, ok := p.wholeSecsTok(n, n.Args[0], lo, hi); ok {
			*dst = v
		}
	}
}

// setStartupDelay reads vrrp_startup_delay: decimal seconds 0.001 ..
// 4294.967295 (global_parser.c vrrp_startup_delay_handler), a warning
// from a minute on, where keepalived logs that it is very large.
func (p *parser) setStartupDelay(dst *Duration) handler {
	return func(n *node) {
		v, ok := p.durArg(n, time.Millisecond, maxGarpInterval)
		if !ok {
			return
		}
		if v >= Duration(time.Minute) {
			p.warnf(n.Args[0].Pos, "vrrp_startup_delay %s s is very large", v.Seconds())
		}
		*dst = v
	}
}

// setRepeat reads a garp *_repeat count. keepalived takes 0..UINT_MAX but
// reports 0 as a configuration error and uses 1 ("must be greater than
// 0"): an error here too.
func (p *parser) setRepeat(dst *int) handler {
	return func(n *node) {
		v, ok := p.intArg(n, 0, math.MaxUint32)
		if !ok {
			return
		}
		if v == 0 {
			p.errorf(n.Args[0].Pos, "%s must be greater than 0", n.Keyword.Text)
			return
		}
		*dst = v
	}
}

// setGarpInterval reads vrrp_garp_interval or vrrp_gna_interval: decimal
// seconds with microsecond precision, 0.000001 .. 4294.967295 s
// (global_parser.c: read_decimal_unsigned_strvec(1, UINT_MAX,
// TIMER_HZ_DIGITS)); 0 is refused. keepalived logs that an interval of a
// second or more is "very large": a warning here.
func (p *parser) setGarpInterval(dst *Duration) handler {
	return func(n *node) {
		v, ok := p.durArg(n, time.Microsecond, maxGarpInterval)
		if !ok {
			return
		}
		if v >= Duration(time.Second) {
			p.warnf(n.Args[0].Pos, "%s %s s is very large (it is the pause between two gratuitous messages on one interface)", n.Keyword.Text, v.Seconds())
		}
		*dst = v
	}
}

// dynamicInterfaces reads "dynamic_interfaces [allow_if_changes]"
// (global_parser.c dynamic_interfaces_handler). The option lets an
// interface be deleted and recreated with another type or parent under an
// instance (keepalived.conf(5)); Tandem finds a waiting instance's
// interface by name whatever its type, so it behaves as if the option were
// always given, and says so.
func (p *parser) dynamicInterfaces(g *Global) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 0, 1) {
			return
		}
		if len(n.Args) == 1 && n.Args[0].Text != "allow_if_changes" {
			p.errorf(n.Args[0].Pos, "dynamic_interfaces: unknown option %q (keepalived knows only allow_if_changes)", n.Args[0].Text)
			return
		}
		g.DynamicInterfaces = true
		if len(n.Args) == 1 {
			p.warnf(n.Args[0].Pos, "dynamic_interfaces: allow_if_changes has no further effect: Tandem finds an instance's interface by name, whatever its type or parent")
		}
	}
}

// dnsName checks a DNS_CHECK name as keepalived does (check_dns.c
// dns_name_handler): no empty label, so no leading "." except the root
// itself, and no "..".
func dnsNameOK(name string) error {
	if len(name) > 1 && name[0] == '.' {
		return fmt.Errorf("name %q has an empty label", name)
	}
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '.' && name[i+1] == '.' {
			return fmt.Errorf("name %q has an empty label", name)
		}
	}
	return nil
}

// readHex reads UDP_CHECK's payload or require_reply bytes as keepalived
// does (lib/parser.c read_hex_str over the line's words joined by
// spaces): hex digits in either case, two to a byte; a space ends a byte,
// so a lone digit is a byte of its own ("1 2" is 01 02, "abc" is ab 0c).
// With wildcards (require_reply only), x or X is a nibble that matches
// anything: mask has its bits set. An empty or malformed string is an
// error, as keepalived reports it.
func readHex(words []string, wildcards bool) (data, mask []byte, err error) {
	s := strings.Join(words, " ")
	masked := false
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		var b, m byte
		for n := 0; n < 2 && i < len(s) && s[i] != ' ' && s[i] != '\t'; n++ {
			v, vm, ok := hexNibble(s[i], wildcards)
			if !ok {
				return nil, nil, fmt.Errorf("%q is not a hex digit", s[i])
			}
			b, m = b<<4|v, m<<4|vm
			masked = masked || vm != 0
			i++
		}
		data, mask = append(data, b), append(mask, m)
	}
	if len(data) == 0 {
		return nil, nil, errors.New("no hex digits")
	}
	if !masked {
		mask = nil
	}
	return data, mask, nil
}

func hexNibble(c byte, wildcards bool) (v, mask byte, ok bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', 0, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, 0, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, 0, true
	case wildcards && (c == 'x' || c == 'X'):
		return 0, 0xf, true
	}
	return 0, 0, false
}

// hexWords writes data (and mask's wildcard nibbles as x) as readHex
// reads it back: two digits a byte, bytes separated by spaces.
func hexWords(data, mask []byte) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i, d := range data {
		if i > 0 {
			b.WriteByte(' ')
		}
		m := byte(0)
		if mask != nil {
			m = mask[i]
		}
		for _, sh := range []uint{4, 0} {
			if m>>sh&0xf != 0 {
				b.WriteByte('x')
			} else {
				b.WriteByte(digits[d>>sh&0xf])
			}
		}
	}
	return b.String()
}
