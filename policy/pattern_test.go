package policy

import (
	"testing"

	"exfilguard/conf"
)

func TestPatternMatch(t *testing.T) {
	type req struct {
		scheme, host string
		port         uint16
		path         string
	}
	for _, c := range []struct {
		name    string
		pattern string
		match   []req
		noMatch []req
	}{
		{
			name:    "port absent means the scheme default only",
			pattern: "https://example.com",
			match:   []req{{"https", "example.com", 443, "/x"}, {"https", "example.com", 0, "/"}},
			noMatch: []req{{"https", "example.com", 8443, "/x"}, {"https", "example.com", 80, "/x"}, {"http", "example.com", 443, "/x"}},
		},
		{
			name:    "http default port",
			pattern: "http://example.com",
			match:   []req{{"http", "example.com", 80, "/"}},
			noMatch: []req{{"http", "example.com", 443, "/"}, {"http", "example.com", 8080, "/"}},
		},
		{
			name:    "any port",
			pattern: "https://example.com:*",
			match:   []req{{"https", "example.com", 443, "/"}, {"https", "example.com", 8443, "/"}, {"https", "example.com", 1, "/"}},
		},
		{
			name:    "explicit port",
			pattern: "https://example.com:8443/",
			match:   []req{{"https", "example.com", 8443, "/"}},
			noMatch: []req{{"https", "example.com", 443, "/"}},
		},
		{
			name:    "exact host ignores case and one trailing dot",
			pattern: "https://example.com",
			match:   []req{{"https", "EXAMPLE.com.", 443, "/"}, {"https", "Example.COM", 443, "/"}},
			noMatch: []req{{"https", "example.com..", 443, "/"}, {"https", "www.example.com", 443, "/"}, {"https", "example.co", 443, "/"}, {"https", "example.com.evil", 443, "/"}},
		},
		{
			name:    "star is exactly one label",
			pattern: "https://*.example.com",
			match:   []req{{"https", "a.example.com", 443, "/"}, {"https", "A.Example.Com.", 443, "/"}},
			noMatch: []req{{"https", "example.com", 443, "/"}, {"https", "a.b.example.com", 443, "/"}, {"https", "aexample.com", 443, "/"}, {"https", ".example.com", 443, "/"}},
		},
		{
			name:    "double star is one or more labels",
			pattern: "https://**.example.com",
			match:   []req{{"https", "a.example.com", 443, "/"}, {"https", "a.b.example.com", 443, "/"}, {"https", "x.y.z.example.com.", 443, "/"}},
			noMatch: []req{{"https", "example.com", 443, "/"}, {"https", "a.example.org", 443, "/"}, {"https", "a..example.com", 443, "/"}},
		},
		{
			name:    "wildcards in the middle",
			pattern: "https://api.*.example.com",
			match:   []req{{"https", "api.eu.example.com", 443, "/"}},
			noMatch: []req{{"https", "api.example.com", 443, "/"}, {"https", "api.a.b.example.com", 443, "/"}},
		},
		{
			name:    "double star twice needs two labels",
			pattern: "https://**.**.com",
			match:   []req{{"https", "a.b.com", 443, "/"}, {"https", "a.b.c.com", 443, "/"}},
			noMatch: []req{{"https", "a.com", 443, "/"}},
		},
		{
			name:    "double star then literal then star",
			pattern: "https://**.cdn.*",
			match:   []req{{"https", "x.cdn.net", 443, "/"}, {"https", "a.cdn.b.cdn.net", 443, "/"}},
			noMatch: []req{{"https", "cdn.net", 443, "/"}, {"https", "x.cdn.a.b", 443, "/"}},
		},
		{
			name:    "label patterns never match IP literals",
			pattern: "https://*.*.*.*",
			match:   []req{{"https", "a.b.c.d", 443, "/"}},
			noMatch: []req{{"https", "10.0.0.1", 443, "/"}, {"https", "0x7f.0.0.1", 443, "/"}},
		},
		{
			name:    "star alone is any host",
			pattern: "https://*",
			match:   []req{{"https", "example.com", 443, "/"}, {"https", "10.0.0.1", 443, "/"}, {"https", "2001:db8::1", 443, "/"}, {"https", "a.b.c", 443, "/"}},
			noMatch: []req{{"https", "example.com", 80, "/"}},
		},
		{
			name:    "IPv6 literal compared as an address",
			pattern: "https://[2001:db8::1]",
			match:   []req{{"https", "2001:0db8:0:0::1", 443, "/"}, {"https", "2001:DB8::1", 443, "/"}, {"https", "[2001:db8::1]", 443, "/"}},
			noMatch: []req{{"https", "2001:db8::2", 443, "/"}, {"https", "2001:db8::1%eth0", 443, "/"}},
		},
		{
			name:    "IPv4 literal; a mapped request host is the same address",
			pattern: "http://10.0.0.1:8080",
			match:   []req{{"http", "10.0.0.1", 8080, "/"}, {"http", "::ffff:10.0.0.1", 8080, "/"}, {"http", "[::ffff:10.0.0.1]", 8080, "/"}, {"http", "10.0.0.1.", 8080, "/"}},
			noMatch: []req{{"http", "10.0.0.01", 8080, "/"}, {"http", "167772161", 8080, "/"}, {"http", "10.1", 8080, "/"}, {"http", "0xa.0.0.1", 8080, "/"}},
		},
		{
			name:    "no path is any path",
			pattern: "https://h",
			match:   []req{{"https", "h", 443, "/"}, {"https", "h", 443, "/a/b"}, {"https", "h", 443, "*"}},
		},
		{
			name:    "double star path",
			pattern: "https://h/api/**",
			match:   []req{{"https", "h", 443, "/api/"}, {"https", "h", 443, "/api/x"}, {"https", "h", 443, "/api/x/y"}, {"https", "h", 443, "/api//"}},
			noMatch: []req{{"https", "h", 443, "/api"}, {"https", "h", 443, "/apix/y"}, {"https", "h", 443, "/API/x"}, {"https", "h", 443, "*"}, {"https", "h", 443, "/%61pi/x"}},
		},
		{
			name:    "root double star matches every path and asterisk-form",
			pattern: "https://h/**",
			match:   []req{{"https", "h", 443, "/"}, {"https", "h", 443, "/a/b/c"}, {"https", "h", 443, "*"}},
		},
		{
			name:    "exact path",
			pattern: "https://h/privacy-policy/",
			match:   []req{{"https", "h", 443, "/privacy-policy/"}},
			noMatch: []req{{"https", "h", 443, "/privacy-policy"}, {"https", "h", 443, "/privacy-policy/x"}},
		},
		{
			name:    "root path only",
			pattern: "https://h/",
			match:   []req{{"https", "h", 443, "/"}},
			noMatch: []req{{"https", "h", 443, "/a"}, {"https", "h", 443, "*"}},
		},
		{
			name:    "star segment",
			pattern: "https://h/users/*/profile",
			match:   []req{{"https", "h", 443, "/users/42/profile"}, {"https", "h", 443, "/users//profile"}},
			noMatch: []req{{"https", "h", 443, "/users/1/2/profile"}, {"https", "h", 443, "/users/42/profile/"}},
		},
		{
			name:    "star within a segment",
			pattern: "https://h/files/report-*.pdf",
			match:   []req{{"https", "h", 443, "/files/report-.pdf"}, {"https", "h", 443, "/files/report-2024.pdf"}},
			noMatch: []req{{"https", "h", 443, "/files/report-2024.pdf.exe"}, {"https", "h", 443, "/files/x/report-1.pdf"}, {"https", "h", 443, "/files/report-a/b.pdf"}},
		},
		{
			name:    "double star in the middle is one or more segments",
			pattern: "https://h/a/**/b",
			match:   []req{{"https", "h", 443, "/a//b"}, {"https", "h", 443, "/a/x/b"}, {"https", "h", 443, "/a/x/y/b"}, {"https", "h", 443, "/a/b/b"}},
			noMatch: []req{{"https", "h", 443, "/a/b"}, {"https", "h", 443, "/a/x/b/c"}},
		},
		{
			name:    "double star then glob",
			pattern: "https://h/**/*.json",
			// "**" is at least one segment, so "/x.json" has too few.
			match:   []req{{"https", "h", 443, "/a/x.json"}, {"https", "h", 443, "/a/b/c.json"}, {"https", "h", 443, "//x.json"}},
			noMatch: []req{{"https", "h", 443, "/x.json"}, {"https", "h", 443, "/a/b/c.jsonx"}, {"https", "h", 443, "/json"}},
		},
		{
			name:    "prefix with a double star and wildcards before",
			pattern: "https://h/v*/**",
			match:   []req{{"https", "h", 443, "/v1/"}, {"https", "h", 443, "/v2/a/b"}},
			noMatch: []req{{"https", "h", 443, "/v1"}, {"https", "h", 443, "/x/a"}},
		},
		{
			name:    "glob with several stars backtracks",
			pattern: "https://h/*a*b*c",
			match:   []req{{"https", "h", 443, "/abc"}, {"https", "h", 443, "/xaxbxcxc"}, {"https", "h", 443, "/aabbcc"}},
			noMatch: []req{{"https", "h", 443, "/acb"}, {"https", "h", 443, "/abcx"}},
		},
		{
			name:    "paths are case-sensitive",
			pattern: "http://h/Admin",
			match:   []req{{"http", "h", 80, "/Admin"}},
			noMatch: []req{{"http", "h", 80, "/admin"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := compiled(t, c.pattern)
			for _, r := range c.match {
				if !p.Match(r.scheme, r.host, r.port, r.path) {
					t.Errorf("%s: Match(%v) = false, want true", c.pattern, r)
				}
			}
			for _, r := range c.noMatch {
				if p.Match(r.scheme, r.host, r.port, r.path) {
					t.Errorf("%s: Match(%v) = true, want false", c.pattern, r)
				}
			}
		})
	}
}

func TestCompilePatternRejectsOddInput(t *testing.T) {
	for _, p := range []*conf.URLPattern{
		nil,
		{Raw: "ftp://h", Scheme: "ftp", Host: "h", Port: 21},
		{Raw: "https://", Scheme: "https", Host: "", Port: 443},
		{Raw: "https://h", Scheme: "https", Host: "h"}, // no port, not AnyPort
		{Raw: "https://a*b", Scheme: "https", Host: "a*b", Port: 443},
		{Raw: "https://a..b", Scheme: "https", Host: "a..b", Port: 443},
		{Raw: "https://h x", Scheme: "https", Host: "h x", Port: 443},
		{Raw: "https://h/a**", Scheme: "https", Host: "h", Port: 443, Path: "/a**"},
		{Raw: "https://hpath", Scheme: "https", Host: "h", Port: 443, Path: "path"},
		{Raw: "https://h/../x", Scheme: "https", Host: "h", Port: 443, Path: "/../x"},
	} {
		if cp, err := CompilePattern(p); err == nil {
			t.Errorf("CompilePattern(%+v) = %v, nil; want an error", p, cp)
		}
	}
}

func TestHostLabelsAllocs(t *testing.T) {
	p := compiled(t, "https://**.example.com/api/**/x")
	allocs := testing.AllocsPerRun(100, func() {
		p.Match("https", "a.b.c.example.com", 443, "/api/v1/v2/x")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times, want 0", allocs)
	}
}
