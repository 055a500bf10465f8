package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

type bootstrapFlags struct {
	identity        string
	format          string
	xdsAddress      string
	certDir         string
	plaintext       bool
	nodeID          string
	xdsCAFile       string
	certProvider    string
	refreshInterval time.Duration
	adminAddress    string
	delta           bool
}

func newBootstrap(_ *globals) *cobra.Command {
	f := &bootstrapFlags{}
	cmd := &cobra.Command{
		Use:   "bootstrap --identity NS/SA --format envoy|grpc --xds-address HOST:PORT",
		Short: "Print the xDS bootstrap of a workload (Envoy or proxyless gRPC)",
		Long: `bootstrap prints the configuration an xDS client starts from, pointed at
meshward's xDS server and naming the workload's identity (its ServiceAccount
NS/SA), which decides the configuration the server sends it.

  --format grpc   the gRPC-Go xDS bootstrap (JSON): set GRPC_XDS_BOOTSTRAP to
                  the file holding it. Mesh mTLS reads the workload's
                  certificate from <cert-dir>/<ns>/<sa>/{cert,key,ca}.pem
                  through a file_watcher certificate provider.
  --format envoy  the Envoy bootstrap (YAML): listeners and clusters over ADS,
                  admin on loopback.

The xDS channel uses TLS with the same certificate unless --plaintext.`,
		Example: `  meshward bootstrap --identity bookstore/bookstore --format grpc \
    --xds-address meshward.meshward-system.svc:15010 --cert-dir /var/run/meshward/certs
  meshward bootstrap --identity bookstore/bookstore --format envoy \
    --xds-address 127.0.0.1:15010 --plaintext`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			var out []byte
			switch translate.Flavor(f.format) {
			case translate.FlavorGRPC:
				out, err = bootstrap.GRPC(opts)
			case translate.FlavorEnvoy:
				out, err = bootstrap.EnvoyYAML(opts)
			default:
				return usageError{fmt.Errorf("--format %q is invalid: want envoy or grpc", f.format)}
			}
			if errors.Is(err, bootstrap.ErrInvalidOptions) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.identity, "identity", "", "the workload's identity, its ServiceAccount as NAMESPACE/NAME (required)")
	fs.StringVar(&f.format, "format", "", "bootstrap format: envoy or grpc (required)")
	fs.StringVar(&f.xdsAddress, "xds-address", "", "host:port of meshward's xDS server (required)")
	fs.StringVar(&f.certDir, "cert-dir", "", "directory of workload certificates, <cert-dir>/<ns>/<sa>/{cert,key,ca}.pem (required unless --plaintext)")
	fs.BoolVar(&f.plaintext, "plaintext", false, "connect to the xDS server without TLS (unsafe: the workload's identity is not proven)")
	fs.StringVar(&f.nodeID, "node-id", "", "xDS node id (default <format>~<ns>~<sa>); the identity is in the node metadata either way")
	fs.StringVar(&f.xdsCAFile, "xds-ca-file", "", "roots that verify the xDS server's certificate (default the workload's ca.pem)")
	fs.StringVar(&f.certProvider, "cert-provider-instance", translate.DefaultCertProviderInstance, "grpc: certificate provider instance name; must match the xDS server's")
	fs.DurationVar(&f.refreshInterval, "refresh-interval", bootstrap.DefaultRefreshInterval, "grpc: how often the certificate files are re-read")
	fs.StringVar(&f.adminAddress, "admin-address", bootstrap.DefaultAdminAddress, "envoy: admin listener address (keep it on loopback)")
	fs.BoolVar(&f.delta, "delta", false, "envoy: use incremental (delta) xDS")
	return cmd
}

// options checks the flags and returns the bootstrap options.
func (f *bootstrapFlags) options() (bootstrap.Options, error) {
	var missing []string
	for _, r := range []struct{ name, value string }{{"--identity", f.identity}, {"--format", f.format}, {"--xds-address", f.xdsAddress}} {
		if r.value == "" {
			missing = append(missing, r.name)
		}
	}
	if len(missing) > 0 {
		return bootstrap.Options{}, usageError{fmt.Errorf("%s required", strings.Join(missing, ", "))}
	}
	ns, sa, ok := strings.Cut(f.identity, "/")
	if !ok {
		return bootstrap.Options{}, usageError{fmt.Errorf("--identity %q is invalid: want NAMESPACE/NAME", f.identity)}
	}
	return bootstrap.Options{
		Identity:             mesh.Identity{Namespace: ns, Name: sa},
		XDSAddress:           f.xdsAddress,
		NodeID:               f.nodeID,
		CertDir:              f.certDir,
		Plaintext:            f.plaintext,
		XDSCAFile:            f.xdsCAFile,
		CertProviderInstance: f.certProvider,
		RefreshInterval:      f.refreshInterval,
		AdminAddress:         f.adminAddress,
		Delta:                f.delta,
	}, nil
}
