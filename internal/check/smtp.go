package check

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/textproto"
	"time"

	"tandem/internal/config"
)

// defaultHelo is keepalived's SMTP_DEFAULT_HELO (check_smtp.h).
const defaultHelo = "smtpchecker.keepalived.org"

// SMTP is SMTP_CHECK: connect, expect a 220 greeting, send HELO helo_name,
// expect 250, send QUIT (keepalived check_smtp.c smtp_engine_thread).
type SMTP struct {
	cfg  *config.Checker
	addr netip.AddrPort
}

// Check runs the greeting and HELO exchange within connect_timeout.
func (s *SMTP) Check(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout(s.cfg))
	defer cancel()
	conn, err := dialer(s.cfg, "tcp").DialContext(ctx, "tcp", hostPort(s.addr))
	if err != nil {
		return result(start, fmt.Errorf("connect %s: %w", s.addr, err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	helo := defaultHelo
	if s.cfg.SMTP != nil && s.cfg.SMTP.HeloName != "" {
		helo = s.cfg.SMTP.HeloName
	}
	// textproto's reader bounds each line only by memory; limit what a
	// misbehaving server can make us buffer.
	r := textproto.NewReader(bufio.NewReader(io.LimitReader(conn, 64<<10)))
	w := bufio.NewWriter(conn)
	if _, _, err := r.ReadResponse(220); err != nil {
		return result(start, fmt.Errorf("smtp %s: greeting: %w", s.addr, err))
	}
	if _, err := fmt.Fprintf(w, "HELO %s\r\n", helo); err != nil {
		return result(start, fmt.Errorf("smtp %s: send HELO: %w", s.addr, err))
	}
	if err := w.Flush(); err != nil {
		return result(start, fmt.Errorf("smtp %s: send HELO: %w", s.addr, err))
	}
	if _, _, err := r.ReadResponse(250); err != nil {
		return result(start, fmt.Errorf("smtp %s: HELO: %w", s.addr, err))
	}
	// QUIT is a courtesy: its reply does not change the verdict.
	w.WriteString("QUIT\r\n")
	w.Flush()
	return result(start, nil)
}
