package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestUpstreamResponses checks how upstream answers are judged: strict
// parsing (502), 101 refused, bodiless statuses, and that after a relayed
// head a failure closes the connection with no bytes appended.
func TestUpstreamResponses(t *testing.T) {
	answers := map[string]string{
		"/ok/http10":     "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/ok/bigheader":  "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 2000) + "\r\nContent-Length: 2\r\n\r\nok",
		"/ok/switch":     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/ok/badheader":  "HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok",
		"/ok/bothframe":  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"/ok/short":      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"/ok/badchunk":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
		"/ok/interim":    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/ok/untilclose": "HTTP/1.1 200 OK\r\n\r\nall of it",
		"/ok/nocontent":  "HTTP/1.1 204 No Content\r\n\r\n",
		"/ok/partial":    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial",
	}
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, answers[req.URL.Path])
		if req.URL.Path == "/ok/partial" {
			time.Sleep(3 * time.Second) // stall: the body idle timeout ends it
		}
	})
	p := startProxy(t, "max_response_header_size = 1024\nresponse_body_idle_timeout = 1\n", nil)
	u := "http://127.0.0.1:" + up.port()
	for _, path := range []string{"/ok/http10", "/ok/bigheader", "/ok/switch", "/ok/badheader", "/ok/bothframe"} {
		t.Run(path, func(t *testing.T) {
			resp, body := p.roundTrip(t, "GET "+u+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp.StatusCode != 502 || body != "upstream request failed\r\n" {
				t.Errorf("status %d %q, want 502", resp.StatusCode, body)
			}
		})
	}
	for _, path := range []string{"/ok/short", "/ok/badchunk"} {
		t.Run(path, func(t *testing.T) {
			c := p.dial(t)
			fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: a\r\n\r\n", u, path)
			raw, _ := io.ReadAll(c) // until the proxy closes
			if !strings.HasPrefix(string(raw), "HTTP/1.1 200 OK\r\n") || strings.Count(string(raw), "HTTP/1.1") != 1 {
				t.Errorf("got %q: want the relayed head, then a close with no error response appended", raw)
			}
		})
	}
	t.Run("interim response relayed", func(t *testing.T) {
		c := p.dial(t)
		fmt.Fprintf(c, "GET %s/ok/interim HTTP/1.1\r\nHost: a\r\n\r\n", u)
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		// The phrase comes from the original's table, which has no 103.
		if !strings.HasPrefix(line, "HTTP/1.1 103 ") {
			t.Errorf("first line %q, want the 103", line)
		}
		if link, _ := br.ReadString('\n'); link != "Link: </a.css>; rel=preload\r\n" {
			t.Errorf("103 field %q", link)
		}
	})
	t.Run("close-delimited body closes the client connection", func(t *testing.T) {
		// Relayed chunked, so that a cut-off body stays detectable, and
		// the connection closes after it.
		c := p.dial(t)
		fmt.Fprintf(c, "GET %s/ok/untilclose HTTP/1.1\r\nHost: a\r\n\r\n", u)
		raw, _ := io.ReadAll(c)
		want := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n9\r\nall of it\r\n0\r\n\r\n"
		if string(raw) != want {
			t.Errorf("got %q, want %q", raw, want)
		}
	})
	t.Run("cut-off close-delimited body lacks its last chunk", func(t *testing.T) {
		c := p.dial(t)
		fmt.Fprintf(c, "GET %s/ok/partial HTTP/1.1\r\nHost: a\r\n\r\n", u)
		raw, _ := io.ReadAll(c)
		if !strings.Contains(string(raw), "7\r\npartial\r\n") || strings.HasSuffix(string(raw), "0\r\n\r\n") {
			t.Errorf("got %q: want the partial chunk and no last chunk\n%s", raw, p.logs.String())
		}
	})
	t.Run("204 has no body", func(t *testing.T) {
		resp, body := p.roundTrip(t, "GET "+u+"/ok/nocontent HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 204 || body != "" {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
	})
}

// TestTotalTimeout: request_total_timeout bounds the wait for the
// response (504) and, once the head is relayed, the body (closed).
func TestTotalTimeout(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/ok/slowhead" {
			time.Sleep(2500 * time.Millisecond)
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		time.Sleep(2500 * time.Millisecond)
	})
	p := startProxy(t, "request_total_timeout = 1\n", nil)
	u := "http://127.0.0.1:" + up.port()
	start := time.Now()
	resp, body := p.roundTrip(t, "GET "+u+"/ok/slowhead HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 504 || body != "request timed out\r\n" || time.Since(start) > 2*time.Second {
		t.Errorf("slow head: %d %q after %v, want 504 after about 1s", resp.StatusCode, body, time.Since(start))
	}
	c := p.dial(t)
	fmt.Fprintf(c, "GET %s/ok/slowbody HTTP/1.1\r\nHost: a\r\n\r\n", u)
	start = time.Now()
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 OK") || !strings.HasSuffix(string(raw), "abc") || time.Since(start) > 2*time.Second {
		t.Errorf("slow body: %q after %v; want the partial response, then a close after about 1s", raw, time.Since(start))
	}
	recs := p.waitRecords(t, 2)
	if !strings.Contains(recs[0], `"reason":"request_timeout"`) || !strings.Contains(recs[1], `"reason":"request_timeout"`) {
		t.Errorf("records:\n%s", strings.Join(recs, "\n"))
	}
}
