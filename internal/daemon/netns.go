package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// NetnsDir is where `ip netns add NAME` bind-mounts a named network
// namespace, and where keepalived's net_namespace NAME looks for it.
const NetnsDir = "/run/netns"

// joinedEnv marks a process that re-executed itself into its namespace,
// so that a namespace that cannot be joined fails instead of looping.
const joinedEnv = "TANDEM_NET_NAMESPACE_JOINED"

// EnterNamespace runs this process in the network namespace its
// configuration names (keepalived.conf(5) net_namespace), before anything
// opens a socket: if the configuration file names one and the process is
// not in it yet, it does not return but re-executes the program inside
// the namespace. A configuration that cannot be read is left for Run to
// report.
//
// Why re-execute: a network namespace belongs to a thread, not a process
// (setns(2)), and a Go program has many threads that the runtime creates
// and schedules goroutines on as it likes, so joining from one goroutine
// would leave the others, and every thread made later from them, in the
// old namespace. Re-executing from a thread that joined it starts the
// whole program again in the namespace: execve(2) ends every other thread
// and the new program's first thread, from which the runtime creates all
// the others, inherits the calling thread's namespace. Run's one-Tandem
// lock (internal/nslock) is then taken in the joined namespace, as are
// VRRP sockets, addresses and the data plane.
func EnterNamespace(opts Options) error {
	cfg, diags := config.Load(opts.ConfigFile, config.Options{ConfigID: opts.ConfigID})
	if diags.HasErrors() || cfg.Global.NetNamespace == "" {
		return nil
	}
	name := cfg.Global.NetNamespace
	in, err := inNamespace(name)
	if err != nil || in {
		// The marker has served; scripts need not see it.
		os.Unsetenv(joinedEnv)
		return err
	}
	if os.Getenv(joinedEnv) == name {
		return fmt.Errorf("net_namespace %s: joined it, yet not in it after re-executing", name)
	}
	// The thread that joins the namespace is the one that calls execve;
	// it must not run anything else in between.
	runtime.LockOSThread()
	path := filepath.Join(NetnsDir, name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("net_namespace %s: %w (create it with ip netns add %s)", name, err, name)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		unix.Close(fd)
		return fmt.Errorf("net_namespace %s: join: %w", name, err)
	}
	unix.Close(fd)
	opts.Log.Info("joining network namespace", "net_namespace", name)
	env := append(os.Environ(), joinedEnv+"="+name)
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("net_namespace %s: re-execute in it: %w", name, err)
}

// inNamespace reports whether the calling thread is in the named network
// namespace: the same namespace file (device and inode) as
// /run/netns/NAME.
func inNamespace(name string) (bool, error) {
	var want, cur unix.Stat_t
	if err := unix.Stat(filepath.Join(NetnsDir, name), &want); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("net_namespace %s: %s does not exist (create it with ip netns add %s)", name, filepath.Join(NetnsDir, name), name)
		}
		return false, fmt.Errorf("net_namespace %s: %w", name, err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &cur); err != nil {
		return false, fmt.Errorf("net_namespace %s: our namespace: %w", name, err)
	}
	return want.Dev == cur.Dev && want.Ino == cur.Ino, nil
}

// checkNamespace refuses to run cfg outside the network namespace it
// names: its addresses and rules would go to the wrong one.
func checkNamespace(cfg *config.Config) error {
	name := cfg.Global.NetNamespace
	if name == "" {
		return nil
	}
	in, err := inNamespace(name)
	if err == nil && !in {
		err = fmt.Errorf("net_namespace %s: this process runs in another network namespace (tandem run joins it at start)", name)
	}
	return err
}
