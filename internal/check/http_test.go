package check

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tandem/internal/config"
)

// seen records what the test web server was asked.
type seen struct {
	mu        sync.Mutex
	host      string
	proto     string
	close     bool
	redirects int
	sni       string
}

func (s *seen) get() seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seen{host: s.host, proto: s.proto, close: s.close, redirects: s.redirects, sni: s.sni}
}

func webHandler(s *seen) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.host, s.proto, s.close = r.Host, r.Proto, r.Header.Get("Connection") == "close"
		s.mu.Unlock()
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.redirects++
		s.mu.Unlock()
		http.Redirect(w, r, "/loop", http.StatusMovedPermanently)
	})
	return mux
}

const helloMD5 = "5d41402abc4b2a76b9719d911017c592"

func httpCfg(proto config.HTTPVersion, urls ...*config.URL) func(*config.Checker) {
	return func(c *config.Checker) { c.HTTP = &config.HTTPCheck{Protocol: proto, URLs: urls} }
}

func TestHTTP(t *testing.T) {
	var s seen
	srv := httptest.NewServer(webHandler(&s))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name      string
		mut       func(*config.Checker)
		ok        bool
		wantErr   string
		wantHost  string
		wantProto string
		wantClose bool
	}{
		{name: "200 with digest", mut: httpCfg(config.HTTP10, &config.URL{Path: "/", Digest: helloMD5}), ok: true,
			wantHost: addr, wantProto: "HTTP/1.0"},
		{name: "digest mismatch", mut: httpCfg(config.HTTP10, &config.URL{Path: "/", Digest: strings.Repeat("0", 32)}), wantErr: "digest " + helloMD5},
		{name: "default status range rejects 503", mut: httpCfg(config.HTTP10, &config.URL{Path: "/503"}), wantErr: "status 503"},
		{name: "status_code 500-503 accepts 503", mut: httpCfg(config.HTTP10,
			&config.URL{Path: "/503", StatusCodes: []config.StatusRange{{Min: 200, Max: 200}, {Min: 500, Max: 503}}}), ok: true},
		{name: "every url must pass", mut: httpCfg(config.HTTP10, &config.URL{Path: "/"}, &config.URL{Path: "/503"}), wantErr: "/503: status 503"},
		{name: "redirect not followed", mut: httpCfg(config.HTTP10, &config.URL{Path: "/loop"}), wantErr: "status 301"},
		{name: "regex", mut: httpCfg(config.HTTP10, &config.URL{Path: "/", Regex: regexp.MustCompile("^hel+o$")}), ok: true},
		{name: "regex_no_match", mut: httpCfg(config.HTTP10, &config.URL{Path: "/", Regex: regexp.MustCompile("hello"), RegexNoMatch: true}), wantErr: "matches regex"},
		{name: "1.0C virtualhost", mut: func(c *config.Checker) {
			httpCfg(config.HTTP10Close, &config.URL{Path: "/"})(c)
			c.HTTP.Virtualhost = "www.example.test"
		}, ok: true, wantHost: "www.example.test", wantProto: "HTTP/1.0", wantClose: true},
		{name: "1.1 url virtualhost wins", mut: func(c *config.Checker) {
			httpCfg(config.HTTP11, &config.URL{Path: "/", Virtualhost: "url.example.test", Digest: helloMD5})(c)
			c.HTTP.Virtualhost = "www.example.test"
		}, ok: true, wantHost: "url.example.test", wantProto: "HTTP/1.1", wantClose: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, checker(t, config.CheckHTTP, addr, tt.mut), tt.ok, tt.wantErr, time.Second)
			got := s.get()
			if tt.wantHost != "" && (got.host != tt.wantHost || got.proto != tt.wantProto || got.close != tt.wantClose) {
				t.Errorf("server saw Host %q %s close=%v, want %q %s close=%v",
					got.host, got.proto, got.close, tt.wantHost, tt.wantProto, tt.wantClose)
			}
		})
	}
	if n := s.get().redirects; n != 1 {
		t.Errorf("redirect target asked %d times, want 1", n)
	}
}

// TestHTTPMisbehaving checks that every broken server gives a bounded
// failure with a clear error, within connect_timeout (500 ms) plus slack.
func TestHTTPMisbehaving(t *testing.T) {
	readReq := func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				return
			}
		}
	}
	// HTTP/1.1 and a Content-Length: a client that closed the body
	// politely would drain the whole gigabyte.
	header := "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"
	gigabyte := func(c net.Conn) {
		readReq(c)
		io.WriteString(c, header)
		chunk := make([]byte, 64<<10)
		for range 1 << 14 { // 1 GiB, or until the checker hangs up
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name    string
		serve   func(net.Conn)
		url     *config.URL
		timeout time.Duration // connect_timeout, if not 500 ms
		ok      bool
		wantErr string
	}{
		{name: "never answers", serve: func(c net.Conn) { io.Copy(io.Discard, c) }, wantErr: "i/o timeout"},
		{name: "garbage", serve: func(c net.Conn) { readReq(c); io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n") }, wantErr: "malformed HTTP"},
		{name: "reset mid-header", serve: func(c net.Conn) {
			readReq(c)
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Ty")
			c.(*net.TCPConn).SetLinger(0)
		}, wantErr: "read response"},
		{name: "headers never end", serve: func(c net.Conn) {
			readReq(c)
			io.WriteString(c, "HTTP/1.0 200 OK\r\n")
			for {
				if _, err := io.WriteString(c, "X-Filler: "+strings.Repeat("x", 1000)+"\r\n"); err != nil {
					return
				}
			}
		}, wantErr: "headers longer than"},
		{name: "1 GB body with digest", serve: gigabyte, url: &config.URL{Path: "/", Digest: helloMD5}, timeout: 10 * time.Second, wantErr: "byte cap"},
		{name: "1 GB body, status only", serve: gigabyte, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == nil {
				u = &config.URL{Path: "/"}
			}
			addr := rawServer(t, tt.serve)
			limit := 2 * time.Second
			ck := checker(t, config.CheckHTTP, addr, func(c *config.Checker) {
				httpCfg(config.HTTP10, u)(c)
				if tt.timeout > 0 {
					c.Timing.ConnectTimeout = config.Duration(tt.timeout)
					limit = tt.timeout
				}
			})
			expect(t, ck, tt.ok, tt.wantErr, limit)
		})
	}
}

// selfSigned makes a certificate for name, signed by its own key.
func selfSigned(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestSSL(t *testing.T) {
	var s seen
	srv := httptest.NewUnstartedServer(webHandler(&s))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t, "secure.example.test")},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.sni = hi.ServerName
			s.mu.Unlock()
			return nil, nil
		},
	}
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name    string
		http    config.HTTPCheck
		wantSNI string
	}{
		{name: "no SNI by default", http: config.HTTPCheck{Virtualhost: "www.example.test"}},
		{name: "enable_sni sends the virtualhost", http: config.HTTPCheck{Virtualhost: "www.example.test", EnableSNI: true}, wantSNI: "www.example.test"},
		{name: "sni_name wins", http: config.HTTPCheck{Virtualhost: "www.example.test", EnableSNI: true, SNIName: "sni.example.test"}, wantSNI: "sni.example.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := checker(t, config.CheckSSL, addr, func(c *config.Checker) {
				h := tt.http
				h.URLs = []*config.URL{{Path: "/", Digest: helloMD5}}
				c.HTTP = &h
			})
			expect(t, ck, true, "", time.Second)
			if got := s.get().sni; got != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", got, tt.wantSNI)
			}
		})
	}
	t.Run("plain HTTP server", func(t *testing.T) {
		plain := httptest.NewServer(webHandler(&seen{}))
		defer plain.Close()
		ck := checker(t, config.CheckSSL, plain.Listener.Addr().String(), httpCfg(config.HTTP10, &config.URL{Path: "/"}))
		expect(t, ck, false, "tls handshake", time.Second)
	})
}

// afterCount counts the raw bytes a connection reads once armed.
type afterCount struct {
	net.Conn
	armed bool
	n     int
}

func (c *afterCount) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.armed {
		c.n += n
	}
	return n, err
}

// TestSSLCloseNotify: SSL_GET closes its connection quietly, as keepalived
// does by default (SSL_set_quiet_shutdown), and with tls_compliant, on the
// checker or on the url, ends it with a close_notify alert: the server
// reads an alert record after the response, or nothing at all.
func TestSSLCloseNotify(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "secure.example.test")}}
	after := make(chan int, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			raw := &afterCount{Conn: c}
			tc := tls.Server(raw, cfg)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
				c.Close()
				after <- -1
				continue
			}
			raw.armed = true
			io.WriteString(tc, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
			io.Copy(io.Discard, tc) // until the client's alert or its close
			c.Close()
			after <- raw.n
		}
	}()
	for _, tt := range []struct {
		name          string
		checker, url  bool
		wantCloseNote bool
	}{
		{name: "quiet by default"},
		{name: "tls_compliant on the checker", checker: true, wantCloseNote: true},
		{name: "tls_compliant on the url", url: true, wantCloseNote: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ck := checker(t, config.CheckSSL, ln.Addr().String(), func(c *config.Checker) {
				c.Timing.ConnectTimeout = config.Duration(10 * time.Second)
				c.HTTP = &config.HTTPCheck{TLSCompliant: tt.checker, URLs: []*config.URL{{Path: "/", TLSCompliant: tt.url}}}
			})
			if r := ck.Check(context.Background()); !r.OK {
				t.Fatalf("check failed: %v", r.Err)
			}
			n := <-after
			if n < 0 {
				t.Fatal("the server could not read the request")
			}
			if got := n > 0; got != tt.wantCloseNote {
				t.Errorf("server read %d bytes after the response; want a close_notify alert: %v", n, tt.wantCloseNote)
			}
		})
	}
}
