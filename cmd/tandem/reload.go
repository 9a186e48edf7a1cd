package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
)

func newReloadCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "reload [--socket PATH]",
		Short: "Make the running daemon re-read its configuration and apply only the difference",
		Long: `reload asks the daemon to read its configuration file again (as SIGHUP
does) and prints what changed. A configuration with errors is refused: the
running one stays as it is, and the errors are printed (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			res, err := api.Reload(ctx, socket)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem reload: %v\n", err)
				return exitError{1}
			}
			out := cmd.OutOrStdout()
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			fmt.Fprintf(out, "kept: %s\nupdated: %s\nstarted: %s\nstopped: %s\nrestarted: %s\n",
				orNone(res.Kept), orNone(res.Updated), orNone(res.Started), orNone(res.Stopped), orNone(res.Restarted))
			if len(res.Errors) > 0 {
				fmt.Fprintf(out, "not applied:\n  %s\n", strings.Join(res.Errors, "\n  "))
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	return cmd
}
