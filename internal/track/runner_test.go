package track

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/script"
)

const waitLimit = 10 * time.Second

// runner is any of the trackers.
type runner interface {
	Run(ctx context.Context, out chan<- Update) error
}

// start runs r until the test ends and returns its updates.
func start(t *testing.T, r runner) <-chan Update {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return out
}

func next(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(waitLimit):
		t.Fatal("no update")
	}
	return Update{}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func TestScriptRun(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "ok")
	// The script passes while the flag file exists.
	prog := lab.WriteScript(t, dir, "check.sh", `test -e "$1"`+"\n")
	s, err := NewScript(&config.Script{
		Name: "chk", Command: []string{prog, flag},
		Interval: config.Duration(20 * time.Millisecond), Rise: 2, Fall: 2,
	}, users(t, &config.Global{ScriptUser: currentUser(t)}), lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := start(t, s)
	if u := next(t, ch); u.OK || u.Kind != KindScript || u.Name != "chk" || u.Value != 1 {
		t.Fatalf("first update %+v, want failed with status 1", u)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); !u.OK || u.Value != 0 {
		t.Fatalf("update %+v, want OK", u)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); u.OK {
		t.Fatalf("update %+v, want failed", u)
	}
}

func TestScriptInitFail(t *testing.T) {
	dir := t.TempDir()
	prog := lab.WriteScript(t, dir, "true.sh", "exit 0\n")
	s, err := NewScript(&config.Script{
		Name: "chk", Command: []string{prog}, Interval: config.Duration(20 * time.Millisecond),
		Rise: 2, Fall: 1, InitFail: true,
	}, users(t, &config.Global{ScriptUser: currentUser(t)}), lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := start(t, s)
	if u := next(t, ch); u.OK {
		t.Fatalf("first update %+v, want failed (init_fail)", u)
	}
	if u := next(t, ch); !u.OK {
		t.Fatalf("update %+v, want OK after rise successes", u)
	}
}

// Reconfigure changes a running script's interval and rise without
// restarting it: with an hour's interval it would not run again, and after
// it the failed script needs the new rise successes to be OK.
func TestScriptReconfigure(t *testing.T) {
	dir := t.TempDir()
	flag, runs := filepath.Join(dir, "ok"), filepath.Join(dir, "runs")
	// The script passes while the flag file exists, and logs each result.
	prog := lab.WriteScript(t, dir, "check.sh", `if test -e "$1"; then echo pass >> "$2"; exit 0; fi; echo fail >> "$2"; exit 1`+"\n")
	c := &config.Script{Name: "chk", Command: []string{prog, flag, runs}, Interval: config.Duration(time.Hour), Rise: 1, Fall: 1}
	s, err := NewScript(c, users(t, &config.Global{ScriptUser: currentUser(t)}), lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := start(t, s)
	if u := next(t, ch); u.OK {
		t.Fatalf("first update %+v, want failed", u)
	}
	c2 := *c
	c2.Interval, c2.Rise = config.Duration(10*time.Millisecond), 3
	s.Reconfigure(&c2)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); !u.OK {
		t.Fatalf("update %+v, want OK", u)
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	results := strings.Fields(string(b))
	passes := 0 // the successes since the last failure
	for i := len(results) - 1; i >= 0 && results[i] == "pass"; i-- {
		passes++
	}
	if passes < 3 {
		t.Errorf("OK after %d successes (results %q), want rise 3", passes, results)
	}
}

func TestScriptRefusedUnderSecurity(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	prog := lab.WriteScript(t, dir, "unsafe.sh", "exit 0\n")
	if err := os.Chmod(prog, 0o777); err != nil {
		t.Fatal(err)
	}
	s, err := NewScript(&config.Script{Name: "bad", Command: []string{prog}, Rise: 1, Fall: 1},
		users(t, &config.Global{ScriptUser: "root", EnableScriptSecurity: true}), lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Update, 1)
	err = s.Run(context.Background(), out)
	if !errors.Is(err, script.ErrInsecure) {
		t.Fatalf("Run error %v, want ErrInsecure", err)
	}
	if u := <-out; u.OK || !errors.Is(u.Err, script.ErrInsecure) {
		t.Errorf("update %+v, want failed with ErrInsecure", u)
	}
}

func users(t *testing.T, g *config.Global) *script.Users {
	return script.NewUsers(g, lab.TestLogger(t))
}

func currentUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestInitFile(t *testing.T) {
	dir := t.TempDir()
	v := func(n int) *int { return &n }
	tests := []struct {
		name      string
		existing  string // "" = no file
		init      *int
		overwrite bool
		want      string
	}{
		{"creates", "", v(5), false, "5\n"},
		{"keeps existing", "3\n", v(5), false, "3\n"},
		{"overwrites", "3\n", v(-2), true, "-2\n"},
		{"no init_file", "3\n", nil, true, "3\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strconv.Itoa(i))
			if tt.existing != "" {
				if err := os.WriteFile(p, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := InitFile(&config.TrackFile{Name: "f", File: p, InitFile: tt.init, InitOverwrite: tt.overwrite}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			if string(b) != tt.want {
				t.Errorf("file holds %q, want %q", b, tt.want)
			}
		})
	}
	if err := InitFile(&config.TrackFile{Name: "f", File: dir, InitFile: v(1), InitOverwrite: true}); err == nil {
		t.Error("InitFile overwrote a directory")
	}
}

func TestFileRun(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "prio")
	if err := os.WriteFile(p, []byte("5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(&config.TrackFile{Name: "tf", File: p}, lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := start(t, f)
	want := func(v int) {
		t.Helper()
		if u := next(t, ch); u.Kind != KindFile || u.Name != "tf" || u.Value != v || u.OK != (v == 0) {
			t.Fatalf("update %+v, want value %d", u, v)
		}
	}
	want(5)
	// Rewritten in place.
	if err := os.WriteFile(p, []byte("-7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(-7)
	// Replaced by rename, as editors and atomic writers do.
	tmp := filepath.Join(dir, "prio.tmp")
	if err := os.WriteFile(tmp, []byte("0x10"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	want(16)
	// Other files in the directory are not ours.
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("9"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Deleted: 0.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	want(0)
	if err := os.WriteFile(p, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(2)
}

func TestFileThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(realDir, "prio")
	if err := os.WriteFile(target, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "prio")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(&config.TrackFile{Name: "tf", File: link}, lab.TestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := start(t, f)
	if u := next(t, ch); u.Value != 1 {
		t.Fatalf("update %+v, want value 1", u)
	}
	// A write to the target is seen through the link.
	if err := os.WriteFile(target, []byte("4"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); u.Value != 4 {
		t.Fatalf("update %+v, want value 4", u)
	}
}

func TestFileMissingDirectory(t *testing.T) {
	if _, err := NewFile(&config.TrackFile{Name: "tf", File: filepath.Join(t.TempDir(), "no", "f")}, lab.TestLogger(t)); err == nil {
		t.Error("NewFile accepted a file in a missing directory")
	}
}

var uniq atomic.Int64

// uniqueName is prefix + pid + counter, so that parallel test runs on one
// host never collide.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d%d", prefix, os.Getpid(), uniq.Add(1))
}

func startSleep(t *testing.T, arg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", arg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func TestProcessRun(t *testing.T) {
	// A sleep whose argument no other process on the host has.
	arg := fmt.Sprintf("3600.%d%d", os.Getpid(), uniq.Add(1))
	p := NewProcess(&config.TrackProcess{Name: "tp", Process: "sleep", Params: []string{arg}, Quorum: 1, QuorumMax: 1},
		10*time.Millisecond, lab.TestLogger(t))
	ch := start(t, p)
	if u := next(t, ch); u.OK || u.Value != 0 || u.Kind != KindProcess || u.Name != "tp" {
		t.Fatalf("first update %+v, want down with 0 processes", u)
	}
	first := startSleep(t, arg)
	if u := next(t, ch); !u.OK || u.Value != 1 {
		t.Fatalf("update %+v, want up with 1 process", u)
	}
	second := startSleep(t, arg)
	if u := next(t, ch); u.OK || u.Value != 2 {
		t.Fatalf("update %+v, want down with 2 processes (quorum_max 1)", u)
	}
	second.Process.Kill()
	second.Wait()
	if u := next(t, ch); !u.OK || u.Value != 1 {
		t.Fatalf("update %+v, want up again", u)
	}
	first.Process.Kill()
	first.Wait()
	if u := next(t, ch); u.OK || u.Value != 0 {
		t.Fatalf("update %+v, want down", u)
	}
}

func TestProcessRunTerminateDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	arg := fmt.Sprintf("3600.%d%d", os.Getpid(), uniq.Add(1))
	first := startSleep(t, arg)
	p := NewProcess(&config.TrackProcess{Name: "tp", Process: "sleep", Params: []string{arg}, Quorum: 1,
		TerminateDelay: config.Duration(delay)}, 10*time.Millisecond, lab.TestLogger(t))
	ch := start(t, p)
	if u := next(t, ch); !u.OK {
		t.Fatalf("first update %+v, want up", u)
	}
	// A restart within the delay is not reported.
	first.Process.Kill()
	first.Wait()
	second := startSleep(t, arg)
	select {
	case u := <-ch:
		t.Fatalf("restart within terminate_delay reported: %+v", u)
	case <-time.After(2 * delay):
	}
	// A lasting loss is reported, but not before the delay.
	second.Process.Kill()
	second.Wait()
	lost := time.Now()
	if u := next(t, ch); u.OK {
		t.Fatalf("update %+v, want down", u)
	}
	if d := time.Since(lost); d < delay {
		t.Errorf("loss reported after %v, want at least terminate_delay %v", d, delay)
	}
}

func TestInterfaceAppears(t *testing.T) {
	ns := newTestNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	name := uniqueName("tk")
	ch := start(t, NewInterface(name, &ns, lab.TestLogger(t)))
	if u := next(t, ch); u.OK {
		t.Fatalf("first update %+v, want down (no such interface)", u)
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: uniqueName("tp")}
	if err := h.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.LinkDel(v) })
	peer, err := h.LinkByName(v.PeerName)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{v, peer} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	if u := next(t, ch); !u.OK {
		t.Fatalf("update %+v, want up", u)
	}
}

// newTestNS creates a network namespace for the test and returns a handle
// on it; the calling goroutine's thread is left in its original namespace.
func newTestNS(t *testing.T) netns.NsHandle {
	t.Helper()
	requireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to original namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// addVeth adds a veth pair in h's namespace (the test kernel may lack the
// dummy module). A veth end is running only while its peer is up, which
// lets the test show that "up" means IFF_UP and IFF_RUNNING.
func addVeth(t *testing.T, h *netlink.Handle) (end, peer netlink.Link) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: uniqueName("tk")}, PeerName: uniqueName("tp")}
	if err := h.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.LinkDel(v) })
	p, err := h.LinkByName(v.PeerName)
	if err != nil {
		t.Fatal(err)
	}
	return v, p
}

func TestInterfaceRun(t *testing.T) {
	ns := newTestNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	end, peer := addVeth(t, h)
	name := end.Attrs().Name
	ch := start(t, NewInterface(name, &ns, lab.TestLogger(t)))
	want := func(up bool) {
		t.Helper()
		if u := next(t, ch); u.OK != up || u.Kind != KindInterface || u.Name != name {
			t.Fatalf("update %+v, want up=%v", u, up)
		}
	}
	want(false)
	for i, step := range []struct {
		f      func(netlink.Link) error
		l      netlink.Link
		change bool // whether the step changes the tracked state
		up     bool
	}{
		{h.LinkSetUp, end, false, false}, // administratively up, but no carrier
		{h.LinkSetUp, peer, true, true},  // now running
		{h.LinkSetDown, end, true, false},
		{h.LinkSetUp, end, true, true},
		{h.LinkSetDown, peer, true, false}, // carrier lost
		{h.LinkSetUp, peer, true, true},
		{h.LinkDel, end, true, false},
	} {
		if err := step.f(step.l); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if step.change {
			want(step.up)
		}
	}
}

func TestInterfaceRenamed(t *testing.T) {
	ns := newTestNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	end, peer := addVeth(t, h)
	name := end.Attrs().Name
	for _, l := range []netlink.Link{end, peer} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	ch := start(t, NewInterface(name, &ns, lab.TestLogger(t)))
	if u := next(t, ch); !u.OK {
		t.Fatalf("first update %+v, want up", u)
	}
	// Renamed away: the configured interface is gone.
	if err := h.LinkSetName(end, uniqueName("tr")); errors.Is(err, syscall.EBUSY) {
		t.Skip("this kernel cannot rename an interface that is up")
	} else if err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); u.OK {
		t.Fatalf("update %+v after rename, want down", u)
	}
}

func TestInterfaceCurrentNamespace(t *testing.T) {
	// Read-only: the host's loopback is up and running.
	ch := start(t, NewInterface("lo", nil, lab.TestLogger(t)))
	if u := next(t, ch); !u.OK {
		t.Fatalf("first update %+v, want lo up", u)
	}
}

func TestInterfaceInitiallyUp(t *testing.T) {
	ns := newTestNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	end, peer := addVeth(t, h)
	for _, l := range []netlink.Link{end, peer} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	ch := start(t, NewInterface(end.Attrs().Name, &ns, lab.TestLogger(t)))
	if u := next(t, ch); !u.OK {
		t.Fatalf("first update %+v, want up", u)
	}
}
