package meshward.authz_test

import data.meshward.authz

ingress_data := {
	"options": {"permissive": false, "pathMatch": "prefix"},
	"identities": {},
	"access": {},
	"ingress": {"shop/web": {
		"8080": [{
			"rule": "IngressBackend shop/web-ingress",
			"checkAddress": true,
			"addresses": ["10.0.0.7"],
			"cidrs": ["192.168.0.0/16"],
			"checkPrincipal": false,
			"principals": [],
		}],
		"8443": [{
			"rule": "IngressBackend shop/web-tls",
			"checkAddress": false,
			"addresses": [],
			"cidrs": [],
			"checkPrincipal": true,
			"principals": ["spiffe://cluster.local/ns/ingress/sa/nginx"],
		}],
	}},
}

ingress_input(port, address, principal) := {
	"attributes": {"request": {"http": {"method": "GET", "path": "/"}}},
	"meshward": {"protocol": "http", "path": "/", "ingress": {"backend": "shop/web", "port": port, "address": address, "principal": principal}},
}

test_ingress_service_address_admitted if {
	authz.allow with input as ingress_input("8080", "10.0.0.7", "") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_cidr_admitted if {
	authz.allow with input as ingress_input("8080", "192.168.4.2", "") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_other_address_denied if {
	not authz.allow with input as ingress_input("8080", "10.0.0.8", "") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_other_port_denied if {
	not authz.allow with input as ingress_input("9090", "10.0.0.7", "") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_principal_admitted if {
	authz.allow with input as ingress_input("8443", "1.2.3.4", "spiffe://cluster.local/ns/ingress/sa/nginx") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_principal_missing_denied if {
	not authz.allow with input as ingress_input("8443", "1.2.3.4", "") with data.meshward.ingress as ingress_data.ingress
}

test_ingress_reason_names_backend if {
	r := authz.ingress_reason with input as ingress_input("8080", "10.9.9.9", "") with data.meshward.ingress as ingress_data.ingress
	contains(r, "shop/web port 8080")
	contains(r, "10.9.9.9")
}
