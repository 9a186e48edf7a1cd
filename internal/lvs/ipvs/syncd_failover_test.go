package ipvs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// syncConf is a director of the failover test: VRRP for the VIP, the sync
// daemon following the instance, and the DR service.
const syncConf = `global_defs {
  lvs_sync_daemon eth0 VI_1 id 7
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 1
  virtual_ipaddress {
    172.16.7.5/32
  }
}
virtual_server 172.16.7.5 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 172.16.7.3 80 {
    weight 1
  }
  real_server 172.16.7.4 80 {
    weight 1
  }
}
`

// TestSyncDaemonFailover is lvs_sync_daemon end to end: two tandems, the
// master's sync daemon following VRRP, a client connection through the
// master that survives the master's stop because the backup, now master,
// already has it in its connection table.
func TestSyncDaemonFailover(t *testing.T) {
	requireIPVS(t)
	bin := os.Getenv("TANDEM_BIN")
	if bin == "" {
		t.Skip("TANDEM_BIN is not set (test/vm sets it to the tandem binary in the guest)")
	}
	y := lab.Seed000()
	l := lab.NewT(t, y.Spec())
	vip := netip.AddrPortFrom(y.VIPs[0], 80)
	for _, r := range y.Reals {
		run(t, l, r.Name, "ip", "addr", "add", netip.PrefixFrom(y.VIPs[0], 32).String(), "dev", "lo")
		// Says its name, then echoes lines: a reply after the failover
		// shows the connection still reaches its server.
		stop, err := l.Serve(r.Name, ":80", func(c net.Conn) {
			c.SetDeadline(time.Now().Add(60 * time.Second))
			fmt.Fprintf(c, "%s\n", r.Name)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "%s\n", sc.Text())
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	dir := t.TempDir()
	type director struct {
		node string
		proc *lab.Proc
		sock string
	}
	start := func(node string, prio int) *director {
		conf := filepath.Join(dir, node+".conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, syncConf, prio), 0o644); err != nil {
			t.Fatal(err)
		}
		d := &director{node: node, sock: filepath.Join(dir, node+".sock")}
		p, err := l.Start(node, bin, "run", "-f", conf, "--socket", d.sock, "--dataplane", "ipvs", "--log-format", "text")
		if err != nil {
			t.Fatal(err)
		}
		d.proc = p
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s's output:\n%s", node, p.Output())
			}
		})
		return d
	}
	status := func(d *director) (api.Status, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return api.Fetch(ctx, d.sock)
	}
	// waitState waits until d's instance is in state and the kernel runs
	// exactly the sync daemon want, as tandem status reports them.
	waitState := func(d *director, state, want string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			st, err := status(d)
			if err != nil {
				last = err.Error()
				continue
			}
			last = fmt.Sprintf("%+v %+v", st.Instances, st.SyncDaemon)
			if len(st.Instances) == 1 && st.Instances[0].State == state && st.SyncDaemon != nil &&
				slices.Equal(st.SyncDaemon.Running, []string{want}) && st.SyncDaemon.Error == "" {
				return
			}
		}
		t.Fatalf("%s: no %s with the %s sync daemon; last status: %s", d.node, state, want, last)
	}
	stop := func(d *director) { stopTandem(t, d.node, d.proc) }
	d1 := start("dir1", 150)
	d2 := start("dir2", 100)
	waitState(d1, "MASTER", "master")
	waitState(d2, "BACKUP", "backup")

	c, who, err := dial(l, vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := func(line string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
			return err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if got != line+"\n" {
			return fmt.Errorf("echo %q, got %q", line, got)
		}
		return nil
	}
	for i := range 3 {
		if err := echo(fmt.Sprint("before ", i)); err != nil {
			t.Fatal(err)
		}
	}
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	synced := false
	for deadline := time.Now().Add(15 * time.Second); !synced && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		synced = slices.ContainsFunc(connTable(t, l, "dir2"), func(e ipvsConn) bool { return e.Client == client })
	}
	if !synced {
		t.Fatalf("dir2 never got %v's connection (to %s): %+v", client, who, connTable(t, l, "dir2"))
	}

	// SIGTERM: dir1 gives up mastership (priority 0) and stops its sync
	// daemon; dir2 takes over and switches to the master daemon.
	stop(d1)
	waitState(d2, "MASTER", "master")
	s1 := newSyncerIn(t, l, "dir1")
	if ds, err := s1.Daemons(); err != nil || len(ds) != 0 {
		t.Errorf("dir1 after its tandem stopped: sync daemons %+v, %v; want none", ds, err)
	}
	// The client's connection goes on through dir2, to the same server.
	// (Without the synced entry, dir2's IPVS would not know it, and its
	// stack, now holding the VIP, would answer with a reset.)
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if lastErr = echo("after the failover"); lastErr == nil {
			break
		}
		if strings.Contains(lastErr.Error(), "reset") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("the connection to %s did not survive the failover: %v; dir2's table: %+v", who, lastErr, connTable(t, l, "dir2"))
	}
	stop(d2)
}

// stopTandem sends SIGTERM and waits for a clean exit, showing where the
// process is stuck (its output, its threads' kernel stacks) if it does not
// exit in time.
func stopTandem(t *testing.T, node string, p *lab.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		var stacks strings.Builder
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stack", p.Pid()))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			fmt.Fprintf(&stacks, "%s:\n%s", f, b)
		}
		t.Fatalf("%s: tandem still running 20 s after SIGTERM; output:\n%s\nkernel stacks:\n%s", node, p.Output(), stacks.String())
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%s: tandem exited: %v\n%s", node, err, p.Output())
	}
}
