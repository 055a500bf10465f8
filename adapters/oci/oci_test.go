package oci_test

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshward/meshward/adapters/oci"
	"github.com/meshward/meshward/adapters/translate"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// TestDeterministic checks that the order of the input objects does not
// change the result, for every golden case.
func TestDeterministic(t *testing.T) {
	ins := golden.Inputs(t)
	for _, in := range ins {
		t.Run(golden.CaseName(in), func(t *testing.T) {
			s, opts := loadCase(t, in)
			want := render(t, translate.Build(s, opts))
			r := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				if got := render(t, translate.Build(golden.Shuffle(s, r), opts)); !bytes.Equal(got, want) {
					t.Fatalf("a shuffled snapshot gives a different result:\n%s", golden.Diff(string(want), string(got)))
				}
			}
		})
	}
}

// TestTranslateLeavesSnapshotAlone checks that Translate does not modify
// the snapshot and leaves a model without OCI objects as it was.
func TestTranslateLeavesSnapshotAlone(t *testing.T) {
	for _, name := range []string{"gateway_routes", "access_ingress_gateway_source", "route_priority_order", "binding_match_labels"} {
		s, opts := loadCase(t, filepath.Join("testdata", name+".in.yaml"))
		before := deepCopy(s)
		translate.Build(s, opts)
		if !reflect.DeepEqual(before, deepCopy(s)) {
			t.Fatalf("%s: the snapshot was modified", name)
		}
	}
	_, opts := loadCase(t, filepath.Join("testdata", "gateway_routes.in.yaml"))
	m := &mesh.Model{Options: opts, Findings: []mesh.Finding{{Reason: "Kept"}}}
	oci.Translate(&snapshot.Snapshot{}, m)
	oci.Translate(nil, m)
	oci.Translate(&snapshot.Snapshot{Meshes: []servicemeshv1beta1.Mesh{{}}}, nil)
	if m.VirtualServices != nil || m.Access != nil || len(m.Findings) != 1 {
		t.Fatalf("model changed without OCI objects: %+v", m)
	}
}

// deepCopy copies the OCI objects of a snapshot (the rest is the SMI
// translator's to keep).
func deepCopy(s *snapshot.Snapshot) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Meshes:                    copyAll(s.Meshes, (*servicemeshv1beta1.Mesh).DeepCopyInto),
		VirtualServices:           copyAll(s.VirtualServices, (*servicemeshv1beta1.VirtualService).DeepCopyInto),
		VirtualDeployments:        copyAll(s.VirtualDeployments, (*servicemeshv1beta1.VirtualDeployment).DeepCopyInto),
		VirtualDeploymentBindings: copyAll(s.VirtualDeploymentBindings, (*servicemeshv1beta1.VirtualDeploymentBinding).DeepCopyInto),
		VirtualServiceRouteTables: copyAll(s.VirtualServiceRouteTables, (*servicemeshv1beta1.VirtualServiceRouteTable).DeepCopyInto),
		IngressGateways:           copyAll(s.IngressGateways, (*servicemeshv1beta1.IngressGateway).DeepCopyInto),
		IngressGatewayDeployments: copyAll(s.IngressGatewayDeployments, (*servicemeshv1beta1.IngressGatewayDeployment).DeepCopyInto),
		IngressGatewayRouteTables: copyAll(s.IngressGatewayRouteTables, (*servicemeshv1beta1.IngressGatewayRouteTable).DeepCopyInto),
		AccessPolicies:            copyAll(s.AccessPolicies, (*servicemeshv1beta1.AccessPolicy).DeepCopyInto),
		Pods:                      slices.Clone(s.Pods),
		Services:                  slices.Clone(s.Services),
	}
}

func copyAll[T any](in []T, deepCopyInto func(*T, *T)) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		deepCopyInto(&in[i], &out[i])
	}
	return out
}

func TestConditions(t *testing.T) {
	r := mesh.ObjectRef{Kind: oci.KindAccessPolicy, Namespace: "shop", Name: "p"}
	other := mesh.ObjectRef{Kind: oci.KindAccessPolicy, Namespace: "shop", Name: "other"}
	warn := mesh.Finding{Object: r, Field: "spec.rules[0].source", Severity: mesh.SeverityWarning, Reason: oci.ReasonNoIdentities, Message: "w"}
	ruleRef := mesh.Finding{Object: r, Field: "spec.rules[1].source.virtualService.ref", Severity: mesh.SeverityError, Reason: oci.ReasonUnknownReference, Message: "r"}
	meshRef := mesh.Finding{Object: r, Field: "spec.mesh.ref", Severity: mesh.SeverityError, Reason: oci.ReasonUnknownReference, Message: "m"}
	action := mesh.Finding{Object: r, Field: "spec.rules[2].action", Severity: mesh.SeverityError, Reason: oci.ReasonUnsupportedAction, Message: "a"}
	notInMesh := mesh.Finding{Object: r, Field: "metadata.namespace", Severity: mesh.SeverityWarning, Reason: oci.ReasonNotInMesh, Message: "n"}
	foreign := mesh.Finding{Object: other, Field: "spec.mesh.ref", Severity: mesh.SeverityError, Reason: oci.ReasonUnknownReference, Message: "x"}
	type want struct{ deps, configured, active string }
	cases := map[string]struct {
		fs   []mesh.Finding
		want want
	}{
		"no findings":           {nil, want{"True DependenciesResolved", "True Configured", "True Active"}},
		"other object":          {[]mesh.Finding{foreign}, want{"True DependenciesResolved", "True Configured", "True Active"}},
		"warning":               {[]mesh.Finding{warn}, want{"True DependenciesResolved", "True ConfiguredWithWarnings: spec.rules[0].source: w", "True Active"}},
		"rule reference":        {[]mesh.Finding{warn, ruleRef}, want{"False UnknownReference: spec.rules[1].source.virtualService.ref: r", "False UnknownReference: spec.rules[1].source.virtualService.ref: r", "True PartiallyActive"}},
		"own reference":         {[]mesh.Finding{meshRef}, want{"False UnknownReference: spec.mesh.ref: m", "False UnknownReference: spec.mesh.ref: m", "False UnknownReference: spec.mesh.ref: m"}},
		"errors counted":        {[]mesh.Finding{action, ruleRef, action}, want{"False UnknownReference: spec.rules[1].source.virtualService.ref: r", "False UnsupportedAction: spec.rules[2].action: a (and 2 more)", "True PartiallyActive"}},
		"namespace not in mesh": {[]mesh.Finding{notInMesh}, want{"True DependenciesResolved", "True ConfiguredWithWarnings: metadata.namespace: n", "False NotInMesh: metadata.namespace: n"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := oci.Conditions(r, c.fs, 7)
			types := []string{servicemeshv1beta1.ConditionDependenciesActive, servicemeshv1beta1.ConditionConfigured, servicemeshv1beta1.ConditionActive}
			wants := []string{c.want.deps, c.want.configured, c.want.active}
			if len(got) != 3 {
				t.Fatalf("%d conditions, want 3", len(got))
			}
			for i, cond := range got {
				if cond.Type != types[i] || cond.ObservedGeneration != 7 || !cond.LastTransitionTime.IsZero() {
					t.Errorf("condition %d = %+v", i, cond)
				}
				if s := describe(cond); !strings.HasPrefix(s, wants[i]) {
					t.Errorf("%s = %q, want prefix %q", cond.Type, s, wants[i])
				}
			}
		})
	}
	long := mesh.Finding{Object: r, Severity: mesh.SeverityError, Reason: oci.ReasonInvalidRule, Message: strings.Repeat("é", 20000)}
	if msg := oci.Conditions(r, []mesh.Finding{long}, 1)[1].Message; len(msg) > 32768 {
		t.Errorf("message of %d bytes, want at most 32768", len(msg))
	}
}

func describe(c metav1.Condition) string {
	s := string(c.Status) + " " + c.Reason
	if c.Status == metav1.ConditionFalse || strings.Contains(c.Reason, "Warnings") {
		s += ": " + c.Message
	}
	return s
}

// TestDecode checks that every kind decodes strictly from an OCI Service
// Mesh manifest, with compartmentId and OCIDs, into the snapshot.
func TestDecode(t *testing.T) {
	s, _ := loadCase(t, filepath.Join("testdata", "gateway_routes.in.yaml"))
	if len(s.Findings) != 0 {
		t.Fatalf("decoding reported %v", s.Findings)
	}
	counts := map[string]int{
		"Mesh": len(s.Meshes), "VirtualService": len(s.VirtualServices), "VirtualDeployment": len(s.VirtualDeployments),
		"VirtualDeploymentBinding": len(s.VirtualDeploymentBindings), "IngressGateway": len(s.IngressGateways),
		"IngressGatewayDeployment": len(s.IngressGatewayDeployments), "IngressGatewayRouteTable": len(s.IngressGatewayRouteTables),
	}
	for kind, n := range counts {
		if n == 0 {
			t.Errorf("no %s decoded", kind)
		}
	}
	if m := s.Meshes[0]; m.Spec.CompartmentID == "" || len(m.Spec.CertificateAuthorities) != 1 || m.Spec.MTLS.Minimum != servicemeshv1beta1.MTLSPermissive {
		t.Errorf("Mesh spec = %+v", m.Spec)
	}
	tls := s.IngressGateways[0].Spec.Hosts[0].Listeners[0].TLS
	if tls == nil || tls.Mode != servicemeshv1beta1.ListenerMutualTLS || tls.ClientValidation.TrustedCABundle.KubeSecretCABundle.SecretName != "shop-ca" {
		t.Errorf("listener TLS = %+v", tls)
	}
	if p := s.IngressGatewayDeployments[0].Spec.Ports[0]; p.ServicePort == nil || *p.ServicePort != 443 {
		t.Errorf("gateway port = %+v", p)
	}
	// An unknown field is reported and the object kept.
	dec := snapshot.NewDecoder()
	obj, fs, err := dec.Decode([]byte("apiVersion: servicemesh.oci.oracle.com/v1beta1\nkind: Mesh\nmetadata: {name: m}\nspec: {mtls: {minimum: STRICT, maximum: STRICT}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.(*servicemeshv1beta1.Mesh); !ok || len(fs) != 1 || fs[0].Reason != "UnknownField" {
		t.Errorf("unknown field: %T, %v", obj, fs)
	}
}
