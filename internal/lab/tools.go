package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// BuildTandem builds the tandem binary into dir, for the tests and
// benchmarks that run it in lab nodes.
func BuildTandem(dir string) (string, error) {
	bin := filepath.Join(dir, "tandem")
	if out, err := exec.Command("go", "build", "-o", bin, "tandem/cmd/tandem").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tandem: %w\n%s", err, out)
	}
	return bin, nil
}

// Renice sets the nice value of every thread of this process; threads
// and processes started later inherit it from the thread that makes them,
// daemons in a lab included. (Linux keeps a nice value per thread, so
// setpriority(PRIO_PROCESS, 0) alone would change only the calling one.)
// The benchmarks use it so that a loaded machine delays their daemons'
// timers less.
func Renice(prio int) error {
	for range 2 { // again for threads created while the first pass ran
		tids, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, prio); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("renice thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
