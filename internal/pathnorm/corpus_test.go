package pathnorm

import (
	"regexp"
	"strings"
	"testing"
)

// attacks are request targets that try to reach /admin past a policy that
// allows only the /public prefix, by spellings that some server could read
// as /admin.
var attacks = []string{
	"/admin",
	"/admin/",
	"/admin?x=/public",
	"/./admin",
	"//admin",
	"///admin",
	"/%61dmin",
	"/%61%64%6d%69%6e",
	"/ADMIN",
	"/Admin",
	"/admin%2fx",
	"/admin%2Fx",
	"/%2e%2e/admin",
	"/%2E%2E/admin",
	"/.%2e/admin",
	"/%2e./admin",
	"/public/../admin",
	"/public/./../admin",
	"/public/%2e%2e/admin",
	"/public/%2E%2E/admin",
	"/public/.%2e/admin",
	"/public/%2e%2e%2fadmin",
	"/public%2f..%2fadmin",
	"/public%2F%2E%2E%2Fadmin",
	"/public/..%2fadmin",
	"/public/..%5cadmin",
	`/public\..\admin`,
	`/public/..\admin`,
	"/public/..;/admin",
	"/public/.;/../admin",
	"/public/..;x/admin",
	"/public/%2e%2e;/admin",
	"/public/..%3b/admin",
	"/public;/../admin",
	"/public//../admin",
	"/public/x//../../admin",
	"/public/x/../../admin",
	"/public/%2e%2e/%2e%2e/admin",
	"/public/%252e%252e/admin",
	"/public/%c0%ae%c0%ae/admin",
	"/public/%c0%af../admin",
	"/public/%e0%80%ae%e0%80%ae/admin",
	"/public/%u002e%u002e/admin",
	"/public/..%00/admin",
	"/public/%00/../admin",
	"/public\x00/../admin",
	"/public/..%0d%0a/admin",
	"/public/.. /admin",
	"/public#/../admin",
	"/admin;x",
	"/admin;/public",
	"/admin/..;/public",
	"/admin/%2e%2e/public",
	"/%2e/admin",
	"/public/%2e%2e%2e/admin",
	"/public/...%2f/admin",
	"/public\t/../admin",
	"/public/%%32%65%%32%65/admin",
	"/public/%%2e/admin",
}

// allowedPaths must stay allowed: normalisation must not break ordinary
// requests.
var allowedPaths = []string{
	"/public",
	"/public/",
	"/public/index.html",
	"/public/a/../b",
	"/public/%7Euser",
	"/public/my%20file",
	"/public?next=/admin",
	"/public//x",
	"/public/./x",
	"/x/../public/y",
}

// publicOnly is the access policy: an SMI pathRegex "/public" anchored at
// the start, as meshward applies it by default.
var publicOnly = regexp.MustCompile("^(?:/public)")

// allowed is the decision of the policy on a request target.
func allowed(target string) bool {
	res, err := Normalize(target)
	return err == nil && publicOnly.MatchString(res.Path)
}

// lenientReadings are paths that a careless server might derive from a
// request target: decoding once (or twice), treating "\" as "/",
// stripping ";" parameters, merging slashes before or after removing dot
// segments, folding case.
func lenientReadings(target string) []string {
	p, _, _ := strings.Cut(target, "?")
	p, _, _ = strings.Cut(p, "#")
	once := lenientDecode(p)
	var out []string
	for _, s := range []string{p, once, lenientDecode(once)} {
		s = strings.ReplaceAll(s, `\`, "/")
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, s)
		for _, params := range []bool{false, true} {
			t := s
			if params {
				t = stripParams(t)
			}
			out = append(out, removeDots(t, false), removeDots(t, true))
		}
	}
	for i := range out {
		out[i] = strings.ToLower(out[i])
	}
	return out
}

// lenientDecode percent-decodes what it can and leaves the rest, also
// reading overlong UTF-8 forms of "." and "/" and %uXXXX escapes.
func lenientDecode(s string) string {
	r := strings.NewReplacer(
		"%c0%ae", ".", "%C0%AE", ".", "%c0%af", "/", "%C0%AF", "/",
		"%e0%80%ae", ".", "%E0%80%AE", ".", "%u002e", ".", "%u002f", "/",
	)
	s = r.Replace(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func stripParams(s string) string {
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		segs[i], _, _ = strings.Cut(seg, ";")
	}
	return strings.Join(segs, "/")
}

// removeDots removes dot segments (treating segments that are only dots
// and spaces as dot segments), merging slashes first when mergeFirst.
func removeDots(s string, mergeFirst bool) string {
	merge := func(s string) string {
		for strings.Contains(s, "//") {
			s = strings.ReplaceAll(s, "//", "/")
		}
		return s
	}
	if mergeFirst {
		s = merge(s)
	}
	var stack []string
	for seg := range strings.SplitSeq(strings.TrimPrefix(s, "/"), "/") {
		switch strings.TrimRight(seg, " ") {
		case ".":
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		default:
			stack = append(stack, seg)
		}
	}
	return merge("/" + strings.Join(stack, "/"))
}

func reachesAdmin(target string) bool {
	for _, r := range lenientReadings(target) {
		if r == "/admin" || strings.HasPrefix(r, "/admin/") || strings.HasPrefix(r, "/admin;") {
			return true
		}
	}
	return false
}

// TestNoBypass proves that no attack target is allowed by a policy that
// allows only /public, while ordinary /public requests stay allowed.
func TestNoBypass(t *testing.T) {
	reaching := 0
	for _, a := range attacks {
		if !reachesAdmin(a) {
			continue
		}
		reaching++
		if allowed(a) {
			res, _ := Normalize(a)
			t.Errorf("bypass: %q is allowed (normalised to %q) but a server may read it as /admin", a, res.Path)
		}
	}
	if reaching < len(attacks)*3/4 {
		t.Errorf("only %d of %d attacks reach /admin under a lenient reading: the corpus or the readings are wrong", reaching, len(attacks))
	}
	for _, p := range allowedPaths {
		if !allowed(p) {
			res, err := Normalize(p)
			t.Errorf("%q is denied (normalised to %q, %v), want allowed", p, res.Path, err)
		}
		if reachesAdmin(p) {
			t.Errorf("allowed path %q reads as /admin", p)
		}
	}
}

// TestAttacksThatNormaliseToAdmin checks that the spellings of /admin that
// are valid paths normalise to exactly the path a deny rule for /admin sees.
func TestAttacksThatNormaliseToAdmin(t *testing.T) {
	for _, a := range []string{"/./admin", "//admin", "/%61dmin", "/../admin", "/public/../admin", "/public/./x/../../admin"} {
		res, err := Normalize(a)
		if err != nil || res.Path != "/admin" {
			t.Errorf("Normalize(%q) = %q, %v; want /admin", a, res.Path, err)
		}
	}
}
