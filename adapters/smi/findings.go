package smi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meshward/meshward/mesh"
)

// Kinds of the objects the translator reads, as used in object references.
const (
	kindTrafficTarget  = "TrafficTarget"
	kindHTTPRouteGroup = "HTTPRouteGroup"
	kindTCPRoute       = "TCPRoute"
	kindUDPRoute       = "UDPRoute"
	kindTrafficSplit   = "TrafficSplit"
	kindServiceAccount = "ServiceAccount"
	kindService        = "Service"
)

// Finding reasons.
const (
	ReasonNotInMesh             = "NotInMesh"
	ReasonWrongNamespace        = "WrongNamespace"
	ReasonUnsupportedKind       = "UnsupportedKind"
	ReasonMissingName           = "MissingName"
	ReasonUnknownServiceAccount = "UnknownServiceAccount"
	ReasonNoSources             = "NoSources"
	ReasonNoRules               = "NoRules"
	ReasonUnknownRoute          = "UnknownRoute"
	ReasonUnknownMatch          = "UnknownMatch"
	ReasonNoMatches             = "NoMatches"
	ReasonInvalidMethod         = "InvalidMethod"
	ReasonInvalidRegex          = "InvalidRegex"
	ReasonInvalidHeaderName     = "InvalidHeaderName"
	ReasonDuplicateMatchName    = "DuplicateMatchName"
	ReasonInvalidPort           = "InvalidPort"
	ReasonForeignNamespace      = "ForeignNamespace"
	ReasonUnknownService        = "UnknownService"
	ReasonInvalidWeight         = "InvalidWeight"
	ReasonDuplicateBackend      = "DuplicateBackend"
	ReasonMissingPort           = "MissingPort"
	ReasonNoBackends            = "NoBackends"
	ReasonZeroTotalWeight       = "ZeroTotalWeight"
	ReasonNothingMatched        = "NothingMatched"
	ReasonConflictingSplit      = "ConflictingSplit"
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

// sortFindings orders findings totally (mesh.Finding.Compare, then severity
// and reason) and removes exact duplicates.
func sortFindings(fs []mesh.Finding) []mesh.Finding {
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

func ref(kind, namespace, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}
