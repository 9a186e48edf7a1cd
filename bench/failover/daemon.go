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
	// bfd: it runs the crash cases' BFD rows with a BFD session and
	// fast_failover_bfd (Tandem; keepalived has no BFD-driven takeover).
	bfd bool
	// bfdUse is the vrrp_instance's line(s) that tie it to the BFD
	// session where one runs: Tandem's fast_failover_bfd, keepalived's
	// track_bfd (the closest it has).
	bfdUse string
	// bfdDown marks the log line of each Up to Down change of the BFD
	// session; every one is a flap while the peer lives.
	bfdDown []string
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
// With bfdUse, a BFD session to the other router (bfdConfig) goes before
// it and bfdUse goes in the instance (impl.bfdUse).
func config(node, state string, priority int, a advert, sched threadSched, bfdUse string) string {
	auth := ""
	if a.version == 2 {
		auth = "    authentication {\n        auth_type PASS\n        auth_pass 123456\n    }\n"
	}
	session := ""
	if bfdUse != "" {
		session = bfdConfig(node)
		auth += bfdUse
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
		return &daemon{proc: p, state: func() string { return lastState(p.Output(), instance) }, reason: func() string { return "" },
			masters: func() int { return strings.Count(p.Output(), "("+instance+") Entering MASTER STATE") },
			// keepalived does not say at what rate its session runs.
			bfdFast: func() bool { return lastState(p.Output(), bfdSession) == "Up" }}, nil
	}
}

// lastState is the state of the last "(name) Entering X STATE" line of a
// keepalived log, for a VRRP instance or a BFD session; keepalived has no
// status query.
func lastState(log, name string) string {
	mark := "(" + name + ") Entering "
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

// threadSched is the protocol threads' scheduling both implementations
// get: vrrp_rt_priority and vrrp_rlimit_rttime (microseconds), 0 leaving
// each out, and vrrp_no_swap; with bfd, the same for bfd_.
type threadSched struct {
	rtPriority, rlimitRTTime int
	noSwap                   bool
	bfd                      bool
}

func (s threadSched) String() string {
	var b strings.Builder
	roles := []string{"vrrp"}
	if s.bfd {
		roles = append(roles, "bfd")
	}
	for _, role := range roles {
		if s.rtPriority > 0 {
			fmt.Fprintf(&b, "    %s_rt_priority %d\n", role, s.rtPriority)
		}
		if s.rlimitRTTime > 0 {
			fmt.Fprintf(&b, "    %s_rlimit_rttime %d\n", role, s.rlimitRTTime)
		}
		if s.noSwap {
			fmt.Fprintf(&b, "    %s_no_swap\n", role)
		}
	}
	return b.String()
}

// startRouter writes the configuration for node and starts it, with
// im's BFD session if bfd (see config).
func startRouter(im impl, l *lab.Lab, dir, node, state string, priority int, a advert, bfd bool, sched threadSched) (*daemon, error) {
	conf := filepath.Join(dir, node+".conf")
	use := ""
	if bfd {
		use = im.bfdUse
	}
	if err := os.WriteFile(conf, []byte(config(node, state, priority, a, sched, use)), 0o644); err != nil {
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
