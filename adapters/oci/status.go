package oci

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// Condition reasons used when no finding gives one.
const (
	ConditionReasonResolved     = "DependenciesResolved"
	ConditionReasonConfigured   = "Configured"
	ConditionReasonWithWarnings = "ConfiguredWithWarnings"
	ConditionReasonActive       = "Active"
	ConditionReasonPartial      = "PartiallyActive"
)

// maxConditionMessage is the longest message the Condition schema accepts.
const maxConditionMessage = 32768

// Conditions computes the status conditions of the object ref from the
// model's findings, for a status writer: ServiceMeshDependenciesActive,
// ServiceMeshConfigured and ServiceMeshActive, in this order (the order in
// which OCI Service Mesh lists them). Each has ObservedGeneration set to
// generation and no LastTransitionTime: the writer keeps the time of a
// condition whose status did not change and sets it otherwise (as
// k8s.io/apimachinery/pkg/api/meta.SetStatusCondition does).
//
//   - ServiceMeshDependenciesActive is False when a finding says that an
//     object it refers to is missing or unusable (or a reference is
//     malformed), with that finding's reason and message.
//   - ServiceMeshConfigured is False when a finding is an Error (part or
//     all of the object is ignored), with the first Error's reason.
//   - ServiceMeshActive is False when the object as a whole is ignored: it
//     is outside the mesh, or a reference outside any list (spec.mesh,
//     spec.virtualService...) does not resolve; it is True otherwise, with
//     reason PartiallyActive when some Error ignored a part of it.
func Conditions(ref mesh.ObjectRef, fs []mesh.Finding, generation int64) []metav1.Condition {
	var deps, errs, warns, whole []*mesh.Finding
	for i := range fs {
		f := &fs[i]
		if f.Object != ref {
			continue
		}
		if dependencyReasons[f.Reason] {
			deps = append(deps, f)
		}
		switch f.Severity {
		case mesh.SeverityError:
			errs = append(errs, f)
			if f.Reason == ReasonNotInMesh || dependencyReasons[f.Reason] && !strings.Contains(f.Field, "[") {
				whole = append(whole, f)
			}
		default:
			warns = append(warns, f)
			if f.Reason == ReasonNotInMesh {
				whole = append(whole, f)
			}
		}
	}
	cond := func(typ string, ok bool, reason, message string) metav1.Condition {
		status := metav1.ConditionTrue
		if !ok {
			status = metav1.ConditionFalse
		}
		return metav1.Condition{Type: typ, Status: status, ObservedGeneration: generation, Reason: reason, Message: message}
	}
	out := make([]metav1.Condition, 0, 3)
	if len(deps) > 0 {
		out = append(out, cond(servicemeshv1beta1.ConditionDependenciesActive, false, deps[0].Reason, summary(deps)))
	} else {
		out = append(out, cond(servicemeshv1beta1.ConditionDependenciesActive, true, ConditionReasonResolved, "every object it refers to exists"))
	}
	switch {
	case len(errs) > 0:
		out = append(out, cond(servicemeshv1beta1.ConditionConfigured, false, errs[0].Reason, summary(errs)))
	case len(warns) > 0:
		out = append(out, cond(servicemeshv1beta1.ConditionConfigured, true, ConditionReasonWithWarnings, summary(warns)))
	default:
		out = append(out, cond(servicemeshv1beta1.ConditionConfigured, true, ConditionReasonConfigured, "configured in meshward"))
	}
	switch {
	case len(whole) > 0:
		out = append(out, cond(servicemeshv1beta1.ConditionActive, false, whole[0].Reason, summary(whole)))
	case len(errs) > 0:
		out = append(out, cond(servicemeshv1beta1.ConditionActive, true, ConditionReasonPartial, "enforced by meshward, except what ServiceMeshConfigured reports"))
	default:
		out = append(out, cond(servicemeshv1beta1.ConditionActive, true, ConditionReasonActive, "enforced by meshward"))
	}
	return out
}

// summary quotes the first finding (with its field) and counts the others.
func summary(fs []*mesh.Finding) string {
	f := fs[0]
	s := f.Message
	if f.Field != "" {
		s = f.Field + ": " + s
	}
	switch n := len(fs) - 1; n {
	case 0:
	case 1:
		s += " (and 1 more)"
	default:
		s += fmt.Sprintf(" (and %d more)", n)
	}
	if len(s) > maxConditionMessage {
		s = strings.ToValidUTF8(s[:maxConditionMessage-3], "") + "..."
	}
	return s
}
