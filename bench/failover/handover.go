package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// The planned handover rows: seed004's layout (directors dir1 .11 and
// dir2 .12, real servers rs1 .31 and rs2 .32 carrying the VIP on lo,
// client .50, VIP 172.16.0.30 on enp0s3), an rr DR service on VIP:7070
// in Tandem's nftables data plane on both directors, and a client making
// handoverRate short TCP connections a second to the VIP while the VIP is
// handed back and forth handovers times, handoverGap apart.
const (
	handoverRate = 1000
	handoverGap  = 500 * time.Millisecond
)

// trigger is how a row moves the VIP.
type trigger int

const (
	// command: `tandem handover` on the master.
	command trigger = iota
	// reload: the backup's priority is raised above the master's and the
	// backup reloaded (SIGHUP, `tandem reload`): it preempts.
	reload
)

// handoverCase is one planned handover row.
type handoverCase struct {
	name    string
	vrrp    string // "tandem" or "keepalived": who runs VRRP
	trigger trigger
	drain   string // Tandem's handover_drain ("" default)
}

var handoverCases = []handoverCase{
	{"handover: tandem handover", "tandem", command, ""},
	{"handover: tandem reload (priority)", "tandem", reload, ""},
	{"handover: tandem reload, handover_drain 0", "tandem", reload, "0"},
	// keepalived has no handover command; its nearest equivalent is a
	// priority change and a reload. It runs VRRP only (-P: this kernel
	// has no IPVS); a Tandem with the virtual_server alone is the data
	// plane, as in the other rows.
	{"handover: keepalived reload (priority)", "keepalived", reload, ""},
}

// handoverResult is one row's outcome.
type handoverResult struct {
	Case      string `json:"case"`
	Handovers int    `json:"handovers"`
	Answered  int    `json:"answered"`
	Failed    int    `json:"failed"`
	// Errors are the first failures, with their times.
	Errors []string `json:"errors,omitempty"`
	Err    string   `json:"error,omitempty"`
}

// director is one director of a handover row: the daemon running VRRP,
// and where its configuration goes.
type director struct {
	node   string
	d      *daemon
	conf   string // the VRRP daemon's configuration file
	socket string // Tandem's status socket (the data plane's, with keepalived)
	prio   int
	drain  string
	tandem bool
}

// write writes the director's VRRP configuration.
func (r *director) write() error {
	text := lab.HandoverVRRP(r.prio, r.drain)
	if r.tandem {
		text += lab.HandoverService
	}
	return os.WriteFile(r.conf, []byte(text), 0o644)
}

// measureHandover runs one handover row in a fresh lab.
func measureHandover(ctx context.Context, tandemBin string, ka impl, c handoverCase, handovers int) (res handoverResult, err error) {
	res = handoverResult{Case: c.name, Handovers: handovers}
	y := lab.Seed004()
	l, err := lab.New(y.Spec())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	dir, err := os.MkdirTemp("", "handover-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	vip := y.VIPs[0]
	for _, rs := range y.Reals {
		out, err := l.Command(ctx, rs.Name, tandemBin, "realserver", "up", "--vip", vip.String(), "--state-dir", filepath.Join(dir, rs.Name)).CombinedOutput()
		if err != nil {
			return res, fmt.Errorf("realserver up on %s: %v: %s", rs.Name, err, out)
		}
		name := rs.Name
		stop, err := l.Serve(rs.Name, fmt.Sprintf(":%d", lab.HandoverPort), func(c net.Conn) { c.Write([]byte(name + "\n")) })
		if err != nil {
			return res, err
		}
		defer stop()
	}
	dirs := []*director{{node: "dir1", prio: 100}, {node: "dir2", prio: 90}}
	for _, r := range dirs {
		r.conf, r.socket, r.drain, r.tandem = filepath.Join(dir, r.node+".conf"), filepath.Join(dir, r.node+".sock"), c.drain, c.vrrp == "tandem"
		if err := r.write(); err != nil {
			return res, err
		}
		if !r.tandem {
			// The data plane: a Tandem with the service alone.
			dp := filepath.Join(dir, r.node+"-dp.conf")
			if err := os.WriteFile(dp, []byte(lab.HandoverService), 0o644); err != nil {
				return res, err
			}
			p, err := l.Start(r.node, tandemBin, "run", "-f", dp, "--socket", r.socket, "--log-format", "text")
			if err != nil {
				return res, err
			}
			defer p.Stop(5 * time.Second)
			if r.d, err = ka.start(l, r.node, r.conf, dir); err != nil {
				return res, err
			}
		} else if r.d, err = startTandem(tandemBin)(l, r.node, r.conf, dir); err != nil {
			return res, err
		}
		defer r.d.proc.Stop(5 * time.Second)
		want := map[bool]string{true: "MASTER", false: "BACKUP"}[r.node == "dir1"]
		if err := waitState(ctx, r.d, want, 15*time.Second); err != nil {
			return res, fmt.Errorf("%s on %s: %w\n%s", c.vrrp, r.node, err, tail(r.d))
		}
	}
	target := netip.AddrPortFrom(vip, lab.HandoverPort)
	if err := waitServed(ctx, l, dirs, target); err != nil {
		return res, err
	}
	load := l.StartConnLoad(clientNode, target, handoverRate, 8, time.Second)
	from, to := dirs[0], dirs[1]
	for i := range handovers {
		if err := lab.Sleep(ctx, handoverGap); err != nil {
			load.Stop()
			return res, err
		}
		if err := handOver(ctx, tandemBin, c, from, to); err != nil {
			load.Stop()
			return res, fmt.Errorf("handover %d, %s to %s: %w\n--- %s:\n%s--- %s:\n%s", i+1, from.node, to.node, err, from.node, tail(from.d), to.node, tail(to.d))
		}
		if err := waitState(ctx, to.d, "MASTER", 10*time.Second); err != nil {
			load.Stop()
			return res, fmt.Errorf("handover %d: %s: %w\n%s", i+1, to.node, err, tail(to.d))
		}
		from, to = to, from
	}
	if err := lab.Sleep(ctx, time.Second); err != nil {
		load.Stop()
		return res, err
	}
	got, err := load.Stop()
	res.Answered, res.Failed = got.Total(), len(got.Failed)
	res.Errors = got.Failed[:min(len(got.Failed), 5)]
	return res, err
}

// waitServed waits until both directors' checkers see both real servers
// up and the client gets an answer through the VIP.
func waitServed(ctx context.Context, l *lab.Lab, dirs []*director, target netip.AddrPort) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		up := true
		for _, r := range dirs {
			up = up && bothHealthy(ctx, r.socket)
		}
		if up && l.Do(clientNode, func() error { _, _, err := lab.AskName(ctx, target, time.Second); return err }) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the DR service is not served through the VIP after 30 s")
		}
		if err := lab.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// bothHealthy reports whether the Tandem behind socket has both real
// servers of its one virtual server up.
func bothHealthy(ctx context.Context, socket string) bool {
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := api.Fetch(fctx, socket)
	if err != nil || len(st.VirtualServers) != 1 {
		return false
	}
	n := 0
	for _, rs := range st.VirtualServers[0].RealServers {
		if rs.Healthy {
			n++
		}
	}
	return n == 2
}

// handOver moves the VIP from the master, from, to the backup, to, as the
// row says.
func handOver(ctx context.Context, tandemBin string, c handoverCase, from, to *director) error {
	if c.trigger == command {
		out, err := exec.CommandContext(ctx, tandemBin, "handover", "--socket", from.socket).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tandem handover: %v: %s", err, out)
		}
		return nil
	}
	// Priorities only go up (101, 102, ...): one reload per handover.
	to.prio = from.prio + 1
	if err := to.write(); err != nil {
		return err
	}
	if !to.tandem {
		return to.d.proc.Signal(syscall.SIGHUP)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := api.Reload(rctx, to.socket)
	return err
}

// printHandovers writes the handover rows.
func printHandovers(w io.Writer, rs []handoverResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "case\thandovers\tconnections\tfailed\n")
	for _, r := range rs {
		failed := fmt.Sprint(r.Failed)
		if r.Err != "" {
			failed = "run failed: " + strings.SplitN(r.Err, "\n", 2)[0]
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Case, r.Handovers, r.Answered+r.Failed, failed)
	}
	tw.Flush()
}
