package smi

import (
	"testing"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// BenchmarkTranslate translates a mesh of 1,000 services with 10,000
// endpoints (EndpointSlices and Pods), 1,000 TrafficTargets and 200
// TrafficSplits over 50 namespaces. The target on a 2-core machine is at
// most 50 ms and 64 MiB per translation.
//
// The baseline deep-copies the same snapshot: a floor every translation
// pays in some form (it reads every object once), measured in the same run
// so the ratio stays meaningful on a noisy machine.
func BenchmarkTranslate(b *testing.B) {
	s := generate(benchConfig)
	opts := mesh.DefaultOptions()
	if m := Translate(s, opts); len(m.Findings) != 0 {
		b.Fatalf("generated snapshot gives findings, e.g. %s", m.Findings[0])
	}
	b.Run("impl=translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Translate(s, opts)
		}
	})
	b.Run("impl=baseline-deepcopy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			deepCopy(s)
		}
	})
}

func deepCopy(s *snapshot.Snapshot) *snapshot.Snapshot {
	out := &snapshot.Snapshot{}
	for i := range s.Namespaces {
		out.Namespaces = append(out.Namespaces, *s.Namespaces[i].DeepCopy())
	}
	for i := range s.ServiceAccounts {
		out.ServiceAccounts = append(out.ServiceAccounts, *s.ServiceAccounts[i].DeepCopy())
	}
	for i := range s.Services {
		out.Services = append(out.Services, *s.Services[i].DeepCopy())
	}
	for i := range s.EndpointSlices {
		out.EndpointSlices = append(out.EndpointSlices, *s.EndpointSlices[i].DeepCopy())
	}
	for i := range s.Pods {
		out.Pods = append(out.Pods, *s.Pods[i].DeepCopy())
	}
	for i := range s.TrafficTargets {
		out.TrafficTargets = append(out.TrafficTargets, *s.TrafficTargets[i].DeepCopy())
	}
	for i := range s.HTTPRouteGroups {
		out.HTTPRouteGroups = append(out.HTTPRouteGroups, *s.HTTPRouteGroups[i].DeepCopy())
	}
	for i := range s.TCPRoutes {
		out.TCPRoutes = append(out.TCPRoutes, *s.TCPRoutes[i].DeepCopy())
	}
	for i := range s.TrafficSplits {
		out.TrafficSplits = append(out.TrafficSplits, *s.TrafficSplits[i].DeepCopy())
	}
	return out
}
