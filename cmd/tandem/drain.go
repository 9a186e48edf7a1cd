package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
)

func newDrainCmd() *cobra.Command {
	var socket string
	var undo bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain [--undo] [--socket PATH]",
		Short: "Take this director out of the routers' rotation (bgp), or put it back",
		Long: `drain takes a director of the bgp block out of the routers' rotation
without stopping it: every VIP route it announces is announced again with
the GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326), so that routers that
honour it move the traffic to the other directors, and withdrawn after
graceful_shutdown_delay. The director keeps running and forwarding what
still reaches it; its VIPs stay withdrawn whatever the health checks say,
until "tandem drain --undo" announces the servable ones again (a restart
does too). drain returns once the routes are withdrawn and names them.

It fails without a bgp block, when already drained, and (--undo) when not
drained. docs/bgp.md describes the mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := api.Drain(ctx, socket, api.DrainRequest{Undo: undo})
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem drain: %v\n", err)
				return exitError{1}
			}
			vips := strings.Join(res.VIPs, " ")
			if vips == "" {
				vips = "none"
			}
			if undo {
				fmt.Fprintf(cmd.OutOrStdout(), "back in rotation; announced: %s\n", vips)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "drained; withdrawn: %s\n", vips)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	cmd.Flags().BoolVar(&undo, "undo", false, "put the director back into rotation")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the daemon (the drain takes graceful_shutdown_delay)")
	return cmd
}
