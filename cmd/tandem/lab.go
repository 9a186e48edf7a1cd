package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/api"
	"tandem/internal/demo"
	"tandem/internal/lab"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run Tandem in network namespaces: the seeds' tests (demo), or a lab to explore (up, exec, down)",
	}
	cmd.AddCommand(newLabDemoCmd(), newLabUpCmd(), newLabExecCmd(), newLabDownCmd(), newLabServeCmd())
	return cmd
}

func newLabDemoCmd() *cobra.Command {
	var web string
	var scale scaleOutFlags
	cmd := &cobra.Command{
		Use:   "demo [MASTER.conf BACKUP.conf]",
		Short: "Build seed000's topology in namespaces and run the health-check, failover and recovery tests",
		Long: `demo builds seed000's LVS-DR topology in network namespaces of its own
(directors dir1 and dir2, real servers rs1 and rs2, a client; one bridge, no
link to the host), runs tandem on the directors with MASTER.conf and
BACKUP.conf (default: the built-in examples/seed000-lvs-dr-*.conf), and runs
the seeds' three tests: health check, failover, recovery. It prints each step,
then a summary, tears everything down (also on Ctrl-C, exit 130), and exits 0
only when every test passed. It needs root and iproute2's ip; the real
servers run nginx when it is installed, a built-in web server otherwise.

With --scale-out it builds the active-active lab instead (docs/bgp.md): a
router running bird2 (Debian package bird2) that spreads the VIP's flows
over --directors directors (2-4) with ECMP, each announcing the VIP over
BGP and forwarding by DR to three real servers, and a client behind the
router; and runs its tests: the router's route has one next hop per
director, the client's flows reach every director, a drain and a crash
fail no request.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := labOptions(args, web, scale)
			if err != nil {
				return err
			}
			opts.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			results, err := demo.Run(ctx, opts)
			if ctx.Err() != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "tandem lab demo: interrupted; everything torn down")
				return exitError{130}
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem lab demo: %v\n", err)
				return exitError{1}
			}
			if !demo.AllPassed(results) {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&web, "web", demo.WebAuto, "real servers' web server: auto (nginx if installed), nginx, builtin")
	scale.add(cmd)
	return cmd
}

// defaultDirectors is --directors' default.
const defaultDirectors = 3

// scaleOutFlags are --scale-out and --directors.
type scaleOutFlags struct {
	on        bool
	directors int
}

func (f *scaleOutFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.on, "scale-out", false, "the active-active lab: a bird2 router with ECMP in front of BGP directors")
	cmd.Flags().IntVar(&f.directors, "directors", defaultDirectors, "with --scale-out, how many directors (2-4)")
}

func newLabUpCmd() *cobra.Command {
	var web string
	var scale scaleOutFlags
	cmd := &cobra.Command{
		Use:   "up [MASTER.conf BACKUP.conf]",
		Short: "Build the demo's lab and leave it running, for exploration",
		Long: `up builds the same lab as demo and starts the same processes, then exits
and leaves them running, recording what it started under ` + demo.DefaultEnv.Dir + `.
Explore it with "tandem lab exec NODE -- CMD"; remove it with "tandem lab down".
It refuses if a lab is up already. With --scale-out it builds demo
--scale-out's lab.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := labOptions(args, web, scale)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			opts.Out = out
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			st, err := demo.Up(ctx, opts, demo.DefaultEnv)
			if ctx.Err() != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "tandem lab up: interrupted; everything torn down")
				return exitError{130}
			}
			if err != nil {
				return fmt.Errorf("lab up: %w", err)
			}
			fmt.Fprintf(out, "\nlab %s is up; what runs where is in %s/state.json\n\n", st.Lab, st.Dir)
			status, err := api.Fetch(ctx, st.Sockets["dir1"])
			if err == nil {
				err = api.WriteText(out, status, time.Now())
			}
			if err != nil {
				fmt.Fprintf(out, "dir1's status: %v\n", err)
			}
			self := filepath.Join(demo.DefaultEnv.BinDir(), "tandem")
			fmt.Fprintf(out, "\nnodes: %s\ntry:\n", strings.Join(st.Nodes, " "))
			for _, node := range slices.Sorted(maps.Keys(st.Sockets)) {
				fmt.Fprintf(out, "  %s lab exec %s -- tandem status --socket %s\n", self, node, st.Sockets[node])
			}
			for _, try := range st.Try {
				fmt.Fprintf(out, "  %s lab exec %s\n", self, try)
			}
			fmt.Fprintf(out, "  %s lab down\n", self)
			return nil
		},
	}
	cmd.Flags().StringVar(&web, "web", demo.WebAuto, "real servers' web server: auto (nginx if installed), nginx, builtin")
	scale.add(cmd)
	return cmd
}

func newLabExecCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec NODE -- CMD [ARGS...]",
		Short: "Run a command in a node of the lab that is up (ip netns exec), with the lab's tandem in PATH",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			node, argv, err := demo.ExecArgs(args)
			if err != nil {
				return err
			}
			code, err := demo.Exec(demo.DefaultEnv, node, argv, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("lab exec: %w", err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	// NODE's command keeps its own flags: stop parsing at the first
	// argument.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newLabDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop what lab up started and remove the lab",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := demo.Down(demo.DefaultEnv, cmd.OutOrStdout()); err != nil {
				return fmt.Errorf("lab down: %w", err)
			}
			return nil
		},
	}
}

// labOptions checks the command line and finds the binary to run in the
// nodes: this one, if it is the static binary that ships.
func labOptions(args []string, web string, scale scaleOutFlags) (demo.Options, error) {
	cfgs, err := demo.ConfigArgs(args)
	if err != nil {
		return demo.Options{}, err
	}
	directors := 0
	switch {
	case scale.on:
		if err := (lab.ScaleOut{Directors: scale.directors}).Validate(); err != nil {
			return demo.Options{}, fmt.Errorf("--directors: %w", err)
		}
		directors = scale.directors
	case scale.directors != defaultDirectors:
		return demo.Options{}, errors.New("--directors is for the scale-out lab: add --scale-out")
	}
	bin, err := os.Executable()
	if err != nil {
		return demo.Options{}, fmt.Errorf("find the tandem binary to run in the lab: %w", err)
	}
	if err := requireStatic(bin); err != nil {
		return demo.Options{}, err
	}
	return demo.Options{Configs: cfgs, Bin: bin, Web: web, ScaleOut: directors}, nil
}

// requireStatic refuses a dynamically linked tandem (go build links libc
// wherever cgo is available): the lab shows what ships, the static binary.
func requireStatic(bin string) error {
	interp, err := lab.Interpreter(bin)
	if err != nil {
		return err
	}
	if interp != "" {
		return fmt.Errorf("%s is dynamically linked (built with cgo), and the lab runs the static binary that ships: build or run tandem with CGO_ENABLED=0 (sudo env \"PATH=$PATH\" CGO_ENABLED=0 go run ./cmd/tandem lab demo)", bin)
	}
	return nil
}

// newLabServeCmd is the real servers' web server when nginx is not
// installed; the lab starts it inside a node.
func newLabServeCmd() *cobra.Command {
	var name string
	var port int
	cmd := &cobra.Command{
		Use:    "serve --name NAME [--port 80]",
		Short:  "Answer every HTTP request with NAME (a lab real server)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := demo.Serve(ctx, name, port)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the body of every answer")
	cmd.Flags().IntVar(&port, "port", 80, "TCP port")
	return cmd
}
