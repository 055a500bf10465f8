# User policy extensions.
#
# How user Rego in package meshward.ext combines with the built-in SMI
# decision. A user module may add
#   deny contains reason if { ... }   to refuse requests SMI allows, and
#   allow if { ... }                  to allow requests SMI denies;
# a deny always wins. explain is what the engine reads next to the
# decision path to say why.
package meshward.authz

# user_denies are the reasons given by data.meshward.ext.deny.
user_denies contains reason if {
	some reason in data.meshward.ext.deny
}

user_denied if data.meshward.ext.deny[_]

default user_allowed := false

user_allowed if {
	is_boolean(data.meshward.ext.allow)
	data.meshward.ext.allow
}

# explain is the built-in decision with the user extensions' verdicts.
explain := {
	"allowed": allow,
	"reason": reason,
	"matched": matched,
	"user_denies": user_denies,
	"user_allowed": user_allowed,
}
