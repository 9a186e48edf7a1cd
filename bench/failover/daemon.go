package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// instance is the one vrrp_instance of config.
const instance = "VI_1"

// impl is a VRRP implementation under test.
type impl struct {
	name string
	bin  string
	// start runs it in node with the configuration file conf; dir is
	// the run's scratch directory (sockets, pid files).
	start func(l *lab.Lab, node, conf, dir string) (*daemon, error)
	// transition marks the log line of each of the instance's
	// transitions, and toMaster those into MASTER among them.
	transition, toMaster string
	// bfd: it runs the BFD cases with a BFD session and fast_failover_bfd
	// (Tandem; keepalived has no BFD-driven takeover).
	bfd bool
}

// daemon is one running router.
type daemon struct {
	proc *lab.Proc
	// state is the instance's state as the daemon reports it ("MASTER",
	// "BACKUP", ...), "" while it reports none.
	state func() string
	// reason is why the instance last changed state, "" where the
	// daemon does not say (keepalived has no status query).
	reason func() string
	// masters counts the times its log says it became MASTER.
	masters func() int
	// bfdFast reports whether its BFD session is Up at the configured
	// rate (a session comes up at 1 s and speeds up after); nil where it
	// runs none.
	bfdFast func() bool
}

// config is the keepalived.conf both implementations run: seed001's
// (VRID 88, group 224.100.100.100, VIP 192.168.1.100/24 on ens33, PASS
// authentication) at advert_int 1 with VRRPv2; at 0.1 it must be VRRPv3
// (VRRPv2 carries whole seconds), which has no authentication. sched
// adds its thread scheduling keywords.
//
// With bfd, a BFD session to the other router (bfdConfig) goes before it
// and the instance names it in fast_failover_bfd.
func config(node, state string, priority int, a advert, sched threadSched, bfd bool) string {
	auth := ""
	if a.version == 2 {
		auth = "    authentication {\n        auth_type PASS\n        auth_pass 123456\n    }\n"
	}
	session := ""
	if bfd {
		session = bfdConfig(node)
		auth += "    fast_failover_bfd " + bfdSession + "\n"
	}
	return session + fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_mcast_group4 224.100.100.100
%s}

vrrp_instance %s {
    state %s
    interface ens33
    virtual_router_id 88
    priority %d
    advert_int %s
    version %d
%s    virtual_ipaddress {
        192.168.1.100/24 dev ens33 label ens33:1
    }
}
`, node, sched, instance, state, priority, a.text, a.version, auth)
}

// The BFD cases' session: bfdInterval x bfdMultiplier, the 5 ms x 3.
const (
	bfdSession    = "peer"
	bfdInterval   = 5 * time.Millisecond
	bfdMultiplier = 3
)

// bfdConfig is node's BFD session to the other router.
func bfdConfig(node string) string {
	self, peer := lab.Seed001().Directors[0].Addr, lab.Seed001().Directors[1].Addr
	if node == backupNode {
		self, peer = peer, self
	}
	ms := bfdInterval.Milliseconds()
	return fmt.Sprintf(`bfd_instance %s {
    neighbor_ip %s
    source_ip %s
    min_rx %d
    min_tx %d
    multiplier %d
}
`, bfdSession, peer, self, ms, ms, bfdMultiplier)
}

func startTandem(bin string) func(*lab.Lab, string, string, string) (*daemon, error) {
	return func(l *lab.Lab, node, conf, dir string) (*daemon, error) {
		socket := filepath.Join(dir, node+".sock")
		p, err := l.Start(node, bin, "run", "-f", conf, "--socket", socket, "--log-format", "text")
		if err != nil {
			return nil, err
		}
		status := func() (api.Status, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			return api.Fetch(ctx, socket)
		}
		vi := func() api.InstanceStatus {
			st, err := status()
			if err != nil {
				return api.InstanceStatus{} // not listening yet
			}
			for _, in := range st.Instances {
				if in.Name == instance {
					return in
				}
			}
			return api.InstanceStatus{}
		}
		bfdFast := func() bool {
			st, err := status()
			if err != nil {
				return false
			}
			detect := (bfdMultiplier * bfdInterval).Seconds()
			for _, b := range st.BFD {
				if b.Name == bfdSession {
					return b.State == "Up" && b.Detection > 0 && b.Detection <= detect+0.0001
				}
			}
			return false
		}
		return &daemon{proc: p,
			state:   func() string { return vi().State },
			reason:  func() string { return vi().Reason },
			masters: func() int { return strings.Count(p.Output(), " to=MASTER ") },
			bfdFast: bfdFast,
		}, nil
	}
}

// startKeepalived runs keepalived VRRP only (-P: this kernel has no IPVS)
// with pid files of its own, so that two run side by side (FIELD-NOTES).
func startKeepalived(bin string) func(*lab.Lab, string, string, string) (*daemon, error) {
	return func(l *lab.Lab, node, conf, dir string) (*daemon, error) {
		pid := func(n string) string { return filepath.Join(dir, node+"-"+n+".pid") }
		p, err := l.Start(node, bin, "-n", "-l", "-D", "-P", "-f", conf,
			"-p", pid("main"), "-r", pid("vrrp"), "-c", pid("check"), "-b", pid("bfd"))
		if err != nil {
			return nil, err
		}
		return &daemon{proc: p, state: func() string { return lastState(p.Output()) }, reason: func() string { return "" },
			masters: func() int { return strings.Count(p.Output(), "("+instance+") Entering MASTER STATE") }}, nil
	}
}

// lastState is the state of the last "(VI_1) Entering X STATE" line of a
// keepalived log; keepalived has no status query.
func lastState(log string) string {
	const mark = "(" + instance + ") Entering "
	last := ""
	for line := range strings.Lines(log) {
		if _, rest, ok := strings.Cut(line, mark); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				last = f[0]
			}
		}
	}
	return last
}

// threadSched is the VRRP thread's scheduling both implementations get:
// vrrp_rt_priority and vrrp_rlimit_rttime (microseconds), 0 leaving each
// out, and vrrp_no_swap.
type threadSched struct {
	rtPriority, rlimitRTTime int
	noSwap                   bool
}

func (s threadSched) String() string {
	var b strings.Builder
	if s.rtPriority > 0 {
		fmt.Fprintf(&b, "    vrrp_rt_priority %d\n", s.rtPriority)
	}
	if s.rlimitRTTime > 0 {
		fmt.Fprintf(&b, "    vrrp_rlimit_rttime %d\n", s.rlimitRTTime)
	}
	if s.noSwap {
		b.WriteString("    vrrp_no_swap\n")
	}
	return b.String()
}

// startRouter writes the configuration for node and starts it (bfd: see
// config).
func startRouter(im impl, l *lab.Lab, dir, node, state string, priority int, a advert, bfd bool, sched threadSched) (*daemon, error) {
	conf := filepath.Join(dir, node+".conf")
	if err := os.WriteFile(conf, []byte(config(node, state, priority, a, sched, bfd)), 0o644); err != nil {
		return nil, err
	}
	d, err := im.start(l, node, conf, dir)
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", im.name, node, err)
	}
	return d, nil
}

// waitState polls d every 10 ms until it reports want.
func waitState(ctx context.Context, d *daemon, want string, timeout time.Duration) error {
	return waitUntil(ctx, d, want, timeout, func() (bool, string) {
		got := d.state()
		return got == want, fmt.Sprintf("state %q", got)
	})
}

// waitBFD polls d every 10 ms until its BFD session is Up at its
// configured rate.
func waitBFD(ctx context.Context, d *daemon, timeout time.Duration) error {
	what := fmt.Sprintf("BFD session %s Up at %v x %d", bfdSession, bfdInterval, bfdMultiplier)
	return waitUntil(ctx, d, what, timeout, func() (bool, string) { return d.bfdFast(), "not yet" })
}

// waitUntil polls cond every 10 ms until it holds, d exits or timeout
// passes; cond also says how d is, for the error.
func waitUntil(ctx context.Context, d *daemon, what string, timeout time.Duration, cond func() (ok bool, how string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, how := cond()
		if ok {
			return nil
		}
		select {
		case <-d.proc.Done():
			return fmt.Errorf("exited (%v) before reaching %s", d.proc.Wait(), what)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not %s after %v (%s)", what, timeout, how)
		}
	}
}

// tail is the end of a daemon's output, for error messages.
func tail(d *daemon) string {
	if d == nil {
		return "(not started)\n"
	}
	lines := strings.SplitAfter(d.proc.Output(), "\n")
	return strings.Join(lines[max(0, len(lines)-12):], "")
}
