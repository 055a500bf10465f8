// Package translate turns meshward's mesh model into xDS resources for
// Envoy sidecars and proxyless gRPC applications.
//
// It is pure: it reads a *mesh.Model, imports only the Envoy API protos,
// protobuf and the model, does no I/O, and gives equal resources in equal
// order for equal models and options. ForIdentity returns the listeners,
// route configurations and clusters of one identity (every pod of a
// ServiceAccount shares them): Outbound, the part every identity gets the
// same (translate it once per model), merged with Inbound, the identity's
// own part. Endpoints returns the EDS assignments,
// which are the same for every identity and change with endpoint churn;
// Validate runs the generated ValidateAll on resources. docs/xds.md
// describes the resources and their names in full; this comment is the
// summary.
//
// # Outbound
//
// Every service port of the mesh that the flavor carries (TCP-protocol
// ports; for the gRPC flavor only those carrying HTTP, not raw TCP) gets a
// cluster outbound|<port>||<svc>.<ns>.svc.<clusterDomain>, of type EDS
// over ADS, round robin, with mTLS that checks the server's certificate
// against the principals of the service's identities. An HTTP port's
// routes form one virtual host named <svc>.<ns>.svc.<clusterDomain>:<port>,
// whose domains are that authority, <svc>.<ns>.svc and <svc>.<ns>, each
// with and without the port. A TrafficSplit of the service gives weighted
// routes to its backends' clusters for the same port number; with matches,
// one route per HTTPRouteGroup match, then a catch-all to the service
// itself.
//
// The gRPC flavor has, per HTTP service port, an API listener and a route
// configuration, both named <svc>.<ns>.svc.<clusterDomain>:<port>: a
// client dials xds:///<svc>.<ns>.svc.<clusterDomain>:<port>. TCP ports are
// left out.
//
// The Envoy flavor expects the pod's traffic to be redirected to it (as
// OSM and Istio sidecars do with iptables): outgoing connections to port
// EnvoyOutboundPort (listener "outbound"), incoming ones to
// EnvoyInboundPort (listener "inbound"); both listeners read the original
// destination and pick a filter chain by its port. Outbound, an HTTP port
// leads to the route configuration outbound|<port>, which holds the
// virtual hosts of every service with that port and picks one by Host; a
// port used only by TCP services is proxied to the one service using it.
//
// # Inbound
//
// The identity's pods serve where its endpoints are: every address of an
// endpoint whose identity it is, at the endpoint port of every service port
// (by name, else the numeric target port). The gRPC flavor has one listener
// per address and port, named as gRPC-Go servers ask for it
// (ServerListenerNameTemplate); the Envoy flavor has one filter chain per
// port and a static cluster inbound|<port> to 127.0.0.1:<port>.
//
// An HTTP chain requires a client certificate from the mesh and runs, as
// Options.Authz says, the RBAC filter compiled from the access rules whose
// destination is the identity (one ALLOW policy per rule, so rules combine
// by union; no rule means deny all) and the ext_authz filter, then the
// router. A TCP chain (Envoy only) runs the network RBAC filter from the
// rules' TCP matches, then a TCP proxy. Every HTTP connection manager
// normalises paths, merges slashes and rejects encoded slashes, as the
// policy engine does, so both see the same path.
package translate
