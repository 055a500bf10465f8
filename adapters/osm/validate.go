package osm

import (
	"net/netip"
	"slices"
	"strings"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	"github.com/meshward/meshward/mesh"
)

// parsed is an IngressBackend checked on its own: what is left of it, with
// the indexes of its fields in the object for findings.
type parsed struct {
	ref     mesh.ObjectRef
	created int64
	// backends and sources are the usable ones, in the order given.
	backends []backend
	sources  []source
	// namedAddress and namedPrincipal record whether the object lists a
	// Service or IPRange source, or an AuthenticatedPrincipal source,
	// usable or not: losing every source of a kind the object relies on
	// must never widen what it admits.
	namedAddress, namedPrincipal bool
	// listedBackends and listedSources count the entries of the spec.
	listedBackends, listedSources int
}

type backend struct {
	idx    int // index in spec.backends
	target mesh.IngressTarget
}

type source struct {
	idx int // index in spec.sources
	src mesh.IngressSource
}

// ValidateIngressBackend runs the checks that need only the object itself
// (field values, duplicates, source kinds against backend protocols), as an
// admission webhook would. Translate runs the same checks and, in addition,
// those that need other objects (Services, endpoints, other IngressBackends).
func ValidateIngressBackend(ib *policyv1alpha1.IngressBackend) []mesh.Finding {
	var fs findings
	p := parse(ib, &fs)
	finalize(p, &fs)
	if len(fs) == 0 {
		return nil
	}
	return mesh.SortFindings(fs)
}

// parse checks the fields of an IngressBackend and converts the usable
// backends and sources; Service sources are not resolved yet.
func parse(ib *policyv1alpha1.IngressBackend, fs *findings) *parsed {
	ref := mesh.ObjectRef{Kind: kindIngressBackend, Namespace: ib.Namespace, Name: ib.Name}
	p := &parsed{ref: ref, listedBackends: len(ib.Spec.Backends), listedSources: len(ib.Spec.Sources)}
	if !ib.CreationTimestamp.IsZero() {
		p.created = ib.CreationTimestamp.UnixNano()
	}
	spec := &ib.Spec

	if len(spec.Backends) == 0 {
		fs.Errorf(ref, "spec.backends", ReasonNoBackends, "lists no backends; the IngressBackend admits nothing")
	}
	type nameAndPort struct {
		name string
		port int32
	}
	seen := make(map[nameAndPort]int, len(spec.Backends))
	for i := range spec.Backends {
		b := &spec.Backends[i]
		if b.Name == "" {
			fs.Errorf(ref, backendField(i, "name"), ReasonMissingName, "is empty; the backend is ignored")
			continue
		}
		if b.Port.Number < 1 || b.Port.Number > 65535 {
			fs.Errorf(ref, backendField(i, "port.number"), ReasonInvalidPort,
				"%d is not a port number (1-65535); the backend is ignored", b.Port.Number)
			continue
		}
		proto := strings.ToLower(b.Port.Protocol)
		if proto != mesh.IngressHTTP && proto != mesh.IngressHTTPS {
			fs.Errorf(ref, backendField(i, "port.protocol"), ReasonInvalidProtocol,
				"%q is neither http nor https; the backend is ignored", b.Port.Protocol)
			continue
		}
		k := nameAndPort{b.Name, b.Port.Number}
		if first, dup := seen[k]; dup {
			fs.Errorf(ref, backendField(i, ""), ReasonDuplicateBackend,
				"repeats Service %q port %d of spec.backends[%d]; it is ignored", b.Name, b.Port.Number, first)
			continue
		}
		seen[k] = i
		t := mesh.IngressTarget{
			Service:  mesh.ServiceKey{Namespace: ib.Namespace, Name: b.Name},
			Port:     b.Port.Number,
			Protocol: proto,
		}
		if tls := b.TLS; tls != nil {
			switch {
			case proto == mesh.IngressHTTPS:
				t.SkipClientCertValidation = tls.SkipClientCertValidation
				t.SNIHosts = sortedHosts(tls.SNIHosts)
			case tls.SkipClientCertValidation || len(tls.SNIHosts) > 0:
				fs.Warnf(ref, backendField(i, "tls"), ReasonTLSIgnored,
					"applies to https backends only; it is ignored for this http backend")
			}
		}
		p.backends = append(p.backends, backend{idx: i, target: t})
	}

	if len(spec.Sources) == 0 {
		fs.Errorf(ref, "spec.sources", ReasonNoSources, "lists no sources; the IngressBackend admits nothing")
	}
	for j := range spec.Sources {
		s := &spec.Sources[j]
		switch s.Kind {
		case policyv1alpha1.KindService, policyv1alpha1.KindIPRange:
			p.namedAddress = true
		case policyv1alpha1.KindAuthenticatedPrincipal:
			p.namedPrincipal = true
		default:
			fs.Errorf(ref, sourceField(j, "kind"), ReasonUnsupportedKind,
				"%q is not Service, IPRange or AuthenticatedPrincipal; the source is ignored", s.Kind)
			continue
		}
		if s.Name == "" {
			fs.Errorf(ref, sourceField(j, "name"), ReasonMissingName, "is empty; the source is ignored")
			continue
		}
		var out mesh.IngressSource
		switch s.Kind {
		case policyv1alpha1.KindService:
			ns := s.Namespace
			if ns == "" {
				ns = ib.Namespace
			}
			out = mesh.IngressSource{Kind: mesh.IngressSourceService, Service: &mesh.ServiceKey{Namespace: ns, Name: s.Name}}
		case policyv1alpha1.KindIPRange:
			prefix, err := netip.ParsePrefix(s.Name)
			if err != nil {
				fs.Errorf(ref, sourceField(j, "name"), ReasonInvalidCIDR,
					"%q is not a CIDR block such as 10.0.0.0/8, 192.0.2.7/32 or 2001:db8::/32; the source is ignored", s.Name)
				continue
			}
			if masked := prefix.Masked(); masked != prefix {
				fs.Warnf(ref, sourceField(j, "name"), ReasonNonCanonicalCIDR,
					"%q has address bits set beyond its prefix length; meshward admits %s", s.Name, masked)
				prefix = masked
			}
			out = mesh.IngressSource{Kind: mesh.IngressSourceIPRange, CIDR: prefix.String()}
		default:
			out = mesh.IngressSource{Kind: mesh.IngressSourceAuthenticatedPrincipal, Principal: s.Name}
		}
		p.sources = append(p.sources, source{idx: j, src: out})
	}

	if len(spec.Matches) > 0 {
		fs.Warnf(ref, "spec.matches", ReasonMatchesNotEnforced,
			"is not enforced (OSM does not enforce it either); the backends admit every request of the admitted clients")
	}
	return p
}

// finalize applies the rules that tie sources to backends, after every
// source that cannot be used has been removed. It reports whether anything
// is left to admit.
func finalize(p *parsed, fs *findings) bool {
	if len(p.backends) == 0 || len(p.sources) == 0 {
		switch {
		case p.listedBackends > 0 && len(p.backends) == 0:
			fs.Errorf(p.ref, "spec.backends", ReasonNothingAdmitted, "no backend is usable; the IngressBackend admits nothing")
		case p.listedSources > 0 && len(p.sources) == 0:
			fs.Errorf(p.ref, "spec.sources", ReasonNothingAdmitted, "no source is usable; the IngressBackend admits nothing")
		}
		return false
	}
	checking := slices.ContainsFunc(p.backends, func(b backend) bool { return b.target.ChecksPrincipal() })

	// A principal can be checked only on https with client certificate
	// validation; with no such backend, principal sources mean nothing.
	if !checking {
		p.sources = slices.DeleteFunc(p.sources, func(s source) bool {
			if s.src.Kind != mesh.IngressSourceAuthenticatedPrincipal {
				return false
			}
			fs.Errorf(p.ref, sourceField(s.idx, ""), ReasonPrincipalNotChecked,
				"AuthenticatedPrincipal %q can be checked only on an https backend that validates client certificates, and this IngressBackend has none; the source is ignored",
				s.src.Principal)
			return true
		})
	}

	addresses := slices.ContainsFunc(p.sources, func(s source) bool { return s.src.IsAddress() })
	principals := slices.ContainsFunc(p.sources, func(s source) bool {
		return s.src.Kind == mesh.IngressSourceAuthenticatedPrincipal
	})

	// The object restricts client addresses but none of its address
	// sources is usable: no address can match.
	if p.namedAddress && !addresses {
		fs.Errorf(p.ref, "spec.sources", ReasonNothingAdmitted,
			"no Service or IPRange source is usable, so no client address can match; the IngressBackend admits nothing")
		p.sources = nil
		return false
	}

	p.backends = slices.DeleteFunc(p.backends, func(b backend) bool {
		t := b.target
		switch {
		case t.ChecksPrincipal() && p.namedPrincipal && !principals:
			// Only reachable when every principal source was unusable.
			fs.Errorf(p.ref, backendField(b.idx, ""), ReasonNothingAdmitted,
				"checks client certificates, but no AuthenticatedPrincipal source is usable, so no client can match; the backend is ignored")
			return true
		case !t.ChecksPrincipal() && !addresses:
			fs.Errorf(p.ref, backendField(b.idx, ""), ReasonNoAddressSource,
				"%s, so only client addresses can be checked on it, and the IngressBackend lists no Service or IPRange source; the backend is ignored and admits nothing",
				whyNoPrincipal(t))
			return true
		case !t.ChecksPrincipal() && principals:
			fs.Warnf(p.ref, backendField(b.idx, ""), ReasonPrincipalNotChecked,
				"%s, so the AuthenticatedPrincipal sources are not checked on it; it admits clients by address only",
				whyNoPrincipal(t))
		}
		return false
	})
	return len(p.backends) > 0
}

// whyNoPrincipal says why a backend does not check client certificates.
func whyNoPrincipal(t mesh.IngressTarget) string {
	if t.Protocol == mesh.IngressHTTP {
		return "is an http backend"
	}
	return "skips client certificate validation"
}

// sortedHosts returns the SNI hosts sorted without duplicates, or nil.
func sortedHosts(hosts []string) []string {
	if len(hosts) == 0 {
		return nil
	}
	out := slices.Clone(hosts)
	slices.Sort(out)
	return slices.Clip(slices.Compact(out))
}
