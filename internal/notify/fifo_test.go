package notify

import (
	"bufio"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
	"tandem/internal/script"
)

// fifoReader opens path for reading and returns a function that reads n
// lines, failing the test after waitLimit.
func fifoReader(t *testing.T, path string) func(n int) []string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r := bufio.NewReader(f)
	return func(n int) []string {
		t.Helper()
		if err := f.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
			t.Fatal(err)
		}
		var out []string
		for range n {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: after %q: %v", path, out, err)
			}
			out = append(out, l)
		}
		return out
	}
}

func testUsers() *script.Users { return script.NewUsers(&config.Global{}, nil) }

// TestFIFOLines: each FIFO gets keepalived's lines (vrrp_notify.c
// notify_fifo, ipwrapper.c notify_fifo_rs/notify_fifo_vs), exactly:
// notify_fifo every line, vrrp_notify_fifo the VRRP ones and
// lvs_notify_fifo the checker's, in the order they happened.
func TestFIFOLines(t *testing.T) {
	dir := t.TempDir()
	o := &config.Ops{
		NotifyFIFO:     config.FIFO{Path: filepath.Join(dir, "all")},
		VRRPNotifyFIFO: config.FIFO{Path: filepath.Join(dir, "vrrp")},
		LVSNotifyFIFO:  config.FIFO{Path: filepath.Join(dir, "lvs")},
	}
	s, err := OpenFIFOs(o, testUsers(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, vrrp, lvs := fifoReader(t, o.NotifyFIFO.Path), fifoReader(t, o.VRRPNotifyFIFO.Path), fifoReader(t, o.LVSNotifyFIFO.Path)

	vi := &config.Instance{Name: "VI_1"}
	vs := &config.VirtualServer{IP: netip.MustParseAddr("192.168.201.15"), Port: 80, Protocol: config.TCP}
	rs := &config.RealServer{IP: netip.MustParseAddr("1.2.3.4"), Port: 8080}
	s.Instance(vi, Backup, 100)
	s.Instance(vi, Master, 100)
	s.Group("G", Master)
	s.Priority("VI_1", MasterPriority, 90)
	s.MasterRxLowerPri("VI_1", 90)
	s.RealServer(vs, rs, false)
	s.VirtualServer(vs, false)
	s.RealServer(vs, rs, true)
	s.VirtualServer(vs, true)
	s.Instance(vi, Deleted, 0) // no notify_deleted: FAULT
	wantVRRP := []string{
		"INSTANCE \"VI_1\" BACKUP 100\n",
		"INSTANCE \"VI_1\" MASTER 100\n",
		"GROUP \"G\" MASTER 0\n",
		"INSTANCE \"VI_1\" MASTER_PRIORITY 90\n",
		"INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 90\n",
	}
	wantLVS := []string{
		"RS [1.2.3.4]:tcp:8080 [192.168.201.15]:tcp:80 DOWN\n",
		"VS [192.168.201.15]:tcp:80 DOWN\n",
		"RS [1.2.3.4]:tcp:8080 [192.168.201.15]:tcp:80 UP\n",
		"VS [192.168.201.15]:tcp:80 UP\n",
	}
	fault := "INSTANCE \"VI_1\" FAULT 0\n"
	wantAll := append(append(append([]string{}, wantVRRP...), wantLVS...), fault)
	if d := cmp.Diff(wantAll, all(len(wantAll))); d != "" {
		t.Errorf("notify_fifo (-want +got):\n%s", d)
	}
	if d := cmp.Diff(append(wantVRRP, fault), vrrp(len(wantVRRP)+1)); d != "" {
		t.Errorf("vrrp_notify_fifo (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantLVS, lvs(len(wantLVS))); d != "" {
		t.Errorf("lvs_notify_fifo (-want +got):\n%s", d)
	}
}

// TestFIFONobodyReads: with no reader, writing never blocks: once the
// pipe's buffer is full, lines are dropped and counted; a reader that
// comes then gets what the buffer held, and writing goes on.
func TestFIFONobodyReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFIFO("vrrp_notify_fifo", &config.FIFO{Path: path}, testUsers(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := "INSTANCE \"VI_1\" BACKUP 100\n"
	const n = 10000 // 270 kB, four times a default pipe buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			f.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Write blocked on a FIFO nobody reads")
	}
	dropped := f.Dropped()
	if dropped == 0 || dropped >= n {
		t.Fatalf("dropped %d of %d lines; want some dropped, some kept", dropped, n)
	}
	read := fifoReader(t, path)
	kept := read(int(n - dropped))
	if kept[0] != line || kept[len(kept)-1] != line {
		t.Fatalf("read back %q ... %q", kept[0], kept[len(kept)-1])
	}
	f.Write("INSTANCE \"VI_1\" MASTER 100\n")
	if got := read(1)[0]; got != "INSTANCE \"VI_1\" MASTER 100\n" || f.Dropped() != 0 {
		t.Fatalf("after draining: read %q, dropped %d", got, f.Dropped())
	}
}

// TestFIFOPathNotAFIFO: a regular file (or a directory) where the FIFO
// should be is refused with a message saying so, and left as it was.
func TestFIFOPathNotAFIFO(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, kind string }{{file, "regular file"}, {dir, "directory"}} {
		_, err := OpenFIFO("notify_fifo", &config.FIFO{Path: c.path}, testUsers(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "notify_fifo: "+c.path+" exists and is not a FIFO (it is a "+c.kind+")") {
			t.Errorf("%s: err %v", c.path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me\n" {
		t.Errorf("file changed: %q, %v", b, err)
	}
	missing := filepath.Join(dir, "nodir", "f")
	if err := CheckFIFOPath(missing); err == nil || !strings.Contains(err.Error(), "cannot create "+missing) {
		t.Errorf("%s in a missing directory: %v", missing, err)
	}
}

// TestFIFOCreateAndRemove: a FIFO Tandem creates has keepalived's mode
// (0644 less the umask) and is removed at Close; one that existed stays.
func TestFIFOCreateAndRemove(t *testing.T) {
	dir := t.TempDir()
	created := filepath.Join(dir, "created")
	f, err := OpenFIFO("notify_fifo", &config.FIFO{Path: created}, testUsers(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(created)
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	syscall.Umask(old)
	if st.Mode()&fs.ModeNamedPipe == 0 || st.Mode().Perm() != fs.FileMode(0o644&^old) {
		t.Errorf("created %v, want a FIFO of mode %o", st.Mode(), 0o644&^old)
	}
	f.Close()
	if _, err := os.Lstat(created); !os.IsNotExist(err) {
		t.Errorf("created FIFO not removed at Close: %v", err)
	}

	existing := filepath.Join(dir, "existing")
	if err := syscall.Mkfifo(existing, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = OpenFIFO("notify_fifo", &config.FIFO{Path: existing}, testUsers(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.Lstat(existing); err != nil {
		t.Errorf("existing FIFO removed at Close: %v", err)
	}
}

// TestFIFOScript: the FIFO's script is started with the FIFO's path as its
// last argument, reads what Tandem writes, and is stopped at Close.
func TestFIFOScript(t *testing.T) {
	dir := t.TempDir()
	path, out := filepath.Join(dir, "fifo"), filepath.Join(dir, "out")
	// The script copies the FIFO ($1, the appended path) to out.
	argv := []string{"/bin/sh", "-c", `exec cat "$1" > ` + out, "reader"}
	f, err := OpenFIFO("vrrp_notify_fifo", &config.FIFO{Path: path, Script: argv}, testUsers(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := &FIFOs{vrrp: f}
	s.Instance(&config.Instance{Name: "VI_1"}, Master, 100)
	want := "INSTANCE \"VI_1\" MASTER 100\n"
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(out)
		if string(b) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("script wrote %q, want %q", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close() // waits for the script to end
}

// TestFIFOOwner: a FIFO Tandem creates belongs to the user and group its
// keyword names (notify_fifo PATH USER GROUP), as keepalived chowns it.
func TestFIFOOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	users := testUsers()
	cred, err := users.Credential("nobody", "")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFIFO("notify_fifo", &config.FIFO{Path: path, User: "nobody"}, users, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != cred.Uid || sys.Gid != cred.Gid {
		t.Errorf("FIFO owned by %d:%d, want nobody's %d:%d", sys.Uid, sys.Gid, cred.Uid, cred.Gid)
	}
}
