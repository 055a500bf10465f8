package mesh

// Ingress protocols of an IngressTarget.
const (
	// IngressHTTP: the ingress speaks plain-text HTTP to the backend.
	IngressHTTP = "http"
	// IngressHTTPS: the ingress speaks HTTP over TLS to the backend.
	IngressHTTPS = "https"
)

// Ingress source kinds of an IngressSource.
const (
	// IngressSourceService admits the endpoint addresses of a Service.
	IngressSourceService = "Service"
	// IngressSourceIPRange admits the addresses of a CIDR block.
	IngressSourceIPRange = "IPRange"
	// IngressSourceAuthenticatedPrincipal admits a client certificate principal.
	IngressSourceAuthenticatedPrincipal = "AuthenticatedPrincipal"
)

// IngressBackend admits traffic from outside the mesh (an ingress controller
// such as ingress-nginx) to target ports of backend Services. It comes from
// one OSM IngressBackend; IngressBackends are combined by union.
//
// A connection to one of Backends is admitted when Sources is not empty and
//
//   - address: the client address is one of the Addresses of a Service
//     source or lies in the CIDR of an IPRange source. When Sources holds no
//     Service or IPRange source, any address passes for a backend that
//     checks principals, and none for a backend that does not.
//   - principal: for a backend that checks principals (see
//     IngressTarget.ChecksPrincipal), when Sources holds AuthenticatedPrincipal
//     sources, the principal of the client certificate is one of them,
//     compared verbatim.
//
// So an http backend (and an https one that skips client certificate
// validation) is reached only from listed addresses, and an IngressBackend
// without sources admits nothing.
type IngressBackend struct {
	// Origin is the IngressBackend this came from.
	Origin ObjectRef `json:"origin"`
	// Backends are the target ports admitted, in the order given.
	Backends []IngressTarget `json:"backends,omitempty"`
	// Sources are the admitted clients, in the order given.
	Sources []IngressSource `json:"sources,omitempty"`
}

// IngressTarget is a backend Service target port that accepts ingress traffic.
type IngressTarget struct {
	// Service is the backend Service, in the IngressBackend's namespace.
	Service ServiceKey `json:"service"`
	// Port is the target port (the port the Service's pods listen on), not
	// the Service port: OSM's port.number means the target port.
	Port int32 `json:"port"`
	// Protocol is IngressHTTP or IngressHTTPS.
	Protocol string `json:"protocol"`
	// SkipClientCertValidation (https only) accepts clients without
	// checking their certificate.
	SkipClientCertValidation bool `json:"skipClientCertValidation,omitempty"`
	// SNIHosts (https only) are the server names clients may ask for;
	// empty means any.
	SNIHosts []string `json:"sniHosts,omitempty"`
}

// ChecksPrincipal reports whether the client certificate's principal is
// checked on this backend: https with client certificate validation.
func (t IngressTarget) ChecksPrincipal() bool {
	return t.Protocol == IngressHTTPS && !t.SkipClientCertValidation
}

// IngressSource is a client admitted by an IngressBackend. Exactly one of
// Service, CIDR and Principal is set, as Kind says.
type IngressSource struct {
	// Kind is IngressSourceService, IngressSourceIPRange or
	// IngressSourceAuthenticatedPrincipal.
	Kind string `json:"kind"`
	// Service names the source Service (Kind Service).
	Service *ServiceKey `json:"service,omitempty"`
	// Addresses are the IP addresses of the Service's endpoints, ready or
	// not, sorted (Kind Service). Empty means the Service admits no address.
	Addresses []string `json:"addresses,omitempty"`
	// CIDR is the admitted block in canonical form, e.g. 10.0.0.0/8 (Kind IPRange).
	CIDR string `json:"cidr,omitempty"`
	// Principal is the client certificate principal, as written (Kind
	// AuthenticatedPrincipal).
	Principal string `json:"principal,omitempty"`
}

// IsAddress reports whether the source admits by client address (Service
// and IPRange sources).
func (s IngressSource) IsAddress() bool {
	return s.Kind == IngressSourceService || s.Kind == IngressSourceIPRange
}
