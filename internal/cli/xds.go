package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// xdsFlags configure the xDS server of serve and controller.
type xdsFlags struct {
	addr      string
	flavor    string
	authz     string
	plaintext bool
	certDir   string
	tlsCert   string
	tlsKey    string
	clientCA  string
	// tlsHosts (standalone) are the names of the serving certificate the
	// mesh CA issues for the xDS server.
	tlsHosts []string
}

// defaultXDSTLSHosts are the names of serve's own xDS serving
// certificate, besides the host of --xds-address.
var defaultXDSTLSHosts = []string{"localhost", "127.0.0.1", "::1"}

func addXDSFlags(fs *pflag.FlagSet, standalone bool) *xdsFlags {
	f := &xdsFlags{}
	fs.StringVar(&f.addr, "xds-address", ":15010", "address of the xDS (ADS) server (0 disables)")
	fs.StringVar(&f.flavor, "xds-flavor", string(translate.FlavorEnvoy), "resources for envoy sidecars or proxyless grpc clients and servers")
	fs.StringVar(&f.authz, "xds-authz", string(translate.AuthzRBAC), "how workloads enforce access: rbac (Envoy RBAC from TrafficTargets), ext_authz (ask meshward) or both")
	fs.BoolVar(&f.plaintext, "plaintext", false, "UNSAFE: no mTLS between workloads (identities are then not verified)")
	if standalone {
		fs.StringVar(&f.certDir, "cert-dir", "", "directory for the CA root (ca/) and each identity's certificate files (<ns>/<sa>/{cert,key,ca}.pem) for gRPC's file_watcher (default: <dir>.certs next to --dir)")
		fs.StringSliceVar(&f.tlsHosts, "xds-tls-hosts", defaultXDSTLSHosts, "DNS names and IP addresses of the xDS server's serving certificate, issued by the mesh CA (the host of --xds-address is added); nodes must present their identity's certificate. Empty: no TLS on the xDS channel")
	} else {
		fs.StringSliceVar(&f.tlsHosts, "xds-tls-hosts", nil, "DNS names and IP addresses of the xDS server's serving certificate, issued by the mesh CA (default "+defaultSignerService+".<namespace>.svc,"+defaultSignerService+".<namespace>.svc.cluster.local); nodes must present their identity's certificate. Set empty (--xds-tls-hosts=) for no TLS on the xDS channel")
	}
	fs.StringVar(&f.tlsCert, "xds-tls-cert", "", "serving certificate of the xDS server (PEM); with --xds-tls-key and --xds-client-ca the xDS channel uses mTLS and each node must present its identity's certificate")
	fs.StringVar(&f.tlsKey, "xds-tls-key", "", "private key of --xds-tls-cert")
	fs.StringVar(&f.clientCA, "xds-client-ca", "", "CA bundle that verifies node certificates on the xDS channel")
	return f
}

// meshTLS reports whether the controller's xDS server gets its serving
// certificate from the mesh CA: xDS is on, workloads use mTLS, no
// certificate files are given and --xds-tls-hosts was not set empty.
func (f *xdsFlags) meshTLS(fs *pflag.FlagSet) bool {
	explicitNone := fs.Changed("xds-tls-hosts") && len(f.tlsHosts) == 0
	return f.addr != "0" && !f.plaintext && f.tlsCert == "" && f.tlsKey == "" && f.clientCA == "" && !explicitNone
}

// xdsRunner serves xDS and keeps the identities' certificate files.
type xdsRunner struct {
	srv     *server.Server
	log     logr.Logger
	ca      certs.Issuer
	certDir string
	addr    net.Addr
	wg      *sync.WaitGroup

	mu sync.Mutex
	// renewing holds, for every identity of the model, what stops the
	// renewal of its certificate files.
	renewing map[mesh.Identity]*renewal
}

// start validates the flags, starts the xDS server and returns the runner
// (nil when disabled); wg counts its goroutines. ca is nil with
// --plaintext; standalone, it also issues the xDS server's own serving
// certificate unless --xds-tls-cert is given.
func (f *xdsFlags) start(ctx context.Context, wg *sync.WaitGroup, log logr.Logger, reg prometheus.Registerer, opts mesh.Options, ca *certs.CA, extAuthz net.Addr) (*xdsRunner, error) {
	if f.addr == "0" {
		return nil, nil
	}
	topts := translate.Options{
		Flavor:    translate.Flavor(f.flavor),
		Authz:     translate.AuthzMode(f.authz),
		Plaintext: f.plaintext,
	}
	if topts.Authz != translate.AuthzRBAC {
		if extAuthz == nil {
			return nil, usageError{errors.New("--xds-authz " + f.authz + " needs the ext_authz server (--ext-authz-address)")}
		}
		topts.ExtAuthzCluster = "meshward-ext-authz"
		topts.ExtAuthzAddress = extAuthz.String()
	}
	var (
		creds credentials.TransportCredentials
		hosts []string
		err   error
	)
	switch {
	case f.tlsCert != "" || f.tlsKey != "" || f.clientCA != "":
		if creds, err = f.serverCreds(); err != nil {
			return nil, usageError{err}
		}
	case ca != nil && len(f.tlsHosts) > 0:
		if creds, hosts, err = f.meshCreds(ctx, log, ca); err != nil {
			return nil, err
		}
	}
	// The server reads a node's identity from the SPIFFE ID of its
	// certificate; DNS principals leave only the chain to check.
	verify := creds != nil && opts.PrincipalFormat != mesh.PrincipalDNS
	// Envoy sidecars get their certificates over SDS from the mesh CA;
	// a Secret holds a private key, so only to nodes that prove who they are.
	var issuer certs.Issuer
	if ca != nil && verify && topts.Flavor == translate.FlavorEnvoy && !topts.Plaintext {
		issuer = ca
	}
	srv, err := server.New(server.Options{
		Translate: topts, Log: log, Registry: reg,
		VerifyPeer: verify, TrustDomain: opts.TrustDomain, Issuer: issuer,
	})
	if err != nil {
		return nil, usageError{fmt.Errorf("xDS: %w", err)}
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("xDS server: %w", err)
	}
	wg.Go(func() {
		if err := srv.Serve(ctx, lis, creds); err != nil {
			log.Error(err, "xDS server stopped")
		}
	})
	switch {
	case creds == nil:
		log.Info("xDS server listening WITHOUT TLS on its own channel: use it on a trusted network or set --xds-tls-cert, --xds-tls-key and --xds-client-ca", "address", lis.Addr().String(), "flavor", f.flavor)
	case !verify:
		log.Info("xDS server listening (mTLS); with --principal-format dns a node's certificate is checked against the mesh CA, but not the identity it claims", "address", lis.Addr().String(), "flavor", f.flavor)
	case hosts != nil:
		log.Info("xDS server listening (mTLS)", "address", lis.Addr().String(), "flavor", f.flavor, "hosts", hosts)
	default:
		log.Info("xDS server listening (mTLS)", "address", lis.Addr().String(), "flavor", f.flavor)
	}
	x := &xdsRunner{srv: srv, log: log.WithName("xds"), certDir: f.certDir, addr: lis.Addr(), wg: wg, renewing: map[mesh.Identity]*renewal{}}
	if ca != nil {
		x.ca = ca
	}
	return x, nil
}

// meshCreds returns mTLS credentials for the xDS server: a serving
// certificate from the mesh CA for --xds-tls-hosts and the host of
// --xds-address, and client certificates verified with the mesh's trust
// bundle. It returns the certificate's hosts.
func (f *xdsFlags) meshCreds(ctx context.Context, log logr.Logger, ca *certs.CA) (credentials.TransportCredentials, []string, error) {
	hosts := slices.Clone(f.tlsHosts)
	if host, _, err := net.SplitHostPort(f.addr); err == nil && host != "" && !slices.Contains(hosts, host) {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	serving, err := certs.NewServingCertificate(ctx, ca, certs.ServingOptions{Hosts: hosts, Log: log.WithName("xds")})
	if errors.Is(err, certs.ErrInvalidHost) {
		return nil, nil, usageError{fmt.Errorf("--xds-tls-hosts: %w", err)}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the xDS server's serving certificate: %w", err)
	}
	bundle, err := ca.TrustBundle(ctx)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	cfg := serving.TLSConfig()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool
	cfg.MinVersion = tls.VersionTLS13
	return credentials.NewTLS(cfg), hosts, nil
}

func (f *xdsFlags) serverCreds() (credentials.TransportCredentials, error) {
	if f.tlsCert == "" || f.tlsKey == "" || f.clientCA == "" {
		return nil, errors.New("--xds-tls-cert, --xds-tls-key and --xds-client-ca go together")
	}
	pair, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--xds-tls-cert/--xds-tls-key: %w", err)
	}
	pem, err := os.ReadFile(f.clientCA)
	if err != nil {
		return nil, fmt.Errorf("--xds-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--xds-client-ca %s holds no PEM certificate", f.clientCA)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}), nil
}

// renewal is the renewal of one identity's certificate files.
type renewal struct{ stop context.CancelFunc }

// update publishes a model to the xDS server and, standalone, keeps a
// certificate for every identity in the model: the renewal of an identity
// that leaves the model stops (its files stay until the next start writes
// them again).
func (x *xdsRunner) update(ctx context.Context, m *mesh.Model) {
	if x == nil {
		return
	}
	if err := x.srv.Update(m); err != nil {
		x.log.Error(err, "some xDS resources were held back; the last good ones keep serving")
	}
	if x.ca == nil || x.certDir == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	current := make(map[mesh.Identity]bool, len(m.Identities))
	for _, id := range m.Identities {
		current[id] = true
	}
	for id, r := range x.renewing {
		if !current[id] {
			r.stop()
			delete(x.renewing, id)
			x.log.V(1).Info("identity left the model; its certificate is no longer renewed", "identity", id.String())
		}
	}
	for _, id := range m.Identities {
		if _, ok := x.renewing[id]; ok {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		idCtx, stop := context.WithCancel(ctx)
		r := &renewal{stop: stop}
		x.renewing[id] = r
		x.wg.Go(func() {
			err := certs.KeepFresh(idCtx, x.ca, x.certDir, id, certs.FileOptions{Log: x.log.WithName("certs")})
			if err == nil || idCtx.Err() != nil {
				return
			}
			x.log.Error(err, "certificate files not written; trying again with the next model", "identity", id.String())
			x.mu.Lock()
			defer x.mu.Unlock()
			if x.renewing[id] == r {
				r.stop()
				delete(x.renewing, id)
			}
		})
	}
}
