// Package smtptest is an SMTP server on 127.0.0.1 for tests of the code
// that sends Tandem's alerts: it answers the commands notify.Mailer sends
// (RFC 5321: HELO, MAIL, RCPT, DATA, QUIT), hands each message to the test,
// and can hold its greeting back to play a slow server.
package smtptest

import (
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one message the server took.
type Message struct {
	From string   // MAIL FROM's address
	To   []string // RCPT TO's addresses
	Data string   // the DATA, dot-unstuffed, "\n" line ends
}

// Server is a running SMTP server; t.Cleanup stops it and waits for its
// goroutines.
type Server struct {
	// Addr is host:port, for smtp_server.
	Addr string
	// Accepted gets a value for each connection accepted (buffered; a
	// test that does not read it loses nothing but the values).
	Accepted chan struct{}

	messages chan Message
	ln       net.Listener
	quit     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	held    bool
	release chan struct{}
	conns   map[net.Conn]bool
}

// Start starts a server on 127.0.0.1 for the duration of t.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Accepted: make(chan struct{}, 64), messages: make(chan Message, 64),
		ln: ln, quit: make(chan struct{}), release: make(chan struct{}), conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept(t)
	t.Cleanup(func() {
		close(s.quit)
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Hold makes the connections accepted from now on wait for Release before
// the server greets them, as a slow or hung server does.
func (s *Server) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
}

// Release lets the held connections go on, and stops holding new ones.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		close(s.release)
	}
}

// Next returns the next message the server takes, failing t if none comes
// within limit.
func (s *Server) Next(t testing.TB, limit time.Duration) Message {
	t.Helper()
	select {
	case m := <-s.messages:
		return m
	case <-time.After(limit):
		t.Fatalf("smtptest %s: no message within %v", s.Addr, limit)
		return Message{}
	}
}

// Pending returns the messages taken and not yet read with Next.
func (s *Server) Pending() []Message {
	var out []Message
	for {
		select {
		case m := <-s.messages:
			out = append(out, m)
		default:
			return out
		}
	}
}

func (s *Server) accept(t testing.TB) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		s.mu.Lock()
		s.conns[c] = true
		held, release := s.held, s.release
		s.mu.Unlock()
		select {
		case s.Accepted <- struct{}{}:
		default:
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			if held {
				select {
				case <-release:
				case <-s.quit:
					return
				}
			}
			if err := s.serve(c); err != nil {
				select {
				case <-s.quit: // closed at cleanup
				default:
					t.Logf("smtptest %s: %v", s.Addr, err)
				}
			}
		}()
	}
}

// serve runs one SMTP session until QUIT or an error.
func (s *Server) serve(c net.Conn) error {
	tc := textproto.NewConn(c)
	if err := tc.PrintfLine("220 smtptest ESMTP"); err != nil {
		return err
	}
	var m Message
	for {
		line, err := tc.ReadLine()
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "HELO", "EHLO":
			err = tc.PrintfLine("250 smtptest")
		case "MAIL":
			m = Message{From: address(arg)}
			err = tc.PrintfLine("250 ok")
		case "RCPT":
			m.To = append(m.To, address(arg))
			err = tc.PrintfLine("250 ok")
		case "DATA":
			if err = tc.PrintfLine("354 go on"); err != nil {
				return err
			}
			var data []byte
			if data, err = tc.ReadDotBytes(); err != nil {
				return err
			}
			m.Data = string(data)
			select {
			case s.messages <- m:
			case <-s.quit:
				return nil
			}
			err = tc.PrintfLine("250 queued")
		case "QUIT":
			return tc.PrintfLine("221 bye")
		default:
			err = tc.PrintfLine("502 %s not implemented", verb)
		}
		if err != nil {
			return err
		}
	}
}

// address is the <addr> of "FROM:<addr>" or "TO:<addr>".
func address(arg string) string {
	_, a, _ := strings.Cut(arg, ":")
	return strings.Trim(strings.TrimSpace(a), "<>")
}
