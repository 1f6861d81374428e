package proxyproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

const httpReq = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"

// v2Header builds a v2 header: signature, verCmd, fam, the length of the
// joined parts and the parts.
func v2Header(verCmd, fam byte, parts ...[]byte) []byte {
	var payload []byte
	for _, p := range parts {
		payload = append(payload, p...)
	}
	b := append([]byte(v2Sig), verCmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// addr4 is a v2 TCP4 address block.
func addr4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// addr6 is a v2 TCP6 address block.
func addr6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// tlv is one TLV.
func tlv(typ byte, value string) []byte {
	b := []byte{typ, byte(len(value) >> 8), byte(len(value))}
	return append(b, value...)
}

// withCRC appends a CRC32C TLV (PP §2.2.3) to the v2 header hdr, fixing its
// length, and fills in the checksum, plus delta.
func withCRC(hdr []byte, delta uint32) []byte {
	at := len(hdr) + 3
	hdr = append(hdr, tlvCRC32C, 0, 4, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(hdr[14:16], uint16(len(hdr)-16))
	binary.BigEndian.PutUint32(hdr[at:], crc32.Checksum(hdr, crc32.MakeTable(crc32.Castagnoli))+delta)
	return hdr
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// readCase runs Read over input through r (nil: the whole input at once) and
// returns the header, the error and the bytes left in the reader.
func readCase(t testing.TB, input string, wrap func(io.Reader) io.Reader) (Header, error, string) {
	t.Helper()
	var r io.Reader = strings.NewReader(input)
	if wrap != nil {
		r = wrap(r)
	}
	br := bufio.NewReaderSize(r, MinBufferSize)
	h, err := Read(br)
	rest, rerr := io.ReadAll(br)
	if rerr != nil {
		t.Fatalf("ReadAll after Read: %v", rerr)
	}
	return h, err, string(rest)
}

type readTest struct {
	name  string
	input string
	want  Header
	err   error  // matched with errors.Is
	rest  string // bytes left after a successful Read
}

// runReadTests checks each case whole and one byte per read: the result and
// the bytes consumed must not depend on how the input is segmented, success
// must consume exactly the header, and an error must consume nothing.
func runReadTests(t *testing.T, tests []readTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{nil, iotest.OneByteReader} {
				h, err, rest := readCase(t, tt.input, wrap)
				if tt.err != nil {
					if !errors.Is(err, tt.err) {
						t.Fatalf("Read(%q) error = %v, want %v", tt.input, err, tt.err)
					}
					if h != (Header{}) {
						t.Errorf("Read(%q) = %+v with error", tt.input, h)
					}
					if rest != tt.input {
						t.Errorf("Read(%q) failed and consumed %d bytes", tt.input, len(tt.input)-len(rest))
					}
					continue
				}
				if err != nil {
					t.Fatalf("Read(%q) error = %v", tt.input, err)
				}
				if h != tt.want {
					t.Errorf("Read(%q) = %+v, want %+v", tt.input, h, tt.want)
				}
				if rest != tt.rest {
					t.Errorf("Read(%q) left %q, want %q", tt.input, rest, tt.rest)
				}
			}
		})
	}
}

func v1(src, dst string) Header {
	return Header{Version: 1, Source: ap(src), Destination: ap(dst)}
}

func TestReadV1(t *testing.T) {
	ffff := "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	worst := "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n" // PP §2.1 worst case
	if len(worst) != MaxV1Len {
		t.Fatalf("worst case is %d bytes, want %d", len(worst), MaxV1Len)
	}
	runReadTests(t, []readTest{
		// Valid lines.
		{name: "tcp4", input: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + httpReq,
			want: v1("192.168.0.1:56324", "192.168.0.11:443"), rest: httpReq},
		{name: "tcp4 reference 15.5", input: "PROXY TCP4 203.0.113.10 192.0.2.1 5555 3128\r\n" + httpReq,
			want: v1("203.0.113.10:5555", "192.0.2.1:3128"), rest: httpReq},
		{name: "tcp4 max", input: "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
			want: v1("255.255.255.255:65535", "255.255.255.255:65535")},
		{name: "tcp4 zeros", input: "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\nX",
			want: v1("0.0.0.0:0", "0.0.0.0:0"), rest: "X"},
		{name: "tcp6", input: "PROXY TCP6 2001:db8::1 2001:db8::2 40000 3128\r\n" + httpReq,
			want: v1("[2001:db8::1]:40000", "[2001:db8::2]:3128"), rest: httpReq},
		{name: "tcp6 longest", input: "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n",
			want: v1("["+ffff+"]:65535", "["+ffff+"]:65535")},
		{name: "tcp6 upper case hex", input: "PROXY TCP6 2001:DB8::A 2001:db8::b 1 2\r\n",
			want: v1("[2001:db8::a]:1", "[2001:db8::b]:2")},
		{name: "tcp6 unspecified", input: "PROXY TCP6 :: ::1 1 2\r\n",
			want: v1("[::]:1", "[::1]:2")},
		{name: "tcp6 mapped unmapped", input: "PROXY TCP6 ::ffff:203.0.113.10 ::ffff:c000:201 5555 3128\r\n",
			want: v1("203.0.113.10:5555", "192.0.2.1:3128")},
		{name: "unknown", input: "PROXY UNKNOWN\r\n" + httpReq,
			want: Header{Version: 1, Local: true}, rest: httpReq},
		{name: "unknown worst case ignored", input: worst + "X",
			want: Header{Version: 1, Local: true}, rest: "X"},
		{name: "unknown trailing space", input: "PROXY UNKNOWN \r\n",
			want: Header{Version: 1, Local: true}},
		{name: "unknown garbage ignored", input: "PROXY UNKNOWN what ever 1 2 3\r\n",
			want: Header{Version: 1, Local: true}},
		{name: "header followed by another header", input: "PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n",
			want: Header{Version: 1, Local: true}, rest: "PROXY UNKNOWN\r\n"},

		// Not a header at all.
		{name: "empty", input: "", err: io.EOF},
		{name: "http request", input: httpReq, err: ErrNoHeader},
		{name: "lower-case proxy", input: "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: ErrNoHeader},
		{name: "PROXZ", input: "PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: ErrNoHeader},
		{name: "leading space", input: " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: ErrNoHeader},

		// Malformed lines.
		{name: "no space after PROXY", input: "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Prefix},
		{name: "tab after PROXY", input: "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Prefix},
		{name: "PROXY CRLF", input: "PROXY\r\n", err: errV1Prefix},
		{name: "two spaces after PROXY", input: "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Protocol},
		{name: "lower-case protocol", input: "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Protocol},
		{name: "unknown protocol", input: "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Protocol},
		{name: "empty protocol", input: "PROXY \r\n", err: errV1Protocol},
		{name: "UNKNOWN glued", input: "PROXY UNKNOWNX\r\n", err: errV1Protocol},
		{name: "protocol only", input: "PROXY TCP4\r\n", err: errV1Fields},
		{name: "protocol and space", input: "PROXY TCP4 \r\n", err: errV1Fields},
		{name: "three fields", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", err: errV1Fields},
		{name: "five fields", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", err: errV1DstPort},
		{name: "double space between addresses", input: "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", err: errV1Dst},
		{name: "double space before ports", input: "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", err: errV1SrcPort},
		{name: "trailing space", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", err: errV1DstPort},
		{name: "tcp4 with ipv6 source", input: "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "tcp4 with ipv6 destination", input: "PROXY TCP4 1.2.3.4 ::1 1 2\r\n", err: errV1Dst},
		{name: "tcp4 with mapped address", input: "PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "tcp6 with ipv4 source", input: "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", err: errV1Src},
		{name: "tcp6 with ipv4 destination", input: "PROXY TCP6 ::1 1.2.3.4 1 2\r\n", err: errV1Dst},
		{name: "ipv4 leading zero", input: "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv4 octet 256", input: "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv4 three octets", input: "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv4 five octets", input: "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv4 with prefix", input: "PROXY TCP4 1.2.3.4/8 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv4 hex", input: "PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "ipv6 zone", input: "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", err: errV1Src},
		{name: "ipv6 brackets", input: "PROXY TCP6 [::1] ::1 1 2\r\n", err: errV1Src},
		{name: "ipv6 two ellipses", input: "PROXY TCP6 1::2::3 ::1 1 2\r\n", err: errV1Src},
		{name: "ipv6 five hex digits", input: "PROXY TCP6 12345::1 ::1 1 2\r\n", err: errV1Src},
		{name: "ipv6 too short", input: "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", err: errV1Src},
		{name: "port 65536", input: "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", err: errV1SrcPort},
		{name: "port 99999", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", err: errV1DstPort},
		{name: "port six digits", input: "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n", err: errV1SrcPort},
		{name: "port leading zero", input: "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", err: errV1SrcPort},
		{name: "port 00", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", err: errV1DstPort},
		{name: "port sign", input: "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", err: errV1SrcPort},
		{name: "port negative", input: "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", err: errV1SrcPort},
		{name: "port hex", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n", err: errV1DstPort},
		{name: "bare LF", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + httpReq, err: errV1EOL},
		{name: "bare CR", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r" + httpReq, err: errV1EOL},
		{name: "CR CR LF", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", err: errV1EOL},
		{name: "CR inside", input: "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", err: errV1EOL},
		{name: "bare CR at end of input", input: "PROXY UNKNOWN\r", err: io.ErrUnexpectedEOF},
		{name: "tab", input: "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", err: errV1Char},
		{name: "NUL", input: "PROXY UNKNOWN\x00\r\n", err: errV1Char},
		{name: "non-ASCII", input: "PROXY UNKNOWN \xc3\xa9\r\n", err: errV1Char},
		{name: "DEL", input: "PROXY UNKNOWN \x7f\r\n", err: errV1Char},
		{name: "line of 108 bytes", input: worst[:MaxV1Len-2] + "0\r\n", err: errV1TooLong},
		{name: "over-long line", input: "PROXY UNKNOWN " + strings.Repeat("x", 300) + "\r\n", err: errV1TooLong},
		{name: "truncated signature", input: "PROX", err: io.ErrUnexpectedEOF},
		{name: "truncated after signature", input: "PROXY", err: io.ErrUnexpectedEOF},
		{name: "truncated line", input: "PROXY TCP4 1.2.3.4 5.6", err: io.ErrUnexpectedEOF},
	})
}

func TestReadV2(t *testing.T) {
	tcp4 := addr4("203.0.113.10", "192.0.2.1", 5555, 3128)
	tcp6 := addr6("2001:db8::1", "2001:db8::2", 40000, 3128)
	want4 := Header{Version: 2, Source: ap("203.0.113.10:5555"), Destination: ap("192.0.2.1:3128")}
	want6 := Header{Version: 2, Source: ap("[2001:db8::1]:40000"), Destination: ap("[2001:db8::2]:3128")}
	local := Header{Version: 2, Local: true}
	ssl := tlv(0x20, "\x01\x00\x00\x00\x00"+string(tlv(0x21, "TLSv1.3"))+string(tlv(0x22, "example.com")))
	pad := MaxV2Payload - len(tcp4) - 3
	full := v2Header(0x21, 0x11, tcp4, tlv(0x04, strings.Repeat("\x00", pad)))
	over := v2Header(0x21, 0x11, tcp4, tlv(0x04, strings.Repeat("\x00", pad+1)))

	s := func(b []byte) string { return string(b) }
	runReadTests(t, []readTest{
		// Valid headers.
		{name: "tcp4", input: s(v2Header(0x21, 0x11, tcp4)) + httpReq, want: want4, rest: httpReq},
		{name: "tcp6", input: s(v2Header(0x21, 0x21, tcp6)) + httpReq, want: want6, rest: httpReq},
		{name: "tcp6 mapped unmapped", input: s(v2Header(0x21, 0x21, addr6("::ffff:203.0.113.10", "::ffff:192.0.2.1", 5555, 3128))),
			want: want4},
		{name: "local", input: s(v2Header(0x20, 0x00)) + httpReq, want: local, rest: httpReq},
		{name: "local with address ignored", input: s(v2Header(0x20, 0x11, tcp4)) + "X", want: local, rest: "X"},
		{name: "local with unix family ignored", input: s(v2Header(0x20, 0x31, make([]byte, 216))), want: local},
		{name: "local with bad TLVs ignored", input: s(v2Header(0x20, 0x00, []byte{1, 0})), want: local},
		{name: "local with unknown family ignored", input: s(v2Header(0x20, 0xff)), want: local},
		{name: "proxy unspec", input: s(v2Header(0x21, 0x00)) + "X", want: local, rest: "X"},
		{name: "proxy unspec with payload", input: s(v2Header(0x21, 0x00, tcp4, []byte{9})), want: local},
		{name: "tlvs", input: s(v2Header(0x21, 0x11, tcp4, tlv(0x02, "example.com"), tlv(0x04, ""), tlv(0x05, "id"), ssl, tlv(0xe0, "x"))) + httpReq,
			want: want4, rest: httpReq},
		{name: "tcp6 tlvs", input: s(v2Header(0x21, 0x21, tcp6, tlv(0x01, "h2"))), want: want6},
		{name: "crc32c", input: s(withCRC(v2Header(0x21, 0x11, tcp4, tlv(0x02, "example.com")), 0)) + httpReq,
			want: want4, rest: httpReq},
		{name: "crc32c tcp6", input: s(withCRC(v2Header(0x21, 0x21, tcp6), 0)), want: want6},
		{name: "payload of 512 bytes", input: s(full) + "X", want: want4, rest: "X"},
		{name: "header followed by a v1 line", input: s(v2Header(0x20, 0x00)) + "PROXY UNKNOWN\r\n",
			want: local, rest: "PROXY UNKNOWN\r\n"},

		// Not a header.
		{name: "bad signature", input: "\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00", err: ErrNoHeader},
		{name: "signature without NUL", input: "\r\n\r\n\r\nQUIT\n\x21\x11\x00\x00", err: ErrNoHeader},

		// Malformed headers.
		{name: "version 1", input: s(v2Header(0x11, 0x11, tcp4)), err: errV2Version},
		{name: "version 0", input: s(v2Header(0x01, 0x11, tcp4)), err: errV2Version},
		{name: "version 3", input: s(v2Header(0x31, 0x11, tcp4)), err: errV2Version},
		{name: "command 2", input: s(v2Header(0x22, 0x11, tcp4)), err: errV2Command},
		{name: "command 15", input: s(v2Header(0x2f, 0x11, tcp4)), err: errV2Command},
		{name: "payload of 513 bytes", input: s(over), err: errV2TooLong},
		// The length is checked on the fixed 16 bytes, before waiting for more.
		{name: "length 65535 alone", input: v2Sig + "\x21\x11\xff\xff", err: errV2TooLong},
		{name: "unix stream", input: s(v2Header(0x21, 0x31, make([]byte, 216))), err: errV2Family},
		{name: "unix dgram", input: s(v2Header(0x21, 0x32, make([]byte, 216))), err: errV2Family},
		{name: "udp4", input: s(v2Header(0x21, 0x12, tcp4)), err: errV2Family},
		{name: "udp6", input: s(v2Header(0x21, 0x22, tcp6)), err: errV2Family},
		{name: "unspec stream", input: s(v2Header(0x21, 0x01, tcp4)), err: errV2Family},
		{name: "inet unspec protocol", input: s(v2Header(0x21, 0x10, tcp4)), err: errV2Family},
		{name: "inet protocol 3", input: s(v2Header(0x21, 0x13, tcp4)), err: errV2Family},
		{name: "family 4", input: s(v2Header(0x21, 0x41, tcp4)), err: errV2Family},
		{name: "tcp4 length 11", input: s(v2Header(0x21, 0x11, tcp4[:11])), err: errV2Short},
		{name: "tcp6 length 12", input: s(v2Header(0x21, 0x21, tcp4)), err: errV2Short},
		{name: "tcp6 length 0", input: s(v2Header(0x21, 0x21)), err: errV2Short},
		{name: "tlv header cut", input: s(v2Header(0x21, 0x11, tcp4, []byte{0x04, 0})), err: errV2TLV},
		{name: "tlv one byte", input: s(v2Header(0x21, 0x11, tcp4, []byte{0x04})), err: errV2TLV},
		{name: "tlv value overruns", input: s(v2Header(0x21, 0x11, tcp4, []byte{0x02, 0, 5, 'a', 'b'})), err: errV2TLV},
		{name: "tlv after good one overruns", input: s(v2Header(0x21, 0x11, tcp4, tlv(0x04, "ok"), []byte{0x02, 1, 0})), err: errV2TLV},
		{name: "crc32c wrong", input: s(withCRC(v2Header(0x21, 0x11, tcp4), 1)), err: errV2CRC},
		{name: "crc32c 3 bytes", input: s(v2Header(0x21, 0x11, tcp4, tlv(0x03, "abc"))), err: errV2CRCLen},
		{name: "crc32c twice", input: s(withCRC(withCRC(v2Header(0x21, 0x11, tcp4), 0), 0)), err: errV2CRCLen},
		{name: "truncated signature", input: v2Sig[:11], err: io.ErrUnexpectedEOF},
		{name: "truncated fixed header", input: v2Sig + "\x21\x11\x00", err: io.ErrUnexpectedEOF},
		{name: "truncated address", input: s(v2Header(0x21, 0x11, tcp4))[:20], err: io.ErrUnexpectedEOF},
		{name: "truncated tlv", input: s(v2Header(0x21, 0x11, tcp4, tlv(0x02, "example.com")))[:35], err: io.ErrUnexpectedEOF},
	})
}

// stall is a reader that returns data and then errStall, as a connection
// whose client sent data and now waits would block.
type stall struct {
	data []byte
	err  error
}

var errStall = errors.New("stalled: more bytes wanted")

func (s *stall) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, s.err
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		input string
		eof   bool // the reader ends with io.EOF instead of stalling
		want  bool
		err   error
	}{
		{name: "nothing yet", input: "", err: errStall},
		{name: "P", input: "P", err: errStall},
		{name: "PROX", input: "PROX", err: errStall},
		{name: "PROXY", input: "PROXY", want: true},
		{name: "PROXY and more", input: "PROXY TCP4", want: true},
		{name: "PROXYX", input: "PROXYX", want: true}, // Read rejects it
		{name: "PROXZ", input: "PROXZ", want: false},
		{name: "PR then X", input: "PRX", want: false},
		{name: "lower case", input: "p", want: false},
		{name: "G", input: "G", want: false},
		{name: "http", input: httpReq, want: false},
		{name: "TLS record", input: "\x16\x03\x01", want: false},
		{name: "CR", input: "\r", err: errStall},
		{name: "11 bytes of v2", input: v2Sig[:11], err: errStall},
		{name: "v2 signature", input: v2Sig, want: true},
		{name: "v2 signature and more", input: v2Sig + "\x21\x11", want: true},
		{name: "CRLF then request", input: "\r\nGET", want: false},
		{name: "v2 prefix then mismatch", input: v2Sig[:8] + "X", want: false},
		{name: "EOF at start", input: "", eof: true, err: io.EOF},
		{name: "EOF after P", input: "PRO", eof: true, err: io.ErrUnexpectedEOF},
		{name: "EOF after v2 prefix", input: v2Sig[:5], eof: true, err: io.ErrUnexpectedEOF},
		{name: "EOF after decision", input: "GE", eof: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				end := errStall
				if tt.eof {
					end = io.EOF
				}
				var r io.Reader = &stall{data: []byte(tt.input), err: end}
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				br := bufio.NewReader(r)
				got, err := Detect(br)
				if got != tt.want || !errors.Is(err, tt.err) || tt.err == nil && err != nil {
					t.Fatalf("Detect(%q) = %v, %v; want %v, %v", tt.input, got, err, tt.want, tt.err)
				}
				if got, _ := br.Peek(br.Buffered()); !strings.HasPrefix(tt.input, string(got)) {
					t.Fatalf("Detect(%q) consumed bytes: buffer holds %q", tt.input, got)
				}
			}
		})
	}
}

// TestDetectReadsFromStart checks that a detected prefix arriving in pieces is
// found, and that Detect does not consume: the whole input is still there.
func TestDetectReadsFromStart(t *testing.T) {
	for _, input := range []string{"PROXY UNKNOWN\r\n", v2Sig + "\x20\x00\x00\x00"} {
		br := bufio.NewReader(iotest.OneByteReader(strings.NewReader(input)))
		if ok, err := Detect(br); !ok || err != nil {
			t.Fatalf("Detect(%q) = %v, %v; want true, nil", input, ok, err)
		}
		if rest, _ := io.ReadAll(br); string(rest) != input {
			t.Fatalf("after Detect(%q) the reader holds %q", input, rest)
		}
	}
}

func TestResolve(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	lb := netip.MustParseAddr("127.0.0.1")
	v1Line := "PROXY TCP4 203.0.113.10 192.0.2.1 5555 3128\r\n"
	v2Hdr := string(v2Header(0x21, 0x11, addr4("203.0.113.10", "192.0.2.1", 5555, 3128)))
	fromV1 := Header{Version: 1, Source: ap("203.0.113.10:5555"), Destination: ap("192.0.2.1:3128")}
	fromV2 := fromV1
	fromV2.Version = 2

	tests := []struct {
		name   string
		mode   Mode
		peer   netip.Addr
		input  string
		want   Header
		err    error  // matched with errors.Is
		rest   string // bytes left after success
		unread bool   // nothing at all may be read from the connection
	}{
		// Off: nothing is read, whatever comes.
		{name: "off header", mode: Off, peer: lb, input: v1Line + httpReq, unread: true},
		{name: "off request", mode: Off, peer: lb, input: httpReq, unread: true},

		// A peer outside the CIDRs: nothing is read, in either mode; its
		// header goes to the HTTP parser, which rejects it.
		{name: "optional not allowed header", mode: Optional, peer: netip.MustParseAddr("198.51.100.7"), input: v1Line + httpReq, unread: true},
		{name: "required not allowed header", mode: Required, peer: netip.MustParseAddr("198.51.100.7"), input: v2Hdr + httpReq, err: ErrNotAllowed, unread: true},
		{name: "required not allowed request", mode: Required, peer: netip.MustParseAddr("198.51.100.7"), input: httpReq, err: ErrNotAllowed, unread: true},
		{name: "not allowed ipv6", mode: Required, peer: netip.MustParseAddr("2001:db8:2::1"), input: v1Line, err: ErrNotAllowed, unread: true},

		// An allowed peer.
		{name: "optional v1", mode: Optional, peer: lb, input: v1Line + httpReq, want: fromV1, rest: httpReq},
		{name: "optional v2", mode: Optional, peer: lb, input: v2Hdr + httpReq, want: fromV2, rest: httpReq},
		{name: "optional no header", mode: Optional, peer: lb, input: httpReq, rest: httpReq},
		{name: "optional unknown", mode: Optional, peer: lb, input: "PROXY UNKNOWN\r\n" + httpReq,
			want: Header{Version: 1, Local: true}, rest: httpReq},
		{name: "optional malformed v1", mode: Optional, peer: lb, input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n" + httpReq, err: errV1DstPort},
		{name: "optional malformed v2", mode: Optional, peer: lb, input: string(v2Header(0x22, 0x11)) + httpReq, err: errV2Command},
		{name: "optional PROXY method", mode: Optional, peer: lb, input: "PROXY http://example.com/ HTTP/1.1\r\n\r\n", err: errV1Protocol},
		{name: "optional truncated", mode: Optional, peer: lb, input: "PROXY TCP4 1.2", err: io.ErrUnexpectedEOF},
		{name: "optional EOF", mode: Optional, peer: lb, input: "", err: io.EOF},
		{name: "required v1", mode: Required, peer: lb, input: v1Line + httpReq, want: fromV1, rest: httpReq},
		{name: "required v2", mode: Required, peer: lb, input: v2Hdr + httpReq, want: fromV2, rest: httpReq},
		{name: "required v2 local", mode: Required, peer: lb, input: string(v2Header(0x20, 0x00)) + httpReq,
			want: Header{Version: 2, Local: true}, rest: httpReq},
		{name: "required no header", mode: Required, peer: lb, input: httpReq, err: ErrNoHeader},
		{name: "required malformed", mode: Required, peer: lb, input: "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", err: errV1Src},
		{name: "required EOF", mode: Required, peer: lb, input: "", err: io.EOF},
		{name: "required mapped peer", mode: Required, peer: netip.MustParseAddr("::ffff:127.0.0.2"), input: v1Line, want: fromV1},
		{name: "required ipv6 peer", mode: Required, peer: netip.MustParseAddr("2001:db8:1::9"), input: v2Hdr, want: fromV2},

		{name: "invalid mode", mode: Mode(7), peer: lb, input: v1Line, err: errors.New("any"), unread: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := strings.NewReader(tt.input)
			br := bufio.NewReaderSize(sr, MinBufferSize)
			h, err := Resolve(br, tt.mode, tt.peer, allowed)
			switch {
			case tt.err != nil && tt.err.Error() == "any":
				if err == nil {
					t.Fatalf("Resolve(%v) = %+v, want an error", tt.mode, h)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve(%v, %v) error = %v, want %v", tt.mode, tt.peer, err, tt.err)
				}
			case err != nil:
				t.Fatalf("Resolve(%v, %v) error = %v", tt.mode, tt.peer, err)
			}
			if h != tt.want {
				t.Errorf("Resolve(%v, %v) = %+v, want %+v", tt.mode, tt.peer, h, tt.want)
			}
			if tt.unread {
				if sr.Len() != len(tt.input) {
					t.Errorf("Resolve(%v, %v) read %d bytes, want none", tt.mode, tt.peer, len(tt.input)-sr.Len())
				}
				return
			}
			rest, _ := io.ReadAll(br)
			wantRest := tt.rest
			if tt.err != nil {
				wantRest = tt.input // an error consumes nothing
			}
			if string(rest) != wantRest {
				t.Errorf("Resolve(%v, %v) left %q, want %q", tt.mode, tt.peer, rest, wantRest)
			}
		})
	}
}

func TestHeaderClient(t *testing.T) {
	peer := ap("127.0.0.1:40000")
	tests := []struct {
		name string
		h    Header
		want netip.AddrPort
	}{
		{"no header", Header{}, peer},
		{"local", Header{Version: 2, Local: true}, peer},
		{"proxied", Header{Version: 1, Source: ap("203.0.113.10:5555"), Destination: ap("192.0.2.1:3128")}, ap("203.0.113.10:5555")},
	}
	for _, tt := range tests {
		if got := tt.h.Client(peer); got != tt.want {
			t.Errorf("%s: %+v.Client(%v) = %v, want %v", tt.name, tt.h, peer, got, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	cidrs := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"),
	}
	tests := []struct {
		peer string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"::ffff:10.1.2.3", true}, // a dual-stack listener's view of an IPv4 peer
		{"::ffff:192.0.2.8", false},
		{"2001:db8::1", true},
		{"2001:db9::1", false},
		{"fe80::1%eth0", false},
		{"2001:db8::1%eth0", true},
		{"::ffff:198.51.100.9", true}, // matched in its mapped form
		{"198.51.100.9", false},       // the prefix names mapped addresses only
		{"::a01:203", false},          // IPv4-compatible, not mapped
	}
	for _, tt := range tests {
		if got := Allowed(netip.MustParseAddr(tt.peer), cidrs); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.peer, got, tt.want)
		}
	}
	if Allowed(netip.MustParseAddr("10.0.0.1"), nil) {
		t.Error("Allowed(10.0.0.1, nil) = true, want false")
	}
	if Allowed(netip.Addr{}, cidrs) {
		t.Error("Allowed(invalid address) = true, want false")
	}
}

func TestMode(t *testing.T) {
	for _, m := range []Mode{Off, Optional, Required} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	for _, s := range []string{"", "on", "Required", "true", "off "} {
		if m, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) = %v, want an error", s, m)
		}
	}
	if got := Mode(9).String(); got != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", got)
	}
}

// TestResolveWaitsForPrefix shows that a prefix that could still be a
// signature waits for more bytes until the caller's deadline, and that input
// that cannot be one is decided at once (unlike the original, which waited
// for 12 bytes). The timings are those of a synctest bubble.
func TestResolveWaitsForPrefix(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name   string
		mode   Mode
		sent   string
		err    error
		waited time.Duration
	}{
		{name: "optional v2 prefix", mode: Optional, sent: "\r\n\r\n", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
		{name: "optional PRO", mode: Optional, sent: "PRO", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
		{name: "required partial v1", mode: Required, sent: "PROXY TCP4 1.2", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
		{name: "required partial v2", mode: Required, sent: v2Sig + "\x21\x11\x00\x0c\x01", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
		{name: "required silent", mode: Required, sent: "", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
		{name: "optional short request", mode: Optional, sent: "GE"},
		{name: "required short request", mode: Required, sent: "G", err: ErrNoHeader},
		// PP §2.1: "The receiver must wait for the CRLF sequence before
		// starting to decode the addresses".
		{name: "required v1 waits for CRLF", mode: Required, sent: "PROXY tcp4", err: os.ErrDeadlineExceeded, waited: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, server := net.Pipe()
				defer client.Close()
				defer server.Close()
				go client.Write([]byte(tt.sent))
				start := time.Now()
				server.SetReadDeadline(start.Add(5 * time.Second))
				_, err := Resolve(bufio.NewReaderSize(server, MinBufferSize), tt.mode, peer, allowed)
				if !errors.Is(err, tt.err) || tt.err == nil && err != nil {
					t.Fatalf("Resolve after %q: error = %v, want %v", tt.sent, err, tt.err)
				}
				if waited := time.Since(start); waited != tt.waited {
					t.Errorf("Resolve after %q returned after %v, want %v", tt.sent, waited, tt.waited)
				}
			})
		})
	}
	// A byte that no valid line can hold fails at once, without waiting for
	// the CRLF: PP §2.1 recommends "to abort the connection as soon as
	// possible".
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		go client.Write([]byte("PROXY\t"))
		start := time.Now()
		server.SetReadDeadline(start.Add(5 * time.Second))
		_, err := Read(bufio.NewReaderSize(server, MinBufferSize))
		if !errors.Is(err, errV1Prefix) || time.Since(start) != 0 {
			t.Fatalf("Read(%q) = %v after %v, want %v at once", "PROXY\t", err, time.Since(start), errV1Prefix)
		}
	})
}

func TestReadSmallBuffer(t *testing.T) {
	// Even without a header, so that a wrongly sized reader fails every time.
	for _, input := range []string{"PROXY UNKNOWN\r\n", httpReq} {
		br := bufio.NewReaderSize(strings.NewReader(input), 64)
		if _, err := Read(br); err == nil || br.Buffered() != 0 {
			t.Fatalf("Read(%q) with a 64-byte buffer = %v, want an error and nothing read", input, err)
		}
		br = bufio.NewReaderSize(strings.NewReader(input), 64)
		if _, err := Resolve(br, Optional, netip.IPv6Loopback(), []netip.Prefix{netip.MustParsePrefix("::1/128")}); err == nil || br.Buffered() != 0 {
			t.Fatalf("Resolve(%q) with a 64-byte buffer = %v, want an error and nothing read", input, err)
		}
	}
}

func TestAppendRoundTrip(t *testing.T) {
	headers := []Header{
		{},
		{Version: 1, Local: true},
		{Source: ap("203.0.113.10:5555"), Destination: ap("192.0.2.1:3128")},
		{Source: ap("0.0.0.0:0"), Destination: ap("255.255.255.255:65535")},
		{Source: ap("[2001:db8::1]:40000"), Destination: ap("[2001:db8::2]:3128")},
		{Source: ap("203.0.113.10:1"), Destination: ap("[2001:db8::2]:2")}, // mixed families
		{Source: ap("[::ffff:203.0.113.10]:1"), Destination: ap("[::ffff:192.0.2.1]:2")},
		{Source: ap("[fe80::1%eth0]:1"), Destination: ap("[::1]:2")},
	}
	for _, in := range headers {
		for _, version := range []int{1, 2} {
			var enc []byte
			if version == 1 {
				enc = in.AppendV1(nil)
			} else {
				enc = in.AppendV2(nil)
			}
			want := Header{Version: version, Local: !in.Source.IsValid()}
			if !want.Local {
				want.Source = netip.AddrPortFrom(in.Source.Addr().Unmap().WithZone(""), in.Source.Port())
				want.Destination = netip.AddrPortFrom(in.Destination.Addr().Unmap().WithZone(""), in.Destination.Port())
			}
			got, err, rest := readCase(t, string(enc)+"X", nil)
			if err != nil || got != want || rest != "X" {
				t.Errorf("Read(AppendV%d(%+v) = %q) = %+v, %v, rest %q; want %+v", version, in, enc, got, err, rest, want)
			}
		}
	}
}

// TestReadAllocs checks that reading a header allocates nothing.
func TestReadAllocs(t *testing.T) {
	inputs := []string{
		"PROXY TCP4 203.0.113.10 192.0.2.1 5555 3128\r\n" + httpReq,
		"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 40000 3128\r\n" + httpReq,
		"PROXY UNKNOWN\r\n",
		string(withCRC(v2Header(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 1, 2), tlv(0x02, "example.com")), 0)) + httpReq,
	}
	for _, in := range inputs {
		sr := strings.NewReader(in)
		br := bufio.NewReaderSize(sr, MinBufferSize)
		allocs := testing.AllocsPerRun(100, func() {
			sr.Reset(in)
			br.Reset(sr)
			if _, err := Resolve(br, Required, netip.IPv6Loopback(), []netip.Prefix{netip.MustParsePrefix("::1/128")}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Resolve(%q) allocates %v times, want 0", in, allocs)
		}
	}
}

// addrCases are address texts on which parseIPv4 and parseIPv6 must agree
// with netip.ParseAddr.
var addrCases = []string{
	"", "0.0.0.0", "1.2.3.4", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04",
	"1.2.3", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.4.5", "1.2.3.-4", "1.2.3.4 ",
	"0.0.0.00", "1234.1.1.1", "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
	"1:2:3:4:5:6:7", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "::1:2:3:4:5:6:7:8", "1::2::3",
	":1::", "1:", ":", ":::", "1:::2", "12345::", "fffff::", "FFFF::", "ffff::ffff",
	"::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
	"1:2:3:4:5:1.2.3.4", "::ffff:01.2.3.4", "::ffff:1.2.3", "::1.2.3.4:1", "1.2.3.4::",
	"fe80::1%eth0", "::%", "g::", "::g", "0:0:0:0:0:0:0:0", "0000:0000::0000", "00000::",
	"1:2:3:4:5:6::7", "1:2:3:4:5:6:7::8", "::ffff:255.255.255.255", "::ffff:256.1.1.1",
	"a:b:c:d:e:f:1.2.3.4", "1::1.2.3.4", "1:2::3:4:5:1.2.3.4",
}

func checkAddr(t *testing.T, s string) {
	want, err := netip.ParseAddr(s)
	got4, ok4 := parseIPv4([]byte(s))
	if want4 := err == nil && want.Is4(); ok4 != want4 || ok4 && got4 != want {
		t.Errorf("parseIPv4(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got4, ok4, want, err)
	}
	got6, ok6 := parseIPv6([]byte(s))
	if want6 := err == nil && want.Is6() && want.Zone() == ""; ok6 != want6 || ok6 && got6 != want {
		t.Errorf("parseIPv6(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got6, ok6, want, err)
	}
}

func TestParseAddr(t *testing.T) {
	for _, s := range addrCases {
		checkAddr(t, s)
	}
}

// FuzzParseAddr checks the allocation-free address parsers against
// netip.ParseAddr.
func FuzzParseAddr(f *testing.F) {
	for _, s := range addrCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAddr(t, s)
	})
}
