package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Ping sends ICMP echo requests from node to dst every 100 ms until one is
// answered (nil) or timeout passes (an error). It is done in Go on a raw
// socket inside the node, so the tests need no iputils-ping.
func (l *Lab) Ping(node string, dst netip.Addr, timeout time.Duration) error {
	_, err := l.RTT(node, dst, timeout)
	return err
}

// RTT is Ping that also says how long the answered echo request took,
// from its sending to its reply (each request carries its own sequence
// number, so a late reply is not taken for a later request's).
func (l *Lab) RTT(node string, dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	var rtt time.Duration
	err := l.Do(node, func() (err error) {
		rtt, err = ping(dst, timeout)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("lab %s: ping %s from %s: %w", l.name, dst, node, err)
	}
	return rtt, nil
}

func ping(dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	dst = dst.Unmap()
	network, echo, reply := "ip4:icmp", byte(8), byte(0) // RFC 792
	if dst.Is6() {
		network, echo, reply = "ip6:ipv6-icmp", 128, 129 // RFC 4443 §4
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return 0, err
	}
	defer c.Close()

	// A random identifier and payload tell our replies from those to
	// other pings in the same namespace.
	msg := make([]byte, 16)
	rand.Read(msg[4:])
	msg[0] = echo
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	var sent []time.Time // by sequence number - 1
	var lastErr error
	for time.Now().Before(deadline) {
		binary.BigEndian.PutUint16(msg[6:], uint16(len(sent)+1)) // sequence
		if !dst.Is6() {
			// The kernel fills in the ICMPv6 checksum (it covers a
			// pseudo-header) but not the ICMPv4 one.
			binary.BigEndian.PutUint16(msg[2:], 0)
			binary.BigEndian.PutUint16(msg[2:], Checksum(0, msg))
		}
		sent = append(sent, time.Now())
		if _, err := c.WriteTo(msg, to); err != nil {
			lastErr = err // no route yet, neighbour failed: try again
		}
		c.SetReadDeadline(minTime(deadline, time.Now().Add(100*time.Millisecond)))
		for {
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return 0, err
			}
			// Go strips the IPv4 header from raw reads.
			if n != len(msg) || buf[0] != reply || !bytes.Equal(buf[4:6], msg[4:6]) || !bytes.Equal(buf[8:n], msg[8:]) ||
				!from.(*net.IPAddr).IP.Equal(to.IP) {
				continue
			}
			if seq := int(binary.BigEndian.Uint16(buf[6:])); seq >= 1 && seq <= len(sent) {
				return time.Since(sent[seq-1]), nil
			}
		}
	}
	if lastErr != nil {
		return 0, fmt.Errorf("no echo reply within %v (last send error: %w)", timeout, lastErr)
	}
	return 0, fmt.Errorf("no echo reply within %v", timeout)
}

// Checksum is the Internet checksum (RFC 1071) of b, starting from the
// partial sum sum (a pseudo-header's words, or 0).
func Checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
