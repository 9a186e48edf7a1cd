package main

import (
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tandem/internal/realserver"
)

func newRealserverCmd() *cobra.Command {
	var vipList, dev, stateDir string
	parse := func() ([]netip.Addr, error) {
		var vips []netip.Addr
		for _, s := range strings.Split(vipList, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--vip %q: not an IP address", s)
			}
			vips = append(vips, a)
		}
		if len(vips) == 0 {
			return nil, fmt.Errorf("--vip IP[,IP...] is required")
		}
		return vips, nil
	}
	cmd := &cobra.Command{
		Use:   "realserver up|down|status --vip IP[,IP...] [--dev lo]",
		Short: "Prepare this host as an LVS-DR real server (VIP on lo, ARP sysctls), undo it, or check it",
		Long: `realserver does what the seeds' lvs-web.sh scripts do, and undoes it:
  up      adds each VIP as a host address (/32, /128) on --dev with a label
          (lo:0, lo:1, ...) and sets arp_ignore=1 and arp_announce=2 on "all"
          and on --dev, recording what it changed under /run/tandem;
  down    removes the VIPs up added and restores the sysctls it changed;
  status  shows each VIP and sysctl as the host has it now, and exits 1 if
          any is not as a DR real server needs.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			h := realserver.DefaultHost
			h.StateDir = stateDir
			out := cmd.OutOrStdout()
			switch args[0] {
			case "up":
				vips, err := parse()
				if err != nil {
					return err
				}
				added, changed, err := h.Up(vips, dev)
				if err != nil {
					return fmt.Errorf("realserver up: %w", err)
				}
				fmt.Fprintf(out, "added VIPs: %s; sysctls changed: %d\n", orNone(added), changed)
			case "down":
				st, err := h.Down(dev)
				if err != nil {
					return fmt.Errorf("realserver down: %w", err)
				}
				fmt.Fprintf(out, "removed VIPs: %s; sysctls restored: %d\n", orNone(st.Added), len(st.Saved))
			case "status":
				vips, err := parse()
				if err != nil {
					return err
				}
				checks, err := h.Status(vips, dev)
				if err != nil {
					return fmt.Errorf("realserver status: %w", err)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				ok := true
				for _, c := range checks {
					verdict := "ok"
					if !c.OK {
						verdict, ok = "NOT READY", false
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.What, c.Have, verdict)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if !ok {
					return exitError{1}
				}
			default:
				return fmt.Errorf("realserver: %q is not up, down or status", args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&vipList, "vip", "", "virtual IP addresses, comma separated")
	cmd.Flags().StringVar(&dev, "dev", "lo", "device to carry the VIPs")
	cmd.Flags().StringVar(&stateDir, "state-dir", realserver.DefaultHost.StateDir, "where up records what it changed, for down")
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
