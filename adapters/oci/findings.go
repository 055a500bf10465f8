package oci

import (
	"github.com/meshward/meshward/mesh"
)

// Kinds of the objects the translator reads, as used in object references.
const (
	KindMesh                     = "Mesh"
	KindVirtualService           = "VirtualService"
	KindVirtualDeployment        = "VirtualDeployment"
	KindVirtualDeploymentBinding = "VirtualDeploymentBinding"
	KindVirtualServiceRouteTable = "VirtualServiceRouteTable"
	KindIngressGateway           = "IngressGateway"
	KindIngressGatewayDeployment = "IngressGatewayDeployment"
	KindIngressGatewayRouteTable = "IngressGatewayRouteTable"
	KindAccessPolicy             = "AccessPolicy"
	kindService                  = "Service"
)

// Finding reasons.
const (
	ReasonNotInMesh           = "NotInMesh"
	ReasonInvalidReference    = "InvalidReference"
	ReasonUnresolvableID      = "UnresolvableID"
	ReasonUnknownReference    = "UnknownReference"
	ReasonUnknownService      = "UnknownService"
	ReasonWrongMesh           = "WrongMesh"
	ReasonWrongVirtualService = "WrongVirtualService"
	ReasonInvalidValue        = "InvalidValue"
	ReasonUnsupportedAction   = "UnsupportedAction"
	ReasonInvalidSource       = "InvalidSource"
	ReasonInvalidDestination  = "InvalidDestination"
	ReasonInvalidRule         = "InvalidRule"
	ReasonInvalidCIDR         = "InvalidCIDR"
	ReasonNonCanonicalCIDR    = "NonCanonicalCIDR"
	ReasonInvalidHostname     = "InvalidHostname"
	ReasonInvalidPath         = "InvalidPath"
	ReasonInvalidWeight       = "InvalidWeight"
	ReasonInvalidPort         = "InvalidPort"
	ReasonZeroTotalWeight     = "ZeroTotalWeight"
	ReasonUnknownHost         = "UnknownHost"
	ReasonNotBound            = "NotBound"
	ReasonNoPods              = "NoPods"
	ReasonNoIdentities        = "NoIdentities"
	ReasonSharedIdentity      = "SharedIdentity"
	ReasonMTLSBelowMinimum    = "MTLSBelowMinimum"
	ReasonNoRootService       = "NoRootService"
	ReasonConflictingSplit    = "ConflictingSplit"
	ReasonLabelsNotRouted     = "LabelsNotRouted"
	ReasonTLSNotServed        = "TLSNotServed"
	ReasonReservedPort        = "ReservedPort"
)

// dependencyReasons are the reasons saying that an object this one refers
// to is missing or unusable: they make ServiceMeshDependenciesActive False.
var dependencyReasons = map[string]bool{
	ReasonInvalidReference:    true,
	ReasonUnresolvableID:      true,
	ReasonUnknownReference:    true,
	ReasonUnknownService:      true,
	ReasonWrongMesh:           true,
	ReasonWrongVirtualService: true,
	ReasonUnknownHost:         true,
}

// findings collects findings; the zero value is ready to use.
type findings = mesh.FindingList

func ref(kind, namespace, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}
