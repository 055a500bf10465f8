package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessPolicy allows traffic between VirtualServices, from IngressGateways,
// and to services outside the mesh. Only allow rules exist: without a rule
// allowing it, traffic is denied.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AccessPolicySpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// AccessPolicySpec describes an AccessPolicy.
type AccessPolicySpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Mesh is the Mesh the policy belongs to.
	// +required
	Mesh RefOrID `json:"mesh"`

	// Description describes the policy.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// Rules are the allow rules; they are combined by union.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +required
	Rules []AccessPolicyRule `json:"rules"`
}

// Action is what an AccessPolicy rule does.
//
// +kubebuilder:validation:Enum=ALLOW
type Action string

// ActionAllow allows the traffic.
const ActionAllow Action = "ALLOW"

// AccessPolicyRule allows all traffic from Source to Destination.
type AccessPolicyRule struct {
	// Action is ALLOW.
	// +required
	Action Action `json:"action"`

	// Source is who sends the traffic.
	// +required
	Source TrafficSource `json:"source"`

	// Destination is who receives it.
	// +required
	Destination TrafficDestination `json:"destination"`
}

// AllVirtualServices stands for every VirtualService of the Mesh. It has no
// fields.
type AllVirtualServices struct{}

// TrafficSource is the source of an AccessPolicy rule: exactly one of
// AllVirtualServices, VirtualService and IngressGateway.
//
// +kubebuilder:validation:XValidation:rule="(has(self.allVirtualServices) ? 1 : 0) + (has(self.virtualService) ? 1 : 0) + (has(self.ingressGateway) ? 1 : 0) == 1",message="a source sets exactly one of allVirtualServices, virtualService and ingressGateway"
type TrafficSource struct {
	// AllVirtualServices: every VirtualService of the Mesh.
	// +optional
	AllVirtualServices *AllVirtualServices `json:"allVirtualServices,omitempty"`

	// VirtualService: the pods of every VirtualDeployment of this
	// VirtualService.
	// +optional
	VirtualService *RefOrID `json:"virtualService,omitempty"`

	// IngressGateway: the pods of this gateway.
	// +optional
	IngressGateway *RefOrID `json:"ingressGateway,omitempty"`
}

// TrafficDestination is the destination of an AccessPolicy rule: exactly
// one of AllVirtualServices, VirtualService and ExternalService.
//
// +kubebuilder:validation:XValidation:rule="(has(self.allVirtualServices) ? 1 : 0) + (has(self.virtualService) ? 1 : 0) + (has(self.externalService) ? 1 : 0) == 1",message="a destination sets exactly one of allVirtualServices, virtualService and externalService"
type TrafficDestination struct {
	// AllVirtualServices: every VirtualService of the Mesh.
	// +optional
	AllVirtualServices *AllVirtualServices `json:"allVirtualServices,omitempty"`

	// VirtualService: the pods of every VirtualDeployment of this
	// VirtualService.
	// +optional
	VirtualService *RefOrID `json:"virtualService,omitempty"`

	// ExternalService: a service outside the mesh.
	// +optional
	ExternalService *ExternalService `json:"externalService,omitempty"`
}

// ExternalService is a service outside the mesh: exactly one of
// TCPExternalService, HTTPExternalService and HTTPSExternalService.
//
// +kubebuilder:validation:XValidation:rule="(has(self.tcpExternalService) ? 1 : 0) + (has(self.httpExternalService) ? 1 : 0) + (has(self.httpsExternalService) ? 1 : 0) == 1",message="an external service sets exactly one of tcpExternalService, httpExternalService and httpsExternalService"
type ExternalService struct {
	// TCPExternalService is reached by IP address.
	// +optional
	TCPExternalService *TCPExternalService `json:"tcpExternalService,omitempty"`

	// HTTPExternalService is reached over HTTP, by Host header.
	// +optional
	HTTPExternalService *HostExternalService `json:"httpExternalService,omitempty"`

	// HTTPSExternalService is reached over TLS, by server name (SNI).
	// +optional
	HTTPSExternalService *HostExternalService `json:"httpsExternalService,omitempty"`
}

// TCPExternalService is an external service reached by IP address.
type TCPExternalService struct {
	// IPAddresses are CIDR blocks, e.g. 192.0.2.0/24.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +required
	IPAddresses []string `json:"ipAddresses"`

	// Ports are the allowed ports; empty means every port.
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +optional
	Ports []int32 `json:"ports,omitempty"`
}

// HostExternalService is an external service reached by host name.
type HostExternalService struct {
	// Hostnames are the host names; a leading "*." is a wildcard.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +required
	Hostnames []string `json:"hostnames"`

	// Ports are the allowed ports; empty means every port.
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +optional
	Ports []int32 `json:"ports,omitempty"`
}

// AccessPolicyList is a list of AccessPolicies.
//
// +kubebuilder:object:root=true
type AccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []AccessPolicy `json:"items"`
}
