package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Source kinds of an IngressBackend.
const (
	// KindService admits the endpoint addresses of a Service (typically the
	// ingress controller's).
	KindService = "Service"
	// KindIPRange admits the addresses of a CIDR block.
	KindIPRange = "IPRange"
	// KindAuthenticatedPrincipal admits clients whose certificate carries
	// this principal (https backends only).
	KindAuthenticatedPrincipal = "AuthenticatedPrincipal"
)

// Backend port protocols.
const (
	// ProtocolHTTP is plain-text HTTP from the ingress to the backend.
	ProtocolHTTP = "http"
	// ProtocolHTTPS is HTTP over TLS from the ingress to the backend.
	ProtocolHTTPS = "https"
)

// Values of IngressBackendStatus.CurrentStatus.
const (
	// StatusCommitted: the IngressBackend is enforced as written.
	StatusCommitted = "committed"
	// StatusError: some or all of the IngressBackend could not be used.
	StatusError = "error"
)

// IngressBackend authorises ingress traffic (from an ingress controller such
// as ingress-nginx) to target ports of backend Services in its namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=osm
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.currentStatus`,description="Whether the IngressBackend is committed or in error."
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1,description="Why the IngressBackend has its status."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IngressBackend struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec lists the backends and the sources allowed to reach them.
	// +required
	Spec IngressBackendSpec `json:"spec"`

	// Status says whether meshward enforces the IngressBackend.
	// +optional
	Status IngressBackendStatus `json:"status,omitempty"`
}

// IngressBackendSpec lists the backends and the sources allowed to reach them.
type IngressBackendSpec struct {
	// Backends are the Service target ports that accept ingress traffic.
	// +kubebuilder:validation:MinItems=1
	// +required
	Backends []BackendSpec `json:"backends"`

	// Sources are the clients allowed to reach every backend.
	// +kubebuilder:validation:MinItems=1
	// +required
	Sources []IngressSourceSpec `json:"sources"`

	// Matches reference objects that would narrow the requests admitted.
	// They are accepted for compatibility and not enforced.
	// +optional
	Matches []corev1.TypedLocalObjectReference `json:"matches,omitempty"`
}

// BackendSpec is a Service target port accepting ingress traffic.
type BackendSpec struct {
	// Name is the name of a Service in the IngressBackend's namespace.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`

	// Port is the backend's target port: the port its pods listen on.
	// +required
	Port PortSpec `json:"port"`

	// TLS configures https backends.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
}

// PortSpec is a backend's target port and the protocol the ingress uses on it.
type PortSpec struct {
	// Number is the target port number (the pods' port, not the Service port).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Number int32 `json:"number"`

	// Protocol is http or https.
	// +kubebuilder:validation:Enum=http;https
	// +required
	Protocol string `json:"protocol"`
}

// TLSSpec configures an https backend.
type TLSSpec struct {
	// SkipClientCertValidation accepts clients without checking their
	// certificate; AuthenticatedPrincipal sources then cannot be verified.
	// +optional
	SkipClientCertValidation bool `json:"skipClientCertValidation,omitempty"`

	// SNIHosts are the server names clients may ask for; empty means any.
	// +optional
	SNIHosts []string `json:"sniHosts,omitempty"`
}

// IngressSourceSpec is a client allowed to reach the backends.
type IngressSourceSpec struct {
	// Kind is Service, IPRange or AuthenticatedPrincipal.
	// +kubebuilder:validation:Enum=Service;IPRange;AuthenticatedPrincipal
	// +required
	Kind string `json:"kind"`

	// Name is the Service name, the CIDR block, or the principal.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`

	// Namespace is the Service's namespace (Service sources only); empty
	// means the IngressBackend's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// IngressBackendStatus says whether meshward enforces the IngressBackend.
type IngressBackendStatus struct {
	// CurrentStatus is committed or error.
	// +optional
	CurrentStatus string `json:"currentStatus,omitempty"`

	// Reason explains CurrentStatus.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// IngressBackendList is a list of IngressBackends.
//
// +kubebuilder:object:root=true
type IngressBackendList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IngressBackend `json:"items"`
}
