package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
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

// built is the outcome of translating one identity's own (inbound)
// resources, or the endpoints: the resources by type URL, or the stage
// that failed.
type built struct {
	id    mesh.Identity
	sets  map[string][]*resource
	names nameSet
	stage string
	err   error
}

// shared is the outcome of translating the resources every identity
// gets (the outbound side): interned, validated and checked once per
// model, and published beside each identity's own resources.
type shared struct {
	sets  map[string][]*resource
	names nameSet
	// dangling are the references of the shared resources that neither
	// they nor the endpoints resolve: each identity's own resources must.
	dangling []reference
	stage    string
	err      error

	// prev is the shared resources of the update before, and changed
	// and removed what differs from them, by type URL: an identity that
	// holds prev needs only these.
	prev    *shared
	changed map[string][]*resource
	removed map[string][]string
}

// diff sets sh.changed and sh.removed from prev. Resources are interned,
// so an unchanged one is the same *resource.
func (sh *shared) diff(prev *shared) {
	sh.prev = prev
	sh.changed = map[string][]*resource{}
	sh.removed = map[string][]string{}
	for _, t := range perIdentityTypes {
		old := make(map[string]*resource, len(prev.sets[t]))
		for _, r := range prev.sets[t] {
			old[r.name] = r
		}
		for _, r := range sh.sets[t] {
			if old[r.name] != r {
				sh.changed[t] = append(sh.changed[t], r)
			}
		}
		for _, r := range prev.sets[t] {
			if !sh.names[t][r.name] {
				sh.removed[t] = append(sh.removed[t], r.name)
			}
		}
	}
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
	case *tlsv3.Secret:
		return m.GetName()
	}
	return ""
}

// Update translates the model for every identity in it and for the
// endpoints, and publishes what changed: each identity's listeners,
// routes and clusters to its nodes, the endpoints to every node that
// asks for them. A resource whose bytes did not change is not sent again,
// so an identity that the change does not concern gets no push.
//
// The outbound side, the same for every identity, is translated,
// validated and checked once per model and shared; only each identity's
// inbound side is translated per identity.
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

	// The endpoints and the shared resources, side by side.
	var eds *built
	done := make(chan struct{})
	go func() {
		defer close(done)
		eds = s.buildEndpoints(m, in)
	}()
	sh := s.buildShared(m, in)
	<-done
	edsNames := nameSet{resourcev3.EndpointType: map[string]bool{}}
	if eds.err == nil {
		edsNames = eds.names
	} else {
		for _, name := range s.eds.names() {
			edsNames[resourcev3.EndpointType][name] = true
		}
	}
	var results []*built
	if sh.err == nil {
		sh.dangling = dangling(sh.sets, sh.names, edsNames)
		if s.shared != nil {
			sh.diff(s.shared)
		}
		results = s.buildIdentities(m, in, sh, edsNames)
		s.shared = sh
	}

	var errs []error
	if eds.err != nil {
		s.metrics.updateFailures.WithLabelValues(eds.stage).Inc()
		s.log.Error(eds.err, "endpoints rejected; the last good ones are kept", "stage", eds.stage)
		errs = append(errs, fmt.Errorf("endpoints: %w", eds.err))
	} else {
		s.eds.update(nil, eds.sets[resourcev3.EndpointType])
	}
	if sh.err != nil {
		s.metrics.updateFailures.WithLabelValues(sh.stage).Add(float64(len(m.Identities)))
		s.log.Error(sh.err, "the outbound xDS resources, shared by every identity, were rejected; every identity keeps its last good resources", "stage", sh.stage, "identities", len(m.Identities))
		errs = append(errs, fmt.Errorf("outbound resources of every identity: %w", sh.err))
	}
	if s.secrets != nil {
		byID, failed, bundleErr := s.secrets.refresh(m.Identities, time.Now())
		s.publishSecrets(byID)
		if err := s.reportSecretFailures(failed, bundleErr); err != nil {
			errs = append(errs, fmt.Errorf("certificates: %w", err))
		}
	}
	inModel := make(map[mesh.Identity]bool, len(m.Identities))
	for _, id := range m.Identities {
		inModel[id] = true
	}
	var wg sync.WaitGroup
	for _, b := range results {
		if b.err != nil {
			s.metrics.updateFailures.WithLabelValues(b.stage).Inc()
			s.log.Error(b.err, "xDS resources of an identity rejected; its last good ones are kept", "identity", b.id.String(), "stage", b.stage)
			errs = append(errs, fmt.Errorf("identity %s: %w", b.id, b.err))
			continue
		}
		st := s.state(b.id)
		wg.Go(func() { s.publish(st, sh, b) })
	}
	wg.Wait()
	s.withdraw(inModel)
	if eds.err == nil {
		s.eds.update(s.eds.unused(eds.names[resourcev3.EndpointType]))
	}
	s.interned = in.next
	s.metrics.updates.Inc()
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrRejected, errors.Join(errs...))
	}
	return nil
}

// item is a translated resource to intern.
type item struct {
	typeURL string
	msg     proto.Message
}

// items lists translated resources, listeners first, then routes, then
// clusters.
func items(res *translate.Resources) []item {
	out := make([]item, 0, len(res.Listeners)+len(res.Routes)+len(res.Clusters))
	for _, l := range res.Listeners {
		out = append(out, item{resourcev3.ListenerType, l})
	}
	for _, rc := range res.Routes {
		out = append(out, item{resourcev3.RouteType, rc})
	}
	for _, c := range res.Clusters {
		out = append(out, item{resourcev3.ClusterType, c})
	}
	return out
}

// parallelMin is the number of resources below which internAll works on
// one goroutine.
const parallelMin = 256

// internAll interns the items on every core, and returns their resources
// by type URL with their names, or the error of the first item (in
// order) that failed.
func internAll(in *interner, its []item, scratch *[]byte) (map[string][]*resource, nameSet, error) {
	out := make([]*resource, len(its))
	errs := make([]error, len(its))
	work := func(lo, hi int, scratch *[]byte) {
		for i := lo; i < hi; i++ {
			out[i], errs[i] = in.intern(its[i].typeURL, its[i].msg, scratch)
			if errs[i] != nil {
				return
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(its)/parallelMin+1)
	if workers <= 1 {
		work(0, len(its), scratch)
	} else {
		var wg sync.WaitGroup
		chunk := (len(its) + workers - 1) / workers
		for lo := 0; lo < len(its); lo += chunk {
			wg.Go(func() {
				var scratch []byte
				work(lo, min(lo+chunk, len(its)), &scratch)
			})
		}
		wg.Wait()
	}
	sets := map[string][]*resource{}
	for i, r := range out {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		if r == nil { // after a failure in the same chunk
			continue
		}
		sets[its[i].typeURL] = append(sets[its[i].typeURL], r)
	}
	return sets, namesOf(sets), nil
}

// buildEndpoints translates and validates the endpoints.
func (s *Server) buildEndpoints(m *mesh.Model, in *interner) *built {
	b := &built{}
	claims := translate.Endpoints(m, s.opts.Translate)
	its := make([]item, len(claims))
	for i, cla := range claims {
		its[i] = item{resourcev3.EndpointType, cla}
	}
	var scratch []byte
	var err error
	if b.sets, b.names, err = internAll(in, its, &scratch); err != nil {
		b.stage, b.err = stageValidate, err
	}
	return b
}

// buildShared translates and validates the resources every identity
// gets. Update then checks their references: those that neither they nor
// the endpoints resolve are kept for each identity's own resources to
// resolve.
func (s *Server) buildShared(m *mesh.Model, in *interner) *shared {
	sh := &shared{}
	res, err := translate.Outbound(m, s.opts.Translate)
	if err != nil {
		sh.stage, sh.err = stageTranslate, err
		return sh
	}
	var scratch []byte
	if sh.sets, sh.names, err = internAll(in, items(res), &scratch); err != nil {
		sh.stage, sh.err = stageValidate, err
	}
	return sh
}

// buildIdentities translates, validates and checks the own resources of
// every identity of the model, in parallel.
func (s *Server) buildIdentities(m *mesh.Model, in *interner, sh *shared, eds nameSet) []*built {
	results := make([]*built, len(m.Identities))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(m.Identities)) {
		wg.Go(func() {
			var scratch []byte
			for i := range next {
				results[i] = s.buildIdentity(m, m.Identities[i], in, sh, eds, &scratch)
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

// buildIdentity translates the identity's own resources, validates them,
// and checks that, with the shared resources and the endpoints, they
// refer only to what exists.
func (s *Server) buildIdentity(m *mesh.Model, id mesh.Identity, in *interner, sh *shared, eds nameSet, scratch *[]byte) *built {
	b := &built{id: id}
	res, err := translate.Inbound(m, id, s.opts.Translate)
	if err != nil {
		b.stage, b.err = stageTranslate, err
		return b
	}
	if b.sets, b.names, err = internAll(in, items(res), scratch); err != nil {
		b.stage, b.err = stageValidate, err
		return b
	}
	refs := dangling(b.sets, b.names, sh.names, eds)
	for _, ref := range sh.dangling {
		if !ref.resolved(b.names) {
			refs = append(refs, ref)
		}
	}
	if err := inconsistent(refs); err != nil {
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
		st = s.newIdentityState(id)
		s.identities[id] = st
	}
	return st
}

// publish sets an identity's resources, the shared ones and its own,
// make before break: new and changed clusters, then routes, then the
// listeners (added, changed and removed), then the routes and clusters no
// longer used are removed. An identity published for the first time is
// then activated: the nodes that were waiting get their configuration.
//
// An identity that holds the shared resources of the update before gets
// only what changed in them: its cost does not grow with the mesh.
func (s *Server) publish(st *identityState, sh *shared, own *built) {
	incremental := st.shared != nil && st.shared == sh.prev
	unused := func(c *typeCache, t string) []string {
		if !incremental {
			return c.unused(sh.names[t], own.names[t])
		}
		var out []string
		for _, name := range sh.removed[t] {
			if !own.names[t][name] {
				out = append(out, name)
			}
		}
		for name := range st.own[t] {
			if !own.names[t][name] && !sh.names[t][name] {
				out = append(out, name)
			}
		}
		return out
	}
	for _, t := range perIdentityTypes {
		c := st.caches[t]
		var del []string
		if t == resourcev3.ListenerType {
			del = unused(c, t)
		}
		if incremental {
			c.update(del, sh.changed[t], own.sets[t])
		} else {
			c.update(del, sh.sets[t], own.sets[t])
		}
	}
	for _, t := range []string{resourcev3.RouteType, resourcev3.ClusterType} {
		c := st.caches[t]
		c.update(unused(c, t))
	}
	st.shared, st.own = sh, own.names
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
			for _, t := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.SecretType} {
				if c := st.caches[t]; c != nil {
					c.update(c.names())
				}
			}
			st.shared, st.own = nil, nil
			st.active.Store(false)
			s.log.Info("identity left the mesh; its xDS resources are withdrawn", "identity", id.String())
		}
		if st.watches.Load() == 0 {
			delete(s.identities, id)
		}
	}
	s.metrics.identities.Set(float64(active))
}
