package script

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/lab"
)

const waitLimit = 10 * time.Second

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// waitFile waits for path to hold a line and returns what it holds.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPid waits for path to hold a pid and a newline.
func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestCommandTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	// A hung script with a child that would outlive it.
	prog := lab.WriteScript(t, dir, "hang.sh", `sleep 300 &
echo $! > "$1/child"
echo $$ > "$1/leader"
wait
`)
	c := Command{Argv: []string{prog, dir}}
	res, err := c.Run(context.Background(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != -1 || res.Signal != syscall.SIGTERM {
		t.Errorf("Run = %+v, want timed out and killed by SIGTERM", res)
	}
	for _, f := range []string{"leader", "child"} {
		if pid := readPid(t, filepath.Join(dir, f)); lab.Alive(pid, waitLimit) {
			t.Errorf("%s (pid %d) still running after timeout", f, pid)
		}
	}
}

func TestCommandContextCancel(t *testing.T) {
	prog := lab.WriteScript(t, t.TempDir(), "hang.sh", "exec sleep 300\n")
	ctx, cancel := context.WithCancel(context.Background())
	c := Command{Argv: []string{prog}}
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, time.Hour)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run error %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return on cancel")
	}
}

func TestCommandExitCodeAndArgs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	// No shell: "a b" stays one argument and "$HOME" is not expanded.
	prog := lab.WriteScript(t, dir, "args.sh", `out=$1; shift; printf '%s|' "$@" > "$out"; exit 3`+"\n")
	c := Command{Argv: []string{prog, out, "a b", "$HOME"}}
	res, err := c.Run(context.Background(), waitLimit, "c")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.TimedOut || res.Signal != 0 {
		t.Errorf("Run = %+v, want exit 3", res)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "a b|$HOME|c|"; got != want {
		t.Errorf("script saw args %q, want %q", got, want)
	}
}

func TestCommandNotStarted(t *testing.T) {
	c := Command{Argv: []string{filepath.Join(t.TempDir(), "missing")}}
	if res, err := c.Run(context.Background(), waitLimit); err == nil || res.ExitCode != -1 {
		t.Errorf("Run = %+v, %v; want a start error", res, err)
	}
}

// TestCommandEnvironment: the variables keepalived removes before running
// a script are gone; the rest of Tandem's environment is passed on.
func TestCommandEnvironment(t *testing.T) {
	for _, name := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "IFS"} {
		t.Setenv(name, "/nonexistent/tandem-test")
	}
	t.Setenv("TANDEM_TEST_KEPT", "kept")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	c := Command{Argv: []string{lab.WriteScript(t, dir, "env.sh", `env > "$1"`+"\n"), out}}
	if res, err := c.Run(context.Background(), waitLimit); err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(b), "\n")
	for _, name := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "IFS"} {
		if i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") }); i >= 0 {
			t.Errorf("script saw %s", env[i])
		}
	}
	if !slices.Contains(env, "TANDEM_TEST_KEPT=kept") {
		t.Errorf("script did not see TANDEM_TEST_KEPT; environment:\n%s", b)
	}
}

// parentDeathEnv makes this test binary the parent of
// TestCommandParentDeath: it runs the script named by the variable and
// waits, until the test kills it.
const parentDeathEnv = "TANDEM_SCRIPT_TEST_PARENT"

// TestCommandParentDeath: a script gets SIGTERM when Tandem dies without
// killing it (keepalived: PR_SET_PDEATHSIG in set_privileges), however
// many of Tandem's threads have come and gone since it started.
func TestCommandParentDeath(t *testing.T) {
	if prog := os.Getenv(parentDeathEnv); prog != "" {
		// The parent: the script runs from some thread; the runtime
		// then ends threads by exiting goroutines locked to them.
		done := make(chan struct{})
		go func() {
			c := Command{Argv: []string{prog}}
			_, _ = c.Run(context.Background(), 0)
			close(done)
		}()
		for range 50 {
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				runtime.LockOSThread() // never unlocked: the thread ends
			}()
			<-ended
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(prog), "threads-ended"), []byte("yes\n"), 0o644); err != nil {
			panic(err)
		}
		<-done // killed first
		return
	}
	dir := t.TempDir()
	prog := lab.WriteScript(t, dir, "child.sh", `trap 'echo TERM > `+dir+`/signal; exit 0' TERM
echo $$ > `+dir+`/pid
while :; do sleep 0.05; done
`)
	parent := exec.Command(os.Args[0], "-test.run=^TestCommandParentDeath$")
	parent.Env = append(os.Environ(), parentDeathEnv+"="+prog)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	waitFile(t, filepath.Join(dir, "threads-ended"))
	if _, err := os.Stat(filepath.Join(dir, "signal")); err == nil {
		t.Fatal("the script got SIGTERM while its parent was still running")
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if lab.Alive(pid, waitLimit) {
		t.Fatalf("script (pid %d) still running after its parent was killed", pid)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "signal")); err != nil || strings.TrimSpace(string(b)) != "TERM" {
		t.Errorf("script did not report SIGTERM: %q, %v", b, err)
	}
}

func TestCommandCheck(t *testing.T) {
	requireRoot(t) // the rules apply to scripts that run as root
	dir := t.TempDir()
	safe := lab.WriteScript(t, dir, "safe.sh", "exit 0\n")
	unsafe := lab.WriteScript(t, dir, "unsafe.sh", "exit 0\n")
	if err := os.Chmod(unsafe, 0o757); err != nil { // writable by others
		t.Fatal(err)
	}
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	openDir := filepath.Join(dir, "open")
	if err := os.Mkdir(openDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openDir, 0o777); err != nil { // no sticky bit
		t.Fatal(err)
	}
	inOpenDir := lab.WriteScript(t, openDir, "s.sh", "exit 0\n")
	link := filepath.Join(dir, "link.sh")
	if err := os.Symlink(unsafe, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		argv0    string
		security bool
		wantErr  error
		wantWarn bool
	}{
		{"safe", safe, true, nil, false},
		{"bare name from PATH", "true", true, nil, false},
		{"writable by others refused", unsafe, true, ErrInsecure, false},
		{"writable by others warned", unsafe, false, nil, true},
		{"directory writable by others", inOpenDir, true, ErrInsecure, false},
		{"symlink to unsafe target", link, true, ErrInsecure, false},
		{"missing", filepath.Join(dir, "missing"), false, ErrNotRunnable, false},
		{"not executable", noexec, false, ErrNotRunnable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Command{Argv: []string{tt.argv0}, Security: tt.security}
			warn, err := c.Check()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Check error %v, want %v", err, tt.wantErr)
			}
			if (warn != "") != tt.wantWarn {
				t.Errorf("Check warning %q, want warning=%v", warn, tt.wantWarn)
			}
		})
	}
}
