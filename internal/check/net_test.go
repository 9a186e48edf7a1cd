package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"tandem/internal/config"
)

func TestPing(t *testing.T) {
	ck := checker(t, config.CheckPing, "127.0.0.1:0", nil)
	r := ck.Check(context.Background())
	if errors.Is(r.Err, ErrICMPNotPermitted) {
		t.Skipf("ICMP sockets not permitted here (need net.ipv4.ping_group_range or CAP_NET_RAW): %v", r.Err)
	}
	if !r.OK {
		t.Fatalf("ping 127.0.0.1: %v", r.Err)
	}
	t.Run("ipv6", func(t *testing.T) {
		r := checker(t, config.CheckPing, "[::1]:0", nil).Check(context.Background())
		if errors.Is(r.Err, ErrICMPNotPermitted) || (r.Err != nil && strings.Contains(r.Err.Error(), "address")) {
			t.Skipf("ICMPv6 to ::1 not available: %v", r.Err)
		}
		if !r.OK {
			t.Fatalf("ping ::1: %v", r.Err)
		}
	})
}

// dnsServer answers on 127.0.0.1: "ok.test." with an A record,
// "empty.test." NOERROR with no answer, anything else NXDOMAIN.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch q.Question[0].Name {
		case "ok.test.":
			rr, _ := dns.NewRR("ok.test. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "empty.test.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// udpServer replies to each datagram with reply(datagram) (nil: no reply).
func udpServer(t *testing.T, reply func([]byte) []byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	good := dnsServer(t)
	wrongID := udpServer(t, func(q []byte) []byte {
		m := new(dns.Msg)
		if m.Unpack(q) != nil {
			return nil
		}
		m.SetReply(m)
		m.Id++
		b, _ := m.Pack()
		return b
	})
	silent := udpServer(t, func([]byte) []byte { return nil })
	tests := []struct {
		name, addr, qname string
		typ               uint16
		ok                bool
		wantErr           string
	}{
		{name: "A answer", addr: good, typ: dns.TypeA, qname: "ok.test", ok: true},
		{name: "NOERROR without answers is up", addr: good, typ: dns.TypeAAAA, qname: "empty.test", ok: true},
		{name: "SOA .", addr: good, typ: dns.TypeSOA, qname: ".", wantErr: "rcode NXDOMAIN"},
		{name: "NXDOMAIN", addr: good, typ: dns.TypeA, qname: "missing.test", wantErr: "rcode NXDOMAIN"},
		{name: "wrong ID is skipped", addr: wrongID, wantErr: "i/o timeout"},
		{name: "silent", addr: silent, wantErr: "i/o timeout"},
		{name: "closed port", addr: closedPort(t, "udp"), wantErr: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := checker(t, config.CheckDNS, tt.addr, func(c *config.Checker) { c.DNS = &config.DNSCheck{Type: config.DNSType(tt.typ), Name: tt.qname} })
			expect(t, ck, tt.ok, tt.wantErr, time.Second)
		})
	}
}

func TestUDP(t *testing.T) {
	echo := udpServer(t, func(b []byte) []byte { return append([]byte(nil), b...) })
	silent := udpServer(t, func([]byte) []byte { return nil })
	closed := closedPort(t, "udp")
	tests := []struct {
		name    string
		addr    string
		udp     config.UDPCheck
		ok      bool
		wantErr string
	}{
		{name: "echo matches", addr: echo, udp: config.UDPCheck{Payload: []byte("ping"), RequireReply: true, Reply: []byte("pi")}, ok: true},
		{name: "reply shorter than pattern compares its length", addr: echo,
			udp: config.UDPCheck{Payload: []byte("pi"), RequireReply: true, Reply: []byte("ping")}, ok: true},
		{name: "echo mismatch", addr: echo, udp: config.UDPCheck{Payload: []byte("ping"), RequireReply: true, Reply: []byte("pong")}, wantErr: "does not match"},
		{name: "too short", addr: echo, udp: config.UDPCheck{Payload: []byte("ping"), RequireReply: true, Reply: []byte("p"), MinReply: 5}, wantErr: "outside 5..255"},
		{name: "too long", addr: echo, udp: config.UDPCheck{Payload: []byte("ping"), RequireReply: true, Reply: []byte("p"), MaxReply: 3}, wantErr: "outside 0..3"},
		// keepalived judges the length only when require_reply gives bytes.
		{name: "any length without reply bytes", addr: echo, udp: config.UDPCheck{Payload: []byte("ping"), RequireReply: true, MaxReply: 3}, ok: true},
		{name: "silent with require_reply", addr: silent, udp: config.UDPCheck{Payload: []byte("x"), RequireReply: true}, wantErr: "no reply"},
		{name: "silent without require_reply is up", addr: silent, udp: config.UDPCheck{Payload: []byte("x")}, ok: true},
		{name: "closed port", addr: closed, udp: config.UDPCheck{Payload: []byte("x")}, wantErr: "port unreachable"},
		{name: "closed port with require_reply", addr: closed, udp: config.UDPCheck{Payload: []byte("x"), RequireReply: true}, wantErr: "port unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := checker(t, config.CheckUDP, tt.addr, func(c *config.Checker) { u := tt.udp; c.UDP = &u })
			expect(t, ck, tt.ok, tt.wantErr, time.Second)
		})
	}
}

// smtpServer speaks the given greeting and HELO reply, recording the HELO.
func smtpServer(t *testing.T, greeting, heloReply string, helo chan<- string) string {
	return rawServer(t, func(c net.Conn) {
		fmt.Fprintf(c, "%s\r\n", greeting)
		br := bufio.NewReader(c)
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		select {
		case helo <- strings.TrimSpace(l):
		default:
		}
		fmt.Fprintf(c, "%s\r\n", heloReply)
		br.ReadString('\n') // QUIT
		fmt.Fprint(c, "221 bye\r\n")
	})
}

func TestSMTP(t *testing.T) {
	helo := make(chan string, 1)
	tests := []struct {
		name     string
		addr     string
		heloName string
		ok       bool
		wantErr  string
		wantHelo string
	}{
		{name: "good", addr: smtpServer(t, "220-mx.test ESMTP\r\n220 ready", "250 mx.test", helo), ok: true,
			wantHelo: "HELO smtpchecker.keepalived.org"},
		{name: "helo_name", addr: smtpServer(t, "220 mx.test", "250 hi", helo), heloName: "lb1.example.test", ok: true,
			wantHelo: "HELO lb1.example.test"},
		{name: "busy greeting", addr: smtpServer(t, "554 go away", "250 x", nil), wantErr: "greeting: 554"},
		{name: "HELO refused", addr: smtpServer(t, "220 mx", "501 bad", nil), wantErr: "HELO: 501"},
		{name: "silent", addr: rawServer(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') }), wantErr: "i/o timeout"},
		{name: "closed port", addr: closedPort(t, "tcp"), wantErr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := checker(t, config.CheckSMTP, tt.addr, func(c *config.Checker) { c.SMTP = &config.SMTPCheck{HeloName: tt.heloName} })
			expect(t, ck, tt.ok, tt.wantErr, time.Second)
			if tt.wantHelo != "" {
				if got := <-helo; got != tt.wantHelo {
					t.Errorf("server got %q, want %q", got, tt.wantHelo)
				}
			}
		})
	}
}

// TestSMTPPython checks against Python's smtpd DebuggingServer when the
// interpreter has it (removed in Python 3.12).
func TestSMTPPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-W", "ignore", "-c", "import smtpd").Run() != nil {
		t.Skip("python3 with the smtpd module not available")
	}
	addr := closedPort(t, "tcp")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	ck := checker(t, config.CheckSMTP, addr, func(c *config.Checker) {
		c.SMTP = &config.SMTPCheck{}
		c.Timing.ConnectTimeout = config.Duration(5 * time.Second)
	})
	var r Result
	// The interpreter may take a while to start listening.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r = ck.Check(context.Background()); r.OK {
			return
		}
	}
	t.Fatalf("python smtpd: %v", r.Err)
}
