// Package v1beta1 holds the Go types of the servicemesh.oci.oracle.com/v1beta1
// kinds (Mesh, VirtualService, VirtualDeployment, VirtualDeploymentBinding,
// VirtualServiceRouteTable, IngressGateway, IngressGatewayDeployment,
// IngressGatewayRouteTable and AccessPolicy), field-compatible with the
// manifests written for OCI Service Mesh, so that they apply to meshward
// unchanged. compartmentId and the OCIDs those manifests carry are accepted
// and optional; meshward does not use them for enforcement.
//
// The schema validates what can be checked on one object: enumerations,
// ranges, and CEL rules for fields of which exactly one must be set (a
// RefOrID sets exactly one of ref and id; an AccessPolicy rule names exactly
// one source and one destination). The CRDs in charts/meshward/crds and
// zz_generated.deepcopy.go are generated from these types by controller-gen
// (make generate).
//
// +kubebuilder:object:generate=true
// +groupName=servicemesh.oci.oracle.com
package v1beta1
