package translate

import (
	"regexp"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshward/meshward/mesh"
)

// pathRegex returns the safe_regex that implements a pathRegex under the
// mesh's path match option. Envoy's and gRPC's safe_regex must match the
// whole path, so the full option uses the expression as it is and the
// prefix option (anchored at the start only, as SMI says) appends ".*".
// Paths never hold a newline (the policy engine rejects control
// characters), so "." covers every character that can follow.
func pathRegex(expr string, pm mesh.PathMatch) string {
	if pm == mesh.PathMatchFull {
		return expr
	}
	return "(?:" + expr + ").*"
}

// regexMatcher is a full-match RE2 string matcher.
func regexMatcher(expr string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: expr},
	}}
}

// exactMatcher is an exact string matcher.
func exactMatcher(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// methodMatcher matches the :method pseudo-header against one of methods
// (nil for any method).
func methodMatcher(methods []string) *routev3.HeaderMatcher {
	var sm *matcherv3.StringMatcher
	switch len(methods) {
	case 0:
		return nil
	case 1:
		sm = exactMatcher(methods[0])
	default:
		quoted := make([]string, len(methods))
		for i, m := range methods {
			quoted[i] = regexp.QuoteMeta(m)
		}
		sm = regexMatcher(strings.Join(quoted, "|"))
	}
	return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

// headerMatcher requires a header whose value fully matches h.Regex.
func headerMatcher(h mesh.HeaderMatch) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: h.Name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regexMatcher(h.Regex)}}
}

// grpcMethod and grpcContentType are what every call of a gRPC client is:
// an HTTP/2 POST with a gRPC content-type.
const (
	grpcMethod      = "POST"
	grpcContentType = "application/grpc"
)

// clientMatch adapts a match for the flavor's routes. A gRPC client picks
// a route before it adds the :method and content-type headers, seeing only
// the call's own metadata, so for the gRPC flavor a method or content-type
// condition that every gRPC call meets is left out, and a match with one
// that no gRPC call meets can never match: ok is false and the route is
// left out. Envoy sees the request's headers and keeps the match as it is.
func (b *builder) clientMatch(hm mesh.HTTPMatch) (mesh.HTTPMatch, bool) {
	if b.o.Flavor != FlavorGRPC {
		return hm, true
	}
	if len(hm.Methods) > 0 {
		if !slices.Contains(hm.Methods, grpcMethod) {
			return hm, false
		}
		hm.Methods = nil
	}
	var headers []mesh.HeaderMatch
	for _, h := range hm.Headers {
		if !strings.EqualFold(h.Name, "content-type") {
			headers = append(headers, h)
			continue
		}
		re, err := regexp.Compile("^(?:" + h.Regex + ")$")
		if err != nil || !re.MatchString(grpcContentType) {
			return hm, false
		}
	}
	hm.Headers = headers
	return hm, true
}

// routeMatch returns the route match for an HTTPRouteGroup match: the path
// expression (or any path), the method and every header.
func routeMatch(hm mesh.HTTPMatch, pm mesh.PathMatch) *routev3.RouteMatch {
	rm := catchAll()
	if hm.PathRegex != "" {
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: pathRegex(hm.PathRegex, pm)}}
	}
	if mm := methodMatcher(hm.Methods); mm != nil {
		rm.Headers = append(rm.Headers, mm)
	}
	for _, h := range hm.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	return rm
}

// permission returns the RBAC permission for an HTTPRouteGroup match: the
// AND of its method, path (RBAC's url_path is the path without the query,
// after the connection manager normalised it) and headers; any request
// when the match has none of them.
func permission(hm mesh.HTTPMatch, pm mesh.PathMatch) *rbacv3.Permission {
	var and []*rbacv3.Permission
	if mm := methodMatcher(hm.Methods); mm != nil {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: mm}})
	}
	if hm.PathRegex != "" {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: regexMatcher(pathRegex(hm.PathRegex, pm))},
		}}})
	}
	for _, h := range hm.Headers {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(h)}})
	}
	switch len(and) {
	case 0:
		return anyPermission()
	case 1:
		return and[0]
	default:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
	}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

// grpcRejectsHeaders reports whether gRPC-Go would reject (NACK) an RBAC
// policy matching one of the match's headers: A41 forbids matchers on
// "grpc-" headers and :scheme.
func grpcRejectsHeaders(hm mesh.HTTPMatch) bool {
	for _, h := range hm.Headers {
		n := strings.ToLower(h.Name)
		if strings.HasPrefix(n, "grpc-") || n == ":scheme" {
			return true
		}
	}
	return false
}

// describeMatch names an HTTPRouteGroup match, e.g.
// "HTTPRouteGroup ns/g match m", for route names.
func describeMatch(hm mesh.HTTPMatch) string {
	if hm.Name == "" {
		return hm.Group.String() + " (unnamed match)"
	}
	return hm.Group.String() + " match " + hm.Name
}
