package netio

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRecvCountsOverflow floods a VRRP socket with a minimal receive buffer
// on loopback in a namespace of its own, faster than it is read: the
// overflow Recv reports is the kernel's drop count, every packet sent and
// not received.
func TestRecvCountsOverflow(t *testing.T) {
	l := oneNode(t)
	lo := netip.MustParseAddr("127.0.0.1")
	var c *Conn
	var sender net.PacketConn
	err := l.Do("n", func() error {
		var err error
		if c, err = Listen(ConnConfig{Interface: "lo", Peers: []netip.Addr{lo}}); err != nil {
			return err
		}
		// The kernel raises 1 to its minimum: a few packets' worth.
		if err := setsockopt(c.raw, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
			return err
		}
		sender, err = net.ListenPacket("ip4:112", lo.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer sender.Close()

	const flood = 2000
	msg := make([]byte, 40)
	send := func() {
		t.Helper()
		if _, err := sender.WriteTo(msg, &net.IPAddr{IP: lo.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	for range flood {
		send()
	}
	buf := make([]byte, 65536)
	var received, overflow int
	read := func(wait time.Duration) error {
		if err := c.raw.SetReadDeadline(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		p, err := c.Recv(buf)
		if err == nil {
			received++
			overflow += int(p.Overflow)
		}
		return err
	}
	for {
		err := read(200 * time.Millisecond)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The kernel reports drops with the next packet it queues: one more,
	// into the now empty buffer, carries the drops of the flood's end.
	send()
	if err := read(5 * time.Second); err != nil {
		t.Fatalf("the packet after the flood: %v", err)
	}
	t.Logf("sent %d, received %d, overflow reported %d", flood+1, received, overflow)
	if overflow == 0 || overflow != flood+1-received {
		t.Errorf("overflow %d; want the %d packets sent and not received", overflow, flood+1-received)
	}
}
