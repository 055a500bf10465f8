package nginxauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/nginxauth"
)

// withTargets adds n TrafficTargets to the model: target i lets
// client-i/client call app-i/app for GET /api/v1/... .
func withTargets(m *mesh.Model, n int) *mesh.Model {
	for i := range n {
		ns := fmt.Sprintf("app-%d", i)
		client, app := id(fmt.Sprintf("client-%d", i), "client"), id(ns, "app")
		m.Identities = append(m.Identities, app, client)
		m.Access = append(m.Access, mesh.AccessRule{
			Origin:      ref("TrafficTarget", ns, "client-access"),
			Destination: app,
			Sources:     []mesh.Identity{client},
			HTTP: []mesh.HTTPMatch{{
				Group: ref("HTTPRouteGroup", ns, "routes"), Name: "read", Methods: []string{"GET"}, PathRegex: "/api/v1/.*",
			}},
		})
	}
	return m
}

// callers is the number of concurrent clients of BenchmarkNginxEndpoint.
const callers = 64

// BenchmarkNginxEndpoint measures the nginx auth endpoint over HTTP on
// loopback with 64 concurrent keep-alive clients, as nginx workers send
// auth subrequests, for a mesh request (the caller's principal in
// X-Client-Principal) in a model of 1,000 TrafficTargets. The baseline,
// measured in the same run, is a handler that answers 200 without
// looking: `benchstat -col /impl` gives the endpoint's throughput as a
// fraction of it. impl=meshward serves the same subrequest again and
// again (decisions from the cache after the first); impl=meshward-uncached
// has memoisation off.
func BenchmarkNginxEndpoint(b *testing.B) {
	ctx := context.Background()
	handler := func(opts policy.Options) http.Handler {
		e, err := policy.New(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Update(ctx, withTargets(model(), 1000)); err != nil {
			b.Fatal(err)
		}
		h, err := nginxauth.New(e, nginxauth.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	noop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
	})
	headers := http.Header{
		"X-Original-Url":     {"http://app.app-500:8080/api/v1/books?limit=10"},
		"X-Original-Method":  {"GET"},
		"X-Client-Principal": {"spiffe://cluster.local/ns/client-500/sa/client"},
		"X-Real-Ip":          {"10.1.0.7"},
		"User-Agent":         {"bench/1.0"},
		"Accept":             {"application/json"},
	}
	for _, impl := range []struct {
		name string
		h    http.Handler
	}{{"noop", noop}, {"meshward", handler(policy.Options{})}, {"meshward-uncached", handler(policy.Options{CacheSize: -1})}} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			url := serveHTTP(b, impl.h) + "/v1/mesh/app-500/app?port=8080"
			c := &http.Client{
				Transport: &http.Transport{Proxy: nil, MaxIdleConns: callers, MaxIdleConnsPerHost: callers},
				Timeout:   10 * time.Second,
			}
			// Close the client's connections before the server shuts
			// down (cleanups run last first), so that it need not wait
			// for connections that never sent a request.
			b.Cleanup(c.CloseIdleConnections)
			call := func() error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return err
				}
				req.Header = headers.Clone()
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d: %s", resp.StatusCode, resp.Header.Get(nginxauth.HeaderReason))
				}
				return nil
			}
			if err := call(); err != nil {
				b.Fatal(err)
			}
			p := runtime.GOMAXPROCS(0)
			b.SetParallelism((callers + p - 1) / p)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
