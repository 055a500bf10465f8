package mesh

// AccessRule says that the Sources may call Destination on the traffic
// described by HTTP and TCP. It comes from one TrafficTarget (or, later, one
// AccessPolicy rule); rules are combined by union.
type AccessRule struct {
	// Origin is the object this rule came from.
	Origin ObjectRef `json:"origin"`
	// Destination is the callee's identity.
	Destination Identity `json:"destination"`
	// Sources are the callers' identities.
	Sources []Identity `json:"sources,omitempty"`
	// HTTP lists the HTTP requests allowed. Empty means none.
	HTTP []HTTPMatch `json:"http,omitempty"`
	// TCP lists the TCP port sets allowed. Empty means none.
	TCP []PortMatch `json:"tcp,omitempty"`
	// UDP lists the UDP port sets allowed. Empty means none.
	UDP []PortMatch `json:"udp,omitempty"`
}

// HTTPMatch is one resolved HTTPRouteGroup match. Its fields are ANDed.
type HTTPMatch struct {
	// Group is the HTTPRouteGroup the match belongs to.
	Group ObjectRef `json:"group"`
	// Name is the match's name in the group.
	Name string `json:"name,omitempty"`
	// Methods are upper-case HTTP methods; empty means any method.
	Methods []string `json:"methods,omitempty"`
	// PathRegex is an RE2 expression; empty means any path. How it is
	// anchored is decided by Options.PathMatch.
	PathRegex string `json:"pathRegex,omitempty"`
	// Headers are RE2 full-match expressions keyed by lower-case header name.
	Headers []HeaderMatch `json:"headers,omitempty"`
}

// HeaderMatch requires a header whose value fully matches Regex.
type HeaderMatch struct {
	// Name is the lower-case header name.
	Name string `json:"name"`
	// Regex is an RE2 expression matched against the whole value.
	Regex string `json:"regex"`
}

// PortMatch is one resolved TCPRoute or UDPRoute match.
type PortMatch struct {
	// Route is the TCPRoute or UDPRoute the match belongs to.
	Route ObjectRef `json:"route"`
	// Name is the match's name.
	Name string `json:"name,omitempty"`
	// Ports are the allowed destination ports; empty means every port.
	Ports []int32 `json:"ports,omitempty"`
}

// Split divides the traffic sent to a root service among backends.
type Split struct {
	// Origin is the TrafficSplit this split came from.
	Origin ObjectRef `json:"origin"`
	// Service is the root service.
	Service ServiceKey `json:"service"`
	// Backends are the weighted backends, in the order given.
	Backends []SplitBackend `json:"backends"`
	// Matched is true when the split applies only to requests matching
	// Matches; other requests go to the root service.
	Matched bool `json:"matched,omitempty"`
	// Matches are the resolved HTTPRouteGroup matches (only when Matched).
	// An empty list with Matched true means no request is split.
	Matches []HTTPMatch `json:"matches,omitempty"`
}

// SplitBackend is a weighted backend service of a split.
type SplitBackend struct {
	Service ServiceKey `json:"service"`
	// Weight is relative to the other backends' weights; 0 is allowed.
	Weight int32 `json:"weight"`
}

// TotalWeight is the sum of the backends' weights.
func (s Split) TotalWeight() int64 {
	var t int64
	for _, b := range s.Backends {
		t += int64(b.Weight)
	}
	return t
}
