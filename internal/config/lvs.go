package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

const (
	// maxWeight is IPVS's weight limit as keepalived reads it.
	maxWeight = 65535
	// maxPersistence is keepalived's LVS_MAX_TIMEOUT (31 days).
	maxPersistence = 31 * 24 * time.Hour
	// defaultPersistence is IPVS_SVC_PERSISTENT_TIMEOUT, used when
	// persistence_timeout has no value.
	defaultPersistence = 360 * time.Second
	maxCheckTime       = 24 * time.Hour
)

// timingHandlers reads the timing keywords shared by virtual servers, real
// servers and checkers. keepalived takes retry 1.. on a virtual or real
// server (check_parser.c), 0.. in a checker (check_api.c): minRetry.
func (p *parser) timingHandlers(t *TimingDefaults, minRetry int) map[string]handler {
	retry := p.setIntPtr(&t.Retry, minRetry, 1<<31-1)
	return map[string]handler{
		"delay_loop":         p.setDurPtr(&t.DelayLoop, time.Millisecond, maxCheckTime),
		"connect_timeout":    p.setDurPtr(&t.ConnectTimeout, time.Millisecond, maxCheckTime),
		"retry":              retry,
		"delay_before_retry": p.setDurPtr(&t.DelayBeforeRetry, 0, maxCheckTime),
		"warmup":             p.setDurPtr(&t.Warmup, 0, maxCheckTime),
		"alpha":              p.setFlagPtr(&t.Alpha),
		// nb_get_retry is keepalived's old name for retry (HTTP_GET and
		// SSL_GET in 1.x; the seeds use it in TCP_CHECK too).
		"nb_get_retry": func(n *node) {
			p.warnf(n.Keyword.Pos, "nb_get_retry is deprecated; read as retry %s", strings.Join(tokenTexts(n.Args), " "))
			retry(n)
		},
	}
}

func tokenTexts(ts []syntax.Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Text
	}
	return out
}

func (p *parser) serverGroup(n *node, cfg *Config) {
	g := &ServerGroup{Pos: n.Keyword.Pos}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	g.Name = name
	var v4, v6, noFamily bool
	for _, k := range kids {
		if e, ok := p.groupEntry(k); ok {
			g.Entries = append(g.Entries, e)
			v4 = v4 || e.IP.Is4() || e.FWMarkFamily == Inet
			v6 = v6 || e.IP.Is6() || e.FWMarkFamily == Inet6
			noFamily = noFamily || e.FWMark != 0 && e.FWMarkFamily == FamilyUnset
		}
	}
	if v4 && v6 && noFamily {
		// vsg_handler() removes such a group.
		p.errorf(n.Keyword.Pos, "virtual_server_group %s: IPv4 and IPv6 entries with a fwmark of no family; write fwmark N inet or inet6", name)
		return
	}
	cfg.ServerGroups = append(cfg.ServerGroups, g)
}

// groupEntry reads "IP[-LAST] PORT" or "fwmark N" (keepalived
// check_parser.c, vsg_handler: a range gives the last byte (IPv4) or last
// 16-bit group (IPv6) of the final address).
func (p *parser) groupEntry(k *node) (ServerGroupEntry, bool) {
	e := ServerGroupEntry{Pos: k.Keyword.Pos}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "virtual_server_group: unexpected block")
		return e, false
	}
	if k.Keyword.Text == "fwmark" {
		// alloc_vsg_entry(): "fwmark N [inet|inet6]", spelt exactly.
		if !p.args(k, 1, -1) {
			return e, false
		}
		k = p.firstArgs(k, 2)
		v, ok := p.uintTok(k, k.Args[0], 1, 1<<32-1)
		e.FWMark = uint32(v)
		if len(k.Args) == 2 {
			switch k.Args[1].Text {
			case "inet":
				e.FWMarkFamily = Inet
			case "inet6":
				e.FWMarkFamily = Inet6
			default:
				p.errorf(k.Args[1].Pos, "virtual_server_group: fwmark %s family %q is not inet or inet6", k.Args[0].Text, k.Args[1].Text)
				return e, false
			}
		}
		return e, ok
	}
	if !p.args(k, 0, 1) {
		return e, false
	}
	first, last, hasRange := strings.Cut(k.Keyword.Text, "-")
	a, ok := p.addrTok(k, syntax.Token{Text: first, Pos: k.Keyword.Pos})
	if !ok {
		return e, false
	}
	e.IP = a
	if hasRange {
		l, ok := rangeEnd(a, last)
		if !ok {
			p.errorf(k.Keyword.Pos, "virtual_server_group: bad address range %q", k.Keyword.Text)
			return e, false
		}
		e.LastIP = l
	}
	if len(k.Args) == 1 {
		v, ok := p.portTok(k, k.Args[0])
		if !ok {
			return e, false
		}
		e.Port = v
	}
	return e, true
}

// parseUintBase parses an unsigned number in base, at most hi.
func parseUintBase(s string, base int, hi uint64) (uint64, error) {
	v, err := strconv.ParseUint(s, base, 64)
	if err == nil && v > hi {
		err = fmt.Errorf("%s is above %d", s, hi)
	}
	return v, err
}

// rangeEnd builds the last address of "A-N": N replaces A's last byte (IPv4,
// decimal) or last 16 bits (IPv6, hex), and must not be below it.
func rangeEnd(a netip.Addr, last string) (netip.Addr, bool) {
	if a.Is4() {
		v, err := parseUintBase(last, 10, 255)
		b := a.As4()
		if err != nil || uint64(b[3]) > v {
			return netip.Addr{}, false
		}
		b[3] = byte(v)
		return netip.AddrFrom4(b), true
	}
	v, err := parseUintBase(last, 16, 0xffff)
	b := a.As16()
	if err != nil || uint64(b[14])<<8|uint64(b[15]) > v {
		return netip.Addr{}, false
	}
	b[14], b[15] = byte(v>>8), byte(v)
	return netip.AddrFrom16(b), true
}

func (p *parser) virtualServer(n *node, cfg *Config) {
	vs := &VirtualServer{Pos: n.Keyword.Pos, Quorum: 1, Weight: 1}
	if !p.args(n, 1, -1) {
		return
	}
	// vs_handler() reads "IP [PORT]", "fwmark N" or "group NAME" and no
	// further word.
	n = p.firstArgs(n, 2)
	switch n.Args[0].Text {
	case "fwmark", "group":
		if !p.args(n, 2, 2) {
			return
		}
		if n.Args[0].Text == "group" {
			vs.Group = n.Args[1].Text
		} else {
			v, ok := p.uintTok(n, n.Args[1], 1, 1<<32-1)
			if !ok {
				return
			}
			vs.FWMark = uint32(v)
		}
	default:
		var ok bool
		if vs.IP, vs.Port, ok = p.addrPort(n); !ok {
			return
		}
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	u := &vs.unset
	hs := merge(p.timingHandlers(&vs.Defaults, 1), map[string]handler{
		"ip_family":   setExactEnumOf(p, &vs.Family, families),
		"lb_algo":     setExactEnumOf(p, &vs.Scheduler, schedulers),
		"lvs_sched":   setExactEnumOf(p, &vs.Scheduler, schedulers),
		"lb_kind":     p.methodTo(&vs.Method, &vs.Tunnel),
		"lvs_method":  p.methodTo(&vs.Method, &vs.Tunnel),
		"hashed":      p.schedFlag(vs),
		"flag-1":      p.schedFlag(vs),
		"flag-2":      p.schedFlag(vs),
		"flag-3":      p.schedFlag(vs),
		"sh-port":     p.schedFlag(vs),
		"sh-fallback": p.schedFlag(vs),
		"mh-port":     p.schedFlag(vs),
		"mh-fallback": p.schedFlag(vs),
		"ops":         p.schedFlag(vs),
		"persistence_timeout": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 1) {
				return
			}
			if len(n.Args) == 0 {
				vs.Persistence = Duration(defaultPersistence)
				return
			}
			// keepalived rejects 0 (range 1..LVS_MAX_TIMEOUT) and keeps the
			// service non-persistent; the seeds write 0 to mean exactly that.
			if n.Args[0].Text == "0" {
				p.warnf(n.Args[0].Pos, "persistence_timeout 0 is not valid in keepalived; read as no persistence (remove the line)")
				vs.Persistence = 0
				return
			}
			// keepalived: whole seconds 1..LVS_MAX_TIMEOUT.
			if v, ok := p.wholeSecsTok(n, n.Args[0], 1, int(maxPersistence/time.Second)); ok {
				vs.Persistence = v
			}
		},
		"persistence_granularity": func(n *node) {
			if p.noBlock(n) && p.args(n, 1, 1) {
				u.granularity = &n.Args[0]
			}
		},
		"persistence_engine": p.setStr(&vs.PersistenceEngine),
		"protocol":           setEnumOf(p, &vs.Protocol, protocols),
		"ha_suspend":         p.setConst(&vs.HASuspend, true),
		"virtualhost":        p.setStr(&vs.Virtualhost),
		"omega":              p.setConst(&vs.Omega, true),
		"quorum":             p.setInt(&vs.Quorum, 1, 1<<31-1),
		"hysteresis":         p.setInt(&vs.Hysteresis, 0, 1<<31-1),
		"quorum_up":          p.setCmd(&vs.QuorumUp),
		"quorum_down":        p.setCmd(&vs.QuorumDown),
		"inhibit_on_failure": p.setConst(&vs.Inhibit, true),
		// keepalived's vs_alpha_handler() ignores its argument, unlike
		// the real server's and the checker's alpha.
		"alpha":      p.setConstPtr(&vs.Defaults.Alpha, true),
		"smtp_alert": p.setFlagPtr(&u.smtpAlert),
		"weight":     p.setInt(&vs.Weight, 1, maxWeight),
		"sorry_server": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 2) {
				return
			}
			ss := &SorryServer{Pos: n.Keyword.Pos}
			var ok bool
			if ss.IP, ss.Port, ok = p.addrPort(n); !ok {
				return
			}
			if vs.SorryServer != nil {
				ss.Inhibit, ss.Method, ss.Tunnel = vs.SorryServer.Inhibit, vs.SorryServer.Method, vs.SorryServer.Tunnel
			}
			vs.SorryServer = ss
		},
		"sorry_server_inhibit": func(n *node) {
			if p.noBlock(n) {
				p.ignoreArgsFrom(n, 0)
				p.sorry(vs, n).Inhibit = true
			}
		},
		"sorry_server_lvs_method": func(n *node) {
			ss := p.sorry(vs, n)
			p.methodTo(&ss.Method, &ss.Tunnel)(n)
		},
		"real_server": func(n *node) { p.realServer(n, vs) },
	})
	p.block("virtual_server", kids, hs)
	cfg.VirtualServers = append(cfg.VirtualServers, vs)
}

// addrPort reads the "IP [PORT]" arguments of n (the caller checked there
// are one or two).
func (p *parser) addrPort(n *node) (netip.Addr, int, bool) {
	a, ok := p.addrTok(n, n.Args[0])
	if !ok {
		return a, 0, false
	}
	port := 0
	if len(n.Args) == 2 {
		if port, ok = p.portTok(n, n.Args[1]); !ok {
			return a, 0, false
		}
	}
	return a, port, true
}

// sorry returns the virtual server's sorry server, creating an empty one
// that validation reports if no sorry_server line gives its address.
func (p *parser) sorry(vs *VirtualServer, n *node) *SorryServer {
	if vs.SorryServer == nil {
		vs.SorryServer = &SorryServer{Pos: n.Keyword.Pos}
	}
	return vs.SorryServer
}

func (p *parser) schedFlag(vs *VirtualServer) handler {
	return func(n *node) {
		if p.noBlock(n) {
			p.ignoreArgsFrom(n, 0) // lbflags_handler() reads the keyword only
			vs.unset.schedFlags = append(vs.unset.schedFlags, n.Keyword)
		}
	}
}

// methodTo reads NAT, DR or TUN into dst, and into tun the options a TUN
// may be followed by, as keepalived's svr_forwarding_handler reads them
// (check_parser.c): "type ipip|gue|gre", "port N" (1..65535),
// "nocsum|csum|remcsum", in any order, the last of each winning; a gue
// tunnel needs a port and only gue has one, ipip takes no checksum
// option, gre no remcsum. Each line starts from plain ipip, as
// keepalived's does. keepalived also takes these words after NAT and DR,
// where they mean nothing: Tandem says so as an error.
func (p *parser) methodTo(dst *Method, tun *Tunnel) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, -1) {
			return
		}
		m, ok := exactEnumOf(p, n, 0, methods)
		if !ok {
			return
		}
		rest := n.Args[1:]
		if len(rest) > 0 && m != TUN {
			p.errorf(rest[0].Pos, "%s %s takes no options", n.Keyword.Text, m)
			return
		}
		var t Tunnel
		var portAt syntax.Token
		for i := 1; i < len(n.Args); i++ {
			w := n.Args[i]
			switch {
			case w.Text == "type" || w.Text == "port":
				if i+1 == len(n.Args) {
					p.errorf(w.Pos, "%s TUN: %s needs a value", n.Keyword.Text, w.Text)
					return
				}
				i++
				if w.Text == "port" {
					v, ok := p.uintTok(n, n.Args[i], 1, 65535)
					if !ok {
						return
					}
					t.Port, portAt = v, w
					continue
				}
				if t.Type, ok = exactEnumOf(p, n, i, tunnelTypes); !ok {
					return
				}
			default:
				c, known := tunnelCsums.parse(w.Text)
				if !known || w.Text != c.String() {
					p.errorf(w.Pos, "%s TUN: %q is not a tunnel option (type, port, nocsum, csum, remcsum)", n.Keyword.Text, w.Text)
					return
				}
				t.Csum = c
			}
		}
		switch {
		case t.Type == TunnelGUE && t.Port == 0:
			p.errorf(n.Args[0].Pos, "%s TUN type gue: a gue tunnel needs \"port N\" (the real servers' GUE port)", n.Keyword.Text)
			return
		case t.Type != TunnelGUE && t.Port != 0:
			p.errorf(portAt.Pos, "%s TUN type %s: only gue tunnels have a port", n.Keyword.Text, t.Type)
			return
		case t.Type == TunnelIPIP && t.Csum != TunnelNoCsum:
			p.errorf(n.Args[0].Pos, "%s TUN type ipip: ipip tunnels have no checksum option (%s)", n.Keyword.Text, t.Csum)
			return
		case t.Type == TunnelGRE && t.Csum == TunnelRemCsum:
			p.errorf(n.Args[0].Pos, "%s TUN type gre: gre tunnels have no remote checksum option (remcsum)", n.Keyword.Text)
			return
		}
		*dst, *tun = m, t
	}
}

func (p *parser) realServer(n *node, vs *VirtualServer) {
	rs := &RealServer{Pos: n.Keyword.Pos, Weight: -1}
	if !p.args(n, 1, -1) {
		return
	}
	n = p.firstArgs(n, 2) // rs_handler() reads "IP [PORT]" and no further word
	var ok bool
	if rs.IP, rs.Port, ok = p.addrPort(n); !ok {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	u := &rs.unset
	hs := merge(p.timingHandlers(&rs.Defaults, 1), map[string]handler{
		"weight":             p.setInt(&rs.Weight, 0, maxWeight),
		"lvs_method":         p.methodTo(&rs.Method, &rs.Tunnel),
		"uthreshold":         p.setInt(&rs.UThreshold, 0, 1<<31-1),
		"lthreshold":         p.setInt(&rs.LThreshold, 0, 1<<31-1),
		"inhibit_on_failure": p.setFlagPtr(&u.inhibit),
		"notify_up":          p.setCmd(&rs.NotifyUp),
		"notify_down":        p.setCmd(&rs.NotifyDown),
		"smtp_alert":         p.setFlagPtr(&u.smtpAlert),
		"virtualhost":        p.setStr(&rs.Virtualhost),
	})
	for _, w := range checkTypes {
		hs[w.text] = func(n *node) { rs.Checkers = append(rs.Checkers, p.checker(n, w.v)...) }
	}
	p.block("real_server", kids, hs)
	vs.RealServers = append(vs.RealServers, rs)
}

// checker reads one checker block. SMTP_CHECK's deprecated host { } blocks
// each become a checker of their own, as keepalived treats them.
func (p *parser) checker(n *node, typ CheckType) []*Checker {
	c := &Checker{Pos: n.Keyword.Pos, Type: typ}
	if !p.args(n, 0, 0) {
		return nil
	}
	kids := n.Block // a checker with no block uses every default
	hs := merge(p.timingHandlers(&c.Set, 0), p.connHandlers(c), map[string]handler{
		"log_all_failures": p.setFlag(&c.LogAll),
	})
	ctx := typ.String()
	var hosts []smtpHost
	switch typ {
	case CheckHTTP, CheckSSL:
		c.HTTP = &HTTPCheck{Protocol: HTTP10}
		hs = merge(hs, p.httpHandlers(c.HTTP, typ == CheckSSL))
	case CheckMisc:
		c.Misc = &MiscCheck{}
		hs = merge(hs, map[string]handler{
			"misc_path":    p.setCmd(&c.Misc.Command),
			"misc_timeout": p.setDur(&c.Misc.Timeout, time.Millisecond, maxCheckTime),
			"misc_dynamic": p.setConst(&c.Misc.Dynamic, true),
			"user":         p.userTo(&c.Misc.User, &c.Misc.Group),
		})
	case CheckSMTP:
		c.SMTP = &SMTPCheck{HeloName: "smtpchecker.keepalived.org"} // check_smtp.h SMTP_DEFAULT_HELO
		hs = merge(hs, map[string]handler{
			"helo_name": p.setStr(&c.SMTP.HeloName),
			"host": func(n *node) {
				if h, ok := p.smtpHost(n, c); ok {
					hosts = append(hosts, h)
				}
			},
		})
	case CheckDNS:
		c.DNS = &DNSCheck{Type: 6, Name: "."} // check_dns.h: DNS_DEFAULT_TYPE SOA, name "" (the root)
		hs = merge(hs, map[string]handler{
			"type": setEnumOf(p, &c.DNS.Type, dnsTypes),
			"name": func(n *node) {
				if !p.noBlock(n) || !p.args(n, 1, 1) {
					return
				}
				if err := dnsNameOK(n.Args[0].Text); err != nil {
					p.errorf(n.Args[0].Pos, "name: %v (keepalived refuses it too)", err)
					return
				}
				c.DNS.Name = n.Args[0].Text
			},
		})
	case CheckUDP:
		c.UDP = &UDPCheck{MaxReply: 255} // check_udp.c: max_reply_len UINT8_MAX
		hs = merge(hs, p.udpHandlers(c.UDP))
	case CheckBFD:
		// BFD_CHECK reads only name and alpha (check_bfd.c).
		hs = p.bfdCheck(c)
	case CheckFile:
		c.File = &FileCheck{}
		hs = merge(hs, map[string]handler{
			"track_file": p.setStr(&c.File.TrackFile),
			"weight":     p.weightTo(&c.File.Weight, &c.File.Reverse, &c.File.WeightSet),
		})
	}
	p.block(ctx, kids, hs)
	if typ == CheckMisc && len(c.Misc.Command) == 0 {
		p.errorf(n.Keyword.Pos, "MISC_CHECK: misc_path is required")
	}
	if typ == CheckFile && c.File.TrackFile == "" {
		p.errorf(n.Keyword.Pos, "FILE_CHECK: track_file is required")
	}
	if c.HTTP != nil && len(c.HTTP.URLs) == 0 {
		p.errorf(n.Keyword.Pos, "%s: at least one url { path ... } is required", typ)
	}
	if len(hosts) == 0 {
		return []*Checker{c}
	}
	return smtpCheckers(p, c, hosts)
}

// connHandlers reads where a checker connects from and to (check_api.c).
func (p *parser) connHandlers(c *Checker) map[string]handler {
	return map[string]handler{
		"connect_ip":   p.setAddr(&c.ConnectIP),
		"connect_port": p.setPort(&c.ConnectPort),
		"bindto":       p.setAddr(&c.BindTo),
		"bind_port":    p.setPort(&c.BindPort),
		"bind_if":      p.setStr(&c.BindIf),
		"fwmark": func(n *node) {
			if p.noBlock(n) && p.args(n, 1, 1) {
				v, ok := p.uintTok(n, n.Args[0], 1, 1<<32-1)
				if ok {
					c.FWMark = uint32(v)
				}
			}
		},
	}
}

func (p *parser) httpHandlers(h *HTTPCheck, ssl bool) map[string]handler {
	// tls_compliant exists in SSL_GET only (keepalived check_http.c
	// installs it for SSL_GET and its urls); in HTTP_GET keepalived
	// reports an unknown keyword and goes on.
	tlsCompliant := func(dst *bool) handler {
		if ssl {
			return p.setFlag(dst)
		}
		return func(n *node) {
			p.warnf(n.Keyword.Pos, "tls_compliant: HTTP_GET has no TLS; only SSL_GET takes it; ignored")
		}
	}
	return map[string]handler{
		"http_protocol": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			// check_http.c: "1.0", "1.1", and "1.0C"/"1.0c" (1.0 with
			// Connection: close).
			v, ok := httpVersions.parse(n.Args[0].Text)
			if !ok {
				p.errorf(n.Args[0].Pos, "http_protocol: %q is not 1.0, 1.0C or 1.1", n.Args[0].Text)
				return
			}
			h.Protocol = v
		},
		"virtualhost":   p.setStr(&h.Virtualhost),
		"enable_sni":    p.setFlag(&h.EnableSNI),
		"sni_name":      p.setStr(&h.SNIName),
		"tls_compliant": tlsCompliant(&h.TLSCompliant),
		// keepalived checks one url per delay_loop while a server
		// starts or recovers, and fast_recovery checks them back to
		// back instead (keepalived.conf(5) fast_recovery); Tandem
		// checks all of a checker's urls back to back in every round.
		"fast_recovery": func(n *node) {
			if _, ok := p.boolArgs(n); ok {
				p.warnf(n.Keyword.Pos, "fast_recovery: Tandem always checks all urls back to back (what fast_recovery asks for), so the keyword changes nothing")
			}
		},
		"url": func(n *node) {
			if !p.args(n, 0, 0) {
				return
			}
			kids, ok := p.blockOf(n)
			if !ok {
				return
			}
			u := &URL{Pos: n.Keyword.Pos}
			p.block("url", kids, map[string]handler{
				"path":        p.setStr(&u.Path),
				"virtualhost": p.setStr(&u.Virtualhost),
				"digest": func(n *node) {
					if !p.noBlock(n) || !p.args(n, 1, 1) {
						return
					}
					d := strings.ToLower(n.Args[0].Text)
					if b, err := hex.DecodeString(d); err != nil || len(b) != 16 {
						p.errorf(n.Args[0].Pos, "digest: %q is not an MD5 digest (32 hex digits)", n.Args[0].Text)
						return
					}
					u.Digest = d
				},
				// regex is matched with Go's RE2, which accepts most PCRE
				// patterns keepalived users write; one it cannot compile
				// is an error here rather than a check that never passes.
				"regex": func(n *node) {
					if !p.noBlock(n) || !p.args(n, 1, 1) {
						return
					}
					re, err := regexp.Compile(n.Args[0].Text)
					if err != nil {
						p.errorf(n.Args[0].Pos, "regex: %q is not a pattern Tandem can use (Go RE2 syntax, not PCRE): %v", n.Args[0].Text, err)
						return
					}
					u.Regex = re
				},
				"regex_no_match": p.setConst(&u.RegexNoMatch, true),
				"tls_compliant":  tlsCompliant(&u.TLSCompliant),
				"status_code": func(n *node) {
					if !p.noBlock(n) || !p.args(n, 1, -1) {
						return
					}
					for _, t := range n.Args {
						if r, ok := p.statusRange(n, t); ok {
							u.StatusCodes = append(u.StatusCodes, r)
						}
					}
				},
			})
			if u.Path == "" {
				p.errorf(n.Keyword.Pos, "url: path is required")
				return
			}
			if len(u.StatusCodes) == 0 {
				// check_http.h: HTTP_DEFAULT_STATUS_CODE_MIN..MAX = 200..299.
				u.StatusCodes = []StatusRange{{200, 299}}
			}
			h.URLs = append(h.URLs, u)
		},
	}
}

// statusRange reads "200" or "200-299" (status codes 100..999).
func (p *parser) statusRange(n *node, t syntax.Token) (StatusRange, bool) {
	lo, hi, isRange := strings.Cut(t.Text, "-")
	a, ok := p.uintTok(n, syntax.Token{Text: lo, Pos: t.Pos}, 100, 999)
	if !ok {
		return StatusRange{}, false
	}
	b := a
	if isRange {
		if b, ok = p.uintTok(n, syntax.Token{Text: hi, Pos: t.Pos}, a, 999); !ok {
			return StatusRange{}, false
		}
	}
	return StatusRange{a, b}, true
}

func (p *parser) udpHandlers(u *UDPCheck) map[string]handler {
	// The bytes are the rest of the line, in keepalived's hex form
	// (readHex); only require_reply takes x wildcards.
	hexArg := func(n *node, wildcards bool) ([]byte, []byte, bool) {
		data, mask, err := readHex(tokenTexts(n.Args), wildcards)
		if err != nil {
			p.errorf(n.Args[0].Pos, "%s: %q is not a hex string: %v", n.Keyword.Text, strings.Join(tokenTexts(n.Args), " "), err)
			return nil, nil, false
		}
		return data, mask, true
	}
	return map[string]handler{
		"payload": func(n *node) {
			if p.noBlock(n) && p.args(n, 1, -1) {
				if b, _, ok := hexArg(n, false); ok {
					u.Payload = b
				}
			}
		},
		// require_reply [HEX]: a reply is needed, starting with HEX if given.
		"require_reply": func(n *node) {
			if !p.noBlock(n) {
				return
			}
			u.RequireReply = true
			if len(n.Args) > 0 {
				if b, m, ok := hexArg(n, true); ok {
					u.Reply, u.ReplyMask = b, m
				}
			}
		},
		"min_reply_length": p.setInt(&u.MinReply, 0, 65535),
		"max_reply_length": p.setInt(&u.MaxReply, 0, 65535),
	}
}
