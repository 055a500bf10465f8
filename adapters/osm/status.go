package osm

import (
	"fmt"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	"github.com/meshward/meshward/mesh"
)

// Status is the status an IngressBackend reports, given the findings of the
// model: "error" when one of its findings is an Error (the reason quotes the
// first), "committed" otherwise (the reason counts the warnings).
func Status(ref mesh.ObjectRef, fs []mesh.Finding) policyv1alpha1.IngressBackendStatus {
	var firstErr, firstWarn *mesh.Finding
	errs, warns := 0, 0
	for i := range fs {
		f := &fs[i]
		if f.Object != ref {
			continue
		}
		switch f.Severity {
		case mesh.SeverityError:
			if errs == 0 {
				firstErr = f
			}
			errs++
		default:
			if warns == 0 {
				firstWarn = f
			}
			warns++
		}
	}
	switch {
	case errs > 0:
		return policyv1alpha1.IngressBackendStatus{
			CurrentStatus: policyv1alpha1.StatusError,
			Reason:        summary(firstErr, errs, "error"),
		}
	case warns > 0:
		return policyv1alpha1.IngressBackendStatus{
			CurrentStatus: policyv1alpha1.StatusCommitted,
			Reason:        "enforced by meshward, with warnings: " + summary(firstWarn, warns, "warning"),
		}
	}
	return policyv1alpha1.IngressBackendStatus{
		CurrentStatus: policyv1alpha1.StatusCommitted,
		Reason:        "enforced by meshward",
	}
}

func summary(f *mesh.Finding, n int, noun string) string {
	s := f.Message
	if f.Field != "" {
		s = f.Field + ": " + s
	}
	switch n {
	case 1:
		return s
	case 2:
		return fmt.Sprintf("%s (and 1 more %s)", s, noun)
	}
	return fmt.Sprintf("%s (and %d more %ss)", s, n-1, noun)
}
