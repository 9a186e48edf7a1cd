package daemon

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"tandem/internal/notify"
)

// TestUmask: the configuration's umask is the process's once it is loaded
// (keepalived's default 022 without the keyword), and the files Tandem
// creates, a notify FIFO here, get their modes through it.
func TestUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	for _, c := range []struct {
		conf string
		want int
		mode fs.FileMode // of a notify FIFO (created 0644)
	}{
		{"umask IWGRP|IRWXO\n", 0o027, 0o640},
		{"umask 0\n", 0, 0o644},
		{"", 0o022, 0o644},
	} {
		fifo := filepath.Join(dir, "f")
		conf := filepath.Join(dir, "k.conf")
		if err := os.WriteFile(conf, []byte("global_defs {\n"+c.conf+"vrrp_notify_fifo "+fifo+"\n}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := load(Options{ConfigFile: conf, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if got := syscall.Umask(0o077); got != c.want {
			t.Errorf("%q: umask %#o, want %#o", c.conf, got, c.want)
		}
		syscall.Umask(c.want)
		fifos, err := notify.OpenFIFOs(&d.cfg.Global.Ops, d.fx.users, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(fifo)
		fifos.Close()
		if err != nil || st.Mode().Perm() != c.mode {
			t.Errorf("%q: FIFO %v, %v; want mode %v", c.conf, st.Mode(), err, c.mode)
		}
	}
}
