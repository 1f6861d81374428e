// Package tlshello reads the server name from the first bytes of a TLS
// connection, so that a CONNECT tunnel can refuse a ClientHello whose SNI
// differs from the CONNECT host (domain fronting) without terminating TLS.
//
// It only peeks: every byte stays in the caller's *bufio.Reader, to be
// forwarded to the upstream untouched. It is strict on purpose, like
// proxy/http1: a hello that two TLS stacks could read differently (two
// host names, a repeated extension, a name type other than host_name, a
// record of another type inside the handshake) is an error, never a guess,
// because the check is worthless if the upstream sees a different name than
// the proxy did. Parsing allocates nothing but the returned name.
package tlshello

import (
	"bufio"
	"fmt"
	"io"
)

// DefaultMax is the max to pass to ReadServerName, and the least size of its
// bufio.Reader: one full record (a 5-byte header and 2^14 bytes of
// fragment, RFC 8446 §5.1) plus 1 KiB for the headers of a hello split over
// several records. Real ClientHellos are far smaller (about 1.8 KiB with a
// post-quantum key share); a larger one is refused.
const DefaultMax = recordHeaderLen + maxFragment + 1<<10

// Wire constants and limits.
const (
	// RFC 8446 §5.1 TLSPlaintext: type(1), legacy_record_version(2),
	// length(2).
	recordHeaderLen = 5
	// RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes."
	maxFragment = 1 << 14
	// RFC 8446 §5.1 ContentType alert(21) and handshake(22).
	contentTypeAlert     = 21
	contentTypeHandshake = 22
	// notTLSMajor is the least first version byte that no TLS stack takes
	// as the start of a connection. crypto/tls takes any version below
	// 0x1000 on a first record ("if the version is >= 16.0, it's probably
	// not real"); OpenSSL and BoringSSL take any 0x03xx.
	notTLSMajor = 0x10
	// RFC 8446 §4 Handshake: msg_type(1), length(3).
	handshakeHeaderLen = 4
	// RFC 8446 §4 HandshakeType client_hello(1).
	typeClientHello = 1
	// RFC 8446 §4.1.2 legacy_session_id<0..32>.
	maxSessionID = 32
	// RFC 6066 §3 ExtensionType server_name(0) and NameType host_name(0).
	extServerName    = 0
	nameTypeHostName = 0
	// maxName is the longest DNS name in text form (RFC 1035 §2.3.4: 255
	// octets on the wire, so 253 characters without the trailing dot).
	maxName = 253
	// maxExtensions bounds the extensions of one hello so that the
	// duplicate check (RFC 8446 §4.2) is a short scan of a small array on
	// the stack. Browsers send about 20, GREASE included; no real client
	// sends more than a few dozen.
	maxExtensions = 128
)

// helloError is a malformed or oversized ClientHello. It is a string so
// that the errors below are constants: failing allocates nothing.
type helloError string

func (e helloError) Error() string { return "read ClientHello: " + string(e) }

const (
	errTruncated       = helloError("vector longer than its enclosing data")
	errTooLarge        = helloError("larger than the limit")
	errRecordType      = helloError("record of another content type than handshake before the end of the ClientHello")
	errRecordVersion   = helloError("bad record version")
	errEmptyRecord     = helloError("zero-length handshake record")
	errRecordOverflow  = helloError("record longer than 2^14 bytes")
	errNotClientHello  = helloError("first handshake message is not a ClientHello")
	errTrailingRecord  = helloError("data after the ClientHello in its record")
	errVersion         = helloError("bad legacy_version")
	errSessionID       = helloError("legacy_session_id longer than 32 bytes")
	errCipherSuites    = helloError("bad cipher_suites length")
	errCompression     = helloError("empty legacy_compression_methods")
	errTrailing        = helloError("data after the extensions")
	errDuplicate       = helloError("duplicate extension")
	errTooMany         = helloError("too many extensions")
	errServerName      = helloError("malformed server_name extension")
	errNameType        = helloError("server_name entry of a type other than host_name")
	errTwoNames        = helloError("more than one host_name in server_name")
	errEmptyName       = helloError("empty host_name")
	errLongName        = helloError("host_name longer than 253 bytes")
	errNameByte        = helloError("host_name byte other than a letter, digit, '-', '.' or '_'")
	errEmptyLabel      = helloError("host_name with an empty label")
	errInternalRecords = helloError("internal error: records changed under the parser")
)

// ReadServerName peeks at what the client sent first on br and, when it is
// a TLS ClientHello, returns the name of its server_name extension (RFC
// 6066 §3): lower-cased, without a trailing dot, and "" when the hello has
// no server_name. It consumes nothing: every byte stays buffered in br for
// the caller to forward.
//
// isTLS is false, with a nil error, when the first bytes cannot start a
// TLS connection: such a payload is not checked. It is also false, with a
// nil error, when br is at EOF before its first byte: nothing was sent, so
// there is nothing to check. isTLS is false with an error only when reading
// the first byte failed otherwise (a deadline, say).
//
// "Can start a TLS connection" is wider than a well-formed ClientHello
// record, because an upstream is what decides: crypto/tls takes any record
// version below 0x1000 on a first record, and both crypto/tls and OpenSSL
// drop warning alerts sent before the ClientHello. A payload that skipped
// the check that way would reach the upstream unchecked, so isTLS is true
// when the first byte is 22 (handshake) or 21 (alert) and the second is
// below 0x10; only a handshake record of version 0x0300 to 0x0304 is then
// accepted, and anything else, a leading alert included, is an error.
//
// Once isTLS is true, any problem is an error, on which the caller should
// close the tunnel: a malformed or truncated hello (a truncation at EOF
// wraps io.ErrUnexpectedEOF), a hello that is not the first handshake
// message, one over max, or a read error (wrapped, so errors.Is(err,
// os.ErrDeadlineExceeded) works).
//
// max bounds the bytes peeked for the hello, record headers included; a
// hello over max is an error. Peek cannot see more than br's buffer, so br
// must be at least max bytes (bufio.NewReaderSize(conn, DefaultMax)); when
// it is smaller, br.Size() is the bound. DefaultMax suits every real
// client.
//
// ReadServerName blocks in Peek until the whole hello has arrived (a
// hello may be split over several records, RFC 8446 §5.1), or EOF, or an
// error. A peer that sends part of a hello and waits would hold it forever,
// and so would one that sends nothing because it waits for the server to
// speak first (SSH, SMTP): the caller sets a read deadline on the
// connection first, and relays the upstream's bytes to the client
// meanwhile.
// The bytes peeked are never more than max, so a hello whose length says
// it is over max fails as soon as its header is seen, without waiting.
func ReadServerName(br *bufio.Reader, max int) (name string, isTLS bool, err error) {
	max = min(max, br.Size())
	b, err := br.Peek(1)
	if len(b) == 0 {
		if err == io.EOF {
			return "", false, nil
		}
		return "", false, fmt.Errorf("read ClientHello: %w", err)
	}
	if b[0] != contentTypeHandshake && b[0] != contentTypeAlert {
		return "", false, nil
	}
	// Only now wait for a second byte: a payload whose first byte is
	// neither never waits.
	b, err = br.Peek(2)
	if len(b) == 2 && b[1] >= notTLSMajor {
		return "", false, nil
	}
	if err != nil {
		return "", true, readError(err)
	}

	// Walk the records that carry the handshake message, peeking each in
	// full, until the message is complete. RFC 8446 §5.1: handshake
	// messages may be split over several records, and records of other
	// types MUST NOT come between them.
	var (
		buf  []byte // br's buffered bytes, records [0, off) complete
		off  int    // offset in buf of the next record header
		got  int    // handshake bytes in records [0, off)
		need = -1   // length of the message with its header, once known
		hdr  [handshakeHeaderLen]byte
	)
	for need < 0 || got < need {
		if buf, err = peek(br, off+recordHeaderLen, max); err != nil {
			return "", true, err
		}
		h := buf[off : off+recordHeaderLen]
		switch {
		case h[0] != contentTypeHandshake:
			return "", true, errRecordType
		case !plausibleVersion(h):
			return "", true, errRecordVersion
		}
		n := int(h[3])<<8 | int(h[4])
		switch {
		case n == 0:
			// RFC 8446 §5.1: "Implementations MUST NOT send zero-length
			// fragments of Handshake types."
			return "", true, errEmptyRecord
		case n > maxFragment:
			return "", true, errRecordOverflow
		}
		end := off + recordHeaderLen + n
		if buf, err = peek(br, end, max); err != nil {
			return "", true, err
		}
		if got < handshakeHeaderLen {
			copy(hdr[got:], buf[off+recordHeaderLen:end])
		}
		got += n
		off = end
		if need < 0 && got >= handshakeHeaderLen {
			if hdr[0] != typeClientHello {
				return "", true, errNotClientHello
			}
			need = handshakeHeaderLen + (int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3]))
			// The message needs at least one more header for every
			// record it spans: fail now rather than wait for bytes that
			// would be over max anyway.
			if need+recordHeaderLen > max {
				return "", true, errTooLarge
			}
		}
	}
	// The client sends no other handshake message before the server
	// answers (RFC 8446 §2: its first flight is the ClientHello; early
	// data goes in records of their own), so the record that ends the
	// ClientHello ends with it. Anything after it there is refused, not
	// guessed at.
	if got != need {
		return "", true, errTrailingRecord
	}

	c := cursor{buf: buf[:off], i: recordHeaderLen, frag: int(buf[3])<<8 | int(buf[4]), left: need}
	c.skip(handshakeHeaderLen)
	name, err = parseClientHello(&c)
	return name, true, err
}

// plausibleVersion reports whether the record header h has a version from
// 0x0300 (SSL 3.0) to 0x0304. RFC 8446 §5.1 wants 0x0301 or 0x0303 on a
// ClientHello; the rest of the range does no harm.
func plausibleVersion(h []byte) bool { return h[1] == 3 && h[2] <= 4 }

// peek returns br's first n bytes, or an error if n is over max or fewer
// than n bytes come.
func peek(br *bufio.Reader, n, max int) ([]byte, error) {
	if n > max {
		return nil, errTooLarge
	}
	b, err := br.Peek(n)
	if len(b) < n {
		return nil, readError(err)
	}
	return b, nil
}

// readError wraps the error of a short Peek; EOF there is a truncated
// hello.
func readError(err error) error {
	if err == io.EOF || err == nil {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read ClientHello: %w", err)
}

// parseClientHello reads the body of a ClientHello, RFC 8446 §4.1.2:
//
//	struct {
//	    ProtocolVersion legacy_version = 0x0303;    /* TLS v1.2 */
//	    Random random;
//	    opaque legacy_session_id<0..32>;
//	    CipherSuite cipher_suites<2..2^16-2>;
//	    opaque legacy_compression_methods<1..2^8-1>;
//	    Extension extensions<8..2^16-1>;
//	} ClientHello;
//
//	struct {
//	    ExtensionType extension_type;
//	    opaque extension_data<0..2^16-1>;
//	} Extension;
//
// and returns the server name, "" if there is no server_name extension.
func parseClientHello(c *cursor) (string, error) {
	// Any 3.x: RFC 5246 Appendix E.1 lets a client offer a version above
	// the server's.
	if c.u8() != 3 {
		c.fail(errVersion)
	}
	c.skip(1 + 32) // the rest of legacy_version, random
	if s := c.vec8(); s.left > maxSessionID {
		c.fail(errSessionID)
	}
	if s := c.vec16(); s.left < 2 || s.left%2 != 0 {
		c.fail(errCipherSuites)
	}
	if s := c.vec8(); s.left < 1 {
		c.fail(errCompression)
	}
	if c.err != nil || c.left == 0 {
		// RFC 5246 §7.4.1.2: a TLS 1.2 ClientHello may end after the
		// compression methods, without extensions.
		return "", c.err
	}
	exts := c.vec16()
	if c.left != 0 {
		c.fail(errTrailing)
	}
	if c.err != nil {
		return "", c.err
	}

	var (
		seen  [maxExtensions]uint16
		nseen int
		name  string
		err   error
	)
	for exts.left > 0 {
		typ := uint16(exts.u16())
		data := exts.vec16()
		if exts.err != nil {
			return "", exts.err
		}
		// RFC 8446 §4.2: "There MUST NOT be more than one extension of
		// the same type in a given extension block."
		for _, t := range seen[:nseen] {
			if t == typ {
				return "", errDuplicate
			}
		}
		if nseen == len(seen) {
			return "", errTooMany
		}
		seen[nseen] = typ
		nseen++
		if typ == extServerName {
			if name, err = parseServerName(&data); err != nil {
				return "", err
			}
		}
	}
	return name, nil
}

// parseServerName reads the extension_data of a server_name extension,
// RFC 6066 §3:
//
//	struct {
//	    NameType name_type;
//	    select (name_type) {
//	        case host_name: HostName;
//	    } name;
//	} ServerName;
//
//	enum {
//	    host_name(0), (255)
//	} NameType;
//
//	opaque HostName<1..2^16-1>;
//
//	struct {
//	    ServerName server_name_list<1..2^16-1>
//	} ServerNameList;
//
// The list must hold exactly one entry, a host_name. RFC 6066 forbids two
// names of one type; other types were never defined, and stacks differ
// on them (crypto/tls skips them, OpenSSL refuses them), so they are
// refused here: the upstream must not pick a name we did not check.
func parseServerName(c *cursor) (string, error) {
	list := c.vec16()
	if c.left != 0 || list.left == 0 {
		c.fail(errServerName)
	}
	if c.err != nil {
		return "", c.err
	}
	var (
		name  string
		found bool
		err   error
	)
	for list.left > 0 {
		typ := list.u8()
		host := list.vec16()
		switch {
		case list.err != nil:
			return "", list.err
		case typ != nameTypeHostName:
			return "", errNameType
		case found:
			return "", errTwoNames
		}
		if name, err = hostName(&host); err != nil {
			return "", err
		}
		found = true
	}
	return name, nil
}

// hostName reads the whole of c as a HostName and returns it lower-cased
// without its trailing dot. RFC 6066 §3 wants ASCII, no trailing dot and
// no IP literal; we take one trailing dot, and allow only letters, digits,
// '-', '_' and '.' with no empty label, so that what the proxy compares
// with the CONNECT host is what DNS would see. An IPv4 literal passes: it
// simply will not equal a host name.
func hostName(c *cursor) (string, error) {
	n := c.left
	switch {
	case n == 0:
		return "", errEmptyName
	case n > maxName+1:
		return "", errLongName
	}
	var b [maxName + 1]byte
	c.read(b[:n])
	if c.err != nil {
		return "", c.err
	}
	name := b[:n]
	if name[n-1] == '.' {
		name = name[:n-1]
	}
	switch {
	case len(name) == 0:
		return "", errEmptyName
	case len(name) > maxName:
		return "", errLongName
	}
	prev := byte('.') // a leading dot is an empty label
	for i, ch := range name {
		switch {
		case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9', ch == '-', ch == '_':
		case 'A' <= ch && ch <= 'Z':
			name[i] = ch + ('a' - 'A')
		case ch == '.':
			if prev == '.' {
				return "", errEmptyLabel
			}
		default:
			return "", errNameByte
		}
		prev = ch
	}
	if prev == '.' {
		return "", errEmptyLabel // "a.." had two trailing dots
	}
	return string(name), nil
}

// A cursor reads a handshake message that may be split over several
// records, stepping over their 5-byte headers, without copying it out of
// the bufio.Reader's buffer. It reads at most left bytes; a vector is read
// as a cursor of its own, limited to the vector's length. The first error
// is sticky: after it, reads return zero and move nothing.
//
// ReadServerName checked every record header in buf and that the records
// hold the whole message, so crossing into the next record cannot run off
// buf; next checks it anyway rather than panic.
type cursor struct {
	buf  []byte // complete records; buf[i] is the next byte
	i    int
	frag int // bytes of the current record's fragment from buf[i] on
	left int // bytes this cursor may still read
	err  error
}

// fail makes err sticky.
func (c *cursor) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// next moves i past a record header when the current fragment is used up.
func (c *cursor) next() bool {
	for c.frag == 0 {
		h := c.i
		if h+recordHeaderLen > len(c.buf) {
			c.fail(errInternalRecords)
			return false
		}
		c.frag = int(c.buf[h+3])<<8 | int(c.buf[h+4])
		c.i = h + recordHeaderLen
		if c.frag > len(c.buf)-c.i {
			c.fail(errInternalRecords)
			return false
		}
	}
	return true
}

// take moves over the next n bytes, copying them to dst unless it is nil.
func (c *cursor) take(n int, dst []byte) {
	if c.err != nil {
		return
	}
	if n > c.left {
		c.fail(errTruncated)
		return
	}
	c.left -= n
	for n > 0 {
		if !c.next() {
			return
		}
		k := min(n, c.frag)
		if dst != nil {
			dst = dst[copy(dst, c.buf[c.i:c.i+k]):]
		}
		c.i += k
		c.frag -= k
		n -= k
	}
}

func (c *cursor) skip(n int)      { c.take(n, nil) }
func (c *cursor) read(dst []byte) { c.take(len(dst), dst) }

// u8 and u16 read big-endian integers (RFC 8446 §3.3).
func (c *cursor) u8() int {
	var b [1]byte
	c.read(b[:])
	return int(b[0])
}

func (c *cursor) u16() int {
	// Fast path: both bytes in the current fragment.
	if c.err == nil && c.left >= 2 && c.frag >= 2 && c.i+2 <= len(c.buf) {
		v := int(c.buf[c.i])<<8 | int(c.buf[c.i+1])
		c.i += 2
		c.frag -= 2
		c.left -= 2
		return v
	}
	var b [2]byte
	c.read(b[:])
	return int(b[0])<<8 | int(b[1])
}

// sub returns the next n bytes as a cursor of their own and moves c past
// them. If c fails, so does the cursor returned.
func (c *cursor) sub(n int) cursor {
	s := *c
	s.left = n
	c.skip(n)
	if c.err != nil {
		return cursor{err: c.err}
	}
	return s
}

// vec8 and vec16 read a vector with a 1- or 2-byte length (RFC 8446 §3.4).
func (c *cursor) vec8() cursor  { return c.sub(c.u8()) }
func (c *cursor) vec16() cursor { return c.sub(c.u16()) }
