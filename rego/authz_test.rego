package meshward.authz_test

import data.meshward.authz

# Workloads: an identity ("namespace/name") and its principal. The input
# carries identities only for workloads the mesh knows.
bookbuyer := {"id": "bookbuyer/bookbuyer", "principal": "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"}

bookthief := {"id": "bookthief/bookthief", "principal": "spiffe://cluster.local/ns/bookthief/sa/bookthief"}

bookstore := {"id": "bookstore/bookstore", "principal": "spiffe://cluster.local/ns/bookstore/sa/bookstore"}

warehouse := {"id": "bookwarehouse/bookwarehouse", "principal": "spiffe://cluster.local/ns/bookwarehouse/sa/bookwarehouse"}

stranger := {"principal": "spiffe://cluster.local/ns/x/sa/y"}

routes := "HTTPRouteGroup bookstore/bookstore-service-routes"

buyer_target := "TrafficTarget bookstore/bookbuyer-access-bookstore"

warehouse_target := "TrafficTarget bookwarehouse/bookstore-access-bookwarehouse"

books_bought := concat("", [buyer_target, ": ", routes, " match books-bought"])

tcp_rule := concat("", [warehouse_target, ": TCPRoute bookwarehouse/bookwarehouse-tcp match bookwarehouse-port"])

udp_rule := concat("", [warehouse_target, ": UDPRoute bookwarehouse/bookwarehouse-udp (unnamed match)"])

mesh := {
	"options": {"permissive": false, "pathMatch": "prefix", "failOpen": false},
	"identities": {
		bookbuyer.principal: bookbuyer.id,
		bookthief.principal: bookthief.id,
		bookstore.principal: bookstore.id,
		warehouse.principal: warehouse.id,
	},
	"access": {
		"bookstore/bookstore": {"bookbuyer/bookbuyer": [{
			"origin": buyer_target,
			"http": [
				{
					"group": routes, "name": "books-bought", "rule": books_bought,
					"methods": ["GET"], "method": "^(?:GET)$", "path": "^(?:/books-bought)", "headers": [],
				},
				{
					"group": routes, "name": "buy-a-book", "rule": concat("", [buyer_target, ": ", routes, " match buy-a-book"]),
					"methods": ["GET"], "method": "^(?:GET)$", "path": "^(?:/buy-a-book/new)",
					"headers": [{"name": "user-agent", "regex": "^(?:.*bookbuyer.*)$"}],
				},
			],
			"tcp": [],
			"udp": [],
		}]},
		"bookwarehouse/bookwarehouse": {"bookstore/bookstore": [{
			"origin": warehouse_target,
			"http": [{
				"group": "HTTPRouteGroup bookwarehouse/bookwarehouse-service-routes", "name": "restock-books",
				"rule": concat("", [warehouse_target, ": HTTPRouteGroup bookwarehouse/bookwarehouse-service-routes match restock-books"]),
				"methods": ["POST"], "method": "^(?:POST)$", "path": "^(?:/restock-books)", "headers": [],
			}],
			"tcp": [{"route": "TCPRoute bookwarehouse/bookwarehouse-tcp", "name": "bookwarehouse-port", "rule": tcp_rule, "ports": [14001]}],
			"udp": [{"route": "UDPRoute bookwarehouse/bookwarehouse-udp", "name": "", "rule": udp_rule, "ports": []}],
		}]},
	},
}

ids(src, dst) := {k: who.id | some k, who in {"source": src, "destination": dst}}

http(src, dst, method, path, headers) := {
	"attributes": {
		"source": {"principal": src.principal},
		"destination": {"principal": dst.principal},
		"request": {"http": {"method": method, "path": path, "headers": headers}},
	},
	"meshward": object.union({"path": path, "protocol": "http"}, ids(src, dst)),
}

l4(src, dst, protocol, port) := {
	"attributes": {
		"source": {"principal": src.principal},
		"destination": {"principal": dst.principal},
	},
	"meshward": object.union({"protocol": protocol, "port": port}, ids(src, dst)),
}

decide(req, m) := d if {
	d := authz.decision with input as req
		with data.meshward.options as m.options
		with data.meshward.identities as m.identities
		with data.meshward.access as m.access
}

test_allows_a_listed_match if {
	d := decide(http(bookbuyer, bookstore, "GET", "/books-bought", {}), mesh)
	d.allowed
	d.matched == [books_bought]
	d.reason == concat("", ["bookbuyer/bookbuyer may call bookstore/bookstore: ", books_bought])
}

test_path_is_anchored_at_the_start if {
	decide(http(bookbuyer, bookstore, "GET", "/books-bought/2024", {}), mesh).allowed
	not decide(http(bookbuyer, bookstore, "GET", "/x/books-bought", {}), mesh).allowed
}

test_header_must_match if {
	decide(http(bookbuyer, bookstore, "GET", "/buy-a-book/new", {"user-agent": "bookbuyer/1.0"}), mesh).allowed
	not decide(http(bookbuyer, bookstore, "GET", "/buy-a-book/new", {"user-agent": "curl/8.0"}), mesh).allowed
}

test_missing_header_never_matches if {
	d := decide(http(bookbuyer, bookstore, "GET", "/buy-a-book/new", {}), mesh)
	not d.allowed
	d.reason == concat("", ["no HTTPRouteGroup match of ", buyer_target, " allows GET /buy-a-book/new"])
}

test_method_must_match if {
	not decide(http(bookbuyer, bookstore, "POST", "/books-bought", {}), mesh).allowed
}

test_unlisted_source_is_denied if {
	d := decide(http(bookthief, bookstore, "GET", "/books-bought", {}), mesh)
	not d.allowed
	d.matched == []
	d.reason == "no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore"
}

test_denial_names_the_kinds_that_grant_access if {
	oci := json.patch(mesh, [{"op": "add", "path": "/options/accessKinds", "value": "AccessPolicy"}])
	d := decide(http(bookthief, bookstore, "GET", "/books-bought", {}), oci)
	d.reason == "no AccessPolicy allows bookthief/bookthief to call bookstore/bookstore"
}

test_unknown_source_principal if {
	d := decide(http(stranger, bookstore, "GET", "/", {}), mesh)
	not d.allowed
	d.reason == `source principal "spiffe://cluster.local/ns/x/sa/y" is not in the mesh`
}

test_no_source_principal if {
	d := decide({"attributes": {"destination": {"principal": bookstore.principal}}, "meshward": {"destination": bookstore.id}}, mesh)
	d.reason == "the request has no source principal (no mesh identity)"
}

test_unknown_destination_principal if {
	d := decide(http(bookbuyer, stranger, "GET", "/", {}), mesh)
	d.reason == `destination principal "spiffe://cluster.local/ns/x/sa/y" is not in the mesh`
}

test_identities_come_from_meshward if {
	# Principals are not read by the built-in policy: meshward resolves them.
	req := json.patch(http(bookbuyer, bookstore, "GET", "/books-bought", {}), [
		{"op": "replace", "path": "/attributes/source/principal", "value": "something else"},
	])
	decide(req, mesh).allowed
}

test_tcp_port_rule if {
	d := decide(l4(bookstore, warehouse, "tcp", 14001), mesh)
	d.allowed
	d.matched == [tcp_rule]
}

test_tcp_other_port_is_denied if {
	d := decide(l4(bookstore, warehouse, "tcp", 8080), mesh)
	not d.allowed
	d.reason == concat("", ["no TCPRoute of ", warehouse_target, " allows port 8080"])
}

test_http_rules_do_not_allow_tcp if {
	d := decide(l4(bookbuyer, bookstore, "tcp", 14001), mesh)
	not d.allowed
	d.reason == concat("", ["HTTP rules do not allow TCP: ", buyer_target, " allows bookbuyer/bookbuyer to call bookstore/bookstore over HTTP only; TCP needs a TCPRoute rule"])
}

test_tcp_rules_do_not_allow_http if {
	only_tcp := json.patch(mesh, [{"op": "replace", "path": "/access/bookwarehouse~1bookwarehouse/bookstore~1bookstore/0/http", "value": []}])
	d := decide(http(bookstore, warehouse, "POST", "/restock-books", {}), only_tcp)
	not d.allowed
	startswith(d.reason, "TCP rules do not allow HTTP requests: ")
}

test_rules_without_http_or_l4 if {
	empty := json.patch(mesh, [{"op": "replace", "path": "/access/bookstore~1bookstore/bookbuyer~1bookbuyer/0/http", "value": []}])
	d := decide(http(bookbuyer, bookstore, "GET", "/books-bought", {}), empty)
	d.reason == concat("", ["no HTTPRouteGroup rule of ", buyer_target, " allows HTTP from bookbuyer/bookbuyer to bookstore/bookstore"])
	startswith(decide(l4(bookbuyer, bookstore, "udp", 53), empty).reason, "no UDPRoute rule of ")
}

test_udp_route_without_ports_covers_every_port if {
	d := decide(l4(bookstore, warehouse, "udp", 5353), mesh)
	d.allowed
	d.matched == [udp_rule]
}

test_empty_method_and_path_match_anything if {
	any := json.patch(mesh, [{"op": "replace", "path": "/access/bookstore~1bookstore/bookbuyer~1bookbuyer/0/http/0", "value": {
		"group": routes, "name": "all", "rule": "all",
		"methods": [], "method": "", "path": "", "headers": [],
	}}])
	decide(http(bookbuyer, bookstore, "DELETE", "/anything", {}), any).allowed
}

test_full_match_path if {
	full := json.patch(mesh, [{"op": "replace", "path": "/access/bookstore~1bookstore/bookbuyer~1bookbuyer/0/http/0/path", "value": "^(?:/books-bought)$"}])
	decide(http(bookbuyer, bookstore, "GET", "/books-bought", {}), full).allowed
	not decide(http(bookbuyer, bookstore, "GET", "/books-bought/2024", {}), full).allowed
}

test_union_of_overlapping_targets if {
	second := {
		"origin": "TrafficTarget bookstore/all-routes",
		"http": [{
			"group": routes, "name": "update-books-bought", "rule": "update",
			"methods": ["POST"], "method": "^(?:POST)$", "path": "^(?:/update-books-bought)", "headers": [],
		}],
		"tcp": [], "udp": [],
	}
	both := json.patch(mesh, [{"op": "add", "path": "/access/bookstore~1bookstore/bookbuyer~1bookbuyer/-", "value": second}])
	decide(http(bookbuyer, bookstore, "GET", "/books-bought", {}), both).allowed
	decide(http(bookbuyer, bookstore, "POST", "/update-books-bought", {}), both).allowed
}

test_every_matching_rule_is_named if {
	twice := json.patch(mesh, [{"op": "add", "path": "/access/bookstore~1bookstore/bookbuyer~1bookbuyer/-", "value": {
		"origin": "TrafficTarget bookstore/again",
		"http": [{"group": routes, "name": "any", "rule": "again", "methods": [], "method": "", "path": "", "headers": []}],
		"tcp": [], "udp": [],
	}}])
	d := decide(http(bookbuyer, bookstore, "GET", "/books-bought", {}), twice)
	d.matched == [books_bought, "again"]
	d.reason == concat("", ["bookbuyer/bookbuyer may call bookstore/bookstore: ", books_bought, "; again"])
}

test_permissive_allows_every_in_mesh_pair if {
	open := json.patch(mesh, [{"op": "replace", "path": "/options/permissive", "value": true}])
	d := decide(http(bookthief, bookstore, "DELETE", "/x", {}), open)
	d.allowed
	d.matched == []
	startswith(d.reason, "permissive mode allows bookthief/bookthief to call bookstore/bookstore")
	decide(l4(bookthief, warehouse, "tcp", 1), open).allowed
	not decide(http(stranger, bookstore, "GET", "/", {}), open).allowed
	not decide(http(bookthief, stranger, "GET", "/", {}), open).allowed
}

test_no_path_never_matches_a_path_rule if {
	req := json.remove(http(bookbuyer, bookstore, "GET", "/books-bought", {}), ["meshward/path"])
	d := decide(req, mesh)
	not d.allowed
	d.reason == "the request has no normalised path (input.meshward.path)"
}

test_unknown_protocol if {
	d := decide(l4(bookstore, warehouse, "sctp", 1), mesh)
	not d.allowed
	d.reason == `protocol "sctp" is not http, tcp or udp`
}
