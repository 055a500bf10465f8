package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/oci"
	"github.com/meshward/meshward/mesh"
)

// ociState is what the status writer needs of an OCI-style object.
type ociState struct {
	gvk        schema.GroupVersionKind
	generation int64
	conditions []metav1.Condition
}

// rememberOCI records an object's generation and conditions during a list.
func (s *Source) rememberOCI(gvk schema.GroupVersionKind, u *unstructured.Unstructured) {
	if s.oci == nil {
		s.oci = map[mesh.ObjectRef]ociState{}
	}
	st := ociState{gvk: gvk, generation: u.GetGeneration()}
	if raw, ok, _ := unstructured.NestedSlice(u.Object, "status", "conditions"); ok {
		for _, c := range raw {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			var cond metav1.Condition
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cond); err == nil {
				st.conditions = append(st.conditions, cond)
			}
		}
	}
	s.oci[mesh.ObjectRef{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}] = st
}

// takeOCI returns the states recorded by the last list.
func (s *Source) takeOCI() map[mesh.ObjectRef]ociState {
	out := s.oci
	s.oci = nil
	return out
}

// writeOCIStatus sets the ServiceMesh* conditions of every OCI-style object
// whose conditions differ from what the model says. A condition keeps its
// last transition time while its status does not change.
func (w *leaderWriter) writeOCIStatus(ctx context.Context, b *build) {
	now := metav1.NewTime(time.Now())
	for ref, st := range b.ociStatus {
		want := oci.Conditions(ref, b.model.Findings, st.generation)
		merged := make([]metav1.Condition, 0, len(want))
		changed := len(st.conditions) != len(want)
		for _, c := range want {
			old := meta.FindStatusCondition(st.conditions, c.Type)
			c.LastTransitionTime = now
			if old != nil && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
			if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message || old.ObservedGeneration != c.ObservedGeneration {
				changed = true
			}
			merged = append(merged, c)
		}
		if !changed {
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": merged}})
		if err != nil {
			w.log.Error(err, "encoding status", "object", ref.String())
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(st.gvk)
		u.SetNamespace(ref.Namespace)
		u.SetName(ref.Name)
		if err := w.client.Status().Patch(ctx, u, client.RawPatch(types.MergePatchType, patch)); err != nil {
			w.log.Error(fmt.Errorf("writing status: %w", err), "status not written; it is retried on the next rebuild", "object", ref.String())
		}
	}
}
