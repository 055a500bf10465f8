package meshward.authz_test

import data.meshward.authz

egress_data := {"bookbuyer/bookbuyer": [
	{
		"rule": "AccessPolicy bookstore/egress: rules[0]",
		"protocol": "http",
		"hosts": ["api.books.example"],
		"wildcards": [".cdn.example"],
		"cidrs": [],
		"ports": [80],
	},
	{
		"rule": "AccessPolicy bookstore/egress: rules[1]",
		"protocol": "https",
		"hosts": ["pay.example"],
		"wildcards": [],
		"cidrs": [],
		"ports": [],
	},
	{
		"rule": "AccessPolicy bookstore/egress: rules[2]",
		"protocol": "tcp",
		"hosts": [],
		"wildcards": [],
		"cidrs": ["10.20.0.0/16"],
		"ports": [5432],
	},
]}

egress_input(protocol, port, egress) := {
	"attributes": {"request": {"http": {"method": "GET", "path": "/"}}},
	"meshward": {"protocol": protocol, "path": "/", "port": port, "source": "bookbuyer/bookbuyer", "egress": egress},
}

egress_decision(req) := d if {
	d := authz.decision with input as req
		with data.meshward.egress as egress_data
		with data.meshward.access as {}
		with data.meshward.options as {"permissive": false, "pathMatch": "prefix", "accessKinds": "AccessPolicy"}
}

test_egress_http_host_allowed if {
	d := egress_decision(egress_input("http", 80, {"host": "api.books.example"}))
	d.allowed
	d.matched == ["AccessPolicy bookstore/egress: rules[0]"]
	d.reason == "bookbuyer/bookbuyer may reach external service api.books.example: AccessPolicy bookstore/egress: rules[0]"
}

test_egress_http_wildcard_allowed if {
	egress_decision(egress_input("http", 80, {"host": "img.cdn.example"})).allowed
}

test_egress_wildcard_needs_a_subdomain if {
	not egress_decision(egress_input("http", 80, {"host": "cdn.example"})).allowed
}

test_egress_http_other_port_denied if {
	d := egress_decision(egress_input("http", 8080, {"host": "api.books.example"}))
	not d.allowed
	d.reason == "no AccessPolicy lets bookbuyer/bookbuyer reach external service api.books.example on port 8080"
}

test_egress_http_rule_needs_http if {
	not egress_decision(egress_input("tcp", 80, {"host": "api.books.example"})).allowed
}

test_egress_https_by_server_name if {
	egress_decision(egress_input("tcp", 443, {"sni": "pay.example"})).allowed
	not egress_decision(egress_input("tcp", 443, {"sni": "evil.example"})).allowed
}

test_egress_tcp_by_address if {
	egress_decision(egress_input("tcp", 5432, {"address": "10.20.3.4"})).allowed
	not egress_decision(egress_input("tcp", 5432, {"address": "10.21.3.4"})).allowed
	not egress_decision(egress_input("tcp", 5433, {"address": "10.20.3.4"})).allowed
}

test_egress_unlisted_source_denied if {
	req := json.patch(egress_input("http", 80, {"host": "api.books.example"}), [{"op": "replace", "path": "/meshward/source", "value": "bookthief/bookthief"}])
	d := egress_decision(req)
	not d.allowed
	d.reason == "no AccessPolicy lets bookthief/bookthief reach external services"
}

test_egress_not_allowed_by_permissive_mode if {
	not authz.allow with input as egress_input("http", 80, {"host": "other.example"})
		with data.meshward.egress as egress_data
		with data.meshward.access as {}
		with data.meshward.options as {"permissive": true}
}
