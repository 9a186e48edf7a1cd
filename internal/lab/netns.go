package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/nslock"
)

// runDir is where iproute2 looks for named namespaces (`ip netns`).
const runDir = "/run/netns"

// prepareRunDir makes runDir a shared mount point, as `ip netns add` does
// first: namespace mounts then propagate into other mount namespaces, and
// a later `ip netns add` (which would make it a mount point then) cannot
// race with a bind mount of ours.
var prepareRunDir = sync.OnceValue(func() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	return err
})

// createNS makes a network namespace and bind-mounts it as runDir/name, the
// way `ip netns add` does, without leaving the calling thread in it.
func createNS(name string) (nsEntry, error) {
	if err := prepareRunDir(); err != nil {
		return nsEntry{}, fmt.Errorf("lab: create namespace %s: %s: %w", name, runDir, err)
	}
	path := filepath.Join(runDir, name)
	// O_EXCL: a clash with another process's namespace must fail here,
	// not mount over it.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nsEntry{}, fmt.Errorf("lab: create namespace %s: %w", name, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount: %w", err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return nsEntry{}, fmt.Errorf("lab: create namespace %s: %w", name, err)
	}
	fd, err := netns.GetFromPath(path)
	if err != nil {
		err = fmt.Errorf("lab: open namespace %s: %w", name, err)
		return nsEntry{}, errors.Join(err, deleteNS(nsEntry{name: name, fd: -1}))
	}
	return nsEntry{name: name, fd: fd}, nil
}

// deleteNS closes e's handle and removes its bind mount, as `ip netns del`
// does. The namespace, and every interface in it, goes away once no
// process and no open handle refers to it.
func deleteNS(e nsEntry) error {
	if e.fd >= 0 {
		e.fd.Close()
	}
	path := filepath.Join(runDir, e.name)
	// MNT_DETACH: a process that still has the file open (an `ip netns
	// exec` being set up) must not make the teardown fail.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("lab: delete namespace %s: unmount: %w", e.name, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("lab: delete namespace %s: %w", e.name, err)
	}
	return nil
}

// removeTandemLock removes the namespace lock that a Tandem killed in e
// (as Close kills every process) leaves behind; a Tandem that exits
// cleanly removes its own.
func removeTandemLock(e nsEntry) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(e.fd), &st); err != nil {
		return fmt.Errorf("namespace %s: %w", e.name, err)
	}
	if err := os.Remove(nslock.Path(nslock.Dir, st.Ino)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Do runs fn with an OS thread switched into node's network namespace, for
// opening sockets (a socket stays in the namespace it was created in),
// reading /proc/sys/net, or calling vishvananda/netlink's package-level
// functions.
//
// fn runs on a goroutine of its own, locked to its thread, and Do waits for
// it: so do not call t.Fatal or t.FailNow in fn (return an error), and do
// not start goroutines in fn that expect the namespace (they may run on
// other threads). A panic in fn is re-raised in the caller. If the thread
// cannot be switched back afterwards it is never unlocked, and the Go
// runtime discards it when the goroutine ends, so no other goroutine ever
// runs in the lab's namespace by accident.
func (l *Lab) Do(node string, fn func() error) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	return onThread(func() error {
		if err := netns.Set(n.fd); err != nil {
			return fmt.Errorf("lab %s: enter node %s: %w", l.name, node, err)
		}
		return fn()
	})
}

// DoPorts runs fn, as Do does, in the switch namespace, with the names of
// node's ports on switch sw there: the bridge side of node's veths there
// (for a test that needs them to carry XDP: a veth transmits XDP frames
// only to a peer that runs XDP or NAPI).
func (l *Lab) DoPorts(node, sw string, fn func(ports []string) error) error {
	ports, err := l.ports(node, sw)
	if err != nil {
		return err
	}
	return onThread(func() error {
		if err := netns.Set(l.sw.fd); err != nil {
			return fmt.Errorf("lab %s: enter the switch namespace: %w", l.name, err)
		}
		return fn(ports)
	})
}

// onThread runs fn on a new goroutine locked to its OS thread and puts
// that thread back into its original network namespace afterwards.
func onThread(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
		stack    []byte
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("lab: current namespace: %w", err)}
			return
		}
		defer orig.Close()
		var r result
		func() {
			defer func() {
				if v := recover(); v != nil {
					r = result{panicked: true, value: v, stack: debug.Stack()}
				}
			}()
			r.err = fn()
		}()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- r
	}()
	r := <-ch
	if r.panicked {
		panic(fmt.Sprintf("%v\n\n[panic inside a lab namespace; its goroutine's stack:]\n%s", r.value, r.stack))
	}
	return r.err
}

// killInNS SIGKILLs every process whose network namespace is fd's, and
// waits (up to 2 s) until none is left. It catches what a process group
// kill misses: daemons that called setsid, commands from Command that
// were never waited for.
func killInNS(fd netns.NsHandle) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return fmt.Errorf("stat namespace: %w", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids := pidsInNS(st.Dev, st.Ino)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in namespace after SIGKILL", pids)
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidsInNS lists the processes (thread group leaders) whose
// /proc/PID/ns/net is the namespace (dev, ino). An exiting process drops
// its namespaces before it becomes a zombie, so zombies are not listed.
func pidsInNS(dev, ino uint64) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == dev && st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

var staleRE = regexp.MustCompile(`^` + namePrefix + `([0-9]+)x[0-9]+(-.*)?$`)

// Sweep removes the namespaces of labs whose process is gone (a test
// binary killed by `go test -timeout`, a crash), killing whatever still
// runs in them, and returns their names. It also removes those labs' log
// directories. It leaves this process's labs
// and those of live processes alone. It assumes the processes that share
// /run/netns share a PID namespace, as they do on a CI runner or a
// developer's machine.
func Sweep() ([]string, error) {
	ents, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: sweep: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		fd, err := netns.GetFromPath(filepath.Join(runDir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("lab: sweep %s: %w", e.Name(), err))
			continue
		}
		if err := killInNS(fd); err != nil {
			errs = append(errs, fmt.Errorf("lab: sweep %s: %w", e.Name(), err))
		}
		if err := deleteNS(nsEntry{name: e.Name(), fd: fd}); err != nil {
			errs = append(errs, fmt.Errorf("lab: sweep: %w", err))
			continue
		}
		removed = append(removed, e.Name())
	}
	logs, _ := filepath.Glob(filepath.Join(os.TempDir(), namePrefix+"*x*-*"))
	for _, dir := range logs {
		m := staleLogRE.FindStringSubmatch(filepath.Base(dir))
		if m == nil {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !processAlive(pid) {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, fmt.Errorf("lab: sweep: %w", err))
			}
		}
	}
	return removed, errors.Join(errs...)
}

// staleLogRE matches the log directories New makes with os.MkdirTemp.
var staleLogRE = regexp.MustCompile(`^` + namePrefix + `([0-9]+)x[0-9]+-[0-9]+$`)

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
