package server

import (
	"context"
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/mesh"
)

// perIdentityTypes are the types each identity has its own cache for, in
// the order a change is published (make before break: clusters before
// the routes that use them, routes before the listeners that use them).
var perIdentityTypes = []string{resourcev3.ClusterType, resourcev3.RouteType, resourcev3.ListenerType}

// identityState holds the caches of one identity; every node of the
// identity watches them. Its owner gates the identity's endpoint watches
// too.
type identityState struct {
	owner
	id     mesh.Identity
	caches map[string]*typeCache
	// shared and own are the shared resources and the names of the own
	// resources last published to the caches (nil when withdrawn).
	// Update reads and writes them.
	shared *shared
	own    nameSet
}

// newIdentityState returns the caches of an identity: one per type of
// perIdentityTypes, and with an Issuer one of SDS Secrets.
func (s *Server) newIdentityState(id mesh.Identity) *identityState {
	st := &identityState{id: id, caches: make(map[string]*typeCache, len(perIdentityTypes)+1)}
	for _, t := range perIdentityTypes {
		st.caches[t] = newTypeCache(t, s.prefix, s.bodies)
	}
	if s.secrets != nil {
		st.caches[resourcev3.SecretType] = newTypeCache(resourcev3.SecretType, s.prefix, s.bodies)
	}
	return st
}

// router is the cache.Cache of the go-control-plane server: it sends each
// request to its node identity's cache for the type, or to the shared
// endpoint cache. Nodes without a valid identity, and requests for types
// meshward does not serve, get a watch that is never answered.
type router struct{ s *Server }

var _ cache.Cache = router{}

// noop cancels a watch that was never registered.
func noop() {}

func (r router) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	c, o := r.s.route(req.GetNode(), req.GetTypeUrl())
	if c == nil {
		return noop, nil
	}
	return c.createWatch(o, req, sub, out), nil
}

func (r router) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	c, o := r.s.route(req.GetNode(), req.GetTypeUrl())
	if c == nil {
		return noop, nil
	}
	return c.createDeltaWatch(o, req, sub, out), nil
}

// Fetch refuses REST (polling) xDS, which meshward does not serve.
func (router) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("meshward serves xDS over gRPC streams only")
}

// route returns the cache for a node's request of a type, and the owner
// the watch belongs to; nil when the request gets nothing. The caches of
// an identity that is not in the model are created empty and inactive, so
// its nodes get nothing until the identity appears in a published model.
// Called with s.mu held, which the watch creation keeps until the watch
// is registered, so that an identity's caches are not dropped meanwhile.
func (s *Server) route(node *corev3.Node, typeURL string) (*typeCache, *owner) {
	id, err := bootstrap.NodeIdentity(node)
	if err != nil {
		return nil, nil // logged and counted once per stream by the callbacks
	}
	st := s.identities[id]
	if st == nil {
		st = s.newIdentityState(id)
		s.identities[id] = st
	}
	if typeURL == resourcev3.EndpointType {
		return s.eds, &st.owner
	}
	c := st.caches[typeURL]
	if c == nil {
		s.log.V(1).Info("xDS request for a type meshward does not serve; it gets no answer", "identity", id.String(), "type", typeURL)
		return nil, nil
	}
	return c, &st.owner
}
