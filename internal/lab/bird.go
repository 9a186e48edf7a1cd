package lab

import (
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
	for _, p := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			tb.Skipf("%s missing (Debian package bird2; sudo test/run installs it): %v", p, err)
		}
	}
	dir := tb.TempDir()
	b := &Bird{Sock: filepath.Join(dir, "bird.ctl")}
	conf := filepath.Join(dir, "bird.conf")
	text := "router id " + routerID.String() + ";\nlog stderr all;\nprotocol device {}\n" + protocols
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	p, err := l.Start(node, "bird", "-f", "-c", conf, "-s", b.Sock, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		tb.Fatal(err)
	}
	b.Proc = p
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("birdc", "-s", b.Sock, "show", "status").Run() != nil {
		if time.Now().After(deadline) {
			tb.Fatalf("bird not answering after 10s:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b
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
