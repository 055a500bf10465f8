package osm

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// nsName is the key of a namespaced object.
type nsName struct{ Namespace, Name string }

// translator holds the indexes built once per translation.
type translator struct {
	s       *snapshot.Snapshot
	m       *mesh.Model
	members map[string]bool
	// outside indexes the Services of non-member namespaces and their
	// endpoint addresses; built on first use.
	outside map[nsName][]string
	fs      findings
}

// Translate adds the IngressBackends of the snapshot's member namespaces to
// m, which the SMI translator has built from the same snapshot (it reads the
// model's namespaces and services), and appends the findings, keeping
// m.Findings sorted. See the package documentation for the semantics.
// Translate never modifies the snapshot.
func Translate(s *snapshot.Snapshot, m *mesh.Model) {
	if s == nil || m == nil || len(s.IngressBackends) == 0 {
		return
	}
	t := &translator{s: s, m: m, members: make(map[string]bool, len(m.Namespaces))}
	for _, ns := range m.Namespaces {
		t.members[ns] = true
	}

	all := make([]*parsed, 0, len(s.IngressBackends))
	seen := make(map[nsName]bool, len(s.IngressBackends))
	for i := range s.IngressBackends {
		ib := &s.IngressBackends[i]
		k := nsName{ib.Namespace, ib.Name}
		if seen[k] {
			continue
		}
		seen[k] = true
		if !t.members[ib.Namespace] {
			t.fs.Warnf(mesh.ObjectRef{Kind: kindIngressBackend, Namespace: ib.Namespace, Name: ib.Name},
				"metadata.namespace", ReasonNotInMesh, "namespace %q lacks label %s=%s; the IngressBackend is ignored",
				ib.Namespace, mesh.NamespaceLabel, m.Options.MeshName)
			continue
		}
		p := parse(ib, &t.fs)
		t.resolve(p)
		if finalize(p, &t.fs) {
			all = append(all, p)
		}
	}
	ingress := t.resolveConflicts(all)
	if len(ingress) > 0 {
		m.Ingress = append(m.Ingress, ingress...)
		slices.SortStableFunc(m.Ingress, func(a, b mesh.IngressBackend) int { return a.Origin.Compare(b.Origin) })
	}
	if len(t.fs) > 0 {
		m.Findings = mesh.SortFindings(append(m.Findings, t.fs...))
	}
}

// resolve checks the backends and Service sources of a member IngressBackend
// against the model's services, dropping those that name no Service.
func (t *translator) resolve(p *parsed) {
	p.backends = slices.DeleteFunc(p.backends, func(b backend) bool {
		svc := t.service(b.target.Service)
		if svc == nil {
			t.fs.Errorf(p.ref, backendField(b.idx, "name"), ReasonUnknownService,
				"Service %s does not exist in the mesh; the backend is ignored", b.target.Service)
			return true
		}
		t.checkTargetPort(p.ref, b, svc)
		return false
	})
	kept := p.sources[:0]
	for _, s := range p.sources {
		if s.src.Kind == mesh.IngressSourceService {
			addrs, ok := t.addresses(*s.src.Service)
			if !ok {
				t.fs.Errorf(p.ref, sourceField(s.idx, "name"), ReasonUnknownService,
					"Service %s does not exist; the source is ignored", s.src.Service)
				continue
			}
			if len(addrs) == 0 {
				t.fs.Warnf(p.ref, sourceField(s.idx, "name"), ReasonNoEndpoints,
					"Service %s has no endpoints, so it admits no address until it has some", s.src.Service)
			}
			s.src.Addresses = addrs
		}
		kept = append(kept, s)
	}
	p.sources = kept
}

// service returns the model's Service with that key, or nil.
func (t *translator) service(k mesh.ServiceKey) *mesh.Service {
	i, ok := slices.BinarySearchFunc(t.m.Services, k, func(s mesh.Service, k mesh.ServiceKey) int {
		return s.Compare(k)
	})
	if !ok {
		return nil
	}
	return &t.m.Services[i]
}

// addresses returns the sorted endpoint addresses of a Service, ready or
// not, and whether the Service exists. Services of member namespaces come
// from the model; those of other namespaces (an ingress controller usually
// runs outside the mesh) from the snapshot's Services and EndpointSlices.
func (t *translator) addresses(k mesh.ServiceKey) ([]string, bool) {
	if t.members[k.Namespace] {
		svc := t.service(k)
		if svc == nil {
			return nil, false
		}
		if len(svc.Endpoints) == 0 {
			return nil, true
		}
		out := make([]string, 0, len(svc.Endpoints))
		for _, e := range svc.Endpoints {
			out = append(out, e.Address)
		}
		// The model's endpoints are sorted by address and merged.
		return slices.Compact(out), true
	}
	if t.outside == nil {
		t.indexOutside()
	}
	addrs, ok := t.outside[nsName(k)]
	return addrs, ok
}

// indexOutside indexes the Services of non-member namespaces with the
// addresses of their EndpointSlices.
func (t *translator) indexOutside() {
	t.outside = make(map[nsName][]string)
	for i := range t.s.Services {
		svc := &t.s.Services[i]
		if k := (nsName{svc.Namespace, svc.Name}); !t.members[svc.Namespace] && t.outside[k] == nil {
			t.outside[k] = []string{}
		}
	}
	for i := range t.s.EndpointSlices {
		es := &t.s.EndpointSlices[i]
		k := nsName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}
		addrs, ok := t.outside[k]
		if !ok {
			continue
		}
		for j := range es.Endpoints {
			addrs = append(addrs, es.Endpoints[j].Addresses...)
		}
		t.outside[k] = addrs
	}
	for k, addrs := range t.outside {
		if len(addrs) == 0 {
			t.outside[k] = nil
			continue
		}
		slices.Sort(addrs)
		t.outside[k] = slices.Clip(slices.Compact(addrs))
	}
}

// checkTargetPort warns when no TCP port of the Service has the backend's
// port number as its target port. OSM's port.number is the target port (the
// port the pods listen on), a frequent mix-up with the Service port.
func (t *translator) checkTargetPort(ref mesh.ObjectRef, b backend, svc *mesh.Service) {
	n := b.target.Port
	var targets []string
	for _, sp := range svc.Ports {
		if sp.Protocol != string(corev1.ProtocolTCP) {
			continue
		}
		if sp.TargetPortName == "" {
			if sp.TargetPort == n {
				return
			}
			targets = append(targets, strconv.Itoa(int(sp.TargetPort)))
			continue
		}
		// A named target port is resolved by the endpoints' ports; when no
		// endpoint lists it, the number cannot be known.
		var numbers []int32
		for _, e := range svc.Endpoints {
			for _, ep := range e.Ports {
				if ep.Name == sp.Name {
					if ep.Port == n {
						return
					}
					numbers = append(numbers, ep.Port)
				}
			}
		}
		if len(numbers) == 0 {
			return
		}
		slices.Sort(numbers)
		names := make([]string, 0, len(numbers))
		for _, num := range slices.Compact(numbers) {
			names = append(names, strconv.Itoa(int(num)))
		}
		targets = append(targets, fmt.Sprintf("%s (%s)", strings.Join(names, ", "), sp.TargetPortName))
	}
	field := backendField(b.idx, "port.number")
	for _, sp := range svc.Ports {
		if sp.Port == n && sp.Protocol == string(corev1.ProtocolTCP) {
			target := sp.TargetPortName
			if target == "" {
				target = strconv.Itoa(int(sp.TargetPort))
			}
			t.fs.Warnf(ref, field, ReasonUnknownTargetPort,
				"Service %s has no target port %d: %d is its service port, which forwards to target port %s, and port.number means the target port (the port the pods listen on); the backend is kept as written",
				svc.ServiceKey, n, n, target)
			return
		}
	}
	have := "it has no TCP ports"
	if len(targets) > 0 {
		have = "its target ports are " + strings.Join(slices.Compact(targets), ", ")
	}
	t.fs.Warnf(ref, field, ReasonUnknownTargetPort,
		"Service %s has no target port %d (%s); the backend is kept as written", svc.ServiceKey, n, have)
}

// resolveConflicts keeps, for each backend Service port named by several
// IngressBackends with different protocol or TLS settings, the oldest
// IngressBackend's backend (creation time, then name; an unset creation
// time counts as oldest, as for TrafficSplits); the others are
// dropped and reported. IngressBackends that agree are combined by union.
func (t *translator) resolveConflicts(all []*parsed) []mesh.IngressBackend {
	if len(all) == 0 {
		return nil
	}
	slices.SortStableFunc(all, func(a, b *parsed) int {
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return a.ref.Compare(b.ref)
	})
	type servicePort struct {
		svc  mesh.ServiceKey
		port int32
	}
	type owner struct {
		ref    mesh.ObjectRef
		target mesh.IngressTarget
	}
	owners := make(map[servicePort]owner)
	out := make([]mesh.IngressBackend, 0, len(all))
	for _, p := range all {
		ib := mesh.IngressBackend{Origin: p.ref}
		for _, b := range p.backends {
			k := servicePort{b.target.Service, b.target.Port}
			if o, taken := owners[k]; taken {
				if !sameSettings(o.target, b.target) {
					t.fs.Errorf(p.ref, backendField(b.idx, ""), ReasonConflictingBackend,
						"the older %s admits to Service %s port %d as %s, but this backend asks for %s; the backend is ignored",
						o.ref, b.target.Service, b.target.Port, describe(o.target), describe(b.target))
					continue
				}
			} else {
				owners[k] = owner{ref: p.ref, target: b.target}
			}
			ib.Backends = append(ib.Backends, b.target)
		}
		if len(ib.Backends) == 0 {
			continue
		}
		ib.Sources = make([]mesh.IngressSource, len(p.sources))
		for i, s := range p.sources {
			ib.Sources[i] = s.src
		}
		out = append(out, ib)
	}
	return out
}

func sameSettings(a, b mesh.IngressTarget) bool {
	return a.Protocol == b.Protocol && a.SkipClientCertValidation == b.SkipClientCertValidation &&
		slices.Equal(a.SNIHosts, b.SNIHosts)
}

// describe renders a backend's protocol and TLS settings.
func describe(t mesh.IngressTarget) string {
	if t.Protocol != mesh.IngressHTTPS {
		return t.Protocol
	}
	var parts []string
	if t.SkipClientCertValidation {
		parts = append(parts, "client certificates not validated")
	} else {
		parts = append(parts, "client certificates validated")
	}
	if len(t.SNIHosts) > 0 {
		parts = append(parts, "SNI hosts "+strings.Join(t.SNIHosts, ", "))
	} else {
		parts = append(parts, "any SNI host")
	}
	return fmt.Sprintf("https (%s)", strings.Join(parts, ", "))
}
