package pathnorm

import (
	"errors"
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := map[string]struct {
		in        string
		want      string
		wantQuery string
		err       error
	}{
		"root":                        {in: "/", want: "/"},
		"plain":                       {in: "/books-bought", want: "/books-bought"},
		"trailing slash kept":         {in: "/a/b/", want: "/a/b/"},
		"query split off":             {in: "/books-bought?limit=10", want: "/books-bought", wantQuery: "limit=10"},
		"empty query":                 {in: "/a?", want: "/a"},
		"question mark in query":      {in: "/a?b=?c", want: "/a", wantQuery: "b=?c"},
		"dot segment":                 {in: "/a/./b", want: "/a/b"},
		"dot dot segment":             {in: "/a/b/../c", want: "/a/c"},
		"dot dot at root":             {in: "/../a", want: "/a"},
		"many dot dots at root":       {in: "/../../../a", want: "/a"},
		"final dot":                   {in: "/a/.", want: "/a/"},
		"final dot dot":               {in: "/a/b/..", want: "/a/"},
		"only dot dot":                {in: "/..", want: "/"},
		"dots in names":               {in: "/a.b/..c/c../...", want: "/a.b/..c/c../..."},
		"repeated slashes":            {in: "//a///b//", want: "/a/b/"},
		"only slashes":                {in: "///", want: "/"},
		"empty segments then dot dot": {in: "//../a", want: "/a"},
		"dot dot after empty segment": {in: "/a//../b", err: ErrAmbiguousDotSegment},
		"dot dot after merged dot":    {in: "/a/.//../b", err: ErrAmbiguousDotSegment},
		"dot dot after later segment": {in: "/a//b/../c", want: "/a/c"},
		"unreserved decoded":          {in: "/%61%64%6D%69%6E", want: "/admin"},
		"lower-case unreserved":       {in: "/%7e%2d%2e%5f", want: "/~-._"},
		"encoded dots are rejected":   {in: "/a/%2e%2E/b", err: ErrEncodedDotSegment},
		"mixed encoded dot":           {in: "/a/.%2e/b", err: ErrEncodedDotSegment},
		"encoded single dot":          {in: "/a/%2e/b", err: ErrEncodedDotSegment},
		"encoded dot in a name":       {in: "/index%2ehtml", want: "/index.html"},
		"reserved kept upper-cased":   {in: "/a%3ab%3Bc", want: "/a%3Ab%3Bc"},
		"encoded space kept":          {in: "/my%20file", want: "/my%20file"},
		"encoded percent kept":        {in: "/100%25", want: "/100%25"},
		"double-encoded dot":          {in: "/%252e%252e/a", err: ErrDoubleEncoding},
		"double-encoded slash":        {in: "/a%252Fb", err: ErrDoubleEncoding},
		"double encoding built":       {in: "/a%25%32%65", err: ErrDoubleEncoding},
		"encoded percent not decoded": {in: "/%2541", want: "/%2541"},
		"sub-delims kept":             {in: "/a!$&'()*+,;=:@b", want: "/a!$&'()*+,;=:@b"},
		"raw utf-8 encoded":           {in: "/b\xc3\xbccher", want: "/b%C3%BCcher"},
		"encoded utf-8 kept":          {in: "/b%c3%bccher", want: "/b%C3%BCcher"},
		"unsafe ascii encoded":        {in: "/a{b}|c^d`e\"f<g>h[i]", want: "/a%7Bb%7D%7Cc%5Ed%60e%22f%3Cg%3Eh%5Bi%5D"},
		"case is kept":                {in: "/ADMIN", want: "/ADMIN"},
		"semicolon params kept":       {in: "/admin;x", want: "/admin;x"},
		"dot with params":             {in: "/public/..;/admin", err: ErrDotSegmentParams},
		"single dot with params":      {in: "/public/.;x/admin", err: ErrDotSegmentParams},
		"encoded dot with params":     {in: "/public/%2e%2e;/admin", err: ErrDotSegmentParams},
		"dot with encoded params":     {in: "/public/..%3b/admin", err: ErrDotSegmentParams},
		"empty":                       {in: "", err: ErrNotAbsolute},
		"relative":                    {in: "a/b", err: ErrNotAbsolute},
		"asterisk":                    {in: "*", err: ErrNotAbsolute},
		"absolute form":               {in: "http://x/a", err: ErrNotAbsolute},
		"query only":                  {in: "?a=b", err: ErrNotAbsolute},
		"encoded slash":               {in: "/admin%2fx", err: ErrEncodedSlash},
		"encoded slash upper":         {in: "/a%2F..%2Fadmin", err: ErrEncodedSlash},
		"encoded backslash":           {in: "/a%5cb", err: ErrEncodedBackslash},
		"raw backslash":               {in: `/public\..\admin`, err: ErrBackslash},
		"nul":                         {in: "/a\x00b", err: ErrControl},
		"encoded nul":                 {in: "/a%00b", err: ErrControl},
		"encoded newline":             {in: "/a%0Ab", err: ErrControl},
		"tab":                         {in: "/a\tb", err: ErrControl},
		"del":                         {in: "/a\x7fb", err: ErrControl},
		"space":                       {in: "/a b", err: ErrInvalidCharacter},
		"fragment":                    {in: "/a#b", err: ErrInvalidCharacter},
		"truncated escape":            {in: "/a%4", err: ErrInvalidEscape},
		"bare percent":                {in: "/a%", err: ErrInvalidEscape},
		"non-hex escape":              {in: "/a%zz", err: ErrInvalidEscape},
		"iis unicode escape":          {in: "/%u002e%u002e/admin", err: ErrInvalidEscape},
		"overlong dot":                {in: "/%c0%ae%c0%ae/admin", err: ErrInvalidUTF8},
		"overlong slash":              {in: "/a%c0%afb", err: ErrInvalidUTF8},
		"invalid raw utf-8":           {in: "/a\xffb", err: ErrInvalidUTF8},
		"control in query":            {in: "/a?b=\x01", err: ErrControl},
		"invalid query escape":        {in: "/a?b=%zz", err: ErrInvalidQuery},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Normalize(%q) = %q, %v; want error %v", tc.in, got.Path, err, tc.err)
				}
				var pe *Error
				if !errors.As(err, &pe) || pe.Input != tc.in {
					t.Fatalf("error %v is not an *Error for %q", err, tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			}
			if got.Path != tc.want || got.RawQuery != tc.wantQuery {
				t.Fatalf("Normalize(%q) = %q ? %q; want %q ? %q", tc.in, got.Path, got.RawQuery, tc.want, tc.wantQuery)
			}
			again, err := Normalize(got.Path)
			if err != nil || again.Path != got.Path {
				t.Fatalf("not idempotent: Normalize(%q) = %q, %v", got.Path, again.Path, err)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	tests := map[string]struct {
		in   string
		want url.Values
	}{
		"none":            {in: "/a", want: nil},
		"one":             {in: "/a?limit=10", want: url.Values{"limit": {"10"}}},
		"repeated":        {in: "/a?x=1&x=2&y", want: url.Values{"x": {"1", "2"}, "y": {""}}},
		"decoded":         {in: "/a?q=a+b%2Fc", want: url.Values{"q": {"a b/c"}}},
		"semicolon data":  {in: "/a?x=1;y=2", want: url.Values{"x": {"1;y=2"}}},
		"empty pairs":     {in: "/a?&&x=1&", want: url.Values{"x": {"1"}}},
		"key only, equal": {in: "/a?x=", want: url.Values{"x": {""}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Query, tc.want) {
				t.Fatalf("query of %q = %v, want %v", tc.in, got.Query, tc.want)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []string
	}{
		"root":     {in: "/", want: []string{""}},
		"two":      {in: "/a/b", want: []string{"a", "b"}},
		"trailing": {in: "/a/b/", want: []string{"a", "b", ""}},
		"decoded":  {in: "/my%20file/%3A", want: []string{"my file", ":"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Segments(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Segments(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestPath(t *testing.T) {
	got, err := Path("/a/../b?x=1")
	if err != nil || got != "/b" {
		t.Fatalf("Path = %q, %v; want /b", got, err)
	}
	if _, err := Path("b"); !errors.Is(err, ErrNotAbsolute) {
		t.Fatalf("Path(b) error = %v, want ErrNotAbsolute", err)
	}
}

func TestCanonicalPathIsNotCopied(t *testing.T) {
	in := "/books-bought/2024"
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Path(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Path of a canonical path allocated %v times, want 0", allocs)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b", "/a/../b", "//a//b/", "/%2e%2e/admin", "/a%2fb", "/%61dmin",
		"/public/..;/admin", "/a//../b", "/b\xc3\xbccher", "/a?x=1&y=%20", "/%c0%ae",
		"/a/./b/../../c/", `/a\b`, "/a%zz", "/%7e", "/a b", "/..//..//a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		res, err := Normalize(in)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Normalize(%q) error %v is not an *Error", in, err)
			}
			return
		}
		p := res.Path
		again, err := Path(p)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not normalise: %v", in, p, err)
		}
		if again != p {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, p, again)
		}
		if p == "" || p[0] != '/' {
			t.Fatalf("Normalize(%q) = %q: not absolute", in, p)
		}
		_ = Segments(p)
	})
}

// TestValidQueryAgreesWithNormalize checks ValidQuery against the query
// parsing of Normalize on hand-picked and generated query strings.
func TestValidQueryAgreesWithNormalize(t *testing.T) {
	queries := []string{
		"", "a=1", "a=1&b=2", "a", "&&", "a=%41", "a=%4", "a=%", "%zz=1", "a=%4g", "a=%C3%A9",
		"a=1%2", "a=+", "a=\x01", "a=\x7f", "a=%%41", "%41%42%43", "a=1;b=2", "é=1",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "a=&%0fgZ+\x01\x7f;é"
	for range 5000 {
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		queries = append(queries, string(b))
	}
	for _, q := range queries {
		_, err := Normalize("/p?" + q)
		if got, want := ValidQuery(q), err == nil; got != want {
			t.Fatalf("ValidQuery(%q) = %v; Normalize says %v", q, got, err)
		}
	}
}
