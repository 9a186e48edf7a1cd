package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
)

func newHandoverCmd() *cobra.Command {
	var socket, to string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "handover [--to PEER] [--socket PATH] [INSTANCE...]",
		Short: "Hand the VIPs of master instances to a backup, make-before-break",
		Long: `handover makes the named VRRP instances (every instance that is MASTER
here, when none is named) hand their mastership to a backup with no
request lost: the master advertises priority 0, so the best backup takes
over after its Skew_Time and announces the VIPs (gratuitous ARP /
unsolicited NA); only once that new master is heard does the old one stop
claiming the VIPs. It keeps them for handover_drain more (default
garp_master_delay + 1 s), forwarding what still reaches it from clients
whose ARP caches have not moved yet, but answers no ARP / neighbour
solicitation for them, then removes them. The backups need nothing new:
any VRRP router, keepalived included, takes over on a priority 0 advert.

After a handover the instance does not preempt until it is master again
(by a handover back, or because the new master went silent), so that a
higher priority does not take the VIPs straight back. If no backup takes
over within Master_Down_Interval, the instance becomes master again and
handover fails.

--to PEER: VRRP lets nobody pick the next master; with multicast adverts
every backup hears the priority 0 advert and the highest priority wins. So
--to needs PEER in the instances' unicast_peer lists: the priority 0
advert then goes to PEER alone, which takes over while the other backups
still wait out Master_Down_Interval. A backup with a higher priority and
preempt will still preempt PEER afterwards, as VRRP says; handover reports
who took over and fails if it was not PEER.

Sync group members cannot be handed over yet. handover waits until each
instance's new master is heard (at most --timeout) and prints it.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := api.Handover(ctx, socket, api.HandoverRequest{Instances: names, To: to})
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem handover: %v\n", err)
				return exitError{1}
			}
			failed := false
			for _, r := range waitHandedOver(ctx, socket, res.Instances) {
				switch {
				case r.err != nil:
					failed = true
					fmt.Fprintf(cmd.ErrOrStderr(), "tandem handover: %s: %v\n", r.name, r.err)
				case to != "" && r.master != to:
					failed = true
					fmt.Fprintf(cmd.ErrOrStderr(), "tandem handover: %s: %s took over, not %s\n", r.name, r.master, to)
				case r.until.IsZero():
					fmt.Fprintf(cmd.OutOrStdout(), "%s: handed over to %s; VIPs removed (handover_drain 0)\n", r.name, r.master)
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "%s: handed over to %s; VIPs draining until %s\n", r.name, r.master, r.until.Format("15:04:05.000"))
				}
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	cmd.Flags().StringVar(&to, "to", "", "hand over to this unicast peer (needs unicast_peer)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the new masters")
	return cmd
}

// handedOver is how one instance's handover ended.
type handedOver struct {
	name   string
	master string    // the new master
	until  time.Time // end of the drain (zero: none)
	err    error
}

// waitHandedOver polls the daemon until each instance has heard its new
// master, or is master again (nobody took over), or ctx ends.
func waitHandedOver(ctx context.Context, socket string, names []string) []handedOver {
	out := make([]handedOver, len(names))
	for i, n := range names {
		out[i] = handedOver{name: n, err: fmt.Errorf("no new master heard")}
	}
	pending := slices.Clone(names)
	for len(pending) > 0 {
		if st, err := api.Fetch(ctx, socket); err == nil {
			for _, in := range st.Instances {
				i := slices.Index(names, in.Name)
				if i < 0 || !slices.Contains(pending, in.Name) {
					continue
				}
				switch {
				case in.State == "MASTER":
					out[i].err = fmt.Errorf("no backup took over within Master_Down_Interval: it is master again")
				case in.State == "BACKUP" && in.MasterIP != "":
					out[i] = handedOver{name: in.Name, master: in.MasterIP, until: in.DrainingUntil}
				default:
					continue
				}
				pending = slices.DeleteFunc(pending, func(n string) bool { return n == in.Name })
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out
}
