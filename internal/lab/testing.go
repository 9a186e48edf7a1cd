package lab

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless the process can build labs: it runs as root,
// iproute2's ip is installed, and the kernel has network namespaces. Other
// packages' root-only tests call it too.
func RequireRoot(t testing.TB) {
	t.Helper()
	if reason := unavailable(); reason != "" {
		t.Skipf("lab: %s; skipping a test that needs network namespaces", reason)
	}
}

var unavailable = sync.OnceValue(func() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not root (euid %d)", os.Geteuid())
	}
	if _, err := ipPath(); err != nil {
		return err.Error()
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Sprintf("no network namespaces in this kernel (%v)", err)
	}
	return ""
})

// sweepOnce cleans up after earlier test binaries once per process.
var sweepOnce sync.Once

// NewT builds spec for a test: it skips t as RequireRoot does, fails it if
// the build fails, and registers Close with t.Cleanup, so the lab goes away
// even when the test fails or panics. If the test failed, the output of
// every process started with Start is logged first. The first call in a
// process also sweeps labs left behind by dead test binaries (see Sweep).
func NewT(t testing.TB, spec Spec) *Lab {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(func() {
		removed, err := Sweep()
		if len(removed) > 0 {
			t.Logf("lab: removed namespaces of dead test processes: %s", strings.Join(removed, " "))
		}
		if err != nil {
			t.Logf("lab: sweeping stale labs: %v", err)
		}
	})
	l, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			procs := l.procs
			l.mu.Unlock()
			for _, p := range procs {
				t.Logf("lab %s: output of %q in %s:\n%s", l.name, p.argv, p.node, p.Output())
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab: close: %v", err)
		}
	})
	return l
}

// RunWithTandem runs a package's tests. As root it first builds the tandem
// binary, which the root tests run in lab nodes, and sets *bin: in a
// temporary directory readable by all (some tests run it as nobody),
// removed afterwards. Without root the tests skip and nothing is built.
func RunWithTandem(m *testing.M, bin *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tandem-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *bin, err = BuildTandem(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// FullListener returns a loopback address whose listener (backlog 0)
// never accepts and has one connection queued already: the kernel drops
// further SYNs, so a connect to it neither succeeds nor is refused until
// the connector gives up. Everything goes away when t ends.
func FullListener(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	lo := [4]byte{127, 0, 0, 1}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: lo}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4(lo), uint16(sa.(*unix.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", ap.String(), time.Second)
	if err != nil {
		t.Fatalf("filling the accept queue of %s: %v", ap, err)
	}
	t.Cleanup(func() { filler.Close() })
	return ap
}

// ServeName runs a TCP server on node at addr that answers each connection
// with the node's name and a newline. With hold it then waits for the
// client to close (so a client can keep a connection established, for at
// most 30 s); without, it closes at once. It stops when t ends.
func (l *Lab) ServeName(t testing.TB, node, addr string, hold bool) {
	t.Helper()
	l.ServeT(t, node, addr, NameOnce(node, hold))
}

// NameOnce is ServeName's handler: name and a newline, then, with hold,
// wait for the client to close (at most 30 s).
func NameOnce(name string, hold bool) func(net.Conn) {
	return func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte(name + "\n"))
		if hold {
			io.Copy(io.Discard, c)
		}
	}
}

// ServeT is Serve for a test: it fails t if it cannot listen and stops
// when t ends.
func (l *Lab) ServeT(t testing.TB, node, addr string, handle func(net.Conn)) {
	t.Helper()
	stop, err := l.Serve(node, addr, handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// Serve listens on addr in node and hands every connection to handle, on
// a goroutine of its own (not in node's namespace: the connection already
// is), closing it when handle returns, until stop.
func (l *Lab) Serve(node, addr string, handle func(net.Conn)) (stop func(), err error) {
	var ln net.Listener
	err = l.Do(node, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return func() { ln.Close() }, nil
}

// TestLogger is a debug-level text logger whose lines go to t.Log.
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(TestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestWriter passes what is written to t.Log, a call per write.
func TestWriter(t testing.TB) io.Writer { return testWriter{t} }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Alive reports whether process pid is still running after waiting up to
// within for it to end. A zombie counts as ended: a test may run as the
// child of a PID 1 that does not reap.
func Alive(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if unix.Kill(pid, 0) != nil {
			return false
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WriteScript writes an executable shell script (#!/bin/sh, then body)
// named name into dir and returns its path.
func WriteScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// NSHandle opens node's network namespace, for the libraries that program
// a namespace by its descriptor (nftables.WithNetNSFd,
// netlink.NewHandleAt); it is closed when t ends.
func (l *Lab) NSHandle(t testing.TB, node string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName(node)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
