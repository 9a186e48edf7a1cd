// Package fdlimit raises and reads RLIMIT_NOFILE, the file descriptors a
// process may hold: the daemon sizes its listeners and its health checks
// from it, so that a flood of one cannot starve the others.
package fdlimit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Raise raises RLIMIT_NOFILE as far as this process may and returns the
// limits before and after. Go's runtime already raises the soft limit to
// the hard one at start; as root (CAP_SYS_RESOURCE) the hard limit goes up
// to the kernel's ceiling, fs.nr_open. Without that capability the soft
// limit is raised to the hard one.
func Raise() (before, after syscall.Rlimit, err error) {
	if err = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		return before, before, err
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && ceiling > before.Max {
			up := syscall.Rlimit{Cur: ceiling, Max: ceiling}
			if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
				return before, up, nil
			}
		}
	}
	after = syscall.Rlimit{Cur: before.Max, Max: before.Max}
	if before.Cur < before.Max {
		if err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &after); err != nil {
			return before, before, err
		}
	}
	return before, after, nil
}

// Current is the soft RLIMIT_NOFILE in force.
func Current() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
