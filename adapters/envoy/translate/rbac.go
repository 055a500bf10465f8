package translate

import (
	"fmt"
	"regexp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshward/meshward/mesh"
)

// permissivePolicy names the single policy of a permissive mesh.
const permissivePolicy = "permissive"

// rulesFor returns the access rules whose destination is id.
func (b *builder) rulesFor(id mesh.Identity) []mesh.AccessRule {
	var out []mesh.AccessRule
	for _, r := range b.m.Access {
		if r.Destination == id {
			out = append(out, r)
		}
	}
	return out
}

// httpRBAC is the inbound HTTP RBAC filter: ALLOW with one policy per
// access rule (named by its origin), whose principals are the rule's
// sources and whose permissions are its HTTP matches. A request is
// allowed when any policy matches it, which is the union of the rules. No
// policy denies everything; rules without sources or HTTP matches allow
// nothing and get no policy. In a permissive mesh one policy allows every
// request of the mesh's workloads.
func (b *builder) httpRBAC(rules []mesh.AccessRule) *hcmv3.HttpFilter {
	rbac := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	if b.m.Options.Permissive {
		rbac.Policies[permissivePolicy] = b.permissive()
	} else {
		for _, r := range rules {
			var perms []*rbacv3.Permission
			for _, hm := range r.HTTP {
				if b.o.Flavor == FlavorGRPC && grpcRejectsHeaders(hm) {
					// The match would make gRPC reject the whole
					// listener; leaving it out only narrows access.
					continue
				}
				perms = append(perms, permission(hm, b.m.Options.PathMatch))
			}
			b.addPolicy(rbac.Policies, r, perms)
		}
	}
	return b.httpFilter(nameHTTPRBAC, &rbachttpv3.RBAC{Rules: rbac})
}

// tcpRBAC is the inbound network RBAC filter of a TCP port: one policy per
// access rule with a TCP match covering the port (no ports means every
// port), allowing the rule's sources to connect. HTTP matches never open a
// TCP port.
func (b *builder) tcpRBAC(rules []mesh.AccessRule, port int32, stat string) *rbacnetv3.RBAC {
	rbac := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	if b.m.Options.Permissive {
		rbac.Policies[permissivePolicy] = b.permissive()
	} else {
		for _, r := range rules {
			if slices.ContainsFunc(r.TCP, func(pm mesh.PortMatch) bool {
				return len(pm.Ports) == 0 || slices.Contains(pm.Ports, port)
			}) {
				b.addPolicy(rbac.Policies, r, []*rbacv3.Permission{anyPermission()})
			}
		}
	}
	return &rbacnetv3.RBAC{StatPrefix: stat, Rules: rbac}
}

// addPolicy adds the policy of rule r with the given permissions, unless
// it has no permissions or no sources. Policies are named by the rule's
// origin; a repeated origin gets " #2", " #3"... appended.
func (b *builder) addPolicy(policies map[string]*rbacv3.Policy, r mesh.AccessRule, perms []*rbacv3.Permission) {
	principals := b.principals(r.Sources)
	if len(perms) == 0 || len(principals) == 0 {
		return
	}
	name := r.Origin.String()
	for i := 2; policies[name] != nil; i++ {
		name = fmt.Sprintf("%s #%d", r.Origin.String(), i)
	}
	policies[name] = &rbacv3.Policy{Permissions: perms, Principals: principals}
}

// principals matches the authenticated principals of ids (the peer
// certificate's URI SAN, else DNS SAN, else subject), sorted.
func (b *builder) principals(ids []mesh.Identity) []*rbacv3.Principal {
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		names = append(names, id.Principal(b.m.Options.PrincipalFormat, b.m.Options.TrustDomain))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]*rbacv3.Principal, len(names))
	for i, n := range names {
		out[i] = authenticated(exactMatcher(n))
	}
	return out
}

// permissive allows any request from any workload of the trust domain:
// a peer certificate whose principal is in the trust domain (SPIFFE:
// spiffe://<trustDomain>/...; DNS: ...<.trustDomain>). With Plaintext
// there is no peer certificate and it allows any client at all.
func (b *builder) permissive() *rbacv3.Policy {
	p := &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	if !b.o.Plaintext {
		td := regexp.QuoteMeta(b.m.Options.TrustDomain)
		expr := "spiffe://" + td + "/.*"
		if b.m.Options.PrincipalFormat == mesh.PrincipalDNS {
			expr = ".+\\." + td
		}
		p = authenticated(regexMatcher(expr))
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{anyPermission()}, Principals: []*rbacv3.Principal{p}}
}

// authenticated matches a peer whose certificate's principal matches name.
func authenticated(name *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
		Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: name},
	}}
}

// extAuthz is the ext_authz filter: every request is checked by
// meshward's ext_authz server over gRPC (API v3). When the server cannot
// be reached the request is denied, unless the mesh fails open.
func (b *builder) extAuthz() *hcmv3.HttpFilter {
	return b.httpFilter(nameExtAuthz, &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: b.o.ExtAuthzCluster}},
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    b.m.Options.FailOpen,
	})
}
