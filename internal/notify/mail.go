package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config"
)

// defaultSMTPTimeout is smtp_connect_timeout's default (keepalived
// global_data.h DEFAULT_SMTP_CONNECTION_TIMEOUT).
const defaultSMTPTimeout = 30 * time.Second

// Mailer sends keepalived's SMTP alerts (keepalived smtp.c): HELO, MAIL
// FROM, one RCPT TO per notification_email, DATA, QUIT, each step bounded
// by smtp_connect_timeout as keepalived bounds each read. Whether an event
// is mailed at all (smtp_alert, smtp_alert_vrrp, smtp_alert_checker, and
// keepalived's one mail per state change, vrrp_notify.c last_email_state)
// is the caller's decision. Sending blocks; Runner.Mail sends in the
// background.
type Mailer struct {
	server   string
	helo     string
	from     string
	to       []string
	routerID string
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
}

// NewMailer returns a Mailer for g, or nil if g has no smtp_server or no
// notification_email, in which case keepalived sends nothing (smtp.c
// smtp_alert); all methods of a nil Mailer do nothing. Unset names default
// as in keepalived (global_data.c init_global_data) to the local host name:
// router_id and smtp_helo_name to it, notification_email_from to
// user@host. keepalived takes the host's canonical DNS name; Tandem takes
// the kernel's host name.
func NewMailer(g *config.Global, log *slog.Logger) *Mailer {
	if g.SMTPServer == "" || len(g.NotificationEmail) == 0 {
		return nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost" // keepalived smtp.c helo_cmd's fallback
	}
	m := &Mailer{
		server:   g.SMTPServer,
		helo:     g.SMTPHeloName,
		from:     g.NotificationEmailFrom,
		to:       g.NotificationEmail,
		routerID: g.RouterID,
		timeout:  time.Duration(g.SMTPConnectTimeout),
		now:      time.Now,
		log:      log,
	}
	if m.helo == "" {
		m.helo = host
	}
	if m.routerID == "" {
		m.routerID = host
	}
	if m.from == "" {
		name := "root"
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		m.from = name + "@" + host
	}
	if m.timeout <= 0 {
		m.timeout = defaultSMTPTimeout
	}
	return m
}

// Subjects and bodies of VRRP alerts (vrrp_notify.c vrrp_smtp_notifier and
// vrrp_sync_smtp_notifier).
var (
	instanceAlerts = map[State][2]string{
		Master:  {"Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <="},
		Backup:  {"Entering BACKUP state", "=> VRRP Instance is no longer owning VRRP VIPs <="},
		Fault:   {"Entering FAULT state", "=> VRRP Instance is no longer owning VRRP VIPs <="},
		Stop:    {"Stopping", "=> VRRP Instance stopping <="},
		Deleted: {"Deleted", "=> VRRP Deleted at reload <="},
	}
	groupAlerts = map[State][2]string{
		Master: {"Entering MASTER state", "=> All VRRP group instances are now in MASTER state <="},
		Backup: {"Entering BACKUP state", "=> All VRRP group instances are now in BACKUP state <="},
		Fault:  {"Entering FAULT state", "=> All VRRP group instances are now in FAULT state <="},
		Stop:   {"Stopping", "=> All VRRP group instances are now stopping <="},
	}
)

// Instance mails the alert for VRRP instance name entering st, e.g.
// "[router] VRRP Instance VI_1 - Entering MASTER state".
func (m *Mailer) Instance(ctx context.Context, name string, st State) error {
	a, ok := instanceAlerts[st]
	if m == nil || !ok {
		return nil
	}
	return m.Send(ctx, fmt.Sprintf("[%s] VRRP Instance %s - %s", m.routerID, name, a[0]), a[1])
}

// Group mails the alert for sync group name entering st, e.g.
// "[router] VRRP Group VG_1 - Entering FAULT state".
func (m *Mailer) Group(ctx context.Context, name string, st State) error {
	a, ok := groupAlerts[st]
	if m == nil || !ok {
		return nil
	}
	return m.Send(ctx, fmt.Sprintf("[%s] VRRP Group %s - %s", m.routerID, name, a[0]), a[1])
}

// RealServer mails a real server alert, "[router] Realserver [ip]:tcp:port
// of virtual server [vip]:tcp:port - UP" (smtp.c SMTP_MSG_RS); body is the
// checker's message, e.g. "=> TCP CHECK succeed on service <=".
func (m *Mailer) RealServer(ctx context.Context, vs *config.VirtualServer, rs *config.RealServer, up bool, body string) error {
	if m == nil {
		return nil
	}
	return m.Send(ctx, fmt.Sprintf("[%s] Realserver %s of virtual server %s - %s",
		m.routerID, RealServerName(vs, rs), VirtualServerName(vs), upDown(up)), body)
}

// VirtualServer mails a quorum alert, "[router] Virtualserver
// [vip]:tcp:port - UP" (smtp.c SMTP_MSG_VS); body is e.g. keepalived's
// "=> Gained quorum 1+0=1 <= 2 <=" (ipwrapper.c do_vs_notifies).
func (m *Mailer) VirtualServer(ctx context.Context, vs *config.VirtualServer, quorumUp bool, body string) error {
	if m == nil {
		return nil
	}
	return m.Send(ctx, fmt.Sprintf("[%s] Virtualserver %s - %s", m.routerID, VirtualServerName(vs), upDown(quorumUp)), body)
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}

// VirtualServerName formats vs as keepalived's alerts do (check_data.c
// format_vs): "[group]:port", "FWM mark", or "[ip]:proto:port".
func VirtualServerName(vs *config.VirtualServer) string {
	switch {
	case vs.Group != "":
		return fmt.Sprintf("[%s]:%d", vs.Group, vs.Port)
	case vs.FWMark != 0:
		return fmt.Sprintf("FWM %d", vs.FWMark)
	}
	return trio(vs.IP.String(), vs.Protocol, vs.Port)
}

// RealServerName formats rs as keepalived's alerts do (check_data.c
// format_rs): "[ip]:proto:port" with the virtual server's protocol.
func RealServerName(vs *config.VirtualServer, rs *config.RealServer) string {
	return trio(rs.IP.String(), vs.Protocol, rs.Port)
}

// trio is keepalived's inet_sockaddrtotrio (lib/utils.c).
func trio(addr string, proto config.Protocol, port int) string {
	p := strings.ToLower(proto.String())
	if proto == config.ProtocolUnset {
		p = "none"
	}
	return "[" + addr + "]:" + p + ":" + strconv.Itoa(port)
}

// Send mails subject and body to every notification_email, as keepalived
// formats its alerts (smtp.c body_cmd): Date, From, Subject, X-Mailer and To
// headers, then the body.
func (m *Mailer) Send(ctx context.Context, subject, body string) error {
	if m == nil {
		return nil
	}
	if err := m.send(ctx, subject, body); err != nil {
		return fmt.Errorf("smtp alert to %s: %w", m.server, err)
	}
	return nil
}

func (m *Mailer) send(ctx context.Context, subject, body string) error {
	d := net.Dialer{Timeout: m.timeout}
	conn, err := d.DialContext(ctx, "tcp", m.server)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Cancelling ctx fails the step in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tc := textproto.NewConn(conn)
	// step sends line (if any) and reads a reply that must have code.
	step := func(what string, code int, line string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := conn.SetDeadline(time.Now().Add(m.timeout)); err != nil {
			return err
		}
		if line != "" {
			if err := tc.PrintfLine("%s", line); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if _, _, err := tc.ReadResponse(code); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := step("greeting", 220, ""); err != nil {
		return err
	}
	if err := step("HELO", 250, "HELO "+m.helo); err != nil {
		return err
	}
	if err := step("MAIL FROM", 250, "MAIL FROM:"+angleAddr(m.from)); err != nil {
		return err
	}
	for _, to := range m.to {
		if err := step("RCPT TO", 250, "RCPT TO:"+angleAddr(to)); err != nil {
			return err
		}
	}
	if err := step("DATA", 354, "DATA"); err != nil {
		return err
	}
	w := tc.DotWriter() // dot-stuffs the message and ends it with "."
	if _, err := w.Write([]byte(m.message(subject, body))); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := step("message", 250, ""); err != nil {
		return err
	}
	return step("QUIT", 221, "QUIT")
}

// message is the DATA of an alert, with "\n" line ends (the DotWriter sends
// them as CRLF).
func (m *Mailer) message(subject, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s\n", m.now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s\n", oneLine(m.from))
	fmt.Fprintf(&b, "Subject: %s\n", oneLine(subject))
	b.WriteString("X-Mailer: Tandem\n")
	b.WriteString("To: " + strings.Join(m.to, ",\n ") + "\n\n")
	b.WriteString(body + "\n")
	return b.String()
}

// oneLine keeps a header value from starting new header lines.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// angleAddr is the address in an SMTP envelope command: the <...> part of
// "Name <addr>", or addr in angle brackets (smtp.c mail_cmd, rcpt_cmd).
func angleAddr(a string) string {
	if strings.HasSuffix(a, ">") {
		if i := strings.LastIndexByte(a, '<'); i >= 0 {
			return a[i:]
		}
	}
	return "<" + a + ">"
}
