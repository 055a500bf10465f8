# OSM IngressBackend admission.
#
# Ingress requests (from the nginx auth endpoint) carry
# input.meshward.ingress = {backend: "ns/service", port: "<target port>",
# address: "<client address>", principal: "<client principal or empty>"}.
# An IngressBackend for that backend and target port admits the request
# when the address matches one of its address sources (if it lists any)
# and, on https backends that validate client certificates, the principal
# matches one of its AuthenticatedPrincipal sources. IngressBackends add
# up: any one admitting is enough.
package meshward.authz

matched contains e.rule if {
	ing := input.meshward.ingress
	some e in data.meshward.ingress[ing.backend][ing.port]
	ingress_address_ok(e, ing.address)
	ingress_principal_ok(e, object.get(ing, "principal", ""))
}

ingress_address_ok(e, _) if not e.checkAddress

ingress_address_ok(e, address) if {
	e.checkAddress
	address in e.addresses
}

ingress_address_ok(e, address) if {
	e.checkAddress
	some c in e.cidrs
	net.cidr_contains(c, address)
}

ingress_principal_ok(e, _) if not e.checkPrincipal

ingress_principal_ok(e, principal) if {
	e.checkPrincipal
	principal in e.principals
}

ingress_reason := sprintf("%s may reach %s port %s: %s", [ing.address, ing.backend, ing.port, concat("; ", sort(matched))]) if {
	ing := input.meshward.ingress
	count(matched) > 0
} else := sprintf("no IngressBackend admits ingress to %s port %s", [ing.backend, ing.port]) if {
	ing := input.meshward.ingress
	not data.meshward.ingress[ing.backend][ing.port]
} else := sprintf("no IngressBackend for %s port %s admits client %s%s", [ing.backend, ing.port, ing.address, principal_text]) if {
	ing := input.meshward.ingress
}

# principal_text mentions the client certificate only where one is checked.
principal_text := sprintf(" with principal %q", [input.meshward.ingress.principal]) if {
	input.meshward.ingress.principal != ""
} else := " (no client certificate)" if {
	ing := input.meshward.ingress
	some e in data.meshward.ingress[ing.backend][ing.port]
	e.checkPrincipal
} else := ""
