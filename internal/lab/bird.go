package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bird is Debian's bird2 running as a BGP router in a lab node, with its
// own configuration and control socket: the peer of Tandem's BGP speaker
// in the tests.
type Bird struct {
	Sock string
	Proc *Proc
}

// StartBird runs bird in node with router id routerID and the given
// protocol blocks (besides "protocol device"), and waits until birdc
// answers. It skips tb when bird2 is not installed.
func StartBird(tb testing.TB, l *Lab, node string, routerID netip.Addr, protocols string) *Bird {
	tb.Helper()
	if err := BirdMissing(); err != nil {
		tb.Skip(err)
	}
	b, args, err := BirdCommand(tb.TempDir(), routerID, protocols)
	if err != nil {
		tb.Fatal(err)
	}
	if b.Proc, err = l.Start(node, args[0], args[1:]...); err != nil {
		tb.Fatal(err)
	}
	if err := b.WaitReady(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return b
}

// BirdMissing says which of bird2's programs is not installed, naming the
// package; nil when both are.
func BirdMissing() error {
	for _, p := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s missing (Debian package bird2; sudo test/run installs it): %w", p, err)
		}
	}
	return nil
}

// BirdCommand writes bird's configuration (router id routerID, logging to
// stderr, "protocol device" and protocols) into dir, and returns the Bird
// whose control socket is there, without its Proc, and the command line
// that runs it in the foreground.
func BirdCommand(dir string, routerID netip.Addr, protocols string) (*Bird, []string, error) {
	b := &Bird{Sock: filepath.Join(dir, "bird.ctl")}
	conf := filepath.Join(dir, "bird.conf")
	text := "router id " + routerID.String() + ";\nlog stderr all;\nprotocol device {}\n" + protocols
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, nil, fmt.Errorf("bird configuration: %w", err)
	}
	return b, []string{"bird", "-f", "-c", conf, "-s", b.Sock, "-P", filepath.Join(dir, "bird.pid")}, nil
}

// WaitReady waits until birdc answers, and fails with bird's output if it
// does not within timeout or bird exits.
func (b *Bird) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for exec.Command("birdc", "-s", b.Sock, "show", "status").Run() != nil {
		select {
		case <-b.Proc.Done():
			return fmt.Errorf("bird exited: %v:\n%s", b.Proc.Wait(), b.Proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bird not answering after %v:\n%s", timeout, b.Proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Birdc runs one birdc command and returns its output.
func (b *Bird) Birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.Sock}, args...)...).CombinedOutput()
	return string(out), err
}

// Route is bird's "show route all for p": "" when bird has no route
// for p.
func (b *Bird) Route(tb testing.TB, p netip.Prefix) string {
	tb.Helper()
	out, err := b.Birdc("show", "route", "all", "for", p.String())
	if strings.Contains(out, "Network not found") { // birdc exits 1 then
		return ""
	}
	if err != nil {
		tb.Fatalf("birdc: %v: %s\n%s", err, out, b.Proc.Output())
	}
	return out
}

// WaitRoute waits up to timeout until ok holds for bird's route for p
// (Route's text), and fails tb with bird's log otherwise.
func (b *Bird) WaitRoute(tb testing.TB, p netip.Prefix, what string, timeout time.Duration, ok func(route string) bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := b.Route(tb, p)
		if ok(out) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bird: %s: not after %s; last route:\n%s\nbird's log:\n%s", what, timeout, out, b.Proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// HasBGPRoute holds for a route learned over BGP; NoRoute for none.
func HasBGPRoute(route string) bool { return strings.Contains(route, "BGP.origin") }

// NoRoute holds when bird has no route.
func NoRoute(route string) bool { return route == "" }
