package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestScriptIdentity: a vrrp_script, a notify script and a MISC_CHECK run
// with the same identity and environment (keepalived.conf(5) script_user;
// notify.c system_call_script): as script_user when it is set, else as
// root when keepalived_script does not exist, and never with the
// LD_PRELOAD, LD_LIBRARY_PATH or IFS of the daemon's environment.
func TestScriptIdentity(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	_, defaultExists := user.Lookup("keepalived_script")
	for _, c := range []struct {
		name       string
		scriptUser string // global_defs script_user line; "" = none
		uid, gid   string
		groups     string
	}{
		{"script_user", "script_user nobody nogroup", "65534", "65534", "65534"},
		{"default user missing", "", "0", "0", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.scriptUser == "" && defaultExists == nil {
				t.Skip("user keepalived_script exists here: scripts without a user run as it, not as root")
			}
			// A directory nobody can reach: the script in a root-owned
			// one, the records in one anybody can write.
			dir, err := os.MkdirTemp("", "tandem-e2e-scripts-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			out := filepath.Join(dir, "out")
			for d, mode := range map[string]os.FileMode{dir: 0o755, out: 0o777} {
				if err := os.MkdirAll(d, mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, mode); err != nil {
					t.Fatal(err)
				}
			}
			record := writeScript(t, dir, "record.sh", fmt.Sprintf(`#!/bin/sh
f=%s/$1
{ id -u; id -g; id -G; env | sort; } > "$f.tmp" && mv -f "$f.tmp" "$f"
`, out))
			l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
				{Name: "d1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24")}}}},
			}})
			conf := writeConf(t, "scripts.conf", fmt.Sprintf(`global_defs {
    router_id d1
    %s
}
vrrp_script chk {
    script "%[2]s track"
    interval 1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    notify_master "%[2]s notify"
    track_script {
        chk
    }
    virtual_ipaddress {
        10.77.0.100/24
    }
}
virtual_server 10.77.0.100 80 {
    delay_loop 1
    lb_kind DR
    protocol TCP
    real_server 10.77.0.2 80 {
        MISC_CHECK {
            misc_path "%[2]s misc"
            misc_timeout 5
        }
    }
}
`, c.scriptUser, record))
			startTandemVia(t, l, "d1", conf,
				[]string{"env", "LD_PRELOAD=/nonexistent/tandem-e2e.so", "LD_LIBRARY_PATH=/nonexistent/tandem-e2e", "IFS=x"},
				"--dataplane", "none")
			records := map[string]string{}
			kinds := []string{"track", "notify", "misc"}
			waitFor(t, "a record from every kind of script", 30*time.Second, func() bool {
				for _, k := range kinds {
					if b, err := os.ReadFile(filepath.Join(out, k)); err == nil {
						records[k] = string(b)
					}
				}
				return len(records) == len(kinds)
			})
			for _, k := range kinds {
				lines := strings.Split(records[k], "\n")
				if len(lines) < 3 || lines[0] != c.uid || lines[1] != c.gid || (c.groups != "" && lines[2] != c.groups) {
					t.Errorf("%s script ran as uid %q gid %q groups %q, want %s %s %q", k, lines[0], lines[1], lines[2], c.uid, c.gid, c.groups)
				}
				for _, name := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "IFS"} {
					if strings.Contains(records[k], "\n"+name+"=") {
						t.Errorf("%s script's environment has %s", k, name)
					}
				}
				if records[k] != records["track"] {
					t.Errorf("%s script's identity and environment differ from the track script's:\n%s\nvs\n%s", k, records[k], records["track"])
				}
			}
		})
	}
}
