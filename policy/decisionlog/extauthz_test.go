package decisionlog_test

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/decisionlog"
	"github.com/meshward/meshward/policy/extauthz"
)

func check(src, dst, method, path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: src},
		Destination: &authv3.AttributeContext_Peer{Principal: dst},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "b.b",
			Headers: map[string]string{":method": method, ":path": path, "authorization": "Bearer secret"},
		}},
	}}
}

// TestExtAuthz logs the decisions of the real ext_authz server: every
// event carries the id the server put in its response, the decision and
// the CheckRequest as input.
func TestExtAuthz(t *testing.T) {
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := mesh.DefaultOptions()
	opts.Permissive = true
	if err := engine.Update(ctx, &mesh.Model{
		Options:    opts,
		Namespaces: []string{"a", "b"},
		Identities: []mesh.Identity{{Namespace: "a", Name: "a"}, {Namespace: "b", Name: "b"}},
	}); err != nil {
		t.Fatal(err)
	}
	l, console := newLogger(t, `decision_logs: {console: true}`, decisionlog.Options{})
	srv, err := extauthz.New(engine, extauthz.Options{
		OnDecision: l.ExtAuthz(decisionlog.ExtAuthzOptions{Path: engine.DecisionPath()}),
	})
	if err != nil {
		t.Fatal(err)
	}
	const a, b, x = "spiffe://cluster.local/ns/a/sa/a", "spiffe://cluster.local/ns/b/sa/b", "spiffe://cluster.local/ns/x/sa/x"
	var ids []string
	// The third check repeats the first: memoised, logged as such.
	for _, req := range []*authv3.CheckRequest{check(a, b, "GET", "/"), check(x, b, "POST", "/admin"), check(a, b, "GET", "/")} {
		resp, err := srv.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.GetDynamicMetadata().GetFields()[extauthz.MetadataDecisionID].GetStringValue())
	}

	events := consoleEvents(console)
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	for i, want := range []bool{true, false, true} {
		e := events[i]
		if e["decision_id"] != ids[i] || ids[i] == "" {
			t.Errorf("event %d decision_id = %v, want the response's %q", i, e["decision_id"], ids[i])
		}
		if get(e, "result", "allowed") != want {
			t.Errorf("event %d result = %v, want allowed %v", i, e["result"], want)
		}
		if e["path"] != "envoy/authz/allow" {
			t.Errorf("event %d path = %v", i, e["path"])
		}
		if memo, want := get(e, "result", "memoised"), i == 2; (memo == true) != want {
			t.Errorf("event %d result.memoised = %v, want %v", i, memo, want)
		}
	}
	if ids[2] == ids[0] {
		t.Errorf("the memoised decision repeats the id %s", ids[0])
	}
	if r, _ := get(events[1], "result", "reason").(string); !strings.Contains(r, "not in the mesh") {
		t.Errorf("denied reason = %q", r)
	}
	if got := get(events[1], "input", "attributes", "source", "principal"); got != x {
		t.Errorf("input source principal = %v, want %s", got, x)
	}
	if got := get(events[1], "input", "attributes", "request", "http", "method"); got != "POST" {
		t.Errorf("input method = %v", got)
	}
}

// TestCheckRequestInput: the input is the CheckRequest in protojson, with
// the field names opa-envoy-plugin policies read.
func TestCheckRequestInput(t *testing.T) {
	req := check("spiffe://s", "spiffe://d", "GET", "/p?q=1")
	req.Attributes.Destination.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}},
	}}
	v, err := decisionlog.CheckRequestInput(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"principal": "spiffe://s"`, `"path": "/p?q=1"`, `"socketAddress": {"address": "10.0.0.1", "portValue": 8080}`,
	} {
		if !strings.Contains(v.String(), want) {
			t.Errorf("input %s lacks %s", v, want)
		}
	}
}
