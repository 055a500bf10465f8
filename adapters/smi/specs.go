package smi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// httpGroup is an HTTPRouteGroup resolved once per translation.
type httpGroup struct {
	ref mesh.ObjectRef
	// matches are the valid matches, sorted by name then position in the
	// group. Access rules and splits refer to them by index.
	matches []mesh.HTTPMatch
	// names lists every match name of the group once, sorted, with the
	// index of its match in matches, or -1 when that match is invalid (and
	// already reported on the group).
	names []namedMatch
}

type namedMatch struct {
	name  string
	index int
}

// lookup returns the index in g.matches of the match with the given name;
// known is false when the group has no match of that name.
func (g *httpGroup) lookup(name string) (index int, known bool) {
	i, found := slices.BinarySearchFunc(g.names, name, func(n namedMatch, name string) int {
		return strings.Compare(n.name, name)
	})
	if !found {
		return 0, false
	}
	return g.names[i].index, true
}

// addDropped records the matches the decoder removed from g as malformed
// (and reported, snapshot.DroppedMatchesAnnotation): known by name but
// invalid, like the invalid matches resolveHTTPGroup reports, so that a
// rule naming one is not reported again as naming an unknown match.
func (g *httpGroup) addDropped(obj *specsv1alpha4.HTTPRouteGroup) {
	v := obj.Annotations[snapshot.DroppedMatchesAnnotation]
	if v == "" {
		return
	}
	var dropped []string
	if json.Unmarshal([]byte(v), &dropped) != nil {
		return
	}
	for _, name := range dropped {
		if _, known := g.lookup(name); !known {
			g.names = append(g.names, namedMatch{name: name, index: -1})
			slices.SortFunc(g.names, func(a, b namedMatch) int { return strings.Compare(a.name, b.name) })
		}
	}
}

// regexCache remembers which RE2 expressions compile, so that an
// expression shared by many matches is compiled once per translation. A nil
// cache compiles every time.
type regexCache map[string]error

func (c regexCache) check(expr string) error {
	if c != nil {
		if err, ok := c[expr]; ok {
			return err
		}
	}
	_, err := regexp.Compile(expr)
	if c != nil {
		c[expr] = err
	}
	return err
}

// ValidateHTTPRouteGroup checks an HTTPRouteGroup on its own: method tokens,
// RE2 expressions, header names and match names. Matches it reports as
// Errors are ignored by Translate.
func ValidateHTTPRouteGroup(g *specsv1alpha4.HTTPRouteGroup) []mesh.Finding {
	var fs findings
	resolveHTTPGroup(g, nil, &fs)
	return mesh.SortFindings(fs)
}

// resolveHTTPGroup converts a group's matches, dropping and reporting the
// invalid ones.
func resolveHTTPGroup(g *specsv1alpha4.HTTPRouteGroup, cache regexCache, fs *findings) *httpGroup {
	gref := ref(kindHTTPRouteGroup, g.Namespace, g.Name)
	in := g.Spec.Matches
	out := &httpGroup{ref: gref}
	if len(in) == 0 {
		out.addDropped(g)
		return out
	}
	// Visit the matches by name, then position: valid matches come out
	// sorted, and the first of several matches with one name owns it.
	order := make([]int, len(in))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(in[a].Name, in[b].Name) })
	out.matches = make([]mesh.HTTPMatch, 0, len(in))
	out.names = make([]namedMatch, 0, len(in))
	owner := -1 // position of the match owning the current name
	for k, p := range order {
		name := in[p].Name
		switch {
		case name == "":
			fs.Warnf(gref, fmt.Sprintf("spec.matches[%d].name", p), ReasonMissingName,
				"match has no name; only rules and splits that use every match of the group use it")
		case k > 0 && in[order[k-1]].Name == name:
			fs.Errorf(gref, fmt.Sprintf("spec.matches[%d].name", p), ReasonDuplicateMatchName,
				"match name %q is already used by spec.matches[%d]; this match is ignored", name, owner)
			continue
		default:
			owner = p
		}
		m, ok := resolveHTTPMatch(gref, p, &in[p], cache, fs)
		index := -1
		if ok {
			index = len(out.matches)
			out.matches = append(out.matches, m)
		}
		if name != "" {
			out.names = append(out.names, namedMatch{name: name, index: index})
		}
	}
	out.addDropped(g)
	return out
}

// resolveHTTPMatch converts one match; ok is false when it is invalid.
func resolveHTTPMatch(gref mesh.ObjectRef, i int, in *specsv1alpha4.HTTPMatch, cache regexCache, fs *findings) (m mesh.HTTPMatch, ok bool) {
	ok = true
	dropped := func() string { return fmt.Sprintf("match %q is ignored and matches nothing", in.Name) }
	m = mesh.HTTPMatch{Group: gref, Name: in.Name, PathRegex: in.PathRegex}

	anyMethod := len(in.Methods) == 0
	if !anyMethod {
		m.Methods = make([]string, 0, len(in.Methods))
	}
	for j, meth := range in.Methods {
		switch {
		case meth == string(specsv1alpha4.HTTPRouteMethodAll):
			anyMethod = true
		case !isToken(meth):
			fs.Errorf(gref, fmt.Sprintf("spec.matches[%d].methods[%d]", i, j), ReasonInvalidMethod,
				"method %q is not a valid HTTP method token; %s", meth, dropped())
			ok = false
		default:
			m.Methods = append(m.Methods, strings.ToUpper(meth))
		}
	}
	if anyMethod {
		m.Methods = nil
	} else {
		slices.Sort(m.Methods)
		m.Methods = slices.Compact(m.Methods)
	}

	if in.PathRegex != "" {
		if err := cache.check(in.PathRegex); err != nil {
			fs.Errorf(gref, fmt.Sprintf("spec.matches[%d].pathRegex", i), ReasonInvalidRegex,
				"pathRegex %q is not a valid RE2 expression (%v); %s", in.PathRegex, unwrapRegexError(err), dropped())
			ok = false
		}
	}

	if len(in.Headers) > 0 {
		m.Headers = make([]mesh.HeaderMatch, 0, len(in.Headers))
		for name, value := range in.Headers {
			field := func() string { return fmt.Sprintf("spec.matches[%d].headers.%s", i, name) }
			if !isToken(name) {
				fs.Errorf(gref, field(), ReasonInvalidHeaderName,
					"header name %q is not a valid HTTP header name; %s", name, dropped())
				ok = false
				continue
			}
			if err := cache.check(value); err != nil {
				fs.Errorf(gref, field(), ReasonInvalidRegex,
					"value %q of header %q is not a valid RE2 expression (%v); %s", value, name, unwrapRegexError(err), dropped())
				ok = false
				continue
			}
			m.Headers = append(m.Headers, mesh.HeaderMatch{Name: strings.ToLower(name), Regex: value})
		}
		slices.SortFunc(m.Headers, func(a, b mesh.HeaderMatch) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Regex, b.Regex)
		})
		m.Headers = slices.Compact(m.Headers)
	}
	return m, ok
}

// unwrapRegexError returns the parser's own description of the problem,
// without the "error parsing regexp: " prefix.
func unwrapRegexError(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// isToken reports whether s is an RFC 9110 token, the syntax of both HTTP
// methods and header field names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// portRoute is a TCPRoute or UDPRoute resolved once per translation.
type portRoute struct {
	ref mesh.ObjectRef
	// match is the route's single match; valid is false when it has an
	// invalid port (then the route matches nothing).
	match mesh.PortMatch
	valid bool
}

// ValidateTCPRoute checks a TCPRoute on its own: every port must be in
// 1-65535. A route reported as an Error matches nothing in Translate.
func ValidateTCPRoute(r *specsv1alpha4.TCPRoute) []mesh.Finding {
	var fs findings
	resolvePortRoute(ref(kindTCPRoute, r.Namespace, r.Name), r.Spec.Matches.Name, r.Spec.Matches.Ports, &fs)
	return mesh.SortFindings(fs)
}

// ValidateUDPRoute checks a UDPRoute on its own, like ValidateTCPRoute.
func ValidateUDPRoute(r *specsv1alpha4.UDPRoute) []mesh.Finding {
	var fs findings
	resolvePortRoute(ref(kindUDPRoute, r.Namespace, r.Name), r.Spec.Matches.Name, r.Spec.Matches.Ports, &fs)
	return mesh.SortFindings(fs)
}

// resolvePortRoute converts a route's match. Dropping only the bad ports
// could leave an empty list, which means every port, so a route with any
// bad port matches nothing instead.
func resolvePortRoute(rref mesh.ObjectRef, name string, ports []int, fs *findings) *portRoute {
	out := &portRoute{ref: rref, match: mesh.PortMatch{Route: rref, Name: name}, valid: true}
	if len(ports) > 0 {
		out.match.Ports = make([]int32, 0, len(ports))
	}
	for j, p := range ports {
		if p < 1 || p > 65535 {
			fs.Errorf(rref, fmt.Sprintf("spec.matches.ports[%d]", j), ReasonInvalidPort,
				"port %d is outside 1-65535; the route is ignored and matches nothing", p)
			out.valid = false
			continue
		}
		out.match.Ports = append(out.match.Ports, int32(p))
	}
	slices.Sort(out.match.Ports)
	out.match.Ports = slices.Compact(out.match.Ports)
	return out
}
