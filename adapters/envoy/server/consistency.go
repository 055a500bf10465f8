package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrInconsistent is wrapped by the errors of checkReferences.
var ErrInconsistent = errors.New("inconsistent xDS resources")

// reference is a resource another one names: its type URL and name.
type reference struct {
	typeURL, name string
	// via says where the reference is, for error messages.
	via string
}

// references returns what an xDS resource refers to: the route
// configurations a listener's connection managers read over RDS, the
// clusters its inline routes, TCP proxies and ext_authz filters use, the
// clusters a route configuration routes to, and the endpoint assignment
// of an EDS cluster. A reference is a pure function of the resource, so
// it is computed once per distinct resource. An unreadable filter
// configuration is an error.
func references(msg proto.Message) ([]reference, error) {
	r := &refs{}
	switch m := msg.(type) {
	case *listenerv3.Listener:
		where := "Listener " + m.GetName()
		if api := m.GetApiListener().GetApiListener(); api != nil {
			r.typedConfig(where, api)
		}
		chains := m.GetFilterChains()
		if dc := m.GetDefaultFilterChain(); dc != nil {
			chains = append(chains[:len(chains):len(chains)], dc)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				if tc := f.GetTypedConfig(); tc != nil {
					r.typedConfig(where, tc)
				}
			}
		}
	case *routev3.RouteConfiguration:
		r.routeConfig("RouteConfiguration "+m.GetName(), m)
	case *clusterv3.Cluster:
		if m.GetType() == clusterv3.Cluster_EDS {
			name := m.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = m.GetName()
			}
			r.add(resourcev3.EndpointType, name, "Cluster "+m.GetName())
		}
	}
	return r.out, errors.Join(r.errs...)
}

// nameSet holds resource names by type URL.
type nameSet map[string]map[string]bool

// namesOf returns the names of the resources of sets.
func namesOf(sets map[string][]*resource) nameSet {
	out := make(nameSet, len(sets))
	for t, rs := range sets {
		out[t] = make(map[string]bool, len(rs))
		for _, r := range rs {
			out[t][r.name] = true
		}
	}
	return out
}

// resolved reports whether one of the name sets holds ref.
func (ref reference) resolved(in ...nameSet) bool {
	for _, ns := range in {
		if ns[ref.typeURL][ref.name] {
			return true
		}
	}
	return false
}

// dangling returns the references of the resources of sets (of the
// per-identity types) that none of the name sets resolves.
func dangling(sets map[string][]*resource, in ...nameSet) []reference {
	var out []reference
	for _, t := range perIdentityTypes {
		for _, r := range sets[t] {
			for _, ref := range r.refs {
				if !ref.resolved(in...) {
					out = append(out, ref)
				}
			}
		}
	}
	return out
}

// inconsistent reports dangling references, each as an error wrapping
// ErrInconsistent; nil when there are none.
func inconsistent(refs []reference) error {
	errs := make([]error, 0, len(refs))
	for _, ref := range refs {
		kind := ref.typeURL[strings.LastIndexByte(ref.typeURL, '.')+1:]
		errs = append(errs, fmt.Errorf("%w: %s: no %s %q", ErrInconsistent, ref.via, kind, ref.name))
	}
	return errors.Join(errs...)
}

// checkReferences checks that an identity's resources (sets, by type URL)
// refer only to resources among them, or, for endpoint assignments, in
// eds. It reports every dangling reference.
func checkReferences(sets map[string][]*resource, eds map[string]bool) error {
	return inconsistent(dangling(sets, namesOf(sets), nameSet{resourcev3.EndpointType: eds}))
}

// refs collects references.
type refs struct {
	out  []reference
	errs []error
}

func (r *refs) add(typeURL, name, via string) {
	ref := reference{typeURL: typeURL, name: name, via: via}
	if name != "" && !slices.Contains(r.out, ref) {
		r.out = append(r.out, ref)
	}
}

// typedConfig reads a network filter (or API listener) configuration:
// connection managers and TCP proxies; other filters name nothing.
func (r *refs) typedConfig(where string, a *anypb.Any) {
	switch {
	case a.MessageIs(&hcmv3.HttpConnectionManager{}):
		m := &hcmv3.HttpConnectionManager{}
		if err := a.UnmarshalTo(m); err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s: unreadable connection manager: %w", where, err))
			return
		}
		if rds := m.GetRds(); rds != nil {
			r.add(resourcev3.RouteType, rds.GetRouteConfigName(), where)
		}
		if rc := m.GetRouteConfig(); rc != nil {
			r.routeConfig(where, rc)
		}
		for _, hf := range m.GetHttpFilters() {
			r.httpFilter(where, hf)
		}
	case a.MessageIs(&tcpproxyv3.TcpProxy{}):
		m := &tcpproxyv3.TcpProxy{}
		if err := a.UnmarshalTo(m); err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s: unreadable TCP proxy: %w", where, err))
			return
		}
		r.add(resourcev3.ClusterType, m.GetCluster(), where)
		for _, wc := range m.GetWeightedClusters().GetClusters() {
			r.add(resourcev3.ClusterType, wc.GetName(), where)
		}
	}
}

// httpFilter reads the clusters an HTTP filter calls.
func (r *refs) httpFilter(where string, hf *hcmv3.HttpFilter) {
	tc := hf.GetTypedConfig()
	if tc == nil || !tc.MessageIs(&extauthzv3.ExtAuthz{}) {
		return
	}
	ea := &extauthzv3.ExtAuthz{}
	if err := tc.UnmarshalTo(ea); err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: unreadable ext_authz filter: %w", where, err))
		return
	}
	r.add(resourcev3.ClusterType, ea.GetGrpcService().GetEnvoyGrpc().GetClusterName(), where+" ext_authz")
}

// routeConfig reads the clusters a route configuration routes to.
func (r *refs) routeConfig(where string, rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			ra := rt.GetRoute()
			if ra == nil {
				continue
			}
			r.add(resourcev3.ClusterType, ra.GetCluster(), where)
			for _, wc := range ra.GetWeightedClusters().GetClusters() {
				r.add(resourcev3.ClusterType, wc.GetName(), where)
			}
		}
	}
}
