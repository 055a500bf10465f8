// Package smi translates a snapshot of Kubernetes and SMI objects (Traffic
// Access v1alpha3, Traffic Specs v1alpha4, Traffic Split v1alpha4, with
// v1alpha2 splits converted on decoding) into meshward's mesh model.
//
// Translate is a pure function: it does no I/O, never modifies the snapshot,
// and gives byte-identical models for equal snapshots whatever the order of
// their objects. Problems become findings in the model; nothing in the input
// makes Translate fail. Objects are identified by kind, namespace and name;
// when a snapshot holds two with the same identity, the first is used. The
// Validate functions run the checks that need only one object, so admission
// webhooks can reuse them.
//
// # Mesh membership
//
// A namespace is a member of the mesh when its label meshward.io/mesh equals
// Options.MeshName. Objects in other namespaces are ignored; each SMI object
// there is reported once (Warning, NotInMesh). Core objects outside the mesh
// are ignored silently.
//
// # Identities and services
//
// The identities are the ServiceAccounts of member namespaces plus every
// ServiceAccount a Pod in a member namespace runs as (spec.serviceAccountName,
// else the deprecated spec.serviceAccount, else "default").
//
// Every Service of a member namespace becomes a mesh Service: its ports sorted
// by number (protocol TCP when unset; a missing targetPort means the port
// itself, as Kubernetes defaults it), and its endpoints from the
// discovery.k8s.io/v1 EndpointSlices labelled kubernetes.io/service-name with
// its name in the same namespace. Each address is one endpoint: its ports are
// the slice's ports, it is ready unless conditions.ready is false, and a
// targetRef to a known Pod gives it that Pod's identity. An address listed by
// several slices is one endpoint with the union of their ports, ready when any
// slice says so. A Service's identities are those of its endpoints.
//
// # Traffic Access
//
// Each TrafficTarget becomes one access rule; rules are combined by union, so
// overlapping targets never shadow each other. The destination must be a
// ServiceAccount in the TrafficTarget's own namespace (an empty namespace
// means that one); a target in another namespace is ignored and reported
// (Error, WrongNamespace). Sources must be ServiceAccounts (others are
// dropped and reported); an empty namespace means the target's namespace. A
// source or destination that no object in the mesh mentions is kept and
// reported as a Warning, so a target may be created before its workloads. A
// target without sources or rules allows nothing.
//
// Rules name an HTTPRouteGroup, TCPRoute or UDPRoute in the target's
// namespace. A rule without matches covers every match of the route; a rule
// listing matches covers only those it names. A route or match name that does
// not exist matches nothing and is reported: a mistake never widens access.
// HTTP matches allow HTTP requests only and TCP/UDP matches allow ports only:
// an HTTP-only target opens no raw TCP port. A TCPRoute or UDPRoute with empty
// ports covers every port of the destination; one with a port outside
// 1-65535 is ignored.
//
// # Traffic Specs
//
// An HTTPRouteGroup match is the AND of its methods (upper-cased; omitted or
// "*" means any), its pathRegex (RE2; how it is anchored is Options.PathMatch)
// and its headers (lower-cased names, RE2 full-match values); the matches of a
// group are ORed. A match with an invalid method, regular expression or
// header name is dropped and reported once, on the group; rules naming it
// then match nothing through it. A later match reusing a name is dropped; a
// match without a name is kept, but only rules and splits using the whole
// group reach it.
//
// # Traffic Split
//
// A TrafficSplit splits the traffic of spec.service, a Service in its own
// namespace (a dotted name is read as <service>.<namespace>...; its first
// label is used). Backends that do not exist, have a weight outside
// 0..2147483647, repeat an earlier backend, or lack a port number of the root
// service are dropped.
// A split left without backends, or whose weights sum to 0, is ignored, so
// traffic goes to the root service. With matches, only requests matching the
// referenced HTTPRouteGroups (every match of each) are split; when none of
// them resolves, nothing is split. Among the valid splits of one root service
// the oldest (creation time, then name) is used and the others are reported
// as conflicting.
//
// # Findings
//
// A finding names the object and field, says what is wrong and what meshward
// did. It is an Error when something was ignored or dropped and a Warning
// when the object is used anyway. Findings from decoding (Snapshot.Findings)
// are copied into the model. All findings are sorted.
package smi
