package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tandem/internal/lvs/xdp"
	"tandem/internal/realserver"
)

func newRealserverCmd() *cobra.Command {
	var vipList, dev, stateDir, tunType, bpfDir string
	var tun bool
	var tunPort uint16
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
		Use:   "realserver up|down|status --vip IP[,IP...] [--dev lo | --tun [--tun-type ipip|gue] [--tun-port N]]",
		Short: "Prepare this host as an LVS-DR or LVS-TUN real server (VIPs, tunnel devices, sysctls), undo it, or check it",
		Long: `realserver does what the seeds' lvs-web.sh scripts do, and undoes it:
  up      adds each VIP as a host address (/32, /128) on --dev with a label
          (lo:0, lo:1, ...) and sets arp_ignore=1 and arp_announce=2 on "all"
          and on --dev, recording what it changed under /run/tandem;
  down    removes the VIPs up added and restores the sysctls it changed;
  status  shows each VIP and sysctl as the host has it now, and exits 1 if
          any is not as a DR real server needs.

With --tun it prepares an LVS-TUN real server instead (lb_kind TUN), as the
Linux Virtual Server documents describe: the director encapsulates each
packet to the real server's own address, and the kernel's catch-all tunnel
device decapsulates it, so the real server may sit on another subnet:
  up      brings up tunl0 (IPv4 VIPs; kernel module ipip) and ip6tnl0 (IPv6
          VIPs; ip6_tunnel), loading the driver if need be, with the VIPs on
          them; for --tun-type gue opens --tun-port in GUE mode (as "ip fou
          add port N gue"; module fou), which hands the IPIP packet inside
          to tunl0; sets rp_filter=0 on "all" and on tunl0 (a decapsulated
          packet comes from the client, which tunl0 has no route to) and the
          ARP sysctls as for DR. It records what it changed. On a kernel
          without those tunnel drivers it attaches Tandem's XDP
          decapsulator instead to every interface that is up (IPIP, and
          GUE to --tun-port), pinned in --bpf-dir, and puts the VIPs on lo
          as for DR; with --bpf-dir "" it fails there, changing nothing;
  down    removes the VIPs and fou ports up added, restores the sysctls,
          sets down (or deletes) the devices it set up (or created), and
          detaches the XDP decapsulator;
  status  shows the devices, fou ports (or the XDP decapsulator), VIPs and
          sysctls.
--tun-type and --tun-port must match the director's "lb_kind TUN type gue
port N" (keepalived.conf(5)).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			h := realserver.DefaultHost
			h.StateDir = stateDir
			out := cmd.OutOrStdout()
			t := realserver.Tun{Type: realserver.TunType(tunType), Port: tunPort}
			switch {
			case !tun && (cmd.Flags().Changed("tun-type") || cmd.Flags().Changed("tun-port")):
				return errors.New("realserver: --tun-type and --tun-port need --tun")
			case tun && cmd.Flags().Changed("dev"):
				return errors.New("realserver: --dev does not go with --tun (the VIPs go on tunl0 and ip6tnl0)")
			}
			switch args[0] {
			case "up":
				vips, err := parse()
				if err != nil {
					return err
				}
				if tun {
					ch, err := h.UpTun(vips, t)
					if errors.Is(err, realserver.ErrNoKernelTunnel) && bpfDir != "" {
						// Nothing was changed; XDP decapsulates instead.
						fmt.Fprintf(out, "%v; using Tandem's XDP decapsulator instead\n", err)
						ch, err = h.UpDecap(vips, t, bpfDir)
					}
					if err != nil {
						return fmt.Errorf("realserver up --tun: %w", err)
					}
					if len(ch.Decap) > 0 {
						fmt.Fprintf(out, "added VIPs: %s; XDP decapsulator on: %s; sysctls changed: %d\n", orNone(ch.Added), orNone(ch.Decap), ch.Sysctls)
						return nil
					}
					fmt.Fprintf(out, "added VIPs: %s; tunnel devices created or set up: %s; fou ports added: %s; sysctls changed: %d\n",
						orNone(ch.Added), orNone(ch.Devices), orNone(fouStrings(ch.Fou)), ch.Sysctls)
					return nil
				}
				added, changed, err := h.Up(vips, dev)
				if err != nil {
					return fmt.Errorf("realserver up: %w", err)
				}
				fmt.Fprintf(out, "added VIPs: %s; sysctls changed: %d\n", orNone(added), changed)
			case "down":
				if tun {
					st, err := h.DownTun()
					if err != nil {
						return fmt.Errorf("realserver down --tun: %w", err)
					}
					fmt.Fprintf(out, "removed VIPs: %s; fou ports removed: %s; tunnel devices set down: %s, deleted: %s; XDP decapsulator removed from: %s; sysctls restored: %d\n",
						orNone(st.Added), orNone(fouStrings(st.Fou)), orNone(st.Raised), orNone(st.Created), orNone(st.Decap), len(st.Saved))
					return nil
				}
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
				var checks []realserver.Check
				if tun {
					checks, err = h.StatusTun(vips, t)
				} else {
					checks, err = h.Status(vips, dev)
				}
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
	cmd.Flags().StringVar(&dev, "dev", "lo", "device to carry the VIPs (DR)")
	cmd.Flags().BoolVar(&tun, "tun", false, "prepare an LVS-TUN real server (tunl0, ip6tnl0) instead of a DR one")
	cmd.Flags().StringVar(&tunType, "tun-type", string(realserver.TunIPIP), "with --tun: the director's encapsulation, ipip or gue")
	cmd.Flags().Uint16Var(&tunPort, "tun-port", 0, "with --tun-type gue: the GUE UDP port")
	cmd.Flags().StringVar(&bpfDir, "bpf-dir", xdp.DefaultPinDir, "with --tun, on a kernel without ipip or fou: where the XDP decapsulator that replaces them is pinned (a BPF file system); \"\" to fail instead")
	cmd.Flags().StringVar(&stateDir, "state-dir", realserver.DefaultHost.StateDir, "where up records what it changed, for down")
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func fouStrings(ps []realserver.FouPort) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
