package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"tandem/internal/config"
	"tandem/internal/daemon"
	"tandem/internal/notify"
)

func newCheckCmd() *cobra.Command {
	var file, configID, dataplane string
	var dump bool
	cmd := &cobra.Command{
		Use:   "check -f FILE [--config-id ID] [--dataplane DP] [--dump]",
		Short: "Validate a keepalived.conf and report every problem with its position",
		Long: `check reads a keepalived.conf as "tandem run" would and prints one
"FILE:LINE:COL: error|warning: message" line per problem. It exits 0 when the
configuration can run (warnings allowed), 1 when it has errors, 2 on usage
errors. --dataplane nft or none adds warnings for what the configuration asks
of kernel IPVS alone (lvs_sync_daemon). --dump prints the validated model,
with every default filled in, as indented JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("check: -f FILE is required")
			}
			switch dataplane {
			case daemon.DataplaneAuto, daemon.DataplaneIPVS, daemon.DataplaneNFT, daemon.DataplaneNone:
			default:
				return fmt.Errorf("check: --dataplane %q: use auto, ipvs, nft or none", dataplane)
			}
			cfg, diags := config.Load(file, config.Options{ConfigID: configID})
			if !diags.HasErrors() {
				diags = append(diags, daemon.CheckDataplane(cfg, dataplane)...)
				// What tandem run would refuse at start.
				diags = append(diags, notify.CheckFIFOs(&cfg.Global.Ops)...)
			}
			for _, d := range diags {
				fmt.Fprintln(cmd.ErrOrStderr(), d)
			}
			if diags.HasErrors() {
				return exitError{1}
			}
			if dump {
				b, err := json.MarshalIndent(cfg, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file")
	cmd.Flags().StringVar(&configID, "config-id", "", "id selecting @ID lines (default: short host name)")
	cmd.Flags().BoolVar(&dump, "dump", false, "print the validated model as JSON")
	cmd.Flags().StringVar(&dataplane, "dataplane", daemon.DataplaneAuto, "the data plane tandem run will use: auto, ipvs, nft or none")
	return cmd
}
