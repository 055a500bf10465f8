package cli

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/kube"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/snapshot"
)

type controllerFlags struct {
	kubeconfig     string
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	metricsAddr    string
	healthAddr     string
	debounce       time.Duration
	instance       string
	mesh           *meshFlags
	servers        *serverFlags
	xds            *xdsFlags
	signer         *signerFlags
	gatewayImage   string
	// namespace is meshward's own namespace.
	namespace string
}

// inClusterNamespace is where a pod's namespace is mounted.
const inClusterNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func newController(g *globals) *cobra.Command {
	f := &controllerFlags{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run in a Kubernetes cluster",
		Long: `controller watches the cluster (from --kubeconfig, $KUBECONFIG or the in-cluster
configuration) and keeps the mesh model up to date. Several replicas may run:
each builds the model; with --leader-elect one elected leader reports findings
as Events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctrl.SetLogger(log)
			klog.SetLogger(log)
			opts, err := f.mesh.options()
			if err != nil {
				return err
			}
			if f.kubeconfig != "" {
				if err := os.Setenv("KUBECONFIG", f.kubeconfig); err != nil {
					return err
				}
			}
			cfg, err := ctrl.GetConfig()
			if err != nil {
				return fmt.Errorf("no cluster configuration (use --kubeconfig, $KUBECONFIG or run in a pod): %w", err)
			}
			ns := f.namespace
			if ns == "" {
				ns = os.Getenv("POD_NAMESPACE")
			}
			if ns == "" {
				if b, err := os.ReadFile(inClusterNamespace); err == nil {
					ns = strings.TrimSpace(string(b))
				}
			}
			leaseNS := cmp.Or(f.leaseNamespace, ns)
			if f.leaderElect && leaseNS == "" {
				return usageError{fmt.Errorf("--leader-election-namespace (or --namespace) is required outside a pod")}
			}
			// The mesh CA, kept in a Secret of the namespace, signs the
			// workloads' certificates (signing endpoint) and the xDS
			// server's serving certificate (nodes then connect with mTLS
			// and the server checks the identity each claims).
			xdsTLS := f.xds.meshTLS(cmd.Flags())
			if (f.signer.enabled() || xdsTLS) && ns == "" {
				return usageError{fmt.Errorf("--namespace is required outside a pod: the mesh CA, for the signing endpoint and the xDS server's certificate, is kept in a Secret there (or disable the signing endpoint with --signer-address 0 and TLS on the xDS channel with --xds-tls-hosts=)")}
			}
			// Every goroutine started below ends before the command
			// returns.
			ctx, cancel := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			defer func() {
				cancel()
				wg.Wait()
			}()
			srv, err := f.servers.start(ctx, &wg, log, ctrlmetrics.Registry)
			if err != nil {
				return err
			}
			var (
				ca     *certs.CA
				client ctrlclient.Client
			)
			if f.signer.enabled() {
				if _, err := f.signer.servingHosts(ns); err != nil {
					return err
				}
			}
			if xdsTLS && len(f.xds.tlsHosts) > 0 {
				if err := certs.ValidateHosts(f.xds.tlsHosts); err != nil {
					return usageError{fmt.Errorf("--xds-tls-hosts: %w", err)}
				}
			}
			if f.signer.enabled() || xdsTLS {
				if ca, client, err = f.signer.clusterCA(ctx, cfg, ns, opts); err != nil {
					return err
				}
			}
			var xdsCA *certs.CA
			if xdsTLS {
				xdsCA = ca
				if len(f.xds.tlsHosts) == 0 {
					f.xds.tlsHosts = serviceHosts(ns)
				}
			}
			x, err := f.xds.start(ctx, &wg, log, ctrlmetrics.Registry, opts, xdsCA, srv.extAuthzAddr)
			if err != nil {
				return err
			}
			if f.signer.enabled() {
				if _, err := f.signer.start(ctx, &wg, log, ca, client, ns); err != nil {
					return err
				}
			}
			src, err := kube.New(kube.Options{
				Config: cfg,
				Build:  func(s *snapshot.Snapshot) *mesh.Model { return translate.Build(s, opts) },
				Publish: func(m *mesh.Model) {
					srv.update(ctx, m)
					x.update(ctx, m)
				},
				Gateway: gatewayOptions(f.gatewayImage),
				PublishPolicies: func(modules map[string]string) []mesh.Finding {
					return configMapFindings(srv.setPolicies(ctx, modules))
				},
				Debounce:                f.debounce,
				LeaderElection:          f.leaderElect,
				LeaderElectionNamespace: leaseNS,
				LeaderElectionID:        f.leaseName,
				Instance:                f.instance,
				MetricsAddr:             f.metricsAddr,
				HealthAddr:              f.healthAddr,
				Log:                     log,
			})
			if err != nil {
				return err
			}
			log.Info("starting controller", "mesh", opts.MeshName, "leaderElection", f.leaderElect)
			return src.Start(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, then in-cluster)")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect one replica to write Events and status")
	fs.StringVar(&f.namespace, "namespace", "", "meshward's own namespace, where the CA Secret and the leader Lease live (default: $POD_NAMESPACE, then the pod's service-account mount)")
	fs.StringVar(&f.leaseNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: --namespace)")
	fs.StringVar(&f.leaseName, "leader-election-id", "meshward-leader", "name of the leader Lease")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	fs.StringVar(&f.healthAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 disables)")
	fs.DurationVar(&f.debounce, "debounce", 100*time.Millisecond, "coalesce changes arriving within this interval into one rebuild")
	fs.StringVar(&f.instance, "instance", "", "name of this replica in Events (default: the hostname)")
	f.mesh = addMeshFlags(fs)
	f.servers = addServerFlags(fs)
	f.xds = addXDSFlags(fs, false)
	f.signer = addSignerFlags(fs)
	fs.StringVar(&f.gatewayImage, "gateway-image", "", "container image of ingress gateway pods; enables the IngressGatewayDeployment controller")
	return cmd
}

func gatewayOptions(image string) *kube.GatewayOptions {
	if image == "" {
		return nil
	}
	return &kube.GatewayOptions{Image: image}
}

// configMapFindings turns policy problems of modules named
// "<namespace>/<configmap>/<key>" into findings on those ConfigMaps.
func configMapFindings(problems []policy.Problem) []mesh.Finding {
	var out []mesh.Finding
	for _, p := range problems {
		parts := strings.SplitN(p.File, "/", 3)
		if len(parts) != 3 {
			continue
		}
		msg := p.Message
		if p.Line > 0 {
			msg = fmt.Sprintf("line %d: %s", p.Line, msg)
		}
		out = append(out, mesh.Finding{
			Object:   mesh.ObjectRef{Kind: "ConfigMap", Namespace: parts[0], Name: parts[1]},
			Field:    "data." + parts[2],
			Severity: mesh.SeverityError,
			Reason:   "InvalidPolicy",
			Message:  msg + "; the previous policies stay in force",
		})
	}
	return out
}
