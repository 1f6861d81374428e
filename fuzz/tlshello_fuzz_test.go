package fuzz

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"exfilguard/proxy/tlshello"
)

// helloResult is what ReadServerName returned.
type helloResult struct {
	name  string
	isTLS bool
	err   string // "" for nil
}

// readHello runs tlshello.ReadServerName over r through a bufio.Reader of
// size bytes with the given max, and checks that it consumed nothing of
// data, which r reads.
func readHello(t *testing.T, data []byte, r io.Reader, size, max int) helloResult {
	t.Helper()
	br := bufio.NewReaderSize(r, size)
	name, isTLS, err := tlshello.ReadServerName(br, max)
	if rest, _ := io.ReadAll(br); !bytes.Equal(rest, data) {
		t.Fatalf("ReadServerName consumed %d bytes; %d of %d left", len(data)-len(rest), len(rest), len(data))
	}
	res := helloResult{name: name, isTLS: isTLS}
	if err != nil {
		res.err = err.Error()
		if name != "" {
			t.Fatalf("ReadServerName = %q with error %v", name, err)
		}
	}
	return res
}

// helloMessage returns the handshake message that the handshake records at
// the start of data carry, or nil if they do not hold a whole one.
func helloMessage(data []byte) []byte {
	var msg []byte
	for len(msg) < 4 || len(msg) < 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
		if len(data) < 5 {
			return nil
		}
		n := int(data[3])<<8 | int(data[4])
		if len(data) < 5+n {
			return nil
		}
		msg = append(msg, data[5:5+n]...)
		data = data[5+n:]
	}
	return msg
}

// helloRecords splits msg into handshake records of at most size bytes of
// fragment each.
func helloRecords(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// checkHostName checks the rules a returned name keeps: 1 to 253 bytes of
// lower-case letters, digits, '-', '_' and '.', with no empty label.
func checkHostName(t *testing.T, name string) {
	t.Helper()
	if len(name) == 0 || len(name) > 253 || name[0] == '.' || name[len(name)-1] == '.' {
		t.Fatalf("server name %q: bad length or dot at an end", name)
	}
	for i := 0; i < len(name); i++ {
		switch ch := name[i]; {
		case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9', ch == '-', ch == '_':
		case ch == '.' && name[i-1] != '.':
		default:
			t.Fatalf("server name %q: byte %q at %d", name, ch, i)
		}
	}
}

// asciiLower lower-cases ASCII letters only: strings.ToLower would map
// U+212A KELVIN SIGN to "k" and hide a difference.
func asciiLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// replayConn is a net.Conn that reads r and discards what is written.
type replayConn struct{ r io.Reader }

func (c *replayConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

var errHelloSeen = errors.New("ClientHello seen")

// tlsServerName feeds data to a crypto/tls server, standing for the
// upstream, and returns the server name it read, ok when it accepted the
// ClientHello.
func tlsServerName(data []byte) (name string, ok bool) {
	srv := tls.Server(&replayConn{r: bytes.NewReader(data)}, &tls.Config{
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			name, ok = hi.ServerName, true
			return nil, errHelloSeen
		},
	})
	srv.Handshake()
	return name, ok
}

// FuzzClientHello checks tlshello.ReadServerName: no panic; nothing
// consumed; the same answer twice, through a reader that returns one byte
// at a time, and with max cut to the input; a returned name follows the
// name rules and survives re-splitting the hello into other records; and
// whenever crypto/tls, standing for the upstream, accepts a ClientHello,
// ReadServerName either refuses it or reads the same name, so that no
// input passes the tunnel SNI check with a name the upstream reads
// differently.
func FuzzClientHello(f *testing.F) {
	// A minimal ClientHello naming example.com in one record.
	f.Add([]byte("\x16\x03\x01\x00\x3f\x01\x00\x00\x3b\x03\x03" + string(make([]byte, 32)) +
		"\x00\x00\x02\x13\x01\x01\x00\x00\x10\x00\x00\x00\x0c\x00\x0a\x00\x00\x07example"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = tlshello.DefaultMax
		res := readHello(t, data, bytes.NewReader(data), size, size)
		if again := readHello(t, data, bytes.NewReader(data), size, size); again != res {
			t.Fatalf("ReadServerName = %+v, then %+v", res, again)
		}
		if one := readHello(t, data, iotest.OneByteReader(bytes.NewReader(data)), size, size); one != res {
			t.Fatalf("ReadServerName = %+v; through a one-byte reader %+v", res, one)
		}
		if len(data) > 0 {
			cut := readHello(t, data, bytes.NewReader(data), size, len(data))
			if (cut.err == "") != (res.err == "") || cut.name != res.name {
				t.Fatalf("ReadServerName = %+v; with max %d, %+v", res, len(data), cut)
			}
		}

		if !res.isTLS {
			// bytes.Reader fails with nothing but EOF.
			if res.err != "" || res.name != "" {
				t.Fatalf("ReadServerName = %+v, not TLS but a name or an error", res)
			}
			if len(data) > 1 && (data[0] == 21 || data[0] == 22) && data[1] < 0x10 {
				t.Fatalf("ReadServerName(% x...) = %+v, want isTLS", data[:2], res)
			}
		}
		if res.isTLS && res.err == "" {
			if res.name != "" {
				checkHostName(t, res.name)
			}
			msg := helloMessage(data)
			if msg == nil {
				t.Fatalf("ReadServerName = %+v, but the records hold no whole message", res)
			}
			for _, frag := range [][]byte{
				helloRecords(msg, 1),
				helloRecords(msg, 1+len(data)%len(msg)),
			} {
				if got := readHello(t, frag, bytes.NewReader(frag), len(frag), len(frag)); got != res {
					t.Fatalf("ReadServerName = %+v; re-split into %d bytes, %+v", res, len(frag), got)
				}
			}
		}

		if up, ok := tlsServerName(data); ok && res.err == "" {
			if !res.isTLS || res.name != asciiLower(up) {
				t.Fatalf("crypto/tls reads server name %q; ReadServerName = %+v", up, res)
			}
		}
	})
}
