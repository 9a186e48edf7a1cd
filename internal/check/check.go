// Package check holds keepalived's health checkers (TCP_CHECK, HTTP_GET,
// SSL_GET, MISC_CHECK, PING_CHECK, DNS_CHECK, SMTP_CHECK, UDP_CHECK,
// FILE_CHECK) and the scheduler that runs them: a pure core (core.go) that
// turns check results and the time into timers and real-server events, and
// a thin shell (scheduler.go) that runs the checks with bounded concurrency.
package check

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/script"
)

// Checker is one health check of one real server. Check must return by the
// checker's own deadline (connect_timeout, misc_timeout) or when ctx ends,
// and must release every socket and process it used before returning.
type Checker interface {
	Check(ctx context.Context) Result
}

// Result is the outcome of one check.
type Result struct {
	OK      bool
	Err     error // why the check failed; nil when OK
	Latency time.Duration
	// Weight is the real server's weight asked for by a MISC_CHECK with
	// misc_dynamic (exit status - 2, check_misc.c misc_check_child_thread).
	Weight *int
	// WeightDelta is what a FILE_CHECK adds to the real server's configured
	// weight (file value × weight, trackers/track_file.c).
	WeightDelta *int
}

// Target is the real server a checker probes.
type Target struct {
	// Addr is the real server's address and port (connect_ip and
	// connect_port of the checker override it).
	Addr netip.AddrPort
}

// Env holds what checkers need from outside their own configuration.
type Env struct {
	// TrackFiles resolves FILE_CHECK's track_file names (vrrp_track_file).
	TrackFiles []*config.TrackFile
	// Scripts picks the identity MISC_CHECK scripts run as.
	Scripts *script.Users
	// Log gets what a checker has to say outside its results (a
	// MISC_CHECK script's unsafe permissions); nil: discard.
	Log *slog.Logger
}

// New builds the checker that c describes for the real server t.
func New(c *config.Checker, t Target, env Env) (Checker, error) {
	switch c.Type {
	case config.CheckTCP:
		return &TCP{cfg: c, addr: connectAddr(c, t)}, nil
	case config.CheckHTTP, config.CheckSSL:
		return newHTTP(c, connectAddr(c, t))
	case config.CheckMisc:
		if c.Misc == nil || len(c.Misc.Command) == 0 {
			return nil, fmt.Errorf("%s: no misc_path", c.Type)
		}
		return newMisc(c.Misc, env)
	case config.CheckPing:
		return &Ping{cfg: c, addr: connectAddr(c, t).Addr()}, nil
	case config.CheckDNS:
		return newDNS(c, connectAddr(c, t))
	case config.CheckSMTP:
		return &SMTP{cfg: c, addr: connectAddr(c, t)}, nil
	case config.CheckUDP:
		if c.UDP == nil {
			return nil, fmt.Errorf("%s: no settings", c.Type)
		}
		return &UDP{cfg: c, addr: connectAddr(c, t)}, nil
	case config.CheckFile:
		return newFile(c, env)
	}
	return nil, fmt.Errorf("unknown checker type %q", c.Type)
}

// connectAddr applies connect_ip and connect_port (keepalived check_api.c:
// the checker's connection defaults to the real server's address).
func connectAddr(c *config.Checker, t Target) netip.AddrPort {
	ip, port := t.Addr.Addr(), t.Addr.Port()
	if c.ConnectIP.IsValid() {
		ip = c.ConnectIP
	}
	if c.ConnectPort != 0 {
		port = uint16(c.ConnectPort)
	}
	return netip.AddrPortFrom(ip, port)
}

// timeout is the checker's connect_timeout, the bound on a whole check.
func timeout(c *config.Checker) time.Duration {
	if d := time.Duration(c.Timing.ConnectTimeout); d > 0 {
		return d
	}
	return 5 * time.Second // keepalived's default connect_timeout
}

// dialer returns a net.Dialer honouring bindto, bind_port, bind_if and
// fwmark for a connection of the given network ("tcp" or "udp").
func dialer(c *config.Checker, network string) *net.Dialer {
	// No TCP keepalive: a check's connection lives for one exchange, and
	// setting keepalive up costs four system calls per check (measured by
	// bench/checks: about a tenth of a TCP_CHECK's CPU).
	d := &net.Dialer{Timeout: timeout(c), KeepAlive: -1}
	if c.BindTo.IsValid() || c.BindPort != 0 {
		ap := netip.AddrPortFrom(c.BindTo, uint16(c.BindPort))
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(ap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(ap)
		}
	}
	if c.BindIf != "" || c.FWMark != 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return controlSocket(rc, c.BindIf, c.FWMark)
		}
	}
	return d
}

// controlSocket sets SO_BINDTODEVICE (bind_if) and SO_MARK (fwmark).
func controlSocket(rc syscall.RawConn, ifname string, mark uint32) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if ifname != "" {
			if serr = unix.BindToDevice(int(fd), ifname); serr != nil {
				serr = fmt.Errorf("bind_if %s: %w", ifname, serr)
				return
			}
		}
		if mark != 0 {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); serr != nil {
				serr = fmt.Errorf("fwmark %d: %w", mark, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// result finishes a Result, measuring latency from start.
func result(start time.Time, err error) Result {
	return Result{OK: err == nil, Err: err, Latency: time.Since(start)}
}

// hostPort formats an address for error messages and dialing.
func hostPort(ap netip.AddrPort) string {
	return net.JoinHostPort(ap.Addr().String(), strconv.Itoa(int(ap.Port())))
}
