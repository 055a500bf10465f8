package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PathType says how a route rule's path matches.
//
// +kubebuilder:validation:Enum=PREFIX
type PathType string

// PathPrefix matches paths that start with the rule's path.
const PathPrefix PathType = "PREFIX"

// VirtualServiceRouteTable routes the requests sent to a VirtualService to
// its VirtualDeployments. Tables of one VirtualService apply in order of
// priority (lowest first), and their rules in the order written: the first
// rule that matches a request routes it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualServiceRouteTable struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualServiceRouteTableSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// VirtualServiceRouteTableSpec describes a VirtualServiceRouteTable.
type VirtualServiceRouteTableSpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Description describes the route table.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// VirtualService is the VirtualService whose requests are routed.
	// +required
	VirtualService RefOrID `json:"virtualService"`

	// RouteRules are the rules, tried in order.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	RouteRules []VirtualServiceRouteRule `json:"routeRules"`

	// Priority orders the route tables of one VirtualService: lower first.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Priority *int32 `json:"priority,omitempty"`
}

// VirtualServiceRouteRule is one rule of a VirtualServiceRouteTable: exactly
// one of HTTPRoute, TCPRoute and TLSPassthroughRoute.
//
// +kubebuilder:validation:XValidation:rule="(has(self.httpRoute) ? 1 : 0) + (has(self.tcpRoute) ? 1 : 0) + (has(self.tlsPassthroughRoute) ? 1 : 0) == 1",message="exactly one of httpRoute, tcpRoute and tlsPassthroughRoute must be set"
type VirtualServiceRouteRule struct {
	// HTTPRoute routes HTTP requests.
	// +optional
	HTTPRoute *HTTPVirtualServiceRoute `json:"httpRoute,omitempty"`

	// TCPRoute routes TCP connections.
	// +optional
	TCPRoute *VirtualServiceRoute `json:"tcpRoute,omitempty"`

	// TLSPassthroughRoute routes TLS connections without terminating them.
	// +optional
	TLSPassthroughRoute *VirtualServiceRoute `json:"tlsPassthroughRoute,omitempty"`
}

// HTTPVirtualServiceRoute routes HTTP requests to VirtualDeployments.
type HTTPVirtualServiceRoute struct {
	// Destinations are the weighted VirtualDeployments.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	Destinations []VirtualDeploymentTarget `json:"destinations"`

	// Path is the path prefix the rule matches; omitted means any path.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path *string `json:"path,omitempty"`

	// IsGrpc restricts the rule to gRPC requests (content-type
	// application/grpc or application/grpc+...).
	// +kubebuilder:default:=false
	// +optional
	IsGrpc *bool `json:"isGrpc,omitempty"`

	// PathType is PREFIX.
	// +optional
	PathType PathType `json:"pathType,omitempty"`

	// RequestTimeoutInMs bounds how long the destination may take to answer;
	// omitted means 15 s, 0 means no timeout.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RequestTimeoutInMs *int64 `json:"requestTimeoutInMs,omitempty"`
}

// VirtualServiceRoute routes TCP or TLS connections to VirtualDeployments.
type VirtualServiceRoute struct {
	// Destinations are the weighted VirtualDeployments.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	Destinations []VirtualDeploymentTarget `json:"destinations"`
}

// VirtualDeploymentTarget is a weighted destination of a route rule.
type VirtualDeploymentTarget struct {
	// VirtualDeployment is the destination.
	// +required
	VirtualDeployment RefOrID `json:"virtualDeployment"`

	// Weight is the share of the traffic, 0 to 100.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +required
	Weight int32 `json:"weight"`

	// Port is the destination's listener port, when it has several.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// VirtualServiceRouteTableList is a list of VirtualServiceRouteTables.
//
// +kubebuilder:object:root=true
type VirtualServiceRouteTableList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []VirtualServiceRouteTable `json:"items"`
}

// IngressGatewayRouteTable routes the requests an IngressGateway receives to
// VirtualServices.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IngressGatewayRouteTable struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IngressGatewayRouteTableSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// IngressGatewayRouteTableSpec describes an IngressGatewayRouteTable.
type IngressGatewayRouteTableSpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Description describes the route table.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// IngressGateway is the gateway whose requests are routed.
	// +required
	IngressGateway RefOrID `json:"ingressGateway"`

	// RouteRules are the rules, tried in order.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	RouteRules []IngressGatewayRouteRule `json:"routeRules"`

	// Priority orders the route tables of one gateway: lower first.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Priority *int32 `json:"priority,omitempty"`
}

// IngressGatewayRouteRule is one rule of an IngressGatewayRouteTable:
// exactly one of HTTPRoute, TCPRoute and TLSPassthroughRoute.
//
// +kubebuilder:validation:XValidation:rule="(has(self.httpRoute) ? 1 : 0) + (has(self.tcpRoute) ? 1 : 0) + (has(self.tlsPassthroughRoute) ? 1 : 0) == 1",message="exactly one of httpRoute, tcpRoute and tlsPassthroughRoute must be set"
type IngressGatewayRouteRule struct {
	// HTTPRoute routes HTTP requests.
	// +optional
	HTTPRoute *HTTPIngressGatewayRoute `json:"httpRoute,omitempty"`

	// TCPRoute routes TCP connections.
	// +optional
	TCPRoute *IngressGatewayRoute `json:"tcpRoute,omitempty"`

	// TLSPassthroughRoute routes TLS connections without terminating them.
	// +optional
	TLSPassthroughRoute *IngressGatewayRoute `json:"tlsPassthroughRoute,omitempty"`
}

// HTTPIngressGatewayRoute routes HTTP requests to VirtualServices.
type HTTPIngressGatewayRoute struct {
	// IngressGatewayHost is the gateway host (and port) the rule applies
	// to; omitted means every host.
	// +optional
	IngressGatewayHost *IngressGatewayHostRef `json:"ingressGatewayHost,omitempty"`

	// Destinations are the weighted VirtualServices.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	Destinations []VirtualServiceTarget `json:"destinations"`

	// Path is the path prefix the rule matches; omitted means any path.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path *string `json:"path,omitempty"`

	// IsGrpc restricts the rule to gRPC requests.
	// +kubebuilder:default:=false
	// +optional
	IsGrpc *bool `json:"isGrpc,omitempty"`

	// PathType is PREFIX.
	// +optional
	PathType PathType `json:"pathType,omitempty"`

	// IsHostRewriteEnabled rewrites the Host header to the destination's.
	// +kubebuilder:default:=false
	// +optional
	IsHostRewriteEnabled *bool `json:"isHostRewriteEnabled,omitempty"`

	// IsPathRewriteEnabled rewrites the matched prefix to "/".
	// +kubebuilder:default:=false
	// +optional
	IsPathRewriteEnabled *bool `json:"isPathRewriteEnabled,omitempty"`

	// RequestTimeoutInMs bounds how long the destination may take to answer;
	// omitted means 15 s, 0 means no timeout.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RequestTimeoutInMs *int64 `json:"requestTimeoutInMs,omitempty"`
}

// IngressGatewayRoute routes TCP or TLS connections to VirtualServices.
type IngressGatewayRoute struct {
	// IngressGatewayHost is the gateway host (and port) the rule applies
	// to; omitted means every host.
	// +optional
	IngressGatewayHost *IngressGatewayHostRef `json:"ingressGatewayHost,omitempty"`

	// Destinations are the weighted VirtualServices.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +required
	Destinations []VirtualServiceTarget `json:"destinations"`
}

// IngressGatewayHostRef names a host of the gateway, and optionally one of
// its ports.
type IngressGatewayHostRef struct {
	// Name is the host's name in the IngressGateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +required
	Name string `json:"name"`

	// Port selects one listener port of the host; omitted means all.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// VirtualServiceTarget is a weighted destination of a gateway route rule.
type VirtualServiceTarget struct {
	// VirtualService is the destination.
	// +required
	VirtualService RefOrID `json:"virtualService"`

	// Weight is the share of the traffic, 0 to 100; omitted with a single
	// destination.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Weight *int32 `json:"weight,omitempty"`

	// Port is the destination's port, when it has several.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// IngressGatewayRouteTableList is a list of IngressGatewayRouteTables.
//
// +kubebuilder:object:root=true
type IngressGatewayRouteTableList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IngressGatewayRouteTable `json:"items"`
}
