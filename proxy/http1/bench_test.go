package http1

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// typicalRequest is a browser-like request through the proxy: a request
// line and ten header fields.
const typicalRequest = "GET http://api.example.com/v1/items?page=2&limit=50 HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=3f2a9c1e8b7d4f60a1b2c3d4e5f60718; theme=dark\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"Cache-Control: max-age=0\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl\r\n" +
	"\r\n"

const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Date: Tue, 25 Nov 2025 10:00:00 GMT\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Content-Length: 1234\r\n" +
	"Cache-Control: private, max-age=0\r\n" +
	"Server: nginx\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"X-Request-Id: 7b1f2c3d-4e5f-6071-8293-a4b5c6d7e8f9\r\n" +
	"Strict-Transport-Security: max-age=63072000\r\n" +
	"\r\n"

// loopReader serves the same bytes forever without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkReadRequestHead(b *testing.B) {
	r := NewReader(bufio.NewReaderSize(&loopReader{data: []byte(typicalRequest)}, 64<<10), 0)
	b.SetBytes(int64(len(typicalRequest)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadRequestHead(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadResponseHead(b *testing.B) {
	// Each response claims a 1234-byte body; read it so the next head
	// can be read.
	msg := typicalResponse + strings.Repeat("x", 1234)
	r := NewReader(bufio.NewReaderSize(&loopReader{data: []byte(msg)}, 64<<10), 0)
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(typicalResponse)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := r.ReadResponseHead()
		if err != nil {
			b.Fatal(err)
		}
		body := r.Body(h.Framing("GET"), h.ContentLength, 0)
		for {
			if _, err := body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkChunkedDecode(b *testing.B) {
	// 1 MiB in 16 KiB chunks, as a streaming upstream would send it.
	var enc bytes.Buffer
	cw := NewChunkedWriter(&enc)
	chunk := bytes.Repeat([]byte("a"), 16<<10)
	for range 64 {
		cw.Write(chunk)
	}
	cw.Close()
	data := enc.Bytes()
	src := bytes.NewReader(data)
	br := bufio.NewReaderSize(src, 32<<10)
	r := NewReader(br, 0)
	buf := make([]byte, 32<<10)
	b.SetBytes(64 << 14)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		br.Reset(src)
		r.Reset(br, 0)
		body := r.Body(BodyChunked, 0, 0)
		for {
			if _, err := body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
