package lab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// NginxConf is an nginx.conf for a lab real server: in the foreground, one
// process, every path nginx writes under dir (nothing of the host's
// /etc/nginx or /var), and http holds the directives of the http block
// (server blocks, certificates).
func NginxConf(dir, http string) string {
	return fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, http)
}

// HTTPGet fetches http://addr/path from node and returns the body of a 200
// answer, without surrounding white space. It speaks HTTP/1.0 on a
// connection opened on the calling thread, inside node's namespace: net/http
// dials from other goroutines, which would not be in it. A short
// dialTimeout keeps a lost SYN (retransmitted after 1 s) from hiding the
// moment a service answers again.
func (l *Lab) HTTPGet(node string, addr netip.AddrPort, path string, dialTimeout time.Duration) (string, error) {
	return l.HTTPGetFrom(node, netip.Addr{}, addr, path, dialTimeout)
}

// HTTPGetFrom is HTTPGet from node's address src (the zero Addr: the
// one the kernel picks), for tests that need many clients.
func (l *Lab) HTTPGetFrom(node string, src netip.Addr, addr netip.AddrPort, path string, dialTimeout time.Duration) (string, error) {
	var body string
	err := l.Do(node, func() error {
		d := net.Dialer{Timeout: dialTimeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.Dial("tcp", addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: "+addr.String()+"\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(c, 4<<20))
		if err != nil {
			return err
		}
		head, rest, ok := strings.Cut(string(b), "\r\n\r\n")
		if !ok || !(strings.HasPrefix(head, "HTTP/1.1 200 ") || strings.HasPrefix(head, "HTTP/1.0 200 ")) {
			return fmt.Errorf("GET %s: bad response %.200q", path, b)
		}
		body = strings.TrimSpace(rest)
		return nil
	})
	return body, err
}

// Load is a client loop started by HTTPLoad: GETs one after the other
// through a service, counted.
type Load struct {
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	ok     int
	failed []string // the errors, each with its time
}

// HTTPLoad starts GETs of http://addr/ from node, one every interval (or
// back to back when a GET takes longer), until Stop; each uses
// dialTimeout, so a lost SYN counts as a failure instead of a delay.
func (l *Lab) HTTPLoad(node string, addr netip.AddrPort, interval, dialTimeout time.Duration) *Load {
	ld := &Load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ld.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			_, err := l.HTTPGet(node, addr, "/", dialTimeout)
			ld.mu.Lock()
			if err != nil {
				ld.failed = append(ld.failed, time.Now().Format("15:04:05.000")+" "+err.Error())
			} else {
				ld.ok++
			}
			ld.mu.Unlock()
			select {
			case <-ld.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return ld
}

// Stop ends the loop and returns how many GETs succeeded and the errors of
// those that failed.
func (ld *Load) Stop() (ok int, failed []string) {
	close(ld.stop)
	<-ld.done
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.ok, ld.failed
}
