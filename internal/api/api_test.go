package api

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestListenPathInTheWay: Listen replaces only a stale socket; a regular
// file, a directory, a symbolic link and a live socket at the path are
// refused with an error naming the path and what is there, and are left
// as they were.
func TestListenPathInTheWay(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name string
		// make puts something at path; check says whether it is still
		// there, unchanged.
		make    func(t *testing.T, path string)
		check   func(t *testing.T, path string)
		wantErr string // "" = Listen succeeds
	}{
		{"nothing", func(*testing.T, string) {}, nil, ""},
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("vrrp_instance VI_1 {}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if b, err := os.ReadFile(path); err != nil || string(b) != "vrrp_instance VI_1 {}\n" {
				t.Errorf("the file at %s: %q, %v; want it unchanged", path, b, err)
			}
		}, "there is a regular file there, not a socket"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
				t.Errorf("the directory at %s: %v, %v; want it still there", path, fi, err)
			}
		}, "there is a directory there, not a socket"},
		{"symbolic link", func(t *testing.T, path string) {
			if err := os.Symlink("/etc/passwd", path); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if dst, err := os.Readlink(path); err != nil || dst != "/etc/passwd" {
				t.Errorf("the link at %s: %q, %v; want it unchanged", path, dst, err)
			}
		}, "there is a symbolic link there, not a socket"},
		{"stale socket", func(t *testing.T, path string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false) // what a crash leaves
			ln.Close()
		}, nil, ""},
		{"live socket", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			// The kernel completes connections to a listening socket
			// (its backlog) without an Accept.
			t.Cleanup(func() { ln.Close() })
		}, func(t *testing.T, path string) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Errorf("the live socket at %s no longer answers: %v", path, err)
				return
			}
			c.Close()
		}, "another tandem answers there"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tandem.sock")
			c.make(t, path)
			srv, err := Listen(path, testSource(), log, 8)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				defer srv.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if st, err := Fetch(ctx, path); err != nil || st.Version != "v1.2.3" {
					t.Errorf("Fetch from the new socket: %+v, %v", st, err)
				}
				return
			}
			if err == nil {
				srv.Close()
				t.Fatalf("Listen over a %s: no error", c.name)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q, want it to name %s and say %q", err, path, c.wantErr)
			}
			c.check(t, path)
		})
	}
}

// TestReloadApplied: ReloadApplied returns the time of the first reload
// event after the given time, ignoring older ones and other kinds, and
// gives up with the context when there is none.
func TestReloadApplied(t *testing.T) {
	src := testSource()
	path := listenTest(t, src)
	sent := statusT0.Add(time.Minute)
	src.mu.Lock()
	src.st.Events = []Event{
		{Time: sent.Add(-time.Second), Kind: "reload"},
		{Time: sent.Add(time.Second), Kind: "vrrp"},
	}
	src.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if at, err := ReloadApplied(ctx, path, sent); err == nil {
		t.Errorf("no reload after %v, yet ReloadApplied returned %v", sent, at)
	}
	src.mu.Lock()
	src.st.Events = append(src.st.Events, Event{Time: sent.Add(2 * time.Second), Kind: "reload"})
	src.mu.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if at, err := ReloadApplied(ctx, path, sent); err != nil || !at.Equal(sent.Add(2*time.Second)) {
		t.Errorf("ReloadApplied = %v, %v; want the reload event's time %v", at, err, sent.Add(2*time.Second))
	}
}

// TestHandoverCall: `tandem handover`'s request reaches the daemon as
// sent, the daemon's answer comes back, and a refusal comes back as an
// error carrying the daemon's reason.
func TestHandoverCall(t *testing.T) {
	src := testSource()
	path := listenTest(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := HandoverRequest{Instances: []string{"VI_1"}, To: "10.0.0.2"}
	res, err := Handover(ctx, path, req)
	if err != nil || !slices.Equal(res.Instances, []string{"VI_1"}) {
		t.Fatalf("Handover = %+v, %v", res, err)
	}
	if _, err := Handover(ctx, path, HandoverRequest{Instances: []string{"VI_9"}}); err == nil || !strings.Contains(err.Error(), "no vrrp_instance VI_9 runs here") {
		t.Errorf("refused handover: %v", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.handovers) != 2 || src.handovers[0].To != "10.0.0.2" || !slices.Equal(src.handovers[0].Instances, req.Instances) {
		t.Errorf("the daemon received %+v", src.handovers)
	}
}

// listenTest serves src on a socket of the test's own and returns its
// path; the server is closed when the test ends.
func listenTest(t *testing.T, src *fakeSource) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tandem.sock")
	srv, err := Listen(path, src, slog.New(slog.DiscardHandler), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return path
}

// TestDrainCall: `tandem drain`'s request reaches the daemon as sent, the
// daemon's answer comes back, and a refusal comes back as an error
// carrying the daemon's reason.
func TestDrainCall(t *testing.T) {
	src := testSource()
	path := listenTest(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Drain(ctx, path, DrainRequest{})
	if err != nil || !slices.Equal(res.VIPs, []string{"192.0.2.10"}) {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	if _, err := Drain(ctx, path, DrainRequest{Undo: true}); err == nil || !strings.Contains(err.Error(), "not drained") {
		t.Errorf("refused undo: %v", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if !slices.Equal(src.drains, []DrainRequest{{}, {Undo: true}}) {
		t.Errorf("the daemon received %+v", src.drains)
	}
}
