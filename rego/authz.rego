# METADATA
# title: SMI Traffic Access
# description: |
#   meshward's built-in access decision. It reads the data document that
#   meshward writes at data.meshward (options, identities, access) and the
#   ext_authz input document with meshward's own fields under
#   input.meshward, and decides as SMI Traffic Access says: deny by
#   default, allow when any TrafficTarget for the callee lists the caller
#   and any of its rules matches the request (union, never first match).
#   In permissive mode every pair of in-mesh identities is allowed.
#
#   This module is on the path of every request: it reads documents
#   directly and defines no functions (each call costs an evaluation), so
#   that a decision stays cheap. reason.rego explains decisions.
package meshward.authz

default allow := false

allow if count(matched) > 0

allow if permissive

# In permissive mode both identities must be in the mesh: meshward sets
# input.meshward.source and .destination only for identities it knows.
permissive if {
	data.meshward.options.permissive == true
	input.meshward.source
	input.meshward.destination
}

# matched names every TrafficTarget rule that allows the request, e.g.
# "TrafficTarget ns/t: HTTPRouteGroup ns/g match m". Entries are indexed
# by destination, then source, so only the caller's rules are read.
#
# An HTTPRouteGroup match is the AND of its method (an anchored
# expression, "" for any method), its path (anchored as the mesh's path
# match option says, "" for any path) and its headers (lower-case names,
# anchored values; a missing header never matches).
matched contains m.rule if {
	input.meshward.protocol == "http"
	rules := data.meshward.access[input.meshward.destination][input.meshward.source]
	some r in rules
	some m in r.http
	regex.match(m.method, input.attributes.request.http.method)
	regex.match(m.path, input.meshward.path)
	every h in m.headers {
		regex.match(h.regex, input.attributes.request.http.headers[h.name])
	}
}

# TCPRoute and UDPRoute matches allow their ports; no ports means every
# port of the destination.
matched contains m.rule if {
	port_protocol
	rules := data.meshward.access[input.meshward.destination][input.meshward.source]
	some r in rules
	some m in r[input.meshward.protocol]
	count(m.ports) == 0
}

matched contains m.rule if {
	port_protocol
	rules := data.meshward.access[input.meshward.destination][input.meshward.source]
	some r in rules
	some m in r[input.meshward.protocol]
	input.meshward.port in m.ports
}

# port_protocol holds for the protocols whose rules match ports: two rules
# rather than a set literal, which a plan would build on every decision.
port_protocol if input.meshward.protocol == "tcp"

port_protocol if input.meshward.protocol == "udp"
