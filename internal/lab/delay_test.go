package lab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
)

// minRTT is the shortest of n pings from node to dst.
func minRTT(t *testing.T, l *Lab, node string, dst netip.Addr, n int) time.Duration {
	t.Helper()
	best := time.Duration(-1)
	for range n {
		rtt, err := l.RTT(node, dst, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if best < 0 || rtt < best {
			best = rtt
		}
	}
	return best
}

// hasDelayTable reports whether node has the Delayer's nftables table.
func hasDelayTable(t *testing.T, l *Lab, node string) bool {
	t.Helper()
	found := false
	err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tabs, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		for _, tab := range tabs {
			found = found || tab.Name == delayTable
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestDelay: with b's packets delayed by D both ways, a ping from a to b
// takes at least 2D (a lower bound: the machine may add to it, never
// take away); after Close, b's rules are gone and a ping takes less than
// D again, while c, never delayed, answers a as before throughout.
func TestDelay(t *testing.T) {
	l := NewT(t, threeNodes())
	const d = 150 * time.Millisecond
	before := minRTT(t, l, "a", addrB, 3)

	dl, err := l.Delay("b", d, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	if !hasDelayTable(t, l, "b") {
		t.Fatal("Delay returned without its rules in b")
	}
	during := minRTT(t, l, "a", addrB, 3)
	if during < 2*d*9/10 {
		t.Errorf("ping a -> b with b delayed %v both ways took %v; want at least %v", d, during, 2*d*9/10)
	}
	if err := l.Ping("a", addrC, 5*time.Second); err != nil {
		t.Errorf("c, not delayed: %v", err)
	}
	// Each ping is two packets through b (request in, reply out).
	if n := dl.Held(); n < 6 {
		t.Errorf("the delayer held %d packets; want at least 6", n)
	}
	if err := dl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if hasDelayTable(t, l, "b") {
		t.Error("Close left the rules in b")
	}
	after := minRTT(t, l, "a", addrB, 3)
	if after >= d {
		t.Errorf("ping a -> b after Close took at least %v; want less than the delay %v", after, d)
	}
	t.Logf("RTT a -> b: before %v, delayed %v both ways %v, after %v", before, d, during, after)

	// Delay again on the same node: Close unbound the queue.
	dl2, err := l.Delay("b", d, 0)
	if err != nil {
		t.Fatalf("a second Delay on b after Close: %v", err)
	}
	if err := dl2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDelayKeepsOrder: with jitter much larger than the gap between
// packets, they still leave in the order they came.
func TestDelayKeepsOrder(t *testing.T) {
	l := NewT(t, threeNodes())
	var rc net.PacketConn
	err := l.Do("b", func() (err error) {
		rc, err = net.ListenPacket("udp4", netip.AddrPortFrom(addrB, 9999).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sc net.Conn
	err = l.Do("a", func() (err error) {
		sc, err = net.Dial("udp4", netip.AddrPortFrom(addrB, 9999).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// Resolve b's MAC first, so no datagram waits for ARP.
	if err := l.Ping("a", addrB, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	dl, err := l.Delay("b", 60*time.Millisecond, 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	const n = 100
	for i := range n {
		if _, err := sc.Write(binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	var got []uint32
	buf := make([]byte, 16)
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < n {
		k, _, err := rc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("received %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, binary.BigEndian.Uint32(buf[:k]))
	}
	for i, v := range got {
		if v != uint32(i) {
			t.Fatalf("datagram %d arrived in position %d: reordered (arrival order %v)", v, i, got)
		}
	}
	if dl.Held() < n {
		t.Errorf("the delayer held %d packets; want at least the %d datagrams", dl.Held(), n)
	}
}

// TestDelayBypass: a delayer whose socket is gone (as when its process
// dies) must not cut the node off: the rules' bypass flag lets packets
// through while no one listens on the queue.
func TestDelayBypass(t *testing.T) {
	l := NewT(t, threeNodes())
	const d = 2 * time.Second
	dl, err := l.Delay("b", d, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The delayer "dies": its socket closes, its rules stay.
	if err := dl.conn.Close(); err != nil {
		t.Fatal(err)
	}
	<-dl.released
	if !hasDelayTable(t, l, "b") {
		t.Fatal("the rules went with the socket; the test proves nothing")
	}
	// Alive, the delayer would hold this ping 2 × 2 s; dead without
	// bypass, b would never answer.
	rtt, err := l.RTT("a", addrB, 3*time.Second)
	if err != nil {
		t.Errorf("b unreachable while its delayer is dead and its rules stay: %v", err)
	} else if rtt >= d {
		t.Errorf("ping took %v with the delayer dead; want it to pass undelayed", rtt)
	}
	// Close still removes the rules (its error, the dead socket's, is
	// expected).
	dl.Close()
	if hasDelayTable(t, l, "b") {
		t.Error("Close left the rules in b")
	}
}

func TestDelayRejectsBadJitter(t *testing.T) {
	l := NewT(t, threeNodes())
	if _, err := l.Delay("b", 10*time.Millisecond, 20*time.Millisecond); err == nil {
		t.Error("Delay accepted a jitter larger than the delay")
	}
	if hasDelayTable(t, l, "b") {
		t.Error("a refused Delay left rules in b")
	}
}
