package smi

import (
	"fmt"
	"slices"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/meshward/meshward/mesh"
)

// target is a TrafficTarget after the checks that need no other object.
type target struct {
	ref  mesh.ObjectRef
	dest mesh.Identity
	// sources are the usable sources with their positions in spec.sources.
	sources []source
	// rules are the rules of a supported kind that name a route.
	rules []rule
}

type source struct {
	pos int
	id  mesh.Identity
}

type rule struct {
	pos     int
	kind    string
	name    string
	matches []string
}

// ValidateTrafficTarget checks a TrafficTarget on its own: the destination
// must be a ServiceAccount in the target's namespace, sources must be
// ServiceAccounts, rules must name an HTTPRouteGroup, TCPRoute or UDPRoute.
// It also warns when the target allows nothing (no sources, no rules).
func ValidateTrafficTarget(tt *accessv1alpha3.TrafficTarget) []mesh.Finding {
	var fs findings
	parseTarget(tt, &fs)
	return mesh.SortFindings(fs)
}

// parseTarget runs the checks of ValidateTrafficTarget; ok is false when
// the whole target is ignored.
func parseTarget(tt *accessv1alpha3.TrafficTarget, fs *findings) (t target, ok bool) {
	ns := tt.Namespace
	t.ref = ref(kindTrafficTarget, ns, tt.Name)
	ok = true

	t.sources = make([]source, 0, len(tt.Spec.Sources))
	t.rules = make([]rule, 0, len(tt.Spec.Rules))
	d := tt.Spec.Destination
	switch {
	case d.Kind != kindServiceAccount:
		fs.Errorf(t.ref, "spec.destination.kind", ReasonUnsupportedKind,
			"destination kind %q is not supported, only ServiceAccount; the TrafficTarget is ignored", d.Kind)
		ok = false
	case d.Name == "":
		fs.Errorf(t.ref, "spec.destination.name", ReasonMissingName,
			"destination names no ServiceAccount; the TrafficTarget is ignored")
		ok = false
	case d.Namespace != "" && d.Namespace != ns:
		fs.Errorf(t.ref, "spec.destination.namespace", ReasonWrongNamespace,
			"destination namespace %q differs from the TrafficTarget's namespace %q; a TrafficTarget must live in its destination's namespace, so this one is ignored", d.Namespace, ns)
		ok = false
	}
	t.dest = mesh.Identity{Namespace: ns, Name: d.Name}

	for i, s := range tt.Spec.Sources {
		switch {
		case s.Kind != kindServiceAccount:
			fs.Errorf(t.ref, fmt.Sprintf("spec.sources[%d].kind", i), ReasonUnsupportedKind,
				"source kind %q is not supported, only ServiceAccount; the source is ignored", s.Kind)
			continue
		case s.Name == "":
			fs.Errorf(t.ref, fmt.Sprintf("spec.sources[%d].name", i), ReasonMissingName,
				"source names no ServiceAccount; the source is ignored")
			continue
		}
		id := mesh.Identity{Namespace: s.Namespace, Name: s.Name}
		if id.Namespace == "" {
			id.Namespace = ns
		}
		t.sources = append(t.sources, source{pos: i, id: id})
	}
	if len(t.sources) == 0 {
		fs.Warnf(t.ref, "spec.sources", ReasonNoSources,
			"the TrafficTarget lists no usable source; it allows nothing")
	}

	if len(tt.Spec.Rules) == 0 {
		fs.Warnf(t.ref, "spec.rules", ReasonNoRules,
			"the TrafficTarget lists no rules; it allows nothing")
	}
	for i, r := range tt.Spec.Rules {
		switch r.Kind {
		case kindHTTPRouteGroup, kindTCPRoute, kindUDPRoute:
		default:
			fs.Errorf(t.ref, fmt.Sprintf("spec.rules[%d].kind", i), ReasonUnsupportedKind,
				"rule kind %q is not supported (want HTTPRouteGroup, TCPRoute or UDPRoute); the rule is ignored", r.Kind)
			continue
		}
		if r.Name == "" {
			fs.Errorf(t.ref, fmt.Sprintf("spec.rules[%d].name", i), ReasonMissingName,
				"rule names no %s; the rule is ignored", r.Kind)
			continue
		}
		t.rules = append(t.rules, rule{pos: i, kind: r.Kind, name: r.Name, matches: r.Matches})
	}
	return t, ok
}

// httpRef is one resolved HTTP match of a group, for deduplication.
type httpRef struct {
	g *httpGroup
	i int
}

// accessRule translates a checked TrafficTarget.
func (t *translator) accessRule(tt *target) mesh.AccessRule {
	out := mesh.AccessRule{Origin: tt.ref, Destination: tt.dest}
	if !t.knownIdentity(tt.dest) {
		t.fs.Warnf(tt.ref, "spec.destination.name", ReasonUnknownServiceAccount,
			"ServiceAccount %s is not known in the mesh; the TrafficTarget is kept and applies once it exists", tt.dest)
	}
	if len(tt.sources) > 0 {
		out.Sources = make([]mesh.Identity, 0, len(tt.sources))
	}
	for _, s := range tt.sources {
		if !t.knownIdentity(s.id) {
			t.fs.Warnf(tt.ref, fmt.Sprintf("spec.sources[%d].name", s.pos), ReasonUnknownServiceAccount,
				"ServiceAccount %s is not known in the mesh; the source is kept and applies once it exists", s.id)
		}
		out.Sources = append(out.Sources, s.id)
	}
	slices.SortFunc(out.Sources, mesh.Identity.Compare)
	out.Sources = slices.Compact(out.Sources)

	var httpRefs []httpRef
	var tcp, udp []*portRoute
	ns := tt.ref.Namespace
	for _, r := range tt.rules {
		key := nsName{ns, r.name}
		switch r.kind {
		case kindHTTPRouteGroup:
			g := t.groups[key]
			if g == nil {
				t.unknownRoute(tt, r)
				continue
			}
			httpRefs = t.ruleHTTPMatches(tt, r, g, httpRefs)
		case kindTCPRoute, kindUDPRoute:
			routes := t.tcp
			if r.kind == kindUDPRoute {
				routes = t.udp
			}
			pr := routes[key]
			if pr == nil {
				t.unknownRoute(tt, r)
				continue
			}
			if !t.rulePortMatch(tt, r, pr) {
				continue
			}
			if r.kind == kindTCPRoute {
				tcp = append(tcp, pr)
			} else {
				udp = append(udp, pr)
			}
		}
	}

	slices.SortFunc(httpRefs, func(a, b httpRef) int {
		if a.g != b.g {
			return a.g.ref.Compare(b.g.ref)
		}
		return a.i - b.i
	})
	httpRefs = slices.Compact(httpRefs)
	if len(httpRefs) > 0 {
		out.HTTP = make([]mesh.HTTPMatch, len(httpRefs))
		for i, h := range httpRefs {
			out.HTTP[i] = h.g.matches[h.i]
		}
	}
	out.TCP = portMatches(tcp)
	out.UDP = portMatches(udp)
	return out
}

func (t *translator) unknownRoute(tt *target, r rule) {
	t.fs.Errorf(tt.ref, fmt.Sprintf("spec.rules[%d].name", r.pos), ReasonUnknownRoute,
		"%s %s/%s does not exist; the rule matches nothing", r.kind, tt.ref.Namespace, r.name)
}

// ruleHTTPMatches appends the matches of g that rule r covers.
func (t *translator) ruleHTTPMatches(tt *target, r rule, g *httpGroup, acc []httpRef) []httpRef {
	if len(r.matches) == 0 {
		if len(g.matches) == 0 {
			t.fs.Warnf(tt.ref, fmt.Sprintf("spec.rules[%d].name", r.pos), ReasonNoMatches,
				"%s has no usable matches; the rule matches nothing", g.ref)
		}
		for i := range g.matches {
			acc = append(acc, httpRef{g, i})
		}
		return acc
	}
	for j, name := range r.matches {
		i, known := g.lookup(name)
		switch {
		case !known:
			t.fs.Errorf(tt.ref, fmt.Sprintf("spec.rules[%d].matches[%d]", r.pos, j), ReasonUnknownMatch,
				"%s has no match named %q; the rule matches nothing for it", g.ref, name)
		case i >= 0:
			acc = append(acc, httpRef{g, i})
		}
		// i < 0: the match is invalid and reported on the group.
	}
	return acc
}

// rulePortMatch reports whether rule r covers the single match of route pr.
// Its matches list, when given, must name that match.
func (t *translator) rulePortMatch(tt *target, r rule, pr *portRoute) bool {
	covered := len(r.matches) == 0
	for j, name := range r.matches {
		if name == "" || name == pr.match.Name {
			covered = true
			continue
		}
		t.fs.Errorf(tt.ref, fmt.Sprintf("spec.rules[%d].matches[%d]", r.pos, j), ReasonUnknownMatch,
			"%s has no match named %q (its match is named %q); the rule matches nothing for it", pr.ref, name, pr.match.Name)
	}
	return covered && pr.valid
}

func portMatches(rs []*portRoute) []mesh.PortMatch {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b *portRoute) int { return a.ref.Compare(b.ref) })
	rs = slices.Compact(rs)
	out := make([]mesh.PortMatch, len(rs))
	for i, r := range rs {
		out[i] = r.match
	}
	return out
}
