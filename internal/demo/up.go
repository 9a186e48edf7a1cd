package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tandem/internal/lab"
)

// Env says where a lab that outlives its process lives: Name prefixes its
// namespaces (Name, Name-dir1, ...) and Dir holds everything else, the
// state file included.
type Env struct {
	Name string
	Dir  string
}

// DefaultEnv is `tandem lab up`'s. The name is not of the tests' form
// td<pid>x<n>, so lab.Sweep never takes it for a dead test's leftover;
// /run is a tmpfs, gone at reboot like the namespaces.
var DefaultEnv = Env{Name: "tandemlab", Dir: "/run/tandem/lab"}

func (e Env) statePath() string { return filepath.Join(e.Dir, "state.json") }

// BinDir holds the copy of the tandem binary the lab runs: `go run`'s
// binary is deleted when `go run` exits, the lab's daemons outlive it.
func (e Env) BinDir() string { return filepath.Join(e.Dir, "bin") }

// State is what Up started, for Exec and Down.
type State struct {
	Lab     string    `json:"lab"`
	Dir     string    `json:"dir"`
	Started time.Time `json:"started"`
	Nodes   []string  `json:"nodes"`
	// Sockets are the directors' status sockets, by node.
	Sockets map[string]string `json:"sockets"`
	Procs   []ProcState       `json:"procs"`
	// Try are commands to suggest, as `tandem lab exec` takes them:
	// NODE -- CMD [ARGS...].
	Try []string `json:"try,omitempty"`
}

// ProcState is one process Up started.
type ProcState struct {
	Node string   `json:"node"`
	PID  int      `json:"pid"`
	Argv []string `json:"argv"`
	Log  string   `json:"log"`
	// StartTime is field 22 of /proc/PID/stat: with the PID it names
	// the process, not a later one that got the same PID.
	StartTime uint64 `json:"start_time"`
}

// Up builds the lab under env and starts the real servers and directors
// as Run does, and leaves them running; Down undoes it. It refuses when a
// lab is up already, and on failure (or ctx cancelled) leaves nothing.
func Up(ctx context.Context, opts Options, env Env) (st State, err error) {
	nginx, err := probe().check(opts.Web)
	if err != nil {
		return st, err
	}
	if old, err := readState(env); err == nil {
		return st, fmt.Errorf("lab %s is up already (since %s); `tandem lab down` first", old.Lab, old.Started.Format(time.DateTime))
	} else if !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	if _, err := os.Stat(filepath.Join("/run/netns", env.Name)); err == nil {
		return st, fmt.Errorf("namespaces of a lab %s exist without its state file; `tandem lab down` removes them", env.Name)
	}
	if err := os.MkdirAll(env.BinDir(), 0o755); err != nil {
		return st, fmt.Errorf("lab directory: %w", err)
	}
	var l *lab.Lab
	defer func() {
		if err == nil {
			return
		}
		if l != nil {
			err = errors.Join(err, l.Close())
		}
		if rerr := os.RemoveAll(env.Dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", env.Dir, rerr))
		}
	}()
	bin := filepath.Join(env.BinDir(), "tandem")
	if err := copyFile(opts.Bin, bin, 0o755); err != nil {
		return st, fmt.Errorf("copy the tandem binary into the lab: %w", err)
	}
	confDir := filepath.Join(env.Dir, "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return st, fmt.Errorf("lab directory: %w", err)
	}
	topo, err := newTopology(opts, confDir)
	if err != nil {
		return st, err
	}
	p := newProgress(opts.Out)
	logDir := filepath.Join(env.Dir, "log")
	if l, err = lab.NewNamed(env.Name, logDir, topo.spec()); err != nil {
		return st, err
	}
	st = State{Lab: env.Name, Dir: env.Dir, Started: time.Now(), Sockets: map[string]string{}}
	start := func(node, name string, args ...string) (*lab.Proc, error) {
		log := filepath.Join(logDir, node+"-"+filepath.Base(name)+".log")
		proc, err := l.StartDetached(node, log, name, args...)
		if err != nil {
			return nil, err
		}
		ps := ProcState{Node: node, PID: proc.Pid(), Argv: append([]string{name}, args...), Log: log}
		if ps.StartTime, _, err = procStat(ps.PID); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", node, name, err)
		}
		st.Procs = append(st.Procs, ps)
		return proc, nil
	}
	s := newStack(l, topo.layout(), bin, env.Dir, nginx, start)
	p.step("lab %s: %s, no link to the host", env.Name, topo.describe())
	target, err := topo.populate(ctx, s, p)
	if err != nil {
		return st, err
	}
	st.Try = topo.try(s, target)
	for _, n := range topo.spec().Nodes {
		st.Nodes = append(st.Nodes, n.Name)
	}
	for _, d := range s.dirs {
		st.Sockets[d.node] = d.socket
	}
	if err := writeState(env, st); err != nil {
		return st, err
	}
	return st, nil
}

// Down stops the processes Up recorded, by PID, removes the lab's
// namespaces and its directory, and reports what it did to w. Without a
// state file it still removes namespaces and a directory of env's
// (an Up that was killed half-way).
func Down(env Env, w io.Writer) error {
	st, err := readState(env)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var errs []error
	// Directors first, in reverse start order: their SIGTERM then finds
	// the real servers still up, as in an orderly shutdown.
	for _, ps := range slices.Backward(st.Procs) {
		how, err := stop(ps, 5*time.Second)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "%s: %s (pid %d) %s\n", ps.Node, ps.name(), ps.PID, how)
	}
	removed, err := lab.RemoveNamed(env.Name)
	if err != nil {
		errs = append(errs, err)
	}
	if len(removed) > 0 {
		fmt.Fprintf(w, "namespaces removed: %s\n", strings.Join(removed, " "))
	}
	if _, serr := os.Stat(env.Dir); serr == nil {
		if err := os.RemoveAll(env.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", env.Dir, err))
		} else {
			fmt.Fprintf(w, "%s removed\n", env.Dir)
		}
	}
	if st.Lab == "" && len(removed) == 0 {
		fmt.Fprintf(w, "no lab %s is up\n", env.Name)
	}
	return errors.Join(errs...)
}

// name is the program and its subcommands ("tandem run", "nginx").
func (ps ProcState) name() string {
	words := []string{filepath.Base(ps.Argv[0])}
	for _, a := range ps.Argv[1:] {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// stop ends one recorded process: SIGTERM, then SIGKILL to its process
// group (StartDetached made it a session leader, so PID = PGID) if it is
// still there after timeout. A process that is gone, or whose PID now
// names another process, is left alone.
func stop(ps ProcState, timeout time.Duration) (string, error) {
	if !running(ps) {
		return "had exited", nil
	}
	if err := syscall.Kill(ps.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("%s: stop pid %d: %w", ps.Node, ps.PID, err)
	}
	deadline := time.Now().Add(timeout)
	for running(ps) {
		if time.Now().After(deadline) {
			if err := syscall.Kill(-ps.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return "", fmt.Errorf("%s: kill process group %d: %w", ps.Node, ps.PID, err)
			}
			return "killed (no exit within " + timeout.String() + " of SIGTERM)", nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "stopped", nil
}

// running reports whether ps's process is alive: its PID exists, is not a
// zombie, and started when ps did.
func running(ps ProcState) bool {
	start, state, err := procStat(ps.PID)
	return err == nil && start == ps.StartTime && state != 'Z'
}

// procStat reads a process's start time (clock ticks since boot) and state
// letter from /proc/PID/stat (proc(5)). The command name, field 2, may hold
// spaces and parentheses, so fields are counted after its last ')'.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (start uint64, state byte, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc stat %q: too few fields", s)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc stat: start time: %w", err)
	}
	return start, f[0][0], nil
}

// ExecArgs splits `lab exec`'s arguments, NODE [--] CMD [ARGS...].
func ExecArgs(args []string) (node string, argv []string, err error) {
	if len(args) > 1 && args[1] == "--" {
		args = slices.Delete(slices.Clone(args), 1, 2)
	}
	if len(args) < 2 || args[0] == "" || args[0] == "--" {
		return "", nil, errors.New("usage: tandem lab exec NODE -- CMD [ARGS...]")
	}
	return args[0], args[1:], nil
}

// Exec runs argv in node's namespace of the lab that is up, with the
// lab's tandem first in PATH, and returns the command's exit code.
func Exec(env Env, node string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	st, err := readState(env)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no lab is up (%s not found); `tandem lab up` first", env.statePath())
	}
	if err != nil {
		return 0, err
	}
	if !slices.Contains(st.Nodes, node) {
		return 0, fmt.Errorf("lab %s has no node %q; its nodes: %s", st.Lab, node, strings.Join(st.Nodes, ", "))
	}
	ip, err := lab.IPPath()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(ip, append([]string{"netns", "exec", lab.NodeNS(st.Lab, node)}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = append(os.Environ(), "PATH="+env.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", node, argv[0], err)
	}
	return 0, nil
}

func readState(env Env) (State, error) {
	var st State
	b, err := os.ReadFile(env.statePath())
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("lab state %s: %w", env.statePath(), err)
	}
	return st, nil
}

// writeState writes through a temporary file and a rename, so that Down
// never reads half a state.
func writeState(env Env, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	tmp := env.statePath() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	if err := os.Rename(tmp, env.statePath()); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
