// Package certs gives workloads their mesh identities as X.509
// certificates.
//
// An Issuer signs a certificate for a mesh.Identity (a ServiceAccount
// ns/sa) and publishes the roots every peer must trust. The built-in CA is
// one Issuer: an ECDSA P-256 root kept in a directory (standalone) or in a
// kubernetes.io/tls Secret (in a cluster), signing short-lived leaf
// certificates with exactly one SAN, the identity's principal in the
// mesh's format: the URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>, or
// the DNS SAN <sa>.<ns>.<trust-domain> when the mesh uses DNS principals
// (Envoy and gRPC read URI SANs first, so a certificate never carries
// both).
//
// Two ways bring certificates to workloads:
//
//   - WriteIdentityFiles and KeepFresh write cert.pem, key.pem and ca.pem
//     under <dir>/<ns>/<sa>/ for gRPC's file_watcher certificate provider,
//     and re-issue them at two thirds of their lifetime.
//   - SigningHandler is an HTTP endpoint where a workload trades a CSR and
//     its ServiceAccount token for a certificate. The identity comes only
//     from the token, checked with a TokenReview; nothing in the CSR but its
//     public key is used.
//
// docs/certificates.md describes the layout, the flow and the bootstrap
// configuration that goes with them.
package certs
