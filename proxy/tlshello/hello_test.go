package tlshello

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// captureHello runs a tls.Client with cfg over a net.Pipe and returns the
// records of its first flight: the ClientHello, however many records it
// takes.
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(cc, cfg).Handshake() // fails when sc closes
		cc.Close()
	}()
	t.Cleanup(func() {
		sc.Close()
		<-done
	})
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out, msg []byte
	for len(msg) < 4 || len(msg) < 4+u24(msg[1:4]) {
		hdr := make([]byte, recordHeaderLen)
		if _, err := io.ReadFull(sc, hdr); err != nil {
			t.Fatalf("read record header: %v", err)
		}
		frag := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(sc, frag); err != nil {
			t.Fatalf("read record: %v", err)
		}
		out = append(append(out, hdr...), frag...)
		msg = append(msg, frag...)
	}
	return out
}

func u24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// messageOf returns the handshake bytes that the records in b carry.
func messageOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var msg []byte
	for len(b) > 0 {
		if len(b) < recordHeaderLen {
			t.Fatalf("messageOf: %d bytes left, want a record header", len(b))
		}
		n := int(b[3])<<8 | int(b[4])
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
	}
	return msg
}

// fragment splits a handshake message into records of size bytes of
// fragment each (the last may be shorter).
func fragment(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, record(msg[:n])...)
		msg = msg[n:]
	}
	return out
}

// record wraps frag in one handshake record with version 0x0301, as
// initial ClientHellos have it (RFC 8446 §5.1).
func record(frag []byte) []byte { return rawRecord(contentTypeHandshake, 0x0301, frag) }

func rawRecord(typ byte, vers uint16, frag []byte) []byte {
	return cat([]byte{typ, byte(vers >> 8), byte(vers), byte(len(frag) >> 8), byte(len(frag))}, frag)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func v8(bs ...[]byte) []byte {
	b := cat(bs...)
	return cat([]byte{byte(len(b))}, b)
}

func v16(bs ...[]byte) []byte {
	b := cat(bs...)
	return cat([]byte{byte(len(b) >> 8), byte(len(b))}, b)
}

// handshake returns a handshake message of type typ.
func handshake(typ byte, bs ...[]byte) []byte {
	b := cat(bs...)
	return cat([]byte{typ, byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b)
}

var (
	random    = bytes.Repeat([]byte{0xaa}, 32)
	sessionID = bytes.Repeat([]byte{0x55}, 32)
	suites    = []byte{0x13, 0x01, 0x13, 0x02}
)

// body returns a ClientHello body with the given extensions.
func body(exts ...[]byte) []byte {
	return cat([]byte{3, 3}, random, v8(sessionID), v16(suites), v8([]byte{0}), v16(exts...))
}

// hello returns a ClientHello with the given extensions in one record.
func hello(exts ...[]byte) []byte { return record(handshake(typeClientHello, body(exts...))) }

func ext(typ uint16, data ...[]byte) []byte {
	return cat([]byte{byte(typ >> 8), byte(typ)}, v16(data...))
}

// sni returns a server_name extension listing names as host_names.
func sni(names ...string) []byte {
	var entries [][]byte
	for _, n := range names {
		entries = append(entries, entry(nameTypeHostName, n))
	}
	return ext(extServerName, v16(entries...))
}

func entry(typ byte, name string) []byte { return cat([]byte{typ}, v16([]byte(name))) }

var alpn = ext(16, v16(v8([]byte("h2")), v8([]byte("http/1.1"))))

// readName runs ReadServerName on data through a bufio.Reader of
// DefaultMax bytes and checks that it consumed nothing.
func readName(t testing.TB, data []byte, max int) (string, bool, error) {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(data), DefaultMax)
	name, isTLS, err := ReadServerName(br, max)
	if rest, _ := io.ReadAll(br); !bytes.Equal(rest, data) {
		t.Fatalf("ReadServerName consumed %d bytes; left %d of %d", len(data)-len(rest), len(rest), len(data))
	}
	return name, isTLS, err
}

func TestRealClientHellos(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"server name", &tls.Config{ServerName: "example.com"}, "example.com"},
		{"mixed case", &tls.Config{ServerName: "WWW.Example.COM"}, "www.example.com"},
		// crypto/tls strips the trailing dot itself.
		{"trailing dot", &tls.Config{ServerName: "example.com."}, "example.com"},
		{"no server name", &tls.Config{InsecureSkipVerify: true}, ""},
		// RFC 6066 §3: no IP literals in SNI; crypto/tls omits them.
		{"IPv4", &tls.Config{ServerName: "192.0.2.1"}, ""},
		{"IPv6", &tls.Config{ServerName: "2001:db8::1"}, ""},
		{"ALPN", &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}, "api.example.com"},
		{"TLS 1.2 only", &tls.Config{ServerName: "old.example.com", MaxVersion: tls.VersionTLS12}, "old.example.com"},
		{"TLS 1.3 only", &tls.Config{ServerName: "new.example.com", MinVersion: tls.VersionTLS13}, "new.example.com"},
		{"TLS 1.0 to 1.3", &tls.Config{ServerName: "any.example.com", MinVersion: tls.VersionTLS10}, "any.example.com"},
		{"long name", &tls.Config{ServerName: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example"}, strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := captureHello(t, tt.cfg)
			name, isTLS, err := readName(t, data, DefaultMax)
			if name != tt.want || !isTLS || err != nil {
				t.Fatalf("ReadServerName(hello) = %q, %v, %v; want %q, true, nil", name, isTLS, err, tt.want)
			}
			msg := messageOf(t, data)
			for _, size := range []int{1, 2, 3, 7, 100} {
				data := fragment(msg, size)
				name, isTLS, err := readName(t, data, DefaultMax)
				if name != tt.want || !isTLS || err != nil {
					t.Errorf("ReadServerName(hello in %d-byte records) = %q, %v, %v; want %q, true, nil", size, name, isTLS, err, tt.want)
				}
			}
			// Two records, cut in the handshake header, in the middle and
			// before the last byte.
			for _, at := range []int{1, 2, 3, 4, 5, 39, len(msg) / 2, len(msg) - 1} {
				data := cat(record(msg[:at]), record(msg[at:]))
				name, isTLS, err := readName(t, data, DefaultMax)
				if name != tt.want || !isTLS || err != nil {
					t.Errorf("ReadServerName(hello cut at %d) = %q, %v, %v; want %q, true, nil", at, name, isTLS, err, tt.want)
				}
			}
		})
	}
}

// TestTruncated cuts real and built hellos before each of their bytes:
// every cut falls inside some length field's span, and each must be an
// error wrapping io.ErrUnexpectedEOF, never a name.
func TestTruncated(t *testing.T) {
	inputs := map[string][]byte{
		"TLS 1.3":         captureHello(t, &tls.Config{ServerName: "example.com", MinVersion: tls.VersionTLS13}),
		"TLS 1.2":         captureHello(t, &tls.Config{ServerName: "example.com", MaxVersion: tls.VersionTLS12}),
		"built":           hello(alpn, sni("example.com")),
		"3-byte records":  fragment(handshake(typeClientHello, body(sni("example.com"))), 3),
		"without SNI ext": hello(),
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			for n := 1; n < len(data); n++ {
				got, isTLS, err := readName(t, data[:n], DefaultMax)
				if !isTLS || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadServerName(first %d of %d bytes) = %q, %v, %v; want an io.ErrUnexpectedEOF", n, len(data), got, isTLS, err)
				}
			}
		})
	}
}

// TestLengthFields moves each length field of a built hello by one either
// way; each change must be refused.
func TestLengthFields(t *testing.T) {
	base := hello(sni("example.com"))
	// Offsets and sizes of the length fields of base.
	fields := []struct {
		name     string
		off, len int
	}{
		{"record", 3, 2},
		{"handshake", 6, 3},
		{"legacy_session_id", 43, 1},
		{"cipher_suites", 76, 2},
		{"legacy_compression_methods", 82, 1},
		{"extensions", 84, 2},
		{"extension_data", 88, 2},
		{"server_name_list", 90, 2},
		{"host_name", 93, 2},
	}
	if name, _, err := readName(t, base, DefaultMax); name != "example.com" || err != nil {
		t.Fatalf("ReadServerName(base) = %q, %v; want example.com", name, err)
	}
	for _, f := range fields {
		for _, delta := range []int{-1, 1} {
			t.Run(fmt.Sprintf("%s%+d", f.name, delta), func(t *testing.T) {
				data := bytes.Clone(base)
				v := 0
				for _, b := range data[f.off : f.off+f.len] {
					v = v<<8 | int(b)
				}
				v += delta
				for i := f.off + f.len - 1; i >= f.off; i-- {
					data[i] = byte(v)
					v >>= 8
				}
				if name, isTLS, err := readName(t, data, DefaultMax); err == nil || !isTLS {
					t.Fatalf("ReadServerName(%s length %+d) = %q, %v, %v; want an error", f.name, delta, name, isTLS, err)
				}
			})
		}
	}
}

func TestBuilt(t *testing.T) {
	many := func(n int) [][]byte {
		var exts [][]byte
		for i := range n {
			exts = append(exts, ext(uint16(0x1000+i)))
		}
		return exts
	}
	msg := handshake(typeClientHello, body(sni("example.com")))
	name253 := strings.Repeat(strings.Repeat("a", 62)+".", 4) + "b" // 4*63 + 1
	tests := []struct {
		name string
		data []byte
		max  int // 0: DefaultMax
		want string
		err  error // nil: success; errAny: any error
	}{
		{"SNI", hello(sni("example.com")), 0, "example.com", nil},
		{"SNI after others", hello(alpn, ext(43, v8([]byte{3, 4})), sni("example.com"), ext(0xfafa)), 0, "example.com", nil},
		{"upper case and trailing dot", hello(sni("WWW.Example.COM.")), 0, "www.example.com", nil},
		{"digits, hyphen, underscore", hello(sni("_acme-1.x9.example")), 0, "_acme-1.x9.example", nil},
		{"IPv4 literal", hello(sni("192.0.2.1")), 0, "192.0.2.1", nil},
		{"253 bytes", hello(sni(name253)), 0, name253, nil},
		{"253 bytes and a dot", hello(sni(name253 + ".")), 0, name253, nil},
		{"no SNI", hello(alpn), 0, "", nil},
		{"empty extensions", hello(), 0, "", nil},
		// RFC 5246 §7.4.1.2: the extensions field may be absent.
		{"no extensions", record(handshake(typeClientHello, []byte{3, 3}, random, v8(), v16(suites), v8([]byte{0}))), 0, "", nil},
		{"SSL 3.0 record version", rawRecord(22, 0x0300, msg), 0, "example.com", nil},
		{"0x0304 record version", rawRecord(22, 0x0304, msg), 0, "example.com", nil},
		{"128 extensions", hello(append(many(127), sni("example.com"))...), 0, "example.com", nil},
		{"max is the hello", hello(sni("example.com")), len(hello(sni("example.com"))), "example.com", nil},
		{"max fits 1-byte records", fragment(msg, 1), len(fragment(msg, 1)), "example.com", nil},
		{"data after the hello's record", cat(hello(sni("example.com")), []byte("\x14\x03\x03\x00\x01\x01")), 0, "example.com", nil},

		{"second record not handshake", cat(record(msg[:10]), rawRecord(21, 0x0303, msg[10:])), 0, "", errRecordType},
		{"second record application data", cat(record(msg[:10]), rawRecord(23, 0x0303, msg[10:])), 0, "", errRecordType},
		{"second record version 0x0305", cat(record(msg[:10]), rawRecord(22, 0x0305, msg[10:])), 0, "", errRecordVersion},
		{"second record version 0x0203", cat(record(msg[:10]), rawRecord(22, 0x0203, msg[10:])), 0, "", errRecordVersion},
		// crypto/tls and OpenSSL drop warning alerts before a ClientHello,
		// and crypto/tls takes any first record version below 0x1000: a
		// hello behind them must not pass as "not TLS".
		{"warning alert first", cat(rawRecord(21, 0x0301, []byte{1, 90}), hello(sni("evil.example"))), 0, "", errRecordType},
		{"fatal alert", rawRecord(21, 0x0303, []byte{2, 40}), 0, "", errRecordType},
		{"alert version 0x0001", rawRecord(21, 0x0001, []byte{1, 90}), 0, "", errRecordType},
		{"version 0x0305", rawRecord(22, 0x0305, msg), 0, "", errRecordVersion},
		{"version 0x03ff", rawRecord(22, 0x03ff, msg), 0, "", errRecordVersion},
		{"version 2.0", rawRecord(22, 0x0200, msg), 0, "", errRecordVersion},
		{"version 0x0000", rawRecord(22, 0x0000, msg), 0, "", errRecordVersion},
		{"version 0x0fff", rawRecord(22, 0x0fff, msg), 0, "", errRecordVersion},
		{"zero-length record", cat(record(nil), hello(sni("example.com"))), 0, "", errEmptyRecord},
		{"zero-length record inside", cat(record(msg[:10]), record(nil), record(msg[10:])), 0, "", errEmptyRecord},
		{"record over 2^14", record(handshake(typeClientHello, body(sni("example.com"), ext(21, make([]byte, maxFragment))))), 0, "", errRecordOverflow},
		{"ServerHello", record(handshake(2, body(sni("example.com")))), 0, "", errNotClientHello},
		{"HelloRequest", record(handshake(0, nil)), 0, "", errNotClientHello},
		{"Finished", record(handshake(20, make([]byte, 32))), 0, "", errNotClientHello},
		{"handshake in record with more", record(cat(msg, handshake(20, make([]byte, 32)))), 0, "", errTrailingRecord},
		{"legacy_version 2.0", record(handshake(typeClientHello, []byte{2, 0}, body(sni("example.com"))[2:])), 0, "", errVersion},
		{"session id of 33", record(handshake(typeClientHello, []byte{3, 3}, random, v8(make([]byte, 33)), v16(suites), v8([]byte{0}), v16(sni("example.com")))), 0, "", errSessionID},
		{"odd cipher_suites", record(handshake(typeClientHello, []byte{3, 3}, random, v8(), v16(suites[:3]), v8([]byte{0}), v16(sni("example.com")))), 0, "", errCipherSuites},
		{"no cipher_suites", record(handshake(typeClientHello, []byte{3, 3}, random, v8(), v16(), v8([]byte{0}), v16(sni("example.com")))), 0, "", errCipherSuites},
		{"no compression methods", record(handshake(typeClientHello, []byte{3, 3}, random, v8(), v16(suites), v8(), v16(sni("example.com")))), 0, "", errCompression},
		{"data after extensions", record(handshake(typeClientHello, body(sni("example.com")), []byte{0})), 0, "", errTrailing},
		{"one byte of extensions", record(handshake(typeClientHello, body()[:len(body())-2], []byte{0})), 0, "", errTruncated},
		{"extension past the block", record(handshake(typeClientHello, body()[:len(body())-2], v16([]byte{0, 16, 0, 9, 0}))), 0, "", errTruncated},
		{"two host_names", hello(sni("example.com", "evil.example")), 0, "", errTwoNames},
		{"same host_name twice", hello(sni("example.com", "example.com")), 0, "", errTwoNames},
		{"host_name then other type", hello(ext(0, v16(entry(0, "example.com"), entry(1, "evil.example")))), 0, "", errNameType},
		{"other type then host_name", hello(ext(0, v16(entry(1, "evil.example"), entry(0, "example.com")))), 0, "", errNameType},
		{"duplicate extension", hello(alpn, sni("example.com"), alpn), 0, "", errDuplicate},
		{"duplicate server_name", hello(sni("example.com"), sni("evil.example")), 0, "", errDuplicate},
		{"duplicate empty extensions", hello(ext(0x1234), ext(0x1234)), 0, "", errDuplicate},
		{"129 extensions", hello(append(many(128), sni("example.com"))...), 0, "", errTooMany},
		{"empty server_name data", hello(ext(0)), 0, "", errTruncated},
		{"empty server_name_list", hello(ext(0, v16())), 0, "", errServerName},
		{"data after server_name_list", hello(ext(0, v16(entry(0, "example.com")), []byte{0})), 0, "", errServerName},
		{"empty name", hello(sni("")), 0, "", errEmptyName},
		{"dot", hello(sni(".")), 0, "", errEmptyName},
		{"space", hello(sni("exa mple.com")), 0, "", errNameByte},
		{"NUL", hello(sni("example.com\x00.evil.example")), 0, "", errNameByte},
		{"non-ASCII", hello(sni("exämple.com")), 0, "", errNameByte},
		{"high byte", hello(sni("example.co\xff")), 0, "", errNameByte},
		{"port", hello(sni("example.com:443")), 0, "", errNameByte},
		{"bracketed IPv6", hello(sni("[2001:db8::1]")), 0, "", errNameByte},
		{"254 bytes", hello(sni(name253 + "c")), 0, "", errLongName},
		{"300 bytes", hello(sni(strings.Repeat("a", 300))), 0, "", errLongName},
		{"leading dot", hello(sni(".example.com")), 0, "", errEmptyLabel},
		{"empty label", hello(sni("example..com")), 0, "", errEmptyLabel},
		{"two trailing dots", hello(sni("example.com..")), 0, "", errEmptyLabel},
		{"over max", hello(sni("example.com")), len(hello(sni("example.com"))) - 1, "", errTooLarge},
		{"1-byte records over max", fragment(msg, 1), len(fragment(msg, 1)) - 1, "", errTooLarge},
		{"over a tiny max", hello(sni("example.com")), 4, "", errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = DefaultMax
			}
			name, isTLS, err := readName(t, tt.data, max)
			if name != tt.want || !isTLS || err != tt.err {
				t.Fatalf("ReadServerName(%s) = %q, %v, %v; want %q, true, %v", tt.name, name, isTLS, err, tt.want, tt.err)
			}
		})
	}
}

func TestNotTLS(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"HTTP", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
		{"SSH", "SSH-2.0-OpenSSH_9.6\r\n"},
		{"SSLv2 hello", "\x80\x2e\x01\x03\x01\x00\x15"},
		{"application data record", "\x17\x03\x03\x00\x01x"},
		{"22 then text", "\x16GET"},
		{"22 then one byte", "\x16G"},
		{"change_cipher_spec record", "\x14\x03\x03\x00\x01\x01"},
		{"22 then 0x10", "\x16\x10\x00\x00\x04\x01\x00\x00\x00"},
		{"21 then text", "\x15GET"},
		{"21 then 0xff", "\x15\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, isTLS, err := readName(t, []byte(tt.data), DefaultMax)
			if name != "" || isTLS || err != nil {
				t.Fatalf("ReadServerName(%q) = %q, %v, %v; want \"\", false, nil", tt.data, name, isTLS, err)
			}
		})
	}
}

// TestReaderSmallerThanMax checks that max is cut to the bufio.Reader's
// size: a hello that does not fit is an error, not a bufio.ErrBufferFull.
func TestReaderSmallerThanMax(t *testing.T) {
	data := hello(alpn, sni("example.com"))
	br := bufio.NewReaderSize(bytes.NewReader(data), 64)
	if name, isTLS, err := ReadServerName(br, DefaultMax); err != errTooLarge || !isTLS {
		t.Fatalf("ReadServerName(%d-byte hello, 64-byte reader) = %q, %v, %v; want %v", len(data), name, isTLS, err, errTooLarge)
	}
	br = bufio.NewReaderSize(bytes.NewReader(data), len(data))
	if name, isTLS, err := ReadServerName(br, DefaultMax); name != "example.com" || !isTLS || err != nil {
		t.Fatalf("ReadServerName(%d-byte hello, reader of its size) = %q, %v, %v; want example.com", len(data), name, isTLS, err)
	}
}

// TestWaits checks what a slow peer does, in a synctest bubble: a partial
// hello blocks until the caller's deadline, and a length over max fails
// at once without waiting for the rest.
func TestWaits(t *testing.T) {
	data := hello(sni("example.com"))
	tests := []struct {
		name  string
		sent  []byte
		max   int
		isTLS bool
		err   error
	}{
		{"nothing", nil, DefaultMax, false, os.ErrDeadlineExceeded},
		{"one byte", data[:1], DefaultMax, true, os.ErrDeadlineExceeded},
		{"alert byte", []byte{21}, DefaultMax, true, os.ErrDeadlineExceeded},
		{"text", []byte("G"), DefaultMax, false, nil},
		{"record header", data[:5], DefaultMax, true, os.ErrDeadlineExceeded},
		{"half", data[:len(data)/2], DefaultMax, true, os.ErrDeadlineExceeded},
		{"all but one byte", data[:len(data)-1], DefaultMax, true, os.ErrDeadlineExceeded},
		{"record over max", data[:5], 100, true, errTooLarge},
		{"message over max", []byte("\x16\x03\x01\x00\x04\x01\xff\xff\xff"), DefaultMax, true, errTooLarge},
		{"message over max in 1-byte records", fragment([]byte{1, 0, 0x50, 0}, 1), DefaultMax, true, errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cc, sc := net.Pipe()
				defer cc.Close()
				defer sc.Close()
				go cc.Write(tt.sent) // returns once the bufio.Reader has it all
				start := time.Now()
				sc.SetReadDeadline(start.Add(5 * time.Second))
				name, isTLS, err := ReadServerName(bufio.NewReaderSize(sc, DefaultMax), tt.max)
				if name != "" || isTLS != tt.isTLS || !errors.Is(err, tt.err) {
					t.Fatalf("ReadServerName(%s) = %q, %v, %v; want \"\", %v, %v", tt.name, name, isTLS, err, tt.isTLS, tt.err)
				}
				if waited := time.Since(start); tt.err == errTooLarge && waited != 0 {
					t.Errorf("ReadServerName(%s) waited %v for a hello over max", tt.name, waited)
				}
			})
		})
	}
}

// testCert returns a self-signed certificate for example.com.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// peekedConn reads through the bufio.Reader that ReadServerName peeked
// into, as a tunnel forwards it.
type peekedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c peekedConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// TestLiveHandshake reads the name from a live client that then waits for
// the server (so ReadServerName must not wait for more than the hello),
// and then completes the handshake through the same bufio.Reader: the
// hello is intact and the server sees the same name.
func TestLiveHandshake(t *testing.T) {
	cert := testCert(t)
	for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(vers), func(t *testing.T) {
			cc, sc := net.Pipe()
			defer sc.Close()
			deadline := time.Now().Add(10 * time.Second)
			cc.SetDeadline(deadline)
			sc.SetDeadline(deadline)
			errc := make(chan error, 1)
			go func() {
				defer cc.Close()
				c := tls.Client(cc, &tls.Config{ServerName: "Example.com", InsecureSkipVerify: true, MinVersion: vers, MaxVersion: vers})
				errc <- c.Handshake()
			}()
			br := bufio.NewReaderSize(sc, DefaultMax)
			name, isTLS, err := ReadServerName(br, DefaultMax)
			if name != "example.com" || !isTLS || err != nil {
				t.Fatalf("ReadServerName(live hello) = %q, %v, %v; want example.com, true, nil", name, isTLS, err)
			}
			var seen string
			srv := tls.Server(peekedConn{sc, br}, &tls.Config{
				Certificates: []tls.Certificate{cert},
				GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
					seen = hi.ServerName
					return nil, nil
				},
			})
			if err := srv.Handshake(); err != nil {
				t.Fatalf("server Handshake after ReadServerName: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("client Handshake: %v", err)
			}
			if seen != "Example.com" {
				t.Errorf("server saw server name %q, want Example.com", seen)
			}
		})
	}
}

func TestAllocs(t *testing.T) {
	data := captureHello(t, &tls.Config{ServerName: "example.com", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}})
	for name, data := range map[string][]byte{"one record": data, "1-byte records": fragment(messageOf(t, data), 1)} {
		t.Run(name, func(t *testing.T) {
			rd := bytes.NewReader(data)
			br := bufio.NewReaderSize(rd, DefaultMax)
			allocs := testing.AllocsPerRun(100, func() {
				rd.Reset(data)
				br.Reset(rd)
				if name, _, err := ReadServerName(br, DefaultMax); name != "example.com" || err != nil {
					t.Fatalf("ReadServerName = %q, %v", name, err)
				}
			})
			if allocs > 1 {
				t.Errorf("ReadServerName allocates %v times, want 1 (the name)", allocs)
			}
		})
	}
}

func BenchmarkReadServerName(b *testing.B) {
	data := captureHello(b, &tls.Config{ServerName: "www.example.com", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}})
	for name, data := range map[string][]byte{
		"TLS13":                data,
		"TLS13-1-byte-records": fragment(messageOf(b, data), 1),
		"not-TLS":              []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	} {
		b.Run(name, func(b *testing.B) {
			rd := bytes.NewReader(data)
			br := bufio.NewReaderSize(rd, DefaultMax)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rd.Reset(data)
				br.Reset(rd)
				if _, _, err := ReadServerName(br, DefaultMax); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// replayConn is a net.Conn that reads r and discards what is written.
type replayConn struct {
	net.Conn // nil: only the methods below are called
	r        io.Reader
}

func (c replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c replayConn) Write(p []byte) (int, error) { return len(p), nil }

var errHelloSeen = errors.New("ClientHello seen")

// upstreamServerName feeds data to a crypto/tls server and returns the
// server name it read, ok when it accepted the ClientHello.
func upstreamServerName(data []byte) (name string, ok bool) {
	tls.Server(replayConn{r: bytes.NewReader(data)}, &tls.Config{
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			name, ok = hi.ServerName, true
			return nil, errHelloSeen
		},
	}).Handshake()
	return name, ok
}

// TestUpstreamLeniency keeps the inputs that crypto/tls, as an upstream,
// reads as a ClientHello naming evil.example although a parser that took
// only well-formed handshake records as TLS would let them through as
// "not TLS", or one lenient on name types would read example.com.
// ReadServerName must refuse each.
func TestUpstreamLeniency(t *testing.T) {
	msg := handshake(typeClientHello, body(sni("evil.example")))
	tests := []struct {
		name string
		data []byte
	}{
		{"warning alert first", cat(rawRecord(21, 0x0301, []byte{1, 90}), record(msg))},
		{"16 warning alerts first", cat(bytes.Repeat(rawRecord(21, 0x0301, []byte{1, 90}), 16), record(msg))},
		{"warning alert inside", cat(record(msg[:10]), rawRecord(21, 0x0301, []byte{1, 90}), record(msg[10:]))},
		{"record version 0x0305", rawRecord(22, 0x0305, msg)},
		{"record version 0x0000", rawRecord(22, 0x0000, msg)},
		{"record version 0x0fff", rawRecord(22, 0x0fff, msg)},
		{"name type 1 first", hello(ext(0, v16(entry(1, "example.com"), entry(0, "evil.example"))))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if up, ok := upstreamServerName(tt.data); !ok || up != "evil.example" {
				t.Fatalf("crypto/tls server name = %q, %v; want evil.example, true (the test input is stale)", up, ok)
			}
			if name, isTLS, err := readName(t, tt.data, DefaultMax); err == nil || !isTLS {
				t.Fatalf("ReadServerName(%s) = %q, %v, %v; want isTLS and an error", tt.name, name, isTLS, err)
			}
		})
	}
}
