package policy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshward/meshward/internal/promtest"
	"github.com/meshward/meshward/mesh"
)

// cacheCorpus is a set of requests over cacheModel that exercises every
// field the decision cache keys on: principals in both forms, unknown
// identities, methods, paths (with queries, dot segments, encodings),
// header matches in any case, :authority, ports and protocols.
func cacheCorpus() []Request {
	spiffeBuyer := "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
	spiffeStore := "spiffe://cluster.local/ns/bookstore/sa/bookstore"
	var out []Request
	for _, src := range []string{buyer, thief, spiffeBuyer, "bookbuyer.bookbuyer.cluster.local", ""} {
		for _, dst := range []string{store, warehouse, spiffeStore, ""} {
			for _, path := range []string{
				"/books-bought?limit=1", "/books-bought?limit=2", "/books-bought?%zz", "/books-bought?a=\x01",
				"/x/../books-bought", "/BOOKS-BOUGHT", "/buy-a-book//new", "/%62uy-a-book/new",
				"/restock-books", "/restock-books?token=ok", "/restock-books?token=no",
			} {
				for _, method := range []string{"GET", "POST"} {
					for _, h := range []map[string]string{
						nil,
						{"user-agent": "bookbuyer/1.0"},
						{"User-Agent": "bookbuyer/2.0"},
						{"user-agent": "curl/8.0"},
						{"user-agent": "bookbuyer/1.0", ":authority": "bookstore.example"},
					} {
						out = append(out, Request{Source: src, Destination: dst, Method: method, Path: path, Headers: h})
					}
				}
			}
			for _, port := range []uint32{0, 14001, 8080} {
				out = append(out, Request{Source: src, Destination: dst, Protocol: ProtocolTCP, Port: port})
				out = append(out, Request{Source: src, Destination: dst, Protocol: ProtocolUDP, Port: port})
			}
			out = append(out, Request{Source: src, Destination: dst, Method: "GET", Path: "/books-bought", Host: "bookstore.example"})
		}
	}
	return out
}

// cacheModel is the bookstore with matches on :authority and :path, so
// that the request's host and query are part of some decisions.
func cacheModel() *mesh.Model {
	m := bookstore()
	m.Access = append(m.Access, mesh.AccessRule{
		Origin:      ref("TrafficTarget", "bookwarehouse", "by-host"),
		Destination: id("bookwarehouse", "bookwarehouse"),
		Sources:     []mesh.Identity{id("bookbuyer", "bookbuyer")},
		HTTP: []mesh.HTTPMatch{{
			Group: ref("HTTPRouteGroup", "bookwarehouse", "hosts"), Name: "by-host",
			Headers: []mesh.HeaderMatch{{Name: ":authority", Regex: "bookstore\\.example"}},
		}},
	}, mesh.AccessRule{
		Origin:      ref("TrafficTarget", "bookwarehouse", "by-token"),
		Destination: id("bookwarehouse", "bookwarehouse"),
		Sources:     []mesh.Identity{id("bookthief", "bookthief")},
		HTTP: []mesh.HTTPMatch{{
			Group: ref("HTTPRouteGroup", "bookwarehouse", "tokens"), Name: "by-token",
			Headers: []mesh.HeaderMatch{{Name: ":path", Regex: ".*[?&]token=ok(&.*)?"}},
		}},
	})
	return m
}

// TestCacheAgreesWithEvaluation decides every request of the corpus with
// memoisation on (twice: evaluated from the lean input, then served from
// the cache) and off with the whole input, and wants the same decision
// every time.
func TestCacheAgreesWithEvaluation(t *testing.T) {
	for _, mode := range []struct {
		name       string
		permissive bool
		dryRun     bool
		noHeaders  bool
	}{{"default", false, false, false}, {"permissive", true, false, false}, {"dry-run", false, true, false}, {"no header matches", false, false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			m := cacheModel()
			m.Options.Permissive = mode.permissive
			if mode.noHeaders {
				for i := range m.Access {
					for j := range m.Access[i].HTTP {
						m.Access[i].HTTP[j].Headers = nil
					}
				}
			}
			assertAgreement(t, m, mode.dryRun, cacheCorpus())
		})
	}
}

// TestCacheAgreesOnIngressAndEgress does the same for ingress requests
// (client addresses and principals) and requests leaving the mesh
// (external hosts, server names, addresses).
func TestCacheAgreesOnIngressAndEgress(t *testing.T) {
	m := ingressModel()
	m.Egress = egressModel().Egress
	var corpus []Request
	for _, backend := range []string{"bookstore/bookstore-v1", "bookstore/bookstore-v2"} {
		for _, port := range []uint32{14001, 14443, 8080} {
			for _, addr := range []string{"10.3.0.5", "192.168.7.1", "172.16.0.1", "10.1.2.3", ""} {
				for _, principal := range []string{"", "nginx.ingress.cluster.local", "other.ingress.cluster.local"} {
					for _, path := range []string{"/", "/books?page=1", "/books?page=2"} {
						corpus = append(corpus, Request{Method: "GET", Path: path, Ingress: &Ingress{Backend: backend, Port: port, Address: addr, Principal: principal}})
					}
				}
			}
		}
	}
	for _, src := range []string{buyer, thief, "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"} {
		for _, port := range []uint32{80, 443, 5432, 8080} {
			for _, host := range []string{"api.books.example", "API.Books.Example.:80", "img.cdn.example", "evil.example", ""} {
				corpus = append(corpus, Request{Source: src, Port: port, Method: "GET", Path: "/catalogue", Egress: &Egress{Host: host}})
			}
			for _, eg := range []Egress{{SNI: "pay.example"}, {SNI: "pay.example.evil"}, {Host: "pay.example"}, {Address: "10.20.1.2"}, {Address: "fd00:20::5"}, {Address: "10.30.1.2"}, {Address: "not-an-address"}} {
				corpus = append(corpus, Request{Source: src, Port: port, Protocol: ProtocolTCP, Egress: &eg})
			}
		}
	}
	assertAgreement(t, m, false, corpus)
}

// assertAgreement decides every request of corpus twice with memoisation
// on and off and wants the same decisions, both allows and denies among
// them, and the second round served from the cache except for requests
// whose input cannot be built (their denials are not memoised).
//
// The reference evaluates the whole input document with OPA's evaluator
// (a user module is loaded); the others evaluate the built-in policy
// alone from the lean input: memoised, from its plans, and with OPA's
// evaluator.
func assertAgreement(t *testing.T, m *mesh.Model, dryRun bool, corpus []Request) {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cached := newEngine(t, Options{DryRun: dryRun, Registry: reg}, m, nil)
	// A user module that changes nothing makes the engine evaluate every
	// request with the whole input document.
	noop := map[string]string{"noop.rego": "package meshward.ext\n\ndeny contains \"never\" if false\n"}
	plain := newEngine(t, Options{DryRun: dryRun, CacheSize: -1}, m, noop)
	others := []struct {
		name string
		e    *Engine
	}{
		{"memoised", cached},
		{"planned", newEngine(t, Options{DryRun: dryRun, CacheSize: -1}, m, nil)},
		{"OPA's evaluator, lean input", newEngine(t, Options{DryRun: dryRun, CacheSize: -1, Evaluator: EvaluatorOPA}, m, nil)},
	}
	if others[0].e.policy.Load().decidePlan == nil || others[1].e.policy.Load().decidePlan == nil {
		t.Fatal("the built-in policy is not planned")
	}
	allowed := 0
	var hits, misses float64
	for round := range 2 {
		hits, misses = counter(t, reg, "hit"), counter(t, reg, "miss")
		for _, r := range corpus {
			want, werr := plain.DecideRequest(ctx, r)
			for _, o := range others {
				got, gerr := o.e.DecideRequest(ctx, r)
				if (werr == nil) != (gerr == nil) || got.Allowed != want.Allowed || got.Reason != want.Reason ||
					!slices.Equal(got.Matched, want.Matched) || got.DryRun != want.DryRun {
					t.Fatalf("round %d, request %+v (ingress %+v, egress %+v):\n%s %+v, %v\nevaluated %+v, %v", round, r, r.Ingress, r.Egress, o.name, got, gerr, want, werr)
				}
			}
			if want.Allowed && !strings.HasPrefix(want.Reason, "dry run") {
				allowed++
			}
		}
	}
	if allowed == 0 || allowed == 2*len(corpus) {
		t.Fatalf("%d of %d decisions allowed: the corpus does not tell allowed from denied", allowed, 2*len(corpus))
	}
	invalid := 0
	for _, r := range corpus {
		if _, err := plain.Input(r); err != nil {
			invalid++
		}
	}
	hits, misses = counter(t, reg, "hit")-hits, counter(t, reg, "miss")-misses
	if hits == 0 || misses > float64(invalid) {
		t.Fatalf("second round of %d requests: %v cache hits, %v misses; want hits, and misses only for the %d invalid requests", len(corpus), hits, misses, invalid)
	}
}

// TestCacheKeysOnHeaderValues alternates one request with and without the
// header its match needs: each decision follows the header.
func TestCacheKeysOnHeaderValues(t *testing.T) {
	e := newEngine(t, Options{}, bookstore(), nil)
	for i := range 6 {
		ua := "curl/8.0"
		if i%2 == 0 {
			ua = "bookbuyer/1.0"
		}
		d, err := e.DecideRequest(context.Background(), get(buyer, store, "/buy-a-book/new", map[string]string{"user-agent": ua}))
		if err != nil || d.Allowed != (i%2 == 0) {
			t.Fatalf("decision %d with user-agent %q: %+v, %v", i, ua, d, err)
		}
	}
}

// TestCacheFollowsPolicyAndModel checks that a memoised decision never
// outlives the policy or the model it was made with, and that user
// modules turn memoisation off.
func TestCacheFollowsPolicyAndModel(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	e := newEngine(t, Options{Registry: reg}, bookstore(), nil)
	req := get(buyer, store, "/books-bought", nil)
	decide := func(want bool, when string) Decision {
		t.Helper()
		var first Decision
		for i := range 2 {
			d, err := e.DecideRequest(ctx, req)
			if err != nil || d.Allowed != want {
				t.Fatalf("%s (decision %d): %+v, %v; want allowed=%v", when, i, d, err, want)
			}
			if i == 0 {
				first = d
			} else if d.ID == first.ID {
				t.Fatalf("%s: a memoised decision repeats the id %s", when, d.ID)
			}
			// The first decision after a change is evaluated; the second
			// is memoised unless user modules are loaded.
			if wantMemo := i == 1 && len(e.UserModules()) == 0; d.Memoised != wantMemo {
				t.Fatalf("%s (decision %d): memoised %v, want %v", when, i, d.Memoised, wantMemo)
			}
		}
		return first
	}
	decide(true, "built-in policy")
	deny := map[string]string{"deny.rego": "package meshward.ext\n\ndeny contains \"closed for inventory\" if input.attributes.request.http.method == \"GET\"\n"}
	if err := e.SetUserModules(ctx, deny); err != nil {
		t.Fatal(err)
	}
	before := counter(t, reg, "bypass")
	decide(false, "with a user deny")
	if got := counter(t, reg, "bypass") - before; got != 2 {
		t.Fatalf("%v decisions bypassed the cache with a user module loaded; want 2", got)
	}
	if err := e.SetUserModules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	decide(true, "user module removed")
	// A model that changes nothing the policy reads (a new Service) keeps
	// the memoised decisions.
	withService := bookstore()
	withService.Services = append(withService.Services, mesh.Service{ServiceKey: mesh.ServiceKey{Namespace: "bookstore", Name: "extra"}})
	if err := e.Update(ctx, withService); err != nil {
		t.Fatal(err)
	}
	if d, err := e.DecideRequest(ctx, req); err != nil || !d.Allowed || !d.Memoised {
		t.Fatalf("after a model change the policy does not read: %+v, %v; want the memoised allow", d, err)
	}
	empty := &mesh.Model{Options: mesh.DefaultOptions(), Identities: bookstore().Identities}
	if err := e.Update(ctx, empty); err != nil {
		t.Fatal(err)
	}
	decide(false, "access rules removed")
	if err := e.Update(ctx, bookstore()); err != nil {
		t.Fatal(err)
	}
	decide(true, "access rules back")
}

// TestCacheSkipsLargeRequests checks that a request whose key would be
// large (here a 2 KiB path) is evaluated every time, so that clients
// cannot fill the cache with large entries.
func TestCacheSkipsLargeRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEngine(t, Options{Registry: reg}, bookstore(), nil)
	long := get(buyer, store, "/books-bought/"+strings.Repeat("x", 2048), nil)
	short := get(buyer, store, "/books-bought/x", nil)
	for i := range 2 {
		for _, r := range []Request{long, short} {
			d, err := e.DecideRequest(context.Background(), r)
			if err != nil || !d.Allowed {
				t.Fatalf("decision %+v, %v; want allowed", d, err)
			}
			if want := i == 1 && r.Path == short.Path; d.Memoised != want {
				t.Fatalf("round %d, path of %d bytes: memoised %v, want %v", i, len(r.Path), d.Memoised, want)
			}
		}
	}
	if got := counter(t, reg, "bypass"); got != 2 {
		t.Fatalf("%v bypasses; want 2 (the long request, twice)", got)
	}
}

// counter reads meshward_policy_decision_cache_total{result}.
func counter(t *testing.T, g prometheus.Gatherer, result string) float64 {
	t.Helper()
	return promtest.Sum(t, g, "meshward_policy_decision_cache_total", map[string]string{"result": result})
}
