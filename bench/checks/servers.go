package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The real servers live on loopback. Linux routes all of 127.0.0.0/8 to lo,
// so 127.x.y.z can be bound without configuring addresses; spreading the
// listeners over many addresses keeps their ports below the ephemeral range
// (32768-60999) that the checker's own connections draw from.
const (
	portBase    = 20000
	portsPerIP  = 250
	tcpNet      = 10 // TCP listeners on 127.10.*.*
	httpNet     = 20 // HTTP servers on 127.20.*.*
	serveFlag   = "serve"
	readyLine   = "ready"
	closedReply = "closed"
	openedReply = "opened"
)

// serverAddr is the address of the i-th real server of a kind (tcpNet or
// httpNet), the same in the parent (config) and the child (listeners).
func serverAddr(subnet byte, i int) netip.AddrPort {
	host := i/portsPerIP + 1 // .0 is skipped only to look less like a network
	ip := netip.AddrFrom4([4]byte{127, subnet, byte(host >> 8), byte(host)})
	return netip.AddrPortFrom(ip, uint16(portBase+i%portsPerIP))
}

// serve is the child process: it listens on every real server's address,
// prints readyLine, then answers commands read from stdin, one a line:
//
//	close ADDR  closes that listener (a killed real server) -> "closed"
//	open ADDR   listens there again (a closed one revived)  -> "opened"
//	count       the connections accepted so far             -> a number
//
// It exits when stdin closes, so a parent that dies cannot leave it behind.
func serve(nTCP, nHTTP int) error {
	var accepted atomic.Int64
	listeners := make(map[string]net.Listener, nTCP+nHTTP)
	// Plain TCP listeners, as nginx and most servers have: Go's own
	// default (since 1.24) is Multipath TCP, whose extra work on each
	// handshake would be charged to the checker on loopback.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	listen := func(ap netip.AddrPort) (net.Listener, error) {
		l, err := lc.Listen(context.Background(), "tcp", ap.String())
		if err != nil {
			return nil, err
		}
		l = &countingListener{Listener: l, n: &accepted}
		listeners[ap.String()] = l
		return l, nil
	}
	// TCP_CHECK only needs the handshake; closing at once is what a
	// server that is up but says nothing looks like.
	acceptClose := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	// One http.Server serves every HTTP listener: a server per address
	// would only add goroutines to the child, which is not what we measure.
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	// start listens at ap and serves it as its kind (by subnet) wants.
	start := func(ap netip.AddrPort) error {
		l, err := listen(ap)
		if err != nil {
			return err
		}
		if ap.Addr().As4()[1] == tcpNet {
			go acceptClose(l)
		} else {
			go srv.Serve(l)
		}
		return nil
	}
	for i := range nTCP {
		if err := start(serverAddr(tcpNet, i)); err != nil {
			return err
		}
	}
	for i := range nHTTP {
		if err := start(serverAddr(httpNet, i)); err != nil {
			return err
		}
	}
	fmt.Println(readyLine)

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "close":
			if l, ok := listeners[arg]; ok {
				l.Close()
			}
			fmt.Println(closedReply)
		case "open":
			ap, err := netip.ParseAddrPort(arg)
			if err == nil {
				err = start(ap)
			}
			if err != nil {
				fmt.Println(err)
				break
			}
			fmt.Println(openedReply)
		case "count":
			fmt.Println(accepted.Load())
		default:
			fmt.Println("unknown command")
		}
	}
	return nil // stdin closed: the parent is gone or done
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// servers is the parent's handle on the child.
type servers struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex // one command at a time
}

// startServers re-executes this binary with -serve and waits until every
// listener is up.
func startServers(nTCP, nHTTP int) (*servers, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-"+serveFlag, "-tcp", strconv.Itoa(nTCP), "-http", strconv.Itoa(nHTTP))
	cmd.Stderr = os.Stderr
	// Even if we are SIGKILLed the child goes too (and it also exits on
	// EOF on stdin).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &servers{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	if line, err := s.read(); err != nil || line != readyLine {
		s.stop()
		return nil, fmt.Errorf("real servers did not start (%q): %v", line, err)
	}
	return s, nil
}

func (s *servers) read() (string, error) {
	if !s.out.Scan() {
		if err := s.out.Err(); err != nil {
			return "", err
		}
		return "", errors.New("real servers exited")
	}
	return s.out.Text(), nil
}

func (s *servers) command(c string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.in, c+"\n"); err != nil {
		return "", err
	}
	return s.read()
}

// kill closes the listener at ap: from then on connecting to it is refused.
func (s *servers) kill(ap netip.AddrPort) error {
	r, err := s.command("close " + ap.String())
	if err == nil && r != closedReply {
		err = fmt.Errorf("close %s: %q", ap, r)
	}
	return err
}

// revive listens at ap again after kill.
func (s *servers) revive(ap netip.AddrPort) error {
	r, err := s.command("open " + ap.String())
	if err == nil && r != openedReply {
		err = fmt.Errorf("open %s: %q", ap, r)
	}
	return err
}

// accepted is how many connections the real servers have accepted: every
// successful check is exactly one.
func (s *servers) accepted() (int64, error) {
	r, err := s.command("count")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(r, 10, 64)
}

// stop kills the child by its PID and reaps it.
func (s *servers) stop() {
	s.in.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
}
