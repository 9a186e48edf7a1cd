package check

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/script"
)

func miscChecker(t *testing.T, m config.MiscCheck) Checker {
	t.Helper()
	return checker(t, config.CheckMisc, "", func(c *config.Checker) { c.Misc = &m })
}

func TestMisc(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		args       []string
		dynamic    bool
		ok         bool
		wantErr    string
		wantWeight *int
	}{
		{name: "exit 0", body: "exit 0", ok: true},
		{name: "exit 1", body: "exit 1", wantErr: "exited with status 1"},
		{name: "exit 7 without misc_dynamic", body: "exit 7", wantErr: "exited with status 7"},
		{name: "dynamic exit 0 keeps the weight", body: "exit 0", dynamic: true, ok: true},
		{name: "dynamic exit 1 is down", body: "exit 1", dynamic: true, wantErr: "exited with status 1"},
		{name: "dynamic exit 2 is weight 0", body: "exit 2", dynamic: true, ok: true, wantWeight: ptr(0)},
		{name: "dynamic exit 255 is weight 253", body: "exit 255", dynamic: true, ok: true, wantWeight: ptr(253)},
		{name: "arguments without a shell", body: `[ "$1" = "a b" ] && [ "$2" = '$HOME' ]`, args: []string{"a b", "$HOME"}, ok: true},
		{name: "killed by a signal", body: "kill -KILL $$", wantErr: "killed by signal 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := append([]string{lab.WriteScript(t, t.TempDir(), "check.sh", tt.body)}, tt.args...)
			r := expect(t, miscChecker(t, config.MiscCheck{Command: cmd, Timeout: config.Duration(5 * time.Second), Dynamic: tt.dynamic}),
				tt.ok, tt.wantErr, 5*time.Second)
			if (r.Weight == nil) != (tt.wantWeight == nil) || (r.Weight != nil && *r.Weight != *tt.wantWeight) {
				t.Errorf("Weight = %v, want %v", deref(r.Weight), deref(tt.wantWeight))
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		expect(t, miscChecker(t, config.MiscCheck{Command: []string{filepath.Join(t.TempDir(), "nope")}, Timeout: config.Duration(time.Second)}),
			false, "no such file", time.Second)
	})
}

func ptr(n int) *int { return &n }

func deref(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}

// TestMiscTimeoutKillsGroup: a hung script and the child it started are
// both gone after misc_timeout; one that ignores SIGTERM is killed after
// script.KillGrace.
func TestMiscTimeoutKillsGroup(t *testing.T) {
	tests := []struct {
		name  string
		trap  string
		limit time.Duration
	}{
		{name: "SIGTERM", limit: 2 * time.Second},
		{name: "SIGTERM ignored", trap: "trap '' TERM", limit: 300*time.Millisecond + script.KillGrace + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			body := tt.trap + "\nsleep 1000 &\necho $$ $! > " + pids + "\nwait\n"
			ck := miscChecker(t, config.MiscCheck{Command: []string{lab.WriteScript(t, t.TempDir(), "check.sh", body)}, Timeout: config.Duration(300 * time.Millisecond)})
			expect(t, ck, false, "timed out after 300ms", tt.limit)
			b, err := os.ReadFile(pids)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				if lab.Alive(pid, time.Second) {
					t.Errorf("process %d still alive after the timeout", pid)
				}
			}
		})
	}
}

func TestMiscContextCancel(t *testing.T) {
	ck := miscChecker(t, config.MiscCheck{Command: []string{lab.WriteScript(t, t.TempDir(), "check.sh", "sleep 1000")}, Timeout: config.Duration(time.Minute)})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if r := ck.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "deadline exceeded") {
		t.Errorf("result %+v", r)
	}
}
