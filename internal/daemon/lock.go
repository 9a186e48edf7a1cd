package daemon

import (
	"os"
	"path/filepath"

	"tandem/internal/nslock"
)

// lockNamespace takes the lock of this network namespace's Tandem for
// opts, recording what runs and where for a refused second run's message.
func lockNamespace(opts Options) (unlock func(), err error) {
	path, err := nslock.Current(nslock.Dir)
	if err != nil {
		return nil, err
	}
	h := nslock.Holder{PID: os.Getpid(), Config: opts.ConfigFile, Socket: opts.Socket}
	if abs, err := filepath.Abs(h.Config); err == nil {
		h.Config = abs
	}
	if abs, err := filepath.Abs(h.Socket); err == nil {
		h.Socket = abs
	}
	return nslock.Lock(path, h)
}
