package check

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"tandem/internal/config"
)

// TCP is TCP_CHECK: the server is up when a TCP connection to it completes
// within connect_timeout (keepalived check_tcp.c tcp_check_thread; the
// connection is closed at once, nothing is sent).
type TCP struct {
	cfg  *config.Checker
	addr netip.AddrPort
}

// Check connects and closes.
func (t *TCP) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dialer(t.cfg, "tcp").DialContext(ctx, "tcp", hostPort(t.addr))
	if err != nil {
		return result(start, fmt.Errorf("connect %s: %w", t.addr, err))
	}
	return result(start, conn.Close())
}
