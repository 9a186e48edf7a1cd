package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"tandem/internal/lab"
)

// nftTables lists node's nftables tables and their chains, one line per
// table, to compare before and after.
func nftTables(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	var lines []string
	if err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		chains, err := c.ListChains()
		if err != nil {
			return err
		}
		byTable := map[string][]string{}
		for _, ch := range chains {
			k := fmt.Sprintf("family %d table %s:", ch.Table.Family, ch.Table.Name)
			byTable[k] = append(byTable[k], ch.Name)
		}
		for k, cs := range byTable {
			sort.Strings(cs)
			lines = append(lines, k+" "+strings.Join(cs, " "))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestSecondRunChangesNothing: while a master holds the VIP and forwards
// through its nftables table, a second `tandem run` in the same network
// namespace, with the same socket or with one of its own, is refused with
// a message saying what runs there, and changes nothing: the VIP stays,
// the tables stay, the first stays MASTER and clients are still served.
func TestSecondRunChangesNothing(t *testing.T) {
	l := lab.NewT(t, lab.Seed004().Spec())
	vip := netip.MustParseAddr("172.16.0.30")
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	// seed004's master (lab.Seed004's layout), with quick checks.
	conf := writeConf(t, "dir1.conf", `vrrp_instance VI_1 {
    state MASTER
    interface enp0s3
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        172.16.0.30/24
    }
}
virtual_server 172.16.0.30 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 172.16.0.31 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 172.16.0.32 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`)
	m := startTandem(t, l, "dir1", conf, "--dataplane", "nft")
	waitFor(t, "dir1 MASTER", 15*time.Second, func() bool { return m.state("VI_1") == "MASTER" })
	const vs = "172.16.0.30:80"
	waitFor(t, "both real servers healthy", 15*time.Second, func() bool {
		return m.healthy(vs, "172.16.0.31") && m.healthy(vs, "172.16.0.32")
	})
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	tables := nftTables(t, l, "dir1")
	if !strings.Contains(tables, "table tandem") {
		t.Fatalf("dir1 has no tandem nftables table to protect:\n%s", tables)
	}
	want := fmt.Sprintf("tandem: another tandem (pid %d, config %s, socket %s) runs in this network namespace", m.proc.Pid(), conf, m.socket)
	for _, c := range []struct{ name, socket string }{
		{"same socket", m.socket},
		{"own socket", filepath.Join(t.TempDir(), "second.sock")},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := l.Command(ctx, "dir1", tandemBin, "run", "-f", conf, "--socket", c.socket, "--dataplane", "nft", "--log-format", "text")
			// A second run that is not refused is stopped as an operator
			// would stop it, so that it does what its exit does.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 10 * time.Second
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("second run: %v (timed out: %v), want exit status 1 at once; output:\n%s", err, ctx.Err() != nil, out)
			}
			if !strings.Contains(string(out), want) {
				t.Errorf("second run says:\n%s\nwant a line starting %q", out, want)
			}
			if !holds(t, l, "dir1", "enp0s3", vip) {
				t.Errorf("dir1 lost the VIP %s", vip)
			}
			if got := nftTables(t, l, "dir1"); got != tables {
				t.Errorf("dir1's nftables tables changed:\n%s\nwant\n%s", got, tables)
			}
			if st := m.state("VI_1"); st != "MASTER" {
				t.Errorf("the first tandem is %s, want MASTER", st)
			}
			if _, err := get(l, target); err != nil {
				t.Errorf("client not served through the VIP: %v", err)
			}
			select {
			case <-m.proc.Done():
				t.Fatalf("the first tandem exited: %v\n%s", m.proc.Wait(), m.proc.Output())
			default:
			}
		})
	}
}
