package netio

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// TestRecvCountsOverflow floods a VRRP socket with a minimal receive buffer
// on loopback in a namespace of its own, faster than it is read: the
// overflow Recv reports is the kernel's drop count, every packet sent and
// not received.
func TestRecvCountsOverflow(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	c, sender := loopbackConn(t, oneNode(t), lo, func(c *Conn) error {
		// The kernel raises 1 to its minimum: a few packets' worth.
		return setsockopt(c.raw, unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
	})

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

// loopbackConn opens, in l's node n, a VRRP socket on lo that takes
// unicast from addr (IPv4 or IPv6), adjusted by setup if not nil, and a
// raw VRRP socket to send to it from addr. Both close with the test.
func loopbackConn(t *testing.T, l *lab.Lab, addr netip.Addr, setup func(*Conn) error) (*Conn, net.PacketConn) {
	t.Helper()
	network := "ip4:112"
	if addr.Is6() {
		network = "ip6:112"
	}
	var c *Conn
	var sender net.PacketConn
	err := l.Do("n", func() error {
		var err error
		if c, err = Listen(ConnConfig{Interface: "lo", IPv6: addr.Is6(), Peers: []netip.Addr{addr}, Src: addr}); err != nil {
			return err
		}
		if setup != nil {
			if err := setup(c); err != nil {
				c.Close()
				return err
			}
		}
		sender, err = net.ListenPacket(network, addr.String())
		if err != nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); sender.Close() })
	return c, sender
}

// TestRecvKernelTimestamp: a packet carries the kernel's receive time, so
// that one read late has an Age at least as long as it waited in the
// socket; and Pending sees a packet waiting, and no longer once it is
// read. The kernel turns receive timestamps on for the whole host a
// moment after the first socket asks (net_enable_timestamp defers it);
// until then it stamps packets as they are read: so the test tries a few
// times, and needs one packet dated by its arrival.
func TestRecvKernelTimestamp(t *testing.T) {
	l := oneNode(t)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, addr := range []netip.Addr{lo, netip.IPv6Loopback()} {
		v6 := addr.Is6()
		c, sender := loopbackConn(t, l, addr, nil)
		const wait = 100 * time.Millisecond
		var ages []time.Duration
		for range 10 {
			if c.Pending() {
				t.Fatalf("v6=%v: a packet pending before any was sent", v6)
			}
			sent := time.Now()
			if _, err := sender.WriteTo(make([]byte, 40), &net.IPAddr{IP: addr.AsSlice()}); err != nil {
				t.Fatal(err)
			}
			for !c.Pending() {
				if time.Since(sent) > 10*time.Second {
					t.Fatalf("v6=%v: the packet sent is not pending", v6)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(wait) // the reader is late
			if err := c.raw.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			p, err := c.Recv(make([]byte, 65536))
			if err != nil {
				t.Fatalf("v6=%v: %v", v6, err)
			}
			if p.Age > time.Since(sent) {
				t.Fatalf("v6=%v: age %v, more than the %v since the send", v6, p.Age, time.Since(sent))
			}
			if c.Pending() {
				t.Fatalf("v6=%v: still pending after the only packet was read", v6)
			}
			ages = append(ages, p.Age)
			// At least the wait: it was queued before it.
			if p.Age >= wait {
				break
			}
		}
		if last := ages[len(ages)-1]; last < wait {
			t.Errorf("v6=%v: ages %v; want one of at least %v (the time the packet waited)", v6, ages, wait)
		}
	}
}

// TestRecvNow: the non-blocking read reports no packet on an empty
// socket, and reads one that is queued, with its sender and timestamp.
func TestRecvNow(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	c, sender := loopbackConn(t, oneNode(t), lo, nil)
	buf := make([]byte, 65536)
	if _, ok, err := c.RecvNow(buf); ok || err != nil {
		t.Fatalf("empty socket: ok %v, err %v", ok, err)
	}
	sent := time.Now()
	if _, err := sender.WriteTo(make([]byte, 40), &net.IPAddr{IP: lo.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	for {
		p, ok, err := c.RecvNow(buf)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if p.Src != lo || len(p.Data) != 60 || p.Age > time.Since(sent) {
				t.Errorf("packet from %v, %d bytes, age %v", p.Src, len(p.Data), p.Age)
			}
			break
		}
		if time.Since(sent) > 10*time.Second {
			t.Fatal("the packet sent never came")
		}
		time.Sleep(time.Millisecond)
	}
	if fd, err := c.FD(); err != nil || fd <= 0 {
		t.Errorf("FD: %d, %v", fd, err)
	}
}
