package snapshot

import (
	"fmt"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// Snapshot is one consistent view of every object meshward reads.
// Sources fill it; translators read it and never modify it.
type Snapshot struct {
	Namespaces      []corev1.Namespace
	ServiceAccounts []corev1.ServiceAccount
	Services        []corev1.Service
	EndpointSlices  []discoveryv1.EndpointSlice
	Pods            []corev1.Pod

	TrafficTargets  []accessv1alpha3.TrafficTarget
	HTTPRouteGroups []specsv1alpha4.HTTPRouteGroup
	TCPRoutes       []specsv1alpha4.TCPRoute
	UDPRoutes       []specsv1alpha4.UDPRoute
	TrafficSplits   []splitv1alpha4.TrafficSplit

	IngressBackends []policyv1alpha1.IngressBackend

	// OCI-style objects (servicemesh.oci.oracle.com/v1beta1).
	Meshes                    []servicemeshv1beta1.Mesh
	VirtualServices           []servicemeshv1beta1.VirtualService
	VirtualDeployments        []servicemeshv1beta1.VirtualDeployment
	VirtualDeploymentBindings []servicemeshv1beta1.VirtualDeploymentBinding
	VirtualServiceRouteTables []servicemeshv1beta1.VirtualServiceRouteTable
	IngressGateways           []servicemeshv1beta1.IngressGateway
	IngressGatewayDeployments []servicemeshv1beta1.IngressGatewayDeployment
	IngressGatewayRouteTables []servicemeshv1beta1.IngressGatewayRouteTable
	AccessPolicies            []servicemeshv1beta1.AccessPolicy

	// Findings are problems found while decoding objects (for example a
	// header list item with two keys); translators copy them to the model.
	Findings []mesh.Finding
}

// Add appends a decoded object to the snapshot. It returns an error for a
// type the snapshot does not hold.
func (s *Snapshot) Add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		s.Namespaces = append(s.Namespaces, *o)
	case *corev1.ServiceAccount:
		s.ServiceAccounts = append(s.ServiceAccounts, *o)
	case *corev1.Service:
		s.Services = append(s.Services, *o)
	case *discoveryv1.EndpointSlice:
		s.EndpointSlices = append(s.EndpointSlices, *o)
	case *corev1.Pod:
		s.Pods = append(s.Pods, *o)
	case *accessv1alpha3.TrafficTarget:
		s.TrafficTargets = append(s.TrafficTargets, *o)
	case *specsv1alpha4.HTTPRouteGroup:
		s.HTTPRouteGroups = append(s.HTTPRouteGroups, *o)
	case *specsv1alpha4.TCPRoute:
		s.TCPRoutes = append(s.TCPRoutes, *o)
	case *specsv1alpha4.UDPRoute:
		s.UDPRoutes = append(s.UDPRoutes, *o)
	case *splitv1alpha4.TrafficSplit:
		s.TrafficSplits = append(s.TrafficSplits, *o)
	case *policyv1alpha1.IngressBackend:
		s.IngressBackends = append(s.IngressBackends, *o)
	case *servicemeshv1beta1.Mesh:
		s.Meshes = append(s.Meshes, *o)
	case *servicemeshv1beta1.VirtualService:
		s.VirtualServices = append(s.VirtualServices, *o)
	case *servicemeshv1beta1.VirtualDeployment:
		s.VirtualDeployments = append(s.VirtualDeployments, *o)
	case *servicemeshv1beta1.VirtualDeploymentBinding:
		s.VirtualDeploymentBindings = append(s.VirtualDeploymentBindings, *o)
	case *servicemeshv1beta1.VirtualServiceRouteTable:
		s.VirtualServiceRouteTables = append(s.VirtualServiceRouteTables, *o)
	case *servicemeshv1beta1.IngressGateway:
		s.IngressGateways = append(s.IngressGateways, *o)
	case *servicemeshv1beta1.IngressGatewayDeployment:
		s.IngressGatewayDeployments = append(s.IngressGatewayDeployments, *o)
	case *servicemeshv1beta1.IngressGatewayRouteTable:
		s.IngressGatewayRouteTables = append(s.IngressGatewayRouteTables, *o)
	case *servicemeshv1beta1.AccessPolicy:
		s.AccessPolicies = append(s.AccessPolicies, *o)
	default:
		return fmt.Errorf("snapshot holds no objects of type %T", obj)
	}
	return nil
}

// Len returns the number of objects in the snapshot.
func (s *Snapshot) Len() int {
	return len(s.Namespaces) + len(s.ServiceAccounts) + len(s.Services) +
		len(s.EndpointSlices) + len(s.Pods) + len(s.TrafficTargets) +
		len(s.HTTPRouteGroups) + len(s.TCPRoutes) + len(s.UDPRoutes) +
		len(s.TrafficSplits) + len(s.IngressBackends) +
		len(s.Meshes) + len(s.VirtualServices) + len(s.VirtualDeployments) +
		len(s.VirtualDeploymentBindings) + len(s.VirtualServiceRouteTables) +
		len(s.IngressGateways) + len(s.IngressGatewayDeployments) +
		len(s.IngressGatewayRouteTables) + len(s.AccessPolicies)
}

// PodIdentity is the mesh identity of a pod: the ServiceAccount it runs as
// (spec.serviceAccountName, else the deprecated spec.serviceAccount, else
// "default").
func PodIdentity(p *corev1.Pod) mesh.Identity {
	name := p.Spec.ServiceAccountName
	if name == "" {
		name = p.Spec.DeprecatedServiceAccount
	}
	if name == "" {
		name = "default"
	}
	return mesh.Identity{Namespace: p.Namespace, Name: name}
}
