// Package script is the one way Tandem runs a script: vrrp_script (track),
// notify scripts and MISC_CHECK all go through it. It picks the identity a
// script runs as (keepalived.conf(5) script_user, user; Users), applies
// enable_script_security (Command.Check), and runs the program without a
// shell, in a process group of its own, with a scrubbed environment and a
// timeout that kills the whole group (Command.Run).
package script

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"tandem/internal/realtime"
)

// KillGrace is how long a timed-out script has between SIGTERM and SIGKILL
// of its process group (keepalived vrrp_scheduler.c
// vrrp_script_child_thread and check_misc.c misc_check_child_thread: TERM,
// then KILL two seconds later).
const KillGrace = 2 * time.Second

// Errors a script check reports; callers branch on them with errors.Is.
var (
	// ErrInsecure: a script that runs as root could be replaced by a
	// non-root user (keepalived notify.c check_security).
	ErrInsecure = errors.New("insecure script")
	// ErrNotRunnable: the script does not exist or is not executable by
	// the user it runs as (keepalived notify.c check_script_secure).
	ErrNotRunnable = errors.New("script not runnable")
)

// Command is a program run without a shell, as keepalived runs every
// script (notify.c system_call_script): in a process group of its own so
// that a timeout kills everything it started, with stdin/stdout/stderr on
// /dev/null, with IFS, LD_PRELOAD and LD_LIBRARY_PATH removed from its
// environment, and with PR_SET_PDEATHSIG set to SIGTERM so that it does not
// outlive a Tandem that dies (set_privileges). Build one with Users.Command
// so that it runs as keepalived's rules say.
type Command struct {
	// Argv is the program and its arguments; a bare program name is
	// looked up in PATH.
	Argv []string
	// Cred is the identity the program runs as; nil runs it as this
	// process.
	Cred *syscall.Credential
	// Security is enable_script_security: Check refuses, rather than
	// warns about, a script that runs as root from an unsafe path.
	Security bool
}

// Result is how one run of a Command ended.
type Result struct {
	// ExitCode is the exit status, or -1 if the program was killed by a
	// signal.
	ExitCode int
	// Signal is the signal that killed the program, 0 if it exited.
	Signal syscall.Signal
	// TimedOut reports that the run was killed at its timeout.
	TimedOut bool
}

// Run runs c with extra appended to its arguments and waits for it. When
// timeout (if > 0) passes or ctx ends, the whole process group gets SIGTERM
// and, once the program exits or KillGrace passes, SIGKILL, so that a hung
// script and its children all die. The error is non-nil only if the program
// could not be started or ctx ended.
func (c *Command) Run(ctx context.Context, timeout time.Duration, extra ...string) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{ExitCode: -1}, errors.New("empty command")
	}
	argv := append(slices.Clip(c.Argv), extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = scriptEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.Cred, Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// The kernel sends the parent-death signal when the thread that
		// forked ends, not the process (prctl(2) PR_SET_PDEATHSIG), and
		// the Go runtime ends a thread whose goroutine exits while locked
		// to it. Forking and waiting from a goroutine that holds its
		// thread until the script has exited keeps that thread alive as
		// long as the script, so only Tandem's own death signals it.
		runtime.LockOSThread()
		// In a real-time process (realtime.SetProcessRR) the script
		// starts under the normal policy, and the thread, marked so,
		// ends with this goroutine instead of serving the runtime.
		if marked, err := realtime.ResetOnFork(); err != nil {
			started <- fmt.Errorf("SCHED_RESET_ON_FORK: %w", err)
			return
		} else if !marked {
			defer runtime.UnlockOSThread()
		}
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		_ = cmd.Wait() // the exit status is read from ProcessState below
		close(done)
	}()
	if err := <-started; err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var res Result
	var err error
	select {
	case <-done:
	case <-expired:
		res.TimedOut = true
		killGroup(pgid, done)
	case <-ctx.Done():
		err = ctx.Err()
		killGroup(pgid, done)
	}
	<-done
	res.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal()
	}
	return res, err
}

// killGroup terminates process group pgid whose leader's exit closes done.
// Children that outlive the leader (or ignore SIGTERM) get SIGKILL, as
// keepalived does after a SIGTERM-induced exit.
func killGroup(pgid int, done <-chan struct{}) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // ESRCH: already gone
	t := time.NewTimer(KillGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// scriptEnv is this process's environment without the variables keepalived
// removes before running a script (notify.c system_call_script: "defence in
// depth").
func scriptEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == "IFS" || name == "LD_PRELOAD" || name == "LD_LIBRARY_PATH"
	})
}

// Check applies keepalived's checks to the program c runs (notify.c
// check_script_secure): it must exist and be executable by the user it runs
// as, and if it runs as root (uid or gid 0, or set-uid/set-gid root) no
// element of its path, nor of the path it resolves to, may be writable by a
// non-root user. Without c.Security an unsafe path only earns the
// warning returned in warning; with it the script is refused with
// ErrInsecure.
func (c *Command) Check() (warning string, err error) {
	if len(c.Argv) == 0 {
		return "", fmt.Errorf("%w: empty command", ErrNotRunnable)
	}
	name := c.Argv[0]
	path := name
	if !strings.Contains(name, "/") {
		if path, err = exec.LookPath(name); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrNotRunnable, name, err)
		}
	}
	path, err = filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotRunnable, name, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotRunnable, name, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotRunnable, name, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if c.Cred != nil {
		uid, gid = c.Cred.Uid, c.Cred.Gid
	}
	if !fi.Mode().IsRegular() || !executable(st, uid, gid) {
		return "", fmt.Errorf("%w: %s is not an executable file for uid:gid %d:%d", ErrNotRunnable, name, uid, gid)
	}
	asRoot := uid == 0 || gid == 0 ||
		(st.Uid == 0 && st.Mode&syscall.S_ISUID != 0 && st.Mode&syscall.S_IXUSR != 0) ||
		(st.Gid == 0 && st.Mode&syscall.S_ISGID != 0 && st.Mode&syscall.S_IXGRP != 0)
	if !asRoot {
		return "", nil
	}
	for _, p := range []string{path, real} {
		if why := unsafePath(p); why != "" {
			if c.Security {
				return "", fmt.Errorf("%w: %s: %s", ErrInsecure, name, why)
			}
			return fmt.Sprintf("unsafe permissions for script %s: %s", name, why), nil
		}
	}
	return "", nil
}

// executable is keepalived's is_executable (notify.c): root needs any x
// bit, the owner the user bit, the group the group bit, others the other
// bit.
func executable(st *syscall.Stat_t, uid, gid uint32) bool {
	m := st.Mode
	switch {
	case uid == 0:
		return m&(syscall.S_IXUSR|syscall.S_IXGRP|syscall.S_IXOTH) != 0
	case uid == st.Uid:
		return m&syscall.S_IXUSR != 0
	case gid == st.Gid:
		return m&syscall.S_IXGRP != 0
	}
	return m&syscall.S_IXOTH != 0
}

// unsafePath walks every element of the absolute path p from "/" down
// without following symlinks (keepalived notify.c check_security) and says
// what is unsafe, or "" if nothing is: every element must be owned by root,
// and no directory without the sticky bit and no regular file may be
// writable by others or by a non-root group.
func unsafePath(p string) string {
	elems := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	for i := -1; i < len(elems); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, elems[i])
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return err.Error()
		}
		st := fi.Sys().(*syscall.Stat_t)
		last := i == len(elems)-1
		typ := fi.Mode().Type()
		if (!last && !fi.IsDir()) || (last && typ != 0 && typ != fs.ModeSymlink) {
			return cur + " has the wrong file type"
		}
		if st.Uid != 0 {
			return cur + " is not owned by root"
		}
		writable := (st.Gid != 0 && st.Mode&syscall.S_IWGRP != 0) || st.Mode&syscall.S_IWOTH != 0
		checked := fi.Mode().IsRegular() || (fi.IsDir() && st.Mode&syscall.S_ISVTX == 0)
		if checked && writable {
			return cur + " is writable by a non-root user"
		}
	}
	return ""
}
