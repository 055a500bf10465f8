package server

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// resource is one xDS resource as served: serialized once, versioned by a
// hash of its bytes, and shared by every identity whose translation gives
// the same bytes, and by every response that carries it.
type resource struct {
	name    string
	version string
	any     *anypb.Any
	delta   *discoveryv3.Resource
	// refs are the resources this one names (see references).
	refs []reference
}

// owner is what a watch belongs to: the identity of the node that asked.
// A cache answers a watch only while its owner is active, that is while
// the identity is in the published model, so that a node of an unknown
// identity gets nothing.
type owner struct {
	active atomic.Bool
	// watches counts the open watches of the owner's nodes, in every cache.
	watches atomic.Int64
}

// watch is an open request of one stream for one type: a state-of-the-
// world request (req, out) or a delta one (dreq, dout).
type watch struct {
	owner *owner
	sub   cache.Subscription
	// initial: answer even when nothing changed (the stream's first
	// request for the type), once the owner is active.
	initial bool
	// names are the subscribed names the watch is indexed under.
	names []string
	done  bool

	req  *cache.Request
	out  chan cache.Response
	dreq *cache.DeltaRequest
	dout chan cache.DeltaResponse
}

func (w *watch) isDelta() bool { return w.dreq != nil }

// typeCache holds the resources of one type for one identity (or, for
// endpoints, for every identity) and the watches on them. It answers any
// subset of its resources, in state-of-the-world and delta xDS, and
// answers a watch only when something the watch subscribes to changed: a
// rejected (NACKed) version is never sent again, and an unchanged
// resource is never pushed.
type typeCache struct {
	typeURL string
	// fullState: state-of-the-world answers carry every subscribed
	// resource (listeners and clusters), not only the changed ones.
	fullState bool
	// prefix starts every state-of-the-world version of this server
	// instance, so that a node reconnecting from another instance never
	// holds a version this one means otherwise.
	prefix string

	mu        sync.Mutex
	version   uint64
	resources map[string]held
	byName    map[string]map[*watch]struct{}
	wildcard  map[*watch]struct{}
	// shared shares the encodings of answers with every cache.
	shared *bodyCache
	// bodies holds, while notify answers several watches, the encoded
	// resources of the state-of-the-world wildcard answers, by the
	// version they start from (allResources: every resource), so that
	// the pods of an identity share one encoding. It is nil otherwise:
	// encodings are not kept beyond the answers that carry them.
	bodies map[uint64]*encoded
}

// allResources keys, in typeCache.bodies, the answers that carry every
// resource.
const allResources = ^uint64(0)

// held is a resource in a cache, with the cache version that last
// changed it.
type held struct {
	*resource
	changed uint64
}

// wildcardKey is the one entry a state-of-the-world wildcard stream's
// returned resources hold: the cache version the stream last received.
// Such a stream needs no per-resource bookkeeping: what changed since is
// what it lacks (state of the world cannot withdraw single routes or
// endpoints, and sends every listener and cluster anyway). It is not a
// valid resource name.
const wildcardKey = "\x00meshward-version"

func newTypeCache(typeURL, prefix string, shared *bodyCache) *typeCache {
	return &typeCache{
		typeURL:   typeURL,
		shared:    shared,
		fullState: cache.ResourceRequiresFullStateInSotw(typeURL),
		prefix:    prefix,
		resources: map[string]held{},
		byName:    map[string]map[*watch]struct{}{},
		wildcard:  map[*watch]struct{}{},
	}
}

func (c *typeCache) versionInfo() string {
	return c.prefix + strconv.FormatUint(c.version, 10)
}

// createWatch answers the state-of-the-world request at once when the
// node lacks something it subscribes to, else keeps the watch until
// something changes. A NACK (a request with error_detail) is never
// answered by itself: the node keeps its last accepted configuration
// until the next change.
func (c *typeCache) createWatch(o *owner, req *cache.Request, sub cache.Subscription, out chan cache.Response) func() {
	w := &watch{owner: o, sub: sub, req: req, out: out}
	return c.add(w, func() bool {
		// The first request of a subscription is answered even when
		// empty, so that the node learns what does not exist: nothing
		// was returned on this stream yet, and the node does not hold
		// the current version already (a node reconnecting with it has
		// nothing to learn).
		return req.GetErrorDetail() == nil && len(sub.ReturnedResources()) == 0 && req.GetVersionInfo() != c.versionInfo()
	})
}

// createDeltaWatch is createWatch for delta xDS: a wildcard stream's first
// request is answered even when empty; a NACK is never answered by itself.
func (c *typeCache) createDeltaWatch(o *owner, req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) func() {
	w := &watch{owner: o, sub: sub, dreq: req, dout: out}
	return c.add(w, func() bool {
		return sub.IsWildcard() && req.GetResponseNonce() == "" && req.GetErrorDetail() == nil
	})
}

// add answers w if it can, else indexes it; it returns the cancel
// function. initial tells, under the lock, whether w is a first request.
func (c *typeCache) add(w *watch, initial func() bool) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.initial = initial()
	if c.respond(w) {
		return func() {}
	}
	if w.sub.IsWildcard() {
		c.wildcard[w] = struct{}{}
	} else {
		w.names = make([]string, 0, len(w.sub.SubscribedResources()))
		for name := range w.sub.SubscribedResources() {
			w.names = append(w.names, name)
			ws := c.byName[name]
			if ws == nil {
				ws = map[*watch]struct{}{}
				c.byName[name] = ws
			}
			ws[w] = struct{}{}
		}
	}
	w.owner.watches.Add(1)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.remove(w)
	}
}

// remove forgets w; it is idempotent. Called with c.mu held.
func (c *typeCache) remove(w *watch) {
	if w.done {
		return
	}
	w.done = true
	w.owner.watches.Add(-1)
	if w.sub.IsWildcard() {
		delete(c.wildcard, w)
		return
	}
	for _, name := range w.names {
		ws := c.byName[name]
		delete(ws, w)
		if len(ws) == 0 {
			delete(c.byName, name)
		}
	}
}

// update deletes the resources named del and sets those of sets, then
// answers the watches concerned. It returns whether anything changed;
// unchanged resources (same version) are not counted as changes.
func (c *typeCache) update(del []string, sets ...[]*resource) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := len(del)
	for _, set := range sets {
		total += len(set)
	}
	if len(c.resources) == 0 && total > 0 {
		c.resources = make(map[string]held, total)
	}
	changed := make([]string, 0, total)
	next := c.version + 1
	for _, set := range sets {
		for _, r := range set {
			if old, ok := c.resources[r.name]; ok && old.version == r.version {
				continue
			}
			c.resources[r.name] = held{r, next}
			changed = append(changed, r.name)
		}
	}
	for _, name := range del {
		if _, ok := c.resources[name]; ok {
			delete(c.resources, name)
			changed = append(changed, name)
		}
	}
	if len(changed) == 0 {
		return false
	}
	c.version = next
	affected := maps.Clone(c.wildcard)
	for _, name := range changed {
		for w := range c.byName[name] {
			affected[w] = struct{}{}
		}
	}
	c.notify(affected)
	return true
}

// names returns the names of every resource held.
func (c *typeCache) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.resources))
	for name := range c.resources {
		out = append(out, name)
	}
	return out
}

// unused returns the names of the resources held that none of the sets
// holds.
func (c *typeCache) unused(sets ...map[string]bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name := range c.resources {
		if !slices.ContainsFunc(sets, func(set map[string]bool) bool { return set[name] }) {
			out = append(out, name)
		}
	}
	return out
}

// wake re-examines every watch of the owner (every watch when o is nil),
// after the owner became active.
func (c *typeCache) wake(o *owner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	affected := map[*watch]struct{}{}
	for w := range c.wildcard {
		if o == nil || w.owner == o {
			affected[w] = struct{}{}
		}
	}
	for _, ws := range c.byName {
		for w := range ws {
			if o == nil || w.owner == o {
				affected[w] = struct{}{}
			}
		}
	}
	c.notify(affected)
}

// notify answers the watches that have something to receive, and forgets
// them. Called with c.mu held.
func (c *typeCache) notify(ws map[*watch]struct{}) {
	if len(ws) > 1 {
		c.bodies = map[uint64]*encoded{}
		defer func() { c.bodies = nil }()
	}
	for w := range ws {
		if c.respond(w) {
			c.remove(w)
		}
	}
}

// respond sends w its answer if it has one and reports whether it did.
// The response channels are buffered for one response per type and a
// stream has at most one open watch per type, so sending never blocks.
// Called with c.mu held.
func (c *typeCache) respond(w *watch) bool {
	if !w.owner.active.Load() {
		return false
	}
	if !w.isDelta() && w.sub.IsWildcard() {
		return c.respondWildcard(w)
	}
	sub := w.sub
	known := sub.ReturnedResources()
	var changed []*resource
	var removed []string
	if sub.IsWildcard() {
		for name, h := range c.resources {
			if v, ok := known[name]; !ok || v != h.version {
				changed = append(changed, h.resource)
			}
		}
		for name := range known {
			if _, ok := c.resources[name]; !ok {
				removed = append(removed, name)
			}
		}
	} else {
		for name := range sub.SubscribedResources() {
			h, exists := c.resources[name]
			v, isKnown := known[name]
			switch {
			case !exists && isKnown:
				removed = append(removed, name)
			case exists && (!isKnown || v != h.version):
				changed = append(changed, h.resource)
			}
		}
	}
	if len(changed) == 0 && len(removed) == 0 && !w.initial {
		return false
	}
	returned := maps.Clone(known)
	if returned == nil {
		returned = map[string]string{}
	}
	for _, name := range removed {
		delete(returned, name)
	}
	if w.isDelta() {
		for _, r := range changed {
			returned[r.name] = r.version
		}
		w.dout <- &deltaResponse{req: w.dreq, version: c.versionInfo(), resources: changed, removed: removed, returned: returned}
		return true
	}
	send := changed
	if c.fullState {
		// Listeners and clusters: every subscribed resource, changed or not.
		send = send[:0:0]
		for name := range sub.SubscribedResources() {
			if h, ok := c.resources[name]; ok {
				send = append(send, h.resource)
			}
		}
	} else if len(changed) == 0 && !w.initial {
		// Routes and endpoints cannot be withdrawn in state of the
		// world: nothing to send.
		return false
	}
	for _, r := range send {
		returned[r.name] = r.version
	}
	w.out <- &sotwResponse{req: w.req, version: c.versionInfo(), resources: send, returned: returned}
	return true
}

// respondWildcard answers a state-of-the-world wildcard watch: every
// resource for listeners and clusters, the resources changed since the
// version the stream last received for routes and endpoints. Called with
// c.mu held.
func (c *typeCache) respondWildcard(w *watch) bool {
	last, err := strconv.ParseUint(w.sub.ReturnedResources()[wildcardKey], 10, 64)
	seen := err == nil
	if seen && last == c.version && !w.initial {
		return false
	}
	key := allResources
	if seen && !c.fullState {
		key = last
	}
	enc := c.bodies[key]
	var send []*resource
	if enc == nil {
		if key == allResources {
			send = make([]*resource, 0, len(c.resources))
		}
		for _, h := range c.resources {
			if key == allResources || h.changed > last {
				send = append(send, h.resource)
			}
		}
		// Every resource: likely the answer of other nodes too, of
		// this identity and others. Several nodes: shared by them.
		if key == allResources || c.bodies != nil {
			enc = c.shared.get(c.typeURL, send)
			if c.bodies != nil {
				c.bodies[key] = enc
			}
		}
	}
	n := len(send)
	if enc != nil {
		n = enc.n
	}
	if n == 0 && !c.fullState && !w.initial {
		return false
	}
	returned := map[string]string{wildcardKey: strconv.FormatUint(c.version, 10)}
	resp := &sotwResponse{req: w.req, version: c.versionInfo(), resources: send, returned: returned}
	if enc != nil {
		resp.resources, resp.encoded = nil, enc.body
	}
	w.out <- resp
	return true
}

// sotwResponse is a state-of-the-world answer built from shared,
// serialized resources: either the resources, or their encoding as the
// resources field of the DiscoveryResponse, shared by every answer with
// the same resources.
type sotwResponse struct {
	req       *cache.Request
	version   string
	resources []*resource
	encoded   []byte
	returned  map[string]string
}

var _ cache.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	out := &discoveryv3.DiscoveryResponse{
		VersionInfo: r.version,
		TypeUrl:     r.req.GetTypeUrl(),
	}
	if r.encoded != nil {
		// The resources go out as they were encoded, without being
		// serialized again for every node: as unknown fields, which
		// serialize as they are. Field order does not matter on the
		// wire, and the server's callbacks read only the type URL.
		out.ProtoReflect().SetUnknown(protoreflect.RawFields(r.encoded))
		return out, nil
	}
	out.Resources = make([]*anypb.Any, len(r.resources))
	for i, res := range r.resources {
		out.Resources[i] = res.any
	}
	return out, nil
}

func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }

// deltaResponse is a delta answer built from shared, serialized resources.
type deltaResponse struct {
	req       *cache.DeltaRequest
	version   string
	resources []*resource
	removed   []string
	returned  map[string]string
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	out := &discoveryv3.DeltaDiscoveryResponse{
		SystemVersionInfo: r.version,
		TypeUrl:           r.req.GetTypeUrl(),
		Resources:         make([]*discoveryv3.Resource, len(r.resources)),
		RemovedResources:  r.removed,
	}
	for i, res := range r.resources {
		out.Resources[i] = res.delta
	}
	return out, nil
}

func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.returned }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.returned }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }
