package smi

import (
	"fmt"
	"math"
	"slices"
	"strings"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/meshward/meshward/mesh"
)

// split is a TrafficSplit after the checks that need no other object.
type split struct {
	ref      mesh.ObjectRef
	root     string
	backends []backend
	// matched is true when spec.matches is not empty.
	matched bool
	// groups are the usable spec.matches entries.
	groups []groupRef
}

type backend struct {
	pos     int
	service string
	weight  int32
}

type groupRef struct {
	pos  int
	name string
}

// ValidateTrafficSplit checks a TrafficSplit on its own: it names a root
// service, its backends name services with weights in 0..2147483647 and
// appear once, at least one backend has a positive weight, and its matches
// refer to HTTPRouteGroups.
func ValidateTrafficSplit(ts *splitv1alpha4.TrafficSplit) []mesh.Finding {
	var fs findings
	if sp, ok := parseSplit(ts, &fs); ok {
		checkWeights(&sp, sp.backends, &fs)
	}
	return mesh.SortFindings(fs)
}

// parseSplit runs the per-object checks; ok is false when the split is
// ignored.
func parseSplit(ts *splitv1alpha4.TrafficSplit, fs *findings) (sp split, ok bool) {
	ns := ts.Namespace
	sp.ref = ref(kindTrafficSplit, ns, ts.Name)
	ok = true
	if ts.Spec.Service == "" {
		fs.Errorf(sp.ref, "spec.service", ReasonMissingName,
			"the TrafficSplit names no root service; it is ignored")
		ok = false
	} else {
		sp.root = serviceName(sp.ref, "spec.service", ts.Spec.Service, fs)
	}

	seen := make(map[string]int, len(ts.Spec.Backends))
	for i, b := range ts.Spec.Backends {
		field := fmt.Sprintf("spec.backends[%d]", i)
		if b.Service == "" {
			fs.Errorf(sp.ref, field+".service", ReasonMissingName, "backend names no service; the backend is dropped")
			continue
		}
		name := serviceName(sp.ref, field+".service", b.Service, fs)
		switch {
		case b.Weight < 0:
			fs.Errorf(sp.ref, field+".weight", ReasonInvalidWeight,
				"weight %d of backend %q is negative; the backend is dropped", b.Weight, name)
			continue
		case b.Weight > math.MaxInt32:
			fs.Errorf(sp.ref, field+".weight", ReasonInvalidWeight,
				"weight %d of backend %q exceeds %d; the backend is dropped", b.Weight, name, math.MaxInt32)
			continue
		}
		if p, dup := seen[name]; dup {
			fs.Errorf(sp.ref, field+".service", ReasonDuplicateBackend,
				"service %q is already a backend in spec.backends[%d]; this backend is dropped", name, p)
			continue
		}
		seen[name] = i
		sp.backends = append(sp.backends, backend{pos: i, service: name, weight: int32(b.Weight)})
	}

	sp.matched = len(ts.Spec.Matches) > 0
	for i, m := range ts.Spec.Matches {
		field := fmt.Sprintf("spec.matches[%d]", i)
		switch {
		case m.Kind != kindHTTPRouteGroup:
			fs.Errorf(sp.ref, field+".kind", ReasonUnsupportedKind,
				"match kind %q is not supported, only HTTPRouteGroup; it selects no request", m.Kind)
			continue
		case m.APIGroup != nil && *m.APIGroup != "" && *m.APIGroup != specsv1alpha4.SchemeGroupVersion.Group:
			fs.Errorf(sp.ref, field+".apiGroup", ReasonUnsupportedKind,
				"match apiGroup %q is not supported, only %s; it selects no request", *m.APIGroup, specsv1alpha4.SchemeGroupVersion.Group)
			continue
		case m.Name == "":
			fs.Errorf(sp.ref, field+".name", ReasonMissingName, "match names no HTTPRouteGroup; it selects no request")
			continue
		}
		sp.groups = append(sp.groups, groupRef{pos: i, name: m.Name})
	}
	return sp, ok
}

// serviceName returns the service name in a split's service field. A
// dotted name is read as <service>.<namespace>[.svc...]: the first label is
// the service, which always lives in the split's namespace.
func serviceName(sref mesh.ObjectRef, field, value string, fs *findings) string {
	name, rest, dotted := strings.Cut(value, ".")
	if !dotted {
		return value
	}
	ns, _, _ := strings.Cut(rest, ".")
	if ns != sref.Namespace {
		fs.Warnf(sref, field, ReasonForeignNamespace,
			"service %q names namespace %q, but a TrafficSplit only refers to services in its own namespace; using Service %s/%s",
			value, ns, sref.Namespace, name)
	}
	return name
}

// checkWeights reports a split whose backends cannot carry traffic; ok is
// false when the split is ignored.
func checkWeights(sp *split, backends []backend, fs *findings) bool {
	root := sp.ref.Namespace + "/" + sp.root
	if len(backends) == 0 {
		fs.Errorf(sp.ref, "spec.backends", ReasonNoBackends,
			"no usable backend remains; the TrafficSplit is ignored and traffic to Service %s goes to that service", root)
		return false
	}
	var total int64
	for _, b := range backends {
		total += int64(b.weight)
	}
	if total == 0 {
		fs.Errorf(sp.ref, "spec.backends", ReasonZeroTotalWeight,
			"the usable backends' weights sum to 0; the TrafficSplit is ignored and traffic to Service %s goes to that service", root)
		return false
	}
	return true
}

// candidate is a valid split waiting for conflict resolution.
type candidate struct {
	split   mesh.Split
	created int64 // Unix nanoseconds; 0 when unset
}

// trafficSplit translates a checked split; ok is false when it is ignored.
func (t *translator) trafficSplit(sp *split) (mesh.Split, bool) {
	ns := sp.ref.Namespace
	rootKey := mesh.ServiceKey{Namespace: ns, Name: sp.root}
	root := t.services[nsName(rootKey)]
	if root == nil {
		t.fs.Errorf(sp.ref, "spec.service", ReasonUnknownService,
			"Service %s does not exist; the TrafficSplit is ignored", rootKey)
		return mesh.Split{}, false
	}
	out := mesh.Split{Origin: sp.ref, Service: rootKey, Matched: sp.matched}
	kept := make([]backend, 0, len(sp.backends))
	for _, b := range sp.backends {
		field := fmt.Sprintf("spec.backends[%d].service", b.pos)
		key := mesh.ServiceKey{Namespace: ns, Name: b.service}
		svc := t.services[nsName(key)]
		if svc == nil {
			t.fs.Errorf(sp.ref, field, ReasonUnknownService,
				"Service %s does not exist; the backend is dropped", key)
			continue
		}
		if missing := missingPorts(root, svc); len(missing) > 0 {
			t.fs.Errorf(sp.ref, field, ReasonMissingPort,
				"Service %s has no port %s of root Service %s; the backend is dropped", key, missing, rootKey)
			continue
		}
		kept = append(kept, b)
	}
	if !checkWeights(sp, kept, &t.fs) {
		return mesh.Split{}, false
	}
	out.Backends = make([]mesh.SplitBackend, len(kept))
	for i, b := range kept {
		out.Backends[i] = mesh.SplitBackend{Service: mesh.ServiceKey{Namespace: ns, Name: b.service}, Weight: b.weight}
	}

	if sp.matched {
		var refs []httpRef
		for _, gr := range sp.groups {
			g := t.groups[nsName{ns, gr.name}]
			field := fmt.Sprintf("spec.matches[%d].name", gr.pos)
			if g == nil {
				t.fs.Errorf(sp.ref, field, ReasonUnknownRoute,
					"HTTPRouteGroup %s/%s does not exist; it selects no request", ns, gr.name)
				continue
			}
			if len(g.matches) == 0 {
				t.fs.Warnf(sp.ref, field, ReasonNoMatches,
					"%s has no usable matches; it selects no request", g.ref)
			}
			for i := range g.matches {
				refs = append(refs, httpRef{g, i})
			}
		}
		slices.SortFunc(refs, func(a, b httpRef) int {
			if a.g != b.g {
				return a.g.ref.Compare(b.g.ref)
			}
			return a.i - b.i
		})
		refs = slices.Compact(refs)
		if len(refs) == 0 {
			t.fs.Warnf(sp.ref, "spec.matches", ReasonNothingMatched,
				"no referenced HTTPRouteGroup match is usable; no request is split and all traffic goes to Service %s", rootKey)
		} else {
			out.Matches = make([]mesh.HTTPMatch, len(refs))
			for i, r := range refs {
				out.Matches[i] = r.g.matches[r.i]
			}
		}
	}
	return out, true
}

// missingPorts lists the port numbers of root that svc lacks, e.g. "80" or
// "80, 443".
func missingPorts(root, svc *mesh.Service) string {
	var missing []string
	for _, rp := range root.Ports {
		if !slices.ContainsFunc(svc.Ports, func(p mesh.ServicePort) bool { return p.Port == rp.Port }) {
			s := fmt.Sprint(rp.Port)
			if !slices.Contains(missing, s) {
				missing = append(missing, s)
			}
		}
	}
	return strings.Join(missing, ", ")
}

// resolveConflicts keeps the oldest valid split of each root service
// (creation time, then name) and reports the others.
func (t *translator) resolveConflicts(cands []candidate) []mesh.Split {
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := a.split.Service.Compare(b.split.Service); c != 0 {
			return c
		}
		if a.created != b.created {
			if a.created < b.created {
				return -1
			}
			return 1
		}
		return a.split.Origin.Compare(b.split.Origin)
	})
	out := make([]mesh.Split, 0, len(cands))
	for i := 0; i < len(cands); {
		winner := cands[i]
		out = append(out, winner.split)
		j := i + 1
		for ; j < len(cands) && cands[j].split.Service == winner.split.Service; j++ {
			loser := cands[j]
			how := "it is older"
			if loser.created == winner.created {
				how = "it is as old and its name sorts first"
			}
			t.fs.Errorf(loser.split.Origin, "spec.service", ReasonConflictingSplit,
				"TrafficSplit %s/%s also splits Service %s and wins (%s); this TrafficSplit is ignored",
				winner.split.Origin.Namespace, winner.split.Origin.Name, winner.split.Service, how)
		}
		i = j
	}
	return out
}
