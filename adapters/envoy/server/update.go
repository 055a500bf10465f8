package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// ErrRejected is returned, wrapped with the details, by an Update that
// could not publish some identities' resources (or the endpoints): they
// failed translation, validation or the consistency check, and the
// last good resources keep being served for them.
var ErrRejected = errors.New("xDS resources rejected; the last good ones are kept")

// built is the outcome of translating one identity (or the endpoints):
// its resources by type URL, or the stage that failed.
type built struct {
	id    mesh.Identity
	sets  map[string][]*resource
	stage string
	err   error
}

// interner shares resources with equal bytes between identities, and
// remembers which ones passed validation.
type interner struct {
	mu   sync.Mutex
	prev map[string]*resource // the last update's, all valid
	next map[string]*resource // this update's, all valid
}

// intern returns the shared resource for msg, serializing it into
// scratch (which it grows), and validating it when its bytes are new:
// only new bytes are copied out of scratch.
func (in *interner) intern(typeURL string, msg proto.Message, scratch *[]byte) (*resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend((*scratch)[:0], msg)
	if err != nil {
		return nil, fmt.Errorf("serializing %s %q: %w", typeURL, resourceName(msg), err)
	}
	*scratch = b
	sum := sha256.Sum256(b)
	version := hex.EncodeToString(sum[:16])
	key := typeURL + "|" + version
	in.mu.Lock()
	r := in.next[key]
	if r == nil {
		if r = in.prev[key]; r != nil {
			in.next[key] = r
		}
	}
	in.mu.Unlock()
	if r != nil {
		return r, nil
	}
	if err := translate.Validate(msg); err != nil {
		return nil, err
	}
	refs, err := references(msg)
	if err != nil {
		return nil, err
	}
	name := resourceName(msg)
	a := &anypb.Any{TypeUrl: typeURL, Value: bytes.Clone(b)}
	r = &resource{name: name, version: version, any: a, delta: &discoveryv3.Resource{Name: name, Version: version, Resource: a}, refs: refs}
	in.mu.Lock()
	if prior := in.next[key]; prior != nil {
		r = prior
	} else {
		in.next[key] = r
	}
	in.mu.Unlock()
	return r, nil
}

// resourceName returns the name an xDS resource is requested by.
func resourceName(msg proto.Message) string {
	switch m := msg.(type) {
	case *listenerv3.Listener:
		return m.GetName()
	case *routev3.RouteConfiguration:
		return m.GetName()
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	}
	return ""
}

// Update translates the model for every identity in it and for the
// endpoints, and publishes what changed: each identity's listeners,
// routes and clusters to its nodes, the endpoints to every node that
// asks for them. A resource whose bytes did not change is not sent again,
// so an identity that the change does not concern gets no push.
//
// Nothing broken is published. Every resource must pass its ValidateAll,
// and an identity's resources must be consistent: every route
// configuration a listener names exists, every cluster a route, listener
// or filter names exists, and every EDS cluster has an assignment. An
// identity failing any of this keeps its last good resources (a new one
// gets none); so do the endpoints, as a whole. Update then returns an
// error wrapping ErrRejected, after publishing everything else.
//
// Identities that left the model have their resources withdrawn: their
// nodes lose their listeners and clusters, and get nothing more. Update
// is safe to call from several goroutines; calls are serialised.
func (s *Server) Update(m *mesh.Model) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	in := &interner{prev: s.interned, next: map[string]*resource{}}

	eds := s.buildEndpoints(m, in)
	results := s.buildIdentities(m, in, eds)

	var errs []error
	if eds.err != nil {
		s.metrics.updateFailures.WithLabelValues(eds.stage).Inc()
		s.log.Error(eds.err, "endpoints rejected; the last good ones are kept", "stage", eds.stage)
		errs = append(errs, fmt.Errorf("endpoints: %w", eds.err))
	} else {
		s.eds.update(eds.sets[resourcev3.EndpointType], nil)
	}
	inModel := make(map[mesh.Identity]bool, len(results))
	var wg sync.WaitGroup
	for _, b := range results {
		inModel[b.id] = true
		if b.err != nil {
			s.metrics.updateFailures.WithLabelValues(b.stage).Inc()
			s.log.Error(b.err, "xDS resources of an identity rejected; its last good ones are kept", "identity", b.id.String(), "stage", b.stage)
			errs = append(errs, fmt.Errorf("identity %s: %w", b.id, b.err))
			continue
		}
		st := s.state(b.id)
		wg.Go(func() { s.publish(st, b.sets) })
	}
	wg.Wait()
	s.withdraw(inModel)
	if eds.err == nil {
		s.eds.update(nil, missing(s.eds.names(), eds.sets[resourcev3.EndpointType]))
	}
	s.interned = in.next
	s.metrics.updates.Inc()
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrRejected, errors.Join(errs...))
	}
	return nil
}

// buildEndpoints translates and validates the endpoints.
func (s *Server) buildEndpoints(m *mesh.Model, in *interner) *built {
	b := &built{sets: map[string][]*resource{}}
	var scratch []byte
	for _, cla := range translate.Endpoints(m, s.opts.Translate) {
		r, err := in.intern(resourcev3.EndpointType, cla, &scratch)
		if err != nil {
			b.stage, b.err = stageValidate, err
			return b
		}
		b.sets[resourcev3.EndpointType] = append(b.sets[resourcev3.EndpointType], r)
	}
	return b
}

// buildIdentities translates, validates and checks every identity of the
// model, in parallel. The consistency check looks for endpoints in the new
// set, or in the one served when the new set was rejected.
func (s *Server) buildIdentities(m *mesh.Model, in *interner, eds *built) []*built {
	edsNames := map[string]bool{}
	if eds.err == nil {
		for _, r := range eds.sets[resourcev3.EndpointType] {
			edsNames[r.name] = true
		}
	} else {
		for _, name := range s.eds.names() {
			edsNames[name] = true
		}
	}
	results := make([]*built, len(m.Identities))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(m.Identities)) {
		wg.Go(func() {
			var scratch []byte
			for i := range next {
				results[i] = s.buildIdentity(m, m.Identities[i], in, edsNames, &scratch)
			}
		})
	}
	for i := range m.Identities {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

func (s *Server) buildIdentity(m *mesh.Model, id mesh.Identity, in *interner, edsNames map[string]bool, scratch *[]byte) *built {
	b := &built{id: id, sets: make(map[string][]*resource, len(perIdentityTypes))}
	res, err := translate.ForIdentity(m, id, s.opts.Translate)
	if err != nil {
		b.stage, b.err = stageTranslate, err
		return b
	}
	add := func(typeURL string, msg proto.Message) bool {
		r, err := in.intern(typeURL, msg, scratch)
		if err != nil {
			b.stage, b.err = stageValidate, err
			return false
		}
		b.sets[typeURL] = append(b.sets[typeURL], r)
		return true
	}
	for _, l := range res.Listeners {
		if !add(resourcev3.ListenerType, l) {
			return b
		}
	}
	for _, rc := range res.Routes {
		if !add(resourcev3.RouteType, rc) {
			return b
		}
	}
	for _, c := range res.Clusters {
		if !add(resourcev3.ClusterType, c) {
			return b
		}
	}
	if err := checkReferences(b.sets, edsNames); err != nil {
		b.stage, b.err = stageConsistency, err
	}
	return b
}

// state returns the identity's state, creating it.
func (s *Server) state(id mesh.Identity) *identityState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.identities[id]
	if st == nil {
		st = newIdentityState(id, s.prefix)
		s.identities[id] = st
	}
	return st
}

// publish sets an identity's resources, make before break: new and
// changed clusters, then routes, then the listeners (added, changed and
// removed), then the routes and clusters no longer used are removed. An
// identity published for the first time is then activated: the nodes that
// were waiting get their configuration.
func (s *Server) publish(st *identityState, sets map[string][]*resource) {
	for _, t := range perIdentityTypes {
		c := st.caches[t]
		var del []string
		if t == resourcev3.ListenerType {
			del = missing(c.names(), sets[t])
		}
		c.update(sets[t], del)
	}
	for _, t := range []string{resourcev3.RouteType, resourcev3.ClusterType} {
		c := st.caches[t]
		c.update(nil, missing(c.names(), sets[t]))
	}
	if !st.active.Swap(true) {
		for _, c := range st.caches {
			c.wake(&st.owner)
		}
		s.eds.wake(&st.owner)
	}
}

// withdraw empties the caches of the active identities that are not in
// the model, deactivates them, and drops the state of identities that are
// neither in the model nor watched.
func (s *Server) withdraw(inModel map[mesh.Identity]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	active := 0
	for id, st := range s.identities {
		if inModel[id] {
			if st.active.Load() {
				active++
			}
			continue
		}
		if st.active.Load() {
			for _, t := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType} {
				c := st.caches[t]
				c.update(nil, c.names())
			}
			st.active.Store(false)
			s.log.Info("identity left the mesh; its xDS resources are withdrawn", "identity", id.String())
		}
		if st.watches.Load() == 0 {
			delete(s.identities, id)
		}
	}
	s.metrics.identities.Set(float64(active))
}

// missing returns the names that are not in set.
func missing(names []string, set []*resource) []string {
	keep := make(map[string]bool, len(set))
	for _, r := range set {
		keep[r.name] = true
	}
	var out []string
	for _, n := range names {
		if !keep[n] {
			out = append(out, n)
		}
	}
	return out
}
