package http1

import (
	"strings"
	"testing"
)

func TestParseAbsoluteForm(t *testing.T) {
	tests := []struct {
		method, target string
		want           Target
	}{
		{"GET", "http://example.com/a?b=c", Target{"http", "example.com", "example.com", 80, "/a?b=c"}},
		{"GET", "HTTPS://Example.COM:8443/", Target{"https", "Example.COM:8443", "Example.COM", 8443, "/"}},
		{"GET", "https://example.com:443/x", Target{"https", "example.com:443", "example.com", 443, "/x"}},
		{"GET", "http://example.com", Target{"http", "example.com", "example.com", 80, "/"}},
		{"GET", "http://example.com?q=1", Target{"http", "example.com", "example.com", 80, "/?q=1"}},
		{"OPTIONS", "http://example.com:8001", Target{"http", "example.com:8001", "example.com", 8001, "*"}},
		{"OPTIONS", "http://example.com/", Target{"http", "example.com", "example.com", 80, "/"}},
		{"OPTIONS", "http://example.com?x", Target{"http", "example.com", "example.com", 80, "/?x"}},
		{"GET", "http://[2001:db8::1]:8080/p", Target{"http", "[2001:db8::1]:8080", "2001:db8::1", 8080, "/p"}},
		{"GET", "http://[::ffff:127.0.0.1]/", Target{"http", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1", 80, "/"}},
		{"GET", "http://10.0.0.1/", Target{"http", "10.0.0.1", "10.0.0.1", 80, "/"}},
		{"GET", "http://0.0.0.0/", Target{"http", "0.0.0.0", "0.0.0.0", 80, "/"}},
		{"GET", "http://example.com./", Target{"http", "example.com.", "example.com.", 80, "/"}},
		{"GET", "http://_dmarc.example.com/", Target{"http", "_dmarc.example.com", "_dmarc.example.com", 80, "/"}},
		{"GET", "http://1e100.net/", Target{"http", "1e100.net", "1e100.net", 80, "/"}},
		{"GET", "http://localhost/%2e%2e/", Target{"http", "localhost", "localhost", 80, "/%2e%2e/"}},
	}
	for _, tt := range tests {
		got, err := ParseAbsoluteForm(tt.method, tt.target)
		if err != nil || got != tt.want {
			t.Errorf("ParseAbsoluteForm(%q, %q) = %+v, %v; want %+v", tt.method, tt.target, got, err, tt.want)
		}
	}
}

// badHosts are refused in every form.
var badHosts = []string{
	"",
	"0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "127.1", "127.0.1", "2130706433", "017700000001", "0x7f000001",
	"127.0.0.01", "256.0.0.1", "1.2.3.4.5", "1.2.3.4.", "example.123", "a.0x1", "a.0X", "0x",
	"exa mple.com", "exa%6dple.com", "ex\\ample.com", "example..com", ".example.com", "example.com..", ".",
	"caf\xc3\xa9.example", "a*b.example", "user@example.com",
	strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "aa",
	"[::1", "[fe80::1%25eth0]", "[fe80::1%eth0]", "[v1.x]", "[127.0.0.1]", "[::g]", "[]", "::1", "2001:db8::1",
}

func TestParseAbsoluteFormRejects(t *testing.T) {
	targets := []string{
		"/origin/form", "*", "example.com:443", "ftp://example.com/", "http:/example.com/", "http:example.com",
		"http://", "http:///x", "http://example.com#frag", "http://example.com/a#b", "http://user:pw@example.com/",
		"http://@example.com/", "http://example.com:/", "http://example.com:0/", "http://example.com:65536/",
		"http://example.com:080/", "http://example.com:+80/", "http://example.com:8a/", "http://example.com:80:80/",
		"http://[::1]x/", "http://example.com/\x7f", "http://example.com/ a", "http://ex\tample.com/",
	}
	for _, h := range badHosts {
		targets = append(targets, "http://"+h+"/", "https://"+h+":443/")
	}
	for _, target := range targets {
		if got, err := ParseAbsoluteForm("GET", target); status(err) != 400 {
			t.Errorf("ParseAbsoluteForm(%q) = %+v, %v; want status 400", target, got, err)
		}
	}
}

func TestParseAuthorityForm(t *testing.T) {
	tests := []struct {
		target string
		want   Target
	}{
		{"example.com:443", Target{Authority: "example.com:443", Host: "example.com", Port: 443}},
		{"Example.COM:1", Target{Authority: "Example.COM:1", Host: "Example.COM", Port: 1}},
		{"[2001:db8::1]:65535", Target{Authority: "[2001:db8::1]:65535", Host: "2001:db8::1", Port: 65535}},
		{"192.168.1.1:22", Target{Authority: "192.168.1.1:22", Host: "192.168.1.1", Port: 22}},
		{"host.:443", Target{Authority: "host.:443", Host: "host.", Port: 443}},
	}
	for _, tt := range tests {
		got, err := ParseAuthorityForm(tt.target)
		if err != nil || got != tt.want {
			t.Errorf("ParseAuthorityForm(%q) = %+v, %v; want %+v", tt.target, got, err, tt.want)
		}
	}
}

func TestParseAuthorityFormRejects(t *testing.T) {
	targets := []string{
		"example.com", "example.com:", "example.com:0", "example.com:65536", "example.com:99999", "example.com:0443",
		"example.com:https", "example.com:-1", "example.com: 443", " example.com:443", "example.com:443 ",
		"user@example.com:443", "user:pw@example.com:443", "example.com:443/", "example.com:443/path",
		"example.com:443?q", "example.com:443#f", "http://example.com:443", "[::1]", "[::1]:", "::1:443",
		"[fe80::1%25eth0]:443", "example.com:443:443",
	}
	for _, h := range badHosts {
		targets = append(targets, h+":443")
	}
	for _, target := range targets {
		if got, err := ParseAuthorityForm(target); status(err) != 400 {
			t.Errorf("ParseAuthorityForm(%q) = %+v, %v; want status 400", target, got, err)
		}
	}
}

func TestSplitAuthority(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port uint16
	}{
		{"example.com", "example.com", 0},
		{"example.com:8080", "example.com", 8080},
		{"[::1]", "::1", 0},
		{"[::1]:443", "::1", 443},
		{"1.2.3.4", "1.2.3.4", 0},
	}
	for _, tt := range tests {
		host, port, err := SplitAuthority(tt.in)
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("SplitAuthority(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
	for _, h := range badHosts {
		if host, port, err := SplitAuthority(h); status(err) != 400 {
			t.Errorf("SplitAuthority(%q) = %q, %d, %v; want status 400", h, host, port, err)
		}
	}
}
