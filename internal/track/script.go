package track

import (
	"context"
	"fmt"
	"log/slog"
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

// Script runs a vrrp_script every interval and reports its status.
type Script struct {
	name     string
	cmd      *script.Command
	interval time.Duration
	timeout  time.Duration
	initFail bool
	rise     int
	fall     int
	log      *slog.Logger
}

// NewScript prepares s to run as the user users picks for it.
func NewScript(s *config.Script, users *script.Users, log *slog.Logger) (*Script, error) {
	cmd, err := users.Command(s.Command, s.User, s.Group)
	if err != nil {
		return nil, fmt.Errorf("vrrp_script %s: %w", s.Name, err)
	}
	interval := time.Duration(s.Interval)
	if interval <= 0 {
		interval = time.Second // keepalived vrrp_track.h VRRP_SCRIPT_DI
	}
	timeout := time.Duration(s.Timeout)
	if timeout <= 0 {
		timeout = interval // keepalived.conf(5): timeout defaults to interval
	}
	return &Script{
		name:     s.Name,
		cmd:      cmd,
		interval: interval,
		timeout:  timeout,
		initFail: s.InitFail,
		rise:     s.Rise,
		fall:     s.Fall,
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
	state := NewScriptState(s.rise, s.fall, s.initFail)
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

	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	lastCode := 0
	for {
		res, err := s.cmd.Run(ctx, s.timeout)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			s.log.Warn("script did not start", "err", err)
		case res.TimedOut:
			s.log.Info("script timed out", "timeout", s.timeout)
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
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}
