package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

// Defaults of the signing endpoint's flags.
const (
	defaultSignerAddress = ":15012"
	defaultCASecret      = "meshward-ca"
	// defaultSignerService is the Service name in the default
	// --signer-hosts.
	defaultSignerService = "meshward"
)

// signerFlags configure the controller's signing endpoint, where
// workloads trade a CSR and their ServiceAccount token for a certificate.
type signerFlags struct {
	addr      string
	hosts     []string
	audiences []string
	caSecret  string
}

func addSignerFlags(fs *pflag.FlagSet) *signerFlags {
	f := &signerFlags{}
	fs.StringVar(&f.addr, "signer-address", defaultSignerAddress, "address of the certificate signing endpoint (HTTPS, POST "+certs.SigningPath+"); 0 or empty disables")
	fs.StringSliceVar(&f.hosts, "signer-hosts", nil, "DNS names and IP addresses of the signing endpoint's serving certificate, issued by the mesh CA (default "+defaultSignerService+".<namespace>.svc,"+defaultSignerService+".<namespace>.svc.cluster.local)")
	fs.StringSliceVar(&f.audiences, "signer-audiences", []string{certs.DefaultAudience}, "ServiceAccount token audiences the signing endpoint accepts")
	fs.StringVar(&f.caSecret, "ca-secret", defaultCASecret, "name of the kubernetes.io/tls Secret, in --namespace, holding the mesh CA root (created when missing)")
	return f
}

// enabled reports whether the signing endpoint is to run.
func (f *signerFlags) enabled() bool { return f.addr != "" && f.addr != "0" }

// clusterCA loads (or creates) the mesh CA kept in the --ca-secret Secret
// of namespace, with a client of its own (without a cache: the CA reads one
// Secret, and the signing endpoint creates a TokenReview per request).
func (f *signerFlags) clusterCA(ctx context.Context, cfg *rest.Config, namespace string, opts mesh.Options) (*certs.CA, client.Client, error) {
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, nil, err
	}
	ca, err := certs.LoadOrCreateSecretCA(ctx, c, namespace, f.caSecret, certs.Options{TrustDomain: opts.TrustDomain, PrincipalFormat: opts.PrincipalFormat})
	if err != nil {
		return nil, nil, fmt.Errorf("mesh CA: %w", err)
	}
	return ca, c, nil
}

// serviceHosts are the DNS names of meshward's Service in namespace, the
// default names of the serving certificates of the signing endpoint and,
// in a cluster, of the xDS server.
func serviceHosts(namespace string) []string {
	svc := defaultSignerService + "." + namespace + ".svc"
	return []string{svc, svc + ".cluster.local"}
}

// servingHosts returns the names of the endpoint's serving certificate,
// checked: --signer-hosts, or the Service's names in namespace.
func (f *signerFlags) servingHosts(namespace string) ([]string, error) {
	hosts := f.hosts
	if len(hosts) == 0 {
		hosts = serviceHosts(namespace)
	}
	if err := certs.ValidateHosts(hosts); err != nil {
		return nil, usageError{fmt.Errorf("--signer-hosts: %w", err)}
	}
	return hosts, nil
}

// start serves the signing endpoint over TLS, with a serving certificate
// from the mesh CA, until ctx is done; wg counts its goroutines. c creates
// the TokenReviews. It returns the address it listens on.
func (f *signerFlags) start(ctx context.Context, wg *sync.WaitGroup, log logr.Logger, ca *certs.CA, c client.Client, namespace string) (net.Addr, error) {
	hosts, err := f.servingHosts(namespace)
	if err != nil {
		return nil, err
	}
	serving, err := certs.NewServingCertificate(ctx, ca, certs.ServingOptions{Hosts: hosts, Log: log.WithName("signer")})
	if err != nil {
		return nil, fmt.Errorf("the signing endpoint's serving certificate: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("signing endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(certs.SigningPath, certs.NewSigningHandler(ca, c, certs.SigningOptions{Audiences: f.audiences, Log: log.WithName("signer")}))
	hs := &http.Server{
		Handler:           mux,
		TLSConfig:         serving.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	serveHTTP(ctx, wg, log, "signing endpoint", hs, ln)
	log.Info("signing endpoint listening", "address", ln.Addr().String(), "hosts", hosts,
		"caSecret", namespace+"/"+f.caSecret, "audiences", f.audiences)
	return ln.Addr(), nil
}
