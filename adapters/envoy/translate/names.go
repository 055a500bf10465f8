package translate

import (
	"net"
	"strconv"
	"strings"

	"github.com/meshward/meshward/mesh"
)

// The names below are a stable interface: bootstraps, clients and tests
// refer to them. docs/xds.md lists them.

// ServerListenerNameTemplate is the value for the gRPC bootstrap's
// server_listener_resource_name_template: an xDS-enabled gRPC server asks
// for the listener named by replacing %s with the host:port it listens on.
const ServerListenerNameTemplate = "grpc/server?xds.resource.listening_address=%s"

// Envoy flavor listener names, and the ports traffic is redirected to.
const (
	// EnvoyOutboundListener receives the pod's outgoing connections.
	EnvoyOutboundListener = "outbound"
	// EnvoyOutboundPort is where EnvoyOutboundListener listens.
	EnvoyOutboundPort = mesh.SidecarOutboundPort
	// EnvoyInboundListener receives the connections made to the pod.
	EnvoyInboundListener = "inbound"
	// EnvoyInboundPort is where EnvoyInboundListener listens.
	EnvoyInboundPort = mesh.SidecarInboundPort
)

// ServiceHost returns the service's DNS name, <svc>.<ns>.svc.<clusterDomain>.
func ServiceHost(svc mesh.ServiceKey, clusterDomain string) string {
	return svc.Name + "." + svc.Namespace + ".svc." + clusterDomain
}

// ServiceAuthority returns <svc>.<ns>.svc.<clusterDomain>:<port>: what
// proxyless gRPC clients dial (xds:///<authority>), and the name of the
// gRPC flavor's outbound Listener and RouteConfiguration and of every
// flavor's virtual host for that service port.
func ServiceAuthority(svc mesh.ServiceKey, port int32, clusterDomain string) string {
	return ServiceHost(svc, clusterDomain) + ":" + strconv.Itoa(int(port))
}

// ClusterName returns outbound|<port>||<svc>.<ns>.svc.<clusterDomain>, the
// name of a service port's Cluster and of its ClusterLoadAssignment.
func ClusterName(svc mesh.ServiceKey, port int32, clusterDomain string) string {
	return "outbound|" + strconv.Itoa(int(port)) + "||" + ServiceHost(svc, clusterDomain)
}

// ServerListenerName returns the name of the inbound Listener an
// xDS-enabled gRPC server listening on address:port asks for
// (ServerListenerNameTemplate filled in; IPv6 addresses in brackets).
func ServerListenerName(address string, port int32) string {
	return strings.Replace(ServerListenerNameTemplate, "%s", net.JoinHostPort(address, strconv.Itoa(int(port))), 1)
}

// EnvoyOutboundRouteName returns outbound|<port>, the Envoy flavor's
// RouteConfiguration for the services having that port number.
func EnvoyOutboundRouteName(port int32) string {
	return "outbound|" + strconv.Itoa(int(port))
}

// InboundName returns inbound|<port>: the inbound filter chain for a port
// the identity serves on and, in the Envoy flavor, the Cluster that
// delivers it to the application on 127.0.0.1:<port>.
func InboundName(port int32) string {
	return "inbound|" + strconv.Itoa(int(port))
}

// serviceDomains returns the virtual host domains of a service port: the
// fully qualified name, <svc>.<ns>.svc and <svc>.<ns>, each with and
// without the port. The bare <svc> forms are left out: whether they mean
// this service depends on the caller's namespace, and in the Envoy flavor
// two namespaces' services on one port would claim the same domain.
func serviceDomains(svc mesh.ServiceKey, port int32, clusterDomain string) []string {
	p := ":" + strconv.Itoa(int(port))
	fqdn := ServiceHost(svc, clusterDomain)
	short := svc.Name + "." + svc.Namespace + ".svc"
	ns := svc.Name + "." + svc.Namespace
	return []string{fqdn + p, fqdn, short + p, short, ns + p, ns}
}
