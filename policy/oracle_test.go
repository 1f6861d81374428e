package policy

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
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
