package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// providerCertName is the certificate_name passed to the gRPC certificate
// provider instance, for the workload certificate and for the roots (the
// file_watcher plugin ignores it).
const providerCertName = "default"

// noPrincipal is the SAN a client requires of a server whose endpoints have
// no known identity: no certificate carries an empty SAN, so the handshake
// fails instead of trusting any workload of the mesh.
const noPrincipal = ""

// transportSocket wraps a TLS context.
func (b *builder) transportSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: nameTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: b.any(ctx)}}
}

// upstreamTLS is the client side of mTLS to a service: the workload's own
// certificate, the mesh roots, and a check that the server's certificate
// carries the principal of one of the service's identities. It returns nil
// with Options.Plaintext.
func (b *builder) upstreamTLS(svc *mesh.Service) *corev3.TransportSocket {
	if b.o.Plaintext {
		return nil
	}
	principals := make([]string, 0, len(svc.Identities))
	for _, id := range svc.Identities {
		principals = append(principals, id.Principal(b.m.Options.PrincipalFormat, b.m.Options.TrustDomain))
	}
	if len(principals) == 0 {
		principals = append(principals, noPrincipal)
	}
	common := &tlsv3.CommonTlsContext{}
	switch b.o.Flavor {
	case FlavorGRPC:
		// gRPC-Go reads only the untyped match_subject_alt_names (and
		// compares each matcher with every DNS, URI, email and IP SAN);
		// it ignores match_typed_subject_alt_names, which would leave the
		// server unchecked.
		vc := &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: b.providerInstance()}
		for _, p := range principals {
			vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, exactMatcher(p)) //nolint:staticcheck // deprecated in Envoy, the only field gRPC-Go reads
		}
		common.TlsCertificateProviderInstance = b.providerInstance()
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	default:
		sanType := tlsv3.SubjectAltNameMatcher_URI
		if b.m.Options.PrincipalFormat == mesh.PrincipalDNS {
			sanType = tlsv3.SubjectAltNameMatcher_DNS
		}
		vc := &tlsv3.CertificateValidationContext{}
		for _, p := range principals {
			vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
				SanType: sanType,
				Matcher: exactMatcher(p),
			})
		}
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{b.sds(b.o.SDSCertName)}
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         vc,
				ValidationContextSdsSecretConfig: b.sds(b.o.SDSRootName),
			},
		}
	}
	return b.transportSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: common})
}

// downstreamTLS is the server side of mTLS: the workload's certificate,
// and a client certificate required and checked against the mesh roots.
// Which client may do what is the RBAC filter's and ext_authz's job, so
// there is no SAN check (gRPC-Go rejects one on servers). It returns nil
// with Options.Plaintext.
func (b *builder) downstreamTLS() *corev3.TransportSocket {
	if b.o.Plaintext {
		return nil
	}
	common := &tlsv3.CommonTlsContext{}
	switch b.o.Flavor {
	case FlavorGRPC:
		common.TlsCertificateProviderInstance = b.providerInstance()
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: b.providerInstance()},
		}
	default:
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{b.sds(b.o.SDSCertName)}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: b.sds(b.o.SDSRootName),
		}
	}
	return b.transportSocket(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         common,
		RequireClientCertificate: wrapperspb.Bool(true),
	})
}

func (b *builder) providerInstance() *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{InstanceName: b.o.CertProviderInstance, CertificateName: providerCertName}
}

func (b *builder) sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}
