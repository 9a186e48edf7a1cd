package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of both listeners. Every request is small and answered from
// memory, so a client slower than this is broken or hostile, and each
// connection it holds costs a file descriptor that the VRRP path (sockets,
// netlink, scripts) may need.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // a large /status.json to a slow reader
	idleTimeout       = 30 * time.Second
)

// serve serves h on ln with the timeouts above, holding at most maxConns
// connections (see limitListener), until the returned server is shut down.
func serve(ln net.Listener, maxConns int, h http.Handler, log *slog.Logger, what string) *http.Server {
	ll := &limitListener{Listener: ln, max: max(maxConns, 1), conns: map[*limitConn]struct{}{}}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, ok := r.Context().Value(connKey{}).(*limitConn); ok {
				ll.setBusy(c, true)
				defer ll.setBusy(c, false)
			}
			h.ServeHTTP(w, r)
		}),
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ll); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}

type connKey struct{}

// limitListener holds at most max connections open. When a new one comes
// and max are open, the one idle longest (between requests, or not yet
// inside a handler) is closed to make room: a client that opens many
// connections and holds them loses its own oldest ones, and a client that
// connects to ask something is served at once. Only if every connection is
// inside a handler is the newcomer closed instead. Blocking in Accept
// instead would queue newcomers behind every connection held open.
type limitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*limitConn]struct{} // open connections
}

// limitConn is an accepted connection; its fields are guarded by the
// listener's mu.
type limitConn struct {
	net.Conn
	l     *limitListener
	busy  bool      // inside a handler
	since time.Time // accepted, or last left a handler
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitConn{Conn: c, l: l, since: time.Now()}
		l.mu.Lock()
		var victim *limitConn
		if len(l.conns) >= l.max {
			for o := range l.conns {
				if !o.busy && (victim == nil || o.since.Before(victim.since)) {
					victim = o
				}
			}
			if victim == nil {
				l.mu.Unlock()
				c.Close()
				continue
			}
			delete(l.conns, victim)
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close() // its server goroutine sees the error and ends
		}
		return lc, nil
	}
}

func (l *limitListener) setBusy(c *limitConn, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.busy, c.since = busy, time.Now()
}

func (c *limitConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
