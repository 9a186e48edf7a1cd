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

func newRunCmd() *cobra.Command {
	var opts daemon.Options
	var logFormat string
	var foreground bool
	cmd := &cobra.Command{
		Use:   "run -f FILE [--config-id ID] [--socket PATH]",
		Short: "Run the VRRP instances (and services) of a keepalived.conf",
		Long: `run loads FILE, removes any virtual addresses a crashed earlier run left
behind, and runs its VRRP instances in the foreground until SIGTERM or SIGINT.
On stop a master advertises priority 0 so that the backup takes over at once,
and every address, route and rule Tandem added is removed. The status socket
serves "tandem status".`,
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
	f.StringVar(&opts.Dataplane, "dataplane", "auto", "load-balancing data plane: auto, ipvs, nft, or none (health checks only)")
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
