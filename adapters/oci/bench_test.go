package oci_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// BenchmarkTranslate translates a mesh of 1,000 OCI-style VirtualServices
// with 3,000 VirtualDeployments (each bound to its own Service and pod),
// 1,000 route tables and 1,000 AccessPolicies over 50 namespaces: the whole
// pipeline (translate.Build) from the snapshot to the model. The target on
// a 2-core machine is the SMI translator's: at most 50 ms and 64 MiB per
// translation.
//
// The baseline deep-copies the same snapshot, a floor that any pass over
// every object pays, measured in the same run so that the ratio stays
// meaningful on a noisy machine.
func BenchmarkTranslate(b *testing.B) {
	s := golden.Decode(b, "generated", generateOCI(50, 20))
	if got := len(s.VirtualServices) + len(s.VirtualDeployments) + len(s.AccessPolicies); got != 5000 {
		b.Fatalf("generated %d VirtualServices, VirtualDeployments and AccessPolicies, want 5,000", got)
	}
	opts := mesh.DefaultOptions()
	m := translate.Build(s, opts)
	if len(m.Findings) != 0 {
		b.Fatalf("generated snapshot gives findings, e.g. %s", m.Findings[0])
	}
	if len(m.VirtualServices) != 1000 || len(m.Access) == 0 {
		b.Fatalf("model has %d VirtualServices and %d access rules", len(m.VirtualServices), len(m.Access))
	}
	b.Run("impl=translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			translate.Build(s, opts)
		}
	})
	b.Run("impl=baseline-deepcopy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fullCopy(s)
		}
	})
}

// generateOCI writes the manifests of namespaces × perNS VirtualServices:
// VirtualService app-<i> (root Service app-<i>) has VirtualDeployments
// app-<i>-v1..v3, each bound to Service app-<i>-v<k> with one pod running
// as ServiceAccount app-<i>-v<k>; a route table sends /api to v2 and the
// rest 90/10 to v1 and v3; an AccessPolicy lets the previous VirtualService
// call it.
func generateOCI(namespaces, perNS int) []byte {
	var w strings.Builder
	doc := func(format string, args ...any) {
		fmt.Fprintf(&w, format, args...)
		w.WriteString("\n---\n")
	}
	doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: Mesh
metadata: {name: mesh, namespace: ns-0}
spec: {mtls: {minimum: PERMISSIVE}}`)
	prev := ""
	for n := range namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		doc("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {meshward.io/mesh: meshward}}", ns)
		for i := range perNS {
			app := fmt.Sprintf("app-%d", n*perNS+i)
			doc("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec: {selector: {app: %s}, ports: [{name: http, port: 8080}]}", app, ns, app)
			doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualService
metadata: {name: %s, namespace: %s}
spec: {mesh: {ref: {name: mesh, namespace: ns-0}}, hosts: [%s.%s.svc.cluster.local]}`, app, ns, app, ns)
			for v := 1; v <= 3; v++ {
				vd := fmt.Sprintf("%s-v%d", app, v)
				doc("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec: {selector: {app: %s, version: v%d}, ports: [{name: http, port: 8080}]}", vd, ns, app, v)
				doc("apiVersion: v1\nkind: Pod\nmetadata: {name: %s-0, namespace: %s, labels: {app: %s, version: v%d}}\nspec: {serviceAccountName: %s, containers: [{name: app, image: app}]}", vd, ns, app, v, vd)
				doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeployment
metadata: {name: %s, namespace: %s}
spec: {virtualService: {ref: {name: %s}}, listener: [{protocol: HTTP, port: 8080}]}`, vd, ns, app)
				doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeploymentBinding
metadata: {name: %s, namespace: %s}
spec: {virtualDeployment: {ref: {name: %s}}, target: {service: {ref: {name: %s}}}}`, vd, ns, vd, vd)
			}
			doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualServiceRouteTable
metadata: {name: %s, namespace: %s}
spec:
  virtualService: {ref: {name: %s}}
  routeRules:
  - httpRoute: {path: /api, destinations: [{virtualDeployment: {ref: {name: %s-v2}}, weight: 100}]}
  - httpRoute:
      destinations:
      - {virtualDeployment: {ref: {name: %s-v1}}, weight: 90}
      - {virtualDeployment: {ref: {name: %s-v3}}, weight: 10}`, app, ns, app, app, app, app)
			source := "{allVirtualServices: {}}"
			if prev != "" {
				source = "{virtualService: {ref: {" + prev + "}}}"
			}
			doc(`apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: AccessPolicy
metadata: {name: %s, namespace: %s}
spec:
  mesh: {ref: {name: mesh, namespace: ns-0}}
  rules:
  - action: ALLOW
    source: %s
    destination: {virtualService: {ref: {name: %s}}}`, app, ns, source, app)
			prev = fmt.Sprintf("name: %s, namespace: %s", app, ns)
		}
	}
	return []byte(w.String())
}

// fullCopy deep-copies every object of the kinds generateOCI writes.
func fullCopy(s *snapshot.Snapshot) *snapshot.Snapshot {
	out := deepCopy(s)
	out.Namespaces = copyAll(s.Namespaces, (*corev1.Namespace).DeepCopyInto)
	out.Services = copyAll(s.Services, (*corev1.Service).DeepCopyInto)
	out.Pods = copyAll(s.Pods, (*corev1.Pod).DeepCopyInto)
	return out
}
