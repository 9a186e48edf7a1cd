// Command tandem is a keepalived + LVS replacement: VRRP virtual IPs, health
// checks and a kernel load-balancing data plane, from a keepalived.conf.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "tandem",
		Short:         "VRRP virtual IPs, health checks and load balancing from a keepalived.conf",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCmd(), newCheckCmd(), newFmtCmd(), newRunCmd(), newStatusCmd(), newRealserverCmd(), newGenhashCmd(), newLVSCmd(), newReloadCmd(), newHandoverCmd(), newDrainCmd(), newLabCmd())
	root.AddCommand(newManCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Tandem's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "tandem %s\n", version)
			return err
		},
	}
}

// run executes the command line and returns the process exit code:
// 0 success, 1 failure (for check: the configuration has errors), 2 usage.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "tandem: %v\n", err)
		return 2
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
