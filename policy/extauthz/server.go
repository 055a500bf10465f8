package extauthz

import (
	"context"
	"errors"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/meshward/meshward/policy"
)

// Options configure a Server.
type Options struct {
	// DecisionHeader, when set, names a response header carrying the
	// decision id (opt-in: it tells clients that meshward decided).
	DecisionHeader string
	// Log receives denied decisions at V(1) and errors always.
	Log logr.Logger
	// Registry receives the server's metrics; nil registers none.
	Registry prometheus.Registerer
	// OnDecision, when set, is called with every decision and its input,
	// for decision logs.
	OnDecision func(ctx context.Context, d policy.Decision, req *authv3.CheckRequest, err error)
}

// Server is an Envoy ext_authz v3 server deciding with a policy engine.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	engine  *policy.Engine
	opts    Options
	metrics *metrics
}

type metrics struct {
	decisions *prometheus.CounterVec
	duration  prometheus.Histogram
}

// New returns a server deciding with engine.
func New(engine *policy.Engine, opts Options) (*Server, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_extauthz_decisions_total",
			Help: "ext_authz decisions by result (allowed, denied, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshward_extauthz_decision_seconds",
			Help:    "Time to decide one ext_authz check.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2, 16),
		}),
	}
	if opts.Registry != nil {
		for _, c := range []prometheus.Collector{m.decisions, m.duration} {
			if err := opts.Registry.Register(c); err != nil {
				var already prometheus.AlreadyRegisteredError
				if !errors.As(err, &already) {
					return nil, err
				}
			}
		}
	}
	return &Server{engine: engine, opts: opts, metrics: m}, nil
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// Check decides one request. It never returns a gRPC error for a policy
// problem: the decision (deny by default, fail closed) says what to do, so
// Envoy's own failure mode never comes into play.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	d, err := s.decide(ctx, req)
	s.metrics.duration.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		s.metrics.decisions.WithLabelValues("error").Inc()
		s.opts.Log.Error(err, "no decision; applying the failure policy", "id", d.ID, "allowed", d.Allowed)
	case d.Allowed:
		s.metrics.decisions.WithLabelValues("allowed").Inc()
	default:
		s.metrics.decisions.WithLabelValues("denied").Inc()
		s.opts.Log.V(1).Info("denied", "id", d.ID, "reason", d.Reason)
	}
	if s.opts.OnDecision != nil {
		s.opts.OnDecision(ctx, d, req, err)
	}
	return response(d, s.opts.DecisionHeader), nil
}

func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest) (policy.Decision, error) {
	r := request(req)
	return s.engine.DecideRequestWith(ctx, r, func(f *policy.InputFields) { inputFields(f, req, r) })
}
