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
	var dump, compat, asJSON bool
	cmd := &cobra.Command{
		Use:   "check [-f FILE] [--config-id ID] [--dataplane DP] [--dump | --keepalived-compat [--json]]",
		Short: "Validate a keepalived.conf and report every problem with its position",
		Long: `check reads a keepalived.conf as "tandem run" would and prints one
"FILE:LINE:COL: error|warning: message" line per problem. It exits 0 when the
configuration can run (warnings allowed), 1 when it has errors, 2 on usage
errors. --dataplane nft, xdp or none adds warnings for what the configuration
asks of kernel IPVS alone (lvs_sync_daemon), and for the virtual servers the
data plane cannot program: ipvs forwards lb_kind NAT, DR and TUN; nft NAT and
DR; xdp DR and TUN type ipip or gue (TCP and UDP services on a VIP, no fwmark,
no ops). --dump prints the validated model,
with every default filled in, as indented JSON.
` + defaultConfigHelp + `

--keepalived-compat reports instead, keyword by keyword, what in FILE will
behave differently under Tandem than under keepalived 2.2.7, one line per
finding on standard output:
  FILE:LINE:COL: KEYWORD: unsupported|differs|adds|tandem: DIFFERENCE
then a count. "unsupported" keywords are accepted with a warning and have
no effect; "differs" are implemented with another behaviour (routes'
gw/or, vrrp_iptables, the firewall table's name, FIFO lines, the data
plane, ...); "adds" are what Tandem adds to keepalived's behaviour; "tandem" are
Tandem's own blocks, which keepalived does not read (conntrack_sync, bgp). Errors
go to standard error as above. It exits 0 (the report is not a verdict),
1 only when FILE has errors. --json prints the report as one JSON object.
docs/keepalived-keywords.md lists every keyword.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := configFile(file)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			if asJSON && !compat || dump && compat {
				return fmt.Errorf("check: --json goes with --keepalived-compat, --dump without it")
			}
			switch dataplane {
			case daemon.DataplaneAuto, daemon.DataplaneIPVS, daemon.DataplaneNFT, daemon.DataplaneXDP, daemon.DataplaneNone:
			default:
				return fmt.Errorf("check: --dataplane %q: use auto, ipvs, nft, xdp or none", dataplane)
			}
			if compat {
				return compatReport(cmd, file, configID, asJSON)
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
	cmd.Flags().BoolVar(&compat, "keepalived-compat", false, "report what in FILE behaves differently from keepalived, keyword by keyword")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --keepalived-compat: the report as JSON")
	cmd.Flags().StringVar(&dataplane, "dataplane", daemon.DataplaneAuto, "the data plane tandem run will use: auto, ipvs, nft, xdp or none")
	return cmd
}
