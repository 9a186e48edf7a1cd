package lab

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// NameEcho is a Serve handler for long-lived connections: it answers
// every line it reads with name and a newline, on the same connection,
// until the client closes it or is silent for a minute.
func NameEcho(name string) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			c.SetDeadline(time.Now().Add(time.Minute))
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := c.Write([]byte(name + "\n")); err != nil {
				return
			}
		}
	}
}

// ConnResult is what one of Conns' connections saw.
type ConnResult struct {
	Local    netip.AddrPort // the client's end
	Server   string         // who answered the first request
	Answers  int
	Err      error         // the first error (reset, timeout, a different server); nil if it lasted
	MaxStall time.Duration // longest wait for an answer, from its request
}

// Conns are long-lived TCP connections from one node to an address, each
// sending a line every interval and reading the answer (NameEcho), as a
// client of a service with persistent connections does.
type Conns struct {
	wg   sync.WaitGroup
	stop chan struct{}
	mu   sync.Mutex // guards res
	res  []ConnResult
}

// connTimeout is how long a request may wait for its answer before the
// connection counts as broken: far longer than a failover, shorter than
// TCP's retransmissions give up.
const connTimeout = 10 * time.Second

// OpenConns dials n connections from node to addr, waits until each has
// had its first answer, and keeps them talking every interval until Stop.
// It fails if a connection cannot be set up.
func (l *Lab) OpenConns(node string, addr netip.AddrPort, n int, interval time.Duration) (*Conns, error) {
	cs := &Conns{stop: make(chan struct{}), res: make([]ConnResult, n)}
	conns := make([]net.Conn, n)
	err := l.Do(node, func() error {
		for i := range conns {
			c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
			if err != nil {
				return err
			}
			conns[i] = c
		}
		return nil
	})
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, fmt.Errorf("lab: open connections to %v: %w", addr, err)
	}
	ready := make(chan error, n)
	for i, c := range conns {
		cs.res[i].Local = netip.MustParseAddrPort(c.LocalAddr().String())
		cs.wg.Add(1)
		go cs.talk(i, c, interval, ready)
	}
	for range n {
		if err := <-ready; err != nil {
			cs.Stop()
			return nil, fmt.Errorf("lab: first request to %v: %w", addr, err)
		}
	}
	return cs, nil
}

// talk is connection i's loop: request, answer, wait, until stop or an
// error. ready gets the first exchange's outcome.
func (cs *Conns) talk(i int, c net.Conn, interval time.Duration, ready chan<- error) {
	defer cs.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	first := true
	fail := func(err error) {
		cs.mu.Lock()
		cs.res[i].Err = err
		cs.mu.Unlock()
		if first {
			ready <- err
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		start := time.Now()
		c.SetDeadline(start.Add(connTimeout))
		if _, err := c.Write([]byte("x\n")); err != nil {
			fail(err)
			return
		}
		line, err := r.ReadString('\n')
		if err != nil {
			fail(err)
			return
		}
		stall := time.Since(start)
		name := strings.TrimSuffix(line, "\n")
		cs.mu.Lock()
		res := &cs.res[i]
		if first {
			res.Server = name
		}
		res.Answers++
		res.MaxStall = max(res.MaxStall, stall)
		moved := name != res.Server
		cs.mu.Unlock()
		if moved {
			fail(fmt.Errorf("answered by %s, then by %s", cs.res[i].Server, name))
			return
		}
		if first {
			ready <- nil
			first = false
		}
		select {
		case <-cs.stop:
			return
		case <-tick.C:
		}
	}
}

// Results returns what each connection has seen so far.
func (cs *Conns) Results() []ConnResult {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]ConnResult(nil), cs.res...)
}

// WaitPast returns once every connection has had n more answers than
// before shows (an earlier Results), or has failed; an error if that
// takes longer than timeout.
func (cs *Conns) WaitPast(before []ConnResult, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for i, r := range cs.Results() {
			if r.Err == nil && r.Answers < before[i].Answers+n {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: connections not %d answers further after %v", n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends every connection and returns what each saw.
func (cs *Conns) Stop() []ConnResult {
	select {
	case <-cs.stop:
	default:
		close(cs.stop)
	}
	cs.wg.Wait()
	return cs.Results()
}

// KeptRuns sums the runs of a connections-kept measurement (bench/conns,
// bench/scaleout): how many connections should have survived and did,
// the worst run's share, and each run's longest stall.
type KeptRuns struct {
	Runs        int
	Conns, Kept int
	MinKept     float64         // the worst run's share
	Stalls      []time.Duration // each run's longest stall
}

// Add counts one run.
func (k *KeptRuns) Add(conns, kept int, stall time.Duration) {
	share := float64(kept) / float64(conns)
	if k.Runs == 0 || share < k.MinKept {
		k.MinKept = share
	}
	k.Runs++
	k.Conns += conns
	k.Kept += kept
	k.Stalls = append(k.Stalls, stall)
}

// Share is the share of connections kept over every run.
func (k KeptRuns) Share() float64 {
	if k.Conns == 0 {
		return 0
	}
	return float64(k.Kept) / float64(k.Conns)
}

// Median is the middle of ds (the upper one of an even count), 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}
