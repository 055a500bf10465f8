// Package extauthz serves meshward's decisions as an Envoy external
// authorization service (envoy.service.auth.v3.Authorization) over gRPC.
//
// It follows opa-envoy-plugin's contract, so policies written for it run
// unchanged: the same input document, the same result shapes, the same
// default decision path (envoy/authz/allow). The caller's identity comes only
// from attributes.source.principal, which Envoy takes from the verified peer
// certificate; request headers never name identities.
package extauthz
