package check

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// parsedChecker is the one checker of a real server configured by body,
// as config reads it, aimed at addr.
func parsedChecker(t *testing.T, addr, body string) Checker {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	cfg := lab.ParseConfig(t, fmt.Sprintf("virtual_server 10.0.0.1 %d {\n  protocol UDP\n  lb_algo rr\n  real_server %s %d {\n%s\n  }\n}\n", ap.Port(), ap.Addr(), ap.Port(), body))
	c := cfg.VirtualServers[0].RealServers[0].Checkers[0]
	c.Timing.ConnectTimeout = config.Duration(500 * time.Millisecond)
	ck, err := New(c, Target{Addr: ap}, Env{Log: lab.TestLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return ck
}

// TestDNSCheckTypes: DNS_CHECK sends a query of each type keepalived's
// check_dns.c knows, as numbered on the wire (issue 12 item 11).
func TestDNSCheckTypes(t *testing.T) {
	var mu sync.Mutex
	var got []dns.Question
	pcAddr := func() string {
		started := make(chan struct{})
		srv := &dns.Server{Net: "udp", Addr: "127.0.0.1:0", NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			mu.Lock()
			got = append(got, q.Question...)
			mu.Unlock()
			m := new(dns.Msg)
			m.SetReply(q)
			w.WriteMsg(m)
		})}
		done := make(chan struct{})
		go func() { defer close(done); srv.ListenAndServe() }()
		<-started
		t.Cleanup(func() { srv.Shutdown(); <-done })
		return srv.PacketConn.LocalAddr().String()
	}()
	for _, tt := range []struct {
		word string
		want uint16
	}{
		{"A", dns.TypeA}, {"NS", dns.TypeNS}, {"CNAME", dns.TypeCNAME}, {"SOA", dns.TypeSOA}, {"MX", dns.TypeMX},
		{"TXT", dns.TypeTXT}, {"AAAA", dns.TypeAAAA}, {"RRSIG", dns.TypeRRSIG}, {"dnskey", dns.TypeDNSKEY},
	} {
		t.Run(tt.word, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			ck := parsedChecker(t, pcAddr, "    DNS_CHECK {\n      type "+tt.word+"\n      name example.org\n    }")
			if r := ck.Check(context.Background()); !r.OK {
				t.Fatalf("check failed: %v", r.Err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0].Qtype != tt.want || got[0].Name != "example.org." {
				t.Errorf("server saw %v, want one query for example.org. of type %d (%s)", got, tt.want, dns.TypeToString[tt.want])
			}
		})
	}
}

// TestUDPCheckHex: UDP_CHECK sends payload's bytes and compares
// require_reply's, both in keepalived's hex form with x wildcards in the
// reply (issue 12 item 11).
func TestUDPCheckHex(t *testing.T) {
	var mu sync.Mutex
	var sent [][]byte
	reply := []byte{0x01, 0x02, 0x0a, 0xbc, 0x5f}
	addr := udpServer(t, func(b []byte) []byte {
		mu.Lock()
		sent = append(sent, append([]byte(nil), b...))
		mu.Unlock()
		return reply
	})
	for _, tt := range []struct {
		name, lines string
		payload     []byte
		ok          bool
	}{
		{"bytes over several words", "payload 01 02 0a\n      require_reply 0102 0A bc", []byte{1, 2, 0xa}, true},
		{"a lone digit is a byte", "payload 1 2 abc\n      require_reply 1 2 a", []byte{1, 2, 0xab, 0x0c}, true},
		{"wildcard nibbles", "payload ff\n      require_reply 0x xx 0a xc 5X", []byte{0xff}, true},
		{"a differing byte fails", "payload ff\n      require_reply 01 03", []byte{0xff}, false},
		{"a wildcard does not cover the other nibble", "payload ff\n      require_reply 01 02 0a ac", []byte{0xff}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			sent = nil
			mu.Unlock()
			ck := parsedChecker(t, addr, "    UDP_CHECK {\n      "+tt.lines+"\n    }")
			r := ck.Check(context.Background())
			if r.OK != tt.ok {
				t.Errorf("check OK %t (%v), want %t", r.OK, r.Err, tt.ok)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(sent) != 1 || !bytes.Equal(sent[0], tt.payload) {
				t.Errorf("server got % x, want one datagram % x", sent, tt.payload)
			}
		})
	}
}

// TestSMTPCheckHosts: each SMTP_CHECK host block is a checker aimed at the
// host's connect_ip and connect_port, with the host's helo (issue 12 item
// 11). The real server itself, on a closed port, is not checked: the
// SMTP_CHECK sets no connection keyword of its own.
func TestSMTPCheckHosts(t *testing.T) {
	helo := make(chan string, 2)
	a := netip.MustParseAddrPort(smtpServer(t, "220 a", "250 a", helo))
	b := netip.MustParseAddrPort(smtpServer(t, "220 b", "250 b", helo))
	closed := netip.MustParseAddrPort(closedPort(t, "tcp"))
	cfg := lab.ParseConfig(t, fmt.Sprintf(`virtual_server 10.0.0.1 25 {
  protocol TCP
  lb_algo rr
  real_server %s %d {
    SMTP_CHECK {
      helo_name lb.test
      host {
        connect_ip %s
        connect_port %d
        connect_timeout 0.5
      }
      host {
        connect_ip %s
        connect_port %d
        connect_timeout 0.5
      }
    }
  }
}
`, closed.Addr(), closed.Port(), a.Addr(), a.Port(), b.Addr(), b.Port()))
	cs := cfg.VirtualServers[0].RealServers[0].Checkers
	if len(cs) != 2 {
		t.Fatalf("%d checkers, want 2", len(cs))
	}
	for _, c := range cs {
		ck, err := New(c, Target{Addr: closed}, Env{Log: lab.TestLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if r := ck.Check(context.Background()); !r.OK {
			t.Errorf("host %s:%d: %v", c.ConnectIP, c.ConnectPort, r.Err)
		}
		if got := <-helo; got != "HELO lb.test" {
			t.Errorf("server got %q, want HELO lb.test", got)
		}
	}
}
