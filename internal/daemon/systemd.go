package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tandem/internal/api"
)

// sdNotify tells systemd about the daemon's state (sd_notify(3)): READY=1
// once it runs (the unit's Type=notify), RELOADING=1 and READY=1 around a
// reload, STOPPING=1 at shutdown. Without $NOTIFY_SOCKET it does nothing.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}

// Where keepalived writes its signal dumps (keepalived.conf(5),
// tmp_config_directory, default /tmp), so that tooling reading them keeps
// working: SIGUSR1 the state, SIGUSR2 the statistics, SIGRTMIN+2 (its
// SIGJSON) the state as JSON.
const (
	dumpData  = "keepalived.data"
	dumpStats = "keepalived.stats"
	dumpJSON  = "keepalived.json"
)

// dump writes the file keepalived writes for the signal.
func (d *Daemon) dump(dir, name string) error {
	st := d.Status()
	var b strings.Builder
	switch name {
	case dumpData:
		fmt.Fprintf(&b, "------< Tandem state, %s >------\n", time.Now().Format(time.RFC3339))
		if err := api.WriteText(&b, st, time.Now()); err != nil {
			return err
		}
	case dumpStats:
		for _, in := range st.Instances {
			fmt.Fprintf(&b, "VRRP Instance: %s\n  Advertisements:\n    Received: %d\n    Sent: %d\n  Became master: transitions %d\n  Packet errors:\n",
				in.Name, in.AdvertsReceived, in.AdvertsSent, in.Transitions)
			for reason, n := range in.Dropped {
				fmt.Fprintf(&b, "    %s: %d\n", reason, n)
			}
		}
	case dumpJSON:
		j, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
}
