package bootstrap

import (
	"errors"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshward/meshward/mesh"
)

// NodeIdentityKey is the node metadata field naming the node's identity as
// "<namespace>/<serviceaccount>".
const NodeIdentityKey = "meshward.io/identity"

// nodeIDSeparator separates the fields of a node id that names an identity.
const nodeIDSeparator = "~"

// Errors of NodeIdentity, wrapped with details; test them with errors.Is.
var (
	// ErrNoIdentity: the node names no identity.
	ErrNoIdentity = errors.New("the xDS node names no identity")
	// ErrInvalidIdentity: the node names an identity that is malformed, or
	// two different identities.
	ErrInvalidIdentity = errors.New("the xDS node names an invalid identity")
)

// NodeID returns "<prefix>~<namespace>~<serviceaccount>", a node id that
// names the identity. The prefix is free-form (a pod name, say); it must
// not contain "~".
func NodeID(prefix string, id mesh.Identity) string {
	return prefix + nodeIDSeparator + id.Namespace + nodeIDSeparator + id.Name
}

// NodeMetadata returns the node metadata that names the identity.
func NodeMetadata(id mesh.Identity) map[string]any {
	return map[string]any{NodeIdentityKey: id.String()}
}

// NodeIdentity returns the identity an xDS node names: the metadata field
// NodeIdentityKey ("ns/sa") when present, else the last two fields of a
// node id of the form <anything>~<ns>~<sa>. A node naming one identity in
// its metadata and another in its id is refused, as is a malformed or
// non-string metadata value: the server must never guess.
func NodeIdentity(node *corev3.Node) (mesh.Identity, error) {
	if node == nil {
		return mesh.Identity{}, fmt.Errorf("%w: no node in the request", ErrNoIdentity)
	}
	fromID, idErr := identityFromNodeID(node.GetId())
	v, ok := node.GetMetadata().GetFields()[NodeIdentityKey]
	if !ok {
		return fromID, idErr
	}
	s, isString := v.GetKind().(*structpb.Value_StringValue)
	if !isString {
		return mesh.Identity{}, fmt.Errorf("%w: metadata %q must be a string \"<namespace>/<serviceaccount>\"", ErrInvalidIdentity, NodeIdentityKey)
	}
	ns, sa, found := strings.Cut(s.StringValue, "/")
	if !found {
		return mesh.Identity{}, fmt.Errorf("%w: metadata %q is %q, want \"<namespace>/<serviceaccount>\"", ErrInvalidIdentity, NodeIdentityKey, s.StringValue)
	}
	id := mesh.Identity{Namespace: ns, Name: sa}
	if err := ValidateIdentity(id); err != nil {
		return mesh.Identity{}, err
	}
	if idErr == nil && fromID != id {
		return mesh.Identity{}, fmt.Errorf("%w: metadata names %s but the node id %q names %s", ErrInvalidIdentity, id, node.GetId(), fromID)
	}
	return id, nil
}

// identityFromNodeID reads <anything>~<ns>~<sa>.
func identityFromNodeID(nodeID string) (mesh.Identity, error) {
	parts := strings.Split(nodeID, nodeIDSeparator)
	if len(parts) < 3 {
		return mesh.Identity{}, fmt.Errorf("%w: no metadata %q and the node id %q is not <anything>~<namespace>~<serviceaccount>", ErrNoIdentity, NodeIdentityKey, nodeID)
	}
	id := mesh.Identity{Namespace: parts[len(parts)-2], Name: parts[len(parts)-1]}
	if err := ValidateIdentity(id); err != nil {
		return mesh.Identity{}, err
	}
	return id, nil
}

// ValidateIdentity checks that the identity is a possible ServiceAccount:
// the namespace a DNS-1123 label, the name a DNS-1123 subdomain.
func ValidateIdentity(id mesh.Identity) error {
	if errs := validation.IsDNS1123Label(id.Namespace); len(errs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrInvalidIdentity, id.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(id.Name); len(errs) > 0 {
		return fmt.Errorf("%w: ServiceAccount %q: %s", ErrInvalidIdentity, id.Name, strings.Join(errs, "; "))
	}
	return nil
}
