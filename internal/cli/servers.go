package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/decisionlog"
	"github.com/meshward/meshward/policy/extauthz"
	"github.com/meshward/meshward/policy/nginxauth"
)

// serverFlags configure the decision servers of serve and controller.
type serverFlags struct {
	extAuthzAddr   string
	nginxAddr      string
	decisionPath   string
	dryRun         bool
	decisionHeader string
	trustedProxies []string
	decisionLogs   string
	cacheSize      int
	regexCacheSize int
	evaluator      string
}

func addServerFlags(fs *pflag.FlagSet) *serverFlags {
	f := &serverFlags{}
	fs.StringVar(&f.extAuthzAddr, "ext-authz-address", ":9191", "address of the Envoy ext_authz gRPC server (0 disables)")
	fs.StringVar(&f.nginxAddr, "nginx-auth-address", ":9192", "address of the nginx auth_request endpoint (0 disables)")
	fs.StringVar(&f.decisionPath, "decision-path", "", "policy rule that decides, as in opa-envoy-plugin (default envoy/authz/allow)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "decide and log, but allow every request")
	fs.StringVar(&f.decisionHeader, "decision-header", "", "response header carrying the decision id (off by default)")
	fs.StringVar(&f.decisionLogs, "decision-log-config", "", "OPA configuration file with a decision_logs section (console and/or a remote service) for ext_authz decisions")
	fs.IntVar(&f.cacheSize, "decision-cache-size", policy.DefaultCacheSize, "decisions of the built-in policy to memoise (emptied when access rules, identities or the policy change; not used while user Rego is loaded; negative turns memoisation off)")
	fs.IntVar(&f.regexCacheSize, "regex-cache-size", policy.DefaultRegexCacheSize, "compiled regular expressions (HTTPRouteGroup methods, paths and headers, user Rego) kept between decisions; negative leaves them to OPA's process-wide cache of 100")
	fs.StringVar(&f.evaluator, "policy-evaluator", policy.EvaluatorPlan, "how the built-in policy is evaluated while no user Rego is loaded: plan (OPA's plans of its queries, evaluated by meshward) or opa (OPA's evaluator); user Rego always runs on OPA's evaluator")
	fs.StringSliceVar(&f.trustedProxies, "nginx-trusted-proxies", []string{"127.0.0.0/8", "::1/128"}, "CIDRs of the nginx instances whose client-address and principal headers are believed")
	return f
}

// servers are the running decision servers around one policy engine.
type servers struct {
	engine *policy.Engine
	log    logr.Logger
	// Addresses the servers listen on (resolved, e.g. for port 0).
	extAuthzAddr, nginxAddr net.Addr
}

// start creates the engine and starts the servers; they stop when ctx is
// done, and wg counts their goroutines. The listeners are bound before
// start returns.
func (f *serverFlags) start(ctx context.Context, wg *sync.WaitGroup, log logr.Logger, reg prometheus.Registerer) (*servers, error) {
	engine, err := policy.New(ctx, policy.Options{
		DecisionPath: f.decisionPath, DryRun: f.dryRun, Log: log.WithName("policy"),
		CacheSize: f.cacheSize, RegexCacheSize: f.regexCacheSize, Evaluator: f.evaluator, Registry: reg,
	})
	if err != nil {
		return nil, usageError{err}
	}
	s := &servers{engine: engine, log: log}
	var onDecision func(context.Context, policy.Decision, *authv3.CheckRequest, error)
	if f.decisionLogs != "" {
		raw, err := decisionlog.LoadConfig(f.decisionLogs)
		if err != nil {
			return nil, usageError{fmt.Errorf("--decision-log-config: %w", err)}
		}
		dl, err := decisionlog.New(ctx, raw, decisionlog.Options{Log: log.WithName("decision-logs")})
		if err != nil {
			if errors.Is(err, decisionlog.ErrConfig) {
				return nil, usageError{fmt.Errorf("--decision-log-config %s: %w", f.decisionLogs, err)}
			}
			return nil, err
		}
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dl.Stop(sctx)
		})
		onDecision = dl.ExtAuthz(decisionlog.ExtAuthzOptions{Path: engine.DecisionPath(), Log: log.WithName("decision-logs")})
		log.Info("decision logs enabled", "config", f.decisionLogs)
	}
	if f.extAuthzAddr != "0" {
		ln, err := net.Listen("tcp", f.extAuthzAddr)
		if err != nil {
			return nil, fmt.Errorf("ext_authz server: %w", err)
		}
		srv, err := extauthz.New(engine, extauthz.Options{
			DecisionHeader: f.decisionHeader, Log: log.WithName("ext_authz"), Registry: reg, OnDecision: onDecision,
		})
		if err != nil {
			return nil, err
		}
		g := grpc.NewServer()
		srv.Register(g)
		s.extAuthzAddr = ln.Addr()
		wg.Go(func() {
			if err := g.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				log.Error(err, "ext_authz server stopped")
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			g.GracefulStop()
		})
		log.Info("ext_authz server listening", "address", ln.Addr().String())
	}
	if f.nginxAddr != "0" {
		var trusted []netip.Prefix
		for _, c := range f.trustedProxies {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, usageError{fmt.Errorf("--nginx-trusted-proxies: %q is not a CIDR", c)}
			}
			trusted = append(trusted, p)
		}
		h, err := nginxauth.New(engine, nginxauth.Options{TrustedProxies: trusted, Log: log.WithName("nginx"), Registry: reg})
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", f.nginxAddr)
		if err != nil {
			return nil, fmt.Errorf("nginx auth endpoint: %w", err)
		}
		s.nginxAddr = ln.Addr()
		serveHTTP(ctx, wg, log, "nginx auth endpoint", &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln)
		log.Info("nginx auth endpoint listening", "address", ln.Addr().String())
	}
	return s, nil
}

// serveHTTP serves hs on ln until ctx is done, then shuts it down; wg
// counts its goroutines. With hs.TLSConfig set it serves TLS.
func serveHTTP(ctx context.Context, wg *sync.WaitGroup, log logr.Logger, name string, hs *http.Server, ln net.Listener) {
	// The server's own messages (TLS handshake failures, mostly) are
	// debug logs: any client can cause them.
	hs.ErrorLog = slog.NewLogLogger(logr.ToSlogHandler(log.WithValues("server", name)), slog.LevelDebug)
	wg.Go(func() {
		var err error
		if hs.TLSConfig != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, name+" stopped")
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
}

// update puts a new model in force.
func (s *servers) update(ctx context.Context, m *mesh.Model) {
	if err := s.engine.Update(ctx, m); err != nil {
		s.log.Error(err, "policy data not updated; the previous model stays in force")
	}
}

// setPolicies compiles user policies; on failure the previous ones stay in
// force and the problems are returned.
func (s *servers) setPolicies(ctx context.Context, modules map[string]string) []policy.Problem {
	err := s.engine.SetUserModules(ctx, modules)
	if err == nil {
		if len(modules) > 0 {
			s.log.Info("user policies loaded", "modules", len(modules))
		}
		return nil
	}
	var ce *policy.CompileError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			s.log.Error(nil, "user policy does not compile; the previous policies stay in force", "problem", p.String())
		}
		return ce.Problems
	}
	s.log.Error(err, "user policies not loaded; the previous policies stay in force")
	return []policy.Problem{{Message: err.Error()}}
}
