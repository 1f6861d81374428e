package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestChunkedBody(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		body     string
		trailers string // "name: value|..." of the trailer fields
	}{
		{"empty", "0\r\n\r\n", "", ""},
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", ""},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
		{"lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""},
		{"extension", "5;foo\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"extension with token value", "5;foo=bar\r\nhello\r\n0;last=yes\r\n\r\n", "hello", ""},
		{"extension with quoted value", "5;foo=\"a b;c=\\\"d\\\"\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"extensions with BWS", "5 ; a = b ;c\t=\t\"d\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"several extensions", "5;a;b=c;d=\"e\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"trailer", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", "hello", "X-Checksum: abc"},
		{"trailers", "0\r\nA: 1\r\nb:  2 \r\nA: 3\r\n\r\n", "", "A: 1|b: 2|A: 3"},
		{"empty trailer value", "0\r\nA:\r\n\r\n", "", "A: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				br := bufio.NewReaderSize(strings.NewReader(tt.in+"NEXT"), size)
				r := NewReader(br, 0)
				b := r.Body(BodyChunked, 0, 0)
				got, err := readAll(b)
				if err != nil || got != tt.body {
					t.Fatalf("bufio %d: decode(%q) = %q, %v; want %q", size, tt.in, got, err, tt.body)
				}
				if !b.Done() || b.BytesRead() != int64(len(tt.body)) {
					t.Errorf("bufio %d: Done() = %v, BytesRead() = %d", size, b.Done(), b.BytesRead())
				}
				var tr []string
				for _, f := range b.Trailers() {
					tr = append(tr, string(f.Name)+": "+string(f.Value))
				}
				if got := strings.Join(tr, "|"); got != tt.trailers {
					t.Errorf("bufio %d: trailers = %q, want %q", size, got, tt.trailers)
				}
				if got := rest(t, br); got != "NEXT" {
					t.Errorf("bufio %d: left %q, want NEXT", size, got)
				}
			}
		})
	}
}

func TestChunkedBodyRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty size", "\r\nhello\r\n0\r\n\r\n"},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"plus sign", "+5\r\nhello\r\n0\r\n\r\n"},
		{"minus sign", "-5\r\nhello\r\n0\r\n\r\n"},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n"},
		{"leading tab", "\t5\r\nhello\r\n0\r\n\r\n"},
		{"trailing space", "5 \r\nhello\r\n0\r\n\r\n"},
		{"trailing tab", "5\t\r\nhello\r\n0\r\n\r\n"},
		{"not hex", "g\r\nhello\r\n0\r\n\r\n"},
		{"hex then junk", "5x\r\nhello\r\n0\r\n\r\n"},
		{"underscore", "1_0\r\nhello\r\n0\r\n\r\n"},
		{"overflow", "8000000000000000\r\nhello\r\n0\r\n\r\n"},
		{"overflow long", "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
		{"bare CR after size", "5\rhello\r\n0\r\n\r\n"},
		{"CR CR LF after size", "5\r\r\nhello\r\n0\r\n\r\n"},
		{"missing CRLF after data", "5\r\nhello0\r\n\r\n"},
		{"LF only after data", "5\r\nhello\n0\r\n\r\n"},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n"},
		{"data shorter than size", "6\r\nhello\r\n0\r\n\r\n"},
		{"bare LF after last chunk", "0\n\r\n"},
		{"bare LF ending trailers", "0\r\n\n"},
		{"size line too long", "5" + strings.Repeat("0", maxChunkLineSize) + "\r\n"},
		{"extension line too long", "5;a=" + strings.Repeat("b", maxChunkLineSize) + "\r\nhello\r\n0\r\n\r\n"},
		{"empty extension", "5;\r\nhello\r\n0\r\n\r\n"},
		{"extension without name", "5;=a\r\nhello\r\n0\r\n\r\n"},
		{"extension empty value", "5;a=\r\nhello\r\n0\r\n\r\n"},
		{"extension name not token", "5;a(b)\r\nhello\r\n0\r\n\r\n"},
		{"extension value not token", "5;a=b c\r\nhello\r\n0\r\n\r\n"},
		{"extension trailing space", "5;a=b \r\nhello\r\n0\r\n\r\n"},
		{"extension without semicolon", "5 a=b\r\nhello\r\n0\r\n\r\n"},
		{"extension unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n"},
		{"extension quote then junk", "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"},
		{"extension CTL in quote", "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n"},
		{"extension NUL", "5;a\x00\r\nhello\r\n0\r\n\r\n"},
		{"extension escaped CR", "5;a=\"\\\r\"\r\nhello\r\n0\r\n\r\n"},
		{"extension bytes over the body limit", strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", maxChunkExtBytes/1000+1) + "0\r\n\r\n"},
		{"trailer obs-fold", "0\r\nA: 1\r\n 2\r\n\r\n"},
		{"trailer space before colon", "0\r\nA : 1\r\n\r\n"},
		{"trailer NUL", "0\r\nA: \x00\r\n\r\n"},
		{"trailer no colon", "0\r\nA\r\n\r\n"},
		{"trailer Content-Length", "0\r\nContent-Length: 5\r\n\r\n"},
		{"trailer Transfer-Encoding", "0\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"trailer Host", "0\r\nHost: evil.example\r\n\r\n"},
		{"trailer Connection", "0\r\nConnection: close\r\n\r\n"},
		{"trailer Trailer", "0\r\nTrailer: A\r\n\r\n"},
		{"trailer Proxy-Authorization", "0\r\nProxy-Authorization: Basic x\r\n\r\n"},
		{"trailers too large", "0\r\n" + strings.Repeat("A: "+strings.Repeat("b", 100)+"\r\n", maxTrailerSize/100) + "\r\n"},
		{"EOF in size", "5"},
		{"EOF in data", "5\r\nhel"},
		{"EOF before data CRLF", "5\r\nhello"},
		{"EOF between CR and LF", "5\r\nhello\r"},
		{"EOF before last chunk", "5\r\nhello\r\n"},
		{"EOF in trailers", "0\r\nA: 1\r\n"},
		{"EOF before final CRLF", "0\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.in), size), 0)
				b := r.Body(BodyChunked, 0, 0)
				got, err := readAll(b)
				if status(err) != 400 || b.Done() {
					t.Fatalf("bufio %d: decode(%q) = %q, %v, done %v; want status 400", size, tt.in, got, err, b.Done())
				}
				if _, err2 := b.Read(make([]byte, 1)); err2 != err {
					t.Errorf("bufio %d: Read after error = %v, want the sticky %v", size, err2, err)
				}
				if _, err2 := r.ReadRequestHead(); err2 != err {
					t.Errorf("bufio %d: ReadRequestHead after error = %v, want the sticky %v", size, err2, err)
				}
			}
		})
	}
}

// TestChunkedAfterResponse checks that body errors after a response head
// carry 502.
func TestChunkedAfterResponse(t *testing.T) {
	r, _ := newTestReader(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0)
	h, err := r.ReadResponseHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(r.Body(h.Framing("GET"), h.ContentLength, 0)); status(err) != 502 {
		t.Errorf("bad chunk after a response head: %v, want status 502", err)
	}
}

func TestFixedBody(t *testing.T) {
	r, br := newTestReader(t, "0123456789rest", 0)
	b := r.Body(BodyLength, 10, 0)
	got, err := readAll(b)
	if err != nil || got != "0123456789" || !b.Done() {
		t.Errorf("body = %q, %v, done %v", got, err, b.Done())
	}
	if got := rest(t, br); got != "rest" {
		t.Errorf("left %q, want rest", got)
	}

	// A short body is an error, never a clean end.
	r, _ = newTestReader(t, "01234", 0)
	b = r.Body(BodyLength, 10, 0)
	got, err = readAll(b)
	if status(err) != 400 || b.Done() || got != "01234" {
		t.Errorf("short body = %q, %v, done %v; want status 400", got, err, b.Done())
	}
}

func TestUntilCloseBody(t *testing.T) {
	r, _ := newTestReader(t, "all of it", 0)
	b := r.Body(BodyUntilClose, 0, 0)
	got, err := readAll(b)
	if err != nil || got != "all of it" || !b.Done() {
		t.Errorf("body = %q, %v, done %v", got, err, b.Done())
	}
}

func TestNoBody(t *testing.T) {
	r, br := newTestReader(t, "next", 0)
	b := r.Body(BodyNone, 0, 0)
	if n, err := b.Read(make([]byte, 4)); n != 0 || err != io.EOF || !b.Done() {
		t.Errorf("Read = %d, %v, done %v", n, err, b.Done())
	}
	if rest(t, br) != "next" {
		t.Error("a BodyNone read consumed bytes")
	}
	var zero Body
	if n, err := zero.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("zero Body Read = %d, %v", n, err)
	}
}

func TestBodyLimit(t *testing.T) {
	tests := []struct {
		name    string
		framing Framing
		length  int64
		in      string
		limit   int64
		want    int    // status, 0 for success
		read    string // what is read before the error
	}{
		{"length at limit", BodyLength, 5, "hello", 5, 0, "hello"},
		{"length over limit", BodyLength, 6, "hello!", 5, 413, ""},
		{"chunked at limit", BodyChunked, 0, "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", 5, 0, "hello"},
		// The chunk that would pass the limit is refused at its size
		// line, before any of its data is returned.
		{"chunked over limit", BodyChunked, 0, "3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n", 5, 413, "hel"},
		{"one huge chunk", BodyChunked, 0, "7fffffffffffffff\r\n", 1 << 20, 413, ""},
		{"until close over limit", BodyUntilClose, 0, "hello!", 5, 413, "hello!"},
		{"no limit", BodyChunked, 0, "3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n", 0, 0, "hello!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.in), 16), 0)
			got, err := readAll(r.Body(tt.framing, tt.length, tt.limit))
			if status(err) != tt.want || got != tt.read {
				t.Errorf("read = %q, %v; want %q and status %d", got, err, tt.read, tt.want)
			}
		})
	}
}

func TestBodyIOError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(bufio.NewReaderSize(io.MultiReader(strings.NewReader("5\r\nhe"), &errReader{boom}), 16), 0)
	_, err := readAll(r.Body(BodyChunked, 0, 0))
	if !errors.Is(err, boom) {
		t.Errorf("read = %v, want the wrapped read error", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestChunkedWriter(t *testing.T) {
	var buf bytes.Buffer
	cw := NewChunkedWriter(&buf)
	cw.Write([]byte("hello"))
	cw.Write(nil) // writes nothing: a zero chunk would end the body
	cw.Write([]byte(strings.Repeat("x", 26)))
	if err := cw.CloseWithTrailers(Fields{{[]byte("X-Sum"), []byte("a b")}}); err != nil {
		t.Fatal(err)
	}
	want := "5\r\nhello\r\n1a\r\n" + strings.Repeat("x", 26) + "\r\n0\r\nX-Sum: a b\r\n\r\n"
	if buf.String() != want {
		t.Errorf("encoded %q, want %q", buf.String(), want)
	}
	if _, err := cw.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}

	for _, bad := range []Fields{
		{{[]byte("Content-Length"), []byte("5")}},
		{{[]byte("X"), []byte("a\r\nInjected: 1")}},
		{{[]byte("X Y"), []byte("a")}},
		{{[]byte("X"), []byte(" a")}},
	} {
		buf.Reset()
		if err := NewChunkedWriter(&buf).CloseWithTrailers(bad); err == nil || buf.Len() != 0 {
			t.Errorf("CloseWithTrailers(%q) = %v, wrote %q", bad, err, buf.String())
		}
	}
}

func TestCopyBody(t *testing.T) {
	tests := []struct {
		name    string
		framing Framing
		length  int64
		in      string
		want    string
	}{
		{"length", BodyLength, 11, "hello world", "hello world"},
		{"until close", BodyUntilClose, 0, "hello world", "hello world"},
		// Extensions are dropped; trailers are kept.
		{"chunked", BodyChunked, 0, "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
			"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The chunk boundaries follow the source's reads; a small
			// bufio buffer and a copy buffer larger than every chunk
			// keep them where the source put them.
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.in), 16), 0)
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			n, err := CopyBody(bw, r.Body(tt.framing, tt.length, 0), nil)
			if err != nil || out.String() != tt.want || n != 11 {
				t.Errorf("CopyBody = %d, %v, wrote %q; want %q", n, err, out.String(), tt.want)
			}
		})
	}

	// A read error comes back as it is; a write error as *SendError.
	r := NewReader(bufio.NewReaderSize(strings.NewReader("5\r\nhel"), 16), 0)
	if _, err := CopyBody(io.Discard, r.Body(BodyChunked, 0, 0), nil); status(err) != 400 {
		t.Errorf("CopyBody of a truncated body = %v, want status 400", err)
	}
	boom := errors.New("boom")
	r = NewReader(bufio.NewReaderSize(strings.NewReader("hello"), 16), 0)
	var se *SendError
	if _, err := CopyBody(&errWriter{boom}, r.Body(BodyLength, 5, 0), nil); !errors.As(err, &se) || !errors.Is(err, boom) {
		t.Errorf("CopyBody to a failing writer = %v, want *SendError", err)
	}
}

type errWriter struct{ err error }

func (e *errWriter) Write([]byte) (int, error) { return 0, e.err }
