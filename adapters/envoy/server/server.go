package server

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// Options configure a Server.
type Options struct {
	// Translate are the translation options; Flavor is required. Every
	// node of the server gets resources of this flavor.
	Translate translate.Options
	// Log receives what the server does; discarded when unset.
	Log logr.Logger
	// Registry receives the server's metrics; none are registered when
	// nil.
	Registry prometheus.Registerer
	// VerifyPeer requires every stream to come with a verified client
	// certificate (mTLS to the xDS server) whose SPIFFE ID in TrustDomain
	// is the identity its node claims; other streams end at once with
	// PERMISSION_DENIED. Without it, a node's claim is believed.
	VerifyPeer bool
	// TrustDomain is the SPIFFE trust domain of client certificates;
	// default cluster.local. Read with VerifyPeer only.
	TrustDomain string
	// Issuer, with the Envoy flavor, issues each identity's workload
	// certificate, and the server serves it and the issuer's trust bundle
	// as SDS Secrets named Translate.SDSCertName and SDSRootName: each
	// identity's only to the nodes of that identity. It needs VerifyPeer
	// (a Secret holds a private key) and TLS between workloads (not
	// Plaintext). Certificates are renewed at two thirds of their
	// lifetime by KeepCertificatesFresh, which Serve runs.
	Issuer certs.Issuer
	// CertTTL is the lifetime of the certificates Issuer issues; 0 means
	// the issuer's default.
	CertTTL time.Duration
	// CertRetryInterval is the wait before issuing a certificate again
	// after the Issuer failed; 0 means 10 seconds.
	CertRetryInterval time.Duration
}

// Server is meshward's xDS server: ADS over gRPC, state of the world and
// delta, answering each node from the resources of its identity. Create
// it with New, give it models with Update, and serve it with Serve or
// Register.
type Server struct {
	opts    Options
	log     logr.Logger
	metrics *metrics
	xds     serverv3.Server
	streams *streams
	// prefix starts every state-of-the-world version this instance sends.
	prefix string
	// trustDomain is Options.TrustDomain, defaulted.
	trustDomain string

	// updateMu serialises Update.
	updateMu sync.Mutex
	// interned holds the resources of the last update by type and
	// version: all passed validation, so unchanged ones are not validated
	// or copied again.
	interned map[string]*resource
	// shared are the shared resources of the last update that built
	// them.
	shared *shared

	// mu guards identities. It is held while a watch is created, so that
	// an identity's caches are never dropped while a watch joins them.
	mu         sync.Mutex
	identities map[mesh.Identity]*identityState
	eds        *typeCache
	// bodies shares encoded answers between every cache.
	bodies *bodyCache

	// secrets are the SDS certificates (nil without Options.Issuer);
	// renewing is set while KeepCertificatesFresh runs.
	secrets  *secrets
	renewing atomic.Bool
}

// New returns a server with no resources: every node waits until Update
// publishes its identity. It fails on invalid translation options and when
// the metrics cannot be registered.
func New(opts Options) (*Server, error) {
	// Outbound fails on invalid options only.
	if _, err := translate.Outbound(&mesh.Model{}, opts.Translate); err != nil {
		return nil, fmt.Errorf("xDS server: %w", err)
	}
	sc, err := newSecrets(opts)
	if err != nil {
		return nil, fmt.Errorf("xDS server: %w", err)
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:        opts,
		log:         opts.Log.WithName("xds"),
		metrics:     m,
		prefix:      strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		trustDomain: cmp.Or(opts.TrustDomain, mesh.DefaultOptions().TrustDomain),
		identities:  map[mesh.Identity]*identityState{},
		interned:    map[string]*resource{},
		bodies:      newBodyCache(),
		secrets:     sc,
	}
	s.eds = newTypeCache(resourcev3.EndpointType, s.prefix, s.bodies)
	s.streams = &streams{s: s, byID: map[int64]*streamInfo{}}
	s.xds = serverv3.NewServer(context.Background(), router{s}, s.streams.callbacks())
	return s, nil
}

// Register adds the aggregated discovery service (ADS, state of the world
// and delta) to a gRPC server. With Options.VerifyPeer the gRPC server
// must require and verify client certificates.
func (s *Server) Register(g *grpc.Server) {
	var ads discoveryv3.AggregatedDiscoveryServiceServer = s.xds
	if s.opts.VerifyPeer {
		ads = verifyingADS{AggregatedDiscoveryServiceServer: s.xds, s: s}
	}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, ads)
}

// GRPCServerOptions are the options Serve gives its gRPC server: xDS
// clients keep their stream open for as long as they run, and may send
// keepalive pings; an idle connection keeps a small read buffer, since
// most connections are idle most of the time. The resources of a
// response encoded once for several nodes are written without being
// copied first (by a codec that writes the bytes the standard proto codec
// writes).
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCodec()),
		grpc.ReadBufferSize(16 << 10),
		grpc.MaxConcurrentStreams(1 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// Serve serves ADS on lis until ctx is done, then stops the gRPC server
// (open streams end; nodes reconnect elsewhere). creds nil means
// plaintext, for tests and trusted networks only. With Options.Issuer it
// also keeps the SDS certificates fresh (KeepCertificatesFresh).
func (s *Server) Serve(ctx context.Context, lis net.Listener, creds credentials.TransportCredentials) error {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	g := grpc.NewServer(append(GRPCServerOptions(), grpc.Creds(creds))...)
	s.Register(g)
	renewCtx, stopRenewing := context.WithCancel(ctx)
	var renewing sync.WaitGroup
	renewing.Go(func() { s.KeepCertificatesFresh(renewCtx) })
	defer func() {
		stopRenewing()
		renewing.Wait()
	}()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			g.Stop()
		case <-stopped:
		}
	}()
	s.log.Info("serving xDS", "address", lis.Addr().String(), "flavor", string(s.opts.Translate.Flavor))
	err := g.Serve(lis)
	close(stopped)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ListenAndServe listens on addr (host:port) and serves ADS until ctx is
// done.
func (s *Server) ListenAndServe(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, lis, creds)
}

// known reports whether the identity's resources are published.
func (s *Server) known(id mesh.Identity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.identities[id]
	return st != nil && st.active.Load()
}
