// Package translate combines meshward's translators into the one function
// every source calls: snapshot in, mesh model out. It is pure.
package translate

import (
	"github.com/meshward/meshward/adapters/oci"
	"github.com/meshward/meshward/adapters/osm"
	"github.com/meshward/meshward/adapters/smi"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// Build translates a snapshot into the mesh model: the SMI objects first
// (namespaces, identities, services, access, splits), then the OSM
// IngressBackends, which read the services, then the OCI-style objects,
// which read the services and splits. The findings of all are sorted
// together.
func Build(s *snapshot.Snapshot, opts mesh.Options) *mesh.Model {
	m := smi.Translate(s, opts)
	osm.Translate(s, m)
	oci.Translate(s, m)
	return m
}
