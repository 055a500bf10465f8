package smi

import (
	"testing"

	"github.com/meshward/meshward/mesh"
)

// BenchmarkTranslate translates a mesh of 1,000 services with 10,000
// endpoints (EndpointSlices and Pods), 1,000 TrafficTargets and 200
// TrafficSplits over 50 namespaces. The target on a 2-core machine is at
// most 50 ms and 64 MiB per translation.
func BenchmarkTranslate(b *testing.B) {
	s := generate(benchConfig)
	opts := mesh.DefaultOptions()
	if m := Translate(s, opts); len(m.Findings) != 0 {
		b.Fatalf("generated snapshot gives findings, e.g. %s", m.Findings[0])
	}
	b.ReportAllocs()
	for b.Loop() {
		Translate(s, opts)
	}
}
