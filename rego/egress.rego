# Egress: requests that leave the mesh.
#
# Egress requests carry input.meshward.egress = {host, sni, address}
# (each only when known) and the caller in input.meshward.source. An
# egress rule (an AccessPolicy rule whose destination is an
# externalService) lets its sources reach an external service: http rules
# by the Host of an HTTP request, https rules by the TLS server name, tcp
# rules by the destination address; only on the rule's ports, or on any
# port when it lists none. Egress rules add up, and nothing else allows
# egress: without a rule, egress is denied, in permissive mode too.
package meshward.authz

matched contains e.rule if {
	eg := input.meshward.egress
	some e in data.meshward.egress[input.meshward.source]
	egress_target_ok(e, eg)
	egress_port_ok(e)
}

egress_target_ok(e, eg) if {
	e.protocol == "http"
	input.meshward.protocol == "http"
	egress_name_ok(e, eg.host)
}

egress_target_ok(e, eg) if {
	e.protocol == "https"
	egress_name_ok(e, eg.sni)
}

egress_target_ok(e, eg) if {
	e.protocol == "tcp"
	some c in e.cidrs
	net.cidr_contains(c, eg.address)
}

egress_name_ok(e, name) if name in e.hosts

egress_name_ok(e, name) if {
	some w in e.wildcards
	endswith(name, w)
}

egress_port_ok(e) if count(e.ports) == 0

egress_port_ok(e) if input.meshward.port in e.ports

# egress_target names what the request tries to reach, for explanations.
egress_target := t if {
	input.meshward.protocol == "http"
	t := input.meshward.egress.host
} else := t if {
	t := input.meshward.egress.sni
} else := t if {
	t := input.meshward.egress.address
} else := "(no host, server name or address)"

egress_reason := sprintf("%s may reach external service %s: %s", [source, egress_target, concat("; ", sort(matched))]) if {
	source
	count(matched) > 0
} else := no_identity("source") if {
	not source
} else := sprintf("no AccessPolicy lets %s reach external services", [source]) if {
	not data.meshward.egress[source]
} else := sprintf("no AccessPolicy lets %s reach external service %s on port %s", [source, egress_target, port_text])
