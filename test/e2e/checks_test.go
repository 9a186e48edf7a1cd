package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// The checkers' lab: seed000's segment with one director and three real
// servers. rs3 serves nothing: it is PING_CHECK's target, and its link is
// taken down, which must not disturb the checks of the servers on rs1 and
// rs2. dir2 of seed000 is left out: nothing here needs a second director.
const (
	ckVIP   = "172.16.7.5"
	ckRS1   = "172.16.7.3"
	ckRS2   = "172.16.7.4"
	ckRS3   = "172.16.7.6"
	ckIface = "eth0"
	// tlsName is the name the TLS nginx serves under server_name; the
	// certificate carries it too.
	tlsName = "tls.example.test"
	// dnsName is the name dnsmasq answers for with --address.
	dnsName = "example.test"
)

func checksLayout() lab.Layout {
	y := lab.Seed000()
	y.Directors = y.Directors[:1]
	y.Reals = append(y.Reals, lab.Host{Name: "rs3", Addr: netip.MustParseAddr(ckRS3)})
	return y
}

// Checker timing shared by every checker, small so that the whole test
// takes seconds: a failure is seen at the next run (<= delay_loop),
// retried once after delay_before_retry, and the second failure in a row
// takes the server down. Refused connections and ICMP port unreachable
// fail a run at once; PING_CHECK waits connect_timeout for its reply.
const (
	ckDelayLoop = time.Second
	ckTimeout   = time.Second
	ckRetry     = 1
	ckBeforeRty = time.Second
	// ckSlack covers process scheduling, the 20 ms status polling, and a
	// loaded machine: with a load average of 11 on 2 CPUs, refusals that
	// take 1-2 s otherwise were seen to take 4.1 s.
	ckSlack = 3 * time.Second
)

// downBound is the longest a checker may take to take its server down
// after the server stopped: up to delay_loop until the next run, which
// fails within connect_timeout, then retry more failing runs, each
// delay_before_retry after the previous one and lasting at most
// connect_timeout. (A run in progress when the server stops, against a
// live server, takes milliseconds.)
func downBound() time.Duration {
	return ckDelayLoop + ckTimeout + ckRetry*(ckBeforeRty+ckTimeout) + ckSlack
}

// upBound: a down checker runs every delay_loop (no retries), and one
// success brings the server back.
func upBound() time.Duration {
	return ckDelayLoop + ckTimeout + ckSlack
}

// TestCheckers runs every health checker in one `tandem run --dataplane
// none` on dir1 against real server programs in rs1..rs3: Debian's nginx
// (HTTP_GET, SSL_GET with SNI, TCP_CHECK), dnsmasq (DNS_CHECK, UDP_CHECK),
// Python's smtpd (SMTP_CHECK), the rs3 namespace itself (PING_CHECK) and a
// script (MISC_CHECK with misc_dynamic). One virtual server per checker,
// each with its own server process, so every checker's stop/start cycle
// runs in parallel with the others and a failure names the checker. A few
// virtual servers are misconfigured on purpose: they must stay down with
// the error that says why (wrong status code, wrong digest, no SNI,
// unknown virtual host, a name dnsmasq does not serve). A checker whose
// server program is not installed is left out of the configuration and
// its subtest skips; the others run.
func TestCheckers(t *testing.T) {
	l := lab.NewT(t, checksLayout().Spec())
	bins, missing := serverPrograms()
	have := func(prog string) bool { _, gone := missing[prog]; return !gone }
	for _, reason := range missing {
		t.Log("skipping checkers: " + reason)
	}

	// The servers. Each cycle below stops and restarts one of them.
	var httpNginx, tcpNginx *lab.Proc
	var sslNginx *tlsNginx
	var dnsRS1, dnsRS2, smtp *server
	p := confParams{misc: newMiscScript(t), have: have}
	if have(progNginx) {
		httpNginx = startNginx(t, l, "rs1") // answers "rs1\n" on every path
		tcpNginx = startNginx(t, l, "rs2")
		sslNginx = newTLSNginx(t, l, "rs2", bins[progNginx])
		sslNginx.start(t)
		// Digests are computed here from what nginx really sends (tandem
		// has no genhash command): the same bytes the checker hashes.
		httpBody := fetchBody(t, l, "dir1", ckRS1+":80", "/", "", "")
		if want := "rs1\n"; httpBody != want {
			t.Fatalf("nginx on rs1 answered %q, want %q", httpBody, want)
		}
		sniBody := fetchBody(t, l, "dir1", ckRS2+":443", "/", tlsName, tlsName)
		if want := "sni=" + tlsName + " host=" + tlsName + "\n"; sniBody != want {
			t.Fatalf("TLS nginx on rs2 answered %q with SNI, want %q", sniBody, want)
		}
		p.httpDigest, p.sniDigest = md5hex(httpBody), md5hex(sniBody)
	}
	if have(progDnsmasq) {
		dnsRS1 = &server{node: "rs1", what: "dnsmasq", bin: bins[progDnsmasq], args: dnsmasqArgs(t, ckRS1), ready: tcpReady(ckRS1 + ":53")}
		dnsRS1.start(t, l)
		dnsRS2 = &server{node: "rs2", what: "dnsmasq", bin: bins[progDnsmasq], args: dnsmasqArgs(t, ckRS2), ready: tcpReady(ckRS2 + ":53")}
		dnsRS2.start(t, l)
	}
	if have(progSmtpd) {
		smtp = &server{node: "rs2", what: "smtpd", bin: bins[progSmtpd],
			args:  []string{"-u", "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", ckRS2 + ":25"},
			ready: tcpReady(ckRS2 + ":25")}
		smtp.start(t, l)
	}

	conf := writeConf(t, "checks.conf", checksConf(p))
	d := startTandem(t, l, "dir1", conf, "--dataplane", "none")

	// Every real server up with every checker having run and passed (a
	// checker starts up before its first run, so healthy alone proves
	// nothing), and every misconfigured one down for its own reason.
	var present []cycle
	for _, c := range cycles {
		if have(c.needs) {
			present = append(present, c)
		}
	}
	var wrong []misconfigured
	for _, w := range misconfiguredChecks(p) {
		if have(w.needs) {
			wrong = append(wrong, w)
		}
	}
	start := time.Now()
	waitFor(t, "every checker's first verdict", 15*time.Second, func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		for _, c := range present {
			if rs, ok := findRS(st, c.vs, c.rs); !ok || !allOK(rs) {
				return false
			}
		}
		for _, w := range wrong {
			if rs, ok := findRS(st, w.vs, w.rs); !ok || rs.Healthy || len(rs.Checkers) == 0 || rs.Checkers[0].LastResult != "failed" {
				return false
			}
		}
		return true
	})
	t.Logf("every checker passed (or failed, on purpose) %v after the daemon started", time.Since(start).Round(time.Millisecond))
	st, err := d.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrong {
		rs, _ := findRS(st, w.vs, w.rs)
		if got := rs.Checkers[0].LastError; got != w.err {
			t.Errorf("%s real server %s: last_error %q, want %q", w.vs, w.rs, got, w.err)
		}
	}
	for _, c := range present {
		vs := findVS(st, c.vs)
		if vs.Protocol != c.proto || !vs.QuorumOK || vs.VIP != ckVIP {
			t.Errorf("%s: protocol %s quorum_ok %t vip %s; want %s, true, %s", c.vs, vs.Protocol, vs.QuorumOK, vs.VIP, c.proto, ckVIP)
		}
	}
	checkHumanStatus(t, d, present, wrong)

	// The stop/start cycles, in parallel; their timings are reported once
	// all have run.
	var mu sync.Mutex
	var timings []string
	t.Cleanup(func() {
		sort.Strings(timings)
		t.Logf("detection times (delay_loop %v, connect_timeout %v, retry %d, delay_before_retry %v; bounds: down %v, up %v):\n%s",
			ckDelayLoop, ckTimeout, ckRetry, ckBeforeRty, downBound(), upBound(), strings.Join(timings, "\n"))
	})
	report := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		timings = append(timings, s)
	}
	actions := map[string]struct{ stop, start func(t *testing.T) }{
		"HTTP_GET": {
			func(t *testing.T) { stopProc(t, httpNginx) },
			func(t *testing.T) { httpNginx = startNginx(t, l, "rs1") },
		},
		"SSL_GET": {func(t *testing.T) { sslNginx.stop(t) }, func(t *testing.T) { sslNginx.start(t) }},
		"TCP_CHECK": {
			func(t *testing.T) { stopProc(t, tcpNginx) },
			func(t *testing.T) { tcpNginx = startNginx(t, l, "rs2") },
		},
		"DNS_CHECK":  {func(t *testing.T) { dnsRS1.stop(t) }, func(t *testing.T) { dnsRS1.start(t, l) }},
		"UDP_CHECK":  {func(t *testing.T) { dnsRS2.stop(t) }, func(t *testing.T) { dnsRS2.start(t, l) }},
		"SMTP_CHECK": {func(t *testing.T) { smtp.stop(t) }, func(t *testing.T) { smtp.start(t, l) }},
		"PING_CHECK": {
			func(t *testing.T) { setLink(t, l, "rs3", false) },
			func(t *testing.T) { setLink(t, l, "rs3", true) },
		},
	}
	for _, c := range cycles {
		t.Run(c.checker, func(t *testing.T) {
			if reason, gone := missing[c.needs]; gone {
				t.Skip(reason)
			}
			t.Parallel()
			if c.checker == "TCP_CHECK" {
				tcpCheckSockets(t, d)
			}
			if c.checker == "MISC_CHECK" {
				miscCycle(t, d, p.misc, c, report)
				return
			}
			a := actions[c.checker]
			a.stop(t)
			down := waitDown(t, d, c)
			a.start(t)
			up := waitUp(t, d, c)
			report(fmt.Sprintf("  %-10s down after %v, up after %v", c.checker, down.Round(time.Millisecond), up.Round(time.Millisecond)))
		})
	}
}

// tcpCheckSockets: the daemon ran TCP_CHECK through io_uring, or said why
// not. It says so only when it has a TCP_CHECK to run, hence only in the
// TCP_CHECK subtest, which skips when nginx is missing.
func tcpCheckSockets(t *testing.T, d *daemon) {
	t.Helper()
	switch out := d.proc.Output(); {
	case strings.Contains(out, "TCP_CHECK runs through io_uring"):
	case strings.Contains(out, "TCP_CHECK runs on plain sockets"):
		_, why, _ := strings.Cut(out, "TCP_CHECK runs on plain sockets")
		why, _, _ = strings.Cut(why, "\n")
		t.Log("this kernel runs TCP_CHECK on plain sockets:" + why)
	default:
		t.Errorf("the daemon did not say how it runs TCP_CHECK:\n%s", out)
	}
}

// The server programs the checkers need ("" for none: PING_CHECK and
// MISC_CHECK).
const (
	progNginx   = "nginx"
	progDnsmasq = "dnsmasq"
	progSmtpd   = "smtpd"
)

// withoutEnv names server programs (comma-separated) that serverPrograms
// reports missing although they are installed: TestCheckersWithout sets it
// to run TestCheckers as a machine without them meets it.
const withoutEnv = "TANDEM_E2E_WITHOUT"

// serverPrograms finds the server programs: their paths, and for those
// missing why and how to install them.
func serverPrograms() (bins, missing map[string]string) {
	bins, missing = map[string]string{}, map[string]string{}
	for prog, install := range map[string]string{progNginx: "nginx-light", progDnsmasq: "dnsmasq-base"} {
		if p, ok := findBin(prog); ok {
			bins[prog] = p
		} else {
			missing[prog] = fmt.Sprintf("%s is not installed (apt-get install %s); sudo test/run installs it", prog, install)
		}
	}
	if p, ok := smtpdPython(); ok {
		bins[progSmtpd] = p
	} else {
		missing[progSmtpd] = "no python3 with the smtpd module (removed in Python 3.12; Debian 12's python3 is 3.11): no SMTP server for SMTP_CHECK"
	}
	for _, prog := range strings.Split(os.Getenv(withoutEnv), ",") {
		if _, ok := bins[prog]; ok {
			delete(bins, prog)
			missing[prog] = fmt.Sprintf("%s taken as missing (%s)", prog, withoutEnv)
		}
	}
	return bins, missing
}

// TestCheckersWithout runs TestCheckers in a child process that takes
// nginx, dnsmasq and Python's smtpd as missing: the checkers that need them
// skip, PING_CHECK and MISC_CHECK pass, and nothing is asserted about the
// skipped ones (the TCP_CHECK io_uring notice among them), so the whole
// test passes.
func TestCheckersWithout(t *testing.T) {
	lab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCheckers$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), withoutEnv+"="+strings.Join([]string{progNginx, progDnsmasq, progSmtpd}, ","))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("TestCheckers without nginx, dnsmasq and smtpd: %v\n%s", err, out)
	}
	for _, c := range cycles {
		want := "--- PASS: TestCheckers/" + c.checker + " "
		if c.needs != "" {
			want = "--- SKIP: TestCheckers/" + c.checker + " "
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("TestCheckers printed no %q:\n%s", want, out)
		}
	}
}

// cycle is one checker's virtual server and what it must report when its
// server is gone.
type cycle struct {
	checker string
	needs   string // server program
	vs, rs  string
	proto   string
	// errs must all occur in last_error while the server is down.
	errs []string
}

var cycles = []cycle{
	{checker: "HTTP_GET", needs: progNginx, vs: ckVIP + ":80", rs: ckRS1, proto: "TCP",
		errs: []string{"HTTP_GET " + ckRS1 + ":80/health: connect: ", "connection refused"}},
	{checker: "SSL_GET", needs: progNginx, vs: ckVIP + ":443", rs: ckRS2, proto: "TCP",
		errs: []string{"SSL_GET " + ckRS2 + ":443/: connect: ", "connection refused"}},
	{checker: "TCP_CHECK", needs: progNginx, vs: ckVIP + ":8080", rs: ckRS2, proto: "TCP",
		errs: []string{"connect " + ckRS2 + ":80: ", "connection refused"}},
	// dnsmasq gone, the real server's kernel answers ICMP port
	// unreachable, which the connected UDP socket reports as a refusal.
	{checker: "DNS_CHECK", needs: progDnsmasq, vs: ckVIP + ":53", rs: ckRS1, proto: "UDP",
		errs: []string{"DNS_CHECK " + ckRS1 + ":53: ", "connection refused"}},
	{checker: "UDP_CHECK", needs: progDnsmasq, vs: ckVIP + ":5353", rs: ckRS2, proto: "UDP",
		errs: []string{"udp " + ckRS2 + ":53: port unreachable"}},
	{checker: "SMTP_CHECK", needs: progSmtpd, vs: ckVIP + ":25", rs: ckRS2, proto: "TCP",
		errs: []string{"connect " + ckRS2 + ":25: ", "connection refused"}},
	// rs3's link down: no reply within connect_timeout.
	{checker: "PING_CHECK", vs: ckVIP + ":7001", rs: ckRS3, proto: "TCP",
		errs: []string{"PING_CHECK " + ckRS3 + ": no echo reply: ", "i/o timeout"}},
	{checker: "MISC_CHECK", vs: ckVIP + ":7000", rs: ckRS1, proto: "TCP",
		errs: []string{"MISC_CHECK /bin/sh: exited with status 1"}},
}

// misconfigured is a virtual server whose checker must fail with err
// while its server runs.
type misconfigured struct {
	needs   string
	vs, rs  string
	err     string
	checker string // the checker block, TIMING standing for the timing lines
	port    int
	proto   string
	rsPort  int
}

func misconfiguredChecks(p confParams) []misconfigured {
	return []misconfigured{
		{needs: progNginx, vs: ckVIP + ":81", rs: ckRS1, port: 81, proto: "TCP", rsPort: 80,
			err: "HTTP_GET " + ckRS1 + ":80/health: status 200",
			checker: `HTTP_GET {
            url {
                path /health
                status_code 201-299 500
            }
            TIMING
        }`},
		{needs: progNginx, vs: ckVIP + ":82", rs: ckRS1, port: 82, proto: "TCP", rsPort: 80,
			err: "HTTP_GET " + ckRS1 + ":80/: digest " + p.httpDigest + ", want 00000000000000000000000000000000",
			checker: `HTTP_GET {
            url {
                path /
                digest 00000000000000000000000000000000
            }
            TIMING
        }`},
		// The right virtual host but no enable_sni: nginx routes on Host
		// and answers 200, but saw no SNI, so the body and its digest
		// differ.
		{needs: progNginx, vs: ckVIP + ":444", rs: ckRS2, port: 444, proto: "TCP", rsPort: 443,
			err: "SSL_GET " + ckRS2 + ":443/: digest " + md5hex("sni= host="+tlsName+"\n") + ", want " + p.sniDigest,
			checker: `SSL_GET {
            virtualhost ` + tlsName + `
            url {
                path /
                digest ` + p.sniDigest + `
            }
            TIMING
        }`},
		// A virtual host nginx has no server_name for: the default
		// server's 404.
		{needs: progNginx, vs: ckVIP + ":445", rs: ckRS2, port: 445, proto: "TCP", rsPort: 443,
			err: "SSL_GET " + ckRS2 + ":443/: status 404",
			checker: `SSL_GET {
            enable_sni
            virtualhost other.example.test
            url {
                path /
            }
            TIMING
        }`},
		// dnsmasq runs with --no-resolv and no upstream: it refuses names
		// it was not given.
		{needs: progDnsmasq, vs: ckVIP + ":54", rs: ckRS1, port: 54, proto: "UDP", rsPort: 53,
			err: "DNS_CHECK " + ckRS1 + ":53: rcode REFUSED",
			checker: `DNS_CHECK {
            type A
            name unknown.invalid
            TIMING
        }`},
	}
}

// dnsQuery is a DNS query for example.test A with ID 0x1234, recursion
// desired: UDP_CHECK's payload. dnsmasq's reply starts with the same ID.
const dnsQuery = "1234" + "0100" + "0001" + "0000" + "0000" + "0000" +
	"07" + "6578616d706c65" + "04" + "74657374" + "00" + "0001" + "0001"

// confParams is what the configuration depends on.
type confParams struct {
	httpDigest, sniDigest string // MD5 of nginx's answers, when it runs
	misc                  *miscScript
	have                  func(prog string) bool
}

// checksConf is the daemon's configuration: no VRRP, one virtual server
// per checker whose server program is there (and the misconfigured ones),
// every checker fast. lb_kind NAT, because only NAT lets a real server's
// port differ from the virtual server's (with DR the real server and its
// checkers use the virtual server's port); with --dataplane none nothing
// is programmed anyway.
func checksConf(p confParams) string {
	timing := fmt.Sprintf("connect_timeout %d\n            retry %d\n            delay_before_retry %d",
		int(ckTimeout/time.Second), ckRetry, int(ckBeforeRty/time.Second))
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id checks\n}\n")
	vs := func(needs string, port int, proto, rs string, rsPort int, checker string) {
		if !p.have(needs) {
			return
		}
		fmt.Fprintf(&b, `
virtual_server %s %d {
    delay_loop %d
    lb_algo rr
    lb_kind NAT
    protocol %s
    real_server %s %d {
        weight 3
        %s
    }
}
`, ckVIP, port, int(ckDelayLoop/time.Second), proto, rs, rsPort, strings.ReplaceAll(checker, "TIMING", timing))
	}
	// HTTP_GET: a path with an explicit status_code, and the digest of /.
	vs(progNginx, 80, "TCP", ckRS1, 80, `HTTP_GET {
            url {
                path /health
                status_code 200
            }
            url {
                path /
                digest `+p.httpDigest+`
            }
            TIMING
        }`)
	// SSL_GET with SNI: nginx puts the SNI it received and the Host
	// header in the body, so the digest proves both were tls.example.test.
	vs(progNginx, 443, "TCP", ckRS2, 443, `SSL_GET {
            enable_sni
            virtualhost `+tlsName+`
            url {
                path /
                status_code 200
                digest `+p.sniDigest+`
            }
            TIMING
        }`)
	vs(progNginx, 8080, "TCP", ckRS2, 80, `TCP_CHECK {
            TIMING
        }`)
	vs(progDnsmasq, 53, "UDP", ckRS1, 53, `DNS_CHECK {
            type A
            name `+dnsName+`
            TIMING
        }`)
	vs(progDnsmasq, 5353, "UDP", ckRS2, 53, `UDP_CHECK {
            payload `+dnsQuery+`
            require_reply 1234
            min_reply_length 28
            TIMING
        }`)
	vs(progSmtpd, 25, "TCP", ckRS2, 25, `SMTP_CHECK {
            helo_name checker.tandem.test
            TIMING
        }`)
	vs("", 7001, "TCP", ckRS3, 7001, `PING_CHECK {
            TIMING
        }`)
	vs("", 7000, "TCP", ckRS1, 7000, `MISC_CHECK {
            misc_path "/bin/sh `+p.misc.script+` `+p.misc.flag+`"
            misc_timeout 2
            misc_dynamic
            TIMING
        }`)
	for _, m := range misconfiguredChecks(p) {
		vs(m.needs, m.port, m.proto, m.rs, m.rsPort, m.checker)
	}
	return b.String()
}

// waitDown waits for c's real server to go unhealthy with c's error and
// returns how long that took.
func waitDown(t *testing.T, d *daemon, c cycle) time.Duration {
	t.Helper()
	var last api.RealServerStatus
	took := waitFor(t, c.checker+" real server "+c.rs+" unhealthy", 2*downBound(), func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		rs, ok := findRS(st, c.vs, c.rs)
		last = rs
		return ok && !rs.Healthy && len(rs.Checkers) == 1 && rs.Checkers[0].LastResult == "failed"
	})
	ck := last.Checkers[0]
	if ck.Type != c.checker {
		t.Errorf("checker type %q, want %q", ck.Type, c.checker)
	}
	for _, e := range c.errs {
		if !strings.Contains(ck.LastError, e) {
			t.Errorf("last_error %q does not contain %q", ck.LastError, e)
		}
	}
	if ck.LastChange.IsZero() {
		t.Error("last_change not set when the checker went down")
	}
	if last.Weight != 0 {
		t.Errorf("weight %d while unhealthy, want 0", last.Weight)
	}
	st, err := d.status()
	if err != nil {
		t.Fatal(err)
	}
	if vs := findVS(st, c.vs); vs.QuorumOK {
		t.Errorf("%s: quorum_ok with its only real server down", c.vs)
	}
	t.Logf("%s down %v after the failure began: %s", c.checker, took.Round(time.Millisecond), ck.LastError)
	if took > downBound() {
		t.Errorf("%s took %v to go down, more than %v", c.checker, took, downBound())
	}
	return took
}

// waitUp waits for c's real server to come back and returns how long that
// took.
func waitUp(t *testing.T, d *daemon, c cycle) time.Duration {
	t.Helper()
	var last api.RealServerStatus
	took := waitFor(t, c.checker+" real server "+c.rs+" healthy again", 2*upBound(), func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		rs, ok := findRS(st, c.vs, c.rs)
		last = rs
		return ok && allOK(rs)
	})
	if last.Weight != 3 {
		t.Errorf("weight %d after recovery, want the configured 3", last.Weight)
	}
	t.Logf("%s up %v after the server was back", c.checker, took.Round(time.Millisecond))
	if took > upBound() {
		t.Errorf("%s took %v to come back, more than %v", c.checker, took, upBound())
	}
	return took
}

// miscCycle drives MISC_CHECK through its flag file: exit 2+N gives
// weight N (misc_dynamic), exit 1 takes the server down, exit 0 brings it
// back with its configured weight.
func miscCycle(t *testing.T, d *daemon, m *miscScript, c cycle, report func(string)) {
	weight := func() (int, bool) {
		st, err := d.status()
		if err != nil {
			return -1, false
		}
		rs, ok := findRS(st, c.vs, c.rs)
		return rs.Weight, ok && allOK(rs)
	}
	m.set(t, 2+7)
	dyn := waitFor(t, "MISC_CHECK weight 7 from exit status 9", 2*upBound(), func() bool {
		w, ok := weight()
		return ok && w == 7
	})
	m.set(t, 1)
	down := waitDown(t, d, c)
	m.set(t, 0)
	up := waitUp(t, d, c)
	report(fmt.Sprintf("  %-10s down after %v, up after %v (weight change after %v)", c.checker,
		down.Round(time.Millisecond), up.Round(time.Millisecond), dyn.Round(time.Millisecond)))
}

// checkHumanStatus runs `tandem status` and looks for the virtual servers
// table: its header, a row per virtual server with its real server, the
// checkers' verdicts and the misconfigured checkers' errors.
func checkHumanStatus(t *testing.T, d *daemon, present []cycle, wrong []misconfigured) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tandemBin, "status", "--socket", d.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem status: %v\n%s", err, out)
	}
	text := string(out)
	for _, w := range []string{"Data plane: none", "VIRTUAL SERVER", "REAL SERVER", "WEIGHT", "HEALTHY", "CHECKERS"} {
		if !strings.Contains(text, w) {
			t.Errorf("tandem status lacks %q:\n%s", w, text)
		}
	}
	// A row starts with the virtual server's name (one real server each).
	row := func(vs string) string {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, vs+" ") {
				return line
			}
		}
		t.Errorf("tandem status has no row for %s:\n%s", vs, text)
		return ""
	}
	for _, c := range present {
		line := row(c.vs)
		for _, w := range []string{c.rs + ":", " true ", c.checker + "=ok"} {
			if line != "" && !strings.Contains(line, w) {
				t.Errorf("tandem status: the %s row lacks %q: %q", c.vs, w, line)
			}
		}
	}
	for _, m := range wrong {
		line := row(m.vs)
		for _, w := range []string{" false ", "=failed (" + m.err + ")"} {
			if line != "" && !strings.Contains(line, w) {
				t.Errorf("tandem status: the %s row lacks %q: %q", m.vs, w, line)
			}
		}
	}
}

// findVS and findRS look a virtual server and one of its real servers up
// in a status document.
func findVS(st api.Status, name string) api.VirtualServerStatus {
	for _, vs := range st.VirtualServers {
		if vs.Name == name {
			return vs
		}
	}
	return api.VirtualServerStatus{}
}

func findRS(st api.Status, vsName, rsIP string) (api.RealServerStatus, bool) {
	for _, rs := range findVS(st, vsName).RealServers {
		if rs.IP == rsIP {
			return rs, true
		}
	}
	return api.RealServerStatus{}, false
}

// allOK: healthy, and every checker has run and passed, with no error.
func allOK(rs api.RealServerStatus) bool {
	if !rs.Healthy || len(rs.Checkers) == 0 {
		return false
	}
	for _, c := range rs.Checkers {
		if c.LastResult != "ok" || c.LastError != "" {
			return false
		}
	}
	return true
}

// server is a program run in a lab node that can be stopped and started
// again with the same arguments.
type server struct {
	node, what string
	bin        string
	args       []string
	// ready reports whether the server accepts work; run in the node.
	ready func() error

	mu   sync.Mutex
	proc *lab.Proc
}

func (s *server) start(t *testing.T, l *lab.Lab) {
	t.Helper()
	p, err := l.Start(s.node, s.bin, s.args...)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	waitFor(t, s.what+" on "+s.node, 10*time.Second, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("%s on %s exited: %v\n%s", s.what, s.node, p.Wait(), p.Output())
		default:
		}
		return l.Do(s.node, s.ready) == nil
	})
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	stopProc(t, p)
}

// stopProc stops a server with SIGTERM (nginx, dnsmasq and Python all
// exit on it, closing their sockets).
func stopProc(t *testing.T, p *lab.Proc) {
	t.Helper()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// tcpReady reports whether something accepts TCP connections at addr.
func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func setLink(t *testing.T, l *lab.Lab, node string, up bool) {
	t.Helper()
	if err := l.SetLink(node, ckIface, up); err != nil {
		t.Fatal(err)
	}
}

// findBin finds a server program in PATH or in the sbin directories,
// which a non-login root's PATH may lack.
func findBin(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// smtpdPython finds a python3 with the smtpd module (Python <= 3.11),
// preferring Debian's over one earlier in PATH such as a pyenv shim,
// which may be another version.
func smtpdPython() (string, bool) {
	var cands []string
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		cands = append(cands, "/usr/bin/python3")
	}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if exec.Command(p, "-W", "ignore", "-c", "import smtpd").Run() == nil {
			return p, true
		}
	}
	return "", false
}

// dnsmasqArgs runs dnsmasq as an authoritative-only server for
// example.test on ip:53: in the foreground, no configuration file, no
// /etc/hosts, no upstream, logging to stderr, its pid file in the test's
// directory, and staying root (dnsmasq-base may have no dnsmasq user).
func dnsmasqArgs(t *testing.T, ip string) []string {
	return []string{"-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=53",
		"--listen-address=" + ip, "--bind-interfaces", "--address=/" + dnsName + "/" + ip,
		"--pid-file=" + filepath.Join(t.TempDir(), "dnsmasq.pid"), "--user=root", "--log-facility=-"}
}

// tlsNginx is Debian's nginx serving HTTPS on 443 with a self-signed
// certificate for tls.example.test: a default server answering 404 and a
// server_name tls.example.test answering 200, both with the SNI they got
// and the Host header in the body.
type tlsNginx struct {
	lab *lab.Lab
	srv *server
}

func newTLSNginx(t *testing.T, l *lab.Lab, node, bin string) *tlsNginx {
	t.Helper()
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, tlsName)
	conf := filepath.Join(dir, "nginx.conf")
	text := lab.NginxConf(dir, fmt.Sprintf(`    ssl_certificate %[1]s;
    ssl_certificate_key %[2]s;
    server {
        listen 443 ssl default_server;
        return 404 "default sni=$ssl_server_name host=$host\n";
    }
    server {
        listen 443 ssl;
        server_name %[3]s;
        location / {
            return 200 "sni=$ssl_server_name host=$host\n";
        }
    }`, cert, key, tlsName))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tlsNginx{lab: l, srv: &server{node: node, what: "nginx (TLS)", bin: bin, args: []string{"-c", conf, "-p", dir},
		ready: tcpReady("127.0.0.1:443")}}
}

func (n *tlsNginx) start(t *testing.T) { t.Helper(); n.srv.start(t, n.lab) }
func (n *tlsNginx) stop(t *testing.T)  { t.Helper(); n.srv.stop(t) }

// selfSigned writes a fresh ECDSA P-256 certificate for name and its key
// as PEM files in dir.
func selfSigned(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// fetchBody GETs path from addr inside node, over TLS with SNI sni when
// sni is set, with Host host (addr's host when empty), and returns the
// body of a 2xx answer. Dialing happens on the calling goroutine, which
// l.Do has put in the node's namespace.
func fetchBody(t *testing.T, l *lab.Lab, node, addr, path, sni, host string) string {
	t.Helper()
	if host == "" {
		host = addr
	}
	var body string
	err := l.Do(node, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
			return err
		}
		if sni != "" {
			tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err := tc.Handshake(); err != nil {
				return err
			}
			c = tc
		}
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: "+host+"\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %d: %q", resp.StatusCode, b)
		}
		body = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("GET %s%s from %s: %v", addr, path, node, err)
	}
	return body
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// miscScript is MISC_CHECK's program: it exits with the number in its
// flag file, which the test rewrites.
type miscScript struct {
	script, flag string
}

func newMiscScript(t *testing.T) *miscScript {
	t.Helper()
	dir := t.TempDir()
	m := &miscScript{script: filepath.Join(dir, "check.sh"), flag: filepath.Join(dir, "exit-code")}
	// An unreadable or empty flag file fails the check rather than
	// passing it by accident.
	text := "read code < \"$1\" || exit 1\nexit \"${code:-1}\"\n"
	if err := os.WriteFile(m.script, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m.set(t, 0)
	return m
}

// set writes the exit code through a rename, so the script never reads
// a half-written file.
func (m *miscScript) set(t *testing.T, code int) {
	t.Helper()
	tmp := m.flag + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", code), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, m.flag); err != nil {
		t.Fatal(err)
	}
}
