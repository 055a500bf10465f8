// Package ocirouting holds meshward's end-to-end test of OCI-style
// VirtualServiceRouteTables (servicemesh.oci.oracle.com/v1beta1) as real
// gRPC-Go xDS clients (xds:/// targets) and xDS-enabled gRPC servers
// enforce them: manifests are loaded from a directory as `meshward serve
// --dir` loads them, meshward's xDS server (gRPC flavor, RBAC, mTLS with
// file_watcher certificates from the built-in CA) publishes the model,
// and the test checks where calls go, which fail and how, and that a
// changed model changes routing without restarting anything. The package
// has no code outside its tests.
package ocirouting
