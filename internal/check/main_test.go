package check

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/script"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// checker builds a checker of type typ aimed at addr with a short
// connect_timeout; mut adjusts the configuration first.
func checker(t *testing.T, typ config.CheckType, addr string, mut func(*config.Checker)) Checker {
	t.Helper()
	c := &config.Checker{Type: typ, Timing: timing(10, 1, 0, 0, false)}
	c.Timing.ConnectTimeout = config.Duration(500 * time.Millisecond)
	if mut != nil {
		mut(c)
	}
	var ap netip.AddrPort
	if addr != "" {
		ap = netip.MustParseAddrPort(addr)
	}
	ck, err := New(c, Target{Addr: ap}, Env{Scripts: script.NewUsers(&config.Global{}, lab.TestLogger(t)), Log: lab.TestLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return ck
}

// expect runs ck and compares the verdict, and for a failure checks that
// the error mentions wantErr; the check must also end within limit.
func expect(t *testing.T, ck Checker, wantOK bool, wantErr string, limit time.Duration) Result {
	t.Helper()
	start := time.Now()
	r := ck.Check(context.Background())
	if el := time.Since(start); el > limit {
		t.Errorf("check took %v, want <= %v", el, limit)
	}
	if r.OK != wantOK {
		t.Fatalf("OK = %v (err %v), want %v", r.OK, r.Err, wantOK)
	}
	if !wantOK && (r.Err == nil || !strings.Contains(r.Err.Error(), wantErr)) {
		t.Errorf("err = %v, want it to mention %q", r.Err, wantErr)
	}
	if wantOK && r.Err != nil {
		t.Errorf("OK with err %v", r.Err)
	}
	return r
}

// closedPort returns a local TCP or UDP address nothing listens on.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := c.LocalAddr().String()
		c.Close()
		return a
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// rawServer accepts connections on 127.0.0.1 and hands each to serve,
// until the test ends.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			serve(c)
			stop()
			c.Close()
		}
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestTCP(t *testing.T) {
	open := rawServer(t, func(net.Conn) {})
	tests := []struct {
		name    string
		addr    string
		mut     func(*config.Checker)
		ok      bool
		wantErr string
	}{
		{name: "listening", addr: open, ok: true},
		{name: "closed port", addr: closedPort(t, "tcp"), wantErr: "connection refused"},
		{name: "connect_port overrides", addr: closedPort(t, "tcp"), ok: true, mut: func(c *config.Checker) {
			c.ConnectPort = int(netip.MustParseAddrPort(open).Port())
		}},
		{name: "connect_ip and bindto", addr: "192.0.2.1:1", ok: true, mut: func(c *config.Checker) {
			ap := netip.MustParseAddrPort(open)
			c.ConnectIP, c.ConnectPort, c.BindTo = ap.Addr(), int(ap.Port()), netip.MustParseAddr("127.0.0.1")
		}},
		{name: "unroutable bindto", addr: open, wantErr: "assign requested address", mut: func(c *config.Checker) {
			c.BindTo = netip.MustParseAddr("192.0.2.77")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, checker(t, config.CheckTCP, tt.addr, tt.mut), tt.ok, tt.wantErr, time.Second)
		})
	}
}
