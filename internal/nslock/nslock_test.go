package nslock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLock: a second Lock of a held path is refused with the holder's
// record; unlock removes the file and lets the next one in. (flock locks
// belong to open files, so one process can play both Tandems.)
func TestLock(t *testing.T) {
	path := Path(t.TempDir(), 4026531840)
	first := Holder{PID: 1234, Config: "/etc/keepalived/keepalived.conf", Socket: "/run/tandem/tandem.sock"}
	unlock, err := Lock(path, first)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(path, Holder{PID: 99, Config: "/other.conf", Socket: "/other.sock"})
	var he *HeldError
	if !errors.As(err, &he) || he.Holder != first || he.Path != path {
		t.Fatalf("second Lock: %v, want a HeldError naming %+v at %s", err, first, path)
	}
	want := "another tandem (pid 1234, config /etc/keepalived/keepalived.conf, socket /run/tandem/tandem.sock) runs in this network namespace (it holds " + path + "); stop it first"
	if err.Error() != want {
		t.Errorf("message %q\nwant    %q", err, want)
	}
	unlock()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after unlock, %s: %v, want it removed", path, err)
	}
	unlock2, err := Lock(path, Holder{PID: 99})
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

// TestLockHolderStarting: a holder that has not written its record yet
// (an empty file) still refuses, with a shorter message.
func TestLockHolderStarting(t *testing.T) {
	path := Path(t.TempDir(), 1)
	unlock, err := Lock(path, Holder{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err = Lock(path, Holder{PID: 2})
	var he *HeldError
	if !errors.As(err, &he) || !strings.HasPrefix(err.Error(), "another tandem runs in this network namespace (it holds "+path) {
		t.Fatalf("Lock of a held, empty lock: %v", err)
	}
}

// TestLockStaleFile: a lock file left by a process that died (nobody
// holds it) is taken over, and records the new holder.
func TestLockStaleFile(t *testing.T) {
	path := Path(t.TempDir(), 2)
	if err := os.WriteFile(path, []byte(`{"pid":7,"config":"/old.conf","socket":"/old.sock"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock, err := Lock(path, Holder{PID: 8, Config: "/new.conf", Socket: "/new.sock"})
	if err != nil {
		t.Fatalf("Lock over a stale file: %v", err)
	}
	defer unlock()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != `{"pid":8,"config":"/new.conf","socket":"/new.sock"}`+"\n" {
		t.Errorf("lock file holds %q, %v", b, err)
	}
}

// TestLockDirNotWritable: a lock that cannot be created says what to do.
func TestLockDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere; this test needs an unprivileged user")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := Lock(filepath.Join(dir, "netns-1.lock"), Holder{})
	if err == nil || !strings.Contains(err.Error(), "tandem runs as root (or with write access to "+dir+")") {
		t.Errorf("Lock in a read-only directory: %v", err)
	}
}

// TestCurrent: the lock is named after this process's network namespace.
func TestCurrent(t *testing.T) {
	p, err := Current("/run/tandem")
	if err != nil {
		t.Skipf("no /proc/self/ns/net: %v", err)
	}
	ns, err := os.Readlink("/proc/self/ns/net") // net:[INODE]
	if err != nil {
		t.Skip(err)
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(ns, "net:["), "]")
	if p != "/run/tandem/netns-"+ino+".lock" {
		t.Errorf("Current: %s, want /run/tandem/netns-%s.lock", p, ino)
	}
}
