package daemon

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSdNotify: the states reach the socket systemd names in
// $NOTIFY_SOCKET, one datagram each; without it nothing is sent.
func TestSdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	for _, st := range []string{"READY=1", "RELOADING=1", "STOPPING=1"} {
		if err := sdNotify(st); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if err := l.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := l.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != st {
			t.Errorf("received %q, want %q", got, st)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("without $NOTIFY_SOCKET: %v, want nothing done", err)
	}
}
