package osm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meshward/meshward/mesh"
)

// kindIngressBackend is the kind used in object references.
const kindIngressBackend = "IngressBackend"

// Finding reasons.
const (
	ReasonNotInMesh           = "NotInMesh"
	ReasonNoBackends          = "NoBackends"
	ReasonNoSources           = "NoSources"
	ReasonMissingName         = "MissingName"
	ReasonInvalidPort         = "InvalidPort"
	ReasonInvalidProtocol     = "InvalidProtocol"
	ReasonDuplicateBackend    = "DuplicateBackend"
	ReasonTLSIgnored          = "TLSIgnored"
	ReasonUnsupportedKind     = "UnsupportedKind"
	ReasonInvalidCIDR         = "InvalidCIDR"
	ReasonNonCanonicalCIDR    = "NonCanonicalCIDR"
	ReasonPrincipalNotChecked = "PrincipalNotChecked"
	ReasonNoAddressSource     = "NoAddressSource"
	ReasonNothingAdmitted     = "NothingAdmitted"
	ReasonMatchesNotEnforced  = "MatchesNotEnforced"
	ReasonUnknownService      = "UnknownService"
	ReasonUnknownTargetPort   = "UnknownTargetPort"
	ReasonNoEndpoints         = "NoEndpoints"
	ReasonConflictingBackend  = "ConflictingBackend"
)

// findings collects findings; the zero value is ready to use.
type findings []mesh.Finding

func (f *findings) add(sev mesh.Severity, obj mesh.ObjectRef, field, reason, format string, args ...any) {
	*f = append(*f, mesh.Finding{
		Object:   obj,
		Field:    field,
		Severity: sev,
		Reason:   reason,
		Message:  fmt.Sprintf(format, args...),
	})
}

func (f *findings) errorf(obj mesh.ObjectRef, field, reason, format string, args ...any) {
	f.add(mesh.SeverityError, obj, field, reason, format, args...)
}

func (f *findings) warnf(obj mesh.ObjectRef, field, reason, format string, args ...any) {
	f.add(mesh.SeverityWarning, obj, field, reason, format, args...)
}

// SortFindings orders findings totally (mesh.Finding.Compare, then severity
// and reason) and removes exact duplicates: the order the SMI translator
// gives its findings, so a model combining both stays sorted the same way.
func SortFindings(fs []mesh.Finding) []mesh.Finding {
	slices.SortFunc(fs, func(a, b mesh.Finding) int {
		if c := a.Compare(b); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Severity), string(b.Severity)); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return slices.Compact(fs)
}

func backendField(i int, sub string) string {
	if sub == "" {
		return fmt.Sprintf("spec.backends[%d]", i)
	}
	return fmt.Sprintf("spec.backends[%d].%s", i, sub)
}

func sourceField(j int, sub string) string {
	if sub == "" {
		return fmt.Sprintf("spec.sources[%d]", j)
	}
	return fmt.Sprintf("spec.sources[%d].%s", j, sub)
}
