package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	osuser "os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tandem/internal/api"
	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/notify/smtptest"
	"tandem/internal/script"
	"tandem/internal/vrrp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait of these tests; nothing they assert depends
// on it, it only turns a hang into a failure.
const waitLimit = 20 * time.Second

// testDaemon is a daemon run by a test: without the namespace lock (tests
// run concurrently with others'), data plane none, its socket and
// configuration file in a temporary directory.
type testDaemon struct {
	d      *Daemon
	conf   string
	socket string
	cancel context.CancelFunc
	done   chan error
}

// startDaemon runs conf, with its options changed by adjust, and returns
// once its socket answers.
func startDaemon(t *testing.T, conf string, log *slog.Logger, adjust ...func(*Options)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	td := &testDaemon{conf: filepath.Join(dir, "keepalived.conf"), socket: filepath.Join(dir, "tandem.sock"), done: make(chan error, 1)}
	td.write(t, conf)
	opts := Options{ConfigFile: td.conf, Socket: td.socket, Dataplane: DataplaneNone, Log: log}
	for _, f := range adjust {
		f(&opts)
	}
	d, err := load(opts)
	if err != nil {
		t.Fatal(err)
	}
	td.d = d
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel = cancel
	go func() { td.done <- d.run(ctx) }()
	t.Cleanup(func() { td.stop(t) })
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := api.Fetch(ctx, td.socket)
		cancel()
		if err == nil {
			return td
		}
		select {
		case err := <-td.done:
			t.Fatalf("daemon stopped at start: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon socket not answering after %v: %v", waitLimit, err)
		}
	}
}

func (td *testDaemon) write(t *testing.T, conf string) {
	t.Helper()
	if err := os.WriteFile(td.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload replaces the configuration with conf and reloads it through the
// socket, as `tandem reload` does; it fails t unless all of it applied.
func (td *testDaemon) reload(t *testing.T, conf string) {
	t.Helper()
	td.write(t, conf)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := api.Reload(ctx, td.socket)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("reload: %q", res.Errors)
	}
}

// stop ends the daemon's run and waits for it to return (again: nothing).
func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	td.cancel()
	select {
	case err, ok := <-td.done:
		if ok && err != nil {
			t.Errorf("run: %v", err)
		}
		if ok {
			close(td.done)
		}
	case <-time.After(waitLimit):
		t.Fatalf("run did not return within %v of its context's end", waitLimit)
	}
}

// vrrpChange is a VRRP instance's state change as the engine reports it
// to the daemon.
func vrrpChange(in *config.Instance, st vrrp.State) vrrp.StateChange {
	return vrrp.StateChange{Instance: in, State: st, Priority: 100, At: time.Now()}
}

// mailGlobals is a global_defs block that mails alerts to server.
func mailGlobals(server, extra string) string {
	host, port, _ := net.SplitHostPort(server)
	return fmt.Sprintf(`global_defs {
	router_id lb1
	notification_email { ops@example.com }
	notification_email_from tandem@lb1
	smtp_server %s %s
	smtp_connect_timeout 120
	%s
}
`, host, port, extra)
}

// After a reload that changes smtp_server, every alert goes to the new
// server: a real server's and its virtual server's (quorum), raised by a
// health check that fails after the reload, and a VRRP instance's. The
// balancer used to keep the mailer of the configuration it started with.
func TestReloadMovesAlertsToNewSMTPServer(t *testing.T) {
	oldSMTP, newSMTP := smtptest.Start(t), smtptest.Start(t)
	rs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts sync.WaitGroup
	accepts.Go(func() {
		for {
			c, err := rs.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	defer accepts.Wait()
	defer rs.Close()
	rsPort := rs.Addr().(*net.TCPAddr).Port
	conf := func(server string) string {
		return mailGlobals(server, "") + fmt.Sprintf(`
virtual_server 192.0.2.1 80 {
	delay_loop 1
	lb_algo rr
	lb_kind NAT
	protocol TCP
	quorum 1
	smtp_alert
	real_server 127.0.0.1 %d {
		weight 1
		smtp_alert
		TCP_CHECK {
			connect_timeout 1
			retry 0
		}
	}
}
`, rsPort)
	}
	td := startDaemon(t, conf(oldSMTP.Addr), lab.TestLogger(t))
	td.reload(t, conf(newSMTP.Addr))

	rs.Close() // the real server goes away: down, and the quorum is lost
	accepts.Wait()
	wantRS := fmt.Sprintf("Subject: [lb1] Realserver [127.0.0.1]:tcp:%d of virtual server [192.0.2.1]:tcp:80 - DOWN\n", rsPort)
	wantVS := "Subject: [lb1] Virtualserver [192.0.2.1]:tcp:80 - DOWN\n"
	var got []string
	for range 2 {
		m := newSMTP.Next(t, waitLimit)
		switch {
		case strings.Contains(m.Data, wantRS):
			got = append(got, "real server")
		case strings.Contains(m.Data, wantVS):
			got = append(got, "virtual server")
		default:
			t.Errorf("unexpected alert:\n%s", m.Data)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"real server", "virtual server"}) {
		t.Errorf("alerts at the new server: %q, want the real server's and the virtual server's", got)
	}

	td.d.stateChanged(vrrpChange(&config.Instance{Name: "VI_1", SMTPAlert: true}, vrrp.Backup))
	if m := newSMTP.Next(t, waitLimit); !strings.Contains(m.Data, "Subject: [lb1] VRRP Instance VI_1 - Entering BACKUP state\n") {
		t.Errorf("VRRP alert at the new server:\n%s", m.Data)
	}
	td.stop(t)
	for _, m := range oldSMTP.Pending() {
		t.Errorf("alert sent to the old smtp_server after the reload:\n%s", m.Data)
	}
}

// After a reload that changes script_user, notify scripts run as the new
// user; they used to keep the identity of the configuration the daemon
// started with.
func TestReloadChangesNotifyScriptUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: notify scripts run as another user")
	}
	if _, err := osuser.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody to run scripts as: %v", err)
	}
	dir := t.TempDir()
	// nobody must reach the script and the file it writes.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(out, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	sh := lab.WriteScript(t, dir, "notify.sh", "id -un >> "+out+"\n")
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{Master: []string{sh}}}

	td := startDaemon(t, "global_defs {\n\tscript_user root\n}\n", lab.TestLogger(t))
	td.d.stateChanged(vrrpChange(in, vrrp.Master))
	td.reload(t, "global_defs {\n\tscript_user nobody nogroup\n}\n")
	td.d.stateChanged(vrrpChange(in, vrrp.Master))
	td.stop(t) // waits for the scripts

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(string(b)), []string{"root", "nobody"}; !slices.Equal(got, want) {
		t.Errorf("notify script ran as %q, want %q (before and after the reload)", got, want)
	}
}

// At shutdown, Run waits for an alert mail in progress and lets it finish;
// one that a hung server holds past the bound (notifyWait) is abandoned.
// Either way nothing of the daemon is left running when Run returns. Mail
// used to be sent from goroutines nobody waited for.
func TestShutdownWaitsForMail(t *testing.T) {
	// Registered first, so it runs after the SMTP servers' clean-up; only
	// goroutines this test started count.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	in := &config.Instance{Name: "VI_1", SMTPAlert: true}

	t.Run("slow server", func(t *testing.T) {
		srv := smtptest.Start(t)
		srv.Hold()
		td := startDaemon(t, mailGlobals(srv.Addr, ""), lab.TestLogger(t))
		td.d.stateChanged(vrrpChange(in, vrrp.Master))
		waitAccepted(t, srv)
		td.cancel()
		// The socket goes away early in the stop; the mail must still be
		// waited for after it.
		waitGone(t, td.socket)
		srv.Release()
		td.stop(t)
		msgs := srv.Pending()
		if len(msgs) != 1 || !strings.Contains(msgs[0].Data, "Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state\n") {
			t.Errorf("messages at the server once Run returned: %+v, want the MASTER alert", msgs)
		}
	})

	t.Run("hung server", func(t *testing.T) {
		srv := smtptest.Start(t)
		srv.Hold() // and never released
		td := startDaemon(t, mailGlobals(srv.Addr, ""), lab.TestLogger(t))
		td.d.stateChanged(vrrpChange(in, vrrp.Master))
		waitAccepted(t, srv)
		td.stop(t)
		// smtp_connect_timeout (120 s) would hold a mail goroutine that
		// nobody cancels well past this point.
		goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("tandem/internal/notify/smtptest.(*Server).accept"),
			goleak.IgnoreAnyFunction("tandem/internal/notify/smtptest.(*Server).accept.func1"))
	})
}

// waitAccepted waits for srv to accept a connection.
func waitAccepted(t *testing.T, srv *smtptest.Server) {
	t.Helper()
	select {
	case <-srv.Accepted:
	case <-time.After(waitLimit):
		t.Fatal("no connection to the SMTP server")
	}
}

// waitGone waits for path to be removed.
func waitGone(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after %v", path, waitLimit)
		}
	}
}

// Without script_user and without a keepalived_script user, a
// configuration's scripts run as root with a warning: one per
// configuration, however many parts run its scripts (here MISC_CHECK and a
// notify script); each part used to look the user up, and warn, itself.
func TestScriptUserWarnedOncePerConfig(t *testing.T) {
	if _, err := osuser.Lookup(script.DefaultUser); err == nil {
		t.Skipf("user %s exists: nothing to warn about", script.DefaultUser)
	}
	const warning = "default script user does not exist"
	var logs lab.LogBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, lab.TestWriter(t)), nil))
	const conf = `
virtual_server 192.0.2.1 80 {
	delay_loop 60
	lb_algo rr
	lb_kind NAT
	protocol TCP
	real_server 192.0.2.2 80 {
		MISC_CHECK {
			misc_path /bin/true
		}
	}
}
`
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{Master: []string{"/bin/true"}}}
	td := startDaemon(t, conf, log)
	td.d.stateChanged(vrrpChange(in, vrrp.Master))
	td.reload(t, conf+"\n# the same again, as a new configuration\n")
	td.d.stateChanged(vrrpChange(in, vrrp.Master))
	td.stop(t) // waits for the scripts
	if n := logs.Count(warning); n != 2 {
		t.Errorf("%q logged %d times for two configurations, want 2", warning, n)
	}
}

// A reload that comes once the daemon has stopped (a late SIGHUP, or a
// request the socket took just before it closed) is refused: it used to
// wait forever for a balancer loop that had ended.
func TestReloadAfterStopRefused(t *testing.T) {
	const conf = `
virtual_server 192.0.2.1 80 {
	lb_algo rr
	lb_kind NAT
	protocol TCP
	real_server 192.0.2.2 80 {
	}
}
`
	td := startDaemon(t, conf, lab.TestLogger(t))
	td.stop(t)
	done := make(chan error, 1)
	go func() {
		_, err := td.d.Reload()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errStopping) {
			t.Errorf("Reload after the stop = %v, want %v", err, errStopping)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Reload after the stop still waiting after %v", waitLimit)
	}
}

// With dynamic_interfaces the daemon starts although an instance's
// interface does not exist (the instance waits for it); without, the
// start fails naming it.
func TestDynamicInterfacesStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: VRRP sockets")
	}
	conf := "vrrp_instance VI_1 {\n    interface tnd-none0\n    virtual_router_id 1\n    virtual_ipaddress {\n        192.0.2.1/24\n    }\n}\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := load(Options{ConfigFile: path, Socket: filepath.Join(dir, "s"), Dataplane: DataplaneNone, Log: lab.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.run(context.Background()); err == nil || !strings.Contains(err.Error(), "tnd-none0") {
		t.Errorf("start on a missing interface without dynamic_interfaces: %v, want an error naming it", err)
	}
	td := startDaemon(t, "global_defs {\n    dynamic_interfaces\n}\n"+conf, lab.TestLogger(t))
	if st := td.d.Status(); len(st.Instances) != 0 {
		t.Errorf("instances running on a missing interface: %+v", st.Instances)
	}
}
