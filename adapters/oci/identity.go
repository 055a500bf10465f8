package oci

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// translateBindings binds the pods each VirtualDeploymentBinding selects
// to its VirtualDeployment.
func (t *translator) translateBindings() {
	for _, o := range members(t, KindVirtualDeploymentBinding, t.s.VirtualDeploymentBindings, func(o *servicemeshv1beta1.VirtualDeploymentBinding) *metav1.ObjectMeta {
		return &o.ObjectMeta
	}) {
		r := ref(KindVirtualDeploymentBinding, o.Namespace, o.Name)
		vd, ok := lookup(t, t.vds, r, "spec.virtualDeployment", KindVirtualDeployment, o.Spec.VirtualDeployment, "the binding is ignored")
		if !ok {
			continue
		}
		target := o.Spec.Target.Service
		if target.Ref.Name == "" {
			t.fs.Errorf(r, "spec.target.service.ref.name", ReasonInvalidReference, "names no Service; the binding is ignored")
			continue
		}
		key := nsName{target.Ref.Namespace, target.Ref.Name}
		if key.Namespace == "" {
			key.Namespace = o.Namespace
		}
		svc := t.services[key]
		if svc == nil {
			if !t.members[key.Namespace] {
				t.fs.Errorf(r, "spec.target.service.ref", ReasonUnknownService,
					"Service %s is in namespace %q, which lacks label %s=%s; the binding is ignored",
					key, key.Namespace, mesh.NamespaceLabel, t.m.Options.MeshName)
			} else {
				t.fs.Errorf(r, "spec.target.service.ref", ReasonUnknownService,
					"Service %s does not exist; the binding is ignored", key)
			}
			continue
		}
		vd.bindings = append(vd.bindings, r)
		vd.services = append(vd.services, mesh.ServiceKey{Namespace: key.Namespace, Name: key.Name})
		ids := t.boundIdentities(svc, target.MatchLabels)
		if len(ids) == 0 {
			t.fs.Warnf(r, "spec.target.service", ReasonNoPods,
				"no pod of Service %s%s is known yet; the binding gives %s no identity until one is",
				key, describeLabels(target.MatchLabels), vd.ref)
		}
		vd.ids = append(vd.ids, ids...)
		if len(target.MatchLabels) > 0 {
			vd.labelled = true
		}
	}
}

// boundIdentities returns the identities of the pods of svc that carry
// every label of match: the pods its selector selects, or, for a Service
// without a selector, the pods behind its endpoints.
func (t *translator) boundIdentities(svc *corev1.Service, match map[string]string) []mesh.Identity {
	var ids []mesh.Identity
	if len(svc.Spec.Selector) > 0 {
		for _, p := range t.selectPods(svc.Namespace, svc.Spec.Selector) {
			if hasLabels(p.Labels, svc.Spec.Selector) && hasLabels(p.Labels, match) {
				ids = append(ids, snapshot.PodIdentity(p))
			}
		}
	} else if ms := t.modelService(mesh.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}); ms != nil {
		for _, e := range ms.Endpoints {
			if e.Pod == "" {
				continue
			}
			p := t.podsByName[nsName{svc.Namespace, e.Pod}]
			switch {
			case p != nil && hasLabels(p.Labels, match):
				ids = append(ids, snapshot.PodIdentity(p))
			case p == nil && len(match) == 0 && e.Identity != nil:
				ids = append(ids, *e.Identity)
			}
		}
	}
	slices.SortFunc(ids, mesh.Identity.Compare)
	return slices.Compact(ids)
}

// modelService returns the model's Service with that key, or nil.
func (t *translator) modelService(k mesh.ServiceKey) *mesh.Service {
	i, ok := slices.BinarySearchFunc(t.m.Services, k, func(s mesh.Service, k mesh.ServiceKey) int { return s.Compare(k) })
	if !ok {
		return nil
	}
	return &t.m.Services[i]
}

func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func describeLabels(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	kv := make([]string, 0, len(l))
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return " with labels " + strings.Join(kv, ",")
}

// finishDeployments sorts what the bindings gave each VirtualDeployment and
// reports VirtualDeployments without identity, and identities shared by
// VirtualDeployments of different VirtualServices (access allowed to one
// then applies to the other).
func (t *translator) finishDeployments() {
	owners := map[mesh.Identity][]*vdState{}
	for _, k := range sortedKeys(t.vds) {
		vd := t.vds[k]
		slices.SortFunc(vd.services, mesh.ServiceKey.Compare)
		vd.services = slices.Compact(vd.services)
		slices.SortFunc(vd.ids, mesh.Identity.Compare)
		vd.ids = slices.Compact(vd.ids)
		slices.SortFunc(vd.bindings, mesh.ObjectRef.Compare)
		switch {
		case len(vd.bindings) == 0:
			t.fs.Warnf(vd.ref, "", ReasonNotBound,
				"no VirtualDeploymentBinding binds pods to the VirtualDeployment; it has no identity, and AccessPolicies give it no access")
		case len(vd.ids) == 0:
			t.fs.Warnf(vd.ref, "", ReasonNoPods,
				"its bindings select no known pod yet; it has no identity, and AccessPolicies give it no access until they do")
		}
		for _, id := range vd.ids {
			owners[id] = append(owners[id], vd)
		}
	}
	for id, vds := range owners {
		for _, vd := range vds {
			for _, other := range vds {
				if other.vs != vd.vs {
					t.fs.Warnf(vd.ref, "", ReasonSharedIdentity,
						"ServiceAccount %s is also an identity of %s, of %s; access allowed to or from either applies to both",
						id, other.ref, other.vs.ref)
				}
			}
		}
	}
}

// gatewayIdentities returns the identities of the pods of an
// IngressGatewayDeployment: the member pods of its namespace labelled
// servicemeshv1beta1.LabelIngressGatewayDeployment with its name.
func (t *translator) gatewayIdentities(namespace, name string) []mesh.Identity {
	var ids []mesh.Identity
	for _, p := range t.pods[namespace] {
		if p.Labels[servicemeshv1beta1.LabelIngressGatewayDeployment] == name {
			ids = append(ids, snapshot.PodIdentity(p))
		}
	}
	slices.SortFunc(ids, mesh.Identity.Compare)
	return slices.Compact(ids)
}

// translateGateways indexes the IngressGateways whose Mesh is usable, with
// their hosts and the identities of their IngressGatewayDeployments' pods.
func (t *translator) translateGateways() {
	t.gws = make(map[nsName]*gwState)
	for _, o := range members(t, KindIngressGateway, t.s.IngressGateways, func(o *servicemeshv1beta1.IngressGateway) *metav1.ObjectMeta { return &o.ObjectMeta }) {
		r := ref(KindIngressGateway, o.Namespace, o.Name)
		ms, ok := lookup(t, t.meshes, r, "spec.mesh", KindMesh, o.Spec.Mesh, "the IngressGateway is ignored")
		if !ok {
			continue
		}
		gw := &gwState{obj: o, ref: r, mesh: ms, out: mesh.Gateway{Origin: r, Mesh: ms.ref}}
		seen := map[string]bool{}
		for i, h := range o.Spec.Hosts {
			if seen[h.Name] {
				t.fs.Errorf(r, fmt.Sprintf("spec.hosts[%d].name", i), ReasonInvalidValue,
					"host name %q is used by an earlier host; this host is ignored", h.Name)
				continue
			}
			seen[h.Name] = true
			gh := mesh.GatewayHost{Name: h.Name, Hostnames: slices.Clone(h.Hostnames)}
			for j, l := range h.Listeners {
				ml := mesh.GatewayListener{Port: l.Port}
				switch l.Protocol {
				case servicemeshv1beta1.GatewayHTTP:
					ml.Protocol = mesh.RouteHTTP
				case servicemeshv1beta1.GatewayTCP:
					ml.Protocol = mesh.RouteTCP
				case servicemeshv1beta1.GatewayTLSPassthrough:
					ml.Protocol = mesh.RouteTLSPassthrough
				default:
					t.fs.Errorf(r, fmt.Sprintf("spec.hosts[%d].listeners[%d].protocol", i, j), ReasonInvalidValue,
						"protocol %q is not HTTP, TCP or TLS_PASSTHROUGH; the listener is ignored", l.Protocol)
					continue
				}
				field := fmt.Sprintf("spec.hosts[%d].listeners[%d]", i, j)
				if l.Port == mesh.SidecarOutboundPort || l.Port == mesh.SidecarInboundPort {
					t.fs.Errorf(r, field+".port", ReasonReservedPort,
						"port %d is taken by the gateway pod's own sidecar listeners (%d and %d); the listener is ignored", l.Port, mesh.SidecarOutboundPort, mesh.SidecarInboundPort)
					continue
				}
				if l.TLS != nil {
					ml.TLSMode = string(l.TLS.Mode)
				}
				if ml.TLSMode == "TLS" || ml.TLSMode == "MUTUAL_TLS" {
					t.fs.Warnf(r, field+".tls.mode", ReasonTLSNotServed,
						"TLS mode %s needs a certificate for the host's names, which meshward does not issue yet: the listener on port %d is not served", ml.TLSMode, l.Port)
				}
				gh.Listeners = append(gh.Listeners, ml)
			}
			gw.out.Hosts = append(gw.out.Hosts, gh)
		}
		t.gws[nsName{o.Namespace, o.Name}] = gw
	}
	for _, o := range members(t, KindIngressGatewayDeployment, t.s.IngressGatewayDeployments, func(o *servicemeshv1beta1.IngressGatewayDeployment) *metav1.ObjectMeta {
		return &o.ObjectMeta
	}) {
		r := ref(KindIngressGatewayDeployment, o.Namespace, o.Name)
		gw, ok := lookup(t, t.gws, r, "spec.ingressGateway", KindIngressGateway, o.Spec.IngressGateway, "the IngressGatewayDeployment is ignored")
		if !ok {
			continue
		}
		gw.out.Deployments = append(gw.out.Deployments, r)
		ids := t.gatewayIdentities(o.Namespace, o.Name)
		if len(ids) == 0 {
			t.fs.Warnf(r, "", ReasonNoPods,
				"no pod labelled %s=%s is known yet; %s has no identity from it until one is",
				servicemeshv1beta1.LabelIngressGatewayDeployment, o.Name, gw.ref)
		}
		gw.out.Identities = append(gw.out.Identities, ids...)
	}
	for _, gw := range t.gws {
		slices.SortFunc(gw.out.Identities, mesh.Identity.Compare)
		gw.out.Identities = slices.Compact(gw.out.Identities)
	}
}
