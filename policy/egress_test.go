package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshward/meshward/mesh"
)

// egressModel is the bookstore with an AccessPolicy letting bookbuyer out
// to a payment API over https, a catalogue over http on port 80 (any
// subdomain of cdn.example too) and a database network over TCP.
func egressModel() *mesh.Model {
	m := bookstore()
	ap := ref("AccessPolicy", "bookbuyer", "egress")
	buyer := []mesh.Identity{id("bookbuyer", "bookbuyer")}
	m.Egress = []mesh.EgressRule{
		{Origin: ap, Name: "rules[0]", Sources: buyer, Protocol: mesh.EgressHTTP, Hosts: []string{"*.cdn.example", "api.books.example"}, Ports: []int32{80}},
		{Origin: ap, Name: "rules[1]", Sources: buyer, Protocol: mesh.EgressHTTPS, Hosts: []string{"pay.example"}},
		{Origin: ap, Name: "rules[2]", Sources: buyer, Protocol: mesh.EgressTCP, CIDRs: []string{"10.20.0.0/16", "fd00:20::/32"}, Ports: []int32{5432}},
	}
	return m
}

func TestEgressDecisions(t *testing.T) {
	e := newEngine(t, Options{}, egressModel(), nil)
	const buyer, thief = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer", "spiffe://cluster.local/ns/bookthief/sa/bookthief"
	httpReq := func(src, host string, port uint32) Request {
		return Request{Source: src, Port: port, Method: "GET", Path: "/catalogue", Egress: &Egress{Host: host}}
	}
	tcpReq := func(src string, port uint32, eg Egress) Request {
		return Request{Source: src, Port: port, Protocol: ProtocolTCP, Egress: &eg}
	}
	for name, tc := range map[string]struct {
		req     Request
		allowed bool
		reason  string
	}{
		"http host":                 {httpReq(buyer, "api.books.example", 80), true, "bookbuyer/bookbuyer may reach external service api.books.example: AccessPolicy bookbuyer/egress: rules[0]"},
		"http host with port, case": {httpReq(buyer, "API.Books.Example.:80", 80), true, "rules[0]"},
		"http wildcard":             {httpReq(buyer, "img.cdn.example", 80), true, "rules[0]"},
		"http wildcard apex":        {httpReq(buyer, "cdn.example", 80), false, "no AccessPolicy lets bookbuyer/bookbuyer reach external service cdn.example on port 80"},
		"http other port":           {httpReq(buyer, "api.books.example", 8080), false, "on port 8080"},
		"http other host":           {httpReq(buyer, "evil.example", 80), false, "evil.example"},
		"http by another caller":    {httpReq(thief, "api.books.example", 80), false, "no AccessPolicy lets bookthief/bookthief reach external services"},
		"http caller outside mesh":  {httpReq("spiffe://cluster.local/ns/x/sa/y", "api.books.example", 80), false, "is not in the mesh"},
		"https by server name":      {tcpReq(buyer, 443, Egress{SNI: "pay.example"}), true, "rules[1]"},
		"https other server name":   {tcpReq(buyer, 443, Egress{SNI: "pay.example.evil"}), false, "pay.example.evil"},
		"https host is not sni":     {tcpReq(buyer, 443, Egress{Host: "pay.example"}), false, "denied"},
		"tcp address":               {tcpReq(buyer, 5432, Egress{Address: "10.20.1.2"}), true, "rules[2]"},
		"tcp ipv6 address":          {tcpReq(buyer, 5432, Egress{Address: "fd00:20::5"}), true, "rules[2]"},
		"tcp other network":         {tcpReq(buyer, 5432, Egress{Address: "10.30.1.2"}), false, "10.30.1.2"},
		"tcp other port":            {tcpReq(buyer, 22, Egress{Address: "10.20.1.2"}), false, "on port 22"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := e.DecideRequest(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason == "denied" {
				tc.reason = ""
			}
			if d.Allowed != tc.allowed || !strings.Contains(d.Reason, tc.reason) || d.Reason == "" {
				t.Fatalf("allowed %v (%s), want %v with %q", d.Allowed, d.Reason, tc.allowed, tc.reason)
			}
		})
	}
}

// Egress rules never allow a request inside the mesh, and access rules
// never allow a request out of it.
func TestEgressAndMeshStayApart(t *testing.T) {
	e := newEngine(t, Options{}, egressModel(), nil)
	ctx := context.Background()
	// bookbuyer may call bookstore inside the mesh, but bookstore's name as
	// an external host is not an egress rule.
	d, err := e.DecideRequest(ctx, Request{
		Source: "bookbuyer/bookbuyer", Destination: "bookstore/bookstore", Method: "GET", Path: "/books-bought",
		Egress: &Egress{Host: "bookstore.bookstore"},
	})
	if err != nil || d.Allowed {
		t.Fatalf("egress to a mesh service's name: %+v, %v; want denied", d, err)
	}
	// An egress rule's host does not open a mesh destination.
	d, err = e.DecideRequest(ctx, Request{
		Source: "bookbuyer/bookbuyer", Destination: "bookwarehouse/bookwarehouse", Method: "GET", Path: "/", Host: "api.books.example", Port: 80,
	})
	if err != nil || d.Allowed {
		t.Fatalf("mesh request with an egress host: %+v, %v; want denied", d, err)
	}
}

func TestEgressBadAddress(t *testing.T) {
	e := newEngine(t, Options{}, egressModel(), nil)
	_, err := e.Input(Request{Source: "bookbuyer/bookbuyer", Protocol: ProtocolTCP, Egress: &Egress{Address: "not-an-ip"}})
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), `"not-an-ip"`) {
		t.Fatalf("error %v, want ErrInvalidRequest naming the address", err)
	}
	d, err := e.DecideRequest(context.Background(), Request{Source: "bookbuyer/bookbuyer", Protocol: ProtocolTCP, Egress: &Egress{Address: "not-an-ip"}})
	if err != nil || d.Allowed || !strings.Contains(d.Reason, "not an IP address") {
		t.Fatalf("decision %+v, %v; want denied with the problem as reason", d, err)
	}
}
