package policy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/meshward/meshward/internal/cli"
)

// check asks the ext_authz server of m about an HTTP request from src to
// dst and returns whether it is allowed, with the reason.
func (m *meshward) check(t *testing.T, src, dst, method, path string) (bool, string) {
	t.Helper()
	r := row{src: src, dst: dst, port: port, method: method, path: path}
	v := viaExtAuthz(t, m, r)
	return v.allowed, v.reason
}

// askNginx asks the nginx auth endpoint of m the same.
func (m *meshward) askNginx(t *testing.T, src, dst, method, path string) (bool, string) {
	t.Helper()
	v := viaNginxEndpoint(t, m, row{src: src, dst: dst, port: port, method: method, path: path}, true)
	return v.allowed, v.reason
}

// TestBrokenPolicyChangesNoDecision edits the policies of a running
// meshward serve: a valid policy takes effect; a policy that does not
// compile is reported with its file and line, and every decision stays as
// it was; meshward check refuses the directory, naming the same place.
func TestBrokenPolicyChangesNoDecision(t *testing.T) {
	dir := copyExample(t, nil)
	m := serve(t, dir)

	type probe struct{ src, dst, method, path string }
	probes := []probe{
		{buyer, store, "GET", "/books-bought"},
		{buyer, store, "POST", "/update-books-bought"},
		{thief, store, "GET", "/books-bought"},
		{store, warehouse, "POST", "/restock-books"},
	}
	decisions := func() map[probe]string {
		out := map[probe]string{}
		for _, p := range probes {
			allowed, reason := m.check(t, p.src, p.dst, p.method, p.path)
			nginxAllowed, nginxReason := m.askNginx(t, p.src, p.dst, p.method, p.path)
			if allowed != nginxAllowed || reason != nginxReason {
				t.Errorf("%v: ext_authz says %v (%s), the nginx endpoint %v (%s)", p, allowed, reason, nginxAllowed, nginxReason)
			}
			out[p] = fmt.Sprintf("%v: %s", allowed, reason)
		}
		return out
	}
	initial := decisions()
	if !strings.HasPrefix(initial[probes[0]], "true: ") || !strings.HasPrefix(initial[probes[2]], "false: ") {
		t.Fatalf("unexpected initial decisions: %v", initial)
	}

	// A valid policy: the bookstore is read-only.
	writeFile(t, dir, "readonly.rego", `package meshward.ext

deny contains "the bookstore is read-only during the stock take" if {
	input.meshward.destination == "bookstore/bookstore"
	input.attributes.request.http.method != "GET"
}

deny contains "bookstore/bookstore may not restock today" if {
	input.meshward.source == "bookstore/bookstore"
}
`)
	m.waitFor(t, "the policy", func() bool { return m.logs.count("user policies loaded") > 0 })
	withPolicy := decisions()
	if want := "false: denied by data.meshward.ext.deny: bookstore/bookstore may not restock today"; withPolicy[probes[3]] != want {
		t.Fatalf("restock: %s, want %s", withPolicy[probes[3]], want)
	}
	if withPolicy[probes[0]] != initial[probes[0]] {
		t.Fatalf("GET changed: %s", withPolicy[probes[0]])
	}

	// A policy that does not compile: reported with file and line; the
	// previous policies stay in force.
	const broken = `package meshward.ext

deny contains "closed" if {
	input.meshward.destination == 
}
`
	writeFile(t, dir, "zz-broken.rego", broken)
	problem := regexp.MustCompile(`zz-broken\.rego:[45]: rego_parse_error`)
	m.waitFor(t, "the compile error", func() bool {
		for _, l := range m.logs.Lines() {
			if l.Msg == "user policy does not compile; the previous policies stay in force" && problem.MatchString(l.Problem) {
				return true
			}
		}
		return false
	})
	// The model is rebuilt with the edit; let that settle, then compare.
	time.Sleep(100 * time.Millisecond)
	after := decisions()
	for _, p := range probes {
		if stripIDs(after[p]) != stripIDs(withPolicy[p]) {
			t.Errorf("%v changed after a broken policy:\nbefore: %s\nafter:  %s", p, withPolicy[p], after[p])
		}
	}

	// meshward check refuses the directory with the same file and line.
	var stdout, stderr bytes.Buffer
	exit := cli.Run(context.Background(), []string{"check", "--dir", dir, "--source", buyer, "--destination", store, "--path", "/books-bought"}, &stdout, &stderr)
	if exit != cli.ExitUsage || !problem.MatchString(stderr.String()) {
		t.Errorf("meshward check: exit %d, stderr %q; want %d naming zz-broken.rego and its line", exit, stderr.String(), cli.ExitUsage)
	}

	// Fixed: the policies take effect again; removed: the example's
	// decisions are back.
	if err := os.Remove(filepath.Join(dir, "zz-broken.rego")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "readonly.rego")); err != nil {
		t.Fatal(err)
	}
	m.waitFor(t, "the example's decisions", func() bool {
		allowed, _ := m.check(t, store, warehouse, "POST", "/restock-books")
		return allowed
	})

	// A decision the engine memoised does not outlive the TrafficTarget
	// that allowed it.
	for range 3 {
		if allowed, reason := m.check(t, buyer, store, "GET", "/books-bought"); !allowed {
			t.Fatalf("GET /books-bought denied before the edit: %s", reason)
		}
	}
	access := filepath.Join(dir, "smi-access.yaml")
	orig, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for d := range strings.SplitSeq(string(orig), "\n---\n") {
		if !strings.Contains(d, "name: bookbuyer-access-bookstore\n") {
			kept = append(kept, d)
		}
	}
	writeFile(t, dir, "smi-access.yaml", strings.Join(kept, "\n---\n"))
	m.waitFor(t, "the TrafficTarget's removal", func() bool {
		allowed, _ := m.check(t, buyer, store, "GET", "/books-bought")
		return !allowed
	})
	if allowed, reason := m.askNginx(t, buyer, store, "GET", "/books-bought"); allowed {
		t.Fatalf("the nginx endpoint still allows GET /books-bought after the TrafficTarget's removal: %s", reason)
	}
}

var decisionID = regexp.MustCompile(`[0-9a-f]{32}`)

func stripIDs(s string) string { return decisionID.ReplaceAllString(s, "<id>") }

// TestMissingAttributes sends requests that lack what a decision needs:
// each is denied with a reason naming what is missing, never a gRPC error
// or an HTTP status other than 401 and 403.
func TestMissingAttributes(t *testing.T) {
	m := serve(t, exampleDir(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	storePeer := &authv3.AttributeContext_Peer{Principal: principal(store)}
	buyerPeer := &authv3.AttributeContext_Peer{Principal: principal(buyer)}
	get := func(path string) *authv3.AttributeContext_Request {
		return &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path}}
	}
	for name, tc := range map[string]struct {
		req    *authv3.CheckRequest
		reason string // a regular expression
	}{
		"empty request":        {&authv3.CheckRequest{}, `^the request has no source principal`},
		"no source principal":  {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Destination: storePeer, Request: get("/books-bought")}}, `^the request has no source principal`},
		"empty peers":          {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{}, Destination: &authv3.AttributeContext_Peer{}, Request: get("/books-bought")}}, `^the request has no source principal`},
		"no destination":       {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Request: get("/books-bought")}}, `^the request has no destination principal`},
		"no path":              {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Destination: storePeer, Request: get("")}}, `no HTTPRouteGroup match .* allows GET /$`},
		"no method, no path":   {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Destination: storePeer, Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}}, `allows GET /$`},
		"path not starting /":  {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Destination: storePeer, Request: get("books-bought")}}, `^invalid request: .*path does not start with /`},
		"absolute URL as path": {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Destination: storePeer, Request: get("http://bookstore/books-bought")}}, `^invalid request: .*path does not start with /`},
		"asterisk path":        {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: buyerPeer, Destination: storePeer, Request: get("*")}}, `^invalid request: .*path does not start with /`},
		"garbage principals": {&authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:      &authv3.AttributeContext_Peer{Principal: "\x00 not a principal ÿ"},
			Destination: &authv3.AttributeContext_Peer{Principal: "spiffe://"},
			Request:     get("/books-bought"),
		}}, `^source principal .* is not in the mesh`},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := m.authz.Check(ctx, tc.req)
			if err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			if c := resp.GetStatus().GetCode(); c != int32(code.Code_PERMISSION_DENIED) {
				t.Fatalf("status %v, want PERMISSION_DENIED", resp.GetStatus())
			}
			reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
			t.Logf("reason: %s", reason)
			if !regexp.MustCompile(tc.reason).MatchString(reason) {
				t.Errorf("reason %q does not match %q", reason, tc.reason)
			}
			if resp.GetStatus().GetMessage() != reason {
				t.Errorf("status message %q, want the reason %q", resp.GetStatus().GetMessage(), reason)
			}
		})
	}

	endpoint := "http://" + m.nginxAddr + "/v1/mesh/bookstore/bookstore?port=14001"
	for name, tc := range map[string]struct {
		headers map[string]string
		code    int
		reason  string
	}{
		"no X-Original-URL":    {map[string]string{"X-Original-Method": "GET", "X-Client-Principal": principal(buyer)}, 403, "no X-Original-URL header"},
		"no X-Original-Method": {map[string]string{"X-Original-URL": "/books-bought", "X-Client-Principal": principal(buyer)}, 403, "no X-Original-Method header"},
		"no principal":         {map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET"}, 401, "no X-Client-Principal header"},
		"empty principal":      {map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": ""}, 401, "no X-Client-Principal header"},
	} {
		t.Run("nginx "+name, func(t *testing.T) {
			a := do(t, newRequest(t, "GET", endpoint, tc.headers))
			if a.code != tc.code || !strings.Contains(a.reason, tc.reason) {
				t.Errorf("status %d, reason %q; want %d with %q", a.code, a.reason, tc.code, tc.reason)
			}
		})
	}
}

// TestNginxEndpointOnlyAnswers200401403 sends odd requests to the nginx
// auth endpoint: ingress-nginx turns any status but 2xx, 401 and 403 into
// a 500 for its client, so the endpoint must never answer another.
func TestNginxEndpointOnlyAnswers200401403(t *testing.T) {
	m := serve(t, exampleDir(t))
	good := map[string]string{
		"X-Original-URL":     "http://bookstore.bookstore:14001/books-bought",
		"X-Original-Method":  "GET",
		"X-Client-Principal": principal(buyer),
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for gk, gv := range good {
			h[gk] = gv
		}
		if v == "<none>" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	long := strings.Repeat("a", 16<<10)
	paths := []string{
		"/", "/v1", "/v1/", "/v1/mesh", "/v1/mesh/bookstore", "/v1/mesh/bookstore/bookstore/extra",
		"/v2/mesh/bookstore/bookstore", "/V1/MESH/bookstore/bookstore", "/v1/mesh//bookstore",
		"/v1/mesh/bookstore/bookstore?port=99999", "/v1/mesh/bookstore/bookstore?port=-1",
		"/v1/mesh/bookstore/bookstore?port=abc", "/v1/mesh/bookstore/bookstore?port=", "/v1/mesh/bookstore/bookstore?port=1&port=2",
		"/v1/mesh/bookstore/bookstore?port=%00", "/v1/mesh/%2e%2e/bookstore", "/v1/mesh/bookstore%2Fx/bookstore",
		"/v1/mesh/" + long + "/x",
		"/v1/ingress", "/v1/ingress/bookstore/bookstore-v1", "/v1/ingress/bookstore/bookstore-v1/0",
		"/v1/ingress/bookstore/bookstore-v1/65536", "/v1/ingress/bookstore/bookstore-v1/http",
		"/v1/ingress/bookstore/bookstore-v1/-80", "/v1/ingress/bookstore/bookstore-v1/14001/x",
		"/v1/ingress///", "/v1/ingress/bookstore/bookstore-v1/14001?port=1",
		"/v1/mesh/bookstore/bookstore?port=14001",
	}
	headerSets := []map[string]string{
		good,
		with("X-Original-URL", "<none>"),
		with("X-Original-URL", ""),
		with("X-Original-URL", "::::"),
		with("X-Original-URL", "http://"),
		with("X-Original-URL", "http://[::1"),
		with("X-Original-URL", "/%zz"),
		with("X-Original-URL", "*"),
		with("X-Original-URL", "books-bought"),
		with("X-Original-URL", "/books-bought%2F.."),
		with("X-Original-URL", "/"+long),
		with("X-Original-URL", "javascript:alert(1)"),
		with("X-Original-URL", "http://bookstore/%C0%AE%C0%AE/"),
		with("X-Original-Method", "<none>"),
		with("X-Original-Method", "G E T"),
		with("X-Original-Method", long),
		with("X-Client-Principal", "<none>"),
		with("X-Client-Principal", "spiffe://"),
		with("X-Client-Principal", "bookbuyer/bookbuyer"),
		with("X-Client-Principal", long),
		with("X-Real-IP", "not an address"),
		with("X-Forwarded-For", ",,,, ,"),
		with("X-Forwarded-For", "::ffff:10.0.0.1"),
	}
	seen := map[int]int{}
	for _, p := range paths {
		for _, h := range headerSets {
			for _, method := range []string{"GET", "POST", "HEAD"} {
				req := newRequest(t, method, "http://"+m.nginxAddr+p, h)
				a := do(t, req)
				seen[a.code]++
				if a.code != http.StatusOK && a.code != http.StatusUnauthorized && a.code != http.StatusForbidden {
					t.Fatalf("%s %s with %v: status %d; body %q", method, p, h, a.code, a.body)
				}
				if a.code != http.StatusOK && method != "HEAD" && a.reason == "" {
					t.Errorf("%s %s with %v: status %d without a reason", method, p, h, a.code)
				}
			}
		}
	}
	if seen[200] == 0 || seen[401] == 0 || seen[403] == 0 {
		t.Errorf("answers %v: want each of 200, 401 and 403 at least once", seen)
	}
}
