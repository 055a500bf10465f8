// Package pathnorm normalises HTTP request paths before access policy sees
// them, so that every spelling of a path that a server could read as the
// same resource is decided as that one resource.
//
// Normalize takes a request target in origin form ("/path?query") and
// returns the normalised path, the raw query string and the parsed query.
// The steps, in order:
//
//  1. The query string (everything after the first "?") is split off. It is
//     returned as given and parsed separately; it never takes part in path
//     matching.
//  2. The path must start with "/". The asterisk form ("*", for OPTIONS),
//     the absolute form and the empty path are rejected.
//  3. Percent-encodings are checked: each "%" must be followed by two hex
//     digits. Encoded unreserved characters (ALPHA DIGIT "-" "." "_" "~",
//     RFC 3986 §2.3) are decoded; every other encoding is kept with
//     upper-case hex digits ("%3a" becomes "%3A").
//  4. An encoded "/" (%2F) or "\" (%5C) is rejected, not decoded: servers
//     disagree on whether it separates segments. A raw "\" is rejected for
//     the same reason.
//  5. Control characters (0x00-0x1F, 0x7F), raw or encoded, a raw space and
//     a raw "#" are rejected. Raw bytes that RFC 3986 does not allow in a path
//     (non-ASCII bytes and `"<>[]^{|}` and the backquote) are percent-encoded.
//     The decoded path must be valid UTF-8 (overlong forms such as %C0%AE are
//     rejected).
//  6. Dot segments are removed (RFC 3986 §5.2.4): "." is dropped and ".."
//     removes the segment before it; ".." at the root stays at the root.
//     A segment that is "." or ".." followed by parameters (";x", "%3Bx") is
//     rejected, because some servers strip the parameters and then read a
//     dot segment. A ".." that would remove an empty segment ("/a//.."), is
//     rejected when the result would depend on whether slashes are merged
//     first.
//  7. Repeated slashes are merged ("//" becomes "/"). A trailing slash is
//     kept: "/a/" and "/a" are different paths.
//
// Paths are case-sensitive: "/ADMIN" and "/admin" are different paths and
// nothing is case-folded. A policy that must refuse every spelling of a
// path should allow what it wants (allow lists are safe) or use a
// case-insensitive expression such as "(?i)^/admin".
//
// A double encoding is decoded once only: "%252e" is the three characters
// "%2e" of a segment name, not a dot.
//
// Normalize is idempotent: normalising a normalised path returns it
// unchanged.
package pathnorm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Errors wrapped by the *Error that Normalize returns.
var (
	ErrNotAbsolute         = errors.New("path does not start with /")
	ErrEncodedSlash        = errors.New("path contains an encoded slash (%2F)")
	ErrEncodedBackslash    = errors.New("path contains an encoded backslash (%5C)")
	ErrBackslash           = errors.New(`path contains a backslash`)
	ErrControl             = errors.New("path contains a control character")
	ErrInvalidCharacter    = errors.New("path contains a space or a fragment (#)")
	ErrInvalidEscape       = errors.New("path contains an invalid percent-encoding")
	ErrInvalidUTF8         = errors.New("path does not decode to valid UTF-8")
	ErrDotSegmentParams    = errors.New("path has a dot segment with parameters")
	ErrAmbiguousDotSegment = errors.New("path has a .. segment after an empty segment")
	ErrEncodedDotSegment   = errors.New("path has a dot segment spelled with percent-encoding (%2E)")
	ErrDoubleEncoding      = errors.New("path contains a double-encoded '.', '/' or '\\' (%252E, %252F, %255C)")
	ErrInvalidQuery        = errors.New("query string is invalid")
)

// Error is a path that Normalize rejects.
type Error struct {
	// Input is the request target given to Normalize.
	Input string
	// Offset is the byte offset in Input where the problem was found, or -1.
	Offset int
	// Err is one of the Err* values of this package.
	Err error
}

// Error says what is wrong and where.
func (e *Error) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%q: %v", e.Input, e.Err)
	}
	return fmt.Sprintf("%q: %v (at byte %d)", e.Input, e.Err, e.Offset)
}

// Unwrap returns the Err* value.
func (e *Error) Unwrap() error { return e.Err }

// Result is a normalised request target.
type Result struct {
	// Path is the normalised path, without the query string.
	Path string
	// RawQuery is the query string as given, without the "?"; empty when
	// the target has none.
	RawQuery string
	// Query is RawQuery parsed: "&"-separated pairs, "+" read as a space,
	// values percent-decoded, in order of appearance. It is nil when
	// RawQuery is empty.
	Query url.Values
}

// Normalize normalises a request target ("/path" or "/path?query"); see the
// package documentation for the rules. Every error is an *Error wrapping one
// of the Err* values.
func Normalize(target string) (Result, error) {
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	p, err := normalizePath(target, rawPath)
	if err != nil {
		return Result{}, err
	}
	res := Result{Path: p, RawQuery: rawQuery}
	if rawQuery != "" {
		q, off, err := parseQuery(rawQuery)
		if err != nil {
			return Result{}, &Error{Input: target, Offset: len(rawPath) + 1 + off, Err: err}
		}
		res.Query = q
	}
	return res, nil
}

// Path normalises a path that has no query string; a "?" in it is read as
// the start of a query and the query is dropped.
func Path(p string) (string, error) {
	rawPath, _, _ := strings.Cut(p, "?")
	return normalizePath(p, rawPath)
}

// Segments splits a normalised path into its percent-decoded segments, the
// way opa-envoy-plugin fills parsed_path: "/" gives [""], "/a/b/" gives
// ["a", "b", ""].
func Segments(p string) []string {
	p = strings.TrimPrefix(p, "/")
	n := strings.Count(p, "/") + 1
	out := make([]string, 0, n)
	for seg := range strings.SplitSeq(p, "/") {
		if strings.IndexByte(seg, '%') >= 0 {
			if d, err := url.PathUnescape(seg); err == nil {
				seg = d
			}
		}
		out = append(out, seg)
	}
	return out
}

// byte classes of a raw path byte.
const (
	classKeep    = iota // unreserved, sub-delims, ":", "@", "/"
	classPercent        // "%"
	classEncode         // allowed by servers but not by RFC 3986: percent-encode
	classBackslash
	classControl
	classInvalid // space, "#"
)

var classes = func() (c [256]uint8) {
	for i := range 256 {
		b := byte(i)
		switch {
		case b < 0x20 || b == 0x7f:
			c[i] = classControl
		case b >= 0x80:
			c[i] = classEncode
		case isUnreserved(b) || strings.IndexByte("!$&'()*+,;=:@/", b) >= 0:
			c[i] = classKeep
		case b == '%':
			c[i] = classPercent
		case b == '\\':
			c[i] = classBackslash
		case b == ' ' || b == '#':
			c[i] = classInvalid
		default:
			c[i] = classEncode
		}
	}
	return c
}()

func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '.' || b == '_' || b == '~'
}

func unhex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// normalizePath normalises rawPath, a prefix of input.
func normalizePath(input, rawPath string) (string, error) {
	fail := func(off int, err error) (string, error) {
		return "", &Error{Input: input, Offset: off, Err: err}
	}
	if rawPath == "" || rawPath[0] != '/' {
		return fail(0, ErrNotAbsolute)
	}
	if canonical(rawPath) {
		return rawPath, nil
	}

	// Step 1: canonical characters and percent-encodings.
	var b strings.Builder
	b.Grow(len(rawPath) + 8)
	checkUTF8 := false
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		switch classes[c] {
		case classKeep:
			b.WriteByte(c)
		case classEncode:
			checkUTF8 = checkUTF8 || c >= 0x80
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		case classBackslash:
			return fail(i, ErrBackslash)
		case classControl:
			return fail(i, ErrControl)
		case classInvalid:
			return fail(i, ErrInvalidCharacter)
		case classPercent:
			if i+2 >= len(rawPath) {
				return fail(i, ErrInvalidEscape)
			}
			hi, ok1 := unhex(rawPath[i+1])
			lo, ok2 := unhex(rawPath[i+2])
			if !ok1 || !ok2 {
				return fail(i, ErrInvalidEscape)
			}
			v := hi<<4 | lo
			switch {
			case v == '/':
				return fail(i, ErrEncodedSlash)
			case v == '\\':
				return fail(i, ErrEncodedBackslash)
			case v < 0x20 || v == 0x7f:
				return fail(i, ErrControl)
			case isUnreserved(v):
				b.WriteByte(v)
			default:
				checkUTF8 = checkUTF8 || v >= 0x80
				b.WriteByte('%')
				b.WriteByte(upperHex[v>>4])
				b.WriteByte(upperHex[v&15])
			}
			i += 2
		}
	}
	enc := b.String()
	if i := doubleEncoded(enc); i >= 0 {
		return fail(-1, ErrDoubleEncoding)
	}
	if checkUTF8 {
		if d, err := url.PathUnescape(enc); err != nil || !utf8.ValidString(d) {
			return fail(-1, ErrInvalidUTF8)
		}
	}

	// Steps 2 and 3: dot segments, then empty segments.
	segs := make([]string, 0, strings.Count(enc, "/"))
	nonEmpty := 0 // non-empty segments in segs
	trailing := false
	rawSegs := strings.Split(rawPath[1:], "/")
	for k, seg := range strings.Split(enc[1:], "/") {
		if (seg == "." || seg == "..") && rawSegs[k] != seg {
			return fail(-1, ErrEncodedDotSegment)
		}
		switch seg {
		case ".":
			trailing = true
			continue
		case "..":
			trailing = true
			if n := len(segs); n > 0 {
				if segs[n-1] == "" {
					if nonEmpty > 0 {
						return fail(-1, ErrAmbiguousDotSegment)
					}
				} else {
					nonEmpty--
				}
				segs = segs[:n-1]
			}
			continue
		}
		if dotWithParams(seg) {
			return fail(-1, ErrDotSegmentParams)
		}
		trailing = seg == ""
		segs = append(segs, seg)
		if seg != "" {
			nonEmpty++
		}
	}
	b.Reset()
	b.Grow(len(enc))
	for _, s := range segs {
		if s != "" {
			b.WriteByte('/')
			b.WriteString(s)
		}
	}
	if nonEmpty == 0 || trailing {
		b.WriteByte('/')
	}
	return b.String(), nil
}

// doubleEncoded returns the index of the first "%25" in a canonical path
// that encodes the "%" of an escape of ".", "/" or "\\", or -1.
func doubleEncoded(p string) int {
	for i := 0; ; i += 3 {
		j := strings.Index(p[i:], "%25")
		if j < 0 {
			return -1
		}
		i += j
		if i+5 <= len(p) {
			switch strings.ToUpper(p[i+3 : i+5]) {
			case "2E", "2F", "5C":
				return i
			}
		}
	}
}

// dotWithParams reports whether seg is "." or ".." followed by path
// parameters (";..." or an encoded ";").
func dotWithParams(seg string) bool {
	if seg == "" || seg[0] != '.' {
		return false
	}
	rest := seg[1:]
	if rest != "" && rest[0] == '.' {
		rest = rest[1:]
	}
	return strings.HasPrefix(rest, ";") || strings.HasPrefix(rest, "%3B")
}

// canonical reports whether p needs no change: only characters kept as
// they are, no percent sign, no empty or dot segment, no dot segment with
// parameters. It is the fast path for ordinary paths.
func canonical(p string) bool {
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if classes[c] != classKeep {
				return false
			}
			if c != '/' {
				continue
			}
		}
		seg := p[segStart:i]
		switch {
		case seg == "" && i < len(p): // "//"
			return false
		case seg == "." || seg == "..":
			return false
		case dotWithParams(seg):
			return false
		}
		segStart = i + 1
	}
	return true
}

// ValidQuery reports whether Normalize accepts q as a query string: no
// control characters, and every "%" followed by two hexadecimal digits. It
// does not allocate.
func ValidQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c == '%':
			if i+2 >= len(q) {
				return false
			}
			if _, ok := unhex(q[i+1]); !ok {
				return false
			}
			if _, ok := unhex(q[i+2]); !ok {
				return false
			}
			i += 2
		}
	}
	return true
}

// parseQuery parses a raw query string: pairs separated by "&", keys and
// values percent-decoded with "+" as a space. Semicolons are data. It
// returns the offset of the first problem.
func parseQuery(q string) (url.Values, int, error) {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c < 0x20 || c == 0x7f {
			return nil, i, ErrControl
		}
	}
	v := make(url.Values)
	off := 0
	for pair := range strings.SplitSeq(q, "&") {
		start := off
		off += len(pair) + 1
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, start, ErrInvalidQuery
		}
		dv, err := url.QueryUnescape(val)
		if err != nil {
			return nil, start + len(k) + 1, ErrInvalidQuery
		}
		v[dk] = append(v[dk], dv)
	}
	return v, 0, nil
}
