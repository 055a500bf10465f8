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
		len(s.TrafficSplits) + len(s.IngressBackends)
}
