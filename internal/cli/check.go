package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	"github.com/spf13/cobra"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/snapshot"
)

type checkFlags struct {
	dir         string
	source      string
	destination string
	port        uint32
	method      string
	path        string
	headers     []string
	output      string
	mesh        *meshFlags
}

func newCheck(g *globals) *cobra.Command {
	f := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check --dir DIR --source NS/NAME --destination NS/NAME [--method M] [--path P] [--port N]",
		Short: "Explain whether one workload may call another",
		Long: `check loads a directory of manifests (and the .rego policies in it), builds the
mesh model and decides one request with the same policy engine as the
ext_authz server, then says why.

--source and --destination name a ServiceAccount as NS/NAME (or sa:NS/NAME),
or a Service as svc:NS/NAME, an OCI-style VirtualService as vs:NS/NAME or
IngressGateway as ig:NS/NAME: these stand for the identities of the pods
behind them, and the request is allowed only if every one of them allows it.
--destination ext:HOST names a service outside the mesh (a host name or an
IP address): the request is then checked against egress rules (AccessPolicies
with an externalService destination) by its Host (HTTP), its TLS server name
(a TCP check of a host name) or its address (a TCP check of an IP address).

With --method or --path the request is HTTP (method GET, path / by default).
Without either it is a TCP connection to --port, which is then required.

Exit status: 0 allowed, 1 denied, 2 bad usage or unreadable input.`,
		Example: `  meshward check --dir examples/bookstore --source bookbuyer/bookbuyer \
    --destination bookstore/bookstore --method GET --path /books-bought
  meshward check --dir examples/bookstore --source sa:bookstore/bookstore \
    --destination svc:bookwarehouse/bookwarehouse --port 14001 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd, g, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dir, "dir", "", "directory of manifests and .rego policies (read recursively)")
	fs.StringVar(&f.source, "source", "", "caller: NS/NAME or sa:NS/NAME (a ServiceAccount), svc:NS/NAME (a Service), vs:NS/NAME (a VirtualService), ig:NS/NAME (an IngressGateway)")
	fs.StringVar(&f.destination, "destination", "", "callee: NS/NAME or sa:NS/NAME (a ServiceAccount), svc:NS/NAME (a Service), vs:NS/NAME (a VirtualService), ig:NS/NAME (an IngressGateway), ext:HOST (a service outside the mesh)")
	fs.Uint32Var(&f.port, "port", 0, "destination port (required for a TCP check)")
	fs.StringVar(&f.method, "method", "", "HTTP method (default GET when --path is given)")
	fs.StringVar(&f.path, "path", "", "HTTP request path, with an optional query string (default /)")
	fs.StringArrayVar(&f.headers, "header", nil, "HTTP request header as NAME=VALUE (repeatable)")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	f.mesh = addMeshFlags(fs)
	return cmd
}

// checkRequest is a validated command line.
type checkRequest struct {
	source, destination subject
	request             policy.Request
}

func (f *checkFlags) parse() (*checkRequest, error) {
	switch {
	case f.dir == "":
		return nil, usageError{errors.New("--dir is required: the directory of manifests to check against")}
	case f.source == "":
		return nil, usageError{errors.New("--source is required: the caller, as NS/NAME, sa:NS/NAME or svc:NS/NAME")}
	case f.destination == "":
		return nil, usageError{errors.New("--destination is required: the callee, as NS/NAME, sa:NS/NAME or svc:NS/NAME")}
	case f.output != "text" && f.output != "json":
		return nil, usageError{fmt.Errorf("--output %q is invalid: want text or json", f.output)}
	case f.port > 65535:
		return nil, usageError{fmt.Errorf("--port %d is invalid: want 1-65535", f.port)}
	}
	if st, err := os.Stat(f.dir); err != nil || !st.IsDir() {
		return nil, usageError{fmt.Errorf("--dir %q is not a readable directory", f.dir)}
	}
	c := &checkRequest{}
	var err error
	if c.source, err = parseSubject("--source", f.source); err != nil {
		return nil, err
	}
	if c.destination, err = parseSubject("--destination", f.destination); err != nil {
		return nil, err
	}
	r := policy.Request{Port: f.port}
	if f.method == "" && f.path == "" {
		if len(f.headers) > 0 {
			return nil, usageError{errors.New("--header needs an HTTP request: give --method or --path")}
		}
		if f.port == 0 {
			return nil, usageError{errors.New("--port is required for a TCP check (no --method or --path given)")}
		}
		r.Protocol = policy.ProtocolTCP
	} else {
		r.Protocol = policy.ProtocolHTTP
		r.Method = cmpOr(f.method, "GET") // HTTP methods are case-sensitive, as in enforcement
		r.Path = cmpOr(f.path, "/")
		if !strings.HasPrefix(r.Path, "/") {
			return nil, usageError{fmt.Errorf("--path %q is invalid: a request path starts with /", f.path)}
		}
		if strings.ContainsAny(r.Method, " \t/") {
			return nil, usageError{fmt.Errorf("--method %q is invalid", f.method)}
		}
		for _, h := range f.headers {
			name, value, ok := strings.Cut(h, "=")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, usageError{fmt.Errorf("--header %q is invalid: want NAME=VALUE", h)}
			}
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers[strings.ToLower(strings.TrimSpace(name))] = value
		}
	}
	c.request = r
	return c, nil
}

// egressOf describes a request to an external service: HTTP requests by
// their Host, connections to an address by it, other connections by the
// TLS server name.
func egressOf(host string, r policy.Request) *policy.Egress {
	switch {
	case r.Protocol == policy.ProtocolHTTP:
		return &policy.Egress{Host: host}
	case isAddress(host):
		return &policy.Egress{Address: host}
	default:
		return &policy.Egress{SNI: host}
	}
}

func isAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func runCheck(cmd *cobra.Command, g *globals, f *checkFlags) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	opts, err := f.mesh.options()
	if err != nil {
		return err
	}
	c, err := f.parse()
	if err != nil {
		return err
	}
	res, err := files.Load(f.dir, snapshot.NewDecoder())
	if err != nil {
		return usageError{fmt.Errorf("manifests in %s not loaded:\n%w", f.dir, err)}
	}
	m := translate.Build(res.Snapshot, opts)

	ctx := cmd.Context()
	engine, err := policy.New(ctx, policy.Options{Log: log})
	if err != nil {
		return err
	}
	if err := engine.SetUserModules(ctx, policyModules(res)); err != nil {
		return usageError{fmt.Errorf("policies in %s: %w", f.dir, err)}
	}
	if err := engine.Update(ctx, m); err != nil {
		return err
	}

	out := decideCheck(cmd, engine, m, c)
	out.Findings = relevantFindings(res, m, c)
	if f.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printCheck(cmd.OutOrStdout(), out)
	}
	if !out.Allowed {
		return exitCode(ExitError)
	}
	return nil
}

// checkResult is what check prints (as JSON with -o json).
type checkResult struct {
	// ID is the id of the first decision; Decisions has each one.
	ID          string           `json:"id"`
	Allowed     bool             `json:"allowed"`
	Reason      string           `json:"reason"`
	Matched     []string         `json:"matched"`
	Source      string           `json:"source"`
	Destination string           `json:"destination"`
	Request     string           `json:"request"`
	Decisions   []pairDecision   `json:"decisions"`
	Findings    []locatedFinding `json:"findings"`
}

// pairDecision is the decision for one source and one destination identity.
type pairDecision struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	policy.Decision
}

// locatedFinding is a finding with the file and line of its object.
type locatedFinding struct {
	Position string `json:"position,omitempty"`
	mesh.Finding
}

// decideCheck decides every pair of identities the subjects stand for.
func decideCheck(cmd *cobra.Command, engine *policy.Engine, m *mesh.Model, c *checkRequest) checkResult {
	out := checkResult{
		Source:      c.source.String(),
		Destination: c.destination.String(),
		Request:     describeRequest(c.request),
		Matched:     []string{},
		Decisions:   []pairDecision{},
	}
	srcs, srcProblem := c.source.identities(m)
	dsts, dstProblem := c.destination.identities(m)
	if problem := cmpOr(srcProblem, dstProblem); problem != "" {
		out.Reason = problem
		return out
	}
	allowed := true
	var denied []string
	for _, s := range srcs {
		for _, d := range dsts {
			r := c.request
			r.Source, r.Destination = s.String(), d.String()
			if c.destination.kind == extKind {
				r.Destination = c.destination.String()
				r.Egress = egressOf(c.destination.host, r)
			}
			dec, err := engine.DecideRequest(cmd.Context(), r)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
			}
			out.Decisions = append(out.Decisions, pairDecision{Source: r.Source, Destination: r.Destination, Decision: dec})
			out.Matched = append(out.Matched, dec.Matched...)
			if !dec.Allowed {
				allowed = false
				denied = append(denied, r.Source+" -> "+r.Destination+": "+dec.Reason)
			}
		}
	}
	slices.Sort(out.Matched)
	out.Matched = slices.Compact(out.Matched)
	out.ID = out.Decisions[0].ID
	out.Allowed = allowed
	if !allowed {
		out.Matched = []string{}
	}
	if len(out.Decisions) == 1 && !c.source.isGroup() && !c.destination.isGroup() {
		out.Reason = out.Decisions[0].Reason
		return out
	}
	groups := groupDescription(c, srcs, dsts)
	if allowed {
		out.Reason = groups + "; every one allows the request (see decisions)"
	} else {
		out.Reason = groups + "; denied because not every one allows the request: " + strings.Join(denied, "; ")
	}
	return out
}

// groupDescription says which identities the Service subjects stand for.
func groupDescription(c *checkRequest, srcs, dsts []mesh.Identity) string {
	var parts []string
	for _, x := range []struct {
		s   subject
		ids []mesh.Identity
	}{{c.source, srcs}, {c.destination, dsts}} {
		if !x.s.isGroup() {
			continue
		}
		names := make([]string, len(x.ids))
		for i, id := range x.ids {
			names[i] = id.String()
		}
		parts = append(parts, fmt.Sprintf("%s is backed by %s", x.s.describe(), strings.Join(names, ", ")))
	}
	return strings.Join(parts, "; ")
}

func describeRequest(r policy.Request) string {
	if r.Protocol == policy.ProtocolTCP {
		return fmt.Sprintf("TCP to port %d", r.Port)
	}
	s := r.Method + " " + r.Path
	if r.Port != 0 {
		s += fmt.Sprintf(" (port %d)", r.Port)
	}
	return s
}

func printCheck(w io.Writer, r checkResult) {
	verdict := "denied"
	if r.Allowed {
		verdict = "allowed"
	}
	fmt.Fprintf(w, "%s: %s -> %s: %s\n", verdict, r.Source, r.Destination, r.Request)
	fmt.Fprintf(w, "reason: %s\n", r.Reason)
	for _, m := range r.Matched {
		fmt.Fprintf(w, "matched: %s\n", m)
	}
	if len(r.Decisions) > 1 {
		for _, d := range r.Decisions {
			v := "denied"
			if d.Allowed {
				v = "allowed"
			}
			fmt.Fprintf(w, "  %s -> %s: %s (decision %s)\n", d.Source, d.Destination, v, d.ID)
		}
	}
	if r.ID != "" {
		fmt.Fprintf(w, "decision: %s\n", r.ID)
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w, "findings about the objects involved:")
		for _, f := range r.Findings {
			if f.Position != "" {
				fmt.Fprintf(w, "  %s: %s\n", f.Position, f.Finding)
			} else {
				fmt.Fprintf(w, "  %s\n", f.Finding)
			}
		}
	}
}

// relevantFindings returns the findings about the objects a check involves:
// the TrafficTargets naming the destination identities (also those ignored
// for living in the wrong namespace) or the sources, the routes their rules
// name, and the Services the subjects name.
func relevantFindings(res *files.Result, m *mesh.Model, c *checkRequest) []locatedFinding {
	dsts, _ := c.destination.identities(m)
	objects := map[mesh.ObjectRef]bool{}
	for _, s := range []subject{c.source, c.destination} {
		if s.isGroup() {
			objects[mesh.ObjectRef{Kind: "Service", Namespace: s.ref.Namespace, Name: s.ref.Name}] = true
		}
	}
	for i := range res.Snapshot.TrafficTargets {
		tt := &res.Snapshot.TrafficTargets[i]
		if !targetNames(tt, dsts) {
			continue
		}
		objects[mesh.ObjectRef{Kind: "TrafficTarget", Namespace: tt.Namespace, Name: tt.Name}] = true
		for _, r := range tt.Spec.Rules {
			objects[mesh.ObjectRef{Kind: r.Kind, Namespace: tt.Namespace, Name: r.Name}] = true
		}
	}
	out := []locatedFinding{}
	for _, f := range m.Findings {
		if !objects[f.Object] {
			continue
		}
		lf := locatedFinding{Finding: f}
		if pos, ok := res.Positions[f.Object]; ok {
			lf.Position = pos.String()
		}
		out = append(out, lf)
	}
	return out
}

func targetNames(tt *accessv1alpha3.TrafficTarget, ids []mesh.Identity) bool {
	d := tt.Spec.Destination
	ns := cmpOr(d.Namespace, tt.Namespace)
	return slices.Contains(ids, mesh.Identity{Namespace: ns, Name: d.Name})
}

// subject is a --source or --destination: what kind of object, and its
// namespace and name.
type subject struct {
	kind *subjectKind
	ref  mesh.Identity
	// host is the host name or address of an external service (ext:).
	host string
}

// parseExternal reads the HOST of ext:HOST: a host name or an IP address,
// without a port (--port gives it).
func parseExternal(flag, host string) (string, error) {
	if flag != "--destination" {
		return "", usageError{fmt.Errorf("%s ext:%s is invalid: an external service can only be a --destination", flag, host)}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" || len(h) > 253 || strings.ContainsAny(h, ":/ \t") {
		return "", usageError{fmt.Errorf("%s ext:%s is invalid: want ext:HOST, a host name or an IP address without a port (give the port with --port)", flag, host)}
	}
	return h, nil
}

// subjectKind is a prefix of --source and --destination and how it turns
// into identities.
type subjectKind struct {
	prefix string
	// object is the kind of object the prefix names.
	object string
	// group is true when the object stands for several identities: the
	// request is allowed only if every one of them allows it.
	group bool
	// resolve returns the identities of an object, or why there are none.
	resolve func(m *mesh.Model, ref mesh.Identity) ([]mesh.Identity, string)
}

// subjectKinds are the prefixes --source and --destination accept; the
// first is the default.
var subjectKinds = []*subjectKind{
	{prefix: "sa", object: "ServiceAccount", resolve: resolveServiceAccount},
	{prefix: "svc", object: "Service", group: true, resolve: resolveService},
	{prefix: "vs", object: "VirtualService", group: true, resolve: resolveVirtualService},
	{prefix: "ig", object: "IngressGateway", group: true, resolve: resolveIngressGateway},
	extKind,
}

// extKind names a service outside the mesh, ext:HOST (a host name or an
// IP address), as a --destination: the request is checked against egress
// rules (OCI AccessPolicies with an externalService destination).
var extKind = &subjectKind{prefix: "ext", object: "external service", resolve: resolveExternal}

// resolveExternal stands for no identity: an external service has none.
func resolveExternal(*mesh.Model, mesh.Identity) ([]mesh.Identity, string) {
	return []mesh.Identity{{}}, ""
}

func parseSubject(flag, s string) (subject, error) {
	kind, ref := subjectKinds[0], s
	if prefix, rest, ok := strings.Cut(s, ":"); ok {
		kind = nil
		for _, k := range subjectKinds {
			if k.prefix == prefix {
				kind = k
			}
		}
		if kind == nil {
			prefixes := make([]string, len(subjectKinds))
			for i, k := range subjectKinds {
				prefixes[i] = k.prefix + ": (" + k.object + ")"
			}
			return subject{}, usageError{fmt.Errorf("%s %q: unknown prefix %q: want NS/NAME or one of %s", flag, s, prefix+":", strings.Join(prefixes, ", "))}
		}
		ref = rest
	}
	if kind == extKind {
		host, err := parseExternal(flag, ref)
		if err != nil {
			return subject{}, err
		}
		return subject{kind: kind, host: host}, nil
	}
	id, ok := policy.ParseIdentity(ref)
	if !ok {
		return subject{}, usageError{fmt.Errorf("%s %q is invalid: want NS/NAME, e.g. bookstore/bookstore", flag, s)}
	}
	return subject{kind: kind, ref: id}, nil
}

// String returns the subject as given: NS/NAME for a ServiceAccount,
// prefix:NS/NAME for other kinds.
func (s subject) String() string {
	if s.kind == extKind {
		return "ext:" + s.host
	}
	if s.kind == subjectKinds[0] {
		return s.ref.String()
	}
	return s.kind.prefix + ":" + s.ref.String()
}

func (s subject) describe() string {
	if s.kind == extKind {
		return s.kind.object + " " + s.host
	}
	return s.kind.object + " " + s.ref.String()
}

func (s subject) isGroup() bool { return s.kind.group }

func (s subject) identities(m *mesh.Model) ([]mesh.Identity, string) {
	return s.kind.resolve(m, s.ref)
}

// resolveServiceAccount is the identity itself, known to the mesh or not:
// the decision says when it is not.
func resolveServiceAccount(_ *mesh.Model, ref mesh.Identity) ([]mesh.Identity, string) {
	return []mesh.Identity{ref}, ""
}

// resolveVirtualService returns the identities of an OCI-style
// VirtualService: those of the pods its VirtualDeployments bind.
func resolveVirtualService(m *mesh.Model, ref mesh.Identity) ([]mesh.Identity, string) {
	for i := range m.VirtualServices {
		vs := &m.VirtualServices[i]
		if vs.Origin.Namespace != ref.Namespace || vs.Origin.Name != ref.Name {
			continue
		}
		var ids []mesh.Identity
		for _, d := range vs.Deployments {
			ids = append(ids, d.Identities...)
		}
		slices.SortFunc(ids, mesh.Identity.Compare)
		if ids = slices.Compact(ids); len(ids) > 0 {
			return ids, ""
		}
		return nil, fmt.Sprintf("VirtualService %s has no bound pod with a known identity, so no identity can be checked", ref)
	}
	return nil, fmt.Sprintf("VirtualService %s is not in the mesh: no such VirtualService in a member namespace", ref)
}

// resolveIngressGateway returns the identities of an OCI-style
// IngressGateway's pods.
func resolveIngressGateway(m *mesh.Model, ref mesh.Identity) ([]mesh.Identity, string) {
	for i := range m.Gateways {
		g := &m.Gateways[i]
		if g.Origin.Namespace != ref.Namespace || g.Origin.Name != ref.Name {
			continue
		}
		if len(g.Identities) > 0 {
			return g.Identities, ""
		}
		return nil, fmt.Sprintf("IngressGateway %s has no pod with a known identity, so no identity can be checked", ref)
	}
	return nil, fmt.Sprintf("IngressGateway %s is not in the mesh: no such IngressGateway in a member namespace", ref)
}

// resolveService returns the identities of a Service's endpoints.
func resolveService(m *mesh.Model, ref mesh.Identity) ([]mesh.Identity, string) {
	key := mesh.ServiceKey(ref)
	i, found := slices.BinarySearchFunc(m.Services, key, func(s mesh.Service, k mesh.ServiceKey) int {
		return s.Compare(k)
	})
	if !found {
		return nil, fmt.Sprintf("Service %s is not in the mesh: no such Service in a member namespace", key)
	}
	if ids := m.Services[i].Identities; len(ids) > 0 {
		return ids, ""
	}
	return nil, fmt.Sprintf("Service %s has no endpoint with a known identity, so no identity can be checked", key)
}
