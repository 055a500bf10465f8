package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelIngressGatewayDeployment is set on the pods of an
// IngressGatewayDeployment, with the IngressGatewayDeployment's name as its
// value. The ServiceAccounts of the labelled pods are the gateway's
// identities in the mesh.
const LabelIngressGatewayDeployment = "meshward.io/ingress-gateway-deployment"

// IngressGateway receives traffic from outside the mesh on its hosts and
// passes it to VirtualServices, as IngressGatewayRouteTables say.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IngressGateway struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IngressGatewaySpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// IngressGatewaySpec describes an IngressGateway.
type IngressGatewaySpec struct {
	Tags `json:",inline"`

	// Name is the name in OCI; not used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`

	// CompartmentID is the OCI compartment; not used.
	// +optional
	CompartmentID string `json:"compartmentId,omitempty"`

	// Mesh is the Mesh the gateway belongs to.
	// +required
	Mesh RefOrID `json:"mesh"`

	// Description describes the gateway.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	Description string `json:"description,omitempty"`

	// AccessLogging turns access logs on or off.
	// +optional
	AccessLogging *AccessLogging `json:"accessLogging,omitempty"`

	// Hosts are the hosts the gateway serves.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=5
	// +required
	Hosts []IngressGatewayHost `json:"hosts"`
}

// IngressGatewayHost is a named set of host names and the listeners that
// serve them.
type IngressGatewayHost struct {
	// Name names the host in route tables; unique in the gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +required
	Name string `json:"name"`

	// Hostnames are the host names (HTTP and TLS_PASSTHROUGH listeners); a
	// leading "*." is a wildcard.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	Hostnames []string `json:"hostnames,omitempty"`

	// Listeners are the ports serving the host.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +required
	Listeners []IngressGatewayListener `json:"listeners"`
}

// GatewayProtocol is the protocol of an IngressGateway listener.
//
// +kubebuilder:validation:Enum=HTTP;TCP;TLS_PASSTHROUGH
type GatewayProtocol string

// Gateway listener protocols.
const (
	GatewayHTTP           GatewayProtocol = "HTTP"
	GatewayTCP            GatewayProtocol = "TCP"
	GatewayTLSPassthrough GatewayProtocol = "TLS_PASSTHROUGH"
)

// IngressGatewayListener is a port of an IngressGateway host.
type IngressGatewayListener struct {
	// Protocol is HTTP, TCP or TLS_PASSTHROUGH.
	// +required
	Protocol GatewayProtocol `json:"protocol"`

	// Port is the port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`

	// TLS configures TLS on the listener.
	// +optional
	TLS *ListenerTLS `json:"tls,omitempty"`
}

// ListenerTLSMode is the TLS mode of a gateway listener.
//
// +kubebuilder:validation:Enum=DISABLED;PERMISSIVE;TLS;MUTUAL_TLS
type ListenerTLSMode string

// Gateway listener TLS modes.
const (
	ListenerTLSDisabled   ListenerTLSMode = "DISABLED"
	ListenerTLSPermissive ListenerTLSMode = "PERMISSIVE"
	ListenerTLSOnly       ListenerTLSMode = "TLS"
	ListenerMutualTLS     ListenerTLSMode = "MUTUAL_TLS"
)

// ListenerTLS configures TLS on a gateway listener.
type ListenerTLS struct {
	// Mode is DISABLED, PERMISSIVE, TLS or MUTUAL_TLS.
	// +required
	Mode ListenerTLSMode `json:"mode"`

	// ServerCertificate is the certificate the gateway presents.
	// +optional
	ServerCertificate *TLSCertificate `json:"serverCertificate,omitempty"`

	// ClientValidation says how client certificates are checked.
	// +optional
	ClientValidation *ClientValidation `json:"clientValidation,omitempty"`
}

// ClientValidation says how a gateway listener checks client certificates.
type ClientValidation struct {
	// TrustedCABundle holds the CAs client certificates must chain to.
	// +optional
	TrustedCABundle *CABundle `json:"trustedCaBundle,omitempty"`

	// SubjectAlternateNames are the names a client certificate may carry.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	SubjectAlternateNames []string `json:"subjectAlternateNames,omitempty"`
}

// IngressGatewayList is a list of IngressGateways.
//
// +kubebuilder:object:root=true
type IngressGatewayList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IngressGateway `json:"items"`
}

// IngressGatewayDeployment runs the pods of an IngressGateway: a
// Deployment scaled between two bounds, and a Service in front of it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=meshward"
// +kubebuilder:resource:scope=Namespaced,categories=servicemesh
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshActive")].status`,description="Whether meshward enforces the object."
// +kubebuilder:printcolumn:name="Configured",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshConfigured")].status`,description="Whether the object is configured without errors."
// +kubebuilder:printcolumn:name="DependenciesActive",type=string,JSONPath=`.status.conditions[?(@.type=="ServiceMeshDependenciesActive")].status`,priority=1,description="Whether the objects it refers to exist."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IngressGatewayDeployment struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IngressGatewayDeploymentSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitempty"`
}

// IngressGatewayDeploymentSpec describes an IngressGatewayDeployment.
type IngressGatewayDeploymentSpec struct {
	// IngressGateway is the gateway the pods serve.
	// +required
	IngressGateway RefOrID `json:"ingressGateway"`

	// Deployment configures the pods.
	// +required
	Deployment GatewayDeployment `json:"deployment"`

	// Ports are the ports the pods listen on.
	// +kubebuilder:validation:MinItems=1
	// +required
	Ports []GatewayPort `json:"ports"`

	// Service configures the Service in front of the pods.
	// +optional
	Service *GatewayService `json:"service,omitempty"`

	// Secrets are Secrets in the same namespace holding certificates the
	// gateway uses.
	// +optional
	Secrets []SecretName `json:"secrets,omitempty"`
}

// GatewayDeployment configures the pods of an IngressGatewayDeployment.
type GatewayDeployment struct {
	// Autoscaling bounds the number of pods.
	// +required
	Autoscaling Autoscaling `json:"autoscaling"`

	// Labels are added to the pods.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// MountCertificateChainFromHost mounts the host's /etc/pki; not used.
	// +optional
	MountCertificateChainFromHost *bool `json:"mountCertificateChainFromHost,omitempty"`
}

// Autoscaling bounds the number of gateway pods.
//
// +kubebuilder:validation:XValidation:rule="self.minPods <= self.maxPods",message="minPods must not exceed maxPods"
type Autoscaling struct {
	// MinPods is the least number of pods.
	// +kubebuilder:validation:Minimum=1
	// +required
	MinPods int32 `json:"minPods"`

	// MaxPods is the greatest number of pods.
	// +kubebuilder:validation:Minimum=1
	// +required
	MaxPods int32 `json:"maxPods"`

	// Resources are each pod's resource requirements.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// GatewayPort is a port of the gateway pods, exposed by the Service.
type GatewayPort struct {
	// Protocol is the transport protocol: TCP, UDP or SCTP.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	// +required
	Protocol corev1.Protocol `json:"protocol"`

	// Port is the pods' port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`

	// ServicePort is the Service's port; omitted means Port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	ServicePort *int32 `json:"serviceport,omitempty"`

	// Name names the port.
	// +optional
	Name string `json:"name,omitempty"`
}

// GatewayService configures the Service in front of the gateway pods.
type GatewayService struct {
	// Type is LoadBalancer, NodePort or ClusterIP.
	// +kubebuilder:validation:Enum=LoadBalancer;NodePort;ClusterIP
	// +required
	Type corev1.ServiceType `json:"type"`

	// Labels are added to the Service.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations are added to the Service.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// IngressGatewayDeploymentList is a list of IngressGatewayDeployments.
//
// +kubebuilder:object:root=true
type IngressGatewayDeploymentList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IngressGatewayDeployment `json:"items"`
}
