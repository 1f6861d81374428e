package fuzz

import (
	"errors"
	"strings"
	"testing"

	"exfilguard/conf"
	"exfilguard/policy"
)

// FuzzURLPattern checks that every url_pattern conf.ParseURLPattern
// accepts compiles (policy.CompilePattern) and that the matcher matches a
// URL built from the pattern's own parts (wildcards filled in, a trailing
// dot and upper case added to the host), but not that URL with another
// scheme or, for a fixed port, another port. Any other host and path are
// matched too, only to look for panics and non-determinism.
func FuzzURLPattern(f *testing.F) {
	f.Add("https://*.example.com/api/**", "a.example.com", "/api/x")
	f.Add("http://[2001:db8::1]:8080/a/*/b", "2001:0db8::1", "/a/x/b")
	f.Fuzz(func(t *testing.T, pattern, host, path string) {
		p, err := conf.ParseURLPattern(pattern)
		if err != nil {
			return
		}
		m, err := policy.CompilePattern(p)
		if err != nil {
			t.Fatalf("CompilePattern(%q) = %v; conf accepted the pattern", pattern, err)
		}
		if m.String() != pattern {
			t.Errorf("String() = %q, want %q", m.String(), pattern)
		}

		h, port, u := literalURL(p)
		if len(h) > 253 {
			return // filling in "**" made a name longer than DNS allows
		}
		if !m.Match(p.Scheme, h, port, u) {
			t.Errorf("pattern %q does not match %s://%s:%d%s", pattern, p.Scheme, h, port, u)
		}
		if !p.Addr.IsValid() && len(h) < 253 {
			if up := strings.ToUpper(h) + "."; !m.Match(p.Scheme, up, port, u) {
				t.Errorf("pattern %q does not match host %q", pattern, up)
			}
		}
		other := "http"
		if p.Scheme == "http" {
			other = "https"
		}
		if m.Match(other, h, port, u) {
			t.Errorf("pattern %q matches scheme %s", pattern, other)
		}
		if !p.AnyPort && m.Match(p.Scheme, h, port+1, u) {
			t.Errorf("pattern %q matches port %d", pattern, port+1)
		}

		if cp, err := policy.CanonicalPath(path); err == nil {
			path = cp
		}
		if m.Match(p.Scheme, host, 443, path) != m.Match(p.Scheme, host, 443, path) {
			t.Errorf("pattern %q: Match(%q, %q) is not deterministic", pattern, host, path)
		}
	})
}

// literalURL builds a host, port and path that p must match: "*" labels
// and path stars become letters, "**" labels and segments become two.
func literalURL(p *conf.URLPattern) (host string, port uint16, path string) {
	switch {
	case p.Addr.IsValid():
		host = p.Addr.String()
	case p.Host == "*":
		host = "any.example"
	default:
		labels := strings.Split(p.Host, ".")
		for i, l := range labels {
			switch l {
			case "*":
				labels[i] = "x"
			case "**":
				labels[i] = "y.z"
			}
		}
		host = strings.Join(labels, ".")
	}
	port = p.Port
	if p.AnyPort {
		port = 12345
	}
	path = "/any/thing"
	if p.Path != "" {
		segs := strings.Split(p.Path[1:], "/")
		for i, s := range segs {
			if s == "**" {
				segs[i] = "a/b"
			} else {
				segs[i] = strings.ReplaceAll(s, "*", "q")
			}
		}
		path = "/" + strings.Join(segs, "/")
	}
	return host, port, path
}

// FuzzCanonicalPath checks policy.CanonicalPath: it never panics; it fails
// only with a *policy.PathError; its output is "*" or starts with "/",
// has no query and no "." or ".." segment, and is its own canonical path;
// a path with nothing to change comes back unchanged.
func FuzzCanonicalPath(f *testing.F) {
	f.Add("/ok/../secret?x=1")
	f.Add("/ok/%2e%2e/secret")
	f.Fuzz(func(t *testing.T, target string) {
		out, err := policy.CanonicalPath(target)
		if err != nil {
			var pe *policy.PathError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("CanonicalPath(%q) error %v is not a *PathError", target, err)
			}
			return
		}
		if out != "*" && !strings.HasPrefix(out, "/") {
			t.Fatalf("CanonicalPath(%q) = %q: neither * nor /…", target, out)
		}
		if strings.ContainsAny(out, "?#\\") {
			t.Fatalf("CanonicalPath(%q) = %q contains ? # or \\", target, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("CanonicalPath(%q) = %q has a %q segment", target, out, seg)
			}
		}
		again, err := policy.CanonicalPath(out)
		if err != nil || again != out {
			t.Fatalf("CanonicalPath(%q) = %q, but CanonicalPath(%q) = %q, %v", target, out, out, again, err)
		}
		raw, _, _ := strings.Cut(target, "?")
		if raw != "" && raw != out && !hasDotSegment(raw) {
			t.Fatalf("CanonicalPath(%q) = %q changed a path without dot segments", target, out)
		}
		if len(out) > len(raw) && !(raw == "" && out == "/") {
			t.Fatalf("CanonicalPath(%q) = %q grew the path", target, out)
		}
	})
}

func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
