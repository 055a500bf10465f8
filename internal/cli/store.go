package cli

import (
	"sync/atomic"

	"github.com/meshward/meshward/mesh"
)

// modelStore holds the model in force; servers read it, sources replace it.
type modelStore struct{ p atomic.Pointer[mesh.Model] }

func (s *modelStore) set(m *mesh.Model) { s.p.Store(m) }
