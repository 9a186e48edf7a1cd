package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ipPath finds iproute2's ip, also when PATH lacks the sbin directories
// (sudo, some CI runners).
var ipPath = sync.OnceValues(func() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("lab: iproute2's ip not found (install iproute2)")
})

// Command returns a command that runs name inside node through
// `ip netns exec`. That is a fork and exec more than a setns in the child,
// but it is what an operator types, and it also remounts /sys for the
// namespace, so tools reading /sys/class/net see the node's interfaces.
// ctx must not be nil. The caller runs and waits for it; Close kills it if
// it is still running.
func (l *Lab) Command(ctx context.Context, node, name string, args ...string) *exec.Cmd {
	ns := l.NSName(node)
	ip, err := ipPath()
	if ns == "" || err != nil {
		// exec.Cmd reports Err from Start, Run and Output.
		cmd := exec.CommandContext(ctx, name, args...)
		if err == nil {
			err = fmt.Errorf("lab %s: no node %q", l.name, node)
		}
		cmd.Err = err
		return cmd
	}
	return exec.CommandContext(ctx, ip, append([]string{"netns", "exec", ns, name}, args...)...)
}

// Proc is a background process started by Start.
type Proc struct {
	node    string
	argv    []string // name and args, as given to Start
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been waited for
	err     error         // cmd.Wait's result, set before done is closed
}

// Start runs name in node in the background, in a process group of its
// own (so that Kill reaches its children too), with stdout and stderr
// going to a file that Output reads. The process is tracked: Close kills
// it. It also gets SIGKILL if the test binary dies (PR_SET_PDEATHSIG),
// so a killed `go test` does not leave daemons behind.
func (l *Lab) Start(node, name string, args ...string) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("lab %s: start %s in %s: lab is closed", l.name, name, node)
	}
	if _, err := l.node(node); err != nil {
		return nil, err
	}
	log, err := os.CreateTemp(l.logDir, fmt.Sprintf("%s-%s-*.log", node, filepath.Base(name)))
	if err != nil {
		return nil, fmt.Errorf("lab %s: start %s in %s: %w", l.name, name, node, err)
	}
	defer log.Close() // the child has its own copy
	cmd := l.Command(context.Background(), node, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab %s: start %s in %s: %w", l.name, name, node, err)
	}
	p := &Proc{node: node, argv: append([]string{name}, args...), cmd: cmd, logPath: log.Name(), done: make(chan struct{})}
	go func() {
		// Output goes to a file, not a pipe, so Wait returns as soon as
		// the process exits even if its children keep the file open.
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	return p, nil
}

// Pid is the process's PID, which is also its process group ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns how it did (an
// *exec.ExitError for a non-zero status or a signal). It can be called
// any number of times, from any goroutine.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process only (not its group): SIGHUP for a
// reload, SIGTERM for a graceful stop that the process itself propagates.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("lab: signal %v to %s in %s: process has exited", sig, p.argv, p.node)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("lab: signal %v to %s in %s: %w", sig, p.argv, p.node, err)
	}
	return nil
}

// Stop asks the process to exit with SIGTERM (to the process, which is how
// keepalived and tandem are stopped: the parent shuts its children down
// gracefully), and SIGKILLs the whole group if it has not exited within
// timeout, or if children are left once it has. It returns an error if
// SIGKILL was needed for the process itself; Wait reports the exit status.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
	default:
		// ESRCH: it exited between the check and the signal.
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("lab: stop %v in %s: %w", p.argv, p.node, err)
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		p.killGroup()
		return nil
	case <-t.C:
	}
	if err := p.kill(5 * time.Second); err != nil {
		return err
	}
	return fmt.Errorf("lab: stop %v in %s: still running %v after SIGTERM; killed", p.argv, p.node, timeout)
}

// Kill sends SIGKILL to the whole process group, a crash: keepalived's
// VRRP child gets no chance to send its priority-0 advert. It returns
// once the process has exited.
func (p *Proc) Kill() error {
	return p.kill(5 * time.Second)
}

func (p *Proc) kill(wait time.Duration) error {
	p.killGroup()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("lab: kill %v in %s: still running %v after SIGKILL", p.argv, p.node, wait)
	}
}

// killGroup SIGKILLs the process group. The group outlives its leader
// while children remain, and the kernel does not reuse its ID while it
// exists, so this also reaches children after the leader has exited; once
// the group is empty the signal gets ESRCH (PIDs are allocated cyclically
// up to pid_max, so a reused ID within a lab's life is not a concern).
func (p *Proc) killGroup() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// Output returns what the process has written to stdout and stderr so far.
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("<lab: output of %v: %v>", p.argv, err)
	}
	return string(b)
}

// Sleep waits d, or until ctx ends (then it returns ctx's error): the
// benchmarks' pauses, which Ctrl-C must cut short.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Poll calls cond every 10 ms until it holds (nil), timeout passes (an
// error saying what was not reached) or ctx ends (its error): the
// benchmarks' waits.
func Poll(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not %s after %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
