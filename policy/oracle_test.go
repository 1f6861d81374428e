package policy

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"exfilguard/conf"
)

// The matchers use no regular expressions; the tests check them against
// the original's regex translation (reference §3.3) on random input.

// pathRegexp is the original's path translation: literal text escaped,
// '*' → [^/]*, a whole "**" segment → .*, joined with '/'.
func pathRegexp(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(pat[1:], "/") {
		b.WriteString("/")
		if seg == "**" {
			b.WriteString(".*")
			continue
		}
		for j, part := range strings.Split(seg, "*") {
			if j > 0 {
				b.WriteString("[^/]*")
			}
			b.WriteString(regexp.QuoteMeta(part))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// hostRegexp: '*' is one label, '**' one or more, joined with '.'.
func hostRegexp(pat string) *regexp.Regexp {
	var parts []string
	for _, l := range strings.Split(pat, ".") {
		switch l {
		case "*":
			parts = append(parts, `[^.]+`)
		case "**":
			parts = append(parts, `[^.]+(?:\.[^.]+)*`)
		default:
			parts = append(parts, regexp.QuoteMeta(l))
		}
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `\.`) + `$`)
}

func pick(r *rand.Rand, s ...string) string { return s[r.IntN(len(s))] }

func TestPathMatchesRegexpOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	segPat := func() string {
		return pick(r, "a", "b", "ab", "*", "**", "a*", "*b", "a*b", "", "*a*")
	}
	seg := func() string { return pick(r, "a", "b", "ab", "ba", "aab", "", "abab", "x") }
	for i := 0; i < 3000; i++ {
		var pb strings.Builder
		for n := 1 + r.IntN(4); n > 0; n-- {
			pb.WriteString("/" + segPat())
		}
		pat := pb.String()
		p := compiled(t, "https://h"+pat)
		re := pathRegexp(pat)
		for j := 0; j < 30; j++ {
			var b strings.Builder
			for n := 1 + r.IntN(5); n > 0; n-- {
				b.WriteString("/" + seg())
			}
			path := b.String()
			if got, want := p.Match("https", "h", 443, path), re.MatchString(path); got != want {
				t.Fatalf("pattern %s: Match(%q) = %v, regexp %s says %v", pat, path, got, re, want)
			}
		}
	}
}

func TestHostMatchesRegexpOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		var labels []string
		for n := 1 + r.IntN(4); n > 0; n-- {
			labels = append(labels, pick(r, "a", "b", "*", "**", "a-b"))
		}
		pat := strings.Join(labels, ".")
		p := compiled(t, "https://"+pat)
		re := hostRegexp(pat)
		for j := 0; j < 30; j++ {
			var hl []string
			for n := 1 + r.IntN(5); n > 0; n-- {
				hl = append(hl, pick(r, "a", "b", "A", "a-b", "c"))
			}
			host := strings.Join(hl, ".")
			// "*" alone is any host, not one label.
			want := pat == "*" || re.MatchString(strings.ToLower(host))
			if got := p.Match("https", host, 443, "/"); got != want {
				t.Fatalf("pattern %s: Match(%q) = %v, regexp %s says %v", pat, host, got, re, want)
			}
		}
	}
}

// TestMayMatchIsNecessary: the inlined prefilter of Decide never rejects
// a rule that check accepts, so Decide and Explain always agree.
func TestMayMatchIsNecessary(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	hosts := []string{"a.example.com", "A.Example.COM.", "b.a.example.com", "example.com", "10.0.0.1", "2001:db8::1", "[2001:db8::1]", "x", "0x7f.1", ""}
	patterns := []string{
		"https://a.example.com", "http://a.example.com:*/x", "https://*.example.com/**", "https://**.example.com:8443",
		"https://*", "http://10.0.0.1", "https://[2001:db8::1]:*", "http://*.*.*/a/*", "https://example.com/",
	}
	methods := [][]string{nil, {"GET"}, {"POST", "PROPFIND"}, {"CONNECT"}}
	requestMethods := []string{"GET", "POST", "PROPFIND", "get", "CONNECT", "DELETE"}
	var rules []conf.Rule
	for _, p := range append(patterns, "") {
		for _, m := range methods {
			cr := allow(t, p, m...)
			if len(m) == 1 && m[0] == "CONNECT" {
				cr = tunnel(t, p)
			}
			rules = append(rules, cr)
		}
	}
	rs := oneClient(t, policyOf("p", rules...))
	for i := 0; i < 20000; i++ {
		var v view
		v.init(pick(r, requestMethods...), pick(r, "http", "https", "ftp"), pick(r, hosts...),
			uint16(pick2(r, 0, 80, 443, 8443)), pick(r, "/", "/x", "/a/b", "*"))
		for j := range rs.policies[0].rules {
			rl := &rs.policies[0].rules[j]
			if !rl.mayMatch(&v) && rl.check(&v) == matchOK {
				t.Fatalf("rule %s: mayMatch false but check matches %+v", rl.info.id, v)
			}
			if st, _ := rl.connectStep(&v); !rl.mayMatchAuthority(&v) && st != stepNoMatch {
				t.Fatalf("rule %s: mayMatchAuthority false but connectStep %v for %+v", rl.info.id, st, v)
			}
		}
	}
}

func pick2(r *rand.Rand, n ...int) int { return n[r.IntN(len(n))] }

// TestRuleSize guards the layout that makes Decide's loop fast: what every
// rule check reads fits in one cache line.
func TestRuleSize(t *testing.T) {
	if n := unsafe.Sizeof(rule{}); n > 64 {
		t.Errorf("sizeof(rule) = %d, want at most 64", n)
	}
}
