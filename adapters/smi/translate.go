package smi

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// nsName is the key of a namespaced object.
type nsName struct{ Namespace, Name string }

func keyOf(namespace, name string) nsName { return nsName{namespace, name} }

// translator holds the indexes built once per translation.
type translator struct {
	opts    mesh.Options
	members map[string]bool
	// identities are the mesh's identities, sorted.
	identities []mesh.Identity
	// pods indexes the member pods by namespace, then name.
	pods     map[string]map[string]*corev1.Pod
	services map[nsName]*mesh.Service
	groups   map[nsName]*httpGroup
	tcp      map[nsName]*portRoute
	udp      map[nsName]*portRoute
	regexps  regexCache
	fs       findings
}

// Translate builds the mesh model of a snapshot; see the package
// documentation for the semantics. The model shares no memory with the
// snapshot, but equal HTTP matches used by several access rules or splits
// share their slices: treat the model as read-only.
func Translate(s *snapshot.Snapshot, opts mesh.Options) *mesh.Model {
	if s == nil {
		s = &snapshot.Snapshot{}
	}
	t := &translator{opts: opts, regexps: make(regexCache)}
	m := &mesh.Model{Options: opts}

	m.Namespaces = t.membership(s)
	m.Identities = t.collectIdentities(s)
	m.Services = t.translateServices(s)
	t.resolveRoutes(s)
	m.Access = t.translateTargets(s)
	m.Splits = t.translateSplits(s)

	all := make([]mesh.Finding, 0, len(s.Findings)+len(t.fs))
	all = append(all, s.Findings...)
	all = append(all, t.fs...)
	if len(all) > 0 {
		m.Findings = mesh.SortFindings(all)
	}
	return m
}

// membership indexes the member namespaces and returns their sorted names.
func (t *translator) membership(s *snapshot.Snapshot) []string {
	t.members = make(map[string]bool)
	var names []string
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		if v, ok := ns.Labels[mesh.NamespaceLabel]; ok && v == t.opts.MeshName && !t.members[ns.Name] {
			t.members[ns.Name] = true
			names = append(names, ns.Name)
		}
	}
	slices.Sort(names)
	return names
}

// inMesh reports whether an SMI object's namespace is a member, and reports
// the object when it is not.
func (t *translator) inMesh(kind, namespace, name string) bool {
	if t.members[namespace] {
		return true
	}
	t.fs.Warnf(ref(kind, namespace, name), "metadata.namespace", ReasonNotInMesh,
		"namespace %q lacks label %s=%s; the %s is ignored", namespace, mesh.NamespaceLabel, t.opts.MeshName, kind)
	return false
}

// collectIdentities indexes the member pods and returns the sorted
// identities of the mesh.
func (t *translator) collectIdentities(s *snapshot.Snapshot) []mesh.Identity {
	t.pods = make(map[string]map[string]*corev1.Pod, len(t.members))
	ids := make([]mesh.Identity, 0, len(s.ServiceAccounts)+len(s.Pods)/4)
	for i := range s.ServiceAccounts {
		sa := &s.ServiceAccounts[i]
		if t.members[sa.Namespace] {
			ids = append(ids, mesh.Identity{Namespace: sa.Namespace, Name: sa.Name})
		}
	}
	var (
		nsPods map[string]*corev1.Pod
		curNS  string
		last   mesh.Identity
	)
	for i := range s.Pods {
		p := &s.Pods[i]
		if nsPods == nil || p.Namespace != curNS {
			if !t.members[p.Namespace] {
				continue
			}
			curNS = p.Namespace
			if nsPods = t.pods[curNS]; nsPods == nil {
				nsPods = make(map[string]*corev1.Pod)
				t.pods[curNS] = nsPods
			}
		}
		if _, dup := nsPods[p.Name]; !dup {
			nsPods[p.Name] = p
		}
		// Pods of one workload usually come together: list each run once.
		if id := snapshot.PodIdentity(p); id != last {
			ids = append(ids, id)
			last = id
		}
	}
	slices.SortFunc(ids, mesh.Identity.Compare)
	t.identities = slices.Clip(slices.Compact(ids))
	if len(t.identities) == 0 {
		return nil
	}
	return t.identities
}

// knownIdentity reports whether a ServiceAccount is known in the mesh.
func (t *translator) knownIdentity(id mesh.Identity) bool {
	_, ok := slices.BinarySearchFunc(t.identities, id, mesh.Identity.Compare)
	return ok
}

// pod returns the member pod of that name, or nil.
func (t *translator) pod(namespace, name string) *corev1.Pod {
	return t.pods[namespace][name]
}

// resolveRoutes resolves the route objects of member namespaces once,
// reporting their problems once each.
func (t *translator) resolveRoutes(s *snapshot.Snapshot) {
	t.groups = make(map[nsName]*httpGroup, len(s.HTTPRouteGroups))
	for i := range s.HTTPRouteGroups {
		g := &s.HTTPRouteGroups[i]
		if !t.inMesh(kindHTTPRouteGroup, g.Namespace, g.Name) {
			continue
		}
		k := keyOf(g.Namespace, g.Name)
		if _, dup := t.groups[k]; !dup {
			t.groups[k] = resolveHTTPGroup(g, t.regexps, &t.fs)
		}
	}
	t.tcp = make(map[nsName]*portRoute, len(s.TCPRoutes))
	for i := range s.TCPRoutes {
		r := &s.TCPRoutes[i]
		if !t.inMesh(kindTCPRoute, r.Namespace, r.Name) {
			continue
		}
		k := keyOf(r.Namespace, r.Name)
		if _, dup := t.tcp[k]; !dup {
			t.tcp[k] = resolvePortRoute(ref(kindTCPRoute, r.Namespace, r.Name), r.Spec.Matches.Name, r.Spec.Matches.Ports, &t.fs)
		}
	}
	t.udp = make(map[nsName]*portRoute, len(s.UDPRoutes))
	for i := range s.UDPRoutes {
		r := &s.UDPRoutes[i]
		if !t.inMesh(kindUDPRoute, r.Namespace, r.Name) {
			continue
		}
		k := keyOf(r.Namespace, r.Name)
		if _, dup := t.udp[k]; !dup {
			t.udp[k] = resolvePortRoute(ref(kindUDPRoute, r.Namespace, r.Name), r.Spec.Matches.Name, r.Spec.Matches.Ports, &t.fs)
		}
	}
}

// translateTargets converts the member TrafficTargets into access rules
// sorted by destination, then origin.
func (t *translator) translateTargets(s *snapshot.Snapshot) []mesh.AccessRule {
	out := make([]mesh.AccessRule, 0, len(s.TrafficTargets))
	for i := range s.TrafficTargets {
		tt := &s.TrafficTargets[i]
		if !t.inMesh(kindTrafficTarget, tt.Namespace, tt.Name) {
			continue
		}
		parsed, ok := parseTarget(tt, &t.fs)
		if !ok {
			continue
		}
		out = append(out, t.accessRule(&parsed))
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortStableFunc(out, func(a, b mesh.AccessRule) int {
		if c := a.Destination.Compare(b.Destination); c != 0 {
			return c
		}
		return a.Origin.Compare(b.Origin)
	})
	return slices.CompactFunc(out, func(a, b mesh.AccessRule) bool { return a.Origin == b.Origin })
}

// translateSplits converts the member TrafficSplits and keeps one per root
// service, sorted by root service.
func (t *translator) translateSplits(s *snapshot.Snapshot) []mesh.Split {
	cands := make([]candidate, 0, len(s.TrafficSplits))
	seen := make(map[nsName]bool, len(s.TrafficSplits))
	for i := range s.TrafficSplits {
		ts := &s.TrafficSplits[i]
		if !t.inMesh(kindTrafficSplit, ts.Namespace, ts.Name) {
			continue
		}
		k := keyOf(ts.Namespace, ts.Name)
		if seen[k] {
			continue
		}
		seen[k] = true
		parsed, ok := parseSplit(ts, &t.fs)
		if !ok {
			continue
		}
		sp, ok := t.trafficSplit(&parsed)
		if !ok {
			continue
		}
		var created int64
		if !ts.CreationTimestamp.IsZero() {
			created = ts.CreationTimestamp.UnixNano()
		}
		cands = append(cands, candidate{split: sp, created: created})
	}
	if len(cands) == 0 {
		return nil
	}
	return t.resolveConflicts(cands)
}
