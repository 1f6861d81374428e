package fuzz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"exfilguard/conf"
	"exfilguard/policy"
	"exfilguard/proxy/pipeline"
)

// captureUpstream records what the pipeline would send upstream.
type captureUpstream struct {
	req    *http.Request
	target pipeline.Target
}

func (c *captureUpstream) RoundTrip(req *http.Request, t pipeline.Target) (*http.Response, error) {
	c.req, c.target = req, t
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: http.NoBody, ContentLength: 0}, nil
}

// FuzzH2Request feeds HTTP/2-style requests (method, :authority, :path
// and one header field, as x/net/http2's server hands them to the
// pipeline inside a bumped tunnel for h.example:443) through the pipeline,
// which sanitises them. Properties: no panic; a forwarded request was
// judged on the CONNECT authority and on a canonical path its raw :path
// reduces to, carries that raw :path unchanged, goes to the CONNECT host,
// and carries no hop-by-hop, Proxy-* or identity field; anything else is
// answered by the proxy itself.
func FuzzH2Request(f *testing.F) {
	dir := f.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	write("exfilguard.toml", "listen = \"127.0.0.1:0\"\nca_dir = \"ca\"\nclients = \"c.toml\"\npolicies = \"p.toml\"\n")
	write("c.toml", "[[client]]\nname = \"all\"\ncidr = \"0.0.0.0/0\"\npolicies = [\"p\"]\nfallback = true\n")
	write("p.toml", "[[policy]]\nname = \"p\"\n\n[[policy.rule]]\naction = \"DENY\"\nurl_pattern = \"https://h.example/ok/secret/**\"\nstatus = 451\n\n"+
		"[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"https://h.example/ok/**\"\n")
	cfg, err := conf.Load(filepath.Join(dir, "exfilguard.toml"), conf.Options{})
	if err != nil {
		f.Fatal(err)
	}
	rs, err := policy.Compile(cfg)
	if err != nil {
		f.Fatal(err)
	}
	var snapshot atomic.Pointer[policy.Ruleset]
	snapshot.Store(rs)
	info := &pipeline.ConnInfo{Peer: netip.MustParseAddrPort("10.0.0.1:1234"), SessionID: "fuzz", FrontEnd: pipeline.BumpH2,
		ConnectHost: "h.example", ConnectPort: 443}

	for _, s := range [][4]string{
		{"GET", "h.example", "/ok/x", "accept"},
		{"GET", "h.example:443", "/ok/../ok/x?q=1", "x-forwarded-for"},
		{"POST", "H.EXAMPLE.", "/ok/%2e%2e/secret", "connection"},
		{"GET", "other.example", "/ok/x", "te"},
		{"get", "h.example", "/ok/secret/y", "proxy-authorization"},
		{"GET", "h.example", "*", "forwarded"},
		{"GET", "[::1]:443", "/ok//x", "x-real-ip"},
		{"GET", "h.example:444", "/ok/x", "keep-alive"},
	} {
		f.Add(s[0], s[1], s[2], s[3], "v")
	}
	f.Fuzz(func(t *testing.T, method, authority, path, field, value string) {
		if method == "" || !validToken(method) || !validToken(field) {
			return // x/net/http2 refuses these before the handler
		}
		up := &captureUpstream{}
		h := &pipeline.Handler{Policies: &snapshot, Upstream: up}
		r := httptest.NewRequest("GET", "https://placeholder/", nil)
		r.Method, r.Host, r.RequestURI = method, authority, path
		r.URL = &url.URL{Scheme: "https", Host: authority}
		r.Header = http.Header{http.CanonicalHeaderKey(field): {value}}
		r = r.WithContext(pipeline.NewContext(context.Background(), info))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if up.req == nil {
			if w.Code == 200 {
				t.Fatalf("200 without forwarding")
			}
			return
		}
		host, port, err := policy.ParseAuthority(authority, false)
		if err != nil || strings.TrimSuffix(host, ".") != "h.example" || port != 0 && port != 443 {
			t.Fatalf("forwarded a request for authority %q", authority)
		}
		canonical, err := policy.CanonicalPath(path)
		// "/ok/secret/**" covers /ok/secret/ and below, not /ok/secret
		// itself (SPEC §4: "**" is any depth after the slash).
		if err != nil || !strings.HasPrefix(canonical, "/ok/") || strings.HasPrefix(canonical, "/ok/secret/") {
			t.Fatalf("forwarded %q (canonical %q, %v), which the policy denies", path, canonical, err)
		}
		if up.req.RequestURI != path || up.target.Host != "h.example" || up.target.Port != 443 || up.target.Scheme != "https" {
			t.Fatalf("sent %q to %+v, want %q to h.example:443", up.req.RequestURI, up.target, path)
		}
		for k := range up.req.Header {
			lk := strings.ToLower(k)
			switch {
			case lk == "connection", lk == "keep-alive", lk == "proxy-connection", lk == "transfer-encoding", lk == "upgrade",
				lk == "forwarded", lk == "x-real-ip", lk == "expect",
				strings.HasPrefix(lk, "proxy-"), strings.HasPrefix(lk, "x-forwarded-"), strings.HasSuffix(lk, "-client-ip"):
				t.Fatalf("forwarded header %q", k)
			case lk == "te" && up.req.Header.Get("Te") != "trailers":
				t.Fatalf("forwarded TE %q", up.req.Header.Get("Te"))
			}
		}
	})
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
