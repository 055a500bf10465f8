// Package v1alpha1 holds the Go types of the policy.openservicemesh.io/v1alpha1
// IngressBackend, wire-compatible with Open Service Mesh's resource of that
// name, so that existing manifests apply unchanged. The CRD in
// charts/meshward/crds and zz_generated.deepcopy.go are generated from these
// types by controller-gen (make generate).
//
// +kubebuilder:object:generate=true
// +groupName=policy.openservicemesh.io
package v1alpha1
