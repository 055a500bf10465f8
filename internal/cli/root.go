// Package cli implements meshward's command line: serve (standalone, from a
// directory), controller (in a cluster) and version.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshward/meshward/mesh"
)

// Exit codes shared by every command.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks errors caused by bad flags or arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the command line until it finishes or the process is
// interrupted, and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, stdout, stderr)
}

// Run runs the command line until it finishes or ctx is done, and returns
// the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exit exitCode
	if errors.As(err, &exit) {
		return int(exit)
	}
	fmt.Fprintln(stderr, "Error:", err)
	var usage usageError
	if errors.As(err, &usage) {
		return ExitUsage
	}
	return ExitError
}

// exitCode ends a command with a code and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// globals are flags every command has.
type globals struct {
	logLevel  string
	logFormat string
	stderr    io.Writer
}

// NewRoot builds the root command.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:   "meshward",
		Short: "SMI-compatible service-mesh adapter and policy engine",
		Long: `meshward turns SMI objects (TrafficTarget, HTTPRouteGroup, TCPRoute, UDPRoute,
TrafficSplit) into one mesh model and enforces it.

Run it without a cluster on a directory of manifests (meshward serve --dir DIR)
or in a cluster (meshward controller).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newServe(g), newController(g), newVersion())
	root.AddCommand(newCheck(g))
	root.AddCommand(newBootstrap(g))
	return root
}

// logger builds the logger the flags ask for.
func (g *globals) logger() (logr.Logger, error) {
	var level slog.Level
	switch g.logLevel {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return logr.Discard(), usageError{fmt.Errorf("--log-level %q is invalid: want debug, info, warn or error", g.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch g.logFormat {
	case "text":
		h = slog.NewTextHandler(g.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(g.stderr, opts)
	default:
		return logr.Discard(), usageError{fmt.Errorf("--log-format %q is invalid: want text or json", g.logFormat)}
	}
	return logr.FromSlogHandler(h), nil
}

// meshFlags are the mesh-wide options, shared by the commands that build a
// model.
type meshFlags struct {
	opts            mesh.Options
	principalFormat string
	pathMatch       string
}

func addMeshFlags(fs *pflag.FlagSet) *meshFlags {
	m := &meshFlags{opts: mesh.DefaultOptions()}
	fs.StringVar(&m.opts.MeshName, "mesh-name", m.opts.MeshName, "mesh name: namespaces labelled "+mesh.NamespaceLabel+"=<mesh-name> are in the mesh")
	fs.StringVar(&m.opts.TrustDomain, "trust-domain", m.opts.TrustDomain, "trust domain of workload identities")
	fs.StringVar(&m.principalFormat, "principal-format", string(m.opts.PrincipalFormat), "principal format: spiffe (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) or dns (<sa>.<ns>.<trust-domain>)")
	fs.StringVar(&m.pathMatch, "path-match", string(m.opts.PathMatch), "how HTTPRouteGroup pathRegex applies: prefix (SMI: anchored at the start) or full (whole path)")
	fs.BoolVar(&m.opts.Permissive, "permissive", false, "allow all in-mesh traffic (splits and routes still apply)")
	fs.BoolVar(&m.opts.FailOpen, "fail-open", false, "allow requests when no decision can be made (default: deny)")
	return m
}

// options validates and returns the mesh options.
func (m *meshFlags) options() (mesh.Options, error) {
	o := m.opts
	o.PrincipalFormat = mesh.PrincipalFormat(m.principalFormat)
	o.PathMatch = mesh.PathMatch(m.pathMatch)
	if err := o.Validate(); err != nil {
		return o, usageError{err}
	}
	return o, nil
}
