package mesh

import (
	"fmt"
	"strings"
)

// Model is the mesh as meshward enforces it: who is who, which services
// exist and where their endpoints are, how traffic is split, and who may
// call whom. Every slice is sorted so that equal inputs give equal models.
type Model struct {
	// Options are the mesh-wide settings the model was built with.
	Options Options `json:"options"`
	// Namespaces lists the namespaces that are members of the mesh.
	Namespaces []string `json:"namespaces,omitempty"`
	// Identities lists every workload identity (ServiceAccount) in the mesh.
	Identities []Identity `json:"identities,omitempty"`
	// Services lists the mesh's Kubernetes Services with their endpoints.
	Services []Service `json:"services,omitempty"`
	// Access lists the access rules, one per accepted TrafficTarget,
	// sorted by destination identity then origin.
	Access []AccessRule `json:"access,omitempty"`
	// Splits lists the traffic splits in force, one per root service.
	Splits []Split `json:"splits,omitempty"`
	// Ingress lists what may enter the mesh from ingress controllers, one
	// entry per accepted IngressBackend, sorted by origin.
	Ingress []IngressBackend `json:"ingress,omitempty"`
	// VirtualServices lists the OCI-style VirtualServices with their
	// deployments and routing, sorted by origin.
	VirtualServices []VirtualService `json:"virtualServices,omitempty"`
	// Gateways lists the OCI-style IngressGateways, sorted by origin.
	Gateways []Gateway `json:"gateways,omitempty"`
	// Egress lists what may leave the mesh, one entry per AccessPolicy
	// rule with an external destination, sorted by origin then name.
	Egress []EgressRule `json:"egress,omitempty"`
	// Findings lists what was wrong with the input.
	Findings []Finding `json:"findings,omitempty"`
}

// PrincipalFormat selects how identities are written as principals.
type PrincipalFormat string

const (
	// PrincipalSPIFFE is spiffe://<trustDomain>/ns/<ns>/sa/<sa>.
	PrincipalSPIFFE PrincipalFormat = "spiffe"
	// PrincipalDNS is the OSM-compatible <sa>.<ns>.<trustDomain>.
	PrincipalDNS PrincipalFormat = "dns"
)

// PathMatch selects how an HTTPRouteGroup pathRegex is applied.
type PathMatch string

const (
	// PathMatchPrefix anchors the regex at the start of the path only (SMI).
	PathMatchPrefix PathMatch = "prefix"
	// PathMatchFull requires the regex to match the whole path (OSM, Envoy safe_regex).
	PathMatchFull PathMatch = "full"
)

// Options are the mesh-wide settings.
type Options struct {
	// MeshName is the value of the namespace label that makes a namespace a member.
	MeshName string `json:"meshName"`
	// TrustDomain is the SPIFFE trust domain.
	TrustDomain string `json:"trustDomain"`
	// PrincipalFormat selects SPIFFE or DNS principals.
	PrincipalFormat PrincipalFormat `json:"principalFormat"`
	// PathMatch selects prefix or full matching of pathRegex.
	PathMatch PathMatch `json:"pathMatch"`
	// Permissive allows all in-mesh traffic (routing and splits still apply).
	Permissive bool `json:"permissive,omitempty"`
	// FailOpen allows requests when a decision cannot be made. Off by default.
	FailOpen bool `json:"failOpen,omitempty"`
}

// NamespaceLabel is the label that makes a namespace a member of the mesh
// named by its value.
const NamespaceLabel = "meshward.io/mesh"

// DefaultOptions returns the defaults: mesh "meshward", trust domain
// cluster.local, SPIFFE principals, prefix path matching, deny by default,
// fail closed.
func DefaultOptions() Options {
	return Options{
		MeshName:        "meshward",
		TrustDomain:     "cluster.local",
		PrincipalFormat: PrincipalSPIFFE,
		PathMatch:       PathMatchPrefix,
	}
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	if o.MeshName == "" {
		return fmt.Errorf("mesh name must not be empty")
	}
	if err := ValidateTrustDomain(o.TrustDomain); err != nil {
		return err
	}
	switch o.PrincipalFormat {
	case PrincipalSPIFFE, PrincipalDNS:
	default:
		return fmt.Errorf("principal format %q is invalid: want %q or %q", o.PrincipalFormat, PrincipalSPIFFE, PrincipalDNS)
	}
	switch o.PathMatch {
	case PathMatchPrefix, PathMatchFull:
	default:
		return fmt.Errorf("path match %q is invalid: want %q or %q", o.PathMatch, PathMatchPrefix, PathMatchFull)
	}
	return nil
}

// ValidateTrustDomain applies SPIFFE's rule for trust domain names:
// not empty, at most 255 characters, and only lower-case letters, digits,
// '.', '-' and '_'.
func ValidateTrustDomain(td string) error {
	switch {
	case td == "":
		return fmt.Errorf("trust domain must not be empty")
	case len(td) > 255:
		return fmt.Errorf("trust domain %q is invalid: longer than 255 characters", td)
	}
	for _, r := range td {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_' {
			return fmt.Errorf("trust domain %q is invalid: SPIFFE allows only lower-case letters, digits, '.', '-' and '_'", td)
		}
	}
	return nil
}

// Identity is a workload identity: a Kubernetes ServiceAccount.
type Identity struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (i Identity) String() string { return i.Namespace + "/" + i.Name }

// IsZero reports whether the identity is unset.
func (i Identity) IsZero() bool { return i.Namespace == "" && i.Name == "" }

// Principal returns the identity's principal in the given format.
func (i Identity) Principal(format PrincipalFormat, trustDomain string) string {
	if format == PrincipalDNS {
		return i.Name + "." + i.Namespace + "." + trustDomain
	}
	return "spiffe://" + trustDomain + "/ns/" + i.Namespace + "/sa/" + i.Name
}

// Compare orders identities by namespace, then name.
func (i Identity) Compare(o Identity) int {
	if c := strings.Compare(i.Namespace, o.Namespace); c != 0 {
		return c
	}
	return strings.Compare(i.Name, o.Name)
}

// ServiceKey names a Kubernetes Service.
type ServiceKey struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// Compare orders service keys by namespace, then name.
func (k ServiceKey) Compare(o ServiceKey) int {
	if c := strings.Compare(k.Namespace, o.Namespace); c != 0 {
		return c
	}
	return strings.Compare(k.Name, o.Name)
}

// Service is a Kubernetes Service in the mesh.
type Service struct {
	ServiceKey `json:",inline"`
	// Ports are the service's ports, sorted by port number.
	Ports []ServicePort `json:"ports,omitempty"`
	// Endpoints are the ready and not-ready endpoints backing the service,
	// sorted by address.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Identities are the identities of the pods behind the endpoints.
	Identities []Identity `json:"identities,omitempty"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name string `json:"name,omitempty"`
	Port int32  `json:"port"`
	// TargetPort is the numeric target port, when the Service gives one.
	TargetPort int32 `json:"targetPort,omitempty"`
	// TargetPortName is the named target port, when the Service gives one.
	TargetPortName string `json:"targetPortName,omitempty"`
	// Protocol is TCP, UDP or SCTP.
	Protocol string `json:"protocol"`
	// AppProtocol is the Service's appProtocol (http, http2, grpc, tcp...).
	AppProtocol string `json:"appProtocol,omitempty"`
}

// Endpoint is one address behind a Service.
type Endpoint struct {
	Address string `json:"address"`
	// Ports maps service port names to the endpoint's port numbers.
	Ports []EndpointPort `json:"ports,omitempty"`
	// Identity is the identity of the pod at this address, if known.
	Identity *Identity `json:"identity,omitempty"`
	// Pod names the pod at this address, if known.
	Pod  string `json:"pod,omitempty"`
	Zone string `json:"zone,omitempty"`
	// Ready is false for endpoints that should not receive traffic.
	Ready bool `json:"ready"`
}

// EndpointPort is a named port of an endpoint.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}
