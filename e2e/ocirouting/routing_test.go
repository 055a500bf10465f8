package ocirouting

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshward/meshward/e2e/internal/dataplane"
)

// The pods' addresses: loopback addresses no other e2e package uses.
const (
	v1Addr = "127.0.71.1"
	v2Addr = "127.0.71.2"
)

// TestRouteTables serves the route tables of manifests_test.go to a real
// gRPC-Go xDS client of identity shop/client, which dials the root Service
// (xds:///catalog.shop.svc.cluster.local:8080), and to xDS-enabled gRPC
// servers for catalog v1 and v2, each answering with its pod's name. It
// checks, in this order and against the same servers and client: which
// pod each method reaches (first matching rule, tables by priority), an
// 80/20 rule over 2,000 calls, unmatched calls going to the root Service,
// a rule's timeout, then, after live changes of the model, DENY default
// routing and a change of a table's priority.
func TestRouteTables(t *testing.T) {
	start := time.Now()
	w := newWorld(t)
	port, lis := dataplane.ListenPods(t, v1Addr, v2Addr)
	p := params{V1: v1Addr, V2: v2Addr, Port: port, FallbackPriority: 20}
	w.apply(t, p)
	if err := dataplane.StartPod(t, v1Pod, w.boot(t, catalogV1), lis[0], wait); err != nil {
		t.Fatal(err)
	}
	if err := dataplane.StartPod(t, v2Pod, w.boot(t, catalogV2), lis[1], wait); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, w.boot(t, clientID), rootTarget)
	dataplane.Eventually(t, wait, "the client reaches catalog", func() error {
		_, err := c.call("/shop.Catalog/List", 0)
		return err
	})
	t.Logf("mesh converged after %s", time.Since(start).Round(time.Millisecond))

	t.Run("first match wins, tables by priority", func(t *testing.T) {
		checkRoutes(t, c, []route{
			{"/shop.Catalog/List", v1Pod, "b-main[1]: b-main (priority 10) comes before a-fallback (priority 20), whose /shop. matches too"},
			{"/shop.Catalog/AdminReset", v2Pod, "b-main[0], written before b-main[1]"},
			{"/shop.Orders/Place", v2Pod, "b-main[2]"},
			{"/shop.Orders/Special", v2Pod, "b-main[2] matches first; the longer prefix of b-main[3] does not win"},
			{"/shop.Inventory/Count", v2Pod, "a-fallback[0], the only rule that matches"},
		})
	})

	t.Run("weighted rule 80/20", func(t *testing.T) {
		// b-main[4] is an isGrpc rule: were it not matched, the calls
		// would all go to v2 by a-fallback.
		const n = 2000
		pods, failed, err := c.count("/shop.Cart/Add", n)
		v1 := 100 * float64(pods[v1Pod]) / n
		t.Logf("%d calls of /shop.Cart/Add: %d (%.2f%%) to %s, %d (%.2f%%) to %s, failed %v",
			n, pods[v1Pod], v1, v1Pod, pods[v2Pod], 100*float64(pods[v2Pod])/n, v2Pod, failed)
		if len(failed) > 0 {
			t.Errorf("failed calls %v, the last: %v", failed, err)
		}
		if v1 < 77 || v1 > 83 || pods[v1Pod]+pods[v2Pod] != n {
			t.Errorf("served by %v, want 80%% ± 3 points by %s and the rest by %s", pods, v1Pod, v2Pod)
		}
	})

	t.Run("unmatched calls go to the root Service", func(t *testing.T) {
		// The root Service catalog selects both pods; every rule routes to
		// one. "/shopxCatalog/" shows the dot of /shop.Catalog/ and /shop.
		// is matched literally.
		for _, method := range []string{"/other.Thing/Call", "/shopxCatalog/List"} {
			const n = 100
			pods, failed, err := c.count(method, n)
			t.Logf("%d calls of %s (no rule matches): served by %v, failed %v", n, method, pods, failed)
			if len(failed) > 0 {
				t.Errorf("%s: failed calls %v, the last: %v", method, failed, err)
			}
			if pods[v1Pod] < n/4 || pods[v2Pod] < n/4 {
				t.Errorf("%s: served by %v, want both pods of the root Service, each at least %d times", method, pods, n/4)
			}
		}
	})

	t.Run("rule timeout", func(t *testing.T) {
		// b-main[5] bounds /shop.Slow/ calls to 500 ms; the server sleeps
		// for what the call asks.
		const timeout = 500 * time.Millisecond
		for range 3 {
			began := time.Now()
			pod, err := c.call("/shop.Slow/Wait", 4*timeout)
			took := time.Since(began)
			t.Logf("/shop.Slow/Wait with a %s answer: %v after %s", 4*timeout, err, took.Round(time.Millisecond))
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("/shop.Slow/Wait with a %s answer: served by %q, error %v; want DEADLINE_EXCEEDED", 4*timeout, pod, err)
			}
			if took < timeout || took >= 4*timeout {
				t.Errorf("/shop.Slow/Wait with a %s answer failed after %s, want after the rule's %s and before the answer", 4*timeout, took, timeout)
			}
			if pod, err := c.call("/shop.Slow/Wait", 50*time.Millisecond); err != nil || pod != v1Pod {
				t.Errorf("/shop.Slow/Wait with a 50ms answer: served by %q, error %v; want %s", pod, err, v1Pod)
			}
		}
		// The timeout is that rule's: another rule's call may take longer.
		if pod, err := c.call("/shop.Catalog/List", 2*timeout); err != nil || pod != v1Pod {
			t.Errorf("/shop.Catalog/List with a %s answer: served by %q, error %v; want %s", 2*timeout, pod, err, v1Pod)
		}
	})

	t.Run("default routing DENY", func(t *testing.T) {
		p.Deny = true
		w.apply(t, p)
		dataplane.Eventually(t, wait, "an unmatched call fails once catalog's default routing is DENY", func() error {
			_, err := c.call("/other.Thing/Call", 0)
			return noRoute(err)
		})
		for _, method := range []string{"/other.Thing/Call", "/shopxCatalog/List"} {
			const n = 50
			var last error
			denied := 0
			for range n {
				_, err := c.call(method, 0)
				if noRoute(err) == nil {
					denied++
				} else {
					last = err
				}
			}
			_, err := c.call(method, 0)
			t.Logf("%d calls of %s (no rule matches): %d failed with UNAVAILABLE for want of a route, e.g. %v", n, method, denied, err)
			if denied != n {
				t.Errorf("%s: %d of %d calls failed with UNAVAILABLE for want of a route; another: %v", method, denied, n, last)
			}
		}
		checkRoutes(t, c, []route{
			{"/shop.Catalog/List", v1Pod, "b-main[1]"},
			{"/shop.Inventory/Count", v2Pod, "a-fallback[0]"},
		})
	})

	t.Run("live change of a route table", func(t *testing.T) {
		testPriorityChange(t, w, p, c)
	})
}

// route is where the calls of a method must go, and why.
type route struct {
	method, pod, why string
}

// checkRoutes makes 50 calls of each method and checks that all went to
// the route's pod.
func checkRoutes(t *testing.T, c *client, routes []route) {
	t.Helper()
	const n = 50
	for _, r := range routes {
		pods, failed, err := c.count(r.method, n)
		t.Logf("%d calls of %s: served by %v, failed %v (%s)", n, r.method, pods, failed, r.why)
		if pods[r.pod] != n {
			t.Errorf("%s: served by %v, failed %v (the last: %v); want all by %s: %s", r.method, pods, failed, err, r.pod, r.why)
		}
	}
}

// noRoute checks that a call failed as a gRPC client fails a call no
// route matches.
func noRoute(err error) error {
	if err == nil {
		return errors.New("the call succeeded")
	}
	if s, _ := status.FromError(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "route") {
		return fmt.Errorf("the call failed with %w, want UNAVAILABLE for want of a route", err)
	}
	return nil
}

// testPriorityChange moves route table a-fallback (/shop. to v2) before
// b-main by changing its priority from 20 to 5 while the client calls
// /shop.Catalog/List without pause: the calls move from v1 (b-main[1]) to
// v2 with no failure, the servers and the client running on. Both pods
// stay destinations of the routes, so gRPC-Go knows every cluster the new
// routes use (see docs/xds.md, Server limits).
func testPriorityChange(t *testing.T, w *world, p params, c *client) {
	const window = 50
	caller := dataplane.StartCaller(t, window, func() (string, error) { return c.call("/shop.Catalog/List", 0) })
	dataplane.Eventually(t, wait, "calls of /shop.Catalog/List go to v1 before the change", caller.MostTo(v1Pod, window))
	before := caller.Served()
	caller.Forget()

	changed := time.Now()
	p.FallbackPriority = 5
	w.apply(t, p)
	dataplane.Eventually(t, wait, "calls of /shop.Catalog/List go to v2 once a-fallback has priority 5", caller.MostTo(v2Pod, window))
	took := time.Since(changed)
	caller.Stop()

	failed := caller.ReportFailures(t, "during the change")
	t.Logf("%d calls of /shop.Catalog/List while a-fallback's priority changed from 20 to 5: before the change %v, in all %v, %d failed; all of the last %d served by %s %s after the change",
		caller.Calls(), before, caller.Served(), failed, window, v2Pod, took.Round(time.Millisecond))

	// a-fallback now shadows every rule of b-main.
	checkRoutes(t, c, []route{
		{"/shop.Catalog/AdminReset", v2Pod, "a-fallback[0] now comes first"},
		{"/shop.Orders/Special", v2Pod, "a-fallback[0]"},
		{"/shop.Cart/Add", v2Pod, "a-fallback[0], not b-main[4]'s 80/20"},
	})
}
