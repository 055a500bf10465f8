// Package dataplane holds the helpers that meshward's end-to-end tests of
// the xDS data plane share (e2e/xds, e2e/parity, e2e/ocirouting): the xDS
// server behind mTLS with a serving certificate of its own, the mesh
// certificates of the workloads, pods as xDS-enabled gRPC servers that
// answer with their names, and proxyless gRPC clients. It is used by the
// end-to-end tests only.
package dataplane
