package track

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tandem/internal/config"
)

// DefaultProcessPoll is how often Process scans /proc. keepalived follows
// process creation and exit through the kernel's proc connector
// (track_process.c); Tandem polls, which needs no CONFIG_PROC_EVENTS and no
// netlink privileges but notices a change up to one poll late.
const DefaultProcessPoll = time.Second

// processMatcher decides whether a process is one a vrrp_track_process
// counts.
type processMatcher struct {
	name string
	// params holds the configured arguments, each NUL-terminated, as
	// /proc/PID/cmdline holds them.
	params []byte
	// match is how the arguments are compared with params (keepalived
	// track_process.c check_params); unset: they are not looked at.
	match config.ParamMatch
	// full compares name with argv[0] instead of the kernel's comm.
	full bool
}

func newProcessMatcher(p *config.TrackProcess) processMatcher {
	m := processMatcher{name: p.Process, full: p.FullCommand}
	for _, a := range p.Params {
		m.params = append(append(m.params, a...), 0)
	}
	// keepalived (vrrp_parser.c vrrp_tprocess_process_handler) compares the
	// full command line whenever parameters are given.
	if len(p.Params) > 0 {
		m.full = true
		m.match = p.ParamMatch
		if m.match == config.ParamMatchUnset {
			m.match = config.ParamExact
		}
	}
	return m
}

// matches reports whether a process with kernel name comm and command line
// cmdline (NUL-separated, as in /proc) is counted.
func (m processMatcher) matches(comm string, cmdline []byte) bool {
	if !m.full {
		return comm == m.name
	}
	argv0, args, _ := bytes.Cut(cmdline, []byte{0})
	if string(argv0) != m.name {
		return false
	}
	switch m.match {
	case config.ParamExact:
		return bytes.Equal(args, m.params)
	case config.ParamPartial:
		return bytes.HasPrefix(args, m.params)
	case config.ParamInitial:
		return bytes.HasPrefix(args, m.params[:len(m.params)-1])
	}
	return true
}

// ProcessState turns process counts into a debounced quorum status, as
// keepalived does (track_process.c check_process_fork,
// check_process_termination and their timer threads): the status is up
// while the count is in [quorum, quorum_max]; a gain of quorum takes effect
// only after fork_delay and a loss only after terminate_delay, and a change
// that reverts before its delay ends is never reported. The first count
// sets the status at once (vrrp_track.c initialise_process_tracking_priorities).
type ProcessState struct {
	quorum, quorumMax int // quorumMax 0: unlimited
	forkDelay         time.Duration
	terminateDelay    time.Duration

	known    bool
	up       bool
	deadline time.Time // zero: no change pending
}

// NewProcessState returns the state of p before its first count. Delay
// applies to whichever of fork_delay and terminate_delay is not set.
func NewProcessState(p *config.TrackProcess) ProcessState {
	s := ProcessState{
		quorum:         p.Quorum,
		quorumMax:      p.QuorumMax,
		forkDelay:      time.Duration(p.ForkDelay),
		terminateDelay: time.Duration(p.TerminateDelay),
	}
	if s.forkDelay == 0 {
		s.forkDelay = time.Duration(p.Delay)
	}
	if s.terminateDelay == 0 {
		s.terminateDelay = time.Duration(p.Delay)
	}
	return s
}

// Up reports the current (debounced) status.
func (s *ProcessState) Up() bool { return s.up }

// Deadline is when a pending change takes effect if the count stays as it
// is; it is zero when no change is pending.
func (s *ProcessState) Deadline() time.Time { return s.deadline }

// Observe records the count of matching processes at time now and reports
// whether the status changed (the first count always does).
func (s *ProcessState) Observe(now time.Time, count int) (changed bool) {
	// QuorumMax 0 is no maximum, unless quorum is 0 too: quorum_max 0
	// means the process must not run (config.TrackProcess).
	want := count >= s.quorum && (s.quorumMax == 0 && s.quorum > 0 || count <= s.quorumMax)
	switch {
	case !s.known:
		s.known, s.up = true, want
		return true
	case want == s.up:
		s.deadline = time.Time{}
		return false
	case s.deadline.IsZero():
		delay := s.terminateDelay
		if want {
			delay = s.forkDelay
		}
		if delay > 0 {
			s.deadline = now.Add(delay)
			return false
		}
	case now.Before(s.deadline):
		return false
	}
	s.up, s.deadline = want, time.Time{}
	return true
}

// Process counts the processes matching a vrrp_track_process by polling
// /proc and reports its quorum status.
type Process struct {
	name    string
	matcher processMatcher
	state   ProcessState
	poll    time.Duration
	log     *slog.Logger
}

// NewProcess prepares to track p, scanning /proc every poll (at most; a
// pending delay wakes it sooner). A poll of 0 means DefaultProcessPoll.
func NewProcess(p *config.TrackProcess, poll time.Duration, log *slog.Logger) *Process {
	if poll <= 0 {
		poll = DefaultProcessPoll
	}
	return &Process{
		name:    p.Name,
		matcher: newProcessMatcher(p),
		state:   NewProcessState(p),
		poll:    poll,
		log:     log.With("track_process", p.Name),
	}
}

// Run scans at once, sends the initial status, and sends it again whenever
// it changes, until ctx ends.
func (p *Process) Run(ctx context.Context, out chan<- Update) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := countProcesses("/proc", p.matcher)
		if err != nil {
			return fmt.Errorf("vrrp_track_process %s: %w", p.name, err)
		}
		now := time.Now()
		if p.state.Observe(now, n) {
			p.log.Info("process quorum changed", "up", p.state.Up(), "count", n)
			if !send(ctx, out, Update{Kind: KindProcess, Name: p.name, OK: p.state.Up(), Value: n}) {
				return nil
			}
		}
		next := p.poll
		if d := p.state.Deadline(); !d.IsZero() {
			next = min(next, max(d.Sub(now), 0))
		}
		t.Reset(next)
	}
}

// countProcesses counts the live (not zombie) processes under procDir that m
// matches. Processes that exit while being read are skipped.
func countProcesses(procDir string, m processMatcher) (int, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return 0, fmt.Errorf("scan %s: %w", procDir, err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || e.Name()[0] < '1' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, state, ok := parseStat(string(stat))
		if !ok || state == 'Z' {
			continue
		}
		var cmdline []byte
		if m.full {
			if cmdline, err = os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline")); err != nil {
				continue
			}
		}
		if m.matches(comm, cmdline) {
			n++
		}
	}
	return n, nil
}

// parseStat returns the comm and state fields of /proc/PID/stat ("pid
// (comm) S ..."); comm may itself contain ") ", so the last ')' ends it.
func parseStat(s string) (comm string, state byte, ok bool) {
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return "", 0, false
	}
	return s[open+1 : end], s[end+2], true
}
