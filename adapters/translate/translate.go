// Package translate combines meshward's translators into the one function
// every source calls: snapshot in, mesh model out. It is pure.
package translate

import (
	"github.com/meshward/meshward/adapters/smi"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// Build translates a snapshot into the mesh model.
func Build(s *snapshot.Snapshot, opts mesh.Options) *mesh.Model {
	return smi.Translate(s, opts)
}
