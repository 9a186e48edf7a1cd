package ctsync

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"tandem/internal/clock"
	"tandem/internal/config"
	"tandem/internal/script"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConntrackd stands for conntrackd: a run without options is the
// daemon, which runs until its context ends or the test crashes it; a run
// with options is a command, recorded and answered with exit status
// exit[option].
type fakeConntrackd struct {
	calls chan string // every run: "daemon" or the option
	exit  map[string]int
	up    chan struct{} // a daemon run has been recorded

	mu    sync.Mutex
	crash chan struct{} // closed to make the running daemon exit 1
}

func newFake() *fakeConntrackd {
	return &fakeConntrackd{calls: make(chan string, 64), exit: map[string]int{}, up: make(chan struct{}, 1)}
}

func (f *fakeConntrackd) Run(ctx context.Context, timeout time.Duration, args ...string) (script.Result, error) {
	if len(args) == 0 {
		f.mu.Lock()
		crash := make(chan struct{})
		f.crash = crash
		f.mu.Unlock()
		f.calls <- "daemon"
		f.up <- struct{}{}
		select {
		case <-ctx.Done():
			return script.Result{ExitCode: -1, Signal: 15}, ctx.Err()
		case <-crash:
			return script.Result{ExitCode: 1}, nil
		}
	}
	f.calls <- strings.Join(args, " ")
	return script.Result{ExitCode: f.exit[args[0]]}, nil
}

func (f *fakeConntrackd) crashNow() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.crash)
}

// next reads the next n runs (a deadline only guards against a hang).
func (f *fakeConntrackd) next(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case c := <-f.calls:
			got = append(got, c)
		case <-time.After(10 * time.Second):
			t.Fatalf("waited for %d runs, got %v", n, got)
		}
	}
	return got
}

func testSync(t *testing.T, f *fakeConntrackd, clk clock.Clock) *Sync {
	dir := t.TempDir()
	c := &config.ConntrackSync{Instance: "VI_1", Interface: "eth2", Source: netip.MustParseAddr("10.9.0.1"),
		Peer: netip.MustParseAddr("10.9.0.2"), Port: 3780}
	s := newSync(c, FilesFor(filepath.Join(dir, "tandem.sock")), f, clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Ready once the fake daemon runs, as conntrackd's socket appears
	// once it does.
	s.ready = func(ctx context.Context) error {
		select {
		case <-f.up:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s
}

// TestTransitions: conntrackd starts, gets the BACKUP commands, and on each
// transition the commands of primary-backup.sh in its order; the status
// has the last command.
func TestTransitions(t *testing.T) {
	f := newFake()
	s := testSync(t, f, clock.Real)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	steps := []struct {
		role Role
		want []string
	}{
		{Backup, []string{"daemon", "-t", "-n"}},
		{Master, []string{"-c", "-f", "-R", "-B"}},
		{Fault, []string{"-t"}},
		{Backup, []string{"-t", "-n"}},
	}
	for i, st := range steps {
		if i > 0 {
			s.SetRole(st.role)
		}
		if diff := cmp.Diff(st.want, f.next(t, len(st.want))); diff != "" {
			t.Errorf("entering %v (-want +got):\n%s", st.role, diff)
		}
	}
	// The same role again runs nothing: the next run is the MASTER one's.
	s.SetRole(Backup)
	s.SetRole(Master)
	if got := f.next(t, 1); got[0] != "-c" {
		t.Errorf("after BACKUP again then MASTER: %v, want -c first", got)
	}
	f.next(t, 3)
	waitStatus(t, s, func(st Status) bool { return st.Command == "conntrackd -B" })
	if st := s.Status(); !st.Running || st.Role != "MASTER" || st.CommandErr != "" {
		t.Errorf("status %+v", st)
	}
	if b, err := os.ReadFile(s.files.Conf); err != nil || !strings.Contains(string(b), "IPv4_Destination_Address 10.9.0.2") {
		t.Errorf("conntrackd.conf: %v\n%s", err, b)
	}
}

// TestCommandFailure: a command that fails is in the status, and the next
// ones still run.
func TestCommandFailure(t *testing.T) {
	f := newFake()
	f.exit["-c"] = 1
	f.exit["-B"] = 2
	s := testSync(t, f, clock.Real)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	f.next(t, 3)
	s.SetRole(Master)
	if diff := cmp.Diff([]string{"-c", "-f", "-R", "-B"}, f.next(t, 4)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	waitStatus(t, s, func(st Status) bool { return st.Command == "conntrackd -B" })
	if st := s.Status(); st.CommandErr != "exit status 2" {
		t.Errorf("status %+v", st)
	}
}

// TestRestart: a conntrackd that dies is restarted after the backoff (on
// the injected clock), doubling, and the current role's commands run
// again on the new one, since its caches start empty.
func TestRestart(t *testing.T) {
	f := newFake()
	clk := clock.NewFake(time.Unix(0, 0))
	s := testSync(t, f, clk)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	f.next(t, 3)
	s.SetRole(Master)
	f.next(t, 4)
	for i, wait := range []time.Duration{backoffMin, 2 * backoffMin} {
		f.crashNow()
		waitStatus(t, s, func(st Status) bool { return !st.Running && st.Restarts == i+1 })
		waitPending(t, clk)
		clk.Advance(wait - time.Millisecond)
		select {
		case c := <-f.calls:
			t.Fatalf("restart %d: %q before the backoff of %v", i+1, c, wait)
		default:
		}
		clk.Advance(time.Millisecond)
		if diff := cmp.Diff([]string{"daemon", "-c", "-f", "-R", "-B"}, f.next(t, 5)); diff != "" {
			t.Errorf("restart %d (-want +got):\n%s", i+1, diff)
		}
	}
	if st := s.Status(); !st.Running || st.Restarts != 2 || st.Err != "" {
		t.Errorf("status %+v", st)
	}
}

// TestStopRemovesFiles: Stop ends conntrackd and removes the files Tandem
// made and conntrackd's leftovers; a stale socket and lock at start are
// cleared (the conntrackd behind the socket told to exit) before
// conntrackd starts.
func TestStopRemovesFiles(t *testing.T) {
	f := newFake()
	s := testSync(t, f, clock.Real)
	for _, p := range []string{s.files.Socket, s.files.Lock} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"-k", "daemon"}, f.next(t, 2)); diff != "" {
		t.Errorf("start with a stale socket (-want +got):\n%s", diff)
	}
	f.next(t, 2)
	if err := os.WriteFile(s.files.Log, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	for _, p := range []string{s.files.Conf, s.files.Socket, s.files.Lock, s.files.Log} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after Stop: %v", p, err)
		}
	}
}

func waitStatus(t *testing.T, s *Sync, cond func(Status) bool) {
	t.Helper()
	waitUntil(t, "status", func() bool { return cond(s.Status()) })
}

func waitPending(t *testing.T, clk *clock.Fake) {
	t.Helper()
	waitUntil(t, "a timer", func() bool { return clk.Pending() > 0 })
}

// waitUntil polls cond; the deadline only guards against a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("waited in vain for %s", what)
		}
	}
}

// TestNotInstalled: without conntrackd in PATH, New fails naming Debian's
// package, and nothing is written.
func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	_, err := New(&config.ConntrackSync{Instance: "VI_1"}, filepath.Join(dir, "tandem.sock"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "Debian's conntrackd package") {
		t.Errorf("err %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written: %v", ents)
	}
}

// TestTakeover: the commit runs before Takeover returns (before the new
// master's addresses go up), once for all members of a sync group, and
// the MASTER commands that follow skip it.
func TestTakeover(t *testing.T) {
	f := newFake()
	s := testSync(t, f, clock.Real)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	f.next(t, 3)
	waitStatus(t, s, func(st Status) bool { return st.Running && st.Command == "conntrackd -n" })
	s.Takeover()
	select {
	case c := <-f.calls:
		if c != "-c" {
			t.Fatalf("Takeover ran %q, want -c", c)
		}
	default:
		t.Fatal("Takeover returned before committing")
	}
	s.Takeover() // another member of the sync group
	s.SetRole(Master)
	if diff := cmp.Diff([]string{"-f", "-R", "-B"}, f.next(t, 3)); diff != "" {
		t.Errorf("MASTER after Takeover (-want +got):\n%s", diff)
	}
	// A later takeover commits again.
	s.SetRole(Backup)
	f.next(t, 2)
	s.Takeover()
	s.SetRole(Master)
	if diff := cmp.Diff([]string{"-c", "-f", "-R", "-B"}, f.next(t, 4)); diff != "" {
		t.Errorf("second takeover (-want +got):\n%s", diff)
	}
}

// TestProtocolsKnown: conntrackd names its filter's protocols through
// /etc/protocols; a system without it (Debian minbase: no netbase) makes
// a conntrackd that replicates nothing, so New refuses it, naming the
// package.
func TestProtocolsKnown(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full", "# Internet protocols\ntcp\t6\tTCP\nudp\t17\tUDP\t# User Datagram Protocol\ndccp\t33\tDCCP\nsctp\t132\tSCTP\n")
	if err := protocolsKnown(full); err != nil {
		t.Errorf("a netbase-like file: %v", err)
	}
	partial := write("partial", "tcp 6 TCP\n# udp 17 UDP\n")
	if err := protocolsKnown(partial); err == nil || !strings.Contains(err.Error(), "no udp, sctp, dccp") || !strings.Contains(err.Error(), "netbase") {
		t.Errorf("tcp only: %v", err)
	}
	if err := protocolsKnown(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "apt-get install netbase") {
		t.Errorf("no file: %v", err)
	}
}
