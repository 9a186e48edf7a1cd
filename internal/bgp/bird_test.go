package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tandem/internal/clock"
	"tandem/internal/config"
	"tandem/internal/lab"
)

// The interop tests run Debian's bird2 as the router in node "router" of
// a lab and the speaker in node "dir". A network namespace belongs to a
// thread, and GoBGP dials from goroutines of its own, so the speaker runs
// in a process started inside the node: this test binary again, running
// TestSpeakerHelper, which takes commands on a unix socket (a path, so
// reachable from the test's namespace).

var (
	helperConf = flag.String("bgp-helper-conf", "", "TestSpeakerHelper: the configuration whose bgp block to run")
	helperSock = flag.String("bgp-helper-sock", "", "TestSpeakerHelper: the unix socket to take commands on")
)

// TestSpeakerHelper is the speaker process of the interop tests; it
// skips unless they start it.
func TestSpeakerHelper(t *testing.T) {
	if *helperConf == "" {
		t.Skip("the speaker process of the bird interop tests; they start it")
	}
	cfg, diags := config.Load(*helperConf, config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sp, err := Start(context.Background(), cfg.BGP, log, clock.Real)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ln, err := net.Listen("unix", *helperSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	attrs := AttrsOf(cfg.BGP)
	for {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			c.Close()
			continue
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		ctx := context.Background()
		var reply any = "ok"
		switch cmd {
		case "announce", "withdraw":
			p := netip.MustParsePrefix(arg)
			if cmd == "announce" {
				err = sp.Announce(ctx, p, attrs)
			} else {
				err = sp.Withdraw(ctx, p)
			}
		case "gshut":
			err = sp.GracefulShutdown(ctx, time.Duration(cfg.BGP.GracefulShutdownDelay))
		case "status":
			var st []Neighbor
			st, err = sp.Status(ctx)
			reply = struct {
				Neighbors []Neighbor
				Announced []netip.Prefix
			}{st, sp.Announced()}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			reply = "error: " + err.Error()
		}
		json.NewEncoder(c).Encode(reply)
		c.Close()
	}
}

// speakerProc is the helper process and its socket.
type speakerProc struct {
	proc *lab.Proc
	sock string
}

// do sends one command and decodes the reply into out (nil: the reply
// must be "ok").
func (s *speakerProc) do(t *testing.T, cmd string, out any) {
	t.Helper()
	c, err := net.DialTimeout("unix", s.sock, 10*time.Second)
	if err != nil {
		t.Fatalf("speaker %s: %v\n%s", cmd, err, s.proc.Output())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintln(c, cmd)
	if out != nil {
		if err := json.NewDecoder(c).Decode(out); err != nil {
			t.Fatalf("speaker %s: %v\n%s", cmd, err, s.proc.Output())
		}
		return
	}
	var reply string
	if err := json.NewDecoder(c).Decode(&reply); err != nil || reply != "ok" {
		t.Fatalf("speaker %s: %q %v\n%s", cmd, reply, err, s.proc.Output())
	}
}

// birdLab is a router (bird) and a director (the speaker) on one switch,
// with IPv4 and IPv6 addresses.
func birdLab(t *testing.T, speakerConf, birdProtocols string) (*lab.Lab, *lab.Bird, *speakerProc) {
	t.Helper()
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "router", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.254/24"), netip.MustParsePrefix("fd77::254/64")}}}},
		{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("fd77::1/64")}}}},
	}})
	b := lab.StartBird(t, l, "router", netip.MustParseAddr("10.77.0.254"), birdProtocols)
	dir := t.TempDir()
	sconf := filepath.Join(dir, "tandem.conf")
	if err := os.WriteFile(sconf, []byte(speakerConf), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := &speakerProc{sock: filepath.Join(dir, "speaker.sock")}
	var err error
	sp.proc, err = l.Start("dir", os.Args[0], "-test.run=^TestSpeakerHelper$", "-bgp-helper-conf="+sconf, "-bgp-helper-sock="+sp.sock)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(sp.sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("speaker not up after 30s:\n%s", sp.proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l, b, sp
}

const speakerConf = `virtual_server 192.0.2.10 80 {
  protocol TCP
  lb_kind DR
  lb_algo rr
}
bgp {
  router_id 10.77.0.1
  local_as 65001
  neighbor 10.77.0.254 {
    remote_as 65000
    password "tandem-md5"
    hold_time 3
    keepalive_time 1
  }
  community 65001:10
  med 20
  graceful_shutdown_delay 3
}
`

const birdDirector = `protocol bgp director {
  local 10.77.0.254 as 65000;
  neighbor 10.77.0.1 as 65001;
  passive on;
  password "tandem-md5";
  hold time 3;
  keepalive time 1;
  ipv4 { import all; export none; };
}
`

// TestBirdAnnounceShutdownWithdraw: an announced VIP is in bird's table
// with its community and MED; GracefulShutdown marks it 65535:0 and then
// withdraws it; the speaker's status counts the session and the prefix.
func TestBirdAnnounceShutdownWithdraw(t *testing.T) {
	_, b, sp := birdLab(t, speakerConf, birdDirector)
	vip := netip.MustParsePrefix("192.0.2.10/32")
	sp.do(t, "announce "+vip.String(), nil)
	b.WaitRoute(t, vip, "the VIP learned", 60*time.Second, lab.HasBGPRoute)
	out := b.Route(t, vip)
	for _, want := range []string{"(65001,10)", "BGP.med: 20", "BGP.next_hop: 10.77.0.1", "BGP.as_path: 65001"} {
		if !strings.Contains(out, want) {
			t.Errorf("bird's route lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "(65535,0)") {
		t.Errorf("GRACEFUL_SHUTDOWN before the shutdown:\n%s", out)
	}
	var st struct {
		Neighbors []Neighbor
		Announced []netip.Prefix
	}
	sp.do(t, "status", &st)
	if len(st.Neighbors) != 1 || st.Neighbors[0].State != "established" || st.Neighbors[0].Sent != 1 || st.Neighbors[0].Since.IsZero() {
		t.Errorf("status: %+v", st.Neighbors)
	}
	if len(st.Announced) != 1 || st.Announced[0] != vip {
		t.Errorf("announced: %v", st.Announced)
	}

	// The shutdown command returns after the withdraw; watch bird from
	// another goroutine meanwhile for the community.
	saw := make(chan string, 1)
	stop := make(chan struct{})
	go func() {
		for {
			out, _ := b.Birdc("show", "route", "all", "for", vip.String())
			if strings.Contains(out, "(65535,0)") {
				saw <- out
				return
			}
			select {
			case <-stop:
				saw <- ""
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	sp.do(t, "gshut", nil)
	close(stop)
	if out := <-saw; out == "" {
		t.Error("bird never saw the route with GRACEFUL_SHUTDOWN (65535,0)")
	} else if !strings.Contains(out, "(65001,10)") {
		t.Errorf("the graceful-shutdown route lost its own community:\n%s", out)
	}
	b.WaitRoute(t, vip, "the VIP withdrawn after the graceful shutdown", 30*time.Second, lab.NoRoute)
	sp.do(t, "status", &st)
	if len(st.Announced) != 0 {
		t.Errorf("announced after the shutdown: %v", st.Announced)
	}
}

// TestBirdWithdraw: Withdraw takes the route out of bird's table, the
// session staying up; announcing again brings it back.
func TestBirdWithdraw(t *testing.T) {
	_, b, sp := birdLab(t, speakerConf, birdDirector)
	vip := netip.MustParsePrefix("192.0.2.10/32")
	sp.do(t, "announce "+vip.String(), nil)
	b.WaitRoute(t, vip, "the VIP learned", 60*time.Second, lab.HasBGPRoute)
	sp.do(t, "withdraw "+vip.String(), nil)
	b.WaitRoute(t, vip, "the VIP withdrawn", 30*time.Second, lab.NoRoute)
	var st struct{ Neighbors []Neighbor }
	sp.do(t, "status", &st)
	if len(st.Neighbors) != 1 || st.Neighbors[0].State != "established" {
		t.Errorf("the session did not stay up: %+v", st.Neighbors)
	}
	sp.do(t, "announce "+vip.String(), nil)
	b.WaitRoute(t, vip, "the VIP announced again", 30*time.Second, lab.HasBGPRoute)
}

// TestBirdHoldTimerExpiry: a speaker that stops without a word (its
// process frozen: no keepalive, no NOTIFICATION, the TCP connection
// still open) loses its route when bird's hold timer (3 s) expires.
func TestBirdHoldTimerExpiry(t *testing.T) {
	_, b, sp := birdLab(t, speakerConf, birdDirector)
	vip := netip.MustParsePrefix("192.0.2.10/32")
	sp.do(t, "announce "+vip.String(), nil)
	b.WaitRoute(t, vip, "the VIP learned", 60*time.Second, lab.HasBGPRoute)
	if err := syscall.Kill(sp.proc.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(sp.proc.Pid(), syscall.SIGCONT) })
	b.WaitRoute(t, vip, "the VIP gone after the hold time", 30*time.Second, lab.NoRoute)
	out, err := b.Birdc("show", "protocols", "all", "director")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Hold timer expired") {
		t.Errorf("bird dropped the route for another reason than its hold timer:\n%s", out)
	}
}

// TestBirdLastError: a neighbor that refuses the session shows in the
// speaker's status, not established, with the failure as last error.
func TestBirdLastError(t *testing.T) {
	// bird expects another AS: it answers the OPEN with a NOTIFICATION.
	_, b, sp := birdLab(t, speakerConf, strings.Replace(birdDirector, "as 65001;", "as 65099;", 1))
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct{ Neighbors []Neighbor }
		sp.do(t, "status", &st)
		if len(st.Neighbors) == 1 && st.Neighbors[0].LastError != "" {
			if st.Neighbors[0].State == "established" {
				t.Errorf("established with the wrong AS: %+v", st.Neighbors[0])
			}
			t.Logf("last error: %s", st.Neighbors[0].LastError)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no last error after 20s: %+v\n%s\n%s", st.Neighbors, sp.proc.Output(), b.Proc.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBirdIPv6: an IPv6 VIP's /128 reaches an IPv6 neighbor (MP_REACH,
// RFC 4760), with the session's address as next hop, and is withdrawn.
func TestBirdIPv6(t *testing.T) {
	conf := strings.NewReplacer("192.0.2.10", "2001:db8::10", "neighbor 10.77.0.254", "neighbor fd77::254").Replace(speakerConf)
	router := `protocol bgp director {
  local fd77::254 as 65000;
  neighbor fd77::1 as 65001;
  passive on;
  password "tandem-md5";
  ipv6 { import all; export none; };
}
`
	_, b, sp := birdLab(t, conf, router)
	vip := netip.MustParsePrefix("2001:db8::10/128")
	sp.do(t, "announce "+vip.String(), nil)
	b.WaitRoute(t, vip, "the IPv6 VIP learned", 60*time.Second, lab.HasBGPRoute)
	if out := b.Route(t, vip); !strings.Contains(out, "BGP.next_hop: fd77::1") || !strings.Contains(out, "(65001,10)") {
		t.Errorf("bird's route lacks the next hop or the community:\n%s", out)
	}
	sp.do(t, "withdraw "+vip.String(), nil)
	b.WaitRoute(t, vip, "the IPv6 VIP withdrawn", 30*time.Second, lab.NoRoute)
}
