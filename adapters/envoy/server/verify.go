package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/mesh"
)

// refusedPeerMismatch labels streams whose node claims another identity
// than its client certificate proves, or that have no such certificate.
const refusedPeerMismatch = "peer_mismatch"

// verifyingADS is the ADS service with Options.VerifyPeer: before a
// stream reaches the server, its peer's certificate must prove the
// identity its node claims, on the first request and on every later one
// that names a node.
type verifyingADS struct {
	discoveryv3.AggregatedDiscoveryServiceServer
	s *Server
}

func (v verifyingADS) StreamAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	proven, err := v.s.peerIdentity(stream.Context())
	if err != nil {
		return v.s.refusePeer(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := v.s.checkNode(first.GetNode(), proven); err != nil {
		return v.s.refusePeer(err)
	}
	return v.AggregatedDiscoveryServiceServer.StreamAggregatedResources(&sotwChecked{stream, v.s, proven, first})
}

func (v verifyingADS) DeltaAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	proven, err := v.s.peerIdentity(stream.Context())
	if err != nil {
		return v.s.refusePeer(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := v.s.checkNode(first.GetNode(), proven); err != nil {
		return v.s.refusePeer(err)
	}
	return v.AggregatedDiscoveryServiceServer.DeltaAggregatedResources(&deltaChecked{stream, v.s, proven, first})
}

// sotwChecked replays the first request, then checks the node of every
// request that names one; a mismatch ends the stream.
type sotwChecked struct {
	discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	s      *Server
	proven mesh.Identity
	first  *discoveryv3.DiscoveryRequest
}

func (c *sotwChecked) Recv() (*discoveryv3.DiscoveryRequest, error) {
	return recvChecked(c.s, c.proven, &c.first, c.AggregatedDiscoveryService_StreamAggregatedResourcesServer.Recv)
}

type deltaChecked struct {
	discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	s      *Server
	proven mesh.Identity
	first  *discoveryv3.DeltaDiscoveryRequest
}

func (c *deltaChecked) Recv() (*discoveryv3.DeltaDiscoveryRequest, error) {
	return recvChecked(c.s, c.proven, &c.first, c.AggregatedDiscoveryService_DeltaAggregatedResourcesServer.Recv)
}

// nodeRequest is a SotW or delta request, which may name its node.
type nodeRequest interface {
	comparable
	GetNode() *corev3.Node
}

// recvChecked returns the replayed first request once, then the stream's
// requests, refusing the stream when one names a node the peer's
// certificate does not prove.
func recvChecked[R nodeRequest](s *Server, proven mesh.Identity, first *R, recv func() (R, error)) (R, error) {
	var none R
	if r := *first; r != none {
		*first = none
		return r, nil
	}
	r, err := recv()
	if err == nil && r.GetNode() != nil {
		if err := s.checkNode(r.GetNode(), proven); err != nil {
			return none, s.refusePeer(err)
		}
	}
	return r, err
}

// errPeer is wrapped by the reasons a peer is refused.
var errPeer = errors.New("the xDS client's certificate does not prove its node's identity")

// peerIdentity returns the identity the verified client certificate of
// the stream proves: its SPIFFE URI SAN in the server's trust domain.
func (s *Server) peerIdentity(ctx context.Context) (mesh.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return mesh.Identity{}, fmt.Errorf("%w: no peer", errPeer)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return mesh.Identity{}, fmt.Errorf("%w: no verified client certificate", errPeer)
	}
	for _, u := range info.State.VerifiedChains[0][0].URIs {
		if u.Scheme != "spiffe" || u.Host != s.trustDomain {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" {
			return mesh.Identity{Namespace: parts[1], Name: parts[3]}, nil
		}
	}
	return mesh.Identity{}, fmt.Errorf("%w: no SPIFFE ID of trust domain %q in the client certificate", errPeer, s.trustDomain)
}

// checkNode checks that the node claims the proven identity.
func (s *Server) checkNode(node *corev3.Node, proven mesh.Identity) error {
	claimed, err := bootstrap.NodeIdentity(node)
	if err != nil {
		return fmt.Errorf("%w: %w", errPeer, err)
	}
	if claimed != proven {
		return fmt.Errorf("%w: node %q claims %s, its certificate is %s's", errPeer, node.GetId(), claimed, proven)
	}
	return nil
}

// refusePeer logs and counts a refused peer and returns the stream's
// status.
func (s *Server) refusePeer(err error) error {
	s.metrics.refused.WithLabelValues(refusedPeerMismatch).Inc()
	s.log.Info("refusing an xDS stream", "reason", err.Error())
	return status.Error(codes.PermissionDenied, err.Error())
}
