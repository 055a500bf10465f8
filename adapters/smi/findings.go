package smi

import (
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
type findings = mesh.FindingList

func ref(kind, namespace, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}
