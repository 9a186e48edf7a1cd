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
		Args:  cobra.NoArgs,
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
