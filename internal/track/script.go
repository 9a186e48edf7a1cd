package track

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"tandem/internal/config"
	"tandem/internal/script"
)

// ScriptState is a vrrp_script's rise/fall counter, as keepalived keeps it
// (vrrp_scheduler.c vrrp_script_child_thread, vrrp_init_script). The
// counter runs from 0 to rise+fall-1 and the script is OK at rise or above.
// A script without init_fail starts unknown, one below rise, so that its
// first result, success or failure, settles the status at once; with
// init_fail it starts failed at 0 and needs rise successes.
type ScriptState struct {
	rise, fall int
	result     int
	// unknown: no run has finished yet (SCRIPT_INIT_STATE_INIT).
	unknown bool
}

// NewScriptState returns the state of a script that has not run yet. Rise
// and fall below 1 count as 1 (keepalived's minimum).
func NewScriptState(rise, fall int, initFail bool) ScriptState {
	s := ScriptState{rise: max(rise, 1), fall: max(fall, 1)}
	if !initFail {
		s.unknown = true
		s.result = s.rise - 1
	}
	return s
}

// Known reports whether the status is known: after the first run, or from
// the start with init_fail.
func (s *ScriptState) Known() bool { return !s.unknown }

// OK reports whether the script is in the OK state.
func (s *ScriptState) OK() bool { return s.result >= s.rise }

// Observe records one run's outcome and reports whether the status changed;
// leaving the unknown state always counts as a change.
func (s *ScriptState) Observe(success bool) (changed bool) {
	top := s.rise + s.fall - 1
	switch {
	case success && s.result < s.rise-1:
		s.result++
	case success:
		changed = s.result < s.rise || s.unknown
		s.result = top
	case s.result > s.rise:
		s.result--
	default:
		changed = s.result == s.rise || s.unknown
		s.result = 0
	}
	s.unknown = false
	return changed
}

// Resize gives the counter new rise and fall values and keeps the status:
// a known status restarts from its settled end (failed at 0, OK at the
// top), which is where the new thresholds say it stays until as many
// results as they ask for say otherwise; a count towards a change that was
// in progress under the old thresholds is dropped rather than translated,
// since the new ones ask for another number of results. An unknown status
// stays unknown.
func (s *ScriptState) Resize(rise, fall int) {
	ok := s.OK()
	s.rise, s.fall = max(rise, 1), max(fall, 1)
	switch {
	case s.unknown:
		s.result = s.rise - 1
	case ok:
		s.result = s.rise + s.fall - 1
	default:
		s.result = 0
	}
}

// Script runs a vrrp_script every interval and reports its status.
type Script struct {
	name     string
	cmd      *script.Command
	initFail bool
	log      *slog.Logger

	mu     sync.Mutex
	params scriptParams // under mu
	// reconf tells Run that params changed (buffered: Reconfigure does
	// not wait for Run).
	reconf chan struct{}
}

// scriptParams are the settings a running Script takes on in place.
type scriptParams struct {
	interval, timeout time.Duration
	rise, fall        int
}

func newScriptParams(s *config.Script) scriptParams {
	interval := time.Duration(s.Interval)
	if interval <= 0 {
		interval = time.Second // keepalived vrrp_track.h VRRP_SCRIPT_DI
	}
	timeout := time.Duration(s.Timeout)
	if timeout <= 0 {
		timeout = interval // keepalived.conf(5): timeout defaults to interval
	}
	return scriptParams{interval: interval, timeout: timeout, rise: s.Rise, fall: s.Fall}
}

// Reconfigure gives a running (or not yet running) Script the interval,
// timeout, rise and fall of s, which is the same vrrp_script (its command
// and user are this Script's). The status is kept (ScriptState.Resize) and
// the script is not run for it: the next run is one new interval after
// the change, or after the run in progress.
func (s *Script) Reconfigure(c *config.Script) {
	s.mu.Lock()
	s.params = newScriptParams(c)
	s.mu.Unlock()
	select {
	case s.reconf <- struct{}{}:
	default: // one is pending; Run reads the latest params
	}
}

// Runs reports whether s runs cmd: the same program, as the same
// identity, under the same enable_script_security.
func (s *Script) Runs(cmd *script.Command) bool { return reflect.DeepEqual(s.cmd, cmd) }

func (s *Script) current() scriptParams {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params
}

// NewScript prepares s to run as the user users picks for it.
func NewScript(s *config.Script, users *script.Users, log *slog.Logger) (*Script, error) {
	cmd, err := users.Command(s.Command, s.User, s.Group)
	if err != nil {
		return nil, fmt.Errorf("vrrp_script %s: %w", s.Name, err)
	}
	return &Script{
		name:     s.Name,
		cmd:      cmd,
		initFail: s.InitFail,
		params:   newScriptParams(s),
		reconf:   make(chan struct{}, 1),
		log:      log.With("script", s.Name),
	}, nil
}

// Run runs the script at once and then every interval until ctx ends,
// sending an Update whenever the status changes (and, with init_fail, a
// failed one at the start). A run still going at the next tick makes that
// tick be skipped, as keepalived does. A script that fails
// script.Command.Check is never run: Run sends one failed Update carrying
// the error, logs it once and returns it.
func (s *Script) Run(ctx context.Context, out chan<- Update) error {
	p := s.current()
	state := NewScriptState(p.rise, p.fall, s.initFail)
	if state.Known() && !send(ctx, out, Update{Kind: KindScript, Name: s.name, Value: -1}) {
		return nil
	}
	warning, err := s.cmd.Check()
	if err != nil {
		err = fmt.Errorf("vrrp_script %s: %w", s.name, err)
		s.log.Error("refusing to run script", "err", err)
		send(ctx, out, Update{Kind: KindScript, Name: s.name, Value: -1, Err: err})
		return err
	}
	if warning != "" {
		// keepalived reports this as a SECURITY VIOLATION without
		// enable_script_security, and runs the script anyway.
		s.log.Warn(warning)
	}

	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	lastCode := 0
	for {
		res, err := s.cmd.Run(ctx, p.timeout)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			s.log.Warn("script did not start", "err", err)
		case res.TimedOut:
			s.log.Info("script timed out", "timeout", p.timeout)
		case res.ExitCode != lastCode:
			s.log.Info("script now returning", "status", res.ExitCode)
		}
		lastCode = res.ExitCode
		success := err == nil && !res.TimedOut && res.ExitCode == 0
		if state.Observe(success) {
			s.log.Info("script status changed", "ok", state.OK())
			if !send(ctx, out, Update{Kind: KindScript, Name: s.name, OK: state.OK(), Value: res.ExitCode}) {
				return nil
			}
		}
		if !s.wait(ctx, tick, &p, &state) {
			return nil
		}
	}
}

// wait waits for the next tick, taking on the settings Reconfigure gives
// meanwhile; it reports false when ctx ends first.
func (s *Script) wait(ctx context.Context, tick *time.Ticker, p *scriptParams, state *ScriptState) bool {
	for {
		select {
		case <-tick.C:
			return true
		case <-s.reconf:
			*p = s.current()
			tick.Reset(p.interval)
			state.Resize(p.rise, p.fall)
		case <-ctx.Done():
			return false
		}
	}
}
