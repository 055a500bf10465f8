package cli

import (
	"sync/atomic"

	"github.com/meshward/meshward/mesh"
)

// modelStore holds the model in force; servers read it, sources replace it.
type modelStore struct{ p atomic.Pointer[mesh.Model] }

func (s *modelStore) set(m *mesh.Model) { s.p.Store(m) }

// get returns the model in force, or nil before the first build.
func (s *modelStore) get() *mesh.Model { return s.p.Load() }
