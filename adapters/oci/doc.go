// Package oci translates the OCI-style servicemesh.oci.oracle.com/v1beta1
// objects (the kinds of OCI Service Mesh, whose manifests meshward accepts
// unchanged) into meshward's mesh model, so that they are enforced exactly
// like SMI objects describing the same application.
//
// Translate is a pure function that runs after the SMI and OSM translators
// on the same snapshot: it reads the model's member namespaces, services
// and splits, adds access rules, splits, mesh.Model.VirtualServices,
// Gateways and Egress, and appends its findings, keeping them sorted as
// mesh.SortFindings does. It never modifies the snapshot, and equal
// snapshots give equal models whatever the order of their objects. When a
// snapshot holds two objects of one kind with the same namespace and name,
// the first is used. Conditions derives the status conditions of an object
// from the findings.
//
// # Mesh membership
//
// As with SMI objects, OCI-style objects are read only in namespaces that
// are members of the mesh (label meshward.io/mesh equal to
// Options.MeshName); others are ignored and reported (Warning, NotInMesh).
// The pods they bind must be in member namespaces as well. The OCI Mesh an
// object names is a grouping inside meshward's mesh: AccessPolicies apply
// to the VirtualServices and IngressGateways of their own Mesh.
//
// # References
//
// A RefOrID names an object by ref (name, and a namespace defaulting to the
// referring object's) or by OCID; exactly one must be set. meshward
// resolves refs only: an OCID alone cannot be resolved and is reported. An
// object whose own reference (spec.mesh, spec.virtualService,
// spec.virtualDeployment, spec.ingressGateway) does not resolve is ignored
// (Error, UnknownReference); a reference inside a rule or destination that
// does not resolve drops that rule or destination. compartmentId, tags and
// certificate settings are accepted and not used.
//
// # Identities
//
// A VirtualDeploymentBinding binds to its VirtualDeployment the pods of its
// target Service (those its selector selects, or those behind its
// endpoints when it has none) that carry every label of matchLabels. The
// VirtualDeployment's identities are the ServiceAccounts of its bound pods:
// the same principals the SMI form of the application uses, so that the
// policy engine and the Envoy translator need no OCI-specific rule. A
// VirtualService's identities are those of its VirtualDeployments. A
// VirtualDeployment without bound pods has no identity (Warning); one
// ServiceAccount bound to VirtualDeployments of two VirtualServices is
// reported (Warning, SharedIdentity), since access allowed to either then
// applies to both. An IngressGateway's identities are the ServiceAccounts
// of the pods of its IngressGatewayDeployments, found by the label
// meshward.io/ingress-gateway-deployment=<name> in the deployment's
// namespace.
//
// # Access
//
// AccessPolicy rules are ALLOW only, and combined by union: without a rule,
// traffic is denied. A rule allows all traffic from its source to its
// destination, so it becomes, for each destination identity, one
// mesh.AccessRule with the source identities, an HTTP match without
// constraints and a TCP match without ports. Its origin is the
// AccessPolicy; the matches are named after the rule ("rules[0]").
// allVirtualServices stands for every identity of every VirtualDeployment
// of the policy's Mesh; virtualService for the identities of that
// VirtualService's deployments; ingressGateway for the gateway's
// identities. A rule whose source or destination has no identity yet
// allows nothing (Warning). An externalService destination becomes a
// mesh.EgressRule (hosts for http and https, CIDR blocks for tcp; no ports
// means every port), which the policy engine enforces for egress requests.
//
// # Routing
//
// A VirtualService's root Service is the Kubernetes Service that the first
// of its hosts names (<name>, <name>.<namespace> or
// <name>.<namespace>.svc.<domain>). Its route tables apply by priority
// (lower first; a table without priority after those with one; then by
// name), their rules in order, the first match winning. A rule's path is a
// prefix: it becomes an HTTPMatch whose PathRegex is the quoted prefix
// followed by ".*", so that prefix and full path matching agree; isGrpc
// adds a gRPC content-type match. A destination's weight is 0 to 100; its
// traffic goes to the Services of the VirtualDeployment's bindings.
// requestTimeoutInMs defaults to 15 s (none for gRPC); 0 means none.
//
// The complete routing is in mesh.Model.VirtualServices, which the xDS
// translator applies: first match wins, weights, timeouts, and no
// catch-all route under a DENY default routing policy. When every rule
// sends its traffic to the same weighted Services, the routing is also a
// mesh.Split of the root Service (without matches when a rule matches
// everything). A TrafficSplit of the same root Service, or an earlier
// VirtualService with the same root Service, takes precedence (Error,
// ConflictingSplit). Proxies route to whole Services: a binding narrowed by
// matchLabels is reported (Warning, LabelsNotRouted).
//
// # Mutual TLS
//
// A Mesh's mtls.minimum is the floor of its VirtualServices' mtls.mode
// (DISABLED < PERMISSIVE < STRICT): a VirtualService below it is reported
// (Warning, MTLSBelowMinimum) and the minimum applies.
//
// # Findings and status
//
// Findings name the object and field, say what is wrong and what meshward
// did: an Error when something was ignored, a Warning when the object is
// used as written.
package oci
