// Package nslock keeps one Tandem per network namespace. Two Tandems in
// one namespace would fight over the same addresses and data-plane tables
// (and the second's crash clean-up removes the first's VIPs), whatever
// their sockets and configurations: so the namespace is the key, and the
// lock is an exclusive flock(2) on Dir/netns-INODE.lock, which the kernel
// releases when the process ends, however it ends.
package nslock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dir holds the locks.
const Dir = "/run/tandem"

// Holder is what a lock file records about the Tandem holding it.
type Holder struct {
	PID    int    `json:"pid"`
	Config string `json:"config"`
	Socket string `json:"socket"`
}

// HeldError is a lock held by another process: a Tandem already runs in
// this network namespace.
type HeldError struct {
	Path   string
	Holder Holder // zero if the holder had not written it yet
}

func (e *HeldError) Error() string {
	if e.Holder.PID == 0 {
		return fmt.Sprintf("another tandem runs in this network namespace (it holds %s); stop it first", e.Path)
	}
	return fmt.Sprintf("another tandem (pid %d, config %s, socket %s) runs in this network namespace (it holds %s); stop it first",
		e.Holder.PID, e.Holder.Config, e.Holder.Socket, e.Path)
}

// Path is the lock of the network namespace with inode ino (which
// identifies it for as long as it exists) under dir.
func Path(dir string, ino uint64) string {
	return filepath.Join(dir, fmt.Sprintf("netns-%d.lock", ino))
}

// Current is the lock of the network namespace this process runs in.
func Current(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return Path(dir, st.Ino), nil
}

// Lock takes the exclusive lock at path and records h in it; unlock
// removes the file and releases the lock. If another process holds it,
// Lock returns a *HeldError saying who.
func Lock(path string, h Holder) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, lockError(path, err)
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, lockError(path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				he := &HeldError{Path: path}
				// Empty or half-written if the holder is just starting:
				// then the error says less.
				b, _ := io.ReadAll(io.LimitReader(f, 4096))
				_ = json.Unmarshal(b, &he.Holder)
				return nil, he
			}
			return nil, lockError(path, err)
		}
		// A holder that was exiting may have removed the file between our
		// open and our flock: then we hold a lock on a file nobody else
		// will open. Hold the one at the path, or try again.
		if same, err := samePath(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, lockError(path, err)
			}
			continue
		}
		b, _ := json.Marshal(h)
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, lockError(path, err)
		}
		if _, err := f.WriteAt(append(b, '\n'), 0); err != nil {
			f.Close()
			return nil, lockError(path, err)
		}
		return func() {
			// Removed while still locked, so that nobody locks this inode
			// and believes they hold the path (see samePath).
			os.Remove(path)
			f.Close()
		}, nil
	}
}

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

func lockError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err // the path is said once
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("lock %s: %w: tandem runs as root (or with write access to %s)", path, err, filepath.Dir(path))
	}
	return fmt.Errorf("lock %s: %w", path, err)
}
