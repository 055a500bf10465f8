package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of Status.Conditions.
const (
	// ConditionActive says whether meshward enforces the object.
	ConditionActive = "ServiceMeshActive"
	// ConditionDependenciesActive says whether every object this one
	// refers to exists and is usable.
	ConditionDependenciesActive = "ServiceMeshDependenciesActive"
	// ConditionConfigured says whether the object is in meshward's model
	// as written, without errors.
	ConditionConfigured = "ServiceMeshConfigured"
)

// Tags are the OCI tags of a resource. They are accepted for compatibility
// and not used.
type Tags struct {
	// FreeformTags are free-form key/value tags.
	// +optional
	FreeformTags map[string]string `json:"freeformTags,omitempty"`

	// DefinedTags are namespaced tags: namespace -> key -> value.
	// +optional
	DefinedTags map[string]map[string]string `json:"definedTags,omitempty"`
}

// ResourceRef names an object of this group.
type ResourceRef struct {
	// Name is the object's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Namespace is the object's namespace; empty means the namespace of
	// the object holding the reference.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// RefOrID refers to an object either by reference to its Kubernetes object
// or by its OCID. Exactly one of Ref and ID is set. meshward resolves only
// references: an object named by OCID alone cannot be resolved and is
// reported.
//
// +kubebuilder:validation:XValidation:rule="has(self.ref) != has(self.id)",message="exactly one of ref and id must be set"
type RefOrID struct {
	// Ref names the object in the cluster.
	// +optional
	Ref *ResourceRef `json:"ref,omitempty"`

	// ID is the object's OCID.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	ID string `json:"id,omitempty"`
}

// MTLSMode is a mutual TLS mode, from weakest to strongest: DISABLED,
// PERMISSIVE, STRICT.
//
// +kubebuilder:validation:Enum=DISABLED;PERMISSIVE;STRICT
type MTLSMode string

// Mutual TLS modes.
const (
	// MTLSDisabled: connections are plain text.
	MTLSDisabled MTLSMode = "DISABLED"
	// MTLSPermissive: connections may be plain text or mutual TLS.
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSStrict: connections must be mutual TLS.
	MTLSStrict MTLSMode = "STRICT"
)

// Rank orders the modes: DISABLED 0, PERMISSIVE 1, STRICT 2; -1 for
// anything else.
func (m MTLSMode) Rank() int {
	switch m {
	case MTLSDisabled:
		return 0
	case MTLSPermissive:
		return 1
	case MTLSStrict:
		return 2
	}
	return -1
}

// Protocol is the protocol of a VirtualDeployment listener.
//
// +kubebuilder:validation:Enum=HTTP;TLS_PASSTHROUGH;TCP;HTTP2;GRPC
type Protocol string

// Listener protocols.
const (
	ProtocolHTTP           Protocol = "HTTP"
	ProtocolHTTP2          Protocol = "HTTP2"
	ProtocolGRPC           Protocol = "GRPC"
	ProtocolTCP            Protocol = "TCP"
	ProtocolTLSPassthrough Protocol = "TLS_PASSTHROUGH"
)

// Listener is a port a VirtualDeployment serves.
type Listener struct {
	// Protocol is the protocol spoken on the port.
	// +required
	Protocol Protocol `json:"protocol"`

	// Port is the port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`

	// RequestTimeoutInMs bounds how long the workload may take to answer a
	// request (HTTP, HTTP2 and GRPC only). Omitted: 15 s for HTTP and
	// HTTP2, none for GRPC; 0: no timeout.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RequestTimeoutInMs *int64 `json:"requestTimeoutInMs,omitempty"`

	// IdleTimeoutInMs bounds how long a request stream may stay idle; 0
	// means no timeout.
	// +kubebuilder:validation:Minimum=0
	// +optional
	IdleTimeoutInMs *int64 `json:"idleTimeoutInMs,omitempty"`
}

// AccessLogging turns access logs on or off.
type AccessLogging struct {
	// IsEnabled turns access logging on.
	// +optional
	IsEnabled bool `json:"isEnabled,omitempty"`
}

// CABundle names a bundle of CA certificates.
type CABundle struct {
	// OCICABundle is a CA bundle of OCI's Certificates service.
	// +optional
	OCICABundle *OCICABundle `json:"ociCaBundle,omitempty"`

	// KubeSecretCABundle is a CA bundle in a Kubernetes Secret.
	// +optional
	KubeSecretCABundle *SecretName `json:"kubeSecretCaBundle,omitempty"`
}

// OCICABundle is a CA bundle of OCI's Certificates service.
type OCICABundle struct {
	// CABundleID is the bundle's OCID.
	// +kubebuilder:validation:MinLength=1
	// +required
	CABundleID string `json:"caBundleId"`
}

// TLSCertificate names a certificate and its key.
type TLSCertificate struct {
	// OCITLSCertificate is a certificate of OCI's Certificates service.
	// +optional
	OCITLSCertificate *OCITLSCertificate `json:"ociTlsCertificate,omitempty"`

	// KubeSecretTLSCertificate is a certificate in a Kubernetes Secret.
	// +optional
	KubeSecretTLSCertificate *SecretName `json:"kubeSecretTlsCertificate,omitempty"`
}

// OCITLSCertificate is a certificate of OCI's Certificates service.
type OCITLSCertificate struct {
	// CertificateID is the certificate's OCID.
	// +kubebuilder:validation:MinLength=1
	// +required
	CertificateID string `json:"certificateId"`
}

// SecretName names a Kubernetes Secret in the object's namespace.
type SecretName struct {
	// SecretName is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +required
	SecretName string `json:"secretName"`
}

// Status is the status of every kind of this group.
type Status struct {
	// Conditions are ServiceMeshDependenciesActive, ServiceMeshConfigured
	// and ServiceMeshActive, in this order.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
