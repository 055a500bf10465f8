package mesh

// Protocols of OCI-style route rules and listeners, as written in the model.
const (
	RouteHTTP           = "http"
	RouteHTTP2          = "http2"
	RouteGRPC           = "grpc"
	RouteTCP            = "tcp"
	RouteTLSPassthrough = "tls-passthrough"
)

// The ports a sidecar's own listeners take in every pod (where traffic is
// redirected to, going out and coming in): a gateway cannot listen there.
const (
	SidecarOutboundPort = 15001
	SidecarInboundPort  = 15003
)

// Egress protocols of an EgressRule.
const (
	EgressHTTP  = "http"
	EgressHTTPS = "https"
	EgressTCP   = "tcp"
)

// VirtualService is an OCI-style VirtualService (servicemesh.oci.oracle.com)
// as meshward sees it: the hosts its callers use, the VirtualDeployments
// serving it with the identities and Kubernetes Services of their bound
// pods, and its route rules in the order they apply.
//
// Access between VirtualServices is not here: it is in Model.Access, as
// access rules between the identities of the VirtualDeployments. Routing
// that a Split can express is in Model.Splits as well; the route rules here
// are the complete routing.
type VirtualService struct {
	// Origin is the VirtualService.
	Origin ObjectRef `json:"origin"`
	// Mesh is the OCI Mesh it belongs to.
	Mesh ObjectRef `json:"mesh"`
	// Hosts are the host names callers use, as written.
	Hosts []string `json:"hosts,omitempty"`
	// Service is the Kubernetes Service the first resolvable host names:
	// the root service of the routing. Nil when no host names a Service.
	Service *ServiceKey `json:"service,omitempty"`
	// MTLS is the mutual TLS mode in force (DISABLED, PERMISSIVE or
	// STRICT): the VirtualService's own, raised to the Mesh's minimum.
	MTLS string `json:"mtls"`
	// DefaultRouting is UNIFORM or DENY: where requests no rule matches go.
	DefaultRouting string `json:"defaultRouting"`
	// Deployments are the VirtualDeployments serving it, sorted by origin.
	Deployments []VirtualDeployment `json:"deployments,omitempty"`
	// Routes are the route rules in the order they apply: route tables by
	// priority (lower first) then name, rules as written.
	Routes []RouteRule `json:"routes,omitempty"`
}

// VirtualDeployment is one version of a VirtualService, with the pods its
// VirtualDeploymentBindings bind.
type VirtualDeployment struct {
	// Origin is the VirtualDeployment.
	Origin ObjectRef `json:"origin"`
	// Bindings are the VirtualDeploymentBindings that bind pods to it.
	Bindings []ObjectRef `json:"bindings,omitempty"`
	// Services are the Kubernetes Services the bindings name, sorted.
	Services []ServiceKey `json:"services,omitempty"`
	// Identities are the ServiceAccounts of the bound pods, sorted: the
	// VirtualDeployment's identities in the mesh.
	Identities []Identity `json:"identities,omitempty"`
	// Listeners are the ports it serves.
	Listeners []Listener `json:"listeners,omitempty"`
}

// Listener is a port of a VirtualDeployment.
type Listener struct {
	// Protocol is one of the Route* protocols.
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	// RequestTimeoutMs bounds the time to answer a request, in
	// milliseconds; 0 means no timeout (and is the value for TCP).
	RequestTimeoutMs int64 `json:"requestTimeoutMs,omitempty"`
	// IdleTimeoutMs bounds how long a stream may be idle; 0 means none.
	IdleTimeoutMs int64 `json:"idleTimeoutMs,omitempty"`
}

// RouteRule is one rule of an OCI-style route table (of a VirtualService
// or of an IngressGateway). The first rule matching a request routes it.
type RouteRule struct {
	// Origin is the route table.
	Origin ObjectRef `json:"origin"`
	// Name is the rule's place in the table, e.g. "routeRules[0]".
	Name string `json:"name"`
	// Priority is the table's priority; lower applies first.
	Priority int32 `json:"priority"`
	// Protocol is RouteHTTP, RouteGRPC, RouteTCP or RouteTLSPassthrough.
	Protocol string `json:"protocol"`
	// Match selects the HTTP requests (http and grpc rules): PathRegex is
	// the quoted path prefix followed by ".*", and grpc rules require a
	// gRPC content-type. Nil for TCP and TLS rules.
	Match *HTTPMatch `json:"match,omitempty"`
	// GatewayHost is the IngressGateway host the rule applies to (gateway
	// rules only); empty means every host.
	GatewayHost string `json:"gatewayHost,omitempty"`
	// GatewayPort narrows GatewayHost to one listener port; 0 means all.
	GatewayPort int32 `json:"gatewayPort,omitempty"`
	// RequestTimeoutMs bounds the time to answer (http and grpc rules), in
	// milliseconds; 0 means no timeout.
	RequestTimeoutMs int64 `json:"requestTimeoutMs,omitempty"`
	// Backends are the weighted destinations that resolved.
	Backends []RouteBackend `json:"backends,omitempty"`
	// RewritePath (gateway http rules) replaces the matched path prefix
	// with "/" before the request goes on.
	RewritePath bool `json:"rewritePath,omitempty"`
	// RewriteHost (gateway http rules) sets the Host of the request to the
	// destination VirtualService's first host.
	RewriteHost bool `json:"rewriteHost,omitempty"`
}

// RouteBackend is a weighted destination of a route rule: a
// VirtualDeployment (VirtualService rules) or a VirtualService (gateway
// rules), with the Kubernetes Services that carry its traffic.
type RouteBackend struct {
	// Target is the VirtualDeployment or VirtualService.
	Target ObjectRef `json:"target"`
	// Weight is 0 to 100.
	Weight int32 `json:"weight"`
	// Port is the target's port; 0 when not given.
	Port int32 `json:"port,omitempty"`
	// Services are the Kubernetes Services behind the target, sorted.
	Services []ServiceKey `json:"services,omitempty"`
}

// Gateway is an OCI-style IngressGateway: its hosts, the identities of the
// pods its IngressGatewayDeployments run, and its route rules.
type Gateway struct {
	// Origin is the IngressGateway.
	Origin ObjectRef `json:"origin"`
	// Mesh is the OCI Mesh it belongs to.
	Mesh ObjectRef `json:"mesh"`
	// Hosts are the gateway's hosts, as written.
	Hosts []GatewayHost `json:"hosts,omitempty"`
	// Deployments are the IngressGatewayDeployments running it, sorted.
	Deployments []ObjectRef `json:"deployments,omitempty"`
	// Identities are the ServiceAccounts of the gateway pods, sorted.
	Identities []Identity `json:"identities,omitempty"`
	// Routes are the route rules in the order they apply.
	Routes []RouteRule `json:"routes,omitempty"`
}

// GatewayHost is a named host of a Gateway.
type GatewayHost struct {
	Name      string            `json:"name"`
	Hostnames []string          `json:"hostnames,omitempty"`
	Listeners []GatewayListener `json:"listeners,omitempty"`
}

// GatewayListener is a port of a GatewayHost.
type GatewayListener struct {
	// Protocol is RouteHTTP, RouteTCP or RouteTLSPassthrough.
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	// TLSMode is DISABLED, PERMISSIVE, TLS or MUTUAL_TLS; empty when not set.
	TLSMode string `json:"tlsMode,omitempty"`
}

// EgressRule allows identities of the mesh to reach a service outside it.
// It comes from one AccessPolicy rule whose destination is an external
// service; egress rules are combined by union. The policy engine
// enforces them for requests marked as egress (see docs/policy.md).
type EgressRule struct {
	// Origin is the AccessPolicy.
	Origin ObjectRef `json:"origin"`
	// Name is the rule's place in the policy, e.g. "rules[2]".
	Name string `json:"name"`
	// Sources are the identities allowed out, sorted.
	Sources []Identity `json:"sources,omitempty"`
	// Protocol is EgressHTTP (matched by Host header), EgressHTTPS (by
	// TLS server name) or EgressTCP (by destination address).
	Protocol string `json:"protocol"`
	// Hosts are the host names (http and https); a leading "*." is a
	// wildcard.
	Hosts []string `json:"hosts,omitempty"`
	// CIDRs are the address blocks in canonical form (tcp).
	CIDRs []string `json:"cidrs,omitempty"`
	// Ports are the allowed ports, sorted; empty means every port.
	Ports []int32 `json:"ports,omitempty"`
}
