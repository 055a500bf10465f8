package policy

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/meshward/meshward/policy/policytest"
)

func benchEngine(b *testing.B, n int, opts Options) *Engine {
	b.Helper()
	ctx := context.Background()
	e, err := New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Update(ctx, policytest.Generated(n)); err != nil {
		b.Fatal(err)
	}
	return e
}

func benchRequest(i int) Request {
	return Request{
		Source:      fmt.Sprintf("spiffe://cluster.local/ns/client-%d/sa/client", i),
		Destination: fmt.Sprintf("spiffe://cluster.local/ns/app-%d/sa/app", i),
		Port:        8080,
		Method:      "GET",
		Path:        "/api/v1/books?limit=10",
		Host:        fmt.Sprintf("app.app-%d:8080", i),
		Headers:     map[string]string{"user-agent": "bench/1.0", "x-request-id": "42"},
	}
}

// BenchmarkDecide measures one in-process HTTP decision (input building,
// evaluation and explanation) at 10, 1,000 and 10,000 TrafficTargets. The
// targets on a 2-core machine are at most 25 µs and 150 allocations per
// decision, flat within 1.5x from 10 to 10,000 targets.
//
// impl=decide decides the same request again and again (from the decision
// cache after the first); impl=decide-uncached has memoisation off, so
// every decision builds the input and evaluates the policy.
//
// The baseline is OPA's floor: a prepared query that reads nothing
// ("x = true") evaluated with an already-built input in its own read
// transaction, measured in the same run so the ratio stays meaningful on a
// noisy machine.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			r := benchRequest(n / 2)
			ctx := context.Background()
			var e *Engine
			for _, impl := range []struct {
				name string
				opts Options
			}{{"decide", Options{}}, {"decide-uncached", Options{CacheSize: -1}}} {
				e = benchEngine(b, n, impl.opts)
				if d, err := e.DecideRequest(ctx, r); err != nil || !d.Allowed {
					b.Fatalf("decision %+v, %v; want allowed", d, err)
				}
				b.Run("impl="+impl.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if d, err := e.DecideRequest(ctx, r); err != nil || !d.Allowed {
							b.Fatal("denied")
						}
					}
				})
			}
			b.Run("impl=baseline-opa-floor", func(b *testing.B) { opaFloor(b, e, r) })
		})
	}
}

// BenchmarkDecideDenied measures denied decisions, which also evaluate
// the explanation, at 1,000 TrafficTargets with memoisation off: a caller
// no TrafficTarget lists (denied=unlisted) and a listed caller whose
// request no match allows (denied=no-match).
func BenchmarkDecideDenied(b *testing.B) {
	e := benchEngine(b, 1000, Options{CacheSize: -1})
	unlisted := benchRequest(1)
	unlisted.Destination = "spiffe://cluster.local/ns/app-2/sa/app"
	noMatch := benchRequest(1)
	noMatch.Method = "DELETE"
	ctx := context.Background()
	for _, c := range []struct {
		name string
		r    Request
	}{{"unlisted", unlisted}, {"no-match", noMatch}} {
		b.Run("denied="+c.name+"/impl=decide", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, _ := e.DecideRequest(ctx, c.r); d.Allowed {
					b.Fatal("allowed")
				}
			}
		})
	}
	b.Run("impl=baseline-opa-floor", func(b *testing.B) { opaFloor(b, e, unlisted) })
}

// BenchmarkDecideMesh measures evaluated decisions over traffic that
// spreads across a mesh: 1,000 TrafficTargets, each with a path
// expression of its own, and every request for a different pair than the
// one before, with memoisation off. impl=decide keeps compiled
// expressions in the engine's cache (Options.RegexCacheSize); the
// baseline, impl=opa-regex-cache, leaves them to OPA's own cache of 100
// expressions, which such traffic keeps recompiling.
func BenchmarkDecideMesh(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = benchRequest(i)
		reqs[i].Path = policytest.DistinctPath(i)
	}
	for _, impl := range []struct {
		name string
		opts Options
	}{{"decide", Options{CacheSize: -1}}, {"opa-regex-cache", Options{CacheSize: -1, RegexCacheSize: -1}}} {
		e, err := New(ctx, impl.opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Update(ctx, policytest.DistinctPaths(n)); err != nil {
			b.Fatal(err)
		}
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if d, err := e.DecideRequest(ctx, reqs[i]); err != nil || !d.Allowed {
					b.Fatalf("decision %+v, %v; want allowed", d, err)
				}
				i = (i + 1) % n
			}
		})
	}
}

// opaFloor evaluates "x = true" with the input of r, as the baseline.
func opaFloor(b *testing.B, e *Engine, r Request) {
	ctx := context.Background()
	in, err := e.Input(r)
	if err != nil {
		b.Fatal(err)
	}
	pq, err := rego.New(rego.Query("x = true"), rego.Store(e.store)).PrepareForEval(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		txn, err := e.store.NewTransaction(ctx)
		if err != nil {
			b.Fatal(err)
		}
		_, err = pq.Eval(ctx, rego.EvalParsedInput(in), rego.EvalTransaction(txn),
			rego.EvalExternalCancel(neverCancel{}), rego.EvalMetrics(noMetrics))
		e.store.Abort(ctx, txn)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInput measures building the input document alone, a part of
// every decision.
func BenchmarkInput(b *testing.B) {
	e := benchEngine(b, 10, Options{})
	r := benchRequest(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Input(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDataMemory reports the heap that the policy data of 10,000
// TrafficTargets (20,000 identities) keeps once written to the engine's
// store, with the engine's identity index: the live heap after Update
// minus the live heap before it. The target is at most 50 MiB.
func BenchmarkDataMemory(b *testing.B) {
	const n = 10000
	m := policytest.Generated(n)
	ctx := context.Background()
	var heap float64
	for b.Loop() {
		e, err := New(ctx, Options{})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := e.Update(ctx, m); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(e)
	}
	b.ReportMetric(heap/(1<<20), "MiB/10k-targets")
}
