package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/meshward/meshward/mesh"
)

func ingressModel() *mesh.Model {
	m := bookstore()
	web := mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore-v1"}
	nginx := mesh.ServiceKey{Namespace: "ingress", Name: "nginx"}
	m.Ingress = []mesh.IngressBackend{
		{
			Origin:   ref("IngressBackend", "bookstore", "by-address"),
			Backends: []mesh.IngressTarget{{Service: web, Port: 14001, Protocol: mesh.IngressHTTP}},
			Sources: []mesh.IngressSource{
				{Kind: mesh.IngressSourceService, Service: &nginx, Addresses: []string{"10.3.0.5"}},
				{Kind: mesh.IngressSourceIPRange, CIDR: "192.168.0.0/16"},
			},
		},
		{
			Origin:   ref("IngressBackend", "bookstore", "by-principal"),
			Backends: []mesh.IngressTarget{{Service: web, Port: 14443, Protocol: mesh.IngressHTTPS}},
			Sources: []mesh.IngressSource{
				{Kind: mesh.IngressSourceIPRange, CIDR: "10.0.0.0/8"},
				{Kind: mesh.IngressSourceAuthenticatedPrincipal, Principal: "nginx.ingress.cluster.local"},
			},
		},
	}
	return m
}

func TestIngressDecisions(t *testing.T) {
	e := newEngine(t, Options{}, ingressModel(), nil)
	for name, tc := range map[string]struct {
		in      Ingress
		allowed bool
		reason  string
	}{
		"service source address":        {Ingress{Backend: "bookstore/bookstore-v1", Port: 14001, Address: "10.3.0.5"}, true, "IngressBackend bookstore/by-address"},
		"cidr source":                   {Ingress{Backend: "bookstore/bookstore-v1", Port: 14001, Address: "192.168.7.1"}, true, "IngressBackend bookstore/by-address"},
		"unknown address":               {Ingress{Backend: "bookstore/bookstore-v1", Port: 14001, Address: "172.16.0.1"}, false, "admits client 172.16.0.1"},
		"other port":                    {Ingress{Backend: "bookstore/bookstore-v1", Port: 8080, Address: "10.3.0.5"}, false, "no IngressBackend admits ingress to bookstore/bookstore-v1 port 8080"},
		"other backend":                 {Ingress{Backend: "bookstore/bookstore-v2", Port: 14001, Address: "10.3.0.5"}, false, "no IngressBackend"},
		"https with address and cert":   {Ingress{Backend: "bookstore/bookstore-v1", Port: 14443, Address: "10.1.2.3", Principal: "nginx.ingress.cluster.local"}, true, "by-principal"},
		"https without cert":            {Ingress{Backend: "bookstore/bookstore-v1", Port: 14443, Address: "10.1.2.3"}, false, "no client certificate"},
		"https with cert, bad address":  {Ingress{Backend: "bookstore/bookstore-v1", Port: 14443, Address: "8.8.8.8", Principal: "nginx.ingress.cluster.local"}, false, "8.8.8.8"},
		"https with another principal ": {Ingress{Backend: "bookstore/bookstore-v1", Port: 14443, Address: "10.1.2.3", Principal: "other.ingress.cluster.local"}, false, "other.ingress.cluster.local"},
	} {
		t.Run(name, func(t *testing.T) {
			in := tc.in
			d, err := e.DecideRequest(context.Background(), Request{Method: "GET", Path: "/", Ingress: &in})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("allowed %v (%s), want %v with %q", d.Allowed, d.Reason, tc.allowed, tc.reason)
			}
		})
	}
}

// An ingress request never gains access through TrafficTargets, and a mesh
// request never through IngressBackends.
func TestIngressAndMeshStayApart(t *testing.T) {
	e := newEngine(t, Options{}, ingressModel(), nil)
	d, err := e.DecideRequest(context.Background(), Request{
		Source: "spiffe://cluster.local/ns/bookthief/sa/bookthief", Destination: "bookstore/bookstore",
		Method: "GET", Path: "/", Headers: map[string]string{"x-real-ip": "10.3.0.5"},
	})
	if err != nil || d.Allowed {
		t.Fatalf("a mesh request was allowed by an IngressBackend: %+v %v", d, err)
	}
}
