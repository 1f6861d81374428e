package fuzz

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"exfilguard/proxy/http1"
)

// headReader returns an http1.Reader of data with a bufio buffer of size
// bytes, or one that holds all of data if size is 0: 16 makes the Reader
// take lines one by one, a buffer holding everything lets it take the
// whole head from the buffer.
func headReader(data []byte, size int) (*http1.Reader, *bufio.Reader) {
	if size == 0 {
		size = len(data)
	}
	br := bufio.NewReaderSize(bytes.NewReader(data), size)
	return http1.NewReader(br, 4096), br
}

// checkHeadError checks an error from reading a head: io.EOF only for an
// empty input, otherwise an *http1.Error with one of the given statuses and
// a message.
func checkHeadError(t *testing.T, data []byte, err error, statuses ...int) {
	t.Helper()
	if err == io.EOF {
		if len(data) != 0 {
			t.Fatalf("io.EOF after %d bytes", len(data))
		}
		return
	}
	var e *http1.Error
	if !errors.As(err, &e) || !slices.Contains(statuses, e.Status) || e.Error() == "" {
		t.Fatalf("error %#v, want an *http1.Error with a status in %v", err, statuses)
	}
}

// errStatus returns the Status of an *http1.Error, -1 for io.EOF, 0 for
// nil.
func errStatus(err error) int {
	var e *http1.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Status
	}
	return -1
}

// requestView is what a RequestHead says, copied out of the Reader.
type requestView struct {
	Method, Target   string
	Fields           []string
	ContentLength    int64
	Chunked          bool
	Host             string
	HasHost          bool
	Close, KeepAlive bool
	Expect           http1.Expect
	Upgrade          bool
}

func viewRequest(h *http1.RequestHead) requestView {
	v := requestView{
		Method: string(h.Method), Target: string(h.Target),
		ContentLength: h.ContentLength, Chunked: h.Chunked,
		Host: string(h.Host), HasHost: h.HasHost,
		Close: h.Close, KeepAlive: h.KeepAlive, Expect: h.Expect, Upgrade: h.Upgrade,
	}
	for _, f := range h.Fields {
		v.Fields = append(v.Fields, string(f.Name), string(f.Value))
	}
	return v
}

// FuzzRequestHead checks that ReadRequestHead never panics, that its two
// read paths (line by line, whole head from the buffer) agree, that it
// consumes exactly the head, and that a head it accepts, written again with
// http1.Writer, reads back the same. The target and field helpers run on
// what it accepts, looking for panics.
func FuzzRequestHead(f *testing.F) {
	f.Add([]byte("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, br := headReader(data, 16)
		h, err := r.ReadRequestHead()
		r2, _ := headReader(data, 0)
		h2, err2 := r2.ReadRequestHead()
		if errStatus(err) != errStatus(err2) {
			t.Fatalf("bufio 16: %v; bufio holding all: %v", err, err2)
		}
		if err != nil {
			checkHeadError(t, data, err, 400, 431)
			return
		}
		v := viewRequest(h)
		if v2 := viewRequest(h2); !equalView(v, v2) {
			t.Fatalf("bufio 16: %+v\nbufio holding all: %+v", v, v2)
		}
		if h.Size < 4 || !bytes.HasSuffix(data[:h.Size], []byte("\r\n\r\n")) {
			t.Fatalf("Size %d does not end at a CRLF CRLF", h.Size)
		}
		if left, _ := io.ReadAll(br); !bytes.Equal(left, data[h.Size:]) {
			t.Fatalf("left %q, want %q", left, data[h.Size:])
		}

		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		w := http1.NewWriter(bw)
		w.RequestLine(v.Method, v.Target)
		w.Fields(h.Fields)
		if err := w.EndHead(); err != nil {
			t.Fatalf("writing back %+v: %v", v, err)
		}
		bw.Flush()
		r3, _ := headReader(out.Bytes(), 4096)
		h3, err := r3.ReadRequestHead()
		if err != nil {
			t.Fatalf("reading back %q: %v", out.Bytes(), err)
		}
		if v3 := viewRequest(h3); !equalView(v, v3) {
			t.Fatalf("read back %+v, want %+v", v3, v)
		}

		if u, err := http1.ParseAbsoluteForm(v.Method, v.Target); err == nil {
			if u.Host == "" || u.Port == 0 || u.PathQuery != "*" && u.PathQuery[0] != '/' {
				t.Fatalf("ParseAbsoluteForm(%q) = %+v", v.Target, u)
			}
			if host, _, err := http1.SplitAuthority(u.Authority); err != nil || host != u.Host {
				t.Fatalf("SplitAuthority(%q) = %q, %v after ParseAbsoluteForm gave %q", u.Authority, host, err, u.Host)
			}
		}
		if u, err := http1.ParseAuthorityForm(v.Target); err == nil && (u.Port == 0 || u.Host == "") {
			t.Fatalf("ParseAuthorityForm(%q) = %+v", v.Target, u)
		}
		n := len(h.Fields)
		kept := http1.StripIdentity(http1.StripHopByHop(h.Fields))
		if len(kept) > n {
			t.Fatal("stripping added fields")
		}
		for _, f := range kept {
			if http1.IsHopByHop(f.Name) || http1.IsIdentity(f.Name) {
				t.Fatalf("kept %q", f.Name)
			}
		}
	})
}

func equalView(a, b requestView) bool {
	return a.Method == b.Method && a.Target == b.Target && slices.Equal(a.Fields, b.Fields) &&
		a.ContentLength == b.ContentLength && a.Chunked == b.Chunked && a.Host == b.Host &&
		a.HasHost == b.HasHost && a.Close == b.Close && a.KeepAlive == b.KeepAlive &&
		a.Expect == b.Expect && a.Upgrade == b.Upgrade
}

// responseView is what a ResponseHead says, copied out of the Reader.
type responseView struct {
	StatusCode       int
	Reason           string
	Fields           []string
	ContentLength    int64
	Chunked          bool
	Close, KeepAlive bool
	Upgrade          bool
}

func viewResponse(h *http1.ResponseHead) responseView {
	v := responseView{
		StatusCode: h.StatusCode, Reason: string(h.Reason),
		ContentLength: h.ContentLength, Chunked: h.Chunked,
		Close: h.Close, KeepAlive: h.KeepAlive, Upgrade: h.Upgrade,
	}
	for _, f := range h.Fields {
		v.Fields = append(v.Fields, string(f.Name), string(f.Value))
	}
	return v
}

func equalResponse(a, b responseView) bool {
	return a.StatusCode == b.StatusCode && a.Reason == b.Reason && slices.Equal(a.Fields, b.Fields) &&
		a.ContentLength == b.ContentLength && a.Chunked == b.Chunked && a.Close == b.Close &&
		a.KeepAlive == b.KeepAlive && a.Upgrade == b.Upgrade
}

// FuzzResponseHead is FuzzRequestHead for ReadResponseHead, which also
// reads the body that the head frames, looking for panics.
func FuzzResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, br := headReader(data, 16)
		h, err := r.ReadResponseHead()
		r2, _ := headReader(data, 0)
		h2, err2 := r2.ReadResponseHead()
		if errStatus(err) != errStatus(err2) {
			t.Fatalf("bufio 16: %v; bufio holding all: %v", err, err2)
		}
		if err != nil {
			checkHeadError(t, data, err, 502)
			return
		}
		v := viewResponse(h)
		if v2 := viewResponse(h2); !equalResponse(v, v2) {
			t.Fatalf("bufio 16: %+v\nbufio holding all: %+v", v, v2)
		}
		if h.Size < 4 || !bytes.HasSuffix(data[:h.Size], []byte("\r\n\r\n")) {
			t.Fatalf("Size %d does not end at a CRLF CRLF", h.Size)
		}

		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		w := http1.NewWriter(bw)
		w.StatusLine(v.StatusCode, v.Reason)
		w.Fields(h.Fields)
		if err := w.EndHead(); err != nil {
			t.Fatalf("writing back %+v: %v", v, err)
		}
		bw.Flush()
		r3, _ := headReader(out.Bytes(), 4096)
		h3, err := r3.ReadResponseHead()
		if err != nil {
			t.Fatalf("reading back %q: %v", out.Bytes(), err)
		}
		if v3 := viewResponse(h3); !equalResponse(v, v3) {
			t.Fatalf("read back %+v, want %+v", v3, v)
		}

		b := r.Body(h.Framing("GET"), h.ContentLength, 0)
		n, err := io.Copy(io.Discard, b)
		switch {
		case err == nil && !b.Done():
			t.Fatal("body read to its end but not Done")
		case err != nil && (b.Done() || errStatus(err) != 502):
			t.Fatalf("body error %v (done %v), want status 502", err, b.Done())
		case n != b.BytesRead():
			t.Fatalf("copied %d bytes, BytesRead %d", n, b.BytesRead())
		}
		if err == nil && h.Framing("GET") != http1.BodyUntilClose {
			left, _ := io.ReadAll(br)
			if consumed := len(data) - len(left); !bytes.Equal(left, data[consumed:]) {
				t.Fatal("the body consumed bytes it did not account for")
			}
		}
	})
}

// decodeChunked decodes data as a chunked body with a bufio buffer of
// size bytes and returns the body, a copy of the trailers, the number of
// bytes consumed, and the error.
func decodeChunked(data []byte, size int, limit int64) (body []byte, trailers http1.Fields, consumed int, err error) {
	if size == 0 {
		size = len(data)
	}
	br := bufio.NewReaderSize(bytes.NewReader(data), size)
	r := http1.NewReader(br, 0)
	b := r.Body(http1.BodyChunked, 0, limit)
	body, err = io.ReadAll(b)
	if err != nil {
		return body, nil, 0, err
	}
	for _, f := range b.Trailers() {
		trailers = append(trailers, http1.Field{Name: bytes.Clone(f.Name), Value: bytes.Clone(f.Value)})
	}
	left, _ := io.ReadAll(br)
	return body, trailers, len(data) - len(left), nil
}

func equalFields(a, b http1.Fields) bool {
	return slices.EqualFunc(a, b, func(x, y http1.Field) bool {
		return bytes.Equal(x.Name, y.Name) && bytes.Equal(x.Value, y.Value)
	})
}

// FuzzChunkedBody checks that the chunked decoder never panics, stops at
// the end of the body, fails only with a 400 (or a 413 over a limit), and
// that a body it decodes, encoded again with http1.ChunkedWriter or
// http1.CopyBody, decodes to the same bytes and trailers.
func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5;a=b\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, trailers, consumed, err := decodeChunked(data, 16, 0)
		if err != nil {
			if errStatus(err) != 400 {
				t.Fatalf("error %v, want status 400", err)
			}
			return
		}
		if !bytes.HasSuffix(data[:consumed], []byte("\r\n")) {
			t.Fatalf("consumed %q does not end with CRLF", data[:consumed])
		}
		body2, trailers2, _, err := decodeChunked(data, 0, 0)
		if err != nil || !bytes.Equal(body, body2) || !equalFields(trailers, trailers2) {
			t.Fatalf("a bufio holding all decodes differently: %v", err)
		}
		if limit := int64(len(body)) - 1; limit > 0 {
			if _, _, _, err := decodeChunked(data, 16, limit); errStatus(err) != 413 {
				t.Fatalf("with limit %d: %v, want status 413", limit, err)
			}
		}

		// Re-encode in pieces of a size taken from the input.
		var enc bytes.Buffer
		cw := http1.NewChunkedWriter(&enc)
		step := 1 + len(data)%7
		for p := body; len(p) > 0; {
			n := min(step, len(p))
			if _, err := cw.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := cw.CloseWithTrailers(trailers); err != nil {
			t.Fatalf("CloseWithTrailers(%q) = %v", trailers, err)
		}
		got, gotTrailers, consumed, err := decodeChunked(enc.Bytes(), 16, 0)
		if err != nil || !bytes.Equal(got, body) || !equalFields(gotTrailers, trailers) || consumed != enc.Len() {
			t.Fatalf("re-encoded %q decodes to %q, %q, %v", enc.Bytes(), got, gotTrailers, err)
		}

		var copied bytes.Buffer
		r := http1.NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16), 0)
		if _, err := http1.CopyBody(&copied, r.Body(http1.BodyChunked, 0, 0), nil); err != nil {
			t.Fatal(err)
		}
		got, gotTrailers, _, err = decodeChunked(copied.Bytes(), 16, 0)
		if err != nil || !bytes.Equal(got, body) || !equalFields(gotTrailers, trailers) {
			t.Fatalf("CopyBody wrote %q, which decodes to %q, %q, %v", copied.Bytes(), got, gotTrailers, err)
		}
	})
}
