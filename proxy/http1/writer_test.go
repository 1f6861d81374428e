package http1

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestWriterRequestHead(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := NewWriter(bw)
	w.RequestLine("POST", "/upload?x=1")
	w.Field("Host", "example.com")
	w.FieldBytes([]byte("X-A"), []byte("b\tc"))
	w.ContentLength(42)
	w.Field("Connection", "close")
	if err := w.EndHead(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	want := "POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: b\tc\r\nContent-Length: 42\r\nConnection: close\r\n\r\n"
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
	// The Writer can go on with the next head.
	out.Reset()
	w.RequestLine("GET", "/")
	w.ContentLength(1)
	if err := w.EndHead(); err != nil {
		t.Errorf("second head: %v", err)
	}
}

func TestWriterResponseHead(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := NewWriter(bw)
	w.StatusLine(404, "Not Found")
	w.Field("Transfer-Encoding", "chunked")
	w.Field("Host", "a") // no meaning in a response: an ordinary field
	w.Field("Host", "b")
	if err := w.EndHead(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	if want := "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nHost: a\r\nHost: b\r\n\r\n"; out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

func TestWriterRejects(t *testing.T) {
	tests := []struct {
		name   string
		write  func(w *Writer)
		status int
	}{
		{"method not token", func(w *Writer) { w.RequestLine("GE T", "/") }, 400},
		{"empty target", func(w *Writer) { w.RequestLine("GET", "") }, 400},
		{"target with space", func(w *Writer) { w.RequestLine("GET", "/a b") }, 400},
		{"target with CRLF", func(w *Writer) { w.RequestLine("GET", "/\r\nX: y") }, 400},
		{"status 99", func(w *Writer) { w.StatusLine(99, "x") }, 502},
		{"status 600", func(w *Writer) { w.StatusLine(600, "x") }, 502},
		{"reason with LF", func(w *Writer) { w.StatusLine(200, "OK\nX: y") }, 502},
		{"name not token", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("X Y", "z") }, 400},
		{"empty name", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("", "z") }, 400},
		{"CRLF in value", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("X", "a\r\nInjected: 1") }, 400},
		{"NUL in value", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("X", "a\x00") }, 400},
		{"leading space in value", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("X", " a") }, 400},
		{"trailing tab in value", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("X", "a\t") }, 400},
		{"two Host", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("Host", "a"); w.Field("host", "a") }, 400},
		{"two Content-Length", func(w *Writer) { w.RequestLine("GET", "/"); w.ContentLength(1); w.ContentLength(1) }, 400},
		{"CL and TE", func(w *Writer) {
			w.RequestLine("GET", "/")
			w.ContentLength(1)
			w.Field("Transfer-Encoding", "chunked")
		}, 400},
		{"TE gzip", func(w *Writer) { w.StatusLine(200, "OK"); w.Field("Transfer-Encoding", "gzip") }, 502},
		{"CL not digits", func(w *Writer) { w.StatusLine(200, "OK"); w.Field("Content-Length", "+1") }, 502},
		{"negative CL", func(w *Writer) { w.RequestLine("GET", "/"); w.ContentLength(-1) }, 400},
		{"Connection not tokens", func(w *Writer) { w.RequestLine("GET", "/"); w.Field("Connection", "a b") }, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			w := NewWriter(bw)
			tt.write(w)
			w.Field("After", "error") // ignored: the error is sticky
			err := w.EndHead()
			if status(err) != tt.status {
				t.Errorf("EndHead() = %v, want status %d", err, tt.status)
			}
			bw.Flush()
			if strings.Contains(out.String(), "\r\n\r\n") || strings.Contains(out.String(), "After") {
				t.Errorf("wrote %q after an error", out.String())
			}
		})
	}
}

// TestWriteResponse checks the exact bytes of the proxy's own responses
// (reference §4.6).
func TestWriteResponse(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{400, "HTTP/1.1 400 Bad Request\r\nContent-Length: 17\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ninvalid request\r\n"},
		{403, "HTTP/1.1 403 Forbidden\r\nContent-Length: 27\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nrequest blocked by policy\r\n"},
		{408, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 26\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nrequest header timed out\r\n"},
		{413, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 39\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nrequest body exceeds configured limit\r\n"},
		{417, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 20\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nexpectation failed\r\n"},
		{421, "HTTP/1.1 421 Misdirected Request\r\nContent-Length: 21\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nmisdirected request\r\n"},
		{431, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 26\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nrequest header too large\r\n"},
		{502, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 25\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nupstream request failed\r\n"},
		{504, "HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 19\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nrequest timed out\r\n"},
		{599, "HTTP/1.1 599 Unknown\r\nContent-Length: 0\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if err := WriteError(&out, tt.status); err != nil || out.String() != tt.want {
			t.Errorf("WriteError(%d) = %v, wrote\n%q, want\n%q", tt.status, err, out.String(), tt.want)
		}
	}

	// A policy DENY with its own status, reason and body.
	var out bytes.Buffer
	if err := WriteResponse(&out, 470, "Policy Blocked", "no\n"); err != nil {
		t.Fatal(err)
	}
	if want := "HTTP/1.1 470 Policy Blocked\r\nContent-Length: 3\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nno\n"; out.String() != want {
		t.Errorf("WriteResponse(470) wrote %q, want %q", out.String(), want)
	}
	// What the Reader reads back is what was written.
	r, _ := newTestReader(t, out.String(), 0)
	h, err := r.ReadResponseHead()
	if err != nil || h.StatusCode != 470 || h.ContentLength != 3 || !h.Close {
		t.Errorf("read back %+v, %v", h, err)
	}

	for _, bad := range []struct {
		status int
		reason string
	}{{99, "x"}, {600, "x"}, {200, "OK\r\nX: y"}} {
		out.Reset()
		if err := WriteResponse(&out, bad.status, bad.reason, "b"); err == nil || out.Len() != 0 {
			t.Errorf("WriteResponse(%d, %q) = %v, wrote %q", bad.status, bad.reason, err, out.String())
		}
	}
}

func TestReasonPhrase(t *testing.T) {
	tests := map[int]string{
		200: "OK",
		203: "Non Authoritative Information",
		413: "Payload Too Large",
		418: "I'm a teapot",
		421: "Misdirected Request",
		451: "Unavailable For Legal Reasons",
		103: "Early Hints", // RFC 8297; added to the original's table
		425: "Unknown",
		470: "Unknown",
		999: "Unknown",
	}
	for code, want := range tests {
		if got := ReasonPhrase(code); got != want {
			t.Errorf("ReasonPhrase(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestFixedResponses(t *testing.T) {
	if len(ConnectEstablished) != 64 {
		t.Errorf("ConnectEstablished is %d bytes, reference §4.2.1 says 64", len(ConnectEstablished))
	}
	for _, s := range []string{Continue, ConnectEstablished} {
		r, _ := newTestReader(t, s, 0)
		if _, err := r.ReadResponseHead(); err != nil {
			t.Errorf("ReadResponseHead(%q) = %v", s, err)
		}
	}
}
