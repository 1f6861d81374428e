package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

func TestReadRequestHead(t *testing.T) {
	const in = "POST http://example.com/a?b=c HTTP/1.1\r\n" +
		"Host: example.com:80\r\n" +
		"X-Empty:\r\n" +
		"x-ows: \t value with  inner space \t\r\n" +
		"Content-Length: 0005\r\n" +
		"Connection: Keep-Alive, , x-hop\r\n" +
		"Expect: 100-Continue\r\n" +
		"X-Obs-Text: caf\xc3\xa9\r\n" +
		"\r\n" +
		"hello" + "NEXT"
	r, br := newTestReader(t, in, 0)
	h, err := r.ReadRequestHead()
	if err != nil {
		t.Fatalf("ReadRequestHead() = %v", err)
	}
	if string(h.Method) != "POST" || string(h.Target) != "http://example.com/a?b=c" {
		t.Errorf("request line = %q %q", h.Method, h.Target)
	}
	wantFields := []string{
		"Host", "example.com:80",
		"X-Empty", "",
		"x-ows", "value with  inner space",
		"Content-Length", "0005",
		"Connection", "Keep-Alive, , x-hop",
		"Expect", "100-Continue",
		"X-Obs-Text", "caf\xc3\xa9",
	}
	if len(h.Fields) != len(wantFields)/2 {
		t.Fatalf("got %d fields, want %d", len(h.Fields), len(wantFields)/2)
	}
	for i, f := range h.Fields {
		if string(f.Name) != wantFields[2*i] || string(f.Value) != wantFields[2*i+1] {
			t.Errorf("field %d = %q: %q, want %q: %q", i, f.Name, f.Value, wantFields[2*i], wantFields[2*i+1])
		}
	}
	if !h.HasHost || string(h.Host) != "example.com:80" {
		t.Errorf("Host = %q, %v", h.Host, h.HasHost)
	}
	if h.ContentLength != 5 || h.Chunked || h.Framing() != BodyLength {
		t.Errorf("framing = %d %v %v", h.ContentLength, h.Chunked, h.Framing())
	}
	if h.Close || !h.KeepAlive || h.Expect != ExpectContinue || h.Upgrade {
		t.Errorf("Close %v KeepAlive %v Expect %v Upgrade %v", h.Close, h.KeepAlive, h.Expect, h.Upgrade)
	}
	if want := strings.Index(in, "hello"); h.Size != want {
		t.Errorf("Size = %d, want %d", h.Size, want)
	}
	if v, ok := h.Fields.Get("X-EMPTY"); !ok || v == nil || len(v) != 0 {
		t.Errorf("Get(X-EMPTY) = %q, %v", v, ok)
	}
	if v, ok := h.Fields.Get("missing"); ok || v != nil {
		t.Errorf("Get(missing) = %q, %v", v, ok)
	}
	body, err := readAll(r.Body(h.Framing(), h.ContentLength, 0))
	if err != nil || body != "hello" {
		t.Errorf("body = %q, %v", body, err)
	}
	if got := rest(t, br); got != "NEXT" {
		t.Errorf("left in the reader: %q, want %q", got, "NEXT")
	}
}

func TestReadRequestHeadFacts(t *testing.T) {
	tests := []struct {
		name string
		head string
		want func(*RequestHead) bool
	}{
		{"no host", "GET / HTTP/1.1\r\n\r\n", func(h *RequestHead) bool { return !h.HasHost && h.Host == nil }},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", func(h *RequestHead) bool { return h.HasHost && len(h.Host) == 0 }},
		{"no length", "GET / HTTP/1.1\r\n\r\n", func(h *RequestHead) bool { return h.ContentLength == -1 && h.Framing() == BodyNone }},
		{"zero length", "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", func(h *RequestHead) bool { return h.ContentLength == 0 && h.Framing() == BodyNone }},
		{"chunked any case", "GET / HTTP/1.1\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", func(h *RequestHead) bool { return h.Chunked && h.Framing() == BodyChunked }},
		// RFC 9110 §5.5: OWS around a value is not part of it.
		{"chunked with OWS", "GET / HTTP/1.1\r\nTransfer-Encoding:  \tchunked\t \r\n\r\n", func(h *RequestHead) bool { return h.Chunked }},
		{"close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", func(h *RequestHead) bool { return h.Close && !h.KeepAlive }},
		{"close and upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade,CLOSE\r\nUpgrade: h2c\r\n\r\n", func(h *RequestHead) bool { return h.Close && h.Upgrade }},
		{"expect other", "GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", func(h *RequestHead) bool { return h.Expect == ExpectOther }},
		{"expect twice", "GET / HTTP/1.1\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n\r\n", func(h *RequestHead) bool { return h.Expect == ExpectOther }},
		{"expect none", "GET / HTTP/1.1\r\n\r\n", func(h *RequestHead) bool { return h.Expect == ExpectNone }},
		{"lower-case method", "get / HTTP/1.1\r\n\r\n", func(h *RequestHead) bool { return string(h.Method) == "get" }},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", func(h *RequestHead) bool { return string(h.Target) == "example.com:443" }},
		{"asterisk", "OPTIONS * HTTP/1.1\r\n\r\n", func(h *RequestHead) bool { return string(h.Target) == "*" }},
		{"HTAB in value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", func(h *RequestHead) bool { v, _ := h.Fields.Get("x"); return string(v) == "a\tb" }},
		{"repeated ordinary field", "GET / HTTP/1.1\r\nA: 1\r\nA: 2\r\n\r\n", func(h *RequestHead) bool { return h.Fields.Count("a") == 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestReader(t, tt.head, 0)
			h, err := r.ReadRequestHead()
			if err != nil {
				t.Fatalf("ReadRequestHead(%q) = %v", tt.head, err)
			}
			if !tt.want(h) {
				t.Errorf("ReadRequestHead(%q) = %+v", tt.head, h)
			}
		})
	}
}

// rejectTests are request heads that must be refused, with the status.
// Each is also a smuggling or ambiguity case: none may reach an upstream.
var rejectTests = []struct {
	name   string
	head   string
	status int
}{
	// Versions (SPEC §5).
	{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 400},
	{"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 400},
	{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
	{"HTTP/0.9", "GET /\r\n\r\n", 400},
	{"lower-case version", "GET / http/1.1\r\n\r\n", 400},
	{"version HTTP/1.10", "GET / HTTP/1.10\r\n\r\n", 400},
	{"version HTTP/01.1", "GET / HTTP/01.1\r\n\r\n", 400},
	{"no version", "GET /\r\n\r\n", 400},
	// Request line shape (RFC 9112 §3).
	{"leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", 400},
	{"leading bare LF", "\nGET / HTTP/1.1\r\n\r\n", 400},
	{"two spaces after method", "GET  / HTTP/1.1\r\n\r\n", 400},
	{"two spaces before version", "GET /  HTTP/1.1\r\n\r\n", 400},
	{"tab separator", "GET\t/ HTTP/1.1\r\n\r\n", 400},
	{"leading space", " GET / HTTP/1.1\r\n\r\n", 400},
	{"trailing space", "GET / HTTP/1.1 \r\n\r\n", 400},
	{"space in target", "GET /a b HTTP/1.1\r\n\r\n", 400},
	{"method not a token", "G(T / HTTP/1.1\r\n\r\n", 400},
	{"method with NUL", "G\x00T / HTTP/1.1\r\n\r\n", 400},
	{"empty method", " / HTTP/1.1\r\n\r\n", 400},
	{"target with NUL", "GET /\x00 HTTP/1.1\r\n\r\n", 400},
	{"target with DEL", "GET /\x7f HTTP/1.1\r\n\r\n", 400},
	{"target with non-ASCII", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400},
	{"target with tab", "GET /\t HTTP/1.1\r\n\r\n", 400},
	// Line endings (SPEC §5: CRLF required).
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
	{"bare LF field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
	{"bare LF end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
	{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400},
	{"bare CR in request line", "GET / HTTP/1.1\rX\r\n\r\n", 400},
	{"bare CR in target", "GET /\r HTTP/1.1\r\n\r\n", 400},
	{"bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
	{"bare CR in name", "GET / HTTP/1.1\r\nX\r: a\r\n\r\n", 400},
	{"CR CR LF", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 400},
	{"bare CR end of head", "GET / HTTP/1.1\r\nX: a\r\n\r\r\n", 400},
	// Field lines (RFC 9112 §5).
	{"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},
	{"obs-fold with tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400},
	{"whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
	{"TE space before colon", "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
	{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
	{"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400},
	{"name not a token", "GET / HTTP/1.1\r\nX(a): b\r\n\r\n", 400},
	{"name with non-ASCII", "GET / HTTP/1.1\r\nX\xc3\xa9: b\r\n\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400},
	{"DEL in value", "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", 400},
	{"ESC in value", "GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n", 400},
	{"CTL in a long value", "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaa\x01aaaaaaaaaaaaaaaaaa\r\n\r\n", 400},
	// Duplicates (SPEC §5).
	{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
	{"two Host any case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", 400},
	{"two Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"two Transfer-Encoding", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"two Connection", "GET / HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n", 400},
	// Content-Length (RFC 9110 §8.6).
	{"CL plus sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", 400},
	{"CL minus sign", "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400},
	{"CL list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
	{"CL list no space", "POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nhello", 400},
	{"CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello", 400},
	{"CL inner space", "POST / HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n", 400},
	{"CL empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
	{"CL overflow", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", 400},
	{"CL huge", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
	{"CL decimal point", "POST / HTTP/1.1\r\nContent-Length: 5.0\r\n\r\n", 400},
	// Transfer-Encoding (RFC 9112 §6.1, SPEC §5: exactly chunked).
	{"CL.TE", "POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400},
	{"TE.CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", 400},
	{"TE chunked identity", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
	{"TE identity", "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400},
	{"TE gzip chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
	{"TE xchunked", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
	{"TE chunked comma", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n\r\n", 400},
	{"TE comma chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400},
	{"TE quoted", "POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400},
	{"TE with parameter", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400},
	{"TE vertical tab", "POST / HTTP/1.1\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", 400},
	{"TE empty", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400},
	{"TE NUL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\x00\r\n\r\n", 400},
	// Connection must be a token list (RFC 9110 §7.6.1).
	{"Connection not tokens", "GET / HTTP/1.1\r\nConnection: close;\r\n\r\n", 400},
	// Truncation.
	{"EOF in request line", "GET / HTT", 400},
	{"EOF after request line", "GET / HTTP/1.1\r\n", 400},
	{"EOF in field", "GET / HTTP/1.1\r\nHost: a", 400},
	{"EOF before empty line", "GET / HTTP/1.1\r\nHost: a\r\n", 400},
	{"EOF after CR", "GET / HTTP/1.1\r\nHost: a\r\n\r", 400},
	// Size (SPEC §5: 431).
	{"head too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 240) + "\r\n\r\n", 431},
	{"request line too large", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\n\r\n", 431},
	{"many fields", "GET / HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", 60) + "\r\n", 431},
	{"endless line", "GET /" + strings.Repeat("a", 1000), 431},
}

func TestReadRequestHeadRejects(t *testing.T) {
	for _, tt := range rejectTests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole in one buffer (the fast path) and through a
			// 16-byte buffer (line by line).
			for _, size := range []int{4096, 16} {
				r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.head), size), 256)
				h, err := r.ReadRequestHead()
				if got := status(err); got != tt.status {
					t.Fatalf("bufio %d: ReadRequestHead(%q) = %+v, %v; want status %d", size, tt.head, h, err, tt.status)
				}
				if _, err2 := r.ReadRequestHead(); err2 != err {
					t.Errorf("bufio %d: second ReadRequestHead = %v, want the sticky %v", size, err2, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "read request head: ") {
					t.Errorf("error %q does not start with the operation", msg)
				}
			}
		})
	}
}

// TestReadRequestHeadSizeLimit checks the limit to the byte: the head with
// its final CRLF may be exactly maxHead bytes.
func TestReadRequestHeadSizeLimit(t *testing.T) {
	head := "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n"
	for _, size := range []int{4096, 16} {
		br := bufio.NewReaderSize(strings.NewReader(head+head), size)
		r := NewReader(br, len(head))
		for i := range 2 {
			if _, err := r.ReadRequestHead(); err != nil {
				t.Fatalf("bufio %d, head %d: ReadRequestHead() = %v with the limit at the head size", size, i, err)
			}
		}
		r = NewReader(bufio.NewReaderSize(strings.NewReader(head), size), len(head)-1)
		if _, err := r.ReadRequestHead(); status(err) != 431 {
			t.Errorf("bufio %d: ReadRequestHead() = %v with the limit one byte short, want 431", size, err)
		}
	}
}

func TestReadRequestHeadEOF(t *testing.T) {
	r, _ := newTestReader(t, "", 0)
	if _, err := r.ReadRequestHead(); err != io.EOF {
		t.Errorf("ReadRequestHead() on an empty stream = %v, want io.EOF", err)
	}
	// After a complete exchange, the clean close is io.EOF too.
	r, _ = newTestReader(t, "GET / HTTP/1.1\r\n\r\n", 0)
	if _, err := r.ReadRequestHead(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadRequestHead(); err != io.EOF {
		t.Errorf("second ReadRequestHead() = %v, want io.EOF", err)
	}
}

func TestReadRequestHeadIOError(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("GET / HTTP/1.1\r\nHo"), iotest.ErrReader(boom))
	r := NewReader(bufio.NewReaderSize(src, 16), 0)
	_, err := r.ReadRequestHead()
	if !errors.Is(err, boom) || status(err) != 0 {
		t.Errorf("ReadRequestHead() = %v, want the wrapped read error", err)
	}
}

// TestPipelined reads two requests sent back to back, with bodies of both
// framings, and checks that no byte of the next message is consumed early.
func TestPipelined(t *testing.T) {
	const first = "POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent-Length: 11\r\n\r\nhello world"
	const second = "PUT http://b.example/x HTTP/1.1\r\nHost: b.example\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"
	const third = "GET http://c.example/ HTTP/1.1\r\nHost: c.example\r\n\r\n"
	for _, size := range []int{16, 4096} {
		br := bufio.NewReaderSize(strings.NewReader(first+second+third+"CONNECT-BYTES"), size)
		r := NewReader(br, 0)
		wantHosts := []string{"a.example", "b.example", "c.example"}
		wantBodies := []string{"hello world", "hello world", ""}
		for i := range wantHosts {
			h, err := r.ReadRequestHead()
			if err != nil {
				t.Fatalf("bufio %d: request %d: %v", size, i, err)
			}
			if string(h.Host) != wantHosts[i] {
				t.Errorf("bufio %d: request %d: Host = %q, want %q", size, i, h.Host, wantHosts[i])
			}
			b := r.Body(h.Framing(), h.ContentLength, 0)
			got, err := readAll(b)
			if err != nil || got != wantBodies[i] || !b.Done() {
				t.Errorf("bufio %d: request %d: body = %q, %v, done %v; want %q", size, i, got, err, b.Done(), wantBodies[i])
			}
			if i == 1 {
				if v, _ := b.Trailers().Get("x-sum"); string(v) != "1" {
					t.Errorf("bufio %d: trailers = %q", size, b.Trailers())
				}
			}
		}
		if got := rest(t, br); got != "CONNECT-BYTES" {
			t.Errorf("bufio %d: left in the reader %q", size, got)
		}
	}
}

// TestBodyNotRead checks that a declared body must be read before the next
// head, so that its bytes are never parsed as a request.
func TestBodyNotRead(t *testing.T) {
	const smuggle = "POST / HTTP/1.1\r\nContent-Length: 18\r\n\r\nGET /x HTTP/1.1\r\n\r\n"
	r, _ := newTestReader(t, smuggle, 0)
	if _, err := r.ReadRequestHead(); err != nil {
		t.Fatal(err)
	}
	if h, err := r.ReadRequestHead(); status(err) != 500 {
		t.Errorf("ReadRequestHead() with the body unread = %+v, %v; want status 500", h, err)
	}

	// Nor may Body be asked for another framing.
	r, _ = newTestReader(t, smuggle, 0)
	if _, err := r.ReadRequestHead(); err != nil {
		t.Fatal(err)
	}
	r.Body(BodyNone, 0, 0)
	if h, err := r.ReadRequestHead(); status(err) != 500 {
		t.Errorf("ReadRequestHead() after Body(BodyNone) = %+v, %v; want status 500", h, err)
	}

	// A body half read blocks the next head too.
	r, _ = newTestReader(t, smuggle, 0)
	h, _ := r.ReadRequestHead()
	b := r.Body(h.Framing(), h.ContentLength, 0)
	b.Read(make([]byte, 3))
	if _, err := r.ReadRequestHead(); status(err) != 500 {
		t.Errorf("ReadRequestHead() with the body half read = %v; want status 500", err)
	}
}

// TestHeadValidity checks that a head's slices keep their bytes after the
// Reader's buffer has grown, and across reading its body.
func TestHeadValidity(t *testing.T) {
	long := strings.Repeat("v", 3000)
	in := "POST / HTTP/1.1\r\nA: first\r\nB: " + long + "\r\nContent-Length: 3\r\n\r\nabc"
	r, _ := newTestReader(t, in, 0)
	h, err := r.ReadRequestHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(r.Body(h.Framing(), h.ContentLength, 0)); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Fields.Get("a"); string(v) != "first" || string(h.Method) != "POST" {
		t.Errorf("after growth: A = %q, method %q", v, h.Method)
	}
	if v, _ := h.Fields.Get("b"); string(v) != long {
		t.Errorf("after growth: B has %d bytes", len(v))
	}
	// Appending to a field value must not overwrite the head.
	a := h.Fields[0].Value
	_ = append(a, "XX"...)
	if string(h.Fields[1].Name) != "B" {
		t.Errorf("append to a value overwrote the next field: %q", h.Fields[1].Name)
	}
}

func TestReadRequestHeadAllocs(t *testing.T) {
	r := NewReader(bufio.NewReaderSize(&loopReader{data: []byte(typicalRequest)}, 64<<10), 0)
	if _, err := r.ReadRequestHead(); err != nil { // grows the buffers
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadRequestHead(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadRequestHead allocates %v times per head, want 0", allocs)
	}
}

func TestReadResponseHead(t *testing.T) {
	const in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nX-A: b\r\n\r\nhi"
	r, br := newTestReader(t, in, 0)
	h, err := r.ReadResponseHead()
	if err != nil {
		t.Fatalf("ReadResponseHead() = %v", err)
	}
	if h.StatusCode != 200 || string(h.Reason) != "OK" || h.ContentLength != 2 || !h.Close || len(h.Fields) != 3 {
		t.Errorf("ReadResponseHead() = %+v", h)
	}
	if h.Framing("GET") != BodyLength || h.Framing("HEAD") != BodyNone {
		t.Errorf("Framing = %v, %v", h.Framing("GET"), h.Framing("HEAD"))
	}
	if got, err := readAll(r.Body(BodyLength, 2, 0)); got != "hi" || err != nil {
		t.Errorf("body = %q, %v", got, err)
	}
	if rest(t, br) != "" {
		t.Error("bytes left")
	}
}

func TestResponseFraming(t *testing.T) {
	tests := []struct {
		head   string
		method string
		want   Framing
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", BodyLength},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", BodyNone},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", BodyNone},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", BodyChunked},
		{"HTTP/1.1 200 OK\r\n\r\n", "GET", BodyUntilClose},
		{"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", "GET", BodyNone},
		{"HTTP/1.1 204 No Content\r\n\r\n", "GET", BodyNone},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", "GET", BodyNone},
		{"HTTP/1.1 100 Continue\r\n\r\n", "POST", BodyNone},
		{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", BodyNone},
	}
	for _, tt := range tests {
		r, _ := newTestReader(t, tt.head, 0)
		h, err := r.ReadResponseHead()
		if err != nil {
			t.Fatalf("ReadResponseHead(%q) = %v", tt.head, err)
		}
		if got := h.Framing(tt.method); got != tt.want {
			t.Errorf("Framing(%q) of %q = %v, want %v", tt.method, tt.head, got, tt.want)
		}
	}
}

func TestReadResponseHeadForms(t *testing.T) {
	tests := []struct {
		head   string
		code   int
		reason string
	}{
		{"HTTP/1.1 200 OK\r\n\r\n", 200, "OK"},
		{"HTTP/1.1 200 \r\n\r\n", 200, ""},
		{"HTTP/1.1 200\r\n\r\n", 200, ""}, // no SP before an empty reason: accepted
		{"HTTP/1.1 404 Not  Found\t!\r\n\r\n", 404, "Not  Found\t!"},
		{"HTTP/1.1 599 x\r\n\r\n", 599, "x"},
		{"HTTP/1.1 100 Continue\r\n\r\n", 100, "Continue"},
		{"HTTP/1.1 200 caf\xc3\xa9\r\n\r\n", 200, "caf\xc3\xa9"},
	}
	for _, tt := range tests {
		r, _ := newTestReader(t, tt.head, 0)
		h, err := r.ReadResponseHead()
		if err != nil || h.StatusCode != tt.code || string(h.Reason) != tt.reason {
			t.Errorf("ReadResponseHead(%q) = %+v, %v; want %d %q", tt.head, h, err, tt.code, tt.reason)
		}
	}
}

func TestReadResponseHeadRejects(t *testing.T) {
	tests := []struct{ name, head string }{
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n"},
		{"HTTP/2", "HTTP/2 200 OK\r\n\r\n"},
		{"lower-case version", "http/1.1 200 OK\r\n\r\n"},
		{"two-digit code", "HTTP/1.1 20 OK\r\n\r\n"},
		{"four-digit code", "HTTP/1.1 2000 OK\r\n\r\n"},
		{"code 099", "HTTP/1.1 099 OK\r\n\r\n"},
		{"code 600", "HTTP/1.1 600 OK\r\n\r\n"},
		{"signed code", "HTTP/1.1 +20 OK\r\n\r\n"},
		{"two spaces", "HTTP/1.1  200 OK\r\n\r\n"},
		{"tab after code", "HTTP/1.1 200\tOK\r\n\r\n"},
		{"NUL in reason", "HTTP/1.1 200 O\x00K\r\n\r\n"},
		{"bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\n\r\n"},
		{"leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"},
		{"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"TE chunked identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n"},
		{"two Connection", "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: close\r\n\r\n"},
		{"CL in 1xx", "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n"},
		{"TE in 1xx", "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"truncated", "HTTP/1.1 200 OK\r\nA: b\r\n"},
		{"truncated status line", "HTTP/1.1 20"},
		{"too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.head), 16), 256)
			h, err := r.ReadResponseHead()
			if status(err) != 502 {
				t.Errorf("ReadResponseHead(%q) = %+v, %v; want status 502", tt.head, h, err)
			}
		})
	}
}

// TestResponseHostIsOrdinary checks that Host and Expect, meaningless in a
// response, are ordinary fields there.
func TestResponseHostIsOrdinary(t *testing.T) {
	r, _ := newTestReader(t, "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nExpect: x\r\n\r\n", 0)
	if _, err := r.ReadResponseHead(); err != nil {
		t.Errorf("ReadResponseHead() = %v", err)
	}
}

func TestReadResponseHeadEOF(t *testing.T) {
	r, _ := newTestReader(t, "", 0)
	if _, err := r.ReadResponseHead(); err != io.EOF {
		t.Errorf("ReadResponseHead() on an empty stream = %v, want io.EOF", err)
	}
}

// TestInterimResponses reads 1xx heads and then the final one.
func TestInterimResponses(t *testing.T) {
	in := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
	r, _ := newTestReader(t, in, 0)
	for _, want := range []int{100, 103, 201} {
		h, err := r.ReadResponseHead()
		if err != nil || h.StatusCode != want {
			t.Fatalf("ReadResponseHead() = %+v, %v; want %d", h, err, want)
		}
	}
}

// TestReadRequestHeadDeadline checks that a deadline expiring mid-head is
// returned wrapped, not as an *Error, so that the caller can answer 408.
func TestReadRequestHeadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		go client.Write([]byte("GET / HTTP/1.1\r\nHost: a"))
		br := bufio.NewReader(server)
		if _, err := br.Peek(1); err != nil { // the first byte has arrived
			t.Fatal(err)
		}
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := NewReader(br, 0).ReadRequestHead()
		if !errors.Is(err, os.ErrDeadlineExceeded) || status(err) != 0 {
			t.Errorf("ReadRequestHead() = %v, want a wrapped os.ErrDeadlineExceeded", err)
		}
	})
}

// TestSmuggling runs the request smuggling cases of peers §4.6 through
// the Reader. Every one is refused with 400 except a Transfer-Encoding
// value with OWS around "chunked": RFC 9110 §5.5 says OWS is not part of
// a field value, every RFC parser reads it as chunked, and the proxy
// never forwards the client's framing fields but writes its own.
func TestSmuggling(t *testing.T) {
	const post = "POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
	tests := []struct {
		name   string
		head   string
		reject bool
	}{
		{"CL.TE", post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"TE.CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", true},
		{"TE chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n", true},
		{"TE identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n", true},
		{"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", true},
		{"TE chunked,", post + "Transfer-Encoding: chunked,\r\n\r\n", true},
		{"TE chunked with CR", post + "Transfer-Encoding: chunked\r\r\n\r\n", true},
		{"TE twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"TE twice, second identity", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", true},
		{"TE space before colon", post + "Transfer-Encoding : chunked\r\n\r\n", true},
		{"TE tab before colon", post + "Transfer-Encoding\t: chunked\r\n\r\n", true},
		{"TE obs-fold", post + "Transfer-Encoding:\r\n chunked\r\n\r\n", true},
		{"TE vertical tab", post + "Transfer-Encoding:\x0bchunked\r\n\r\n", true},
		{"CL +5", post + "Content-Length: +5\r\n\r\n", true},
		{"CL 5, 5", post + "Content-Length: 5, 5\r\n\r\n", true},
		{"CL twice equal", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", true},
		{"CL twice different", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", true},
		{"CL space before colon", post + "Content-Length : 5\r\n\r\n", true},
		{"bare LF head", "POST http://example.com/ HTTP/1.1\nHost: example.com\nContent-Length: 5\n\n", true},
		{"bare LF in one line", post + "Content-Length: 5\n\r\n", true},
		{"obs-fold", post + "X-A: a\r\n Content-Length: 5\r\n\r\n", true},
		{"NUL in value", post + "X-A: a\x00\r\nContent-Length: 5\r\n\r\n", true},
		{"bare CR splitting a field", post + "X-A: a\rContent-Length: 5\r\n\r\n", true},
		{"two Host", post + "Host: evil.example\r\n\r\n", true},
		{"TE with leading OWS", post + "Transfer-Encoding:  \tchunked\r\n\r\n", false},
		{"TE with trailing OWS", post + "Transfer-Encoding: chunked \t\r\n\r\n", false},
		{"TE upper case", post + "Transfer-Encoding: CHUNKED\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestReader(t, tt.head, 0)
			h, err := r.ReadRequestHead()
			if tt.reject && status(err) != 400 {
				t.Errorf("ReadRequestHead(%q) = %+v, %v; want status 400", tt.head, h, err)
			}
			if !tt.reject && (err != nil || !h.Chunked) {
				t.Errorf("ReadRequestHead(%q) = %+v, %v; want chunked", tt.head, h, err)
			}
		})
	}
}
