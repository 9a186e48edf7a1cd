package check

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"tandem/internal/config"
)

// killGrace is how long a timed-out MISC_CHECK process group has between
// SIGTERM and SIGKILL (keepalived check_misc.c misc_check_child_thread
// waits 2 s before escalating).
const killGrace = 2 * time.Second

// Misc is MISC_CHECK (keepalived check_misc.c). misc_path runs without a
// shell in its own process group. Exit status 0 is up, anything else down;
// with misc_dynamic, 2..255 are up too and set the real server's weight to
// status-2, and 0 restores the configured weight (misc_check_child_thread).
// A program still running at misc_timeout fails the check: its whole
// process group gets SIGTERM, then SIGKILL killGrace later.
type Misc struct {
	cfg  *config.MiscCheck
	cred *syscall.Credential
}

func newMisc(m *config.MiscCheck) (*Misc, error) {
	mc := &Misc{cfg: m}
	if m.User != "" {
		cred, err := lookupCred(m.User, m.Group)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.CheckMisc, err)
		}
		mc.cred = cred
	}
	return mc, nil
}

func lookupCred(name, group string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	gid := u.Gid
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", group, err)
		}
		gid = g.Gid
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(g)}, nil
}

// Check runs the program and judges its exit status.
func (m *Misc) Check(ctx context.Context) Result {
	start := time.Now()
	cmd := exec.Command(m.cfg.Command[0], m.cfg.Command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: m.cred}
	// No stdout/stderr pipes: Wait must not wait for grandchildren that
	// inherited them.
	if err := cmd.Start(); err != nil {
		return result(start, fmt.Errorf("%s %s: %w", config.CheckMisc, m.cfg.Command[0], err))
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	limit := time.Duration(m.cfg.Timeout)
	if limit <= 0 {
		limit = time.Hour // the configuration always sets one; be safe
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		m.kill(pgid, done)
		return result(start, fmt.Errorf("%s %s: timed out after %v", config.CheckMisc, m.cfg.Command[0], limit))
	case <-ctx.Done():
		m.kill(pgid, done)
		return result(start, fmt.Errorf("%s %s: %w", config.CheckMisc, m.cfg.Command[0], ctx.Err()))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result(start, nil)
	case !errors.As(err, &ee):
		return result(start, fmt.Errorf("%s %s: %w", config.CheckMisc, m.cfg.Command[0], err))
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return result(start, fmt.Errorf("%s %s: killed by signal %d (%v)", config.CheckMisc, m.cfg.Command[0], int(ws.Signal()), ws.Signal()))
	}
	code := ws.ExitStatus()
	if m.cfg.Dynamic && code >= 2 && code <= 255 {
		r := result(start, nil)
		w := code - 2
		r.Weight = &w
		return r
	}
	return result(start, fmt.Errorf("%s %s: exited with status %d", config.CheckMisc, m.cfg.Command[0], code))
}

// kill ends the process group: SIGTERM, then SIGKILL after killGrace or
// as soon as the leader has gone (so children that outlive it die too),
// and reaps the leader.
func (m *Misc) kill(pgid int, done <-chan error) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-done:
		syscall.Kill(-pgid, syscall.SIGKILL)
	case <-t.C:
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}
