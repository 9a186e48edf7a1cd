package config

import "time"

// SMTP_CHECK's deprecated host { } blocks, as keepalived 2.2.7 reads them
// (check_smtp.c smtp_host_handler, smtp_check_end_handler; check_api.c
// install_checker_common_keywords):
//
//   - each host block takes the connection keywords (connect_ip,
//     connect_port, bindto, bind_port, bind_if, fwmark, connect_timeout)
//     for a checker of its own; a host's connect_timeout defaults to the
//     real server's or virtual server's, not to the SMTP_CHECK's;
//   - the other common keywords (retry, delay_before_retry, warmup,
//     delay_loop, alpha, log_all_failures) set the SMTP_CHECK's own value,
//     which every host's checker then shares, the last one written
//     winning: Tandem does the same and says so;
//   - the SMTP_CHECK itself is also run, to its own target, if it set a
//     connection keyword; otherwise the hosts are all there is.

// smtpHost is one host block: its position and connection settings.
type smtpHost struct {
	pos  Pos
	conn Checker
}

// smtpHost reads a host block into its connection settings; its shared
// keywords go to c.
func (p *parser) smtpHost(n *node, c *Checker) (smtpHost, bool) {
	h := smtpHost{pos: n.Keyword.Pos}
	if !p.args(n, 0, 0) {
		return h, false
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return h, false
	}
	hs := p.connHandlers(&h.conn)
	hs["connect_timeout"] = p.setDurPtr(&h.conn.Set.ConnectTimeout, time.Millisecond, maxCheckTime)
	shared := merge(p.timingHandlers(&c.Set, 0), map[string]handler{"log_all_failures": p.setFlag(&c.LogAll)})
	for _, kw := range []string{"retry", "delay_before_retry", "warmup", "delay_loop", "alpha", "log_all_failures"} {
		set := shared[kw]
		hs[kw] = func(k *node) {
			p.warnf(k.Keyword.Pos, "SMTP_CHECK host: %s sets the whole SMTP_CHECK's value, shared by all its hosts, as keepalived does; give each host an SMTP_CHECK of its own for a value of its own", kw)
			set(k)
		}
	}
	p.block("host", kids, hs)
	return h, true
}

// smtpCheckers makes the checkers of an SMTP_CHECK with host blocks.
func smtpCheckers(p *parser, c *Checker, hosts []smtpHost) []*Checker {
	p.warnf(hosts[0].pos, "SMTP_CHECK: host { } blocks are deprecated; each is run as an SMTP_CHECK of its own")
	var out []*Checker
	if c.ConnectIP.IsValid() || c.ConnectPort != 0 || c.BindTo.IsValid() || c.BindPort != 0 || c.BindIf != "" || c.FWMark != 0 || c.Set.ConnectTimeout != nil {
		out = append(out, c)
	}
	for _, h := range hosts {
		hc := *c
		hc.Pos = h.pos
		smtp := *c.SMTP
		hc.SMTP = &smtp
		hc.ConnectIP, hc.ConnectPort, hc.BindTo, hc.BindPort, hc.BindIf, hc.FWMark = h.conn.ConnectIP, h.conn.ConnectPort, h.conn.BindTo, h.conn.BindPort, h.conn.BindIf, h.conn.FWMark
		hc.Set.ConnectTimeout = h.conn.Set.ConnectTimeout
		out = append(out, &hc)
	}
	return out
}
