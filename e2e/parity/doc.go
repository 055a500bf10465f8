// Package parity holds meshward's end-to-end parity tests between the two
// ways of writing the bookstore: as SMI objects (examples/bookstore) and as
// OCI Service Mesh objects (examples/bookstore-oci). Each form is loaded
// from its directory as `meshward serve --dir` loads it, and asked the same
// table of requests through the real ext_authz server over gRPC, and the
// same table of calls through real gRPC-Go xDS clients (xds:/// targets)
// and xDS-enabled gRPC servers over mutual TLS.
//
// OCI AccessPolicies allow everything between two services: they have no
// path, method or header rules. So the OCI form is compared request by
// request with the SMI form of the same policy (examples/bookstore with
// the TrafficTargets of adapters/oci/testdata/parity-smi in place of its
// smi-access.yaml), which must decide every row identically; and with the
// SMI example itself, which may only deny more, and only where its match
// rules say so. The package has no code outside its tests.
package parity
