package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
)

func newLVSCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "lvs", Short: "The running daemon's load-balancing table"}
	var socket string
	list := &cobra.Command{
		Use:   "list [--socket PATH]",
		Short: "Print the live table in ipvsadm -Ln layout, for either data plane",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			t, err := api.FetchTable(ctx, socket)
			if err != nil {
				return err
			}
			return printTable(cmd.OutOrStdout(), t)
		},
	}
	list.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	cmd.AddCommand(list)
	return cmd
}

// printTable writes t as `ipvsadm -Ln` does.
func printTable(w io.Writer, t api.Table) error {
	fmt.Fprintf(w, "Tandem data plane: %s\n", t.Dataplane)
	fmt.Fprintf(w, "Prot LocalAddress:Port Scheduler Flags\n")
	fmt.Fprintf(w, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	for _, s := range t.Services {
		line := fmt.Sprintf("%-4s %s %s", s.Protocol, s.Address, s.Scheduler)
		if s.Flags != "" {
			line += " " + s.Flags
		}
		if s.Persistence > 0 {
			line += fmt.Sprintf(" persistent %d", s.Persistence)
		}
		fmt.Fprintln(w, line)
		for _, d := range s.Dests {
			fmt.Fprintf(w, "  -> %-28s %-7s %-6d %-10d %-10d\n", d.Address, d.Forward, d.Weight, d.ActiveConn, d.InActConn)
		}
	}
	return nil
}
