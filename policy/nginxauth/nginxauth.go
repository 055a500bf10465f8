// Package nginxauth serves meshward's decisions to nginx's auth_request
// module and to ingress-nginx's auth-url annotation.
//
// nginx sends a subrequest describing the original request in headers
// (X-Original-URL, X-Original-Method, X-Real-IP, X-Forwarded-For); the
// endpoint answers 200 to allow, 401 when the caller cannot be identified
// and 403 to deny. It never answers anything else: ingress-nginx turns any
// other status into a 500 for the client. Errors fail closed (403).
//
// Two kinds of checks, chosen by the path of the subrequest:
//
//	/v1/ingress/<namespace>/<service>/<target port>
//	    ingress to a backend, admitted by IngressBackends by client address
//	    (and client certificate principal on https backends);
//	/v1/mesh/<namespace>/<serviceaccount>[?port=N]
//	    a request from a mesh workload to the named identity, checked
//	    against TrafficTargets; the caller's principal is read from
//	    X-Client-Principal.
//
// Client-supplied headers never name identities by themselves: the
// address and principal headers are read only when the subrequest comes
// from a trusted proxy (by default nginx on the same host, i.e. loopback);
// otherwise the subrequest's own peer address is the client address and
// there is no principal.
package nginxauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshward/meshward/policy"
)

// Headers read from and written to nginx.
const (
	HeaderOriginalURL     = "X-Original-URL"
	HeaderOriginalMethod  = "X-Original-Method"
	HeaderRealIP          = "X-Real-IP"
	HeaderForwardedFor    = "X-Forwarded-For"
	HeaderClientPrincipal = "X-Client-Principal"
	HeaderDecisionID      = "X-Meshward-Decision-Id"
	HeaderReason          = "X-Meshward-Reason"
)

// Options configure a Handler.
type Options struct {
	// TrustedProxies are the peers whose address and principal headers
	// are believed. Default: loopback (nginx on the same host or pod).
	TrustedProxies []netip.Prefix
	Log            logr.Logger
	// Registry receives the handler's metrics; nil registers none.
	Registry prometheus.Registerer
}

// DefaultTrustedProxies is loopback.
var DefaultTrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Handler is the auth endpoint.
type Handler struct {
	engine    *policy.Engine
	opts      Options
	decisions *prometheus.CounterVec
}

// New returns the auth endpoint deciding with engine.
func New(engine *policy.Engine, opts Options) (*Handler, error) {
	if opts.TrustedProxies == nil {
		opts.TrustedProxies = DefaultTrustedProxies
	}
	h := &Handler{engine: engine, opts: opts, decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshward_nginx_auth_decisions_total",
		Help: "nginx auth endpoint answers by status code.",
	}, []string{"code"})}
	if opts.Registry != nil {
		if err := opts.Registry.Register(h.decisions); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
		}
	}
	return h, nil
}

// ServeHTTP answers one auth subrequest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, d := h.decide(r.Context(), r)
	if d.ID != "" {
		w.Header().Set(HeaderDecisionID, d.ID)
	}
	w.Header().Set(HeaderReason, reasonHeader(d.Reason))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	h.decisions.WithLabelValues(strconv.Itoa(code)).Inc()
	if code != http.StatusOK {
		h.opts.Log.V(1).Info("denied", "code", code, "id", d.ID, "reason", d.Reason, "path", r.URL.Path)
	}
	_, _ = fmt.Fprintln(w, d.Reason)
}

// maxReasonHeader bounds the reason header. nginx reads the headers of the
// auth response into one buffer (proxy_buffer_size, 4 KiB by default) and
// answers 500 when they do not fit, and a reason can quote the client's
// path. The body carries the whole reason.
const maxReasonHeader = 1024

// reasonHeader makes a reason a valid header value: one line, without
// control characters (whitespace becomes a space, others are escaped),
// at most maxReasonHeader bytes (the middle of a longer one is left out).
func reasonHeader(reason string) string {
	var b strings.Builder
	for i := 0; i < len(reason); i++ {
		switch c := reason[i]; {
		case c == '\r' || c == '\n' || c == '\t':
			b.WriteByte(' ')
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	if len(out) <= maxReasonHeader {
		return out
	}
	// Keep the start and the end, which usually says what is wrong with
	// the quoted path, cutting at character boundaries.
	head := (maxReasonHeader - len("...")) / 2
	for head > 0 && !utf8.RuneStart(out[head]) {
		head--
	}
	tail := len(out) - (maxReasonHeader - len("...") - head)
	for tail < len(out) && !utf8.RuneStart(out[tail]) {
		tail++
	}
	return out[:head] + "..." + out[tail:]
}

// headersNotForwarded are the subrequest headers that describe the
// original request or name the caller: they are not headers of the
// original request.
var headersNotForwarded = map[string]bool{
	http.CanonicalHeaderKey(HeaderOriginalURL):     true,
	http.CanonicalHeaderKey(HeaderOriginalMethod):  true,
	http.CanonicalHeaderKey(HeaderClientPrincipal): true,
}

// decide returns the status code and the decision (or a reason).
func (h *Handler) decide(ctx context.Context, r *http.Request) (int, policy.Decision) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	trusted := h.trusted(r.RemoteAddr)
	req, err := original(r)
	if err != nil {
		return http.StatusForbidden, policy.Decision{Reason: err.Error()}
	}
	switch {
	case len(segs) == 5 && segs[0] == "v1" && segs[1] == "ingress":
		port, err := strconv.ParseUint(segs[4], 10, 16)
		if err != nil || port == 0 {
			return http.StatusForbidden, policy.Decision{Reason: fmt.Sprintf("target port %q in the endpoint path is not a port number", segs[4])}
		}
		in := &policy.Ingress{Backend: segs[2] + "/" + segs[3], Port: uint32(port), Address: h.clientAddress(r, trusted)}
		if trusted {
			in.Principal = r.Header.Get(HeaderClientPrincipal)
		}
		req.Ingress = in
		req.Port = uint32(port)
	case len(segs) == 4 && segs[0] == "v1" && segs[1] == "mesh":
		if !trusted {
			return http.StatusUnauthorized, policy.Decision{Reason: "the caller's identity is only read from a trusted proxy; " + r.RemoteAddr + " is not one"}
		}
		req.Source = r.Header.Get(HeaderClientPrincipal)
		if req.Source == "" {
			return http.StatusUnauthorized, policy.Decision{Reason: "no " + HeaderClientPrincipal + " header: the caller presented no verified identity"}
		}
		req.Destination = segs[2] + "/" + segs[3]
		if p := r.URL.Query().Get("port"); p != "" {
			port, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return http.StatusForbidden, policy.Decision{Reason: fmt.Sprintf("port %q is not a port number", p)}
			}
			req.Port = uint32(port)
		}
	default:
		return http.StatusForbidden, policy.Decision{Reason: "unknown auth endpoint " + r.URL.Path + ": use /v1/ingress/<namespace>/<service>/<port> or /v1/mesh/<namespace>/<serviceaccount>"}
	}
	d, err := h.engine.DecideRequest(ctx, req)
	if err != nil {
		h.opts.Log.Error(err, "no decision; applying the failure policy", "id", d.ID, "allowed", d.Allowed)
	}
	if d.Allowed {
		return http.StatusOK, d
	}
	return http.StatusForbidden, d
}

// original reads the original request from nginx's headers.
func original(r *http.Request) (policy.Request, error) {
	raw := r.Header.Get(HeaderOriginalURL)
	if raw == "" {
		return policy.Request{}, errors.New("no " + HeaderOriginalURL + " header: configure nginx to send the original request URI")
	}
	req := policy.Request{Protocol: policy.ProtocolHTTP, Method: r.Header.Get(HeaderOriginalMethod)}
	if req.Method == "" {
		return policy.Request{}, errors.New("no " + HeaderOriginalMethod + " header: configure nginx to send the original method")
	}
	if strings.HasPrefix(raw, "/") {
		req.Path = raw
	} else {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return policy.Request{}, fmt.Errorf("%s %q is neither a path nor an absolute URL", HeaderOriginalURL, raw)
		}
		req.Host = u.Host
		// The escaped path as sent: normalisation (and rejection of
		// encoded slashes) is the policy engine's.
		req.Path = u.EscapedPath()
		if req.Path == "" {
			req.Path = "/"
		}
		if u.RawQuery != "" {
			req.Path += "?" + u.RawQuery
		}
	}
	req.Headers = map[string]string{}
	for k, v := range r.Header {
		if headersNotForwarded[http.CanonicalHeaderKey(k)] {
			continue
		}
		req.Headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if req.Host == "" {
		req.Host = r.Header.Get("X-Forwarded-Host")
	}
	return req, nil
}

// trusted reports whether the subrequest comes from a trusted proxy.
func (h *Handler) trusted(remote string) bool {
	a, ok := peerAddr(remote)
	if !ok {
		return false
	}
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddress is X-Real-IP, else the last X-Forwarded-For entry (the one
// the trusted proxy added), when the peer is trusted; the peer otherwise.
func (h *Handler) clientAddress(r *http.Request, trusted bool) string {
	if trusted {
		if ip, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get(HeaderRealIP))); err == nil {
			return ip.Unmap().String()
		}
		if xff := r.Header.Values(HeaderForwardedFor); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				return ip.Unmap().String()
			}
		}
	}
	if a, ok := peerAddr(r.RemoteAddr); ok {
		return a.String()
	}
	return ""
}

func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
