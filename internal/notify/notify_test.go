package notify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/notify/smtptest"
	"tandem/internal/script"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitLimit = 10 * time.Second

func TestEventLog(t *testing.T) {
	ev := func(i int) Event {
		return Event{Time: time.Unix(int64(i), 0), Kind: "vrrp", Object: "VI_1", Message: strconv.Itoa(i)}
	}
	tests := []struct {
		size, add int
		want      []int
	}{
		{3, 0, []int{}},
		{3, 2, []int{0, 1}},
		{3, 3, []int{0, 1, 2}},
		{3, 7, []int{4, 5, 6}},
		{1, 2, []int{1}},
		{0, 2, []int{1}}, // at least one
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size %d add %d", tt.size, tt.add), func(t *testing.T) {
			l := NewEventLog(tt.size)
			for i := range tt.add {
				l.Add(ev(i))
			}
			want := []Event{}
			for _, i := range tt.want {
				want = append(want, ev(i))
			}
			if diff := cmp.Diff(want, l.Events()); diff != "" {
				t.Errorf("Events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventLogConcurrent(t *testing.T) {
	l := NewEventLog(50)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				l.Add(Event{Kind: "test", Object: strconv.Itoa(w), Message: strconv.Itoa(i)})
				_ = l.Events()
			}
		})
	}
	wg.Wait()
	if n := len(l.Events()); n != 50 {
		t.Errorf("%d events held, want 50", n)
	}
}

// argvScript writes a script that appends its arguments, one run per line,
// to log; with a first argument "slow" it waits a little first, so that a
// run out of order would show.
func argvScript(t *testing.T, dir, log string) string {
	t.Helper()
	p := filepath.Join(dir, "notify.sh")
	body := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = slow ] && sleep 0.2\nprintf '%%s\\n' \"$*\" >> %s\n", log)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func currentUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func newScripts(t *testing.T, g *config.Global, timeout time.Duration) (*Runner, *script.Users) {
	t.Helper()
	if g.ScriptUser == "" {
		g.ScriptUser = currentUser(t)
	}
	return NewRunner(timeout, lab.TestLogger(t)), script.NewUsers(g, lab.TestLogger(t))
}

func closeScripts(t *testing.T, s *Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestScriptsInstanceAndGroup(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{
		Master: []string{sh, "slow", "master", "it's"}, // the slow first run must still come first
		Fault:  []string{sh, "fault"},
		Stop:   []string{sh, "stop"},
		Any:    []string{sh, "any"},
	}}
	s, u := newScripts(t, &config.Global{}, 0)
	s.Instance(u, in, Master, 100)
	s.Instance(u, in, Backup, 90)  // no notify_backup: generic only
	s.Instance(u, in, Deleted, 90) // no notify_deleted: reported as FAULT
	s.Instance(u, in, Stop, 0)
	closeScripts(t, s)
	want := []string{
		"slow master it's",
		"any INSTANCE VI_1 MASTER 100",
		"any INSTANCE VI_1 BACKUP 90",
		"fault",
		"any INSTANCE VI_1 FAULT 90",
		"stop",
		"any INSTANCE VI_1 STOP 0",
	}
	if diff := cmp.Diff(want, readLines(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}

	os.Remove(log)
	in.Notify.Deleted = []string{sh, "deleted"}
	sg := &config.SyncGroup{Name: "VG_1", Notify: config.Notify{Backup: []string{sh, "gbackup"}, Any: []string{sh, "gany"}}}
	s, u = newScripts(t, &config.Global{}, 0)
	s.Instance(u, in, Deleted, 50)
	closeScripts(t, s)
	s, u = newScripts(t, &config.Global{}, 0)
	s.Group(u, sg, Backup)
	closeScripts(t, s)
	want = []string{"deleted", "any INSTANCE VI_1 DELETED 50", "gbackup", "gany GROUP VG_1 BACKUP 0"}
	if diff := cmp.Diff(want, readLines(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
}

func TestScriptsCheckerSide(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	vs := &config.VirtualServer{IP: netip.MustParseAddr("10.0.0.1"), Port: 80, Protocol: config.TCP,
		QuorumUp: []string{sh, "quorum_up"}, QuorumDown: []string{sh, "quorum_down"}}
	rs := &config.RealServer{IP: netip.MustParseAddr("192.168.1.2"), Port: 8080,
		NotifyUp: []string{sh, "up"}, NotifyDown: []string{sh, "down"}}
	s, u := newScripts(t, &config.Global{}, 0)
	s.RealServer(u, vs, rs, false)
	s.RealServer(u, vs, rs, true)
	closeScripts(t, s)
	s, u = newScripts(t, &config.Global{}, 0)
	s.VirtualServer(u, vs, true)
	s.VirtualServer(u, vs, false)
	closeScripts(t, s)
	want := []string{"down", "up", "quorum_up", "quorum_down"}
	if diff := cmp.Diff(want, readLines(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
}

func TestScriptsMasterRxLowerPri(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	s, u := newScripts(t, &config.Global{}, 0)
	s.MasterRxLowerPri(u, &config.Instance{Name: "VI_1", Notify: config.Notify{MasterRxLowPri: []string{sh, "lower"}}})
	closeScripts(t, s)
	if diff := cmp.Diff([]string{"lower"}, readLines(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
}

func hangScript(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "hang.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScriptsTimeouts(t *testing.T) {
	dir := t.TempDir()
	hang := hangScript(t, dir)
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{Master: []string{hang}, Stop: []string{hang}, Any: []string{sh, "any"}}}
	s, u := newScripts(t, &config.Global{}, 300*time.Millisecond)
	startAt := time.Now()
	s.Instance(u, in, Master, 100) // killed at the 300ms timeout
	s.Instance(u, in, Stop, 0)     // killed at the timeout too (below the 1s stop limit)
	closeScripts(t, s)
	if d := time.Since(startAt); d > 5*time.Second {
		t.Errorf("took %v; hung scripts were not killed at their timeout", d)
	}
	// The hung scripts did not hold back the ones queued after them.
	want := []string{"any INSTANCE VI_1 MASTER 100", "any INSTANCE VI_1 STOP 0"}
	if diff := cmp.Diff(want, readLines(t, log)); diff != "" {
		t.Errorf("scripts run (-want +got):\n%s", diff)
	}
}

func TestScriptsCloseGivesUp(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{Master: []string{hangScript(t, dir)}, Any: []string{sh, "any"}}}
	s, u := newScripts(t, &config.Global{}, time.Hour)
	s.Instance(u, in, Master, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	if lines := readLines(t, log); lines != nil {
		t.Errorf("dropped script ran: %q", lines)
	}
	s.Instance(u, in, Backup, 1) // after Close: ignored
}

func TestScriptsRefusedUnderSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: script security applies to scripts run as root")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := argvScript(t, dir, log)
	if err := os.Chmod(sh, 0o777); err != nil {
		t.Fatal(err)
	}
	in := &config.Instance{Name: "VI_1", Notify: config.Notify{Master: []string{sh, "master"}}}
	s, u := newScripts(t, &config.Global{ScriptUser: "root", EnableScriptSecurity: true}, 0)
	s.Instance(u, in, Master, 100)
	s.Instance(u, in, Master, 100)
	closeScripts(t, s)
	if lines := readLines(t, log); lines != nil {
		t.Errorf("insecure script ran: %q", lines)
	}
}

func TestNames(t *testing.T) {
	vs := &config.VirtualServer{IP: netip.MustParseAddr("10.0.0.1"), Port: 443, Protocol: config.TCP}
	rs := &config.RealServer{IP: netip.MustParseAddr("2001:db8::2"), Port: 8443}
	tests := []struct{ got, want string }{
		{VirtualServerName(vs), "[10.0.0.1]:tcp:443"},
		{RealServerName(vs, rs), "[2001:db8::2]:tcp:8443"},
		{VirtualServerName(&config.VirtualServer{FWMark: 7}), "FWM 7"},
		{VirtualServerName(&config.VirtualServer{Group: "web", Port: 0}), "[web]:0"},
		{VirtualServerName(&config.VirtualServer{IP: netip.MustParseAddr("10.0.0.2"), Port: 53, Protocol: config.UDP}), "[10.0.0.2]:udp:53"},
		{angleAddr("ops@example.com"), "<ops@example.com>"},
		{angleAddr("Ops Team <ops@example.com>"), "<ops@example.com>"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestNewMailer(t *testing.T) {
	if m := NewMailer(&config.Global{NotificationEmail: []string{"a@b"}}, lab.TestLogger(t)); m != nil {
		t.Error("Mailer without smtp_server")
	}
	if m := NewMailer(&config.Global{SMTPServer: "127.0.0.1:25"}, lab.TestLogger(t)); m != nil {
		t.Error("Mailer without notification_email")
	}
	var m *Mailer // a nil Mailer sends nothing
	if err := m.Instance(context.Background(), "VI_1", Master); err != nil {
		t.Error(err)
	}
	host, _ := os.Hostname()
	m = NewMailer(&config.Global{SMTPServer: "127.0.0.1:25", NotificationEmail: []string{"a@b"}}, lab.TestLogger(t))
	if m.helo != host || m.routerID != host || !strings.HasSuffix(m.from, "@"+host) || m.timeout != defaultSMTPTimeout {
		t.Errorf("defaults: helo %q router_id %q from %q timeout %v; want host name %q and 30s", m.helo, m.routerID, m.from, m.timeout, host)
	}
}

func TestMessage(t *testing.T) {
	m := &Mailer{from: "tandem@lb1", to: []string{"a@x", "B <b@x>"}, now: func() time.Time {
		return time.Date(2026, 3, 1, 9, 44, 8, 0, time.UTC)
	}}
	want := "Date: Sun, 01 Mar 2026 09:44:08 +0000\nFrom: tandem@lb1\nSubject: s\nX-Mailer: Tandem\nTo: a@x,\n B <b@x>\n\nbody\n"
	if got := m.message("s", "body"); got != want {
		t.Errorf("message:\n%q\nwant\n%q", got, want)
	}
}

func TestMailerAgainstSMTPServer(t *testing.T) {
	srv := smtptest.Start(t)
	m := NewMailer(&config.Global{
		RouterID:              "lb1",
		SMTPServer:            srv.Addr,
		NotificationEmail:     []string{"ops@example.com", "Pager <pager@example.com>"},
		NotificationEmailFrom: "tandem@lb1.example.com",
		SMTPHeloName:          "lb1.example.com",
		SMTPConnectTimeout:    config.Duration(5 * time.Second),
	}, lab.TestLogger(t))
	ctx := context.Background()
	vs := &config.VirtualServer{IP: netip.MustParseAddr("10.0.0.1"), Port: 80, Protocol: config.TCP}
	rs := &config.RealServer{IP: netip.MustParseAddr("192.168.1.2"), Port: 80}
	tests := []struct {
		name    string
		send    func() error
		subject string
		body    string
	}{
		{"instance", func() error { return m.Instance(ctx, "VI_1", Master) },
			"[lb1] VRRP Instance VI_1 - Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <="},
		{"group", func() error { return m.Group(ctx, "VG_1", Fault) },
			"[lb1] VRRP Group VG_1 - Entering FAULT state", "=> All VRRP group instances are now in FAULT state <="},
		{"real server", func() error { return m.RealServer(ctx, vs, rs, false, "=> TCP CHECK failed on service <=") },
			"[lb1] Realserver [192.168.1.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN", "=> TCP CHECK failed on service <="},
		{"virtual server", func() error { return m.VirtualServer(ctx, vs, true, "=> Gained quorum 1+0=1 <= 1 <=") },
			"[lb1] Virtualserver [10.0.0.1]:tcp:80 - UP", "=> Gained quorum 1+0=1 <= 1 <="},
		{"dot stuffing", func() error { return m.Send(ctx, "[lb1] test", ".leading dot") }, "[lb1] test", ".leading dot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			got := srv.Next(t, waitLimit)
			if got.From != "tandem@lb1.example.com" {
				t.Errorf("MAIL FROM %q, want tandem@lb1.example.com", got.From)
			}
			if diff := cmp.Diff([]string{"ops@example.com", "pager@example.com"}, got.To); diff != "" {
				t.Errorf("RCPT TO (-want +got):\n%s", diff)
			}
			for _, want := range []string{
				"Subject: " + tt.subject + "\n",
				"From: tandem@lb1.example.com\n",
				"To: ops@example.com,\n Pager <pager@example.com>\n",
				"\n" + tt.body + "\n",
			} {
				if !strings.Contains(got.Data, want) {
					t.Errorf("message lacks %q:\n%s", want, got.Data)
				}
			}
		})
	}
}

func TestMailerTimeout(t *testing.T) {
	srv := smtptest.Start(t)
	srv.Hold() // it accepts but never greets
	m := NewMailer(&config.Global{SMTPServer: srv.Addr, NotificationEmail: []string{"a@b"},
		SMTPConnectTimeout: config.Duration(200 * time.Millisecond)}, lab.TestLogger(t))
	startAt := time.Now()
	if err := m.Instance(context.Background(), "VI_1", Backup); err == nil {
		t.Fatal("no error from a silent server")
	}
	if d := time.Since(startAt); d > 2*time.Second {
		t.Errorf("gave up after %v, want about smtp_connect_timeout", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Send(ctx, "s", "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with cancelled context = %v, want context.Canceled", err)
	}
}

// One object's alert mails are sent one after another, in the order of
// its events, even when the server is slow to take the first.
func TestRunnerMailsInOrder(t *testing.T) {
	srv := smtptest.Start(t)
	srv.Hold()
	m := NewMailer(&config.Global{RouterID: "lb1", SMTPServer: srv.Addr, NotificationEmail: []string{"ops@example.com"}}, lab.TestLogger(t))
	r := NewRunner(0, lab.TestLogger(t))
	for _, st := range []State{Master, Backup, Fault} {
		r.Mail("instance VI_1", func(ctx context.Context) error { return m.Instance(ctx, "VI_1", st) })
	}
	select {
	case <-srv.Accepted:
	case <-time.After(waitLimit):
		t.Fatal("no connection to the SMTP server")
	}
	srv.Release()
	for _, want := range []string{"MASTER", "BACKUP", "FAULT"} {
		if got := srv.Next(t, waitLimit); !strings.Contains(got.Data, "Subject: [lb1] VRRP Instance VI_1 - Entering "+want+" state\n") {
			t.Errorf("next mail, want the %s alert:\n%s", want, got.Data)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
