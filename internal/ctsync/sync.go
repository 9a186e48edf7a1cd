package ctsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"tandem/internal/clock"
	"tandem/internal/config"
	"tandem/internal/script"
)

// Role is what the followed instance or sync group is, for conntrackd.
type Role uint8

// The roles. Backup is the first one, before any transition: the instances
// start outside MASTER.
const (
	Backup Role = iota
	Master
	Fault
)

func (r Role) String() string { return [...]string{"BACKUP", "MASTER", "FAULT"}[r] }

// Commands are the conntrackd options given, one run each and in order, on
// entering role r, as primary-backup.sh gives them (conntrackd(8)):
//   - MASTER: -c commits the external cache (the peer's flows) to the
//     kernel's table, -f flushes both caches, -R fills the internal cache
//     from the kernel's table, -B sends it all to the backups;
//   - BACKUP: -t shortens the kernel's timers so that the entries of the
//     flows that went to the new master expire, -n asks the master for a
//     full resync;
//   - FAULT: -t.
func Commands(r Role) []string {
	switch r {
	case Master:
		return []string{"-c", "-f", "-R", "-B"}
	case Fault:
		return []string{"-t"}
	}
	return []string{"-t", "-n"}
}

// Runner runs conntrackd with args (after "-C CONF") and waits for it; a
// timeout of 0 runs it until ctx ends. script.Command is the real one.
type Runner interface {
	Run(ctx context.Context, timeout time.Duration, args ...string) (script.Result, error)
}

// CommandTimeout bounds one conntrackd command; a commit of a large table
// takes a while.
const CommandTimeout = 30 * time.Second

// TakeoverTimeout bounds the commit a takeover waits for (Takeover): the
// VRRP loop waits that long at most.
const TakeoverTimeout = time.Second

// Backoff between restarts of a conntrackd that died: doubling from
// backoffMin up to backoffMax, back to backoffMin once it has run for
// backoffReset.
const (
	backoffMin   = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// ErrNotInstalled: conntrackd is not in PATH.
var ErrNotInstalled = errors.New("conntrackd not found in PATH: install Debian's conntrackd package (apt-get install conntrackd)")

// Status is what `tandem status` and /metrics show of conntrackd.
type Status struct {
	Running  bool
	Restarts int
	// Role is the last role conntrackd was switched to, Command the last
	// command (options) and CommandErr how it ended ("" if well).
	Role       string
	Command    string
	CommandErr string
	CommandAt  time.Time
	// Err is why conntrackd does not run, if it does not.
	Err string
}

// Sync runs one conntrackd and switches it as the followed instance's
// role changes.
type Sync struct {
	log   *slog.Logger
	clock clock.Clock
	files Files
	run   Runner
	// ready waits until the conntrackd started runs its control socket
	// (or ctx ends); a variable for tests.
	ready func(ctx context.Context) error

	ctx    context.Context // the supervisor's, for Takeover's commit
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{} // a new role to apply, capacity 1

	mu      sync.Mutex
	cfg     *config.ConntrackSync
	want    Role
	applied bool // want's commands have run on the conntrackd running
	// committed: Takeover has committed the external cache for the
	// coming MASTER; its commands skip -c.
	committed bool
	st        Status
}

// protocolsFile is where conntrackd looks up the names of its protocol
// filter (getprotobyname).
const protocolsFile = "/etc/protocols"

// filterProtocols are the protocols conntrackd.conf's filter accepts
// (Render): conntrackd skips, with a warning in its own log, each one
// /etc/protocols does not list, and with none left it replicates nothing.
var filterProtocols = []string{"tcp", "udp", "sctp", "dccp"}

// protocolsKnown checks that file lists every filterProtocols name, as
// Debian's netbase package installs it (a minimal system may lack it,
// and conntrackd's package does not pull it in).
func protocolsKnown(file string) error {
	b, err := os.ReadFile(file)
	if err == nil {
		known := map[string]bool{}
		for line := range strings.Lines(string(b)) {
			line, _, _ = strings.Cut(line, "#")
			for _, f := range strings.Fields(line) {
				known[strings.ToLower(f)] = true
			}
		}
		var missing []string
		for _, p := range filterProtocols {
			if !known[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		err = fmt.Errorf("it lists no %s", strings.Join(missing, ", "))
	}
	return fmt.Errorf("conntrackd reads its protocol filter through %s (%w), without which it replicates nothing: install Debian's netbase package (apt-get install netbase)", file, err)
}

// New prepares conntrackd for c next to Tandem's socket; Start runs it.
// It fails with ErrNotInstalled when conntrackd is missing, and when
// /etc/protocols cannot name the protocols it replicates.
func New(c *config.ConntrackSync, tandemSocket string, log *slog.Logger) (*Sync, error) {
	bin, err := exec.LookPath("conntrackd")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if err := protocolsKnown(protocolsFile); err != nil {
		return nil, err
	}
	files := FilesFor(tandemSocket)
	s := newSync(c, files, &script.Command{Argv: []string{bin, "-C", files.Conf}}, clock.Real, log)
	s.ready = s.socketReady
	return s, nil
}

func newSync(c *config.ConntrackSync, files Files, run Runner, clk clock.Clock, log *slog.Logger) *Sync {
	return &Sync{log: log.With("conntrackd", files.Conf), clock: clk, files: files, run: run,
		kick: make(chan struct{}, 1), cfg: c, st: Status{Role: Backup.String()}}
}

// Start writes conntrackd.conf, clears what a previous run left (a
// conntrackd still answering on the socket is told to exit: Tandem's
// namespace lock says no other Tandem owns these files) and runs
// conntrackd until Stop.
func (s *Sync) Start() error {
	if err := os.WriteFile(s.files.Conf, Render(s.cfg, s.files), 0o644); err != nil {
		return fmt.Errorf("conntrack_sync: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx, s.cancel, s.done = ctx, cancel, make(chan struct{})
	go s.supervise(ctx)
	return nil
}

// Stop stops conntrackd and removes its files.
func (s *Sync) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.removeFiles(s.files.Conf, s.files.Log)
}

// SetRole records the followed instance's new role; the commands run in
// the background, so that VRRP never waits for conntrackd. Roles that
// come while commands run are coalesced: the last one counts.
func (s *Sync) SetRole(r Role) {
	s.mu.Lock()
	if s.want != r {
		s.want, s.applied = r, false
	}
	if r != Master {
		s.committed = false
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Takeover commits the external cache (the old master's flows) to the
// kernel and waits for it, up to TakeoverTimeout: the followed instance is
// about to become MASTER and add its addresses, and the flows' next
// packets must find their entries (with a loose TCP pickup, the default,
// the kernel would otherwise make new ones, and the commit could not
// replace them). The MASTER commands that follow skip their -c. Nothing
// is done while conntrackd does not run, or if already committed (the
// other members of a sync group).
func (s *Sync) Takeover() {
	s.mu.Lock()
	skip := !s.st.Running || s.committed || s.want == Master
	s.committed = s.committed || !skip
	s.mu.Unlock()
	if !skip {
		s.command(s.ctx, Master, "-c", TakeoverTimeout)
	}
}

// Status is conntrackd's state for the status document.
func (s *Sync) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// supervise runs conntrackd, restarting it with backoff when it exits,
// and applies the roles SetRole gives while it runs.
func (s *Sync) supervise(ctx context.Context) {
	defer close(s.done)
	backoff := backoffMin
	for {
		s.clearStale(ctx)
		started := s.clock.Now()
		exited := make(chan error, 1)
		go func() {
			res, err := s.run.Run(ctx, 0)
			if err == nil {
				err = fmt.Errorf("conntrackd exited (status %d, signal %d)%s", res.ExitCode, res.Signal, s.lastLog())
			}
			exited <- err
		}()
		err := s.serve(ctx, exited)
		s.mu.Lock()
		s.st.Running = false
		s.applied = false
		if ctx.Err() != nil {
			s.mu.Unlock()
			s.removeFiles(s.files.Socket, s.files.Lock)
			return
		}
		s.st.Restarts++
		s.st.Err = err.Error()
		s.mu.Unlock()
		if s.clock.Now().Sub(started) >= backoffReset {
			backoff = backoffMin
		}
		s.log.Error("conntrackd died; restarting", "err", err, "in", backoff)
		if !s.sleep(ctx, backoff) {
			s.removeFiles(s.files.Socket, s.files.Lock)
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// serve waits until the conntrackd just started is ready, then applies
// roles until it exits (its error) or ctx ends.
func (s *Sync) serve(ctx context.Context, exited <-chan error) error {
	readyc := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { readyc <- s.ready(rctx) }()
	select {
	case err := <-exited:
		return err
	case err := <-readyc:
		if err != nil {
			return <-exited // ctx ended: conntrackd is being stopped
		}
	}
	s.mu.Lock()
	s.st.Running, s.st.Err = true, ""
	s.mu.Unlock()
	s.log.Info("conntrackd running")
	for {
		s.applyRole(ctx)
		select {
		case err := <-exited:
			return err
		case <-s.kick:
		}
	}
}

// applyRole runs the commands of the wanted role, unless they have run
// on this conntrackd already.
func (s *Sync) applyRole(ctx context.Context) {
	s.mu.Lock()
	r, done, committed := s.want, s.applied, s.committed
	s.applied, s.committed = true, false
	s.mu.Unlock()
	if done {
		return
	}
	for _, opt := range Commands(r) {
		if opt == "-c" && committed {
			continue // Takeover did it
		}
		if !s.command(ctx, r, opt, CommandTimeout) {
			return
		}
	}
}

// command runs one conntrackd command for role r and records it in the
// status; false if ctx ended (Tandem is stopping conntrackd).
func (s *Sync) command(ctx context.Context, r Role, opt string, timeout time.Duration) bool {
	start := s.clock.Now()
	res, err := s.run.Run(ctx, timeout, opt)
	if ctx.Err() != nil {
		return false
	}
	took := s.clock.Now().Sub(start)
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit status %d", res.ExitCode)
		if res.TimedOut {
			err = fmt.Errorf("timed out after %v", timeout)
		}
	}
	s.mu.Lock()
	s.st.Role, s.st.Command, s.st.CommandAt = r.String(), "conntrackd "+opt, s.clock.Now()
	s.st.CommandErr = ""
	if err != nil {
		s.st.CommandErr = err.Error()
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("conntrackd command failed", "role", r.String(), "command", opt, "took", took, "err", err)
	} else {
		s.log.Info("conntrackd command", "role", r.String(), "command", opt, "took", took)
	}
	return true
}

// clearStale removes what a conntrackd that did not stop cleanly left: a
// conntrackd still answering on the socket is told to exit (-k), then
// its lock file, without which conntrackd refuses to start, and socket
// go.
func (s *Sync) clearStale(ctx context.Context) {
	if _, err := os.Stat(s.files.Socket); err == nil {
		res, err := s.run.Run(ctx, CommandTimeout, "-k")
		s.log.Warn("conntrackd control socket found at start: told the conntrackd behind it to exit", "socket", s.files.Socket, "exit", res.ExitCode, "err", err)
	}
	s.removeFiles(s.files.Socket, s.files.Lock)
}

func (s *Sync) removeFiles(paths ...string) {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("conntrackd file not removed", "path", p, "err", err)
		}
	}
}

// lastLog is the last line of conntrackd's log, for the message of its
// death.
func (s *Sync) lastLog() string {
	b, err := os.ReadFile(s.files.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; last != "" {
		return ": " + last
	}
	return ""
}

// sleep waits d on the clock; false if ctx ended first.
func (s *Sync) sleep(ctx context.Context, d time.Duration) bool {
	woken := make(chan struct{})
	t := s.clock.AfterFunc(d, func() { close(woken) })
	select {
	case <-woken:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// socketReady polls for conntrackd's control socket, which it creates
// once it runs.
func (s *Sync) socketReady(ctx context.Context) error {
	for {
		if _, err := os.Stat(s.files.Socket); err == nil {
			return nil
		}
		if !s.sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}
