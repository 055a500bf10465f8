package envoy.authz_test

import data.envoy.authz

store := "spiffe://cluster.local/ns/bookstore/sa/bookstore"

buyer := "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"

thief := "spiffe://cluster.local/ns/bookthief/sa/bookthief"

identities := {store: "bookstore/bookstore", buyer: "bookbuyer/bookbuyer", thief: "bookthief/bookthief"}

access := {"bookstore/bookstore": {"bookbuyer/bookbuyer": [{
	"origin": "TrafficTarget bookstore/t",
	"http": [{"group": "HTTPRouteGroup bookstore/g", "name": "all", "rule": "all", "methods": [], "method": "", "path": "", "headers": []}],
	"tcp": [], "udp": [],
}]}}

req(src) := {
	"attributes": {"source": {"principal": src}, "destination": {"principal": store}, "request": {"http": {"method": "GET", "path": "/"}}},
	"meshward": {"path": "/", "protocol": "http", "source": identities[src], "destination": identities[store]},
}

allowed(src, deny, allow) if {
	authz.allow with input as req(src)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.ext.deny as deny
		with data.meshward.ext.allow as allow
}

test_follows_smi_access if {
	allowed(buyer, set(), false)
	not allowed(thief, set(), false)
}

test_user_deny_wins if {
	not allowed(buyer, {"no"}, false)
	not allowed(thief, {"no"}, true)
}

test_user_allow_adds if {
	allowed(thief, set(), true)
}

test_allow_is_always_a_boolean if {
	authz.allow == false with input as {}
}

test_follows_permissive_mode if {
	authz.allow with input as req(thief)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.options as {"permissive": true}
	not authz.allow with input as req(thief)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.options as {"permissive": true}
		with data.meshward.ext.deny as {"no"}
}

# Without user extensions the default decision is SMI access itself: the
# engine then evaluates data.meshward.authz.allow in its place.
test_equals_smi_access_without_extensions if {
	every src in [buyer, thief] {
		every permissive in [true, false] {
			same_as_smi_access(src, permissive)
		}
	}
}

same_as_smi_access(src, permissive) if {
	a := authz.allow with input as req(src)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.options as {"permissive": permissive}
	b := data.meshward.authz.allow with input as req(src)
		with data.meshward.identities as identities
		with data.meshward.access as access
		with data.meshward.options as {"permissive": permissive}
	a == b
}
