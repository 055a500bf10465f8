package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

type serveFlags struct {
	dir      string
	once     bool
	debounce time.Duration
	// metricsAddr serves /metrics.
	metricsAddr string
	mesh        *meshFlags
	servers     *serverFlags
	xds         *xdsFlags
}

func newServe(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve --dir DIR",
		Short: "Run standalone on a directory of manifests (no cluster needed)",
		Long: `serve reads Kubernetes manifests (SMI objects, Namespaces, ServiceAccounts,
Services, EndpointSlices, Pods) from a directory, builds the mesh model, and
rebuilds it whenever a file changes. A file that fails to parse is reported
with its file and line, and the last good model stays in force.`,
		Example: "  meshward serve --dir examples/bookstore\n  meshward serve --dir examples/bookstore --once",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			opts, err := f.mesh.options()
			if err != nil {
				return err
			}
			if f.dir == "" {
				return usageError{errors.New("--dir is required: the directory of manifests to serve")}
			}
			if st, err := os.Stat(f.dir); err != nil || !st.IsDir() {
				return usageError{fmt.Errorf("--dir %q is not a readable directory", f.dir)}
			}
			dec := snapshot.NewDecoder()
			if f.once {
				res, err := files.Load(f.dir, dec)
				if err != nil {
					return fmt.Errorf("manifests in %s not loaded:\n%w", f.dir, err)
				}
				m := translate.Build(res.Snapshot, opts)
				printModel(cmd.OutOrStdout(), f.dir, res, m)
				return nil
			}
			log.Info("serving from a directory", "dir", f.dir, "mesh", opts.MeshName, "trustDomain", opts.TrustDomain)
			// Every goroutine started below ends before serve returns:
			// servers stop, certificate files are no longer written.
			ctx, cancel := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			defer func() {
				cancel()
				wg.Wait()
			}()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			if err := serveMetrics(ctx, &wg, log, f.metricsAddr, reg); err != nil {
				return err
			}
			srv, err := f.servers.start(ctx, &wg, log, reg)
			if err != nil {
				return err
			}
			var ca *certs.CA
			if !f.xds.plaintext {
				if f.xds.certDir == "" {
					f.xds.certDir = filepath.Clean(f.dir) + ".certs"
				}
				ca, err = certs.LoadOrCreateFileCA(filepath.Join(f.xds.certDir, "ca"), certs.Options{TrustDomain: opts.TrustDomain, PrincipalFormat: opts.PrincipalFormat})
				if err != nil {
					return err
				}
				log.Info("workload certificates", "dir", f.xds.certDir)
			}
			x, err := f.xds.start(ctx, &wg, log, reg, opts, ca, srv.extAuthzAddr)
			if err != nil {
				return err
			}
			w := files.NewWatcher(f.dir, dec, files.WatchOptions{Debounce: f.debounce, Log: log.WithName("files")})
			return w.Run(ctx, func(res *files.Result) {
				m := translate.Build(res.Snapshot, opts)
				srv.update(ctx, m)
				x.update(ctx, m)
				srv.setPolicies(ctx, policyModules(res))
				logModel(log, res, m)
			})
		},
	}
	cmd.Flags().StringVar(&f.dir, "dir", "", "directory of manifests (YAML or JSON, read recursively)")
	cmd.Flags().BoolVar(&f.once, "once", false, "load once, print the model summary and findings, and exit")
	cmd.Flags().DurationVar(&f.debounce, "debounce", 200*time.Millisecond, "wait this long after a file change before reloading")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint /metrics (0 disables)")
	f.mesh = addMeshFlags(cmd.Flags())
	f.servers = addServerFlags(cmd.Flags())
	f.xds = addXDSFlags(cmd.Flags(), true)
	return cmd
}

// serveMetrics serves the registry's metrics at /metrics on addr until
// ctx is done ("0" disables).
func serveMetrics(ctx context.Context, wg *sync.WaitGroup, log logr.Logger, addr string, reg *prometheus.Registry) error {
	if addr == "0" {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	serveHTTP(ctx, wg, log, "metrics endpoint", &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln)
	log.Info("metrics endpoint listening", "address", ln.Addr().String())
	return nil
}

// policyModules returns the directory's Rego files by path.
func policyModules(res *files.Result) map[string]string {
	out := make(map[string]string, len(res.Policies))
	for _, p := range res.Policies {
		out[p.Path] = string(p.Source)
	}
	return out
}

// summary describes a model in one line.
func summary(m *mesh.Model) string {
	endpoints := 0
	for _, s := range m.Services {
		endpoints += len(s.Endpoints)
	}
	return fmt.Sprintf("%d namespaces, %d identities, %d services (%d endpoints), %d access rules, %d splits, %d findings",
		len(m.Namespaces), len(m.Identities), len(m.Services), endpoints, len(m.Access), len(m.Splits), len(m.Findings))
}

// located renders a finding with the file and line of its object.
func located(res *files.Result, f mesh.Finding) string {
	if pos, ok := res.Positions[f.Object]; ok {
		return pos.String() + ": " + f.String()
	}
	return f.String()
}

func printModel(w io.Writer, dir string, res *files.Result, m *mesh.Model) {
	fmt.Fprintf(w, "loaded %d files from %s\nmesh model: %s\n", res.Files, dir, summary(m))
	for _, f := range m.Findings {
		fmt.Fprintln(w, located(res, f))
	}
}

func logModel(log logr.Logger, res *files.Result, m *mesh.Model) {
	log.Info("mesh model built", "files", res.Files, "summary", summary(m))
	for _, f := range m.Findings {
		log.Info("finding", "severity", string(f.Severity), "reason", f.Reason, "detail", located(res, f))
	}
}
