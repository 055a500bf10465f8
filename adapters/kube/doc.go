// Package kube is meshward's cluster source: a controller-runtime manager
// whose cache watches the objects meshward reads, rebuilds the mesh model
// (debounced, on every replica) and, on the elected leader only, reports
// findings as Kubernetes Events.
//
// SMI objects are watched as unstructured objects and decoded one by one
// with the same decoder the directory source uses, so both sources accept
// the same input, and one malformed object cannot stop the watch of its
// kind.
package kube
