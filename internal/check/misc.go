package check

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"tandem/internal/config"
	"tandem/internal/script"
)

// Misc is MISC_CHECK (keepalived check_misc.c), run through package script
// as every script is: as its own user, else the default script user, with
// enable_script_security and a scrubbed environment. Exit status 0 is up,
// anything else down; with misc_dynamic, 2..255 are up too and set the real
// server's weight to status-2, and 0 restores the configured weight
// (misc_check_child_thread). A program still running at misc_timeout fails
// the check: its whole process group gets SIGTERM, then SIGKILL
// script.KillGrace later.
type Misc struct {
	cfg  *config.MiscCheck
	cmd  *script.Command
	log  *slog.Logger
	warn sync.Once // the unsafe-permissions warning, once per checker
}

func newMisc(m *config.MiscCheck, env Env) (*Misc, error) {
	if env.Scripts == nil {
		return nil, fmt.Errorf("%s: no script users (check.Env.Scripts)", config.CheckMisc)
	}
	cmd, err := env.Scripts.Command(m.Command, m.User, m.Group)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.CheckMisc, err)
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Misc{cfg: m, cmd: cmd, log: log}, nil
}

// Check runs the program and judges its exit status. A program that
// script.Command.Check refuses (missing, not executable for its user, or
// unsafe under enable_script_security) fails the check without running.
func (m *Misc) Check(ctx context.Context) Result {
	start := time.Now()
	name := m.cfg.Command[0]
	warning, err := m.cmd.Check()
	if err != nil {
		return result(start, fmt.Errorf("%s: %w", config.CheckMisc, err))
	}
	if warning != "" {
		m.warn.Do(func() { m.log.Warn(warning, "checker", config.CheckMisc) })
	}
	limit := time.Duration(m.cfg.Timeout)
	if limit <= 0 {
		limit = time.Hour // the configuration always sets one; be safe
	}
	res, err := m.cmd.Run(ctx, limit)
	code := res.ExitCode
	switch {
	case err != nil:
		return result(start, fmt.Errorf("%s %s: %w", config.CheckMisc, name, err))
	case res.TimedOut:
		return result(start, fmt.Errorf("%s %s: timed out after %v", config.CheckMisc, name, limit))
	case res.Signal != 0:
		return result(start, fmt.Errorf("%s %s: killed by signal %d (%v)", config.CheckMisc, name, int(res.Signal), res.Signal))
	case code == 0:
		return result(start, nil)
	case m.cfg.Dynamic && code >= 2 && code <= 255:
		r := result(start, nil)
		w := code - 2
		r.Weight = &w
		return r
	}
	return result(start, fmt.Errorf("%s %s: exited with status %d", config.CheckMisc, name, code))
}
