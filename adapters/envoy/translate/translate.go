package translate

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meshward/meshward/mesh"
)

// Flavor selects the kind of xDS client the resources are for.
type Flavor string

const (
	// FlavorEnvoy is an Envoy sidecar that receives the pod's traffic by
	// redirection (see the package documentation). Certificates come over
	// SDS.
	FlavorEnvoy Flavor = "envoy"
	// FlavorGRPC is a proxyless gRPC application (gRPC-Go's xds:/// resolver
	// and xDS-enabled servers). Certificates come from the certificate
	// provider instance named in the gRPC bootstrap (file_watcher).
	FlavorGRPC Flavor = "grpc"
)

// AuthzMode selects how inbound HTTP requests are authorised.
type AuthzMode string

const (
	// AuthzRBAC compiles the access rules into Envoy RBAC filters (the default).
	AuthzRBAC AuthzMode = "rbac"
	// AuthzExtAuthz asks meshward's ext_authz server about every request.
	AuthzExtAuthz AuthzMode = "ext_authz"
	// AuthzBoth requires both the RBAC filter and the ext_authz server to allow.
	AuthzBoth AuthzMode = "both"
)

// Defaults of the Options fields.
const (
	DefaultCertProviderInstance = "meshward"
	DefaultSDSCertName          = "default"
	DefaultSDSRootName          = "ROOTCA"
	DefaultClusterDomain        = "cluster.local"
)

// Errors returned by ForIdentity, wrapped with details; test them with errors.Is.
var (
	// ErrInvalidOptions: an Options field has a value outside its domain.
	ErrInvalidOptions = errors.New("invalid xDS translation options")
	// ErrUnsupported: the flavor cannot enforce what the options ask for.
	ErrUnsupported = errors.New("not supported by this flavor")
	// ErrUnknownIdentity: the identity is not one of the model's identities.
	ErrUnknownIdentity = errors.New("identity is not in the mesh model")
)

// Options control the translation. The zero value of every field except
// Flavor selects its default.
type Options struct {
	// Flavor is FlavorEnvoy or FlavorGRPC; it is required.
	Flavor Flavor
	// Authz is the inbound authorisation mode; default AuthzRBAC. The gRPC
	// flavor supports AuthzRBAC only: gRPC-Go servers do not run the
	// ext_authz filter, so a request would be decided by nobody.
	Authz AuthzMode
	// ExtAuthzCluster names the cluster of meshward's ext_authz gRPC server
	// (required for AuthzExtAuthz and AuthzBoth). ForIdentity emits this
	// cluster, pointing at ExtAuthzAddress, over plaintext HTTP/2.
	ExtAuthzCluster string
	// ExtAuthzAddress is the ext_authz server's host:port. An IP address
	// gives a STATIC cluster, a DNS name a STRICT_DNS one.
	ExtAuthzAddress string
	// Plaintext turns mTLS off: no TLS transport sockets at all. This is
	// unsafe: callers are not authenticated, so no RBAC principal can match
	// and only a permissive mesh admits traffic; use it for debugging only.
	Plaintext bool
	// CertProviderInstance is the gRPC flavor's certificate provider
	// instance (a key of the bootstrap's certificate_providers); default
	// "meshward". It provides both the workload certificate and the roots.
	CertProviderInstance string
	// SDSCertName and SDSRootName are the Envoy flavor's SDS secret names
	// for the workload certificate and the trusted roots; defaults
	// "default" and "ROOTCA". Both are fetched over ADS.
	SDSCertName, SDSRootName string
	// ClusterDomain is the Kubernetes cluster domain; default "cluster.local".
	ClusterDomain string
}

// withDefaults fills in the defaults and checks every field.
func (o Options) withDefaults() (Options, error) {
	if o.Authz == "" {
		o.Authz = AuthzRBAC
	}
	if o.CertProviderInstance == "" {
		o.CertProviderInstance = DefaultCertProviderInstance
	}
	if o.SDSCertName == "" {
		o.SDSCertName = DefaultSDSCertName
	}
	if o.SDSRootName == "" {
		o.SDSRootName = DefaultSDSRootName
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	switch o.Flavor {
	case FlavorEnvoy, FlavorGRPC:
	default:
		return o, fmt.Errorf("%w: flavor %q: want %q or %q", ErrInvalidOptions, o.Flavor, FlavorEnvoy, FlavorGRPC)
	}
	switch o.Authz {
	case AuthzRBAC:
	case AuthzExtAuthz, AuthzBoth:
		if o.Flavor == FlavorGRPC {
			return o, fmt.Errorf("%w: authz mode %q: gRPC-Go xDS servers do not run the ext_authz filter; use %q", ErrUnsupported, o.Authz, AuthzRBAC)
		}
		if o.ExtAuthzCluster == "" {
			return o, fmt.Errorf("%w: authz mode %q needs ExtAuthzCluster", ErrInvalidOptions, o.Authz)
		}
		if _, _, err := SplitHostPort(o.ExtAuthzAddress); err != nil {
			return o, fmt.Errorf("%w: ExtAuthzAddress: %w", ErrInvalidOptions, err)
		}
	default:
		return o, fmt.Errorf("%w: authz mode %q: want %q, %q or %q", ErrInvalidOptions, o.Authz, AuthzRBAC, AuthzExtAuthz, AuthzBoth)
	}
	if strings.ContainsAny(o.ClusterDomain, "/: ") {
		return o, fmt.Errorf("%w: cluster domain %q", ErrInvalidOptions, o.ClusterDomain)
	}
	return o, nil
}

// extAuthz reports whether requests go to the ext_authz server.
func (o Options) extAuthz() bool { return o.Authz == AuthzExtAuthz || o.Authz == AuthzBoth }

// rbac reports whether requests go through the RBAC filter.
func (o Options) rbac() bool { return o.Authz == AuthzRBAC || o.Authz == AuthzBoth }

// SplitHostPort parses host:port with a non-empty host and a port in
// 1..65535, as the addresses Envoy's socket addresses are built from.
func SplitHostPort(hostport string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return "", 0, fmt.Errorf("%q is not host:port with a port in 1-65535", hostport)
	}
	return host, uint32(port), nil
}

// Resources are the listeners, route configurations and clusters of one
// identity. Every pod running as the identity gets the same resources (an
// xDS-enabled gRPC server asks only for the listeners of its own
// addresses). Each slice is sorted by resource name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
}

// Messages returns every resource, listeners first, then route
// configurations, then clusters.
func (r *Resources) Messages() []proto.Message {
	out := make([]proto.Message, 0, len(r.Listeners)+len(r.Routes)+len(r.Clusters))
	for _, l := range r.Listeners {
		out = append(out, l)
	}
	for _, rc := range r.Routes {
		out = append(out, rc)
	}
	for _, c := range r.Clusters {
		out = append(out, c)
	}
	return out
}

// ForIdentity translates the model into the resources of one identity: the
// outbound side (clusters, listeners and route configurations for every
// service port of the mesh that the flavor carries; see the package
// documentation for each flavor's shape), and the inbound side (listeners
// or filter chains for the addresses and ports where the identity's pods
// serve, with mTLS and authorisation from the access rules whose
// destination is the identity). In the ext_authz modes it also emits the
// ext_authz server's cluster.
//
// ForIdentity is Outbound and Inbound merged: a caller translating many
// identities of one model calls Outbound once and Inbound per identity.
//
// ForIdentity is pure and deterministic: equal models and options give equal
// resources, in the same order. It fails on invalid options (ErrInvalidOptions,
// ErrUnsupported) and on an identity the model does not know (ErrUnknownIdentity).
func ForIdentity(m *mesh.Model, id mesh.Identity, opts Options) (*Resources, error) {
	in, err := Inbound(m, id, opts)
	if err != nil {
		return nil, err
	}
	out, err := Outbound(m, opts)
	if err != nil {
		return nil, err
	}
	return Merge(out, in), nil
}

// Outbound returns the resources that every identity of the model gets,
// the same for each: the client side of every service port the flavor
// carries (its cluster, and the listeners and route configurations that
// lead to it) and, in the ext_authz modes, the ext_authz server's cluster.
// They depend on the model and the options only, never on the identity
// (a cluster checks the server's certificate against the identities of
// the service it leads to, and names the workload's own certificate by the
// same name for every identity), so one translation serves every identity.
// Each slice is sorted by name. It fails on invalid options.
func Outbound(m *mesh.Model, opts Options) (*Resources, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := newBuilder(m, o)
	res := &Resources{}
	b.outbound(res)
	if o.extAuthz() {
		res.Clusters = append(res.Clusters, b.extAuthzCluster())
	}
	if b.err != nil {
		return nil, b.err
	}
	res.sort()
	return res, nil
}

// Inbound returns the resources of one identity's server side: the
// listeners (gRPC: one per address and port; Envoy: the inbound listener)
// where its pods serve, with mTLS and authorisation from the access rules
// whose destination is the identity, and in the Envoy flavor the clusters
// that deliver to the application. Its names never clash with Outbound's.
// Each slice is sorted by name. It fails on invalid options and on an
// identity the model does not know.
func Inbound(m *mesh.Model, id mesh.Identity, opts Options) (*Resources, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(m.Identities, id) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownIdentity, id)
	}
	b := newBuilder(m, o)
	res := &Resources{}
	b.inbound(res, id)
	if b.err != nil {
		return nil, b.err
	}
	res.sort()
	return res, nil
}

// Merge returns the resources of every part in one Resources, each slice
// sorted by name. The parts are not modified; the messages are shared,
// not copied.
func Merge(parts ...*Resources) *Resources {
	out := &Resources{}
	for _, p := range parts {
		out.Listeners = append(out.Listeners, p.Listeners...)
		out.Routes = append(out.Routes, p.Routes...)
		out.Clusters = append(out.Clusters, p.Clusters...)
	}
	out.sort()
	return out
}

func (r *Resources) sort() {
	slices.SortFunc(r.Listeners, func(a, b *listenerv3.Listener) int { return strings.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Routes, func(a, b *routev3.RouteConfiguration) int { return strings.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.GetName(), b.GetName()) })
}

// Validate runs ValidateAll on every resource and joins the errors, each
// prefixed with the resource's type and name.
func Validate(res ...proto.Message) error {
	var errs []error
	for _, r := range res {
		v, ok := r.(interface{ ValidateAll() error })
		if !ok {
			errs = append(errs, fmt.Errorf("%T has no ValidateAll method", r))
			continue
		}
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", r.ProtoReflect().Descriptor().Name(), resourceName(r), err))
		}
	}
	return errors.Join(errs...)
}

// resourceName returns the name (or cluster_name) of an xDS resource.
func resourceName(r proto.Message) string {
	fields := r.ProtoReflect().Descriptor().Fields()
	for _, n := range []string{"name", "cluster_name"} {
		if f := fields.ByName(protoreflect.Name(n)); f != nil {
			return r.ProtoReflect().Get(f).String()
		}
	}
	return ""
}
