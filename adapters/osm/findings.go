package osm

import (
	"fmt"

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
type findings = mesh.FindingList

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
