package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRejections sends each malformed or refused request of SPEC §5 as raw
// bytes: the proxy answers the status and the upstream receives nothing.
func TestRejections(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "max_request_header_size = 1024\n", nil)
	u := "http://127.0.0.1:" + up.port()
	target := u + "/ok/x"
	tests := []struct {
		name   string
		raw    string
		status int
	}{
		{"HTTP/1.0", "GET " + target + " HTTP/1.0\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2.0 version", "GET " + target + " HTTP/2.0\r\nHost: a\r\n\r\n", 400},
		{"lower-case version", "GET " + target + " http/1.1\r\nHost: a\r\n\r\n", 400},
		{"leading empty line", "\r\nGET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"two spaces in request line", "GET  " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"tab in request line", "GET\t" + target + " HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bare LF line ends", "GET " + target + " HTTP/1.1\nHost: a\n\n", 400},
		{"bare LF after header", "GET " + target + " HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
		{"bare CR in value", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"obs-fold", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"space before colon", "GET " + target + " HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"name not a token", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400},
		{"NUL in value", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"DEL in value", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
		{"control byte in value", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
		{"second Host", "GET " + target + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"second Content-Length", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
		{"second Transfer-Encoding", "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"second Connection", "GET " + target + " HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 400},
		{"Content-Length with sign", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400},
		{"Content-Length list", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400},
		{"Content-Length hex", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400},
		{"Content-Length overflow", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nx", 400},
		{"Content-Length and Transfer-Encoding", "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"gzip transfer coding", "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"chunked, identity", "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
		{"userinfo in target", "GET http://user:pw@127.0.0.1:" + up.port() + "/ok/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"origin-form to the listener", "GET /ok/x HTTP/1.1\r\nHost: 127.0.0.1:" + up.port() + "\r\n\r\n", 400},
		{"ftp scheme", "GET ftp://127.0.0.1/ok/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"encoded dot segment", "GET " + u + "/ok/%2e%2e/secret HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"encoded slash", "GET " + u + "/ok%2Fx HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"backslash", "GET " + u + "/ok\\x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"Upgrade (WebSocket)", "GET " + target + " HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400},
		{"Upgrade (h2c)", "GET " + target + " HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", 400},
		{"unknown expectation", "GET " + target + " HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
		{"oversized head", "GET " + target + " HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			resp, body := p.roundTrip(t, tt.raw)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
			// http.ReadResponse turns Connection: close into resp.Close.
			if !resp.Close || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("close %v, headers %v; want Connection: close and text/plain", resp.Close, resp.Header)
			}
			if strings.Contains(body, "secret") || strings.Contains(body, "user") {
				t.Errorf("body %q echoes request bytes", body)
			}
			if got := up.requests(); len(got) != before {
				t.Errorf("upstream received %q", got[before:])
			}
		})
	}
}

// TestTruncatedHead: a head cut short by EOF is refused, never forwarded.
func TestTruncatedHead(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	c := p.dial(t)
	fmt.Fprintf(c, "GET http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\n", up.port())
	c.(*net.TCPConn).CloseWrite()
	resp, _ := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 400 || len(up.requests()) != 0 {
		t.Errorf("status %d, upstream %q", resp.StatusCode, up.requests())
	}
}

// TestBadChunkedBody: framing errors inside a chunked body end the
// exchange; the upstream never receives a complete request.
func TestBadChunkedBody(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	for name, body := range map[string]string{
		"size not hex":            "zz\r\nhello\r\n0\r\n\r\n",
		"size with sign":          "+5\r\nhello\r\n0\r\n\r\n",
		"size overflow":           "10000000000000000\r\nhello\r\n0\r\n\r\n",
		"bad extension":           "5;=x\r\nhello\r\n0\r\n\r\n",
		"missing CRLF after data": "5\r\nhelloXX0\r\n\r\n",
		"bare LF after size":      "5\nhello\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := p.dial(t)
			fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s", up.port(), body)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c) // the proxy answers an error or closes
			if got := up.requests(); len(got) != 0 {
				t.Errorf("upstream received %q", got)
			}
		})
	}
}

// TestSmuggling sends classic request-smuggling payloads, each hiding a
// second request to /ok/smuggled: it never reaches the upstream.
func TestSmuggling(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	target := "http://127.0.0.1:" + up.port() + "/ok/x"
	smuggled := "GET http://127.0.0.1:" + up.port() + "/ok/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	inner := "GET /ok/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := map[string]string{
		"CL.TE":                   "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE.CL":                   "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n" + smuggled,
		"chunked, identity":       "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"leading space chunked":   "POST " + target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding:  chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(inner), inner),
		"xchunked":                "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
		"duplicate TE":            "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled,
		"Content-Length +5":       "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello" + smuggled,
		"Content-Length 5, 5":     "POST " + target + " HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello" + smuggled,
		"bare-LF head":            "POST " + target + " HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello" + smuggled,
		"obs-fold TE":             "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
		"NUL in value":            "POST " + target + " HTTP/1.1\r\nHost: a\r\nX: \x00\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
		"Transfer-Encoding :":     "POST " + target + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
		"body carrying a request": "POST " + target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: " + fmt.Sprint(len(inner)) + "\r\n\r\n" + inner,
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			c := p.dial(t)
			io.WriteString(c, raw)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			io.Copy(io.Discard, c)
			for _, path := range up.requests() {
				if strings.Contains(path, "smuggled") {
					t.Errorf("upstream received the smuggled request %q", path)
				}
			}
		})
	}
	if got := up.requests(); len(got) > 3 {
		t.Errorf("upstream received %d requests: %q", len(got), got)
	}
}
