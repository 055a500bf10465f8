package meshward.ext_test

import data.meshward.authz

store := "spiffe://cluster.local/ns/bookstore/sa/bookstore"

buyer := "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"

identities := {store: "bookstore/bookstore", buyer: "bookbuyer/bookbuyer"}

access := {"bookstore/bookstore": {"bookbuyer/bookbuyer": [{
	"origin": "TrafficTarget bookstore/t",
	"http": [{"group": "HTTPRouteGroup bookstore/g", "name": "all", "rule": "all", "methods": [], "method": "", "path": "", "headers": []}],
	"tcp": [], "udp": [],
}]}}

req(src) := {
	"attributes": {"source": {"principal": src}, "destination": {"principal": store}, "request": {"http": {"method": "GET", "path": "/"}}},
	"meshward": {"path": "/", "protocol": "http", "source": identities[src], "destination": identities[store]},
}

explain(src, deny, allow) := e if {
	e := authz.explain with input as req(src)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.ext.deny as deny
		with data.meshward.ext.allow as allow
}

test_no_extensions if {
	e := authz.explain with input as req(buyer)
		with data.meshward.identities as identities
		with data.meshward.access as access
	e.allowed
	e.user_denies == set()
	e.user_allowed == false
}

test_user_denies_are_collected if {
	e := explain(buyer, {"maintenance window", "second"}, false)
	e.user_denies == {"maintenance window", "second"}
	e.allowed
}

test_user_denies_as_an_array if {
	e := explain(buyer, ["a", "a"], false)
	e.user_denies == {"a"}
}

test_user_allow_must_be_true if {
	explain(store, set(), true).user_allowed
	not explain(store, set(), "yes").user_allowed
}
