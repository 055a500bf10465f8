package opaplugin

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/plugins"
	"google.golang.org/grpc"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/decisionlog"
	"github.com/meshward/meshward/policy/extauthz"
)

// Name is the plugin's name in the plugins section of an OPA
// configuration.
const Name = "meshward_ext_authz"

// MeshSource keeps a mesh model up to date from a directory of manifests:
// it loads dir, calls update with the model built with opts and the .rego
// files found next to the manifests (path -> source) every time they
// change, and returns when ctx is done. A load that fails calls nothing
// (the last model stays in force); the source logs why. It returns an error
// only when it cannot read dir at all.
type MeshSource func(ctx context.Context, dir string, opts mesh.Options, update func(m *mesh.Model, modules map[string]string)) error

// FactoryOptions configure a Factory.
type FactoryOptions struct {
	// Mesh reads the mesh directory; required.
	Mesh MeshSource
	// Name is the name the factory is registered under (default Name).
	Name string
	// Log receives the plugin's logs. A Logger without a sink (the zero
	// Logger, logr.Discard()) logs through the OPA manager's logger, in
	// OPA's format, V(1) and above at OPA's debug level.
	Log logr.Logger
}

// Factory makes the plugin; register it with an OPA runtime
// (runtime.RegisterPlugin) under its name, or pass it to discovery.
type Factory struct {
	opts FactoryOptions
}

var _ plugins.Factory = (*Factory)(nil)

// NewFactory returns the plugin's factory.
func NewFactory(opts FactoryOptions) *Factory {
	if opts.Name == "" {
		opts.Name = Name
	}
	return &Factory{opts: opts}
}

// Validate reads the plugin's configuration: a *Config with the defaults
// filled in, or an error wrapping ErrConfig that names the option.
func (f *Factory) Validate(_ *plugins.Manager, config []byte) (any, error) {
	if f.opts.Mesh == nil {
		return nil, fmt.Errorf("%w: plugins.%s: this program registered the plugin without a mesh source, so it cannot read mesh-dir", ErrConfig, f.opts.Name)
	}
	return parseConfig(f.opts.Name, config)
}

// New returns the plugin for a configuration Validate returned. It
// subscribes to the manager's compiler changes at once, so no policy
// change is missed before Start.
func (f *Factory) New(m *plugins.Manager, config any) plugins.Plugin {
	log := f.opts.Log
	if log.GetSink() == nil {
		log = fromOPA(m.Logger())
	}
	p := &Plugin{
		name:    f.opts.Name,
		manager: m,
		source:  f.opts.Mesh,
		log:     log.WithValues("plugin", f.opts.Name),
		dlog:    decisionlog.FromManager(m),
	}
	c := *config.(*Config)
	p.cfg = &c
	m.RegisterCompilerTrigger(p.compilerChanged)
	m.UpdatePluginStatus(p.name, &plugins.Status{State: plugins.StateNotReady})
	return p
}

// Lookup returns the plugin registered with m under Name, or nil.
func Lookup(m *plugins.Manager) *Plugin {
	p, _ := m.Plugin(Name).(*Plugin)
	return p
}

// Plugin serves meshward's ext_authz decisions inside an OPA runtime.
type Plugin struct {
	name    string
	manager *plugins.Manager
	source  MeshSource
	log     logr.Logger
	dlog    *decisionlog.Logger

	// authz is the server deciding checks; replaced when the decision
	// path, dry-run, the decision header or the cache size change.
	authz atomic.Pointer[extauthz.Server]

	// statusMu keeps status reports in order without holding mu.
	statusMu sync.Mutex
	// lifecycle serialises Start, Stop and Reconfigure, which release mu
	// while they wait for the server or the mesh source to stop.
	lifecycle sync.Mutex

	// mu guards what follows. It is never held while opening an OPA store
	// transaction: OPA calls compilerChanged inside its commits.
	mu      sync.Mutex
	cfg     *Config
	running bool
	engine  *policy.Engine
	model   *mesh.Model
	// meshModules and opaModules are the user Rego of the mesh directory
	// and of OPA's store; applied is what the engine has in force.
	meshModules, opaModules, applied map[string]string
	// opaSeq counts compiler changes.
	opaSeq                       int
	policyErr, meshErr, serveErr error

	srv    *grpc.Server
	lis    net.Listener
	served chan struct{}

	// meshGen counts mesh sources: updates of an older one are dropped.
	meshGen  int
	meshStop context.CancelFunc
	meshDone chan struct{}
}

// Config returns the configuration in force.
func (p *Plugin) Config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.cfg
}

// Addr returns the address the gRPC server listens on, nil when stopped.
func (p *Plugin) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis == nil {
		return nil
	}
	return p.lis.Addr()
}

// Start builds the engine with the policies OPA has loaded, starts the
// gRPC server and the mesh source. The plugin is NOT_READY until the first
// mesh model is loaded; meanwhile every check is denied (the mesh is
// empty). It fails only when the server cannot listen.
func (p *Plugin) Start(ctx context.Context) error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.mu.Lock()
	seq := p.opaSeq
	p.mu.Unlock()
	opaModules, readErr := p.readPolicies(ctx, nil)
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return nil
	}
	if readErr == nil && seq == p.opaSeq {
		// No compiler change came in meanwhile.
		p.opaModules = opaModules
	}
	err := p.buildEngine(ctx)
	if err == nil && readErr != nil {
		p.policyErr = readErr
	}
	if err == nil {
		err = p.serve()
	}
	if err != nil {
		p.serveErr = err
		p.mu.Unlock()
		p.report()
		return fmt.Errorf("plugin %s: %w", p.name, err)
	}
	p.running, p.serveErr = true, nil
	p.startMesh()
	p.mu.Unlock()
	p.report()
	return nil
}

// Stop stops the mesh source and the gRPC server, letting checks in
// progress finish until ctx is done.
func (p *Plugin) Stop(ctx context.Context) {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return
	}
	p.running = false
	stopMesh := p.detachMesh()
	srv, served := p.srv, p.served
	p.srv, p.lis, p.served = nil, nil, nil
	p.mu.Unlock()

	stopMesh()
	stopServer(ctx, srv, served)
	p.log.Info("ext_authz server stopped")
	p.report()
}

// Reconfigure applies a configuration Validate returned: a new address or
// message size restarts the gRPC server, a new decision path, dry-run,
// decision header or decision cache size a new engine, and a new mesh directory or mesh option
// a new mesh source (the current model stays in force until the new one
// is loaded).
func (p *Plugin) Reconfigure(ctx context.Context, config any) {
	c := *config.(*Config)
	cfg := &c
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.mu.Lock()
	old := p.cfg
	p.cfg = cfg
	if !p.running {
		p.mu.Unlock()
		return
	}
	stopMesh := func() {}
	if meshChanged(old, cfg) {
		stopMesh = p.detachMesh()
		p.startMesh()
	}
	if engineChanged(old, cfg) {
		if err := p.buildEngine(ctx); err != nil {
			p.log.Error(err, "engine not rebuilt; the previous one stays in force")
		}
	}
	restart := listenerChanged(old, cfg)
	srv, served := p.srv, p.served
	if restart {
		p.srv, p.lis, p.served = nil, nil, nil
	}
	p.mu.Unlock()

	// Checks in progress may wait for OPA's store (decision logs), whose
	// commits wait for mu in compilerChanged: stop without holding mu.
	stopMesh()
	if restart {
		stopServer(ctx, srv, served)
		p.mu.Lock()
		if err := p.serve(); err != nil {
			p.serveErr = err
			p.log.Error(err, "ext_authz server not restarted")
		} else {
			p.serveErr = nil
		}
		p.mu.Unlock()
	}
	p.log.Info("reconfigured")
	p.report()
}

// buildEngine makes a new engine and server from the configuration, with
// the current model and user Rego. Called with mu held.
func (p *Plugin) buildEngine(ctx context.Context) error {
	e, err := policy.New(ctx, policy.Options{
		DecisionPath: p.cfg.Path, DryRun: p.cfg.DryRun, Log: p.log.WithName("policy"),
		CacheSize: p.cfg.DecisionCacheSize, RegexCacheSize: p.cfg.RegexCacheSize, Evaluator: p.cfg.Evaluator,
		Registry: p.manager.PrometheusRegister(),
	})
	if err != nil {
		return err
	}
	if p.model != nil {
		if err := e.Update(ctx, p.model); err != nil {
			return err
		}
	}
	srv, err := extauthz.New(e, extauthz.Options{
		DecisionHeader: p.cfg.DecisionHeader,
		Log:            p.log.WithName("extauthz"),
		Registry:       p.manager.PrometheusRegister(),
		OnDecision:     p.dlog.ExtAuthz(decisionlog.ExtAuthzOptions{Path: e.DecisionPath(), Log: p.log}),
	})
	if err != nil {
		return err
	}
	prev := p.applied
	p.engine = e
	if !p.applyModules(ctx) && prev != nil {
		// Keep the user Rego that was in force.
		if err := e.SetUserModules(ctx, prev); err == nil {
			p.applied = prev
		}
	}
	p.authz.Store(srv)
	return nil
}

// serve listens and serves gRPC. Called with mu held.
func (p *Plugin) serve() error {
	lis, err := listen(p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("ext_authz server: %w", err)
	}
	var opts []grpc.ServerOption
	if n := p.cfg.GRPCMaxRecvMsgSize; n > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(n))
	}
	if n := p.cfg.GRPCMaxSendMsgSize; n > 0 {
		opts = append(opts, grpc.MaxSendMsgSize(n))
	}
	srv := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(srv, &service{p: p})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			p.serveFailed(srv, err)
		}
	}()
	p.srv, p.lis, p.served = srv, lis, done
	p.log.Info("ext_authz server listening", "addr", lis.Addr().String(), "path", p.cfg.Path, "dryRun", p.cfg.DryRun, "meshDir", p.cfg.MeshDir)
	return nil
}

func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

func (p *Plugin) serveFailed(srv *grpc.Server, err error) {
	p.mu.Lock()
	current := p.srv == srv
	if current {
		p.serveErr = err
	}
	p.mu.Unlock()
	if current {
		p.log.Error(err, "ext_authz server failed")
		p.report()
	}
}

// stopServer stops srv gracefully, or at once when ctx is done first.
func stopServer(ctx context.Context, srv *grpc.Server, served chan struct{}) {
	if srv == nil {
		return
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		srv.Stop()
		<-stopped
	}
	<-served
}

// service is the gRPC service: it hands each check to the server in force.
type service struct {
	authv3.UnimplementedAuthorizationServer
	p *Plugin
}

func (s *service) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.p.authz.Load().Check(ctx, req)
}

// startMesh starts a mesh source for the configuration. Called with mu
// held.
func (p *Plugin) startMesh() {
	p.meshGen++
	gen := p.meshGen
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	dir, opts := p.cfg.MeshDir, p.cfg.meshOptions()
	go func() {
		defer close(done)
		err := p.source(ctx, dir, opts, func(m *mesh.Model, modules map[string]string) {
			p.meshUpdated(gen, m, modules)
		})
		if err != nil && ctx.Err() == nil {
			p.meshFailed(gen, err)
		}
	}()
	p.meshStop, p.meshDone = cancel, done
}

// detachMesh makes the current mesh source's updates stale and returns
// the function that stops it, to call without mu. Called with mu held.
func (p *Plugin) detachMesh() func() {
	p.meshGen++
	cancel, done := p.meshStop, p.meshDone
	p.meshStop, p.meshDone = nil, nil
	return func() {
		if cancel != nil {
			cancel()
			<-done
		}
	}
}

func (p *Plugin) meshUpdated(gen int, m *mesh.Model, modules map[string]string) {
	ctx := context.Background()
	p.mu.Lock()
	if gen != p.meshGen || !p.running {
		p.mu.Unlock()
		return
	}
	p.model, p.meshErr = m, nil
	if err := p.engine.Update(ctx, m); err != nil {
		p.meshErr = err
		p.log.Error(err, "mesh model not applied")
	}
	if !equalModules(modules, p.meshModules) {
		p.meshModules = cloneModules(modules)
		p.applyModules(ctx)
	}
	p.mu.Unlock()
	p.report()
}

func (p *Plugin) meshFailed(gen int, err error) {
	p.mu.Lock()
	current := gen == p.meshGen
	if current {
		p.meshErr = err
	}
	p.mu.Unlock()
	if current {
		p.log.Error(err, "mesh directory not read")
		p.report()
	}
}

// report sends the plugin's state to the manager.
func (p *Plugin) report() {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	p.mu.Lock()
	s := p.status()
	p.mu.Unlock()
	p.manager.UpdatePluginStatus(p.name, s)
}

// status says how the plugin is. Called with mu held.
func (p *Plugin) status() *plugins.Status {
	switch {
	case p.serveErr != nil:
		return &plugins.Status{State: plugins.StateErr, Message: p.serveErr.Error()}
	case !p.running:
		return &plugins.Status{State: plugins.StateNotReady}
	case p.model == nil && p.meshErr != nil:
		return &plugins.Status{State: plugins.StateErr, Message: fmt.Sprintf("no mesh model from %s: %v", p.cfg.MeshDir, p.meshErr)}
	case p.model == nil:
		return &plugins.Status{State: plugins.StateNotReady, Message: "waiting for the mesh model from " + p.cfg.MeshDir}
	case p.policyErr != nil:
		return &plugins.Status{State: plugins.StateWarn, Message: p.policyErr.Error()}
	case p.meshErr != nil:
		return &plugins.Status{State: plugins.StateWarn, Message: fmt.Sprintf("the last mesh model from %s stays in force: %v", p.cfg.MeshDir, p.meshErr)}
	}
	return &plugins.Status{State: plugins.StateOK}
}
