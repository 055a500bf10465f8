package server

import (
	"context"
	"errors"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
)

// streams follows the ADS streams for logs and metrics: who is connected,
// which streams are refused, and which responses are NACKed.
type streams struct {
	s  *Server
	mu sync.Mutex
	// byID holds the streams whose node has been seen.
	byID map[int64]*streamInfo
}

type streamInfo struct {
	identified bool
	identity   string
	nodeID     string
}

func (st *streams) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			st.s.metrics.streams.Inc()
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { st.closed(streamKey(id, false)) },
		DeltaStreamOpenFunc: func(context.Context, int64, string) error {
			st.s.metrics.streams.Inc()
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { st.closed(streamKey(id, true)) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			st.request(id, false, req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			st.request(id, true, req.GetNode(), req.GetTypeUrl(), "", req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			st.s.metrics.pushes.WithLabelValues(resp.GetTypeUrl()).Inc()
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			st.s.metrics.pushes.WithLabelValues(resp.GetTypeUrl()).Inc()
		},
	}
}

func (st *streams) closed(key int64) {
	st.s.metrics.streams.Dec()
	st.mu.Lock()
	delete(st.byID, key)
	st.mu.Unlock()
}

// streamKey tells apart the stream ids of the two protocols, which are
// counted separately.
func streamKey(id int64, delta bool) int64 {
	if delta {
		return id*2 + 1
	}
	return id * 2
}

// request logs and counts what a request says: the node's identity on the
// first request that carries a node, and a NACK whenever there is one.
func (st *streams) request(id int64, delta bool, node *corev3.Node, typeURL, version, nonce, nackMessage string, nack bool) {
	key := streamKey(id, delta)
	st.mu.Lock()
	info := st.byID[key]
	if info == nil {
		info = &streamInfo{}
		st.byID[key] = info
	}
	first := !info.identified && node != nil
	if first {
		info.identified = true
		info.nodeID = node.GetId()
	}
	st.mu.Unlock()
	log := st.s.log.WithValues("stream", id, "delta", delta)
	if first {
		ident, err := bootstrap.NodeIdentity(node)
		switch {
		case errors.Is(err, bootstrap.ErrNoIdentity):
			st.s.metrics.refused.WithLabelValues(refusedNoIdentity).Inc()
			log.Info("refusing an xDS stream: its node names no identity; it gets no configuration", "node", node.GetId(), "reason", err.Error())
		case err != nil:
			st.s.metrics.refused.WithLabelValues(refusedInvalidIdentity).Inc()
			log.Info("refusing an xDS stream: its node names an invalid identity; it gets no configuration", "node", node.GetId(), "reason", err.Error())
		case !st.s.known(ident):
			st.s.metrics.refused.WithLabelValues(refusedUnknownIdentity).Inc()
			log.Info("xDS stream of an identity that is not in the mesh: it gets no configuration until the identity appears", "node", node.GetId(), "identity", ident.String())
		default:
			log.V(1).Info("xDS stream opened", "node", node.GetId(), "identity", ident.String())
		}
		st.mu.Lock()
		info.identity = ident.String()
		st.mu.Unlock()
	}
	if nack {
		st.s.metrics.nacks.WithLabelValues(typeURL).Inc()
		st.mu.Lock()
		nodeID, ident := info.nodeID, info.identity
		st.mu.Unlock()
		log.Error(errors.New(nackMessage), "xDS node rejected (NACKed) a response; it keeps its last accepted configuration, and the rejected one is not sent again",
			"node", nodeID, "identity", ident, "type", typeURL, "acceptedVersion", version, "nonce", nonce)
	}
}
