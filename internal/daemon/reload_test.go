package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// reloadChildEnv makes the test binary the child of TestRefusedReloadFreesMemory.
const reloadChildEnv = "TANDEM_TEST_REFUSED_RELOAD"

// A reload of a hostile configuration (16 MiB of one-letter words: 8M
// tokens, refused at the parser's limit of 1M after building that many) is
// refused with an error that says why, and the memory the refused parse
// took goes back to the system: the daemon's RSS must not stay at the
// parse's peak (150 MB was seen). It runs in a child process, so that its
// RSS is this reload's alone.
func TestRefusedReloadFreesMemory(t *testing.T) {
	if conf := os.Getenv(reloadChildEnv); conf != "" {
		refusedReloadChild(conf)
		return
	}
	conf := filepath.Join(t.TempDir(), "hostile.conf")
	if err := os.WriteFile(conf, bytes.Repeat([]byte("a\n"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRefusedReloadFreesMemory$")
	cmd.Env = append(os.Environ(), reloadChildEnv+"="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, len(out)+1) // the error line holds up to 1,000 diagnostics
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			got[k] = v
		}
	}
	if !strings.Contains(got["error"], "more than the limit of 1048576 tokens") {
		t.Errorf("reload error %q; want it to name the token limit\n%s", got["error"], out)
	}
	peak, err1 := strconv.ParseInt(got["peak"], 10, 64)
	rss, err2 := strconv.ParseInt(got["rss"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("child's output: %v\n%s", err, out)
	}
	t.Logf("refused reload: peak RSS %d MB, RSS after %d MB", peak>>20, rss>>20)
	// The test binary alone is well under 40 MB; the parse's peak is
	// several times that (the check that the configuration is hostile
	// enough to mean something).
	const bound = 64 << 20
	if peak < 2*bound {
		t.Fatalf("the refused parse peaked at %d MB: not enough to tell", peak>>20)
	}
	if rss > bound {
		t.Errorf("RSS %d MB after the refused reload, want under %d MB", rss>>20, bound>>20)
	}
}

// refusedReloadChild reloads conf on a daemon that has not started (a
// refused configuration touches nothing else) and prints the error, the
// peak RSS and the RSS after.
func refusedReloadChild(conf string) {
	d := &Daemon{opts: Options{ConfigFile: conf, Log: slog.New(slog.DiscardHandler)}}
	_, err := d.Reload()
	msg := "<nil>"
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", " | ")
	}
	fmt.Printf("error=%s\npeak=%d\nrss=%d\n", msg, procStatus("VmHWM"), procStatus("VmRSS"))
}

// procStatus is a /proc/self/status field in bytes (0 when unreadable).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
