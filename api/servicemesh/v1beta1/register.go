package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of the types in this package.
const GroupName = "servicemesh.oci.oracle.com"

// SchemeGroupVersion is the group and version of the types in this package.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1beta1"}

var (
	// SchemeBuilder registers the types of this package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the group-qualified resource of this version.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&Mesh{}, &MeshList{},
		&VirtualService{}, &VirtualServiceList{},
		&VirtualDeployment{}, &VirtualDeploymentList{},
		&VirtualDeploymentBinding{}, &VirtualDeploymentBindingList{},
		&VirtualServiceRouteTable{}, &VirtualServiceRouteTableList{},
		&IngressGateway{}, &IngressGatewayList{},
		&IngressGatewayDeployment{}, &IngressGatewayDeploymentList{},
		&IngressGatewayRouteTable{}, &IngressGatewayRouteTableList{},
		&AccessPolicy{}, &AccessPolicyList{},
	)
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
