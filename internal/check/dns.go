package check

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"tandem/internal/config"
)

// DNS is DNS_CHECK (keepalived check_dns.c): one UDP query for name and
// type with recursion desired (defaults: SOA for "."). The server is up
// when a reply with the query's ID arrives within connect_timeout, has the
// QR bit and rcode NOERROR; the answer section is not examined
// (dns_recv_thread). Replies with another ID are skipped, as keepalived
// does (miekg/dns reads on); a reply without QR fails the check, where
// keepalived would wait for another.
type DNS struct {
	cfg   *config.Checker
	addr  netip.AddrPort
	qtype uint16
	name  string
}

func newDNS(c *config.Checker, addr netip.AddrPort) (*DNS, error) {
	if c.DNS == nil {
		return nil, fmt.Errorf("%s: no settings", c.Type)
	}
	return &DNS{cfg: c, addr: addr, qtype: uint16(c.DNS.Type), name: dns.Fqdn(c.DNS.Name)}, nil
}

// Check sends the query and judges the reply.
func (d *DNS) Check(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout(d.cfg))
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(d.name, d.qtype)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Dialer: dialer(d.cfg, "udp"), Timeout: timeout(d.cfg)}
	r, _, err := c.ExchangeContext(ctx, m, hostPort(d.addr))
	switch {
	case err != nil:
		return result(start, fmt.Errorf("%s %s: %w", config.CheckDNS, d.addr, err))
	case !r.Response:
		return result(start, fmt.Errorf("%s %s: reply without the QR bit", config.CheckDNS, d.addr))
	case r.Rcode != dns.RcodeSuccess:
		return result(start, fmt.Errorf("%s %s: rcode %s", config.CheckDNS, d.addr, dns.RcodeToString[r.Rcode]))
	}
	return result(start, nil)
}
