package fuzz

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"testing/iotest"

	"exfilguard/proxy/proxyproto"
)

// proxyResult is what proxyproto.Read returned and what it left unread.
type proxyResult struct {
	h    proxyproto.Header
	err  error
	rest []byte
}

// readProxy runs proxyproto.Read over r, which reads data, and checks that
// it consumed nothing on error and at most data on success.
func readProxy(t *testing.T, data []byte, r io.Reader) proxyResult {
	t.Helper()
	br := bufio.NewReaderSize(r, proxyproto.MinBufferSize)
	h, err := proxyproto.Read(br)
	rest, rerr := io.ReadAll(br)
	if rerr != nil {
		t.Fatalf("ReadAll after Read: %v", rerr)
	}
	if len(rest) > len(data) || !bytes.Equal(rest, data[len(data)-len(rest):]) {
		t.Fatalf("Read left %q, which does not end %q", rest, data)
	}
	if err != nil && len(rest) != len(data) {
		t.Fatalf("Read failed (%v) and consumed %d bytes", err, len(data)-len(rest))
	}
	return proxyResult{h, err, rest}
}

// headerLen is the length of the header that data starts with, computed
// independently of the parser: through the first LF for v1, 16 plus the
// length field for v2.
func headerLen(data []byte, version int) int {
	if version == 1 {
		return bytes.IndexByte(data, '\n') + 1
	}
	return 16 + int(binary.BigEndian.Uint16(data[14:16]))
}

// checkHeader checks the invariants of a parsed header.
func checkHeader(t *testing.T, h proxyproto.Header) {
	t.Helper()
	if h.Version != 1 && h.Version != 2 {
		t.Fatalf("header %+v: version not 1 or 2", h)
	}
	if h.Local {
		if h.Source.IsValid() || h.Destination.IsValid() {
			t.Fatalf("local header %+v carries an address", h)
		}
		return
	}
	for _, a := range []netip.AddrPort{h.Source, h.Destination} {
		if !a.IsValid() || a.Addr().Is4In6() || a.Addr().Zone() != "" {
			t.Fatalf("header %+v: address %v invalid, IPv4-mapped or zoned", h, a)
		}
	}
}

// FuzzProxyHeader reads arbitrary bytes as the start of a connection with
// proxyproto.Read and checks that:
//   - the result does not depend on how the bytes arrive (whole or one per
//     read);
//   - an error consumes nothing and is ErrNoHeader, a *proxyproto.Error or an
//     EOF; a header start that Detect rejects is ErrNoHeader;
//   - a header consumes exactly its own bytes (as counted independently) and
//     the same header and rest come back with more bytes after it;
//   - a header written back with AppendV1/AppendV2 reads back as the same
//     header, consuming exactly the written bytes.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.10 192.0.2.1 5555 3128\r\nGET http://example.com/ HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := readProxy(t, data, bytes.NewReader(data))
		one := readProxy(t, data, iotest.OneByteReader(bytes.NewReader(data)))
		if res.h != one.h || !bytes.Equal(res.rest, one.rest) || (res.err == nil) != (one.err == nil) ||
			res.err != nil && res.err.Error() != one.err.Error() {
			t.Fatalf("whole input: %+v, %v; one byte per read: %+v, %v", res.h, res.err, one.h, one.err)
		}

		detected, derr := proxyproto.Detect(bufio.NewReader(bytes.NewReader(data)))
		if derr == nil && !detected && !errors.Is(res.err, proxyproto.ErrNoHeader) {
			t.Fatalf("Detect = false but Read error = %v", res.err)
		}

		if res.err != nil {
			var perr *proxyproto.Error
			switch {
			case errors.As(res.err, &perr):
				if perr.Version != 1 && perr.Version != 2 || perr.Reason == "" {
					t.Fatalf("error %#v: bad version or no reason", perr)
				}
			case errors.Is(res.err, proxyproto.ErrNoHeader), errors.Is(res.err, io.EOF), errors.Is(res.err, io.ErrUnexpectedEOF):
			default:
				t.Fatalf("Read error %v is not ErrNoHeader, *Error or an EOF", res.err)
			}
			if res.h != (proxyproto.Header{}) {
				t.Fatalf("Read = %+v with error %v", res.h, res.err)
			}
			return
		}

		checkHeader(t, res.h)
		n := len(data) - len(res.rest)
		if want := headerLen(data, res.h.Version); n != want {
			t.Fatalf("Read(v%d) consumed %d bytes, header is %d", res.h.Version, n, want)
		}
		more := append(append([]byte(nil), data...), "GET / HTTP/1.1\r\n"...)
		if again := readProxy(t, more, bytes.NewReader(more)); again.err != nil || again.h != res.h || len(again.rest) != len(more)-n {
			t.Fatalf("with bytes after it: %+v, %v, %d left; want %+v, %d left", again.h, again.err, len(again.rest), res.h, len(more)-n)
		}

		var enc []byte
		if res.h.Version == 1 {
			enc = res.h.AppendV1(nil)
		} else {
			enc = res.h.AppendV2(nil)
		}
		back := readProxy(t, enc, bytes.NewReader(enc))
		if back.err != nil || back.h != res.h || len(back.rest) != 0 {
			t.Fatalf("%+v written as %q reads back as %+v, %v, %d left", res.h, enc, back.h, back.err, len(back.rest))
		}
	})
}
