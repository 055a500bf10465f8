package smi

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// translateServices converts the member Services with their endpoints.
func (t *translator) translateServices(s *snapshot.Snapshot) []mesh.Service {
	slicesBySvc := make(map[nsName][]*discoveryv1.EndpointSlice, len(s.Services))
	for i := range s.EndpointSlices {
		es := &s.EndpointSlices[i]
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" || !t.members[es.Namespace] {
			continue
		}
		k := keyOf(es.Namespace, name)
		slicesBySvc[k] = append(slicesBySvc[k], es)
	}

	svcs := make([]*corev1.Service, 0, len(s.Services))
	for i := range s.Services {
		if t.members[s.Services[i].Namespace] {
			svcs = append(svcs, &s.Services[i])
		}
	}
	slices.SortStableFunc(svcs, func(a, b *corev1.Service) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	svcs = slices.CompactFunc(svcs, func(a, b *corev1.Service) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name
	})

	t.services = make(map[nsName]*mesh.Service, len(svcs))
	if len(svcs) == 0 {
		return nil
	}
	out := make([]mesh.Service, len(svcs))
	for i, svc := range svcs {
		k := keyOf(svc.Namespace, svc.Name)
		out[i] = t.service(svc, slicesBySvc[k])
		t.services[k] = &out[i]
	}
	return out
}

// service converts one Service; eps are the EndpointSlices labelled with its
// name.
func (t *translator) service(svc *corev1.Service, eps []*discoveryv1.EndpointSlice) mesh.Service {
	out := mesh.Service{ServiceKey: mesh.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}}
	if len(svc.Spec.Ports) > 0 {
		out.Ports = make([]mesh.ServicePort, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			sp := mesh.ServicePort{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol)}
			if sp.Protocol == "" {
				sp.Protocol = string(corev1.ProtocolTCP)
			}
			switch {
			case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
				sp.TargetPortName = p.TargetPort.StrVal
			case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0:
				sp.TargetPort = p.TargetPort.IntVal
			default:
				sp.TargetPort = p.Port
			}
			if p.AppProtocol != nil {
				sp.AppProtocol = *p.AppProtocol
			}
			out.Ports[i] = sp
		}
		slices.SortFunc(out.Ports, func(a, b mesh.ServicePort) int {
			if a.Port != b.Port {
				return int(a.Port) - int(b.Port)
			}
			if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	out.Endpoints, out.Identities = t.endpoints(svc.Namespace, eps)
	return out
}

// endpoints converts a service's EndpointSlices into endpoints sorted by
// address, and the sorted identities behind them. An address listed more
// than once is merged into its first listing (slices in name order).
func (t *translator) endpoints(namespace string, eps []*discoveryv1.EndpointSlice) ([]mesh.Endpoint, []mesh.Identity) {
	if len(eps) > 1 {
		slices.SortStableFunc(eps, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	}
	n := 0
	for _, es := range eps {
		for j := range es.Endpoints {
			n += len(es.Endpoints[j].Addresses)
		}
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]mesh.Endpoint, 0, n)
	// ids backs the endpoints' identity pointers; it is never reordered.
	ids := make([]mesh.Identity, 0, n)
	nsPods := t.pods[namespace]
	for _, es := range eps {
		ports := slicePorts(es)
		for j := range es.Endpoints {
			e := &es.Endpoints[j]
			ep := mesh.Endpoint{Ports: ports, Ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.Zone != nil {
				ep.Zone = *e.Zone
			}
			if r := e.TargetRef; r != nil && r.Kind == "Pod" {
				ep.Pod = r.Name
				var p *corev1.Pod
				if r.Namespace == "" || r.Namespace == namespace {
					p = nsPods[r.Name]
				} else {
					p = t.pod(r.Namespace, r.Name)
				}
				if p != nil {
					ids = append(ids, snapshot.PodIdentity(p))
					ep.Identity = &ids[len(ids)-1]
				}
			}
			for _, addr := range e.Addresses {
				ep.Address = addr
				out = append(out, ep)
			}
		}
	}
	if !slices.IsSortedFunc(out, compareAddress) {
		slices.SortStableFunc(out, compareAddress)
	}
	merged := out[:1]
	for i := 1; i < len(out); i++ {
		last := &merged[len(merged)-1]
		if out[i].Address == last.Address {
			mergeEndpoint(last, &out[i])
			continue
		}
		merged = append(merged, out[i])
	}
	out = slices.Clip(merged)
	if len(ids) == 0 {
		return out, nil
	}
	var distinct []mesh.Identity
	for i := range out {
		if id := out[i].Identity; id != nil && !slices.Contains(distinct, *id) {
			distinct = append(distinct, *id)
		}
	}
	slices.SortFunc(distinct, mesh.Identity.Compare)
	return out, distinct
}

func compareAddress(a, b mesh.Endpoint) int { return strings.Compare(a.Address, b.Address) }

// mergeEndpoint adds a second listing of an address to its endpoint: the
// union of their ports; ready when either is; zone, pod and identity from
// the first listing that has them.
func mergeEndpoint(e, o *mesh.Endpoint) {
	if len(o.Ports) > 0 {
		all := make([]mesh.EndpointPort, 0, len(e.Ports)+len(o.Ports))
		all = append(append(all, e.Ports...), o.Ports...)
		slices.SortFunc(all, compareEndpointPort)
		e.Ports = slices.Clip(slices.Compact(all))
	}
	e.Ready = e.Ready || o.Ready
	if e.Zone == "" {
		e.Zone = o.Zone
	}
	if e.Pod == "" {
		e.Pod = o.Pod
	}
	if e.Identity == nil {
		e.Identity = o.Identity
	}
}

func compareEndpointPort(a, b mesh.EndpointPort) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	return strings.Compare(a.Protocol, b.Protocol)
}

// slicePorts converts a slice's ports, sorted; ports without a number are
// left out.
func slicePorts(es *discoveryv1.EndpointSlice) []mesh.EndpointPort {
	if len(es.Ports) == 0 {
		return nil
	}
	out := make([]mesh.EndpointPort, 0, len(es.Ports))
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		ep := mesh.EndpointPort{Port: *p.Port, Protocol: string(corev1.ProtocolTCP)}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		if p.Protocol != nil && *p.Protocol != "" {
			ep.Protocol = string(*p.Protocol)
		}
		out = append(out, ep)
	}
	slices.SortFunc(out, compareEndpointPort)
	return slices.Clip(slices.Compact(out))
}
