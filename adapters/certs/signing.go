package certs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/mesh"
)

const (
	// SigningPath is where callers mount a SigningHandler.
	SigningPath = "/v1/certificates"
	// DefaultAudience is the token audience a SigningHandler accepts
	// unless told otherwise.
	DefaultAudience = "meshward"
	// maxSigningRequestBytes bounds a request body; a CSR is about 500 bytes.
	maxSigningRequestBytes = 64 << 10
	// serviceAccountPrefix starts the username of a ServiceAccount token.
	serviceAccountPrefix = "system:serviceaccount:"
	// podNameExtra is the TokenReview extra field naming the token's pod.
	podNameExtra = "authentication.kubernetes.io/pod-name"
)

// SigningRequest is the body of POST /v1/certificates.
type SigningRequest struct {
	// CSR is a PEM "CERTIFICATE REQUEST" signed by an ECDSA P-256 key.
	CSR string `json:"csr"`
}

// SigningResponse is the body of a successful answer.
type SigningResponse struct {
	// Certificate is the leaf followed by any intermediates, PEM.
	Certificate string `json:"certificate"`
	// CA is the trust bundle, PEM.
	CA string `json:"ca"`
	// NotAfter is when the certificate expires (RFC 3339).
	NotAfter time.Time `json:"notAfter"`
}

// SigningError is the body of a failed answer.
type SigningError struct {
	Error string `json:"error"`
}

// SigningOptions configure a SigningHandler.
type SigningOptions struct {
	// Audiences are the token audiences accepted; a token must be meant for
	// at least one. Default: DefaultAudience.
	Audiences []string
	// TTL is the lifetime of issued certificates; 0 means the issuer's
	// default.
	TTL time.Duration
	// Log receives issued certificates and server-side failures;
	// discarded when unset.
	Log logr.Logger
}

// SigningHandler answers POST requests carrying a SigningRequest and a
// ServiceAccount token (Authorization: Bearer) with a certificate for that
// ServiceAccount. The identity comes only from the token, checked with a
// TokenReview: the CSR proves possession of its key, and its subject and
// SANs are ignored.
//
// Status codes: 200 with a SigningResponse; 401 for a missing or rejected
// token, or one not meant for the audiences; 403 for a token that is not
// a ServiceAccount's; 400 for a malformed body or CSR; 405 for other
// methods; 413 for an oversized body; 503 when the token cannot be
// reviewed; 500 when issuing fails. Failures carry a SigningError.
type SigningHandler struct {
	issuer    Issuer
	reviewer  client.Client
	audiences []string
	ttl       time.Duration
	log       logr.Logger
}

// NewSigningHandler returns a handler issuing with issuer and creating
// TokenReviews with reviewer, which needs create on
// tokenreviews.authentication.k8s.io. Mount it at SigningPath.
func NewSigningHandler(issuer Issuer, reviewer client.Client, opts SigningOptions) *SigningHandler {
	h := &SigningHandler{
		issuer:    issuer,
		reviewer:  reviewer,
		audiences: slices.Clone(opts.Audiences),
		ttl:       opts.TTL,
		log:       opts.Log,
	}
	if len(h.audiences) == 0 {
		h.audiences = []string{DefaultAudience}
	}
	if h.log.GetSink() == nil {
		h.log = logr.Discard()
	}
	return h
}

// httpError is a failure with the status code it is answered with.
type httpError struct {
	status int
	msg    string
}

func fail(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *SigningHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, herr := h.serve(w, r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if herr != nil {
		switch herr.status {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshward"`)
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodPost)
		}
		w.WriteHeader(herr.status)
		_ = json.NewEncoder(w).Encode(SigningError{Error: herr.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (h *SigningHandler) serve(w http.ResponseWriter, r *http.Request) (*SigningResponse, *httpError) {
	if r.Method != http.MethodPost {
		return nil, fail(http.StatusMethodNotAllowed, "use POST")
	}
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, fail(http.StatusUnauthorized, "missing bearer token: send the workload's ServiceAccount token as \"Authorization: Bearer <token>\"")
	}
	ctx := r.Context()
	id, pod, herr := h.authenticate(ctx, token)
	if herr != nil {
		return nil, herr
	}
	var req SigningRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSigningRequestBytes)).Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, fail(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxSigningRequestBytes)
		}
		return nil, fail(http.StatusBadRequest, `the request body must be JSON {"csr": "<PEM certificate request>"}: %v`, err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "bad CSR: %v", err)
	}
	cert, err := h.issuer.Issue(ctx, Request{Identity: id, PublicKey: csr.PublicKey, TTL: h.ttl})
	switch {
	case errors.Is(err, ErrUnsupportedKey):
		return nil, fail(http.StatusBadRequest, "bad CSR: %v", err)
	case errors.Is(err, ErrInvalidIdentity):
		return nil, fail(http.StatusForbidden, "no certificate for %s: %v", id, err)
	case err != nil:
		h.log.Error(err, "issuing a workload certificate failed", "identity", id.String())
		return nil, fail(http.StatusInternalServerError, "issuing the certificate failed")
	}
	bundle, err := h.issuer.TrustBundle(ctx)
	if err != nil {
		h.log.Error(err, "reading the trust bundle failed")
		return nil, fail(http.StatusInternalServerError, "reading the trust bundle failed")
	}
	kv := []any{"identity", id.String(), "serial", cert.Serial, "notAfter", cert.NotAfter}
	if pod != "" {
		kv = append(kv, "pod", pod)
	}
	h.log.Info("issued a workload certificate", kv...)
	return &SigningResponse{
		Certificate: string(cert.FullChainPEM()),
		CA:          string(bundle),
		NotAfter:    cert.NotAfter.UTC(),
	}, nil
}

// authenticate reviews the token and returns the ServiceAccount it belongs
// to, and the pod it is bound to when the API server says.
func (h *SigningHandler) authenticate(ctx context.Context, token string) (mesh.Identity, string, *httpError) {
	review := &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: h.audiences},
	}
	if err := h.reviewer.Create(ctx, review); err != nil {
		h.log.Error(err, "creating a TokenReview failed")
		return mesh.Identity{}, "", fail(http.StatusServiceUnavailable, "the token could not be reviewed; try again later")
	}
	st := review.Status
	if !st.Authenticated {
		msg := "the token was rejected"
		if st.Error != "" {
			msg += ": " + st.Error
		}
		return mesh.Identity{}, "", fail(http.StatusUnauthorized, "%s", msg)
	}
	// An audience-unaware authenticator answers with no audiences; only an
	// explicit match proves the token was meant for this endpoint.
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(h.audiences, a) }) {
		return mesh.Identity{}, "", fail(http.StatusUnauthorized, "the token is not meant for audience %s", strings.Join(h.audiences, " or "))
	}
	id, ok := identityFromUsername(st.User.Username)
	if !ok {
		return mesh.Identity{}, "", fail(http.StatusForbidden, "%q is not a ServiceAccount: certificates are for workloads only", st.User.Username)
	}
	var pod string
	if v := st.User.Extra[podNameExtra]; len(v) == 1 {
		pod = v[0]
	}
	return id, pod, nil
}

// identityFromUsername maps system:serviceaccount:<ns>:<sa> to ns/sa.
// Namespaces and ServiceAccount names cannot contain ':', so the rest
// splits at exactly one.
func identityFromUsername(username string) (mesh.Identity, bool) {
	rest, ok := strings.CutPrefix(username, serviceAccountPrefix)
	if !ok {
		return mesh.Identity{}, false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return mesh.Identity{}, false
	}
	return mesh.Identity{Namespace: ns, Name: name}, true
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// parseCSR reads one PEM certificate request, checks its signature, and
// accepts ECDSA P-256 keys only.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New(`the "csr" field is empty`)
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block %q, want CERTIFICATE REQUEST", block.Type)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("data after the certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if err := checkLeafKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}
