package uring

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// newRing makes a ring for the test on the test goroutine's thread, which
// stays locked to it until the ring is closed; it skips when the kernel
// cannot run one (the reason is printed).
func newRing(t *testing.T, slots int) *Ring {
	t.Helper()
	runtime.LockOSThread()
	r, err := New(uint32(4*slots), slots)
	if errors.Is(err, ErrUnsupported) {
		runtime.UnlockOSThread()
		t.Skipf("io_uring cannot run here: %v", err)
	}
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		runtime.UnlockOSThread()
	})
	return r
}

// connect runs one connect in slot 0 and returns its completion's result,
// then closes the slot.
func connect(t *testing.T, r *Ring, addr netip.AddrPort, timeout time.Duration) (int32, time.Duration) {
	t.Helper()
	start := time.Now()
	r.Connect(0, addr, timeout, 7)
	res, got := int32(0), false
	for !got {
		if time.Since(start) > timeout+5*time.Second {
			t.Fatalf("no completion for %s", addr)
		}
		if err := r.Enter(1, time.Second); err != nil {
			t.Fatal(err)
		}
		r.Reap(func(user uint64, v int32) {
			switch user {
			case 7:
				res, got = v, true
			case 7 | SocketFailed:
				t.Errorf("socket failed: %v", syscall.Errno(-v))
			case 0:
			default:
				t.Errorf("completion with user %#x", user)
			}
		})
	}
	took := time.Since(start)
	r.CloseSlot(0)
	if err := r.Enter(0, 0); err != nil {
		t.Fatal(err)
	}
	return res, took
}

// TestConnect: an open port connects, the connection is really closed by
// CloseSlot (the server reads EOF), a closed port is refused, and a server
// whose accept queue is full (SYNs dropped) hits the linked timeout.
func TestConnect(t *testing.T) {
	r := newRing(t, 4)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	eof := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			eof <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		eof <- err
	}()
	if res, _ := connect(t, r, netip.MustParseAddrPort(l.Addr().String()), time.Second); res != 0 {
		t.Fatalf("connect to a listener: %v", syscall.Errno(-res))
	}
	if err := <-eof; err != nil {
		t.Errorf("server side after CloseSlot: %v, want EOF", err)
	}

	closed := closedPort(t)
	if res, _ := connect(t, r, closed, time.Second); res != -int32(unix.ECONNREFUSED) {
		t.Errorf("connect to %s: %v, want connection refused", closed, syscall.Errno(-res))
	}

	full := lab.FullListener(t)
	res, took := connect(t, r, full, 300*time.Millisecond)
	if res != -int32(unix.ECANCELED) {
		t.Errorf("connect to a full accept queue: %v, want the timeout's ECANCELED", syscall.Errno(-res))
	}
	if took < 300*time.Millisecond {
		t.Errorf("timed out after %v, before the 300ms timeout", took)
	}
}

// TestConnectIPv6 connects over ::1 when the machine has it.
func TestConnectIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	r := newRing(t, 1)
	if res, _ := connect(t, r, netip.MustParseAddrPort(l.Addr().String()), time.Second); res != 0 {
		t.Fatalf("connect to [::1]: %v", syscall.Errno(-res))
	}
}

// TestBatch runs more connects than slots in rounds, each slot reused once
// its close was submitted, and every one completes.
func TestBatch(t *testing.T) {
	const slots, total = 8, 100
	r := newRing(t, slots)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := netip.MustParseAddrPort(l.Addr().String())
	ok := 0
	for started := 0; started < total; {
		n := min(slots, total-started)
		for s := range n {
			r.Connect(s, addr, time.Second, uint64(s)+1)
		}
		started += n
		for got := 0; got < n; {
			if err := r.Enter(1, time.Second); err != nil {
				t.Fatal(err)
			}
			r.Reap(func(user uint64, v int32) {
				if user == 0 {
					return
				}
				if user&SocketFailed != 0 || v != 0 {
					t.Errorf("slot %d: %v", user&^SocketFailed-1, syscall.Errno(-v))
				}
				if user&SocketFailed == 0 {
					got++
					if v == 0 {
						ok++
					}
				}
			})
		}
		for s := range n {
			r.CloseSlot(s)
		}
		if err := r.Enter(0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if ok != total {
		t.Errorf("%d of %d connects succeeded", ok, total)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}
