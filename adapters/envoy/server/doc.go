// Package server is meshward's xDS server: the aggregated discovery
// service (ADS) over gRPC, state of the world and delta on one server,
// serving the resources of adapters/envoy/translate to Envoy sidecars and
// proxyless gRPC applications.
//
// # Identities
//
// Every node names its identity (a ServiceAccount) as package bootstrap
// describes: node metadata "meshward.io/identity": "ns/sa", or a node id
// <anything>~<ns>~<sa>. Every node of an identity gets the same
// listeners, routes and clusters: the outbound side, the same for every
// identity, translated once per model, and the identity's inbound side. A node
// naming no identity or an invalid one gets nothing; a node of an identity
// that is not in the model gets nothing until the identity appears. Both
// are logged and counted.
//
// # Caches
//
// Each identity has one cache per type (listeners, routes, clusters) and
// every identity shares one cache of endpoints, so that endpoint churn
// does not touch the others. A cache answers any subset of its resources
// (an xDS-enabled gRPC server asks only for its own listener), in both
// protocols, and only when something the request subscribes to changed:
// a resource whose bytes did not change is never pushed again, and a
// rejected (NACKed) version is not resent: the node keeps its last
// accepted configuration until the next change. Resources with equal
// bytes are serialized once and shared by every identity and response.
//
// # Updates
//
// Update translates a whole model (the shared outbound side once, the
// inbound side per identity), validates every resource with its
// ValidateAll, checks that each identity's resources refer only to what
// exists, and publishes the changes, clusters before routes before
// listeners. An identity (or the endpoints) failing any step keeps its
// last good resources. An identity that holds the previous shared
// resources gets only what changed in them.
//
// # Sending
//
// A state-of-the-world answer carrying every resource of a cache (or the
// same changes) to several nodes is encoded once and shared by them, and
// by the caches of other identities with the same resources; with the
// codec of GRPCServerOptions it is written without being copied again.
// docs/xds.md describes the server for operators.
package server
