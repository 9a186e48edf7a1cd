package check

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"time"

	"tandem/internal/config"
)

// MaxBodyBytes caps how much of a response body HTTP_GET and SSL_GET read.
// keepalived digests the whole body; a checker that must survive a 1 GB
// body cannot, so a body is read only when a digest or regex needs it, at
// most MaxBodyBytes of it, and a longer body fails the check.
const MaxBodyBytes = 16 << 20

// maxHeaderBytes bounds the status line and headers of a response.
const maxHeaderBytes = 64 << 10

// HTTP is HTTP_GET and SSL_GET (keepalived check_http.c). Each url is
// fetched in turn on a new connection; the server is up when every url
// answers with a status in its status_code ranges (default 200-299,
// check_http.c url_check) and, when set, a body whose MD5 is digest and
// which matches regex. Redirects are not followed: a 3xx is judged by its
// status like any other answer. The whole request — connect, TLS
// handshake, request, response — must finish within connect_timeout.
// SSL_GET closes its connections without a close_notify alert, as
// keepalived does, unless tls_compliant asks for one.
type HTTP struct {
	cfg   *config.Checker
	addr  netip.AddrPort
	tls   bool
	urls  []*config.URL
	proto config.HTTPVersion
}

func newHTTP(c *config.Checker, addr netip.AddrPort) (*HTTP, error) {
	if c.HTTP == nil || len(c.HTTP.URLs) == 0 {
		return nil, fmt.Errorf("%s: no url", c.Type)
	}
	h := &HTTP{cfg: c, addr: addr, tls: c.Type == config.CheckSSL, proto: c.HTTP.Protocol}
	h.urls = c.HTTP.URLs
	return h, nil
}

// Check fetches every url.
func (h *HTTP) Check(ctx context.Context) Result {
	start := time.Now()
	for _, u := range h.urls {
		if err := h.fetch(ctx, u); err != nil {
			return result(start, fmt.Errorf("%s %s%s: %w", h.cfg.Type, h.addr, u.Path, err))
		}
	}
	return result(start, nil)
}

// host is the Host header: the url's virtualhost, else the checker's
// (which the configuration already defaults from the real and virtual
// server), else the address with its port (check_http.c http_request_thread).
func (h *HTTP) host(u *config.URL) (host string, isVhost bool) {
	switch {
	case u.Virtualhost != "":
		return u.Virtualhost, true
	case h.cfg.HTTP.Virtualhost != "":
		return h.cfg.HTTP.Virtualhost, true
	}
	return hostPort(h.addr), false
}

func (h *HTTP) fetch(ctx context.Context, u *config.URL) error {
	return h.get(ctx, u, func(resp *http.Response, hl *headerLimit) error {
		if !statusOK(resp.StatusCode, u.StatusCodes) {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if u.Digest == "" && u.Regex == nil {
			return nil // the status decides; the body is not read
		}
		hl.n = math.MaxInt // the body has its own cap
		return checkBody(resp.Body, u)
	})
}

// get connects, sends keepalived's request for u and hands the response to
// use while the connection is open. resp.Body is not closed: closing it
// could drain a long body, and the connection is closed on return anyway.
func (h *HTTP) get(ctx context.Context, u *config.URL, use func(*http.Response, *headerLimit) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout(h.cfg))
	defer cancel()
	conn, err := dialer(h.cfg, "tcp").DialContext(ctx, "tcp", hostPort(h.addr))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	host, isVhost := h.host(u)
	if h.tls {
		// keepalived does not verify the server's certificate (check_ssl.c
		// sets no verify callback); SNI is sent only with enable_sni, as
		// sni_name or else the virtualhost (check_ssl.c ssl_connect).
		tc := &tls.Config{InsecureSkipVerify: true}
		if h.cfg.HTTP.EnableSNI {
			tc.ServerName = h.cfg.HTTP.SNIName
			if tc.ServerName == "" && isVhost {
				tc.ServerName = host
			}
		}
		t := tls.Client(conn, tc)
		if err := t.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		// keepalived closes quietly, with no close_notify alert, unless
		// the checker or the url is tls_compliant (check_ssl.c
		// SSL_set_quiet_shutdown; keepalived.conf(5) SSL_GET). Closing
		// the tls.Conn sends the alert; the deferred close of the TCP
		// connection alone does not.
		if h.cfg.HTTP.TLSCompliant || u.TLSCompliant {
			defer t.Close()
		}
		conn = t
	}
	if _, err := io.WriteString(conn, h.request(u, host)); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	hl := &headerLimit{r: conn, n: maxHeaderBytes}
	resp, err := http.ReadResponse(bufio.NewReader(hl), nil)
	if err != nil {
		if errors.Is(err, errHeaderTooLong) {
			return fmt.Errorf("read response: headers longer than %d bytes", maxHeaderBytes)
		}
		return fmt.Errorf("read response: %w", err)
	}
	return use(resp, hl)
}

// Page is what Digest fetched.
type Page struct {
	Status int
	// MD5 is the hex MD5 of the body, as a url's digest line wants it.
	MD5  string
	Size int64
}

// Digest fetches path from addr exactly as HTTP_GET (or, with ssl,
// SSL_GET) would — same request, Host header, SNI, no redirects — and
// returns the status and the MD5 of the body (at most MaxBodyBytes), for
// `tandem genhash` (keepalived's genhash).
func Digest(ctx context.Context, addr netip.AddrPort, path, virtualhost string, ssl bool, timeout time.Duration) (Page, error) {
	typ := config.CheckHTTP
	if ssl {
		typ = config.CheckSSL
	}
	d := config.Duration(timeout)
	u := &config.URL{Path: path}
	c := &config.Checker{Type: typ, Timing: config.Timing{ConnectTimeout: d},
		HTTP: &config.HTTPCheck{URLs: []*config.URL{u}, Protocol: config.HTTP10, Virtualhost: virtualhost, EnableSNI: ssl && virtualhost != ""}}
	h, err := newHTTP(c, addr)
	if err != nil {
		return Page{}, err
	}
	var p Page
	err = h.get(ctx, u, func(resp *http.Response, hl *headerLimit) error {
		p.Status = resp.StatusCode
		hl.n = math.MaxInt
		sum := md5.New()
		n, err := io.Copy(sum, io.LimitReader(resp.Body, MaxBodyBytes+1))
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if n > MaxBodyBytes {
			return fmt.Errorf("body longer than the %d byte cap", MaxBodyBytes)
		}
		p.MD5, p.Size = hex.EncodeToString(sum.Sum(nil)), n
		return nil
	})
	return p, err
}

// request is keepalived's request: HTTP/1.0 by default, HTTP/1.1 for
// http_protocol 1.1, "Connection: close" for 1.0C and 1.1.
func (h *HTTP) request(u *config.URL, host string) string {
	minor, closeHdr := "0", ""
	switch h.proto {
	case config.HTTP11:
		minor, closeHdr = "1", "Connection: close\r\n"
	case config.HTTP10Close:
		closeHdr = "Connection: close\r\n"
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	return "GET " + path + " HTTP/1." + minor + "\r\nUser-Agent: KeepAliveClient\r\n" + closeHdr + "Host: " + host + "\r\n\r\n"
}

// checkBody streams at most MaxBodyBytes of the body into MD5 and, for a
// regex, into memory.
func checkBody(body io.Reader, u *config.URL) error {
	sum := md5.New()
	var kept []byte
	w := io.Writer(sum)
	if u.Regex != nil {
		kept = make([]byte, 0, 4096)
		w = io.MultiWriter(sum, (*sliceWriter)(&kept))
	}
	n, err := io.Copy(w, io.LimitReader(body, MaxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if n > MaxBodyBytes {
		return fmt.Errorf("body longer than the %d byte cap", MaxBodyBytes)
	}
	if u.Digest != "" {
		if got := hex.EncodeToString(sum.Sum(nil)); got != u.Digest {
			return fmt.Errorf("digest %s, want %s", got, u.Digest)
		}
	}
	if u.Regex != nil && u.Regex.Match(kept) == u.RegexNoMatch {
		if u.RegexNoMatch {
			return fmt.Errorf("body matches regex %q", u.Regex)
		}
		return fmt.Errorf("body does not match regex %q", u.Regex)
	}
	return nil
}

func statusOK(code int, ranges []config.StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

type sliceWriter []byte

func (s *sliceWriter) Write(p []byte) (int, error) {
	*s = append(*s, p...)
	return len(p), nil
}

var errHeaderTooLong = errors.New("response headers too long")

// headerLimit fails reads beyond n bytes, so a server that never ends its
// headers cannot make the checker buffer without bound.
type headerLimit struct {
	r io.Reader
	n int
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLong
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}
