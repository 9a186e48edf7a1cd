package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// limitTestServer serves on loopback with at most max connections: GET /
// answers at once, GET /block signals entered and waits for release.
func limitTestServer(t *testing.T, max int) (addr string, entered chan struct{}, release chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release = make(chan struct{}, max), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /block", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	})
	srv := serve(ln, max, mux, slog.New(slog.DiscardHandler), "test listener")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), entered, release
}

type testConn struct {
	net.Conn
	r *bufio.Reader
}

func dialTest(t *testing.T, addr string) *testConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A safety net against a hang, not a timing assertion.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &testConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *testConn) send(path string) error {
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
	return err
}

// get asks for / on the connection, kept alive.
func (c *testConn) get() error {
	if err := c.send("/"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

// TestLimitListenerEvictsIdle: with max connections open and idle, a new
// client is served and the connection idle longest is closed; the others
// stay usable.
func TestLimitListenerEvictsIdle(t *testing.T) {
	addr, _, _ := limitTestServer(t, 3)
	var held []*testConn
	for range 3 {
		c := dialTest(t, addr)
		if err := c.get(); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if err := dialTest(t, addr).get(); err != nil {
		t.Fatalf("a fourth client, with three idle connections held: %v", err)
	}
	if _, err := held[0].r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the connection idle longest: read %v, want EOF (closed)", err)
	}
	for i, c := range held[1:] {
		if err := c.get(); err != nil {
			t.Errorf("held connection %d: %v, want it still served", i+1, err)
		}
	}
}

// TestLimitListenerKeepsBusy: connections inside a handler are never
// closed to make room; a newcomer beyond the cap is closed instead.
func TestLimitListenerKeepsBusy(t *testing.T) {
	addr, entered, release := limitTestServer(t, 2)
	var busy []*testConn
	for range 2 {
		c := dialTest(t, addr)
		if err := c.send("/block"); err != nil {
			t.Fatal(err)
		}
		<-entered
		busy = append(busy, c)
	}
	if err := dialTest(t, addr).get(); err == nil {
		t.Errorf("a third client while two requests run, cap 2: served, want closed")
	}
	close(release)
	for i, c := range busy {
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Errorf("busy connection %d: %v, want its answer", i, err)
			continue
		}
		resp.Body.Close()
	}
	if err := dialTest(t, addr).get(); err != nil {
		t.Errorf("a client once the requests are done: %v", err)
	}
}
