# METADATA
# title: Default decision
# description: |
#   The decision at envoy/authz/allow, the default path of meshward's
#   ext_authz server (as in opa-envoy-plugin). It allows what SMI access
#   (data.meshward.authz) or a user's data.meshward.ext.allow allows, unless
#   a user's data.meshward.ext.deny refuses it. meshward leaves this module
#   out when a user module declares package envoy.authz itself: that module
#   then decides alone. While no user module declares package meshward.ext
#   this rule equals data.meshward.authz.allow, which meshward then
#   evaluates in its place (one rule evaluation less per request).
package envoy.authz

default allow := false

# data.meshward.authz.allow, inlined (a matched rule, or permissive mode):
# one rule evaluation less on every request.
allow if {
	count(data.meshward.authz.matched) > 0
	not data.meshward.authz.user_denied
}

allow if {
	data.meshward.authz.permissive
	not data.meshward.authz.user_denied
}

allow if {
	data.meshward.authz.user_allowed
	not data.meshward.authz.user_denied
}
