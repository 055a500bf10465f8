// Package xds holds meshward's end-to-end tests of the xDS path: SMI
// objects, from a real API server or from a directory of manifests,
// become a mesh model, the xDS server publishes it, and real gRPC-Go xDS
// clients (xds:/// targets) and xDS-enabled gRPC servers act on it over
// mutual TLS with file_watcher certificates. The package has no code
// outside its tests.
package xds
