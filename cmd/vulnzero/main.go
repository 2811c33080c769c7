// Command vulnzero is VulnZero's CLI: it parses the configuration once and
// wires the packages together. Nothing here decides anything a package
// could; see the package docs for the model.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"vulnzero.dev/vulnzero/sandbox/pkgtool"
)

// version is set at build time (-X main.version=…).
var version = "dev"

func main() {
	// The demo's sandbox hosts call back into this binary as their package
	// tool (apt-get, dpkg, dpkg-query): see sandbox/pkgtool.
	if os.Getenv("VZ_PKGTOOL") == "1" {
		os.Exit(pkgtool.Main(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulnzero:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

// exitError carries an exit code for a command that already printed why it
// failed (e.g. validate listing problems).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// globals are the flags every command shares.
type globals struct {
	configPath string
	out, errw  io.Writer
}

func newRootCmd(out, errw io.Writer) *cobra.Command {
	g := &globals{out: out, errw: errw}
	root := &cobra.Command{
		Use:   "vulnzero",
		Short: "Automated vulnerability remediation as a GitOps reconciler",
		Long: `VulnZero turns scanner findings into reviewed patch pull requests, rehearses each patch on a
digital twin, and rolls merged patches out to hosts over SSH in stages — rolling back and
writing a revert commit when a stage fails.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errw)
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "configuration file (YAML); environment variables VZ_* override it")
	root.AddCommand(
		newDemoCmd(g),
		newServeCmd(g),
		newIngestCmd(g),
		newValidateCmd(g),
		newPRCmd(g),
		newRolloutCmd(g),
		newScanCmd(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "vulnzero", version) },
		},
	)
	return root
}

// config loads the configuration for a command.
func (g *globals) config() (Config, error) {
	return loadConfig(g.configPath, os.Getenv)
}

// newLogger builds the process logger. Secrets never reach it: components
// log names and ids, not credentials or script bodies.
func newLogger(w io.Writer, c LogConfig) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
