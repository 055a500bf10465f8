package server

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A response whose resources were encoded once for several nodes goes
// out with the same bytes, once decoded, as one built resource by
// resource.
func TestEncodedResponseDecodesAsPlain(t *testing.T) {
	var rs []*resource
	for _, name := range []string{"c", "a", "b", "empty"} {
		c := &clusterv3.Cluster{Name: name}
		if name == "empty" {
			c = &clusterv3.Cluster{}
		}
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		a := &anypb.Any{TypeUrl: resourcev3.ClusterType, Value: b}
		rs = append(rs, &resource{name: c.GetName(), any: a})
	}
	req := &cache.Request{TypeUrl: resourcev3.ClusterType}
	plain, err := (&sotwResponse{req: req, version: "v1", resources: rs}).GetDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	enc := newBodyCache().get(resourcev3.ClusterType, append([]*resource(nil), rs...))
	if enc.n != len(rs) {
		t.Fatalf("encoded %d resources, want %d", enc.n, len(rs))
	}
	out, err := (&sotwResponse{req: req, version: "v1", encoded: enc.body}).GetDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	out.Nonce = "7"
	wire, err := proto.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	got := &discoveryv3.DiscoveryResponse{}
	if err := proto.Unmarshal(wire, got); err != nil {
		t.Fatal(err)
	}
	// The encoding sorts by name.
	want := proto.Clone(plain).(*discoveryv3.DiscoveryResponse)
	want.Resources = []*anypb.Any{rs[3].any, rs[1].any, rs[2].any, rs[0].any}
	want.Nonce = "7"
	if !proto.Equal(got, want) {
		t.Fatalf("decoded %v,\nwant %v", got, want)
	}
}

// The codec writes the bytes of the standard proto codec, also for a
// response whose resources it does not copy.
func TestCodecWritesStandardBytes(t *testing.T) {
	var rs []*resource
	for i := range 200 {
		c := &clusterv3.Cluster{Name: fmt.Sprintf("cluster-%03d", i), AltStatName: strings.Repeat("x", 50)}
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, &resource{name: c.GetName(), any: &anypb.Any{TypeUrl: resourcev3.ClusterType, Value: b}})
	}
	req := &cache.Request{TypeUrl: resourcev3.ClusterType}
	enc := newBodyCache().get(resourcev3.ClusterType, rs)
	if len(enc.body) < sharedBodyMin {
		t.Fatalf("test body of %d bytes does not reach the shared path", len(enc.body))
	}
	plain, _ := (&sotwResponse{req: req, version: "v1", resources: rs}).GetDiscoveryResponse()
	shared, _ := (&sotwResponse{req: req, version: "v1", encoded: enc.body}).GetDiscoveryResponse()
	plain.Nonce, shared.Nonce = "3", "3"
	c := newCodec()
	for name, msg := range map[string]*discoveryv3.DiscoveryResponse{"plain": plain, "shared": shared} {
		got, err := c.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.std.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want.Materialize()) {
			t.Errorf("%s: the codec's bytes differ from the standard codec's", name)
		}
		decoded := &discoveryv3.DiscoveryResponse{}
		if err := c.Unmarshal(got, decoded); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(decoded, plain) {
			t.Errorf("%s: decodes to another response", name)
		}
	}
}

// Equal answers share one encoding while it is held; the cache forgets
// it once nothing holds it.
func TestBodyCacheSharesWhileHeld(t *testing.T) {
	bc := newBodyCache()
	res := func(name, version string) *resource {
		return &resource{name: name, version: version, any: &anypb.Any{TypeUrl: resourcev3.ClusterType, Value: []byte(name + version)}}
	}
	a := bc.get(resourcev3.ClusterType, []*resource{res("b", "2"), res("a", "1")})
	b := bc.get(resourcev3.ClusterType, []*resource{res("a", "1"), res("b", "2")})
	c := bc.get(resourcev3.ClusterType, []*resource{res("a", "1"), res("b", "3")})
	d := bc.get(resourcev3.RouteType, []*resource{res("a", "1"), res("b", "2")})
	if a != b {
		t.Error("equal answers were encoded twice")
	}
	if a == c || a == d {
		t.Error("different answers share an encoding")
	}
	runtime.KeepAlive([]*encoded{a, b, c, d})
	for range 100 {
		runtime.GC()
		bc.mu.Lock()
		n := len(bc.m)
		bc.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Error("encodings nobody holds are still cached")
}
