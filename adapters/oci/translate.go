package oci

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// nsName is the key of a namespaced object.
type nsName struct{ Namespace, Name string }

func (k nsName) String() string { return k.Namespace + "/" + k.Name }

// meshState is a usable Mesh.
type meshState struct {
	ref     mesh.ObjectRef
	minimum servicemeshv1beta1.MTLSMode
}

// vsState is a usable VirtualService and what refers to it.
type vsState struct {
	obj  *servicemeshv1beta1.VirtualService
	ref  mesh.ObjectRef
	mesh *meshState
	out  mesh.VirtualService
	vds  []*vdState
}

// vdState is a usable VirtualDeployment and the pods bound to it.
type vdState struct {
	obj      *servicemeshv1beta1.VirtualDeployment
	ref      mesh.ObjectRef
	vs       *vsState
	bindings []mesh.ObjectRef
	services []mesh.ServiceKey
	ids      []mesh.Identity
	// grpc is true when every listener speaks GRPC.
	grpc bool
	// labelled is true when a binding narrows its Service's pods by
	// labels: routing to the Service would reach other pods too.
	labelled bool
}

// gwState is a usable IngressGateway.
type gwState struct {
	obj  *servicemeshv1beta1.IngressGateway
	ref  mesh.ObjectRef
	mesh *meshState
	out  mesh.Gateway
}

// translator holds the indexes built once per translation.
type translator struct {
	s       *snapshot.Snapshot
	m       *mesh.Model
	members map[string]bool
	fs      findings

	// services and pods index the snapshot's member Services and Pods.
	services   map[nsName]*corev1.Service
	pods       map[string][]*corev1.Pod
	podsByName map[nsName]*corev1.Pod
	// podsByLabel lists the member pods of a namespace with a label,
	// sorted by name.
	podsByLabel map[podLabel][]*corev1.Pod

	meshes map[nsName]*meshState
	vss    map[nsName]*vsState
	vds    map[nsName]*vdState
	gws    map[nsName]*gwState
}

// Translate adds the OCI-style objects of the snapshot's member namespaces
// to m, which the SMI translator has built from the same snapshot (it reads
// the model's namespaces, services and splits), and appends the findings,
// keeping m.Findings sorted. See the package documentation for the
// semantics. Translate never modifies the snapshot.
func Translate(s *snapshot.Snapshot, m *mesh.Model) {
	if s == nil || m == nil || !hasOCI(s) {
		return
	}
	t := &translator{s: s, m: m, members: make(map[string]bool, len(m.Namespaces))}
	for _, ns := range m.Namespaces {
		t.members[ns] = true
	}
	t.indexWorkloads()
	t.translateMeshes()
	t.translateVirtualServices()
	t.translateVirtualDeployments()
	t.translateBindings()
	t.finishDeployments()
	t.translateGateways()
	access, egress := t.translatePolicies()
	t.translateRouteTables()
	t.translateGatewayRouteTables()

	for _, k := range sortedKeys(t.vss) {
		vs := t.vss[k]
		for _, vd := range vs.vds {
			vs.out.Deployments = append(vs.out.Deployments, vd.model())
		}
		m.VirtualServices = append(m.VirtualServices, vs.out)
	}
	for _, k := range sortedKeys(t.gws) {
		m.Gateways = append(m.Gateways, t.gws[k].out)
	}
	if len(access) > 0 {
		m.Access = append(m.Access, access...)
		slices.SortStableFunc(m.Access, func(a, b mesh.AccessRule) int {
			if c := a.Destination.Compare(b.Destination); c != 0 {
				return c
			}
			return a.Origin.Compare(b.Origin)
		})
	}
	if len(egress) > 0 {
		m.Egress = append(m.Egress, egress...)
	}
	if len(t.fs) > 0 {
		m.Findings = mesh.SortFindings(append(m.Findings, t.fs...))
	}
}

func hasOCI(s *snapshot.Snapshot) bool {
	return len(s.Meshes)+len(s.VirtualServices)+len(s.VirtualDeployments)+
		len(s.VirtualDeploymentBindings)+len(s.VirtualServiceRouteTables)+
		len(s.IngressGateways)+len(s.IngressGatewayDeployments)+
		len(s.IngressGatewayRouteTables)+len(s.AccessPolicies) > 0
}

// members returns pointers to the objects of the member namespaces sorted
// by namespace and name, the first of each name only; objects of other
// namespaces are reported and left out.
func members[T any](t *translator, kind string, items []T, meta func(*T) *metav1.ObjectMeta) []*T {
	out := make([]*T, 0, len(items))
	for i := range items {
		md := meta(&items[i])
		if !t.members[md.Namespace] {
			t.fs.Warnf(ref(kind, md.Namespace, md.Name), "metadata.namespace", ReasonNotInMesh,
				"namespace %q lacks label %s=%s; the %s is ignored", md.Namespace, mesh.NamespaceLabel, t.m.Options.MeshName, kind)
			continue
		}
		out = append(out, &items[i])
	}
	key := func(p *T) nsName { md := meta(p); return nsName{md.Namespace, md.Name} }
	slices.SortStableFunc(out, func(a, b *T) int { return compareKeys(key(a), key(b)) })
	return slices.CompactFunc(out, func(a, b *T) bool { return key(a) == key(b) })
}

func compareKeys(a, b nsName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

func sortedKeys[V any](m map[nsName]V) []nsName {
	keys := make([]nsName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// indexWorkloads indexes the member Services and Pods of the snapshot.
func (t *translator) indexWorkloads() {
	t.services = make(map[nsName]*corev1.Service)
	for i := range t.s.Services {
		svc := &t.s.Services[i]
		k := nsName{svc.Namespace, svc.Name}
		if _, dup := t.services[k]; !dup && t.members[svc.Namespace] {
			t.services[k] = svc
		}
	}
	t.pods = make(map[string][]*corev1.Pod)
	t.podsByName = make(map[nsName]*corev1.Pod)
	for i := range t.s.Pods {
		p := &t.s.Pods[i]
		k := nsName{p.Namespace, p.Name}
		if _, dup := t.podsByName[k]; dup || !t.members[p.Namespace] {
			continue
		}
		t.podsByName[k] = p
		t.pods[p.Namespace] = append(t.pods[p.Namespace], p)
	}
	t.podsByLabel = make(map[podLabel][]*corev1.Pod, len(t.podsByName))
	for ns, ps := range t.pods {
		slices.SortFunc(ps, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
		for _, p := range ps {
			for k, v := range p.Labels {
				key := podLabel{ns, k, v}
				t.podsByLabel[key] = append(t.podsByLabel[key], p)
			}
		}
	}
}

// podLabel is a label of pods in a namespace.
type podLabel struct{ namespace, key, value string }

// selectPods returns the member pods of a namespace that carry every label
// of selector, sorted by name: the candidates are the pods with the
// selector's rarest label, so selecting costs what it returns, not what
// the namespace holds.
func (t *translator) selectPods(ns string, selector map[string]string) []*corev1.Pod {
	var candidates []*corev1.Pod
	first := true
	for k, v := range selector {
		ps := t.podsByLabel[podLabel{ns, k, v}]
		if first || len(ps) < len(candidates) {
			candidates, first = ps, false
		}
	}
	if first {
		return t.pods[ns]
	}
	return candidates
}

// resolve reads a RefOrID of the object obj at field and returns the key
// it names; the referenced object's namespace defaults to obj's. It
// reports a reference that sets both or neither of ref and id, or only an
// OCID, which meshward cannot resolve; then says what happens instead.
func (t *translator) resolve(obj mesh.ObjectRef, field, kind string, r servicemeshv1beta1.RefOrID, then string) (nsName, bool) {
	switch {
	case r.Ref != nil && r.ID != "":
		t.fs.Errorf(obj, field, ReasonInvalidReference, "sets both ref and id, and exactly one must be set; %s", then)
		return nsName{}, false
	case r.Ref == nil && r.ID == "":
		t.fs.Errorf(obj, field, ReasonInvalidReference, "sets neither ref nor id, and exactly one must be set; %s", then)
		return nsName{}, false
	case r.Ref == nil:
		t.fs.Errorf(obj, field+".id", ReasonUnresolvableID,
			"names a %s by OCID %q only, and meshward resolves references by name (ref); %s", kind, r.ID, then)
		return nsName{}, false
	case r.Ref.Name == "":
		t.fs.Errorf(obj, field+".ref.name", ReasonInvalidReference, "names no %s; %s", kind, then)
		return nsName{}, false
	}
	k := nsName{r.Ref.Namespace, r.Ref.Name}
	if k.Namespace == "" {
		k.Namespace = obj.Namespace
	}
	return k, true
}

// lookup resolves a reference in an index, reporting a name that is not
// there; then says what happens instead.
func lookup[V any](t *translator, idx map[nsName]V, obj mesh.ObjectRef, field, kind string, r servicemeshv1beta1.RefOrID, then string) (V, bool) {
	var zero V
	k, ok := t.resolve(obj, field, kind, r, then)
	if !ok {
		return zero, false
	}
	v, ok := idx[k]
	if !ok {
		t.fs.Errorf(obj, field+".ref", ReasonUnknownReference,
			"%s %s does not exist in a namespace of the mesh, or is not usable; %s", kind, k, then)
	}
	return v, ok
}

// translateMeshes indexes the usable Meshes.
func (t *translator) translateMeshes() {
	t.meshes = make(map[nsName]*meshState)
	for _, o := range members(t, KindMesh, t.s.Meshes, func(o *servicemeshv1beta1.Mesh) *metav1.ObjectMeta { return &o.ObjectMeta }) {
		ms := &meshState{ref: ref(KindMesh, o.Namespace, o.Name), minimum: servicemeshv1beta1.MTLSDisabled}
		if o.Spec.MTLS != nil {
			if o.Spec.MTLS.Minimum.Rank() < 0 {
				t.fs.Errorf(ms.ref, "spec.mtls.minimum", ReasonInvalidValue,
					"mtls minimum %q is not DISABLED, PERMISSIVE or STRICT; STRICT is assumed", o.Spec.MTLS.Minimum)
				ms.minimum = servicemeshv1beta1.MTLSStrict
			} else {
				ms.minimum = o.Spec.MTLS.Minimum
			}
		}
		t.meshes[nsName{o.Namespace, o.Name}] = ms
	}
}

// translateVirtualServices indexes the VirtualServices whose Mesh is usable
// and resolves their hosts and mutual TLS mode.
func (t *translator) translateVirtualServices() {
	t.vss = make(map[nsName]*vsState)
	for _, o := range members(t, KindVirtualService, t.s.VirtualServices, func(o *servicemeshv1beta1.VirtualService) *metav1.ObjectMeta { return &o.ObjectMeta }) {
		r := ref(KindVirtualService, o.Namespace, o.Name)
		ms, ok := lookup(t, t.meshes, r, "spec.mesh", KindMesh, o.Spec.Mesh, "the VirtualService is ignored")
		if !ok {
			continue
		}
		vs := &vsState{obj: o, ref: r, mesh: ms}
		vs.out = mesh.VirtualService{
			Origin:         r,
			Mesh:           ms.ref,
			Hosts:          slices.Clone(o.Spec.Hosts),
			MTLS:           string(t.mtlsMode(vs)),
			DefaultRouting: string(servicemeshv1beta1.RoutingUniform),
			Service:        t.rootService(r, o.Spec.Hosts),
		}
		if p := o.Spec.DefaultRoutingPolicy; p != nil {
			switch p.Type {
			case servicemeshv1beta1.RoutingUniform, servicemeshv1beta1.RoutingDeny:
				vs.out.DefaultRouting = string(p.Type)
			default:
				t.fs.Errorf(r, "spec.defaultRoutingPolicy.type", ReasonInvalidValue,
					"routing policy %q is not UNIFORM or DENY; UNIFORM is used", p.Type)
			}
		}
		t.vss[nsName{o.Namespace, o.Name}] = vs
	}
}

// mtlsMode is the VirtualService's mode raised to its Mesh's minimum; a
// mode below the minimum is reported.
func (t *translator) mtlsMode(vs *vsState) servicemeshv1beta1.MTLSMode {
	floor := vs.mesh.minimum
	if vs.obj.Spec.MTLS == nil {
		return floor
	}
	mode := vs.obj.Spec.MTLS.Mode
	if mode.Rank() < 0 {
		t.fs.Errorf(vs.ref, "spec.mtls.mode", ReasonInvalidValue,
			"mtls mode %q is not DISABLED, PERMISSIVE or STRICT; the Mesh's minimum %s is used", mode, floor)
		return floor
	}
	if mode.Rank() < floor.Rank() {
		t.fs.Warnf(vs.ref, "spec.mtls.mode", ReasonMTLSBelowMinimum,
			"mtls mode %s is below the minimum %s of %s; %s is used", mode, floor, vs.mesh.ref, floor)
		return floor
	}
	return mode
}

// rootService is the member Service named by the first host that names
// one: <name>, <name>.<namespace> or <name>.<namespace>.svc[.<domain>].
func (t *translator) rootService(vs mesh.ObjectRef, hosts []string) *mesh.ServiceKey {
	for _, h := range hosts {
		k, ok := serviceHost(h, vs.Namespace)
		if !ok {
			continue
		}
		if _, ok := t.services[k]; ok {
			return &mesh.ServiceKey{Namespace: k.Namespace, Name: k.Name}
		}
	}
	return nil
}

// serviceHost reads a host name as a Kubernetes Service's DNS name.
func serviceHost(host, namespace string) (nsName, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || strings.Contains(host, "*") {
		return nsName{}, false
	}
	if h, _, found := strings.Cut(host, ":"); found {
		host = h
	}
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 1:
		return nsName{namespace, parts[0]}, true
	case len(parts) == 2:
		return nsName{parts[1], parts[0]}, true
	case parts[2] == "svc":
		return nsName{parts[1], parts[0]}, true
	}
	return nsName{}, false
}

// translateVirtualDeployments indexes the VirtualDeployments whose
// VirtualService is usable.
func (t *translator) translateVirtualDeployments() {
	t.vds = make(map[nsName]*vdState)
	for _, o := range members(t, KindVirtualDeployment, t.s.VirtualDeployments, func(o *servicemeshv1beta1.VirtualDeployment) *metav1.ObjectMeta { return &o.ObjectMeta }) {
		r := ref(KindVirtualDeployment, o.Namespace, o.Name)
		vs, ok := lookup(t, t.vss, r, "spec.virtualService", KindVirtualService, o.Spec.VirtualService, "the VirtualDeployment is ignored")
		if !ok {
			continue
		}
		vd := &vdState{obj: o, ref: r, vs: vs, grpc: len(o.Spec.Listener) > 0}
		for i, l := range o.Spec.Listener {
			if _, ok := listenerProtocol(l.Protocol); !ok {
				t.fs.Errorf(r, fmt.Sprintf("spec.listener[%d].protocol", i), ReasonInvalidValue,
					"protocol %q is not HTTP, HTTP2, GRPC, TCP or TLS_PASSTHROUGH; the listener is ignored", l.Protocol)
			}
			if l.Port < 1 || l.Port > 65535 {
				t.fs.Errorf(r, fmt.Sprintf("spec.listener[%d].port", i), ReasonInvalidPort,
					"port %d is not between 1 and 65535; the listener is ignored", l.Port)
			}
			if l.Protocol != servicemeshv1beta1.ProtocolGRPC {
				vd.grpc = false
			}
		}
		vs.vds = append(vs.vds, vd)
		t.vds[nsName{o.Namespace, o.Name}] = vd
	}
}

// listenerProtocol maps a listener protocol to the model's.
func listenerProtocol(p servicemeshv1beta1.Protocol) (string, bool) {
	switch p {
	case servicemeshv1beta1.ProtocolHTTP:
		return mesh.RouteHTTP, true
	case servicemeshv1beta1.ProtocolHTTP2:
		return mesh.RouteHTTP2, true
	case servicemeshv1beta1.ProtocolGRPC:
		return mesh.RouteGRPC, true
	case servicemeshv1beta1.ProtocolTCP:
		return mesh.RouteTCP, true
	case servicemeshv1beta1.ProtocolTLSPassthrough:
		return mesh.RouteTLSPassthrough, true
	}
	return "", false
}

// model is the VirtualDeployment as the model holds it.
func (vd *vdState) model() mesh.VirtualDeployment {
	out := mesh.VirtualDeployment{
		Origin:     vd.ref,
		Bindings:   vd.bindings,
		Services:   vd.services,
		Identities: vd.ids,
	}
	for _, l := range vd.obj.Spec.Listener {
		proto, ok := listenerProtocol(l.Protocol)
		if !ok || l.Port < 1 || l.Port > 65535 {
			continue
		}
		ml := mesh.Listener{Protocol: proto, Port: l.Port}
		switch proto {
		case mesh.RouteHTTP, mesh.RouteHTTP2:
			ml.RequestTimeoutMs = DefaultRequestTimeoutMs
		}
		if proto != mesh.RouteTCP && proto != mesh.RouteTLSPassthrough && l.RequestTimeoutInMs != nil {
			ml.RequestTimeoutMs = *l.RequestTimeoutInMs
		}
		if l.IdleTimeoutInMs != nil {
			ml.IdleTimeoutMs = *l.IdleTimeoutInMs
		}
		out.Listeners = append(out.Listeners, ml)
	}
	return out
}

// DefaultRequestTimeoutMs is the request timeout of HTTP listeners and route
// rules that set none: 15 s.
const DefaultRequestTimeoutMs = 15000
