package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"tandem/internal/lab"
)

// mode is a forwarding method under test: the lab it runs in and how its
// two directors and real servers are set up. A run (run.go) is the same
// for every mode: echo servers on the real servers' port, the directors
// started with conf, n connections through vip, the master (dir1)
// crashed, and what the connections saw.
type mode struct {
	name   string
	spec   lab.Spec
	client string // the node the connections come from
	vip    netip.AddrPort
	// reals are the real servers, which must be healthy on both
	// directors before the connections open.
	reals []lab.Host
	// vsName is the virtual server as `tandem status` names it.
	vsName string
	// prepare, if set, readies real server node (DR: the VIP on lo) with
	// the tandem binary bin.
	prepare func(ctx context.Context, l *lab.Lab, bin, node, dir string) error
	// conf is director node's configuration (dir1 the master).
	conf func(node string) string
	// args are more arguments for tandem run.
	args []string
	// synced, if set, reports whether the backup, whose status socket is
	// socket, holds the state of the n open connections, which the crash
	// waits for.
	synced func(ctx context.Context, l *lab.Lab, socket string, n int) bool
	// needs is a program the mode needs (the Debian package of the same
	// name), if any.
	needs string
	// control marks a mode built to lose connections, which shows the
	// harness can see them lost: it runs only when -mode names it, and
	// is not held to the goal.
	control bool
}

var modes = []mode{drMode(), drControlMode(), natMode(), natControlMode()}

// drMode is DR through nftables: seed004's layout and pair (lab.DRPairConf,
// advert_int 0.1, the same pool on both directors), the VIP on the real
// servers' lo.
func drMode() mode {
	y := lab.Seed004()
	return mode{
		name:   "dr-nft",
		spec:   y.Spec(),
		client: y.Client.Name,
		vip:    lab.DRPairVIP,
		reals:  y.Reals,
		vsName: lab.DRPairVIP.String(),
		prepare: func(ctx context.Context, l *lab.Lab, bin, node, dir string) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out, err := l.Command(ctx, node, bin, "realserver", "up", "--vip", lab.DRPairVIP.Addr().String(), "--state-dir", dir).CombinedOutput()
			if err != nil {
				return fmt.Errorf("tandem realserver up on %s: %w: %s", node, err, out)
			}
			return nil
		},
		conf: lab.DRPairConf{}.Conf,
	}
}

// drControlMode is drMode with a backup whose weights differ (rs2 nine
// times rs1's): its Maglev table differs from the master's, so the flows
// whose slots changed hands break at the failover.
func drControlMode() mode {
	m := drMode()
	m.name, m.control = "dr-nft-control", true
	m.conf = func(node string) string {
		if node == "dir2" {
			return lab.DRPairConf{Weights: [2]int{1, 9}}.Conf(node)
		}
		return lab.DRPairConf{}.Conf(node)
	}
	return m
}
