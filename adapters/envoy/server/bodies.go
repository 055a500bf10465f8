package server

import (
	"crypto/sha256"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// encoded is the resources of a state-of-the-world answer, encoded as
// the resources field of a DiscoveryResponse.
type encoded struct {
	body []byte
	n    int
}

// bodyCache shares encoded answers between the caches of every identity:
// answers that carry the same resources (every pod of an identity, and
// in the gRPC flavor the clusters and routes of every identity) are
// encoded once. An encoding is kept only while an answer holds it.
type bodyCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]weak.Pointer[encoded]
}

func newBodyCache() *bodyCache {
	return &bodyCache{m: map[[sha256.Size]byte]weak.Pointer[encoded]{}}
}

// get returns the encoding of the resources of type typeURL, sorted by
// name (it sorts rs). Resources are named by their content (the name is
// part of it), so the content hashes of the sorted resources identify the
// answer.
func (bc *bodyCache) get(typeURL string, rs []*resource) *encoded {
	slices.SortFunc(rs, func(a, b *resource) int { return strings.Compare(a.name, b.name) })
	h := sha256.New()
	h.Write([]byte(typeURL))
	for _, r := range rs {
		h.Write([]byte{0})
		h.Write([]byte(r.version))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	bc.mu.Lock()
	e := bc.m[key].Value()
	bc.mu.Unlock()
	if e != nil {
		return e
	}
	e = encodeSorted(rs)
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if prior := bc.m[key].Value(); prior != nil {
		return prior
	}
	bc.m[key] = weak.Make(e)
	runtime.AddCleanup(e, bc.forget, key)
	return e
}

// forget drops the entry of an encoding that is no longer held.
func (bc *bodyCache) forget(key [sha256.Size]byte) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if wp, ok := bc.m[key]; ok && wp.Value() == nil {
		delete(bc.m, key)
	}
}

// encodeSorted encodes resources, in their order, as the repeated
// resources field (2) of a DiscoveryResponse: each an Any with its type
// URL (1) and value (2).
func encodeSorted(rs []*resource) *encoded {
	anySize := func(a *anypb.Any) int {
		return protowire.SizeTag(1) + protowire.SizeBytes(len(a.GetTypeUrl())) + protowire.SizeTag(2) + protowire.SizeBytes(len(a.GetValue()))
	}
	size := 0
	for _, r := range rs {
		size += protowire.SizeTag(2) + protowire.SizeBytes(anySize(r.any))
	}
	b := make([]byte, 0, size)
	for _, r := range rs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(anySize(r.any)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, r.any.GetTypeUrl())
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, r.any.GetValue())
	}
	return &encoded{body: b, n: len(rs)}
}
