package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// tandemBin is the tandem binary the root tests run in the lab's nodes,
// built once in TestMain.
var tandemBin string

func TestMain(m *testing.M) {
	os.Exit(lab.RunWithTandem(m, &tandemBin))
}

// testWriter logs each line the demo prints, as it prints it, so that a
// slow step shows where the time goes.
type testWriter struct {
	t   *testing.T
	buf bytes.Buffer
	all bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.all.Write(p)
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

// TestDemo runs `tandem lab demo` end to end, with its built-in examples:
// ~20-35 s, most of it seed000's health-check timing (delay_loop 6,
// retry 3, delay_before_retry 3).
func TestDemo(t *testing.T) {
	lab.RequireRoot(t)
	w := &testWriter{t: t}
	start := time.Now()
	results, err := Run(t.Context(), Options{Bin: tandemBin, Web: WebAuto, Out: w})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if !AllPassed(results) || len(results) != 3 {
		t.Fatalf("demo: not all three tests passed: %+v", results)
	}
	for _, r := range results {
		t.Logf("timing: %s %v (%s)", r.Name, r.Took.Round(time.Millisecond), r.Detail)
	}
	checkOutage(t, results[1].Outage)
	t.Logf("timing: demo %v in all", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(w.all.String(), "lab torn down") {
		t.Error("the demo did not report its teardown")
	}
}

// checkOutage: the client of a crashed master is unserved for about the
// backup's Master_Down_Interval, not for ~0 (a director that is not
// MASTER forwarding) and not for much longer.
func checkOutage(t *testing.T, o *Outage) {
	t.Helper()
	if o == nil {
		t.Fatal("the failover test reported no outage")
	}
	// The master's last advertisement left at most one Master_Adver_Interval
	// (at most a third of Master_Down_Interval) before the kill, and the
	// backup waits Master_Down_Interval after it.
	lower := o.Bound - o.Bound/3
	// Then the backup adds the VIP and sends its gratuitous ARP, and the
	// client's next request (askTimeout+askPause later at most) gets
	// through; the rest of the margin is for a loaded machine.
	upper := o.Bound + 2*time.Second
	if o.Served < lower || o.Served > upper {
		t.Errorf("client unserved for %v after the kill; want within [%v, %v] (Master_Down_Interval %v)", o.Served, lower, upper, o.Bound)
	}
	if o.Failed == 0 {
		t.Errorf("no request failed during the failover: %+v", o)
	}
}

// TestUpExecDown leaves a lab up as `tandem lab up` does (with the built-in
// web server, the path taken where nginx is missing), runs commands in
// it, and takes it down: no namespace of its name, no process it started,
// no directory is left.
func TestUpExecDown(t *testing.T) {
	lab.RequireRoot(t)
	// A name of the test's own, so a lab a developer has up is not
	// touched; it shares no prefix with DefaultEnv's ("tandemlab-").
	env := Env{Name: fmt.Sprintf("tandemlabtest%d", os.Getpid()), Dir: filepath.Join(t.TempDir(), "lab")}
	t.Cleanup(func() {
		// Only after a failure is there anything left.
		if err := Down(env, &bytes.Buffer{}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	w := &testWriter{t: t}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	st, err := Up(ctx, Options{Bin: tandemBin, Web: WebBuiltin, Out: w}, env)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("timing: up %v", time.Since(start).Round(time.Millisecond))
	if len(st.Procs) != 4 {
		t.Errorf("up recorded %d processes, want 4 (2 web servers, 2 directors): %+v", len(st.Procs), st.Procs)
	}
	for _, ps := range st.Procs {
		if !running(ps) {
			t.Errorf("%s: %v (pid %d) not running after up", ps.Node, ps.Argv, ps.PID)
		}
	}

	if _, err := Up(ctx, Options{Bin: tandemBin, Web: WebBuiltin, Out: w}, env); err == nil || !strings.Contains(err.Error(), "up already") {
		t.Errorf("a second up: %v, want a refusal", err)
	}

	var out, errOut bytes.Buffer
	// "tandem" is found through the PATH Exec sets: the lab's copy.
	code, err := Exec(env, "dir1", []string{"tandem", "status", "--socket", st.Sockets["dir1"]}, nil, &out, &errOut)
	if err != nil || code != 0 || !strings.Contains(out.String(), "MASTER") {
		t.Errorf("exec dir1 tandem status: code %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, &out, &errOut)
	}
	out.Reset()
	code, err = Exec(env, "client", []string{"sh", "-c", "ip -4 -br addr show eth0; exit 3"}, nil, &out, &errOut)
	if err != nil || code != 3 || !strings.Contains(out.String(), "172.16.7.100/24") {
		t.Errorf("exec client: code %d (want 3, the command's), %v\nstdout:\n%s", code, err, &out)
	}
	if _, err := Exec(env, "nosuch", []string{"true"}, nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "no node") {
		t.Errorf("exec in a node that is not there: %v", err)
	}

	var down bytes.Buffer
	start = time.Now()
	if err := Down(env, &down); err != nil {
		t.Fatalf("down: %v\n%s", err, &down)
	}
	t.Logf("timing: down %v:\n%s", time.Since(start).Round(time.Millisecond), &down)
	for _, ps := range st.Procs {
		if running(ps) {
			t.Errorf("%s: %v (pid %d) still running after down", ps.Node, ps.Argv, ps.PID)
		}
	}
	list, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, list)
	}
	if strings.Contains(string(list), env.Name) {
		t.Errorf("namespaces left after down:\n%s", list)
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("%s left after down: %v", env.Dir, err)
	}
	if _, err := Exec(env, "dir1", []string{"true"}, nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "no lab is up") {
		t.Errorf("exec after down: %v, want \"no lab is up\"", err)
	}
	down.Reset()
	if err := Down(env, &down); err != nil || !strings.Contains(down.String(), "no lab") {
		t.Errorf("a second down: %v, %q; want \"no lab ... is up\"", err, &down)
	}
}

// TestDemoScaleOut runs `tandem lab demo --scale-out --directors 2`: the
// four scale-out tests pass.
func TestDemoScaleOut(t *testing.T) {
	lab.RequireRoot(t)
	if err := lab.BirdMissing(); err != nil {
		t.Skip(err)
	}
	w := &testWriter{t: t}
	results, err := Run(t.Context(), Options{Bin: tandemBin, Web: WebBuiltin, Out: w, ScaleOut: 2})
	if err != nil {
		t.Fatalf("demo --scale-out: %v", err)
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
	}
	if !AllPassed(results) || strings.Join(names, " ") != "ecmp spread drain crash" {
		t.Fatalf("demo --scale-out: want ecmp, spread, drain and crash passed: %+v", results)
	}
}

// TestUpScaleOut: `tandem lab up --scale-out --directors 2` leaves bird,
// three web servers and two directors running, the router's route to the
// VIP with both next hops, the client served through it, and suggestions
// that work; down removes it all.
func TestUpScaleOut(t *testing.T) {
	lab.RequireRoot(t)
	if err := lab.BirdMissing(); err != nil {
		t.Skip(err)
	}
	env := Env{Name: fmt.Sprintf("tandemlabso%d", os.Getpid()), Dir: filepath.Join(t.TempDir(), "lab")}
	t.Cleanup(func() {
		if err := Down(env, &bytes.Buffer{}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := Up(ctx, Options{Bin: tandemBin, Web: WebBuiltin, Out: &testWriter{t: t}, ScaleOut: 2}, env)
	if err != nil {
		t.Fatalf("up --scale-out: %v", err)
	}
	if len(st.Procs) != 6 || len(st.Sockets) != 2 {
		t.Errorf("up recorded %d processes and %d sockets, want 6 (bird, 3 web servers, 2 directors) and 2: %+v", len(st.Procs), len(st.Sockets), st)
	}
	run := func(node string, argv ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code, err := Exec(env, node, argv, nil, &out, &errOut)
		if err != nil || code != 0 {
			t.Fatalf("exec %s %q: code %d, %v\n%s%s", node, argv, code, err, &out, &errOut)
		}
		return out.String()
	}
	if got := strings.Count(run("router", "ip", "route", "show", lab.ScaleOutVIP.Addr().String()), "nexthop via"); got != 2 {
		t.Errorf("the router's route to the VIP has %d next hops, want 2", got)
	}
	if len(st.Try) == 0 {
		t.Fatal("no suggestions")
	}
	for _, try := range st.Try {
		node, argv, err := ExecArgs(strings.Fields(try))
		if err != nil {
			t.Fatalf("suggestion %q: %v", try, err)
		}
		if argv[0] == "tandem" && argv[1] == "drain" {
			continue // it works (the demo's drain test), but would change the lab
		}
		// Exec puts the lab's tandem first in PATH.
		if _, err := exec.LookPath(argv[0]); err != nil && argv[0] != "tandem" {
			t.Logf("suggestion %q not tried: %v", try, err) // curl, which the lab does not need
			continue
		}
		out := run(node, argv...)
		if argv[0] == "curl" && !strings.HasPrefix(out, "rs") {
			t.Errorf("%q: %q, want a real server's name", try, out)
		}
	}
}
