package http1

import (
	"strings"
	"testing"
)

func TestIsHopByHop(t *testing.T) {
	for _, name := range []string{"Connection", "keep-alive", "Proxy-Connection", "Proxy-Authenticate",
		"proxy-authorization", "TE", "Trailer", "Transfer-Encoding", "UPGRADE", "Proxy-Anything"} {
		if !IsHopByHop(name) || !IsHopByHop([]byte(name)) {
			t.Errorf("IsHopByHop(%q) = false", name)
		}
	}
	for _, name := range []string{"Host", "Content-Length", "Trailers", "X-Connection", "Proxy", "TEs", "Upgrade-Insecure-Requests"} {
		if IsHopByHop(name) {
			t.Errorf("IsHopByHop(%q) = true", name)
		}
	}
}

func TestIsIdentity(t *testing.T) {
	for _, name := range []string{"Forwarded", "X-Forwarded-For", "x-forwarded-proto", "X-Real-IP", "X-Client-IP",
		"X-Cluster-Client-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "Fly-Client-IP", "anything-client-ip"} {
		if !IsIdentity(name) {
			t.Errorf("IsIdentity(%q) = false", name)
		}
	}
	for _, name := range []string{"Host", "X-Forwarded", "Client-IP-Thing", "X-Real-IPs", "Forwarded-For"} {
		if IsIdentity(name) {
			t.Errorf("IsIdentity(%q) = true", name)
		}
	}
}

func TestInConnection(t *testing.T) {
	if !InConnection("close, X-Secret ,keep-alive", "x-secret") {
		t.Error("InConnection did not find x-secret")
	}
	if InConnection("close, X-Secret2", "x-secret") || InConnection("", "x") {
		t.Error("InConnection matched a different name")
	}
}

func TestStripHopByHop(t *testing.T) {
	fs := fields("Host: a", "Connection: x-secret, close", "Keep-Alive: 5", "Accept: */*",
		"X-Secret: s", "Proxy-Authorization: Basic x", "TE: trailers", "x-secret: again", "Transfer-Encoding: chunked", "X-Keep: 1")
	got := names(StripHopByHop(fs))
	if want := "Host,Accept,X-Keep"; got != want {
		t.Errorf("StripHopByHop kept %s, want %s", got, want)
	}

	// The Connection field may come after the fields it names, and
	// compaction must not lose it.
	fs = fields("A: 1", "X-Late: 1", "B: 2", "Connection: x-late")
	if got := names(StripHopByHop(fs)); got != "A,B" {
		t.Errorf("StripHopByHop kept %s, want A,B", got)
	}
	fs = fields("Connection: x-early", "A: 1", "X-Early: 1")
	if got := names(StripHopByHop(fs)); got != "A" {
		t.Errorf("StripHopByHop kept %s, want A", got)
	}
}

func TestStripIdentity(t *testing.T) {
	fs := fields("Host: a", "X-Forwarded-For: 1.2.3.4", "Forwarded: for=x", "True-Client-IP: 1", "Accept: */*")
	if got := names(StripIdentity(fs)); got != "Host,Accept" {
		t.Errorf("StripIdentity kept %s, want Host,Accept", got)
	}
}

func fields(lines ...string) Fields {
	var fs Fields
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ": ")
		fs = append(fs, Field{[]byte(name), []byte(value)})
	}
	return fs
}

func names(fs Fields) string {
	var ns []string
	for _, f := range fs {
		ns = append(ns, string(f.Name))
	}
	return strings.Join(ns, ",")
}
