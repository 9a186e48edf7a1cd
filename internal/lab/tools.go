package lab

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BuildTandem builds the tandem binary into dir, for the tests and
// benchmarks that run it in lab nodes. It builds what ships: a static
// binary (CGO_ENABLED=0), which runs where there is no libc and no
// /etc/passwd; go build links libc wherever cgo is available.
func BuildTandem(dir string) (string, error) {
	bin := filepath.Join(dir, "tandem")
	cmd := exec.Command("go", "build", "-o", bin, "tandem/cmd/tandem")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tandem: %w\n%s", err, out)
	}
	return bin, nil
}

// Interpreter returns the ELF program interpreter (the dynamic loader) the
// executable at path asks for, "" for a static binary.
func Interpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("read %s: program interpreter: %w", path, err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
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

// TandemFor is the tandem binary a benchmark runs: bin when given,
// otherwise one BuildTandem builds into a temporary directory, which
// cleanup removes.
func TandemFor(bin string) (path string, cleanup func(), err error) {
	if bin != "" {
		return bin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tandem-bin-")
	if err != nil {
		return "", nil, err
	}
	if path, err = BuildTandem(dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("%w (run from inside the module, or pass -tandem)", err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}
