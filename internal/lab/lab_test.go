package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// TestMain checks for leaks after all tests, not per test: a test's own
// deferred check would run before t.Cleanup has closed its lab and
// reaped its processes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	addrA = netip.MustParseAddr("10.77.0.1")
	addrB = netip.MustParseAddr("10.77.0.2")
	addrC = netip.MustParseAddr("10.77.0.3")
	a6B   = netip.MustParseAddr("fd77::2")
)

// threeNodes is a, b, c on one segment "s", IPv4 and IPv6. b also has a
// static route through a, for SetLink's route restoration.
func threeNodes() Spec {
	node := func(name string, v4 netip.Addr, v6 string) Node {
		return Node{Name: name, Ifaces: []Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{
			netip.PrefixFrom(v4, 24), netip.MustParsePrefix(v6 + "/64"),
		}}}}
	}
	b := node("b", addrB, "fd77::2")
	b.Routes = []Route{{Dst: netip.MustParsePrefix("10.99.0.0/16"), Via: addrA}}
	return Spec{Nodes: []Node{node("a", addrA, "fd77::1"), b, node("c", addrC, "fd77::3")}}
}

// hostLinks is `ip -o link` of the test's own namespace, the host's,
// without the counters and states that change on their own.
func hostLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(mustIP(t), "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link: %v", err)
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			links = append(links, f[0]+" "+f[1]) // "2: eth0:"
		}
	}
	return links
}

// ourNamespaces lists this process's lab namespaces in /run/netns.
func ourNamespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(mustIP(t), "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	prefix := fmt.Sprintf("%s%dx", namePrefix, os.Getpid())
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

func mustIP(t *testing.T) string {
	t.Helper()
	ip, err := ipPath()
	if err != nil {
		t.Skip(err)
	}
	return ip
}

// gone reports whether pid has exited: no /proc entry, or a zombie
// waiting for a parent (init) that has not reaped it yet.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !gone(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOutput polls p's output until it holds a line, and returns it.
func waitOutputLine(t *testing.T, p *Proc) string {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if out := p.Output(); strings.HasSuffix(out, "\n") {
			return strings.TrimSpace(out)
		}
	}
	t.Fatalf("no output from %v; have %q", p.argv, p.Output())
	return ""
}

func TestPingAndIsolation(t *testing.T) {
	before := hostLinks(t)
	l := NewT(t, threeNodes())

	for _, tc := range []struct {
		from string
		to   netip.Addr
	}{
		{"a", addrB}, {"b", addrC}, {"c", addrA}, {"a", a6B}, {"a", addrA},
	} {
		if err := l.Ping(tc.from, tc.to, 2*time.Second); err != nil {
			t.Error(err)
		}
	}

	if diff := cmp.Diff(before, hostLinks(t)); diff != "" {
		t.Errorf("host links changed while the lab is up (-before +during):\n%s", diff)
	}
	// The host has no route into the lab: its packets to a lab address
	// follow its own routes and get no answer.
	if _, err := ping(addrB, 300*time.Millisecond); err == nil {
		t.Errorf("host reached lab address %s", addrB)
	}

	// The link-local address, VRRPv3's source, is usable at once.
	var ll netip.Addr
	err := l.Do("a", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, a := range as {
			if p, perr := netip.ParsePrefix(a.String()); perr == nil && p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr().WithZone("eth0")
			}
		}
		return err
	})
	if err != nil || !ll.IsValid() {
		t.Fatalf("link-local address of a: %v, %v", ll, err)
	}
	if err := l.Ping("b", ll, 2*time.Second); err != nil {
		t.Error(err)
	}

	// Each node sees lo and its own interfaces, nothing else.
	for _, node := range []string{"a", "b", "c"} {
		var names []string
		err = l.Do(node, func() error {
			ifs, err := net.Interfaces()
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"lo", "eth0"}, names); diff != "" {
			t.Errorf("interfaces in %s (-want +got):\n%s", node, diff)
		}
	}
}

func TestCommand(t *testing.T) {
	l := NewT(t, threeNodes())
	out, err := l.Command(t.Context(), "b", "ip", "-o", "-4", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), addrB.String()+"/24") || strings.Contains(string(out), addrA.String()) {
		t.Errorf("ip addr in b: %s", out)
	}
	if err := l.Command(t.Context(), "nosuch", "true").Run(); err == nil {
		t.Error("Command on an unknown node ran")
	}
	if got := l.NSName("a"); got != l.Name()+"-a" {
		t.Errorf("NSName(a) = %q, want %q", got, l.Name()+"-a")
	}
}

func TestStartStopKill(t *testing.T) {
	l := NewT(t, threeNodes())

	t.Run("Kill reaches the group", func(t *testing.T) {
		p, err := l.Start("a", "sh", "-c", "sleep 1000 & echo $!; wait")
		if err != nil {
			t.Fatal(err)
		}
		child, err := strconv.Atoi(waitOutputLine(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, child)
		var ee *exec.ExitError
		if err := p.Wait(); !errors.As(err, &ee) || !strings.Contains(ee.String(), "killed") {
			t.Errorf("Wait after Kill = %v, want signal: killed", err)
		}
	})

	t.Run("Stop with SIGTERM", func(t *testing.T) {
		p, err := l.Start("a", "sleep", "1000")
		if err != nil {
			t.Fatal(err)
		}
		// `ip netns exec` execs the program rather than forking it, so
		// the Proc becomes the program itself and Signal reaches it.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
			if err == nil && string(comm) == "sleep\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d is %q (%v), want sleep", p.Pid(), comm, err)
			}
		}
		start := time.Now()
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Stop took %v for a process that exits on SIGTERM", d)
		}
		if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
			t.Errorf("Wait after Stop = %v, want signal: terminated", err)
		}
	})

	t.Run("Stop escalates to SIGKILL", func(t *testing.T) {
		p, err := l.Start("a", "sh", "-c", `trap "" TERM; sleep 1000 & echo $!; wait`)
		if err != nil {
			t.Fatal(err)
		}
		child, err := strconv.Atoi(waitOutputLine(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(200 * time.Millisecond); err == nil {
			t.Error("Stop of a process ignoring SIGTERM returned nil")
		}
		waitGone(t, child)
	})

	t.Run("Output and exit status", func(t *testing.T) {
		p, err := l.Start("c", "sh", "-c", "echo out; echo err >&2; ip -o -4 addr show dev eth0; exit 3")
		if err != nil {
			t.Fatal(err)
		}
		var ee *exec.ExitError
		if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("Wait = %v, want exit status 3", err)
		}
		out := p.Output()
		for _, want := range []string{"out\n", "err\n", addrC.String() + "/24"} {
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		}
	})

	if _, err := l.Start("nosuch", "true"); err == nil {
		t.Error("Start on an unknown node succeeded")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	RequireRoot(t)
	l, err := New(threeNodes())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // in case the test fails half-way
	names := []string{l.Name(), l.NSName("a"), l.NSName("b"), l.NSName("c")}
	if diff := cmp.Diff(names, ourNamespaces(t), cmp.Transformer("sort", func(s []string) []string {
		return slices.Sorted(slices.Values(s))
	})); diff != "" {
		t.Errorf("namespaces while up (-want +got):\n%s", diff)
	}

	// A tracked process, and a daemon that left both the process group
	// and the lab's tracking: Close must get both.
	p, err := l.Start("a", "sleep", "1000")
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Command(context.Background(), "b", "sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	daemon, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close with two processes: %v", time.Since(start))
	if got := ourNamespaces(t); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	select {
	case <-p.Done():
	default:
		t.Error("started process still running after Close")
	}
	waitGone(t, daemon)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Start("a", "true"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	RequireRoot(t)
	before := hostLinks(t)
	for _, tc := range []struct {
		name    string
		mutate  func(*Spec)
		wantErr string
	}{
		// The kernel refuses these only once namespaces and links exist.
		{"unreachable gateway", func(s *Spec) {
			s.Nodes[2].Routes = []Route{{Via: netip.MustParseAddr("10.99.0.1")}}
		}, "add route default via 10.99.0.1"},
		{"sysctl of a missing interface", func(s *Spec) {
			s.Nodes[1].Sysctls = map[string]string{"net.ipv4.conf.nosuch.arp_ignore": "1"}
		}, "sysctl net.ipv4.conf.nosuch.arp_ignore=1"},
		{"address twice", func(s *Spec) {
			s.Nodes[2].Ifaces[0].Addrs = append(s.Nodes[2].Ifaces[0].Addrs, s.Nodes[2].Ifaces[0].Addrs[0])
		}, "add 10.77.0.3/24 to eth0"},
		// These are caught before anything is made.
		{"duplicate node", func(s *Spec) { s.Nodes[1].Name = "a" }, "node a defined twice"},
		{"long interface name", func(s *Spec) { s.Nodes[0].Ifaces[0].Name = "abcdefghijklmnop" }, "want 1-15 bytes"},
		{"host sysctl", func(s *Spec) {
			s.Nodes[0].Sysctls = map[string]string{"kernel.hostname": "x"}
		}, "only net.* keys"},
		{"bad MAC", func(s *Spec) { s.Nodes[0].Ifaces[0].MAC = net.HardwareAddr{1, 2} }, "not a 6-byte"},
		{"route without Via or Dev", func(s *Spec) { s.Nodes[0].Routes = []Route{{}} }, "needs Via or Dev"},
		{"no switch", func(s *Spec) { s.Nodes[0].Ifaces[0].Switch = "" }, "has no Switch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := threeNodes()
			tc.mutate(&spec)
			l, err := New(spec)
			if err == nil {
				l.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New: %v, want an error containing %q", err, tc.wantErr)
			}
			if got := ourNamespaces(t); len(got) != 0 {
				t.Errorf("namespaces left after a failed New: %v", got)
			}
		})
	}
	if diff := cmp.Diff(before, hostLinks(t)); diff != "" {
		t.Errorf("host links changed (-before +after):\n%s", diff)
	}
}

func TestParallelLabsWithSameNames(t *testing.T) {
	RequireRoot(t)
	names := make(chan string, 2)
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			l := NewT(t, threeNodes())
			names <- l.NSName("a")
			for range 3 {
				if err := l.Ping("a", addrC, 2*time.Second); err != nil {
					t.Error(err)
				}
				if err := l.SetLink("c", "eth0", false); err != nil {
					t.Fatal(err)
				}
				if err := l.SetLink("c", "eth0", true); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	t.Cleanup(func() {
		close(names)
		var got []string
		for n := range names {
			got = append(got, n)
		}
		if len(got) == 2 && got[0] == got[1] {
			t.Errorf("two labs share namespace name %s", got[0])
		}
	})
}

func TestSetLink(t *testing.T) {
	l := NewT(t, threeNodes())
	if err := l.Ping("a", addrB, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.SetLink("b", "eth0", false); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping("a", addrB, 300*time.Millisecond); err == nil {
		t.Error("b answered with its link down")
	}
	if err := l.Ping("a", addrC, 2*time.Second); err != nil {
		t.Errorf("c unreachable while only b's link is down: %v", err)
	}
	if err := l.SetLink("b", "eth0", true); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping("a", addrB, 2*time.Second); err != nil {
		t.Errorf("b unreachable after link up: %v", err)
	}
	// The kernel dropped b's route through eth0 with the link; SetLink
	// put it back.
	out, err := l.Command(t.Context(), "b", "ip", "-4", "route", "show", "10.99.0.0/16").Output()
	if err != nil || !strings.Contains(string(out), "via 10.77.0.1") {
		t.Errorf("route after link up: %q, %v", out, err)
	}
	if err := l.SetLink("b", "nosuch", false); err == nil {
		t.Error("SetLink of a missing interface succeeded")
	}
}

func TestPartition(t *testing.T) {
	l := NewT(t, threeNodes())
	if err := l.Partition("s", "b"); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping("a", addrB, 300*time.Millisecond); err == nil {
		t.Error("b answered while partitioned")
	}
	if err := l.Ping("a", addrC, 2*time.Second); err != nil {
		t.Errorf("c unreachable while only b is partitioned: %v", err)
	}
	// Unlike SetLink, b keeps carrier: a partition, not a link failure.
	err := l.Do("b", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil && ifi.Flags&net.FlagRunning == 0 {
			err = fmt.Errorf("eth0 of a partitioned node lost carrier: %v", ifi.Flags)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	if err := l.Heal("s", "b"); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping("a", addrB, 2*time.Second); err != nil {
		t.Errorf("b unreachable after Heal: %v", err)
	}
	if err := l.Partition("nosuch", "b"); err == nil {
		t.Error("Partition of an unknown switch succeeded")
	}
}

func TestDoPanicIsReraised(t *testing.T) {
	l := NewT(t, threeNodes())
	defer func() {
		if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), "boom") {
			t.Errorf("recovered %v, want the panic from fn", v)
		}
	}()
	l.Do("a", func() error { panic("boom") })
	t.Error("Do returned after fn panicked")
}

func BenchmarkNewClose(b *testing.B) {
	RequireRoot(b)
	for _, bc := range []struct {
		name string
		spec Spec
	}{{"three nodes", threeNodes()}, {"seed000", Seed000().Spec()}, {"seed003 NAT", Seed003NAT().Spec()}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				l, err := New(bc.spec)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSweep(t *testing.T) {
	l := NewT(t, threeNodes())

	// A lab of a process that is gone, with a daemon still inside.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%dx1-n", namePrefix, dead.Process.Pid)
	e, err := createNS(name)
	if err != nil {
		t.Fatal(err)
	}
	e.fd.Close()
	t.Cleanup(func() {
		if _, err := os.Stat(runDir + "/" + name); err == nil {
			deleteNS(nsEntry{name: name, fd: -1})
		}
	})
	out, err := exec.Command(mustIP(t), "netns", "exec", name, "sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	daemon, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}

	staleLogs := filepath.Join(os.TempDir(), fmt.Sprintf("%s%dx1-123", namePrefix, dead.Process.Pid))
	if err := os.Mkdir(staleLogs, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(staleLogs) })

	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, name) {
		t.Errorf("Sweep removed %v, want %s among them", removed, name)
	}
	if slices.ContainsFunc(removed, func(n string) bool { return strings.HasPrefix(n, l.Name()) }) {
		t.Errorf("Sweep removed this process's lab: %v", removed)
	}
	waitGone(t, daemon)
	for _, p := range []string{runDir + "/" + name, staleLogs} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left by Sweep", p)
		}
	}
	if _, err := os.Stat(l.logDir); err != nil {
		t.Errorf("Sweep removed this process's log directory: %v", err)
	}
	if err := l.Ping("a", addrB, 2*time.Second); err != nil {
		t.Errorf("live lab broken by Sweep: %v", err)
	}
}
