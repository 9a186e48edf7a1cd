package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
)

func newStatusCmd() *cobra.Command {
	var socket string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json] [--socket PATH]",
		Short: "Show the running daemon's instances",
		Long: `Show the running daemon's VRRP instances, BFD sessions, virtual servers
and recent events.

For each instance, SINCE is how long ago it entered its state and REASON
why (the JSON's "since" and "reason"; each VRRP event carries its reason
too). The daemon logs the same reason in the one line it writes per
transition: msg="VRRP transition" instance=VI_1 vrid=51 from=BACKUP
to=MASTER reason="advert timeout from 10.0.0.11". The reasons:

    startup, reload, shutdown    the daemon started, reloaded or stopped it
    vrrp_startup_delay over      the start delay ended
    interface IF appeared        the instance waited for its interface
    advert timeout from ADDR     Master_Down_Timer expired: the last master
                                 heard (ADDR) went silent ("no master heard"
                                 when none was)
    priority 0 received from ADDR  the master gave up (RFC 5798 §6.4.2)
    higher priority advert from ADDR (prio P)  a master yields (§6.4.3)
    preempting lower priority master ADDR (prio P)
    handover, handover to ADDR   tandem handover made the master yield
    track_script S failed, track_interface IF down, track_file F = N,
    track_process P below quorum (N running),
    bfd B down                   a weight-0 tracker's fault
    bfd B down: master ADDR lost  fast_failover_bfd: the BFD session B to
                                 the master ADDR went down and the backup
                                 took over without waiting for
                                 Master_Down_Timer
    fault cleared: ...           the last fault went away
    sync group G member I went FAULT|BACKUP, wants MASTER
                                 the sync group moved the instance

Each BFD session (bfd_instance) has its state (AdminDown, Down, Init, Up),
its detection time, how many times it left Up (FLAPS), when it last
changed, and its control packets sent, received and dropped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			st, err := api.Fetch(ctx, socket)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return api.WriteText(cmd.OutOrStdout(), st, time.Now())
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status document as JSON")
	return cmd
}
