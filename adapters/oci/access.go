package oci

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// translatePolicies converts the AccessPolicies of usable Meshes into access
// rules (between identities of the mesh) and egress rules (to external
// services), each in a deterministic order.
func (t *translator) translatePolicies() ([]mesh.AccessRule, []mesh.EgressRule) {
	var access []mesh.AccessRule
	var egress []mesh.EgressRule
	for _, o := range members(t, KindAccessPolicy, t.s.AccessPolicies, func(o *servicemeshv1beta1.AccessPolicy) *metav1.ObjectMeta { return &o.ObjectMeta }) {
		r := ref(KindAccessPolicy, o.Namespace, o.Name)
		ms, ok := lookup(t, t.meshes, r, "spec.mesh", KindMesh, o.Spec.Mesh, "the AccessPolicy is ignored")
		if !ok {
			continue
		}
		if len(o.Spec.Rules) == 0 {
			t.fs.Warnf(r, "spec.rules", ReasonInvalidRule, "the AccessPolicy has no rules; it allows nothing")
		}
		for i := range o.Spec.Rules {
			a, e := t.policyRule(r, ms, i, &o.Spec.Rules[i])
			access = append(access, a...)
			if e != nil {
				egress = append(egress, *e)
			}
		}
	}
	return access, egress
}

// ruleName names the i-th rule of an AccessPolicy in the model.
func ruleName(i int) string { return fmt.Sprintf("rules[%d]", i) }

// policyRule converts one rule: one access rule per destination identity,
// allowing every HTTP request and every TCP port, or one egress rule.
func (t *translator) policyRule(ap mesh.ObjectRef, ms *meshState, i int, rule *servicemeshv1beta1.AccessPolicyRule) ([]mesh.AccessRule, *mesh.EgressRule) {
	field := "spec." + ruleName(i)
	if rule.Action != servicemeshv1beta1.ActionAllow {
		t.fs.Errorf(ap, field+".action", ReasonUnsupportedAction,
			"action %q is not supported, only ALLOW; the rule is ignored", rule.Action)
		return nil, nil
	}
	sources, ok := t.sourceIdentities(ap, ms, field+".source", &rule.Source)
	if !ok {
		return nil, nil
	}
	d := &rule.Destination
	dfield := field + ".destination"
	if n := count(d.AllVirtualServices != nil, d.VirtualService != nil, d.ExternalService != nil); n != 1 {
		t.fs.Errorf(ap, dfield, ReasonInvalidDestination,
			"sets %d of allVirtualServices, virtualService and externalService, and exactly one must be set; the rule is ignored", n)
		return nil, nil
	}
	if d.ExternalService != nil {
		e, ok := t.egressRule(ap, dfield+".externalService", d.ExternalService)
		if !ok {
			return nil, nil
		}
		e.Name = ruleName(i)
		e.Sources = sources
		if len(sources) == 0 {
			t.fs.Warnf(ap, field+".source", ReasonNoIdentities, "the source has no identity yet; the rule allows nothing until it has")
		}
		return nil, &e
	}
	var dests []mesh.Identity
	if d.AllVirtualServices != nil {
		dests = t.meshIdentities(ms)
	} else {
		vs, ok := t.policyVirtualService(ap, ms, dfield+".virtualService", *d.VirtualService)
		if !ok {
			return nil, nil
		}
		dests = vsIdentities(vs)
	}
	switch {
	case len(dests) == 0:
		t.fs.Warnf(ap, dfield, ReasonNoIdentities, "the destination has no identity yet; the rule allows nothing until it has")
		return nil, nil
	case len(sources) == 0:
		t.fs.Warnf(ap, field+".source", ReasonNoIdentities, "the source has no identity yet; the rule allows nothing until it has")
		return nil, nil
	}
	name := ruleName(i)
	http := []mesh.HTTPMatch{{Group: ap, Name: name}}
	tcp := []mesh.PortMatch{{Route: ap, Name: name}}
	out := make([]mesh.AccessRule, len(dests))
	for j, id := range dests {
		out[j] = mesh.AccessRule{Origin: ap, Destination: id, Sources: sources, HTTP: http, TCP: tcp}
	}
	return out, nil
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// sourceIdentities resolves the source of a rule into sorted identities;
// ok is false when the rule is ignored.
func (t *translator) sourceIdentities(ap mesh.ObjectRef, ms *meshState, field string, s *servicemeshv1beta1.TrafficSource) ([]mesh.Identity, bool) {
	if n := count(s.AllVirtualServices != nil, s.VirtualService != nil, s.IngressGateway != nil); n != 1 {
		t.fs.Errorf(ap, field, ReasonInvalidSource,
			"sets %d of allVirtualServices, virtualService and ingressGateway, and exactly one must be set; the rule is ignored", n)
		return nil, false
	}
	switch {
	case s.AllVirtualServices != nil:
		return t.meshIdentities(ms), true
	case s.VirtualService != nil:
		vs, ok := t.policyVirtualService(ap, ms, field+".virtualService", *s.VirtualService)
		if !ok {
			return nil, false
		}
		return vsIdentities(vs), true
	}
	gw, ok := lookup(t, t.gws, ap, field+".ingressGateway", KindIngressGateway, *s.IngressGateway, "the rule is ignored")
	if !ok {
		return nil, false
	}
	if gw.mesh != ms {
		t.fs.Errorf(ap, field+".ingressGateway", ReasonWrongMesh,
			"%s belongs to %s, not to the AccessPolicy's %s; the rule is ignored", gw.ref, gw.mesh.ref, ms.ref)
		return nil, false
	}
	return slices.Clone(gw.out.Identities), true
}

// policyVirtualService resolves a VirtualService of the policy's Mesh.
func (t *translator) policyVirtualService(ap mesh.ObjectRef, ms *meshState, field string, r servicemeshv1beta1.RefOrID) (*vsState, bool) {
	vs, ok := lookup(t, t.vss, ap, field, KindVirtualService, r, "the rule is ignored")
	if !ok {
		return nil, false
	}
	if vs.mesh != ms {
		t.fs.Errorf(ap, field, ReasonWrongMesh,
			"%s belongs to %s, not to the AccessPolicy's %s; the rule is ignored", vs.ref, vs.mesh.ref, ms.ref)
		return nil, false
	}
	return vs, true
}

// vsIdentities are the identities of every VirtualDeployment of a
// VirtualService, sorted.
func vsIdentities(vs *vsState) []mesh.Identity {
	var ids []mesh.Identity
	for _, vd := range vs.vds {
		ids = append(ids, vd.ids...)
	}
	slices.SortFunc(ids, mesh.Identity.Compare)
	return slices.Compact(ids)
}

// meshIdentities are the identities of every VirtualDeployment of every
// VirtualService of a Mesh, sorted.
func (t *translator) meshIdentities(ms *meshState) []mesh.Identity {
	var ids []mesh.Identity
	for _, vs := range t.vss {
		if vs.mesh == ms {
			ids = append(ids, vsIdentities(vs)...)
		}
	}
	slices.SortFunc(ids, mesh.Identity.Compare)
	return slices.Compact(ids)
}

// egressRule converts an external service; ok is false when nothing of it
// is usable.
func (t *translator) egressRule(ap mesh.ObjectRef, field string, es *servicemeshv1beta1.ExternalService) (mesh.EgressRule, bool) {
	e := mesh.EgressRule{Origin: ap}
	if n := count(es.TCPExternalService != nil, es.HTTPExternalService != nil, es.HTTPSExternalService != nil); n != 1 {
		t.fs.Errorf(ap, field, ReasonInvalidDestination,
			"sets %d of tcpExternalService, httpExternalService and httpsExternalService, and exactly one must be set; the rule is ignored", n)
		return e, false
	}
	var ports []int32
	switch {
	case es.TCPExternalService != nil:
		field += ".tcpExternalService"
		e.Protocol = mesh.EgressTCP
		ports = es.TCPExternalService.Ports
		for j, c := range es.TCPExternalService.IPAddresses {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil {
				t.fs.Errorf(ap, fmt.Sprintf("%s.ipAddresses[%d]", field, j), ReasonInvalidCIDR,
					"%q is not a CIDR block (%v); it is ignored", c, err)
				continue
			}
			if p.Masked() != p {
				t.fs.Warnf(ap, fmt.Sprintf("%s.ipAddresses[%d]", field, j), ReasonNonCanonicalCIDR,
					"%s has host bits set; %s is used", c, p.Masked())
			}
			e.CIDRs = append(e.CIDRs, p.Masked().String())
		}
		slices.Sort(e.CIDRs)
		e.CIDRs = slices.Compact(e.CIDRs)
	default:
		hs := es.HTTPExternalService
		e.Protocol = mesh.EgressHTTP
		field += ".httpExternalService"
		if hs == nil {
			hs = es.HTTPSExternalService
			e.Protocol = mesh.EgressHTTPS
			field = strings.TrimSuffix(field, ".httpExternalService") + ".httpsExternalService"
		}
		ports = hs.Ports
		for j, h := range hs.Hostnames {
			if !validHostname(h) {
				t.fs.Errorf(ap, fmt.Sprintf("%s.hostnames[%d]", field, j), ReasonInvalidHostname,
					"%q is not a host name (a wildcard may only be a leading \"*.\"); it is ignored", h)
				continue
			}
			e.Hosts = append(e.Hosts, strings.ToLower(strings.TrimSuffix(h, ".")))
		}
		slices.Sort(e.Hosts)
		e.Hosts = slices.Compact(e.Hosts)
	}
	for j, p := range ports {
		if p < 1 || p > 65535 {
			t.fs.Errorf(ap, fmt.Sprintf("%s.ports[%d]", field, j), ReasonInvalidPort,
				"port %d is not between 1 and 65535; it is ignored", p)
			continue
		}
		e.Ports = append(e.Ports, p)
	}
	slices.Sort(e.Ports)
	e.Ports = slices.Compact(e.Ports)
	if len(e.Hosts) == 0 && len(e.CIDRs) == 0 {
		t.fs.Errorf(ap, field, ReasonInvalidDestination, "the external service names no usable address; the rule is ignored")
		return e, false
	}
	if len(ports) > 0 && len(e.Ports) == 0 {
		t.fs.Errorf(ap, field+".ports", ReasonInvalidPort, "no port is usable; the rule is ignored rather than allowing every port")
		return e, false
	}
	return e, true
}

// validHostname accepts DNS names, with an optional leading "*." wildcard.
func validHostname(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "*."), ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		if strings.IndexFunc(label, notHostnameRune) >= 0 {
			return false
		}
	}
	return true
}

// notHostnameRune reports whether c may not appear in a host name label.
func notHostnameRune(c rune) bool {
	return (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-'
}
