package realtime

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// onThread runs f on a fresh locked thread that ends with it, so that
// what f sets dies with the thread and the test's other threads are
// untouched.
func onThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer close(done)
		f()
	}()
	<-done
}

// TestApply: the real system calls move the calling thread, and only it,
// to SCHED_RR with SCHED_RESET_ON_FORK (so that threads and scripts
// started from it are not real-time) and onto the CPUs asked for, set
// RLIMIT_RTTIME to the limit (soft: half, as keepalived), and set a nice
// value only without a real-time priority.
func TestApply(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE) to use real-time scheduling")
	}
	var before unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTTIME, &before); err != nil {
		t.Fatal(err)
	}
	// Restoring it needs CAP_SYS_RESOURCE, which a test may lack; the
	// test binary then keeps the limit, which its threads never reach.
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_RTTIME, &before) })
	var attr *unix.SchedAttr
	var cpus unix.CPUSet
	var err, aerr, cerr error
	onThread(func() {
		err = Apply(Thread{Priority: 2, Nice: 5, CPUs: []int{0}, RTTimeLimit: 50 * time.Millisecond})
		attr, aerr = unix.SchedGetAttr(0, 0)
		cerr = unix.SchedGetaffinity(0, &cpus)
	})
	if err != nil || aerr != nil || cerr != nil {
		t.Fatal(err, aerr, cerr)
	}
	if attr.Policy != unix.SCHED_RR || attr.Priority != 2 || attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
		t.Errorf("thread scheduling %+v, want SCHED_RR priority 2 with RESET_ON_FORK", attr)
	}
	if cpus.Count() != 1 || !cpus.IsSet(0) {
		t.Errorf("thread affinity: %d CPUs, want CPU 0 alone", cpus.Count())
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTTIME, &rl); err != nil || rl.Max != 50000 || rl.Cur != 25000 {
		t.Errorf("RLIMIT_RTTIME %+v (%v), want 25000/50000 us", rl, err)
	}
	// A role asking for less later leaves the larger limit (lowering the
	// hard limit could not be undone without CAP_SYS_RESOURCE).
	if err := raiseRTTime(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_RTTIME, &rl); err != nil || rl.Max != 50000 {
		t.Errorf("after a smaller limit: RLIMIT_RTTIME %+v (%v), want 50000 us kept", rl, err)
	}
	if other, err := unix.SchedGetAttr(unix.Gettid(), 0); err == nil && other.Policy == unix.SCHED_RR {
		t.Errorf("another thread is SCHED_RR too")
	}

	var nice int
	onThread(func() {
		err = Apply(Thread{Nice: 7})
		// getpriority returns 20-nice for the raw system call.
		p, gerr := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		nice, aerr = 20-p, gerr
	})
	if err != nil || aerr != nil || nice != 7 {
		t.Errorf("nice %d (%v, %v), want 7", nice, err, aerr)
	}
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid()); err == nil && 20-p == 7 {
		t.Error("the nice value reached another thread")
	}
}

// TestRearmRTTimeWarning: after a SIGXCPU (the kernel then raises the
// soft limit by a second) the soft limit is put back to half the hard.
func TestRearmRTTimeWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_RESOURCE) to raise RLIMIT_RTTIME")
	}
	// Raising the hard limit needs CAP_SYS_RESOURCE, which a container's
	// root may lack: a limit TestApply has set serves as well.
	if rttime.set == 0 {
		if err := raiseRTTime(2 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTTIME, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Max // as the kernel leaves it after a SIGXCPU or two
	if err := unix.Setrlimit(unix.RLIMIT_RTTIME, &rl); err != nil {
		t.Fatal(err)
	}
	if err := RearmRTTimeWarning(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_RTTIME, &rl); err != nil || rl.Cur != rl.Max/2 {
		t.Errorf("RLIMIT_RTTIME %+v (%v), want the soft limit at half the hard", rl, err)
	}
}

// TestRefusedNamesTheFix: a refusal says what would permit it, and stays
// an EPERM for callers that branch on it.
func TestRefusedNamesTheFix(t *testing.T) {
	err := hint(unix.EPERM, "CAP_SYS_NICE")
	if !errors.Is(err, unix.EPERM) || err.Error() != "operation not permitted (needs CAP_SYS_NICE)" {
		t.Errorf("hint: %v", err)
	}
	if err := hint(unix.EINVAL, "x"); err != unix.EINVAL {
		t.Errorf("hint changed another error: %v", err)
	}
}

// TestLockMemory: the process's pages are locked (VmLck in
// /proc/self/status grows from 0).
func TestLockMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_IPC_LOCK) to lock memory")
	}
	if err := LockMemory(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munlockall() })
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmLck:" {
			if f[1] == "0" {
				t.Errorf("after LockMemory: %q", strings.TrimSpace(line))
			}
			return
		}
	}
	t.Error("no VmLck in /proc/self/status")
}
