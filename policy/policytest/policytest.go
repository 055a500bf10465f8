// Package policytest holds the mesh models the policy packages' tests and
// benchmarks share. It is used by tests only.
package policytest

import (
	"fmt"

	"github.com/meshward/meshward/mesh"
)

// Generated returns a model with n TrafficTargets: target i lets
// client-i/client call app-i/app for GET /api/v1/... and one more match,
// and open TCP port 8080.
func Generated(n int) *mesh.Model {
	m := &mesh.Model{Options: mesh.DefaultOptions()}
	for i := range n {
		ns := fmt.Sprintf("app-%d", i)
		client := mesh.Identity{Namespace: fmt.Sprintf("client-%d", i), Name: "client"}
		app := mesh.Identity{Namespace: ns, Name: "app"}
		m.Identities = append(m.Identities, app, client)
		group := mesh.ObjectRef{Kind: "HTTPRouteGroup", Namespace: ns, Name: "routes"}
		m.Access = append(m.Access, mesh.AccessRule{
			Origin:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: ns, Name: "client-access"},
			Destination: app,
			Sources:     []mesh.Identity{client},
			HTTP: []mesh.HTTPMatch{
				{Group: group, Name: "read", Methods: []string{"GET"}, PathRegex: "/api/v1/.*"},
				{
					Group: group, Name: "write", Methods: []string{"POST", "PUT"}, PathRegex: "/api/v1/items",
					Headers: []mesh.HeaderMatch{{Name: "x-client", Regex: "client-.*"}},
				},
			},
			TCP: []mesh.PortMatch{{Route: mesh.ObjectRef{Kind: "TCPRoute", Namespace: ns, Name: "tcp"}, Name: "port", Ports: []int32{8080}}},
		})
	}
	return m
}

// DistinctPaths is Generated with a path expression of its own for every
// target: target i's first match allows GET /api/v1/i/... (see
// DistinctPath), so that n targets carry n different expressions, as in
// a mesh whose routes differ.
func DistinctPaths(n int) *mesh.Model {
	m := Generated(n)
	for i := range m.Access {
		m.Access[i].HTTP[0].PathRegex = fmt.Sprintf("/api/v1/%d/.*", i)
	}
	return m
}

// DistinctPath is a path that target i of DistinctPaths allows for GET.
func DistinctPath(i int) string { return fmt.Sprintf("/api/v1/%d/books", i) }
