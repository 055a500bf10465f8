// Package bootstrap writes the configuration an xDS client starts from: the
// gRPC-Go xDS bootstrap JSON for proxyless gRPC applications, and the Envoy
// bootstrap for sidecars. Both point the client at meshward's xDS server
// over ADS and name the workload's identity, which the server uses to pick
// the configuration it serves.
//
// It also owns that identity scheme, the contract between bootstraps and
// the server: a node names its identity (a ServiceAccount ns/sa) in its
// metadata under NodeIdentityKey, or, failing that, at the end of its node
// id as <anything>~<ns>~<sa>. NodeIdentity reads it back.
//
// The package is pure: it builds documents and does no I/O.
package bootstrap
