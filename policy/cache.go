package policy

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshward/meshward/internal/pathnorm"
	"github.com/meshward/meshward/mesh"
)

// DefaultCacheSize is the number of decisions the engine memoises when
// Options.CacheSize is 0.
const DefaultCacheSize = 10000

// maxKeyBytes bounds the strings of a memoised request's key (principals,
// method, path, header values, ingress and egress details): a larger
// request is evaluated every time, so that a full cache stays small
// whatever its clients send (a denial's reason repeats the path, so an
// entry holds at most about twice this).
const maxKeyBytes = 1024

// decisionCache memoises the decisions of one policy over one model. The
// built-in policy is a pure function of the data document and of a few
// fields of the request, so two requests that agree on those fields get
// the same decision: the cache is keyed by them (decisionKey). User
// modules may read anything, so with user modules loaded nothing is
// memoised.
//
// A cache belongs to one policy and one data document: the engine
// replaces it, empty, after every SetUserModules and every Update that
// changes the data document. A decision loads the
// cache before the policy and the model, so whatever it stores was
// decided with state at least as new as the cache's; a decision made with
// newer state lands in a cache that is already being replaced.
type decisionCache struct {
	lru *lru.Cache[decisionKey, Decision]
	// headers are the header names that the model's HTTP matches read,
	// sorted: their values are part of the key.
	headers []string
	// query is true when the query string is part of the key: a match
	// reads :path.
	query   bool
	metrics *cacheMetrics
}

// decisionKey is what the built-in policy reads of a request: the
// principals (or identities) as given, which the model resolves the same
// way every time, the protocol and port, the method and the path as
// received (normalisation is a function of it), the values of the headers
// the model's matches name, and the ingress or egress details (client
// address and principal, external host, server name and address). The
// query string is part of the key only when a match names :path, the one
// header that carries it; otherwise requests that differ only in their
// query share an entry.
type decisionKey struct {
	source, destination string
	protocol            Protocol
	port                uint32
	method, path        string
	headers             string
	// ingress and egress are set when isIngress and isEgress are.
	isIngress, isEgress bool
	ingress             Ingress
	egress              Egress
}

// cacheMetrics count cache lookups by result.
type cacheMetrics struct {
	hit, miss, bypass prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshward_policy_decision_cache_total",
		Help: "Decisions by how the decision cache served them: hit (memoised), miss (evaluated and memoised) or bypass (evaluated, not memoisable: user modules loaded, a query string normalisation refuses, or a request larger than the cache keeps).",
	}, []string{"result"})
	if reg != nil {
		if err := reg.Register(v); err != nil {
			// Another engine registered it: count into the same series.
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
					v = existing
				}
			}
		}
	}
	return &cacheMetrics{hit: v.WithLabelValues("hit"), miss: v.WithLabelValues("miss"), bypass: v.WithLabelValues("bypass")}
}

// newDecisionCache returns an empty cache of size entries for a model
// whose HTTP matches read the given headers; nil when size is negative
// (memoisation off).
func newDecisionCache(size int, headers []string, m *cacheMetrics) *decisionCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	c, err := lru.New[decisionKey, Decision](size)
	if err != nil {
		return nil // cannot happen: size is positive
	}
	_, query := slices.BinarySearch(headers, ":path")
	return &decisionCache{lru: c, headers: headers, query: query, metrics: m}
}

// key returns the key of r, and false when its decision must not be
// memoised: no cache, user modules in the policy, a query that
// normalisation refuses, or a key over maxKeyBytes.
func (c *decisionCache) key(p *compiledPolicy, r Request) (decisionKey, bool) {
	if c == nil {
		return decisionKey{}, false
	}
	if p == nil || len(p.user) > 0 {
		c.metrics.bypass.Inc()
		return decisionKey{}, false
	}
	k := decisionKey{
		source: r.Source, destination: r.Destination,
		protocol: r.Protocol, port: r.Port,
	}
	if r.Ingress != nil {
		k.isIngress, k.ingress = true, *r.Ingress
	}
	if r.Egress != nil {
		k.isEgress, k.egress = true, *r.Egress
	}
	if k.protocol == "" {
		k.protocol = ProtocolHTTP
	}
	if k.protocol == ProtocolHTTP {
		k.method, k.path = r.Method, r.Path
		if path, query, ok := strings.Cut(r.Path, "?"); ok && !c.query {
			// A query that normalisation refuses makes the request a
			// deny of its own: evaluate it.
			if !pathnorm.ValidQuery(query) {
				c.metrics.bypass.Inc()
				return decisionKey{}, false
			}
			k.path = path
		}
		if len(c.headers) > 0 {
			k.headers = headerValues(r, c.headers)
		}
	}
	if k.size() > maxKeyBytes {
		c.metrics.bypass.Inc()
		return decisionKey{}, false
	}
	return k, true
}

// size is the length of the key's strings.
func (k *decisionKey) size() int {
	return len(k.source) + len(k.destination) + len(k.method) + len(k.path) + len(k.headers) +
		len(k.ingress.Backend) + len(k.ingress.Address) + len(k.ingress.Principal) +
		len(k.egress.Host) + len(k.egress.SNI) + len(k.egress.Address)
}

// headerValues encodes the values that the input's headers object holds
// for names (as headersTerm builds it): present or not, and the value,
// length-prefixed so that no two lists encode alike. :method and :path
// are already in the key; other pseudo-headers and "host" are never in
// the headers object except :authority, the request's host.
func headerValues(r Request, names []string) string {
	b := make([]byte, 0, 64)
	for _, n := range names {
		var v string
		var ok bool
		switch {
		case n == ":authority":
			v = hostOf(r)
			ok = v != ""
		case n == ":method" || n == ":path" || n == "host" || strings.HasPrefix(n, ":"):
			continue
		default:
			if v, ok = r.Headers[n]; !ok {
				for k, x := range r.Headers {
					if strings.EqualFold(k, n) {
						v, ok = x, true
						break
					}
				}
			}
		}
		if !ok {
			b = append(b, '-')
			continue
		}
		b = append(b, '+')
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	return string(b)
}

// get returns the memoised decision of k.
func (c *decisionCache) get(k decisionKey) (Decision, bool) {
	d, ok := c.lru.Get(k)
	if ok {
		c.metrics.hit.Inc()
	} else {
		c.metrics.miss.Inc()
	}
	return d, ok
}

// put memoises d, a decision before dry-run mode. Its Matched slice is
// shared by every decision served from the cache: callers do not modify
// decisions.
func (c *decisionCache) put(k decisionKey, d Decision) {
	c.lru.Add(k, d)
}

// matchedHeaders lists the header names that the model's HTTP matches
// read, sorted and without repeats.
func matchedHeaders(m *mesh.Model) []string {
	if m == nil {
		return nil
	}
	var out []string
	for i := range m.Access {
		for _, h := range m.Access[i].HTTP {
			for _, hm := range h.Headers {
				out = append(out, strings.ToLower(hm.Name))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
