package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"tandem/internal/lab"
)

// The lab is seed001's layout; ka1 is master (priority 100), ka2 backup (90).
const (
	masterNode = "ka1"
	backupNode = "ka2"
	clientNode = "client"
)

var vipPort = netip.AddrPortFrom(lab.Seed001().VIPs[0], 7070)

const (
	// probeEvery is how often the client starts a connection to the VIP:
	// the measurement's resolution.
	probeEvery = 10 * time.Millisecond
	// probeTimeout bounds one connection (connect and read). A SYN to a
	// node that no longer holds the VIP is dropped, and TCP would resend
	// it only after 1 s.
	probeTimeout = 50 * time.Millisecond
)

// measure runs one failover of im in a fresh lab and returns the time from
// stopping the master (SIGKILL of its process group, or SIGTERM) phase
// after one of its adverts to the client's first answer from the backup
// through the VIP, and why the backup says it took over ("" if it does
// not say).
func measure(ctx context.Context, im impl, c benchCase, phase time.Duration) (took time.Duration, why string, err error) {
	l, err := lab.New(lab.Seed001().Spec())
	if err != nil {
		return 0, "", err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	dir, err := os.MkdirTemp("", "failover-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	for _, node := range []string{masterNode, backupNode} {
		ln, err := serveName(l, node)
		if err != nil {
			return 0, "", err
		}
		defer ln.Close() // before l.Close: the socket holds the namespace
	}

	// The master first, alone, so that the two never race for mastership
	// at start (keepalived's master takes about Master_Down_Interval
	// to take over, as long as the backup would).
	var m, b *daemon
	defer func() {
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w\n--- %s output:\n%s--- %s output:\n%s", err, masterNode, tail(m), backupNode, tail(b))
		}
	}()
	if m, err = startRouter(im, l, dir, masterNode, "MASTER", 100, c.advert, c.bfd && im.bfd, threadSched{}); err != nil {
		return 0, "", err
	}
	if err := waitState(ctx, m, "MASTER", 15*time.Second); err != nil {
		return 0, "", fmt.Errorf("%s on %s: %w", im.name, masterNode, err)
	}
	if b, err = startRouter(im, l, dir, backupNode, "BACKUP", 90, c.advert, c.bfd && im.bfd, threadSched{}); err != nil {
		return 0, "", err
	}
	if err := waitState(ctx, b, "BACKUP", 10*time.Second); err != nil {
		return 0, "", fmt.Errorf("%s on %s: %w", im.name, backupNode, err)
	}
	if c.bfd && im.bfd {
		if err := waitBFD(ctx, b, 10*time.Second); err != nil {
			return 0, "", fmt.Errorf("%s on %s: %w", im.name, backupNode, err)
		}
	}
	// Let the backup hear the master (a VRRPv3 backup learns its
	// interval from the adverts), and the client learn the master's MAC
	// for the VIP, as a client of a long-running pair has.
	if err := lab.Sleep(ctx, 3*c.advert.interval); err != nil {
		return 0, "", err
	}
	if _, err := probe(ctx, l, masterNode, 5*time.Second); err != nil {
		return 0, "", fmt.Errorf("client does not reach the VIP on the master: %w", err)
	}
	// The kill lands phase after one of the master's adverts (as the
	// client hears it, as early as the backup does): phase decides how
	// much of its Master_Down_Timer the backup has left, so drawing it at
	// random samples the whole range, and drawing it once per run for
	// both implementations compares them at the same phases.
	// At least a second: at advert_int 0.01, 5 adverts are 50 ms, less
	// than joining the group can take on a loaded machine.
	heard, err := nextAdvert(ctx, l, max(5*c.advert.interval, time.Second))
	if err != nil {
		return 0, "", fmt.Errorf("client hears no advert from the master: %w", err)
	}
	if err := lab.Sleep(ctx, time.Until(heard.Add(phase))); err != nil {
		return 0, "", err
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		at  time.Time
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		at, err := probe(pctx, l, backupNode, 20*time.Second)
		answered <- answer{at, err}
	}()
	// A loaded machine can make the backup take over falsely (its
	// Master_Down_Timer or BFD detection time runs out while the master
	// lives) just before the stop; its answer would then not measure a
	// failover. The backup must become MASTER after the stop.
	mastered := b.masters()
	start := time.Now()
	switch c.stop {
	case crash:
		err = m.proc.Kill() // the whole process group: keepalived's VRRP child too
	case lost:
		err = l.Crash(masterNode, m.proc) // port cut, then SIGKILL as for crash
	default:
		err = m.proc.Stop(10 * time.Second) // SIGTERM to the daemon, which stops its children
	}
	if err != nil {
		cancel()
		<-answered
		return 0, "", err
	}
	a := <-answered
	if a.err != nil {
		return 0, "", fmt.Errorf("client does not reach the VIP on the backup: %w", a.err)
	}
	if a.at.Before(start) {
		return 0, "", fmt.Errorf("the backup answered for the VIP before the master was stopped")
	}
	// The log line can follow the answer by a little.
	if err := waitUntil(ctx, b, "MASTER after the stop", time.Second, func() (bool, string) {
		return b.masters() > mastered, "it became MASTER before the stop and stayed: a false failover under load, not a measurement"
	}); err != nil {
		return 0, "", err
	}
	return a.at.Sub(start), b.reason(), nil
}

// serveName listens on node's 0.0.0.0 at vipPort's port and answers every
// connection with the node's name. The socket is opened inside the node's
// namespace (Do) and stays there; accepting can then run on any thread.
func serveName(l *lab.Lab, node string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(node, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", vipPort.Port()))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("serve on %s: %w", node, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte(node))
			c.Close()
		}
	}()
	return ln, nil
}

// probe connects from the client node to the VIP every probeEvery until a
// connection answers want, and returns when that answer was read. A new
// attempt starts every probeEvery even while earlier ones are pending: an
// attempt against a VIP nobody holds waits its whole probeTimeout, and
// waiting for it would blur the measurement to probeTimeout+probeEvery.
func probe(ctx context.Context, l *lab.Lab, want string, timeout time.Duration) (time.Time, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	var attempts sync.WaitGroup
	defer attempts.Wait()
	defer cancel() // before Wait: it ends the pending attempts
	found := make(chan time.Time, 1)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var mu sync.Mutex
	var lastErr error
	for {
		attempts.Go(func() {
			var name string
			var at time.Time
			// Each attempt opens its socket in the client's namespace.
			err := l.Do(clientNode, func() (err error) {
				name, at, err = lab.AskName(pctx, vipPort, probeTimeout)
				return err
			})
			if err == nil && name != want {
				err = fmt.Errorf("answered by %s", name)
			}
			if err != nil {
				mu.Lock()
				lastErr = err
				mu.Unlock()
				return
			}
			select {
			case found <- at:
			default: // another attempt was first
			}
		})
		select {
		case at := <-found:
			return at, nil
		case <-pctx.Done():
			if err := ctx.Err(); err != nil {
				return time.Time{}, err
			}
			mu.Lock()
			defer mu.Unlock()
			return time.Time{}, fmt.Errorf("no answer from %s within %v (last: %v)", want, timeout, lastErr)
		case <-tick.C:
		}
	}
}

// nextAdvert waits in the client node for a VRRP advert from the master
// and returns when it arrived.
func nextAdvert(ctx context.Context, l *lab.Lab, timeout time.Duration) (time.Time, error) {
	var heard time.Time
	err := l.Do(clientNode, func() error {
		c, err := net.ListenPacket("ip4:112", "0.0.0.0") // IPPROTO_VRRP
		if err != nil {
			return err
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
		defer stop()
		// Multicast reaches a socket only on a host that joined the group.
		ifi, err := net.InterfaceByName("ens33")
		if err == nil {
			err = ipv4.NewPacketConn(c).JoinGroup(ifi, &net.IPAddr{IP: net.IPv4(224, 100, 100, 100)})
		}
		if err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		master := net.IP(lab.Seed001().Directors[0].Addr.AsSlice())
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			if from.(*net.IPAddr).IP.Equal(master) {
				heard = time.Now()
				return nil
			}
		}
	})
	if err != nil && ctx.Err() != nil {
		return heard, ctx.Err()
	}
	return heard, err
}
