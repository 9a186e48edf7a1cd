package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// AskName makes one connection to addr (a ServeName server), from the
// calling thread's namespace, and returns the name it answers and when
// the answer was read; timeout bounds the whole exchange.
func AskName(ctx context.Context, addr netip.AddrPort, timeout time.Duration) (string, time.Time, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return "", time.Time{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(io.LimitReader(c, 64))
	if err != nil {
		return "", time.Time{}, err
	}
	name := strings.TrimSpace(string(b))
	if name == "" {
		return "", time.Time{}, fmt.Errorf("empty answer")
	}
	return name, time.Now(), nil
}

// ConnLoad is a client started by StartConnLoad: short-lived TCP
// connections to a ServeName server at a steady rate, counted.
type ConnLoad struct {
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu     sync.Mutex
	res    LoadResult
	errLab error
}

// LoadResult is what a ConnLoad saw.
type LoadResult struct {
	// OK counts the answered connections, by the name that answered.
	OK map[string]int
	// Failed are the connections that failed or did not answer within
	// the timeout, each with its time and error.
	Failed []string
}

// Total is the number of answered connections.
func (r LoadResult) Total() int {
	n := 0
	for _, v := range r.OK {
		n += v
	}
	return n
}

// StartConnLoad makes rate connections per second from node to addr,
// spread over workers that each stay in node's namespace (one socket per
// connection, opened on the worker's thread); a connection that fails or
// does not answer within timeout counts as failed. A worker whose
// connection hangs falls behind; the others keep their pace.
func (l *Lab) StartConnLoad(node string, addr netip.AddrPort, rate, workers int, timeout time.Duration) *ConnLoad {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &ConnLoad{cancel: cancel, res: LoadResult{OK: map[string]int{}}}
	every := time.Duration(workers) * time.Second / time.Duration(rate)
	for w := range workers {
		ld.done.Go(func() {
			err := l.Do(node, func() error {
				// Stagger the workers over one interval.
				time.Sleep(time.Duration(w) * every / time.Duration(workers))
				tick := time.NewTicker(every)
				defer tick.Stop()
				for {
					name, _, err := AskName(ctx, addr, timeout)
					if ctx.Err() != nil {
						return nil // stopped mid-connection: not counted
					}
					ld.mu.Lock()
					if err != nil {
						ld.res.Failed = append(ld.res.Failed, time.Now().Format("15:04:05.000")+" "+err.Error())
					} else {
						ld.res.OK[name]++
					}
					ld.mu.Unlock()
					select {
					case <-ctx.Done():
						return nil
					case <-tick.C:
					}
				}
			})
			if err != nil {
				ld.mu.Lock()
				ld.errLab = err
				ld.mu.Unlock()
			}
		})
	}
	return ld
}

// Stop ends the load and returns what it saw; the error is a worker that
// could not enter the node.
func (ld *ConnLoad) Stop() (LoadResult, error) {
	ld.cancel()
	ld.done.Wait()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.res, ld.errLab
}
