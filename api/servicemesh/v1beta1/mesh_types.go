package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mesh groups VirtualServices, IngressGateways and AccessPolicies, and sets
// the weakest mutual TLS mode its VirtualServices may use.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Mesh struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MeshSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// MeshSpec describes a Mesh.
type MeshSpec struct {
	Tags `json:",inline"`

	// DisplayName is a display name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Description describes the Mesh.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// CertificateAuthorities are OCI certificate authorities; not used:
	// meshward issues workload certificates itself.
	// +kubebuilder:validation:MaxItems=1
	// +optional
	CertificateAuthorities []CertificateAuthority `json:"certificateAuthorities,omitempty"`

	// MTLS sets the weakest mutual TLS mode of the Mesh's VirtualServices.
	// +optional
	MTLS *MeshMTLS `json:"mtls,omitempty"`
}

// CertificateAuthority is an OCI certificate authority.
type CertificateAuthority struct {
	// ID is the certificate authority's OCID.
	// +kubebuilder:validation:MinLength=1
	// +required
	ID string `json:"id"`
}

// MeshMTLS sets the weakest mutual TLS mode of a Mesh's VirtualServices.
type MeshMTLS struct {
	// Minimum is the weakest mode a VirtualService may use: DISABLED (any),
	// PERMISSIVE (PERMISSIVE or STRICT) or STRICT (STRICT only).
	// +required
	Minimum MTLSMode `json:"minimum"`
}

// MeshList is a list of Meshes.
//
// +kubebuilder:object:root=true
type MeshList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Mesh `json:"items"`
}

// VirtualService is a service of a Mesh: the hosts its callers use, served
// by one or more VirtualDeployments.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualService struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualServiceSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// VirtualServiceSpec describes a VirtualService.
type VirtualServiceSpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Mesh is the Mesh the VirtualService belongs to.
	// +required
	Mesh RefOrID `json:"mesh"`

	// Description describes the VirtualService.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// DefaultRoutingPolicy says where requests no route rule matches go.
	// +optional
	DefaultRoutingPolicy *DefaultRoutingPolicy `json:"defaultRoutingPolicy,omitempty"`

	// Hosts are the DNS names callers use, e.g.
	// bookstore.bookstore.svc.cluster.local; a leading "*." is a wildcard.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	Hosts []string `json:"hosts,omitempty"`

	// MTLS is the VirtualService's mutual TLS mode.
	// +optional
	MTLS *VirtualServiceMTLS `json:"mtls,omitempty"`
}

// RoutingPolicy says where requests that match no route rule go.
//
// +kubebuilder:validation:Enum=UNIFORM;DENY
type RoutingPolicy string

// Routing policies.
const (
	// RoutingUniform spreads unmatched requests over every deployment.
	RoutingUniform RoutingPolicy = "UNIFORM"
	// RoutingDeny refuses unmatched requests.
	RoutingDeny RoutingPolicy = "DENY"
)

// DefaultRoutingPolicy says where requests that match no route rule go.
type DefaultRoutingPolicy struct {
	// Type is UNIFORM or DENY.
	// +required
	Type RoutingPolicy `json:"type"`
}

// VirtualServiceMTLS is the mutual TLS mode of a VirtualService.
type VirtualServiceMTLS struct {
	// Mode is DISABLED, PERMISSIVE or STRICT; it may not be weaker than
	// the Mesh's minimum.
	// +required
	Mode MTLSMode `json:"mode"`
}

// VirtualServiceList is a list of VirtualServices.
//
// +kubebuilder:object:root=true
type VirtualServiceList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []VirtualService `json:"items"`
}

// VirtualDeployment is one version of a VirtualService. The pods that
// VirtualDeploymentBindings bind to it serve it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualDeployment struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualDeploymentSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// VirtualDeploymentSpec describes a VirtualDeployment.
type VirtualDeploymentSpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Description describes the VirtualDeployment.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// VirtualService is the VirtualService this is a version of.
	// +required
	VirtualService RefOrID `json:"virtualService"`

	// ServiceDiscovery says how callers find the pods; meshward finds
	// them through the bindings' Services, so it is not used.
	// +optional
	ServiceDiscovery *ServiceDiscovery `json:"serviceDiscovery,omitempty"`

	// AccessLogging turns access logs on or off.
	// +optional
	AccessLogging *AccessLogging `json:"accessLogging,omitempty"`

	// Listener lists the ports the pods serve.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	Listener []Listener `json:"listener,omitempty"`
}

// ServiceDiscoveryType says how a VirtualDeployment's pods are found.
//
// +kubebuilder:validation:Enum=DNS;DISABLED
type ServiceDiscoveryType string

// Service discovery types.
const (
	ServiceDiscoveryDNS      ServiceDiscoveryType = "DNS"
	ServiceDiscoveryDisabled ServiceDiscoveryType = "DISABLED"
)

// ServiceDiscovery says how a VirtualDeployment's pods are found.
type ServiceDiscovery struct {
	// Type is DNS or DISABLED.
	// +required
	Type ServiceDiscoveryType `json:"type"`

	// Hostname is the DNS name of the pods (type DNS).
	// +optional
	Hostname string `json:"hostname,omitempty"`
}

// VirtualDeploymentList is a list of VirtualDeployments.
//
// +kubebuilder:object:root=true
type VirtualDeploymentList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []VirtualDeployment `json:"items"`
}

// VirtualDeploymentBinding binds pods to a VirtualDeployment: the pods of
// a Service, optionally narrowed by labels. In meshward the bound pods'
// ServiceAccounts are the VirtualDeployment's identities.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualDeploymentBinding struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualDeploymentBindingSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// VirtualDeploymentBindingSpec describes a VirtualDeploymentBinding.
type VirtualDeploymentBindingSpec struct {
	// VirtualDeployment is the VirtualDeployment the pods serve.
	// +required
	VirtualDeployment RefOrID `json:"virtualDeployment"`

	// Target selects the pods.
	// +required
	Target BindingTarget `json:"target"`

	// Resources are the sidecar's resource requirements; not used.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// MountCertificateChainFromHost mounts the host's /etc/pki into the
	// sidecar; not used.
	// +optional
	MountCertificateChainFromHost *bool `json:"mountCertificateChainFromHost,omitempty"`
}

// BindingTarget selects the pods of a VirtualDeploymentBinding.
type BindingTarget struct {
	// Service selects the pods of a Service.
	// +required
	Service BindingService `json:"service"`
}

// BindingService selects the pods of a Service, optionally narrowed by
// labels.
type BindingService struct {
	// Ref names the Service; an empty namespace means the binding's.
	// +required
	Ref ResourceRef `json:"ref"`

	// MatchLabels narrows the Service's pods to those with these labels.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// VirtualDeploymentBindingList is a list of VirtualDeploymentBindings.
//
// +kubebuilder:object:root=true
type VirtualDeploymentBindingList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []VirtualDeploymentBinding `json:"items"`
}
