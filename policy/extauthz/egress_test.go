package extauthz_test

import (
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/extauthz"
)

// TestEgress checks requests on a listener that the control plane marks
// as egress (context extension meshward.io/egress): decided by egress
// rules on the Host, the TLS server name or the destination address, and
// never on a listener without the mark.
func TestEgress(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, policy.Options{}, nil)
	m := bookstore()
	ap := mesh.ObjectRef{Kind: "AccessPolicy", Namespace: "bookbuyer", Name: "egress"}
	m.Egress = []mesh.EgressRule{
		{Origin: ap, Name: "rules[0]", Sources: []mesh.Identity{{Namespace: "bookbuyer", Name: "bookbuyer"}}, Protocol: mesh.EgressHTTP, Hosts: []string{"api.books.example"}},
		{Origin: ap, Name: "rules[1]", Sources: []mesh.Identity{{Namespace: "bookbuyer", Name: "bookbuyer"}}, Protocol: mesh.EgressHTTPS, Hosts: []string{"pay.example"}},
		{Origin: ap, Name: "rules[2]", Sources: []mesh.Identity{{Namespace: "bookbuyer", Name: "bookbuyer"}}, Protocol: mesh.EgressTCP, CIDRs: []string{"10.20.0.0/16"}},
	}
	if err := e.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	c := start(t, e, extauthz.Options{})
	egress := map[string]string{extauthz.EgressExtension: "true"}

	httpOut := func(src, host string) *authv3.CheckRequest {
		req := httpCheck(src, "", "GET", "/catalogue", nil)
		req.Attributes.Request.Http.Host = host
		req.Attributes.Request.Http.Headers[":authority"] = host
		return req
	}
	tlsOut := func(src, sni, ip string) *authv3.CheckRequest {
		req := tcpCheck(src, "", 443)
		req.Attributes.Destination.Address = address(ip, 443)
		if sni != "" {
			req.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: sni}
		}
		return req
	}
	for name, tc := range map[string]struct {
		req     *authv3.CheckRequest
		marked  bool
		allowed bool
		reason  string
	}{
		"http host":             {httpOut(buyer, "api.books.example"), true, true, "bookbuyer/bookbuyer may reach external service api.books.example: AccessPolicy bookbuyer/egress: rules[0]"},
		"http other host":       {httpOut(buyer, "evil.example"), true, false, "reach external service evil.example"},
		"http other caller":     {httpOut(thief, "api.books.example"), true, false, "no AccessPolicy lets bookthief/bookthief reach external services"},
		"http without the mark": {httpOut(buyer, "api.books.example"), false, false, "no destination principal"},
		"tls server name":       {tlsOut(buyer, "pay.example", "203.0.113.9"), true, true, "rules[1]"},
		"tls other server name": {tlsOut(buyer, "evil.example", "203.0.113.9"), true, false, "evil.example"},
		"tcp address":           {tlsOut(buyer, "", "10.20.7.7"), true, true, "rules[2]"},
		"tcp other address":     {tlsOut(buyer, "", "10.21.7.7"), true, false, "10.21.7.7"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.marked {
				tc.req.Attributes.ContextExtensions = egress
			}
			resp := check(t, c, tc.req)
			reason, _ := metadata(resp)[extauthz.MetadataReason].(string)
			if allowed := resp.GetStatus().GetCode() == okCode; allowed != tc.allowed || !strings.Contains(reason, tc.reason) {
				t.Fatalf("allowed %v (%s), want %v with %q", allowed, reason, tc.allowed, tc.reason)
			}
		})
	}
}
