package check

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"tandem/internal/config"
)

// UDP is UDP_CHECK (keepalived check_udp.c). It sends payload on a
// connected socket, so an ICMP port unreachable comes back as
// ECONNREFUSED. With require_reply, a reply must arrive within
// connect_timeout, be min_reply_length..max_reply_length long and start
// with the expected bytes (check_udp_reply compares the shorter of the
// reply and the pattern). Without it, the server is up unless an ICMP
// error arrives within connect_timeout.
type UDP struct {
	cfg  *config.Checker
	addr netip.AddrPort
}

// Check sends the payload and judges the reply.
func (u *UDP) Check(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout(u.cfg))
	defer cancel()
	conn, err := dialer(u.cfg, "udp").DialContext(ctx, "udp", hostPort(u.addr))
	if err != nil {
		return result(start, fmt.Errorf("udp %s: %w", u.addr, err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	cfg := u.cfg.UDP
	if _, err := conn.Write(cfg.Payload); err != nil {
		return result(start, fmt.Errorf("udp %s: send: %w", u.addr, err))
	}
	maxLen := cfg.MaxReply
	if maxLen <= 0 {
		maxLen = 255 // keepalived's default max_reply_length (UINT8_MAX)
	}
	buf := make([]byte, maxLen+1)
	n, err := conn.Read(buf)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return result(start, fmt.Errorf("udp %s: port unreachable", u.addr))
	case errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled):
		// connect_timeout passed (the socket's deadline may fire just
		// before the context's): silence is success without require_reply.
		if !cfg.RequireReply {
			return result(start, nil)
		}
		return result(start, fmt.Errorf("udp %s: no reply within %v", u.addr, timeout(u.cfg)))
	case err != nil:
		return result(start, fmt.Errorf("udp %s: %w", u.addr, err))
	}
	// keepalived (udp_check_thread) judges a reply's length and bytes
	// only when require_reply gave bytes; any reply will do otherwise.
	if len(cfg.Reply) == 0 {
		return result(start, nil)
	}
	reply := buf[:n]
	if n < cfg.MinReply || n > maxLen {
		return result(start, fmt.Errorf("udp %s: reply of %d bytes outside %d..%d", u.addr, n, cfg.MinReply, maxLen))
	}
	if !replyMatches(reply, cfg.Reply, cfg.ReplyMask) {
		return result(start, fmt.Errorf("udp %s: reply % x does not match % x", u.addr, reply[:min(n, 16)], cfg.Reply[:min(len(cfg.Reply), 16)]))
	}
	return result(start, nil)
}

// replyMatches compares the shorter of reply and want byte by byte,
// ignoring the bits set in mask (require_reply's x wildcards), as
// keepalived's check_udp_reply does.
func replyMatches(reply, want, mask []byte) bool {
	for i := range min(len(reply), len(want)) {
		ignore := byte(0)
		if mask != nil {
			ignore = mask[i]
		}
		if (reply[i]^want[i])&^ignore != 0 {
			return false
		}
	}
	return true
}
