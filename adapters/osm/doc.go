// Package osm translates Open Service Mesh IngressBackends
// (policy.openservicemesh.io/v1alpha1) into the ingress part of meshward's
// mesh model. An IngressBackend admits traffic from an ingress controller
// (ingress-nginx, for example) to target ports of backend Services.
//
// Translate is a pure function that runs after the SMI translator on the
// same snapshot: it reads the model's member namespaces and services, adds
// mesh.Model.Ingress and appends its findings. It never modifies the
// snapshot, and equal snapshots give equal models whatever the order of
// their objects. When a snapshot holds two IngressBackends with the same
// namespace and name, the first is used. ValidateIngressBackend runs the
// checks that need only the object, so an admission webhook can reuse them.
//
// # Mesh membership
//
// IngressBackends in namespaces that are not members of the mesh (label
// meshward.io/mesh equal to Options.MeshName) are ignored and reported
// (Warning, NotInMesh).
//
// # Backends
//
// A backend names a Service in the IngressBackend's namespace and a port
// number, which (as in OSM) is the Service's target port: the port its pods
// listen on, not the Service port. The protocol is http or https (any case).
// A backend naming no Service of the mesh is dropped; one whose Service has
// no TCP port with that target port is kept and reported (Warning,
// UnknownTargetPort), naming the Service port when that is what was written.
// A named target port is checked against the endpoints' ports, and not at
// all when no endpoint lists it. A backend repeating the Service and port of
// an earlier one is dropped. tls applies to https backends only; on an http
// backend it is ignored and reported.
//
// # Sources
//
// A Service source admits the addresses of the Service's endpoints, ready or
// not; an empty namespace means the IngressBackend's. Services of non-member
// namespaces are resolved too, from the snapshot's Services and
// EndpointSlices, since ingress controllers usually run outside the mesh. A
// source naming no Service is dropped; a Service without endpoints is kept
// and admits no address until it has some. An IPRange source admits a CIDR
// block (IPv4 or IPv6, checked with net/netip and stored in canonical form;
// one with host bits set is narrowed to its prefix and reported). An
// AuthenticatedPrincipal source admits a client certificate principal,
// compared verbatim.
//
// # What is admitted
//
// A connection to a backend is admitted when its client address matches an
// address source (Service or IPRange) and, on an https backend that validates
// client certificates, the certificate's principal matches an
// AuthenticatedPrincipal source. A condition whose kind of source the
// IngressBackend does not list at all is not checked, so the sources of the
// two kinds are ANDed, as in OSM, and those of one kind are ORed.
//
// Unlike OSM, a mistake never widens access:
//
//   - A principal cannot be verified on an http backend or on an https
//     backend with skipClientCertValidation. When no backend checks
//     principals, the AuthenticatedPrincipal sources are dropped and
//     reported; otherwise the backends that do not check them are reported
//     (Warning) and admit by address only.
//   - A backend that does not check principals needs an address source: an
//     IngressBackend listing none admits nothing on it (OSM would admit every
//     client), and the backend is dropped and reported.
//   - When every address source (or, for backends checking principals, every
//     principal source) of an IngressBackend is unusable, what relied on it
//     admits nothing, rather than no longer checking addresses (principals).
//
// spec.matches is accepted and not enforced, as in OSM (Warning).
//
// Several IngressBackends are combined by union. When they give one backend
// Service port different protocols or TLS settings, the oldest (creation
// time, then name) wins and the others' backends are dropped and reported
// (Error, ConflictingBackend).
//
// # Findings and status
//
// Findings name the object and field, say what is wrong and what meshward
// did: an Error when something was ignored or dropped, a Warning when the
// object is used as written. Status derives the IngressBackend status OSM
// reports (committed or error) from them.
package osm
