package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// podsPerIdentity is how many simulated pods (ADS clients) share an
// identity in the benchmarks.
const podsPerIdentity = 5

// benchTypes are the types a simulated client subscribes to, in the
// order of its version slots.
var benchTypes = [4]string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

// benchModel is a mesh of services services over clients/podsPerIdentity
// identities, each identity running podsPerIdentity pods. Service j is
// served by the pods of identity j mod identities, on port 8080 behind
// service port 80; every identity may call the next; service 0 is split
// between services 1 and 2 with the weights w and 100-w.
func benchModel(services, clients, w int) *mesh.Model {
	nid := clients / podsPerIdentity
	m := &mesh.Model{Options: mesh.DefaultOptions()}
	pods := make([][]mesh.Endpoint, nid)
	for i := range nid {
		id := mesh.Identity{Namespace: fmt.Sprintf("ns%02d", i%20), Name: fmt.Sprintf("sa%04d", i)}
		m.Identities = append(m.Identities, id)
		for p := range podsPerIdentity {
			n := i*podsPerIdentity + p
			pods[i] = append(pods[i], mesh.Endpoint{
				Address: fmt.Sprintf("10.%d.%d.%d", n/65536, n/256%256, n%256),
				Ports:   []mesh.EndpointPort{{Name: "http", Port: 8080}},
				Pod:     fmt.Sprintf("%s-%d", id.Name, p), Ready: true,
			})
		}
	}
	slices.SortFunc(m.Identities, mesh.Identity.Compare)
	for i, id := range m.Identities {
		for p := range pods[i] {
			pods[i][p].Identity = &m.Identities[i]
		}
		m.Access = append(m.Access, mesh.AccessRule{
			Origin:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: id.Namespace, Name: id.Name},
			Destination: id, Sources: []mesh.Identity{m.Identities[(i+1)%nid]},
			HTTP: []mesh.HTTPMatch{{Name: "get", Methods: []string{"GET"}, PathRegex: "/api/.*"}},
		})
	}
	for j := range services {
		i := j % nid
		m.Services = append(m.Services, mesh.Service{
			ServiceKey: mesh.ServiceKey{Namespace: m.Identities[i].Namespace, Name: fmt.Sprintf("svc%04d", j)},
			Ports:      []mesh.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}},
			Endpoints:  pods[i],
			Identities: []mesh.Identity{m.Identities[i]},
		})
	}
	slices.SortFunc(m.Services, func(a, b mesh.Service) int { return a.Compare(b.ServiceKey) })
	key := func(j int) mesh.ServiceKey { return m.Services[j].ServiceKey }
	m.Splits = []mesh.Split{{
		Origin:   mesh.ObjectRef{Kind: "TrafficSplit", Namespace: key(0).Namespace, Name: "split"},
		Service:  key(0),
		Backends: []mesh.SplitBackend{{Service: key(1), Weight: int32(w)}, {Service: key(2), Weight: int32(100 - w)}},
	}}
	return m
}

// simClient is a simulated ADS client: a wildcard state-of-the-world
// subscription to every type, acknowledging every response. It keeps
// only the last version of each type and when it arrived.
type simClient struct {
	id       mesh.Identity
	node     *corev3.Node
	conn     *grpc.ClientConn
	versions [4]atomic.Pointer[string]
	arrived  [4]atomic.Int64 // unix nanoseconds
}

// headerCodec is the simulated clients' codec: it reads only the
// version, type and nonce of a response and skips its resources, without
// copying the received bytes into one buffer (a CodecV2 reads gRPC's
// buffers as they are), so that the clients, which share the benchmark's
// cores with the server, cost next to nothing and the figures are the
// server's.
type headerCodec struct{}

var _ encoding.CodecV2 = headerCodec{}

func (headerCodec) Name() string { return "proto" }

func (headerCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (headerCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*discoveryv3.DiscoveryResponse)
	if !ok {
		return proto.Unmarshal(data.Materialize(), v.(proto.Message))
	}
	in := &sliceReader{bufs: data}
	for !in.done() {
		tag, err := in.varint()
		if err != nil {
			return err
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		var n uint64
		switch typ {
		case protowire.VarintType:
			_, err = in.varint()
		case protowire.Fixed64Type:
			err = in.skip(8)
		case protowire.Fixed32Type:
			err = in.skip(4)
		case protowire.BytesType:
			if n, err = in.varint(); err != nil {
				break
			}
			switch num {
			case 1:
				r.VersionInfo, err = in.str(n)
			case 4:
				r.TypeUrl, err = in.str(n)
			case 5:
				r.Nonce, err = in.str(n)
			default:
				err = in.skip(n)
			}
		default:
			err = fmt.Errorf("unexpected wire type %d", typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sliceReader reads protobuf wire data spread over gRPC's buffers.
type sliceReader struct {
	bufs mem.BufferSlice
	i    int // current buffer
	off  int // offset in it
}

func (r *sliceReader) done() bool {
	for r.i < len(r.bufs) && r.off >= r.bufs[r.i].Len() {
		r.i, r.off = r.i+1, 0
	}
	return r.i >= len(r.bufs)
}

func (r *sliceReader) byte() (byte, error) {
	if r.done() {
		return 0, io.ErrUnexpectedEOF
	}
	b := r.bufs[r.i].ReadOnlyData()[r.off]
	r.off++
	return b, nil
}

func (r *sliceReader) varint() (uint64, error) {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

func (r *sliceReader) skip(n uint64) error {
	for n > 0 {
		if r.done() {
			return io.ErrUnexpectedEOF
		}
		k := min(n, uint64(r.bufs[r.i].Len()-r.off))
		r.off += int(k)
		n -= k
	}
	return nil
}

func (r *sliceReader) str(n uint64) (string, error) {
	out := make([]byte, 0, n)
	for uint64(len(out)) < n {
		if r.done() {
			return "", io.ErrUnexpectedEOF
		}
		d := r.bufs[r.i].ReadOnlyData()[r.off:]
		k := min(n-uint64(len(out)), uint64(len(d)))
		out = append(out, d[:k]...)
		r.off += int(k)
	}
	return string(out), nil
}

// dial opens one loopback TCP connection per client, as separate pods
// would, with the large flow control windows Envoy uses.
func dial(b *testing.B, lis net.Listener) *grpc.ClientConn {
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(headerCodec{})),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(16<<20), grpc.WithInitialConnWindowSize(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// start opens the client's stream and subscribes.
func (c *simClient) start(ctx context.Context, b *testing.B) {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).StreamAggregatedResources(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range benchTypes {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: t}); err != nil {
			b.Fatal(err)
		}
	}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			i := slices.Index(benchTypes[:], r.GetTypeUrl())
			v := r.GetVersionInfo()
			c.arrived[i].Store(now)
			c.versions[i].Store(&v)
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: v, ResponseNonce: r.GetNonce()}); err != nil {
				return
			}
		}
	}()
}

// impl is an xDS server under benchmark.
type impl interface {
	// publish makes the model current and returns the versions each
	// identity's nodes converge to.
	publish(b *testing.B, m *mesh.Model) func(mesh.Identity) [4]string
	listener() net.Listener
	// stop stops the gRPC server.
	stop()
}

// meshwardImpl is this package's server.
type meshwardImpl struct {
	s   *Server
	lis net.Listener
	g   *grpc.Server
}

func listen(b *testing.B) net.Listener {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return lis
}

func newMeshwardImpl(b *testing.B) *meshwardImpl {
	s, err := New(Options{Translate: translate.Options{Flavor: translate.FlavorGRPC}})
	if err != nil {
		b.Fatal(err)
	}
	lis := listen(b)
	g := grpc.NewServer(GRPCServerOptions()...)
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	b.Cleanup(g.Stop)
	return &meshwardImpl{s: s, lis: lis, g: g}
}

func (i *meshwardImpl) listener() net.Listener { return i.lis }

func (i *meshwardImpl) stop() { i.g.Stop() }

func (i *meshwardImpl) publish(b *testing.B, m *mesh.Model) func(mesh.Identity) [4]string {
	if err := i.s.Update(m); err != nil {
		b.Fatal(err)
	}
	return func(id mesh.Identity) [4]string {
		i.s.mu.Lock()
		st := i.s.identities[id]
		i.s.mu.Unlock()
		var out [4]string
		for k, t := range benchTypes {
			c := i.s.eds
			if t != resourcev3.EndpointType {
				c = st.caches[t]
			}
			c.mu.Lock()
			out[k] = c.versionInfo()
			c.mu.Unlock()
		}
		return out
	}
}

// snapshotImpl is go-control-plane's plain snapshot cache, fed one
// snapshot per client (the snapshots of an identity's pods share their
// resources), translated the same way and as parallel as Update.
type snapshotImpl struct {
	c       cache.SnapshotCache
	lis     net.Listener
	g       *grpc.Server
	clients []*simClient
	gen     int
}

func newSnapshotImpl(b *testing.B, clients []*simClient) *snapshotImpl {
	i := &snapshotImpl{c: cache.NewSnapshotCache(true, cache.IDHash{}, nil), lis: listen(b), clients: clients}
	i.g = grpc.NewServer(GRPCServerOptions()...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(i.g, serverv3.NewServer(context.Background(), i.c, nil))
	go func() { _ = i.g.Serve(i.lis) }()
	b.Cleanup(i.g.Stop)
	return i
}

func (i *snapshotImpl) listener() net.Listener { return i.lis }

func (i *snapshotImpl) stop() { i.g.Stop() }

func (i *snapshotImpl) publish(b *testing.B, m *mesh.Model) func(mesh.Identity) [4]string {
	i.gen++
	version := strconv.Itoa(i.gen)
	opts := translate.Options{Flavor: translate.FlavorGRPC}
	var eds []types.Resource
	for _, cla := range translate.Endpoints(m, opts) {
		eds = append(eds, cla)
	}
	snaps := make([]*cache.Snapshot, len(m.Identities))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range next {
				res, err := translate.ForIdentity(m, m.Identities[k], opts)
				if err != nil {
					b.Error(err)
					continue
				}
				byType := map[resourcev3.Type][]types.Resource{resourcev3.EndpointType: eds}
				for _, l := range res.Listeners {
					byType[resourcev3.ListenerType] = append(byType[resourcev3.ListenerType], l)
				}
				for _, r := range res.Routes {
					byType[resourcev3.RouteType] = append(byType[resourcev3.RouteType], r)
				}
				for _, c := range res.Clusters {
					byType[resourcev3.ClusterType] = append(byType[resourcev3.ClusterType], c)
				}
				s, err := cache.NewSnapshot(version, byType)
				if err != nil {
					b.Error(err)
				}
				snaps[k] = s
			}
		})
	}
	for k := range m.Identities {
		next <- k
	}
	close(next)
	wg.Wait()
	for _, c := range i.clients {
		k, _ := slices.BinarySearchFunc(m.Identities, c.id, mesh.Identity.Compare)
		if err := i.c.SetSnapshot(context.Background(), c.node.GetId(), snaps[k]); err != nil {
			b.Fatal(err)
		}
	}
	return func(mesh.Identity) [4]string { return [4]string{version, version, version, version} }
}

// newClients makes the simulated clients of the model's identities.
func newClients(b *testing.B, m *mesh.Model) []*simClient {
	var out []*simClient
	for _, id := range m.Identities {
		md, err := structpb.NewStruct(bootstrap.NodeMetadata(id))
		if err != nil {
			b.Fatal(err)
		}
		for p := range podsPerIdentity {
			out = append(out, &simClient{id: id, node: &corev3.Node{Id: bootstrap.NodeID(fmt.Sprintf("pod%d", p), id), Metadata: md}})
		}
	}
	return out
}

// connect connects every client; it returns a function that closes
// them.
func connect(b *testing.B, im impl, clients []*simClient) func() {
	ctx, cancel := context.WithCancel(context.Background())
	for _, c := range clients {
		c.conn = dial(b, im.listener())
		for k := range c.versions {
			c.versions[k].Store(nil)
		}
		c.start(ctx, b)
	}
	return func() {
		cancel()
		for _, c := range clients {
			c.conn.Close()
		}
	}
}

// converge waits until every client has the versions of its identity.
func converge(b *testing.B, clients []*simClient, want func(mesh.Identity) [4]string) {
	wants := map[mesh.Identity][4]string{}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		done := true
		for _, c := range clients {
			w, ok := wants[c.id]
			if !ok {
				w = want(c.id)
				wants[c.id] = w
			}
			for k := range w {
				if v := c.versions[k].Load(); v == nil || *v != w[k] {
					done = false
					break
				}
			}
			if !done {
				break
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("clients did not converge")
		}
		time.Sleep(time.Millisecond)
	}
}

// cpuTime is the CPU time the process has used (user and system): on a
// shared machine it tells the work done apart from the waiting for other
// processes, which wall time mixes in. It includes the simulated clients
// and the busy-polling of converge.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPushConvergence measures the time from a new model to every
// client holding its full configuration (translation included), for
// this server and for go-control-plane's snapshot cache fed one snapshot
// per client, and the heap each connected client costs (both ends of its
// stream, in this process; the published model included).
func BenchmarkPushConvergence(b *testing.B) {
	const services = 1000
	for _, n := range []int{100, 500} {
		m := benchModel(services, n, 80)
		for _, name := range []string{"meshward", "snapshotcache"} {
			b.Run(fmt.Sprintf("clients=%d/services=%d/impl=%s", n, services, name), func(b *testing.B) {
				var perClient float64
				var publishing, cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					before := heapInUse()
					clients := newClients(b, m)
					var im impl
					if name == "meshward" {
						im = newMeshwardImpl(b)
					} else {
						im = newSnapshotImpl(b, clients)
					}
					closeAll := connect(b, im, clients)
					b.StartTimer()
					start, cpu0 := time.Now(), cpuTime()
					want := im.publish(b, m)
					publishing += time.Since(start)
					converge(b, clients, want)
					cpu += cpuTime() - cpu0
					b.StopTimer()
					after := heapInUse()
					perClient = float64(after-min(before, after)) / float64(len(clients))
					closeAll()
					im.stop()
					b.StartTimer()
				}
				b.ReportMetric(perClient/1024, "KiB-heap/client")
				b.ReportMetric(float64(publishing.Milliseconds())/float64(b.N), "ms-publish/op")
				b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "ms-cpu/op")
			})
		}
	}
}

// BenchmarkSplitPropagation measures, for 100 connected clients, the time
// from changing a TrafficSplit (Update called) to each client receiving
// the new routes, and reports the 99th percentile over every client and
// change.
func BenchmarkSplitPropagation(b *testing.B) {
	const clients = 100
	for _, services := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d/services=%d", clients, services), func(b *testing.B) {
			im := newMeshwardImpl(b)
			cs := newClients(b, benchModel(services, clients, 80))
			defer connect(b, im, cs)()
			converge(b, cs, im.publish(b, benchModel(services, clients, 80)))
			var latencies []time.Duration
			w := 80
			for b.Loop() {
				w = 100 - w + 1
				if w >= 100 {
					w = 10
				}
				m := benchModel(services, clients, w)
				start := time.Now()
				want := im.publish(b, m)
				converge(b, cs, want)
				for _, c := range cs {
					latencies = append(latencies, time.Duration(c.arrived[1].Load()-start.UnixNano()))
				}
			}
			slices.Sort(latencies)
			p := func(q float64) float64 {
				return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(p(0.5), "p50-ms")
			b.ReportMetric(p(0.99), "p99-ms")
		})
	}
}
