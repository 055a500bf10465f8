// Package mesh holds meshward's mesh model: the intermediate representation
// that every translator produces and every output (policy data, xDS, the CLI)
// reads. It is plain data with stable ordering and no I/O; it imports no
// Kubernetes client libraries.
package mesh
