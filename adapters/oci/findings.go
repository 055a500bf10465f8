package oci

import (
	"fmt"

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
	ReasonNotInMesh             = "NotInMesh"
	ReasonInvalidReference      = "InvalidReference"
	ReasonUnresolvableID        = "UnresolvableID"
	ReasonUnknownReference      = "UnknownReference"
	ReasonUnknownService        = "UnknownService"
	ReasonWrongMesh             = "WrongMesh"
	ReasonWrongVirtualService   = "WrongVirtualService"
	ReasonInvalidValue          = "InvalidValue"
	ReasonUnsupportedAction     = "UnsupportedAction"
	ReasonInvalidSource         = "InvalidSource"
	ReasonInvalidDestination    = "InvalidDestination"
	ReasonInvalidRule           = "InvalidRule"
	ReasonInvalidCIDR           = "InvalidCIDR"
	ReasonNonCanonicalCIDR      = "NonCanonicalCIDR"
	ReasonInvalidHostname       = "InvalidHostname"
	ReasonInvalidPath           = "InvalidPath"
	ReasonInvalidWeight         = "InvalidWeight"
	ReasonInvalidPort           = "InvalidPort"
	ReasonZeroTotalWeight       = "ZeroTotalWeight"
	ReasonUnknownHost           = "UnknownHost"
	ReasonNotBound              = "NotBound"
	ReasonNoPods                = "NoPods"
	ReasonNoIdentities          = "NoIdentities"
	ReasonSharedIdentity        = "SharedIdentity"
	ReasonMTLSBelowMinimum      = "MTLSBelowMinimum"
	ReasonNoRootService         = "NoRootService"
	ReasonRoutingNotApplied     = "RoutingNotApplied"
	ReasonConflictingSplit      = "ConflictingSplit"
	ReasonDefaultDenyNotApplied = "DefaultDenyNotApplied"
	ReasonLabelsNotRouted       = "LabelsNotRouted"
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

func ref(kind, namespace, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}
