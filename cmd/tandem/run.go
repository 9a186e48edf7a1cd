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

	"tandem/internal/api"
	"tandem/internal/daemon"
	"tandem/internal/lvs/xdp"
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
		Use:   "run [-f FILE] [--config-id ID] [--socket PATH]",
		Short: "Run the VRRP instances (and services) of a keepalived.conf",
		Long: `run loads FILE and runs it in the foreground: the VRRP instances (with
their tracked scripts, files, processes and interfaces, notify scripts and
SMTP alerts), the health checks of the virtual servers, and the data plane
that balances their traffic (--dataplane: kernel IPVS, nftables, XDP (DR
only), or none).
` + defaultConfigHelp + `

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
                    reload and put back at stop; xdp: tcp and udp are
                    its flow table's idle timeouts (tcpfin is warned
                    about); nftables has no IPVS connection table and
                    warns that it ignores them
persistence_engine (sip) is passed to IPVS; nftables warns that it has
none.

Process keywords of keepalived.conf, as keepalived reads them:
  net_namespace NAME   (top level) run in the network namespace
                       /run/netns/NAME (as "ip netns add" makes it): tandem
                       re-executes itself inside it before it opens any
                       socket or takes the one-per-namespace lock, so
                       everything, the lock included, is the namespace's.
                       It cannot change on a reload. net_namespace_ipvs
                       (a separate IPVS namespace) is not implemented;
                       namespace_with_ipsets has no effect (no ipsets).
  notify_fifo, vrrp_notify_fifo, lvs_notify_fifo PATH [USER [GROUP]]
                       event FIFOs with keepalived's lines:
                         INSTANCE "VI_1" MASTER 100    (BACKUP, FAULT, STOP,
                           DELETED, MASTER_RX_LOWER_PRI; the MASTER_PRIORITY
                           and BACKUP_PRIORITY lines of
                           notify_priority_changes are written as the VRRP
                           engine reports priority changes)
                         GROUP "G" BACKUP 0
                         RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 UP
                         VS [192.168.201.15]:tcp:80 DOWN
                       notify_fifo gets every line, vrrp_ the VRRP ones,
                       lvs_ the checker's. A missing FIFO is created (mode
                       0644 less the umask, owned by USER/GROUP or the
                       script user) and removed at exit; a path that is
                       not a FIFO is refused at start and by tandem check.
                       Writes never block: with nobody reading, lines queue
                       in the pipe (64 KiB), then are dropped, counted and
                       logged. keepalived also writes a NUL byte after each
                       RS/VS line; tandem does not.
  *_notify_fifo_script CMD [USER [GROUP]]
                       started once its FIFO is open, with the FIFO's path
                       as its last argument, through the same runner as
                       every script; stopped at exit, restarted when a
                       reload changes its FIFO's settings.
  fifo_write_vrrp_states_on_reload
                       after a reload, write the state of every instance
                       and sync group the reload did not change.
  umask NUMBER|BITS    file-creation mask (022, 0x12, IWGRP|IWOTH ...;
                       default IWGRP|IWOTH), set at start and each reload.
  max_auto_priority [N], min_auto_priority_delay USECS
                       the VRRP loop runs on an OS thread of its own; each
                       time one of its timers runs more than
                       min_auto_priority_delay late (default 1 s) that
                       thread is raised to SCHED_RR 1, then one higher, up
                       to N (alone: 99). Needs CAP_SYS_NICE; without it a
                       warning is logged and scheduling is left as it is.
  vrrp_rt_priority N, vrrp_priority NICE, vrrp_cpu_affinity CPU...,
  vrrp_rlimit_rttime USECS, vrrp_no_swap
                       the VRRP loop's own OS thread runs at SCHED_RR N
                       (max_auto_priority raises it from N), or at nice
                       NICE without N, on the CPUs given. keepalived sets
                       these on its VRRP process; Tandem on that thread,
                       and with N every other thread of the process runs
                       SCHED_RR too, one below the lowest of
                       vrrp_rt_priority and bfd_rt_priority (the loop
                       depends on the Go runtime's threads); the scripts
                       it starts run under the normal policy. RLIMIT_RTTIME is USECS
                       (default 1000000, not keepalived's 10000: a Go
                       runtime thread may run longer than 10 ms without
                       blocking, and the kernel kills the process at the
                       limit; a shorter one is warned about; SIGXCPU at
                       half of it is logged). vrrp_no_swap locks the whole
                       process in memory (mlockall). What the system
                       refuses is logged in one line and skipped.
  bfd_rt_priority N, bfd_priority NICE, bfd_cpu_affinity CPU...,
  bfd_rlimit_rttime USECS, bfd_no_swap
                       the same for the BFD engine's own OS thread.

Gratuitous ARP pacing, as keepalived:
  garp_group { garp_interval S; gna_interval S; interface I | interfaces { ... } }
                       gratuitous ARPs (unsolicited NAs) sent on the
                       group's interfaces, by any instance, are at least
                       garp_interval (gna_interval) apart; the interfaces of
                       one group share the spacing. Other interfaces are
                       spaced by vrrp_garp_interval / vrrp_gna_interval.
  garp_lower_prio_repeat N, garp_lower_prio_delay S  (global: vrrp_ prefix)
                       a master hearing an advert of lower priority sends N
                       gratuitous ARPs per address, and N again S later
                       (defaults: garp_master_repeat, garp_master_delay);
                       the other masters of its sync group do the same.
  track_group NAME { group { INSTANCE ... } }, and track_group NAME on a
  static_ipaddress, static_routes or static_rules entry: the group's
  instances go to FAULT while the entry's interface is down. A static
  entry someone else deletes is put back, as keepalived does, unless it
  has no_track.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opts.ConfigFile, err = configFile(opts.ConfigFile); err != nil {
				return fmt.Errorf("run: %w", err)
			}
			log, err := newLogger(logFormat)
			if err != nil {
				return err
			}
			opts.Log, opts.Version = log, version
			// net_namespace: re-executes in the namespace (and does not
			// return) before anything opens a socket.
			if err := daemon.EnterNamespace(opts); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem: %v\n", err)
				return exitError{1}
			}
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
	f.DurationVar(&opts.HistoryInterval, "history-interval", api.DefaultHistoryInterval, "how often the status page's charts sample (they show the last 15 minutes, one point per interval; 1s at least)")
	f.StringVar(&opts.Dataplane, "dataplane", "auto", "load-balancing data plane: auto, ipvs, nft, xdp (DR only), or none (health checks only)")
	f.StringVar(&opts.BPFDir, "bpf-dir", xdp.DefaultPinDir, "where --dataplane xdp pins its maps and links (a directory per network namespace under it), on a BPF file system")
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
