package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"tandem/internal/config"
)

func newFmtCmd() *cobra.Command {
	var configID string
	cmd := &cobra.Command{
		Use:   "fmt FILE",
		Short: "Print a keepalived.conf in canonical form, every value explicit",
		Long: `fmt reads FILE (with its includes, conditionals and definitions
resolved) and prints the configuration Tandem understood as one canonical
keepalived.conf: fixed block order, one keyword per line, defaults written
out. Reading the output back gives the same model. Problems are reported as
by "tandem check"; a configuration with errors is not printed (exit 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, diags := config.Load(args[0], config.Options{ConfigID: configID})
			for _, d := range diags {
				fmt.Fprintln(cmd.ErrOrStderr(), d)
			}
			if diags.HasErrors() {
				return exitError{1}
			}
			return config.Format(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.Flags().StringVar(&configID, "config-id", "", "id selecting @ID lines (default: short host name)")
	return cmd
}
