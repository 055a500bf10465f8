package extauthz_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/extauthz"
)

var (
	okCode     = int32(code.Code_OK)
	deniedCode = int32(code.Code_PERMISSION_DENIED)
	hexID      = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// TestBuiltinDecisions checks the CheckResponse of the built-in policy:
// OK with an OkHttpResponse when allowed, PERMISSION_DENIED with a 403
// DeniedHttpResponse when denied, and the decision id and reason in the
// dynamic metadata of both.
func TestBuiltinDecisions(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, nil), extauthz.Options{})
	for name, tc := range map[string]struct {
		req     *authv3.CheckRequest
		allowed bool
		reason  string
	}{
		"allowed":           {httpCheck(buyer, store, "GET", "/books-bought?limit=10", nil), true, "bookbuyer/bookbuyer may call bookstore/bookstore: " + booksBought},
		"header match":      {httpCheck(buyer, store, "GET", "/buy-a-book/new", map[string]string{"user-agent": "bookbuyer/1.0"}), true, "match buy-a-book"},
		"header mismatch":   {httpCheck(buyer, store, "GET", "/buy-a-book/new", map[string]string{"user-agent": "curl/8.0"}), false, "no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore allows GET /buy-a-book/new"},
		"unlisted caller":   {httpCheck(thief, store, "GET", "/books-bought", nil), false, "no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore"},
		"normalised path":   {httpCheck(buyer, store, "GET", "/x/..//%62ooks-bought", nil), true, booksBought},
		"encoded slash":     {httpCheck(buyer, store, "GET", "/books-bought%2Fx", nil), false, "encoded slash"},
		"case-sensitive":    {httpCheck(buyer, store, "GET", "/Books-Bought", nil), false, "allows GET /Books-Bought"},
		"tcp":               {tcpCheck(store, warehouse, 14001), true, "TCPRoute bookwarehouse/bookwarehouse-tcp"},
		"tcp, other port":   {tcpCheck(store, warehouse, 8080), false, "allows port 8080"},
		"http rules no tcp": {tcpCheck(buyer, store, 14001), false, "HTTP rules do not allow TCP"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := check(t, c, tc.req)
			md := metadata(resp)
			reason, _ := md[extauthz.MetadataReason].(string)
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q lacks %q", reason, tc.reason)
			}
			if id, _ := md[extauthz.MetadataDecisionID].(string); !hexID.MatchString(id) {
				t.Errorf("decision id %q", id)
			}
			if tc.allowed {
				if resp.GetStatus().GetCode() != okCode || resp.GetOkResponse() == nil {
					t.Fatalf("want OK with an OkHttpResponse, got %v", resp)
				}
				if len(resp.GetOkResponse().GetHeaders())+len(resp.GetOkResponse().GetResponseHeadersToAdd()) != 0 {
					t.Errorf("headers added without a decision header or a policy asking: %v", resp.GetOkResponse())
				}
				return
			}
			if resp.GetStatus().GetCode() != deniedCode || resp.GetStatus().GetMessage() != reason {
				t.Errorf("status %v, want PERMISSION_DENIED with the reason", resp.GetStatus())
			}
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != typev3.StatusCode_Forbidden {
				t.Errorf("HTTP status %v, want 403", got)
			}
			if len(resp.GetDeniedResponse().GetHeaders()) != 0 {
				t.Errorf("denied response has headers without a decision header: %v", resp.GetDeniedResponse().GetHeaders())
			}
		})
	}
}

// tcpCheck is a CheckRequest as Envoy's network ext_authz filter sends it:
// principals and addresses, no HTTP attributes.
func tcpCheck(src, dst string, port uint32) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: src, Address: address("10.1.3.10", 50000)},
		Destination: &authv3.AttributeContext_Peer{Principal: dst, Address: address("10.1.4.10", port)},
	}}
}

// TestOPAEnvoyPluginPolicies runs policies written for opa-envoy-plugin
// unchanged through gRPC: boolean results in Rego v1 and v0, and object
// results, and checks every field of the CheckResponse.
func TestOPAEnvoyPluginPolicies(t *testing.T) {
	t.Run("boolean, rego v1", func(t *testing.T) {
		c := start(t, newEngine(t, policy.Options{}, map[string]string{"authz.rego": `package envoy.authz

default allow := false

allow if input.attributes.request.http.method == "GET"
`}), extauthz.Options{})
		if resp := check(t, c, httpCheck(thief, store, "GET", "/anything", nil)); resp.GetStatus().GetCode() != okCode {
			t.Errorf("GET denied: %v", resp)
		}
		resp := check(t, c, httpCheck(buyer, store, "POST", "/books-bought", nil))
		if resp.GetStatus().GetCode() != deniedCode || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
			t.Errorf("POST: %v, want denied with 403", resp)
		}
	})
	t.Run("boolean, rego v0", func(t *testing.T) {
		c := start(t, newEngine(t, policy.Options{}, map[string]string{"authz.rego": `package envoy.authz

import input.attributes.request.http as http_request

default allow = false

allow {
	http_request.method == "GET"
	startswith(http_request.path, "/public/")
}
`}), extauthz.Options{})
		if resp := check(t, c, httpCheck(thief, store, "GET", "/public/a", nil)); resp.GetStatus().GetCode() != okCode {
			t.Errorf("GET /public/a denied: %v", resp)
		}
		if resp := check(t, c, httpCheck(thief, store, "GET", "/public/../private", nil)); resp.GetStatus().GetCode() != deniedCode {
			t.Errorf("GET /public/../private allowed: the policy must see the normalised path")
		}
	})
	t.Run("object, denied", func(t *testing.T) {
		c := start(t, newEngine(t, policy.Options{}, map[string]string{"authz.rego": `package envoy.authz

allow := {"allowed": false, "http_status": 418, "headers": {"x-why": "teapot"}, "body": "no"}
`}), extauthz.Options{})
		resp := check(t, c, httpCheck(buyer, store, "GET", "/books-bought", nil))
		d := resp.GetDeniedResponse()
		if resp.GetStatus().GetCode() != deniedCode || d == nil {
			t.Fatalf("want PERMISSION_DENIED with a DeniedHttpResponse, got %v", resp)
		}
		if d.GetStatus().GetCode() != typev3.StatusCode(418) || d.GetBody() != "no" {
			t.Errorf("status %v, body %q; want 418, \"no\"", d.GetStatus().GetCode(), d.GetBody())
		}
		if got, want := headers(d.GetHeaders()), []string{"x-why: teapot (OVERWRITE_IF_EXISTS_OR_ADD)"}; !reflect.DeepEqual(got, want) {
			t.Errorf("headers %v, want %v", got, want)
		}
		reason, _ := metadata(resp)[extauthz.MetadataReason].(string)
		if !strings.HasPrefix(reason, "denied by the policy at envoy/authz/allow although SMI access allows it") {
			t.Errorf("reason %q", reason)
		}
	})
	t.Run("object, allowed", func(t *testing.T) {
		c := start(t, newEngine(t, policy.Options{}, map[string]string{"authz.rego": `package envoy.authz

default allow := false

allow := {
	"allowed": true,
	"headers": {"x-user": "alice", "x-groups": ["readers", "buyers"]},
	"response_headers_to_add": {"x-checked-by": "policy"},
	"request_headers_to_remove": ["authorization", "cookie"],
	"dynamic_metadata": {"tenant": "books", "score": 5, "tags": ["a", "b"], "nested": {"ok": true}},
} if {
	input.attributes.request.http.method == "GET"
}
`}), extauthz.Options{})
		resp := check(t, c, httpCheck(thief, store, "GET", "/books-bought", nil))
		ok := resp.GetOkResponse()
		if resp.GetStatus().GetCode() != okCode || ok == nil {
			t.Fatalf("want OK with an OkHttpResponse, got %v", resp)
		}
		if got, want := headers(ok.GetHeaders()), []string{
			"x-groups: readers (OVERWRITE_IF_EXISTS_OR_ADD)",
			"x-groups: buyers (APPEND_IF_EXISTS_OR_ADD)",
			"x-user: alice (OVERWRITE_IF_EXISTS_OR_ADD)",
		}; !reflect.DeepEqual(got, want) {
			t.Errorf("request headers %v, want %v", got, want)
		}
		if got, want := headers(ok.GetResponseHeadersToAdd()), []string{"x-checked-by: policy (OVERWRITE_IF_EXISTS_OR_ADD)"}; !reflect.DeepEqual(got, want) {
			t.Errorf("response headers %v, want %v", got, want)
		}
		if got, want := ok.GetHeadersToRemove(), []string{"authorization", "cookie"}; !reflect.DeepEqual(got, want) {
			t.Errorf("headers to remove %v, want %v", got, want)
		}
		md := metadata(resp)
		for k, want := range map[string]any{
			"tenant": "books", "score": 5.0, "tags": []any{"a", "b"}, "nested": map[string]any{"ok": true},
		} {
			if !reflect.DeepEqual(md[k], want) {
				t.Errorf("dynamic metadata %s = %#v, want %#v", k, md[k], want)
			}
		}
		if id, _ := md[extauthz.MetadataDecisionID].(string); !hexID.MatchString(id) {
			t.Errorf("no decision id in %v", md)
		}
		if reason, _ := md[extauthz.MetadataReason].(string); !strings.HasPrefix(reason, "allowed by the policy at envoy/authz/allow; SMI access alone denies: no TrafficTarget allows bookthief/bookthief") {
			t.Errorf("reason %q", reason)
		}
	})
	t.Run("policy metadata cannot replace the decision id", func(t *testing.T) {
		c := start(t, newEngine(t, policy.Options{}, map[string]string{"authz.rego": `package envoy.authz

allow := {"allowed": true, "dynamic_metadata": {"decision_id": "forged", "reason": "forged"}}
`}), extauthz.Options{})
		md := metadata(check(t, c, httpCheck(buyer, store, "GET", "/books-bought", nil)))
		if md[extauthz.MetadataDecisionID] == "forged" || md[extauthz.MetadataReason] == "forged" {
			t.Errorf("metadata %v: the policy replaced meshward's keys", md)
		}
	})
}

// echo is a policy that allows every request and returns the parts of
// the input that opa-envoy-plugin policies read, as dynamic metadata.
const echo = `package envoy.authz

allow := {"allowed": true, "dynamic_metadata": {
	"parsed_path": input.parsed_path,
	"parsed_query": input.parsed_query,
	"parsed_body": input.parsed_body,
	"truncated_body": input.truncated_body,
	"source_principal": object.get(input, "source_principal", null),
	"source_address": object.get(input, ["attributes", "source", "address", "socketAddress", "address"], null),
	"source_port": object.get(input, ["attributes", "source", "address", "socketAddress", "portValue"], null),
	"destination_address": object.get(input, ["attributes", "destination", "address", "socketAddress", "address"], null),
	"destination_port": object.get(input, ["attributes", "destination", "address", "socketAddress", "portValue"], null),
	"context_extensions": object.get(input, ["attributes", "contextExtensions"], null),
	"headers": object.get(input, ["attributes", "request", "http", "headers"], null),
	"path": object.get(input, ["attributes", "request", "http", "path"], null),
	"version": input.version,
	"meshward": input.meshward,
}}
`

// TestInputDocument checks the input that policies see, field by field,
// through a policy that echoes it.
func TestInputDocument(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, map[string]string{"echo.rego": echo}), extauthz.Options{})

	withBody := func(contentType, body string, raw bool) *authv3.CheckRequest {
		req := httpCheck(buyer, store, "POST", "/api/v1/books/../items?limit=10&tag=a&tag=b", map[string]string{"content-type": contentType})
		if raw {
			req.Attributes.Request.Http.RawBody = []byte(body)
		} else {
			req.Attributes.Request.Http.Body = body
		}
		return req
	}
	for name, tc := range map[string]struct {
		req  *authv3.CheckRequest
		want map[string]any
	}{
		"paths, query and addresses": {
			req: withBody("text/plain", "hello", false),
			want: map[string]any{
				"parsed_path":         []any{"api", "v1", "items"},
				"parsed_query":        map[string]any{"limit": []any{"10"}, "tag": []any{"a", "b"}},
				"parsed_body":         nil,
				"truncated_body":      false,
				"source_principal":    buyer,
				"source_address":      "10.1.1.10",
				"source_port":         43210.0,
				"destination_address": "10.1.3.10",
				"destination_port":    14001.0,
				"path":                "/api/v1/items?limit=10&tag=a&tag=b",
				"version":             map[string]any{"ext_authz": "v3", "encoding": "protojson"},
			},
		},
		"json body": {
			req:  withBody("application/json", `{"title": "Dune", "copies": 2, "tags": ["sf"]}`, false),
			want: map[string]any{"parsed_body": map[string]any{"title": "Dune", "copies": 2.0, "tags": []any{"sf"}}},
		},
		"json body with a charset": {
			req:  withBody("application/json; charset=utf-8", `{"title": "Dune"}`, false),
			want: map[string]any{"parsed_body": map[string]any{"title": "Dune"}},
		},
		"json body as bytes": {
			req:  withBody("application/json", `{"title": "Dune"}`, true),
			want: map[string]any{"parsed_body": map[string]any{"title": "Dune"}},
		},
		"invalid json": {
			req:  withBody("application/json", `{"title":`, false),
			want: map[string]any{"parsed_body": nil},
		},
		"truncated body": {
			req: func() *authv3.CheckRequest {
				r := withBody("application/json", `{"title": "Du`, false)
				r.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true"
				return r
			}(),
			want: map[string]any{"truncated_body": true},
		},
		"context extensions": {
			req: func() *authv3.CheckRequest {
				r := httpCheck(buyer, store, "GET", "/", nil)
				r.Attributes.ContextExtensions = map[string]string{"tenant": "books", "virtual_host": "bookstore"}
				return r
			}(),
			want: map[string]any{"context_extensions": map[string]any{"tenant": "books", "virtual_host": "bookstore"}},
		},
		"root path": {
			req:  httpCheck(buyer, store, "GET", "/", nil),
			want: map[string]any{"parsed_path": []any{""}, "parsed_query": map[string]any{}, "path": "/"},
		},
		"tcp": {
			req: tcpCheck(store, warehouse, 14001),
			want: map[string]any{
				"parsed_path": []any{""}, "parsed_query": map[string]any{}, "headers": nil, "path": nil,
				"destination_address": "10.1.4.10", "destination_port": 14001.0,
				"meshward": map[string]any{"protocol": "tcp", "port": 14001.0, "source": "bookstore/bookstore", "destination": "bookwarehouse/bookwarehouse"},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			md := metadata(check(t, c, tc.req))
			for k, want := range tc.want {
				if got := md[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// TestDestinationAddressIsPerRequest sends requests to one port on many
// destination addresses, concurrently: each policy evaluation must see its
// own request's addresses.
func TestDestinationAddressIsPerRequest(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, map[string]string{"echo.rego": echo}), extauthz.Options{})
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Go(func() {
			ip := fmt.Sprintf("10.1.3.%d", i+1)
			req := httpCheck(buyer, store, "GET", "/", nil)
			req.Attributes.Destination.Address = address(ip, 14001)
			req.Attributes.Source.Address = address(fmt.Sprintf("10.1.1.%d", i+1), 40000)
			ctx := context.Background()
			resp, err := c.Check(ctx, req)
			if err != nil {
				errs <- err.Error()
				return
			}
			md := metadata(resp)
			if md["destination_address"] != ip || md["destination_port"] != 14001.0 {
				errs <- "request to " + ip + " saw destination " + stringOf(md["destination_address"])
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// TestInputValuesAreConsistent uses the peers of the input as set members
// and object keys, which OPA looks up by hash: the input's objects must be
// equal to the same values written in the policy.
func TestInputValuesAreConsistent(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, map[string]string{"set.rego": `package envoy.authz

known_destinations := {
	{"principal": "spiffe://cluster.local/ns/bookstore/sa/bookstore", "address": {"socketAddress": {"address": "10.1.3.10", "portValue": 14001}}},
}

known_attributes contains a if {
	a := input.attributes
}

default allow := false

allow if {
	known_destinations[input.attributes.destination]
	count(known_attributes | {input.attributes}) == 1
}
`}), extauthz.Options{})
	for range 2 {
		if resp := check(t, c, httpCheck(thief, store, "GET", "/", nil)); resp.GetStatus().GetCode() != okCode {
			t.Fatalf("denied: %v", metadata(resp)[extauthz.MetadataReason])
		}
	}
}

// TestIdentityOnlyFromPrincipals: headers naming a caller give no
// identity; the context extension names the destination when Envoy has no
// destination principal.
func TestIdentityOnlyFromPrincipals(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, nil), extauthz.Options{})
	spoofed := httpCheck("", store, "GET", "/books-bought", map[string]string{
		"x-forwarded-client-cert": "By=spiffe://cluster.local/ns/bookstore/sa/bookstore;URI=" + buyer,
		"x-client-principal":      buyer,
		"x-meshward-source":       "bookbuyer/bookbuyer",
	})
	spoofed.Attributes.Source.Principal = ""
	resp := check(t, c, spoofed)
	if resp.GetStatus().GetCode() != deniedCode {
		t.Fatalf("a request without a source principal was allowed: %v", metadata(resp))
	}
	if reason := metadata(resp)[extauthz.MetadataReason]; reason != "the request has no source principal (no mesh identity)" {
		t.Errorf("reason %q", reason)
	}

	viaExtension := httpCheck(buyer, "", "GET", "/books-bought", nil)
	viaExtension.Attributes.ContextExtensions = map[string]string{extauthz.DestinationExtension: "bookstore/bookstore"}
	if resp := check(t, c, viaExtension); resp.GetStatus().GetCode() != okCode {
		t.Errorf("destination from the context extension: %v", metadata(resp))
	}
	viaExtension.Attributes.ContextExtensions[extauthz.DestinationExtension] = store
	if resp := check(t, c, viaExtension); resp.GetStatus().GetCode() != okCode {
		t.Errorf("destination principal from the context extension: %v", metadata(resp))
	}
	// A verified destination principal wins over the extension.
	viaExtension.Attributes.Destination.Principal = warehouse
	if resp := check(t, c, viaExtension); resp.GetStatus().GetCode() != deniedCode {
		t.Errorf("the context extension overrode the destination principal")
	}
}

// TestRawHeaders: with encode_raw_headers, Envoy sends header_map (raw
// bytes, repeated names not merged) instead of headers; the decision reads
// them the same.
func TestRawHeaders(t *testing.T) {
	c := start(t, newEngine(t, policy.Options{}, nil), extauthz.Options{})
	req := httpCheck(buyer, store, "GET", "/buy-a-book/new", nil)
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte("GET")},
		{Key: ":path", RawValue: []byte("/buy-a-book/new")},
		{Key: "user-agent", RawValue: []byte("bookbuyer/1.0")},
		{Key: "accept", RawValue: []byte("text/html")},
		{Key: "accept", RawValue: []byte("application/json")},
	}}
	resp := check(t, c, req)
	if resp.GetStatus().GetCode() != okCode {
		t.Fatalf("denied: %v", metadata(resp)[extauthz.MetadataReason])
	}
	c = start(t, newEngine(t, policy.Options{}, map[string]string{"echo.rego": echo}), extauthz.Options{})
	h, _ := metadata(check(t, c, req))["headers"].(map[string]any)
	if h["user-agent"] != "bookbuyer/1.0" || h["accept"] != "text/html,application/json" {
		t.Errorf("headers in the input: %v", h)
	}
}

// TestDecisionHeader: the decision id goes in a response header only when
// one is configured, on allowed and denied responses alike.
func TestDecisionHeader(t *testing.T) {
	engine := newEngine(t, policy.Options{}, nil)
	plain := start(t, engine, extauthz.Options{})
	with := start(t, engine, extauthz.Options{DecisionHeader: "x-meshward-decision"})
	allowed := httpCheck(buyer, store, "GET", "/books-bought", nil)
	denied := httpCheck(thief, store, "GET", "/books-bought", nil)

	for _, resp := range []*authv3.CheckResponse{check(t, plain, allowed), check(t, plain, denied)} {
		if n := len(resp.GetOkResponse().GetResponseHeadersToAdd()) + len(resp.GetDeniedResponse().GetHeaders()); n != 0 {
			t.Errorf("decision header without the option: %v", resp)
		}
	}
	resp := check(t, with, allowed)
	id := metadata(resp)[extauthz.MetadataDecisionID].(string)
	if got, want := headers(resp.GetOkResponse().GetResponseHeadersToAdd()), []string{"x-meshward-decision: " + id + " (OVERWRITE_IF_EXISTS_OR_ADD)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("allowed: response headers %v, want %v", got, want)
	}
	if len(resp.GetOkResponse().GetHeaders()) != 0 {
		t.Errorf("the decision header went upstream: %v", resp.GetOkResponse().GetHeaders())
	}
	resp = check(t, with, denied)
	id = metadata(resp)[extauthz.MetadataDecisionID].(string)
	if got, want := headers(resp.GetDeniedResponse().GetHeaders()), []string{"x-meshward-decision: " + id + " (OVERWRITE_IF_EXISTS_OR_ADD)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("denied: headers %v, want %v", got, want)
	}

	// A policy cannot forge the decision header.
	forging := start(t, newEngine(t, policy.Options{}, map[string]string{"f.rego": `package envoy.authz

allow := {"allowed": false, "headers": {"x-meshward-decision": "forged", "x-other": "1"}}
`}), extauthz.Options{DecisionHeader: "x-meshward-decision"})
	resp = check(t, forging, allowed)
	id = metadata(resp)[extauthz.MetadataDecisionID].(string)
	if got, want := headers(resp.GetDeniedResponse().GetHeaders()), []string{"x-other: 1 (OVERWRITE_IF_EXISTS_OR_ADD)", "x-meshward-decision: " + id + " (OVERWRITE_IF_EXISTS_OR_ADD)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("headers %v, want %v", got, want)
	}
}

// TestDryRun allows every request and reports the real decision.
func TestDryRun(t *testing.T) {
	var mu sync.Mutex
	var seen []policy.Decision
	c := start(t, newEngine(t, policy.Options{DryRun: true}, nil), extauthz.Options{
		OnDecision: func(_ context.Context, d policy.Decision, _ *authv3.CheckRequest, err error) {
			if err != nil {
				t.Errorf("decision error: %v", err)
			}
			mu.Lock()
			seen = append(seen, d)
			mu.Unlock()
		},
	})
	resp := check(t, c, httpCheck(thief, store, "GET", "/books-bought", nil))
	if resp.GetStatus().GetCode() != okCode || resp.GetOkResponse() == nil {
		t.Fatalf("dry run denied: %v", resp)
	}
	want := "dry run, allowed although the policy denies: no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore"
	if reason := metadata(resp)[extauthz.MetadataReason]; reason != want {
		t.Errorf("reason %q, want %q", reason, want)
	}
	resp = check(t, c, httpCheck(buyer, store, "GET", "/books-bought", nil))
	if reason, _ := metadata(resp)[extauthz.MetadataReason].(string); !strings.HasPrefix(reason, "bookbuyer/bookbuyer may call") {
		t.Errorf("allowed request in dry run: reason %q", reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !seen[0].DryRun || !seen[0].Allowed || seen[0].Reason != want {
		t.Errorf("decisions reported: %+v", seen)
	}
}

// TestBrokenPolicyKeepsDecisions: a user policy that does not compile is
// refused with its file and line, and the server keeps deciding as before.
func TestBrokenPolicyKeepsDecisions(t *testing.T) {
	ctx := context.Background()
	engine := newEngine(t, policy.Options{}, map[string]string{"policies/readonly.rego": `package meshward.ext

deny contains "read-only" if input.attributes.request.http.method != "GET"
`})
	c := start(t, engine, extauthz.Options{})
	requests := []*authv3.CheckRequest{
		httpCheck(buyer, store, "GET", "/books-bought", nil),
		httpCheck(buyer, store, "POST", "/books-bought", nil),
		httpCheck(thief, store, "GET", "/books-bought", nil),
		tcpCheck(store, warehouse, 14001),
	}
	decisions := func() []string {
		var out []string
		for _, r := range requests {
			resp := check(t, c, r)
			out = append(out, resp.GetStatus().String()+" "+metadata(resp)[extauthz.MetadataReason].(string))
		}
		return out
	}
	before := decisions()

	err := engine.SetUserModules(ctx, map[string]string{
		"policies/readonly.rego": "package meshward.ext\n\ndeny contains \"read-only\" if input.attributes.request.http.method != \"GET\"\n",
		"policies/broken.rego":   "package envoy.authz\n\ndefault allow := false\n\nallow if {\n\tinput.attributes.request.http.method ==\n}\n",
	})
	var ce *policy.CompileError
	if !errors.As(err, &ce) || !errors.Is(err, policy.ErrCompile) {
		t.Fatalf("error %v, want a *policy.CompileError", err)
	}
	if !regexp.MustCompile(`policies/broken\.rego:[67]: rego_parse_error`).MatchString(err.Error()) {
		t.Errorf("error %q does not name the file and line", err)
	}
	if after := decisions(); !reflect.DeepEqual(after, before) {
		t.Errorf("decisions changed:\nbefore %q\nafter  %q", before, after)
	}
	if !strings.Contains(before[1], "denied by data.meshward.ext.deny: read-only") {
		t.Errorf("the first policy was not in force: %q", before[1])
	}
}

// TestOnDecision reports every decision with its request.
func TestOnDecision(t *testing.T) {
	got := make(chan string, 4)
	c := start(t, newEngine(t, policy.Options{}, nil), extauthz.Options{
		OnDecision: func(_ context.Context, d policy.Decision, req *authv3.CheckRequest, err error) {
			got <- req.GetAttributes().GetRequest().GetHttp().GetPath() + " " + d.ID
		},
	})
	resp := check(t, c, httpCheck(buyer, store, "GET", "/books-bought", nil))
	if want := "/books-bought " + metadata(resp)[extauthz.MetadataDecisionID].(string); <-got != want {
		t.Errorf("OnDecision did not see the decision %s", want)
	}
}
