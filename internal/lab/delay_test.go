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

// udpAB is a UDP socket in a connected to b's port 9999 and one in b
// listening there. send sends numbered datagrams; receive returns the
// numbers that b got within timeout, up to n, in order of arrival.
func udpAB(t *testing.T, l *Lab) (send func(from, to int), receive func(n int, timeout time.Duration) []uint32) {
	t.Helper()
	var rc net.PacketConn
	err := l.Do("b", func() (err error) {
		rc, err = net.ListenPacket("udp4", netip.AddrPortFrom(addrB, 9999).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	var sc net.Conn
	err = l.Do("a", func() (err error) {
		sc, err = net.Dial("udp4", netip.AddrPortFrom(addrB, 9999).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	// Resolve b's MAC first, so no datagram waits for ARP.
	if err := l.Ping("a", addrB, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	send = func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := sc.Write(binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	receive = func(n int, timeout time.Duration) []uint32 {
		var got []uint32
		buf := make([]byte, 16)
		rc.SetReadDeadline(time.Now().Add(timeout))
		for len(got) < n {
			k, _, err := rc.ReadFrom(buf)
			if err != nil {
				break
			}
			got = append(got, binary.BigEndian.Uint32(buf[:k]))
		}
		return got
	}
	return send, receive
}

// delayedUDP is a lab with udpAB and b's packets delayed.
func delayedUDP(t *testing.T, delay, jitter time.Duration) (*Lab, *Delayer, func(from, to int), func(n int, timeout time.Duration) []uint32) {
	t.Helper()
	l := NewT(t, threeNodes())
	send, receive := udpAB(t, l)
	dl, err := l.Delay("b", delay, jitter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return l, dl, send, receive
}

// waitHeld waits until dl has held at least n packets.
func waitHeld(t *testing.T, dl *Delayer, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); dl.Held() < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delayer held %d packets; waited for %d", dl.Held(), n)
		}
	}
}

// inOrder fails t unless got is 0, 1, ..., n-1.
func inOrder(t *testing.T, got []uint32, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("b received %d of %d datagrams: %v", len(got), n, got)
	}
	for i, v := range got {
		if v != uint32(i) {
			t.Fatalf("datagram %d arrived in position %d: reordered (arrival order %v)", v, i, got)
		}
	}
}

// TestDelayKeepsOrder: with jitter much larger than the gap between
// packets, they still leave in the order they came.
func TestDelayKeepsOrder(t *testing.T) {
	_, dl, send, receive := delayedUDP(t, 60*time.Millisecond, 40*time.Millisecond)
	const n = 100
	send(0, n)
	inOrder(t, receive(n, 10*time.Second), n)
	if dl.Held() < n {
		t.Errorf("the delayer held %d packets; want at least the %d datagrams", dl.Held(), n)
	}
}

// TestDelayCloseReleasesHeld: Close lets the held packets go at once, in
// order, none lost, though their time has not come.
func TestDelayCloseReleasesHeld(t *testing.T) {
	_, dl, send, receive := delayedUDP(t, 5*time.Second, 0)
	const n = 20
	send(0, n)
	waitHeld(t, dl, n)
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	// Released at their time, they would come 5 s after they were sent.
	inOrder(t, receive(n, 2*time.Second), n)
	if dl.Lost() != 0 {
		t.Errorf("%d held packets lost at Close", dl.Lost())
	}
}

// TestDelayKernelDrops: when a netfilter hook goes away in the node (here
// an unrelated nftables table with a base chain is deleted), the kernel
// drops the queued packets; the delayer counts them as lost, Close does
// not fail, and the queue goes on working.
func TestDelayKernelDrops(t *testing.T) {
	l, dl, send, receive := delayedUDP(t, 5*time.Second, 0)
	const n = 5
	send(0, n)
	waitHeld(t, dl, n)
	err := l.Do("b", func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
		c.AddChain(&nftables.Chain{Name: "in", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		if err := c.Flush(); err != nil {
			return err
		}
		c.DelTable(tab)
		return c.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	send(n, 2*n)
	waitHeld(t, dl, 2*n)
	if err := dl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := receive(2*n, 2*time.Second)
	if dl.Lost() < 1 {
		t.Errorf("the kernel dropped the held datagrams (b got %v) and the delayer counted none lost", got)
	}
	// The ones sent after the hook went were held and released.
	if len(got) < n || got[len(got)-1] != 2*n-1 {
		t.Errorf("b received %v; want the last %d datagrams", got, n)
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
