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
	var stats bool
	list := &cobra.Command{
		Use:   "list [--socket PATH] [--stats]",
		Short: "Print the live table in ipvsadm -Ln layout, for any data plane",
		Long: `Print the live table in ipvsadm -Ln layout, for any data plane. --stats
prints, as ipvsadm -Ln --stats does, the packets and bytes that clients sent
to each real server (and their sums per service) instead of the
connection counts: the per-CPU counters of the xdp data plane, IPVS's
and nftables' counters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			t, err := api.FetchTable(ctx, socket)
			if err != nil {
				return err
			}
			if stats {
				return printStats(cmd.OutOrStdout(), t)
			}
			return printTable(cmd.OutOrStdout(), t)
		},
	}
	list.Flags().StringVar(&socket, "socket", defaultSocket, "status socket of the daemon")
	list.Flags().BoolVar(&stats, "stats", false, "packets and bytes from clients per real server, instead of connections")
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

// printStats writes t's counters as `ipvsadm -Ln --stats` does, with the
// columns every data plane has: packets and bytes in (from clients).
func printStats(w io.Writer, t api.Table) error {
	fmt.Fprintf(w, "Tandem data plane: %s\n", t.Dataplane)
	fmt.Fprintf(w, "%-33s %10s %12s\n", "Prot LocalAddress:Port", "InPkts", "InBytes")
	fmt.Fprintf(w, "  -> RemoteAddress:Port\n")
	for _, s := range t.Services {
		var pkts, bytes uint64
		for _, d := range s.Dests {
			pkts += d.Packets
			bytes += d.Bytes
		}
		fmt.Fprintf(w, "%-4s %-28s %10d %12d\n", s.Protocol, s.Address, pkts, bytes)
		for _, d := range s.Dests {
			fmt.Fprintf(w, "  -> %-28s %10d %12d\n", d.Address, d.Packets, d.Bytes)
		}
	}
	return nil
}
