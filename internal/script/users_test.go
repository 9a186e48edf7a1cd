package script

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"tandem/internal/config"
	"tandem/internal/lab"
)

func TestCredential(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name        string
		user, group string
		g           config.Global
		want        *syscall.Credential
		wantErr     bool
	}{
		{"script user", "nobody", "", config.Global{ScriptUser: "root"}, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}, false},
		{"global script_user", "", "", config.Global{ScriptUser: "nobody", ScriptGroup: "root"}, &syscall.Credential{Uid: 65534, Gid: 0, Groups: []uint32{}}, false},
		{"ourselves", "root", "", config.Global{}, nil, false},
		{"unknown user", "no-such-user-tandem", "", config.Global{}, nil, true},
		{"unknown group", "nobody", "no-such-group-tandem", config.Global{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewUsers(&tt.g, lab.TestLogger(t)).Credential(tt.user, tt.group)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error=%v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("credential %+v, want %+v", got, tt.want)
			}
		})
	}
}

// noDatabase is a user database whose files are missing, as Go's own
// lookup (the static binary's) reports it: "open /etc/passwd".
func noDatabase(lookups *int) accounts {
	return accounts{
		lookupUser: func(string) (*user.User, error) {
			*lookups++
			return nil, &fs.PathError{Op: "open", Path: "/etc/passwd", Err: syscall.ENOENT}
		},
		lookupGroup: func(string) (*user.Group, error) {
			*lookups++
			return nil, &fs.PathError{Op: "open", Path: "/etc/group", Err: syscall.ENOENT}
		},
		groupIDs: func(*user.User) ([]string, error) {
			*lookups++
			return nil, &fs.PathError{Op: "open", Path: "/etc/group", Err: syscall.ENOENT}
		},
	}
}

// TestUsersWithoutDatabase: without /etc/passwd (a root filesystem built
// from scratch) nothing is looked up until a script needs a user; then
// the default keepalived_script does not exist, so scripts run as this
// process (or are refused under enable_script_security), and a user the
// configuration names is a clear error.
func TestUsersWithoutDatabase(t *testing.T) {
	tests := []struct {
		name        string
		g           config.Global
		user, group string
		wantErr     string // "" = runs as this process
	}{
		{name: "default user", g: config.Global{}},
		{name: "default user under enable_script_security", g: config.Global{EnableScriptSecurity: true}, wantErr: "user keepalived_script does not exist"},
		{name: "script_user", g: config.Global{ScriptUser: "scripts"}, wantErr: "script user scripts: user: unknown user scripts"},
		{name: "script's own user", user: "checker", wantErr: "script user checker: user: unknown user checker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups := 0
			u := NewUsers(&tt.g, lab.TestLogger(t))
			u.db = noDatabase(&lookups)
			if lookups != 0 {
				t.Fatalf("%d lookups before any script", lookups)
			}
			for range 2 {
				cred, err := u.Credential(tt.user, tt.group)
				switch {
				case tt.wantErr == "" && (err != nil || cred != nil):
					t.Fatalf("Credential = %+v, %v; want this process's identity", cred, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Fatalf("Credential error %v, want %q", err, tt.wantErr)
				}
			}
			if tt.user == "" && lookups != 1 {
				t.Errorf("%d lookups of the default user for two scripts, want 1", lookups)
			}
		})
	}
}

// TestUsersCommand: the command carries the user's identity and
// enable_script_security, and runs as that user.
func TestUsersCommand(t *testing.T) {
	requireRoot(t)
	// nobody must be able to reach the script and write its output.
	dir, err := os.MkdirTemp("", "tandem-script-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	prog := lab.WriteScript(t, dir, "id.sh", `id -u > "$1"`+"\n")
	outFile := filepath.Join(dir, "uid")
	c, err := NewUsers(&config.Global{ScriptUser: "nobody", EnableScriptSecurity: true}, lab.TestLogger(t)).Command([]string{prog, outFile}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Security {
		t.Error("command lost enable_script_security")
	}
	if res, err := c.Run(context.Background(), waitLimit); err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "65534" {
		t.Errorf("script ran as uid %s, want 65534 (nobody)", got)
	}
	if _, err := NewUsers(&config.Global{}, lab.TestLogger(t)).Command([]string{prog}, "no-such-user-tandem", ""); !errors.As(err, new(user.UnknownUserError)) {
		t.Errorf("Command for an unknown user: error %v, want UnknownUserError", err)
	}
}
