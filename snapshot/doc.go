// Package snapshot defines the set of typed Kubernetes objects that
// meshward's translators read, and decodes them from JSON or YAML the same
// way for every source (a cluster or a directory of manifests).
package snapshot
