package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"tandem/internal/daemon"
)

const defaultSocket = "/run/tandem/tandem.sock"

// sigJSON is keepalived's JSON dump signal, SIGRTMIN+2 (lib/signals.h);
// glibc's SIGRTMIN is 34.
const sigJSON = syscall.Signal(34 + 2)

func newRunCmd() *cobra.Command {
	var opts daemon.Options
	var logFormat string
	var foreground bool
	cmd := &cobra.Command{
		Use:   "run -f FILE [--config-id ID] [--socket PATH]",
		Short: "Run the VRRP instances (and services) of a keepalived.conf",
		Long: `run loads FILE and runs it in the foreground: the VRRP instances (with
their tracked scripts, files, processes and interfaces, notify scripts and
SMTP alerts), the health checks of the virtual servers, and the data plane
that balances their traffic (--dataplane: kernel IPVS, nftables, or none).

One tandem runs per network namespace: a second one is refused, changing
nothing, with a message saying which one runs there (the lock is
/run/tandem/netns-INODE.lock). Once it holds the lock, it removes what a
crashed earlier run left (virtual addresses, its own IPVS services or
nftables tables) and tells systemd READY=1 when $NOTIFY_SOCKET is set.

Like keepalived's nftables mode, while an instance that is not the address
owner (priority 255) and has no "accept" (the default under vrrp_strict,
or "no_accept") is master, traffic addressed to its virtual addresses, or
sent from them, is dropped: in table inet tandem_vrrp (global_defs
"nftables NAME" names another; keepalived's default is "keepalived"), at
priority -1 ("nftables_priority"), chains "in" (input) and "out" (output)
looking up sets vips4, vips6 and, for IPv6 link-local addresses, vips6_ll
(address . ifindex) and vips6_ll_name (address . ifname, for instances with
dont_track_primary unless "nftables_ifindex"); neighbour discovery is let
through; "nftables_counters" counts. As with keepalived, kernel IPVS
services on those addresses then get nothing (set "accept"); the nft data
plane takes its traffic before the input hook. Each state change is one transaction
of set elements; the table goes at stop. "vrrp_iptables" and
"vrrp_ipsets" select the same nftables rules, with a warning. Signals, as keepalived:
  SIGTERM, SIGINT  stop: a master advertises priority 0 so that the backup
                   takes over at once; every address, route, rule and
                   data-plane entry Tandem added is removed
  SIGHUP           reload: read FILE again, refuse it if it has errors,
                   else apply only the difference (also "tandem reload")
  SIGUSR1          write the state to keepalived.data in --dump-dir
  SIGUSR2          write the statistics to keepalived.stats
  SIGRTMIN+2       write the state as JSON to keepalived.json
The status socket serves "tandem status", "tandem lvs list" and
"tandem reload".

static_ipaddress, static_routes and static_rules are added at start,
whatever VRRP does (what an earlier run left is removed first), changed
one by one by a reload, and removed at stop, as keepalived does. The
data plane follows global_defs:
  lvs_flush         at start, IPVS: flush the whole table, other
                    programs' services included; nftables: delete
                    Tandem's own tables (nothing else is Tandem's)
  lvs_flush_onstop  at stop, IPVS: flush the whole table; with VS, or
                    without the keyword, Tandem deletes each of its own
                    services whole; nftables: Tandem's tables are always
                    deleted whole at stop
  lvs_timeouts      IPVS's connection timeouts, set at start and on each
                    reload and put back at stop; nftables has no IPVS
                    connection table and warns that it ignores them
persistence_engine (sip) is passed to IPVS; nftables warns that it has
none.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigFile == "" {
				return fmt.Errorf("run: -f FILE is required")
			}
			log, err := newLogger(logFormat)
			if err != nil {
				return err
			}
			opts.Log, opts.Version = log, version
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// SIGHUP reloads, as for keepalived.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			opts.Reloads = hup
			// keepalived's dump signals: SIGUSR1, SIGUSR2, SIGJSON (SIGRTMIN+2).
			dumps := make(chan os.Signal, 1)
			signal.Notify(dumps, syscall.SIGUSR1, syscall.SIGUSR2, sigJSON)
			defer signal.Stop(dumps)
			opts.Dumps = dumps
			err = daemon.Run(ctx, opts)
			var ce *daemon.ConfigError
			if errors.As(err, &ce) {
				for _, d := range ce.Diagnostics {
					fmt.Fprintln(cmd.ErrOrStderr(), d)
				}
				return exitError{1}
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem: %v\n", err)
				return exitError{1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.ConfigFile, "file", "f", "", "configuration file")
	f.StringVar(&opts.ConfigID, "config-id", "", "id selecting @ID lines (default: short host name)")
	f.StringVar(&opts.Socket, "socket", defaultSocket, "status socket")
	f.StringVar(&opts.HTTP, "http", "", "address for the HTTP status listener (/metrics, /status.json, /), e.g. 127.0.0.1:9400; off by default")
	f.StringVar(&opts.Dataplane, "dataplane", "auto", "load-balancing data plane: auto, ipvs, nft, or none (health checks only)")
	f.BoolVar(&opts.PlainSockets, "no-io-uring", false, "run TCP_CHECK on plain sockets, one system call at a time, instead of in batches through io_uring (used by default when the kernel allows)")
	f.StringVar(&opts.DumpDir, "dump-dir", "", "where SIGUSR1/SIGUSR2/SIGRTMIN+2 write keepalived's dump files (default: the temporary directory, /tmp)")
	f.StringVar(&logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	// keepalived's -n (--dont-fork): Tandem always stays in the foreground.
	f.BoolVarP(&foreground, "dont-fork", "n", false, "stay in the foreground (always the case; accepted for keepalived compatibility)")
	return cmd
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "auto":
		if !term.IsTerminal(int(os.Stderr.Fd())) {
			return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
		}
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text, json or auto", format)
}
