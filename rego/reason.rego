# SMI Traffic Access explanations.
#
# Why meshward's built-in access decision allows or denies a request:
# decision is {allowed, reason, matched}, where matched names the
# TrafficTarget rules that allow the request and reason says in one
# sentence why it is allowed or denied. meshward evaluates these only when
# a decision needs more explaining than the matched rules.
package meshward.authz

decision := {
	"allowed": allow,
	"reason": reason,
	"matched": sort(matched),
}

# The caller's and callee's identities ("namespace/name"), when the mesh
# knows them.
source := input.meshward.source

destination := input.meshward.destination

reason := ingress_reason if {
	input.meshward.ingress
} else := egress_reason if {
	input.meshward.egress
} else := no_identity("source") if {
	not source
} else := no_identity("destination") if {
	not destination
} else := sprintf("%s may call %s: %s", [source, destination, concat("; ", sort(matched))]) if {
	count(matched) > 0
} else := sprintf("permissive mode allows %s to call %s: every pair of identities in the mesh is allowed", [source, destination]) if {
	permissive
} else := sprintf("no %s allows %s to call %s", [access_kinds, source, destination]) if {
	not data.meshward.access[destination][source]
} else := denied_reason

no_identity(side) := sprintf("the request has no %s principal (no mesh identity)", [side]) if {
	object.get(input, ["attributes", side, "principal"], "") == ""
} else := sprintf("%s principal %q is not in the mesh", [side, input.attributes[side].principal])

rules := data.meshward.access[destination][source]

# access_kinds names the objects that grant access in this mesh:
# TrafficTarget, AccessPolicy or both.
default access_kinds := "TrafficTarget"

access_kinds := data.meshward.options.accessKinds

# origins lists the TrafficTargets that name this caller and callee.
origins := concat(", ", {r.origin | some r in rules})

# kinds lists the kinds of rules (http, tcp, udp) that the TrafficTargets
# naming this caller and callee grant: computed once for every branch of
# the denial's reason.
kinds contains kind if {
	some r in rules
	some kind in ["http", "tcp", "udp"]
	count(r[kind]) > 0
}

protocol := input.meshward.protocol

port_text := sprintf("%v", [input.meshward.port]) if {
	input.meshward.port
} else := "(none given)"

method_text := m if {
	m := input.attributes.request.http.method
} else := "(no method)"

# denied_reason says why rules that name the caller and callee still deny
# the request, by protocol.
denied_reason := http_denied if {
	protocol == "http"
} else := tcp_denied if {
	protocol == "tcp"
} else := udp_denied if {
	protocol == "udp"
} else := sprintf("protocol %q is not http, tcp or udp", [object.get(input, ["meshward", "protocol"], "")])

http_denied := sprintf("TCP rules do not allow HTTP requests: %s allows %s to call %s over TCP only; HTTP needs an HTTPRouteGroup rule", [origins, source, destination]) if {
	not "http" in kinds
	count(kinds) > 0
} else := sprintf("no HTTPRouteGroup rule of %s allows HTTP from %s to %s", [origins, source, destination]) if {
	not "http" in kinds
} else := "the request has no normalised path (input.meshward.path)" if {
	not input.meshward.path
} else := sprintf("no HTTPRouteGroup match of %s allows %s %s", [origins, method_text, input.meshward.path])

tcp_denied := sprintf("HTTP rules do not allow TCP: %s allows %s to call %s over HTTP only; TCP needs a TCPRoute rule", [origins, source, destination]) if {
	not "tcp" in kinds
	"http" in kinds
} else := sprintf("no TCPRoute rule of %s allows %s to connect to %s", [origins, source, destination]) if {
	not "tcp" in kinds
} else := sprintf("no TCPRoute of %s allows port %s", [origins, port_text])

udp_denied := sprintf("no UDPRoute rule of %s allows %s to reach %s", [origins, source, destination]) if {
	not "udp" in kinds
} else := sprintf("no UDPRoute of %s allows port %s", [origins, port_text])
