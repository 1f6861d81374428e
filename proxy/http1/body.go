package http1

import (
	"fmt"
	"io"
	"math"
)

// Limits of the chunked transfer coding (RFC 9112 §7.1), which the RFC
// leaves unbounded.
const (
	// maxChunkLineSize bounds one chunk-size line, extensions and CRLF
	// included. A size needs at most 16 hex digits; the rest is room for
	// extensions, which no common sender uses. It bounds the memory one
	// line can take.
	maxChunkLineSize = 4 << 10

	// maxChunkExtBytes bounds the chunk extension bytes of one body.
	// Extensions are parsed and dropped, so without a bound a sender
	// could make the proxy parse any amount of non-data, one small chunk
	// at a time (the CVE-2023-39326 pattern in Go's net/http).
	maxChunkExtBytes = 16 << 10

	// maxTrailerSize bounds the trailer section, final CRLF included.
	// Trailers in use (grpc-status, Server-Timing, digests) are short.
	maxTrailerSize = 8 << 10
)

// Body reads one message body from a Reader and removes its framing. It is
// only valid until the next head is read from the same Reader.
//
// Read returns io.EOF only at the clean end of the body: after
// Content-Length bytes, after the last chunk and its trailer section, or
// when the stream ends for BodyUntilClose. A body that ends early or is
// malformed fails with an *Error (Status 400 after a request head, 502
// after a response head); one that grows beyond its limit fails with an
// *Error with Status 413. Errors are sticky on the Reader.
type Body struct {
	r        *Reader
	framing  Framing
	limit    int64 // at most this many body bytes; 0 means no limit
	remain   int64 // bytes left in the fixed-length body or in the current chunk
	n        int64 // body bytes returned so far
	state    uint8 // where a chunked body is
	extBytes int   // chunk extension bytes seen so far
	active   bool  // made by Reader.Body
	done     bool  // the clean end was reached
}

// States of a chunked body.
const (
	stSize     = iota // before a chunk-size line
	stData            // inside chunk data
	stDataEnd         // before the CRLF that ends chunk data
	stTrailers        // before the trailer section
)

// Body returns the body that follows the last head, delimited as f says
// (use RequestHead.Framing or ResponseHead.Framing); length is the
// Content-Length for BodyLength. A limit above zero makes the body fail
// with Status 413 as soon as it is known to be longer: at once for
// BodyLength, at the chunk-size line for BodyChunked.
//
// After a request head, f and length must be what the head declares: the
// Reader refuses to read the next head until that body has been read, so
// that body bytes are never parsed as a head.
//
// The Body is r's own and is reused by the next call.
func (r *Reader) Body(f Framing, length, limit int64) *Body {
	b := &r.body
	*b = Body{r: r, framing: f, limit: max(limit, 0), active: true}
	if r.pending && (f != r.declared || f == BodyLength && length != r.declaredLen) {
		r.fail(newError(statusInternalError, "read body", "framing differs from the request head"))
	}
	r.pending = false
	switch f {
	case BodyLength:
		b.remain = max(length, 0)
		b.done = b.remain == 0
	case BodyChunked, BodyUntilClose:
	default:
		b.done = true
	}
	return b
}

// Framing returns how b is delimited.
func (b *Body) Framing() Framing { return b.framing }

// Done reports whether b has been read to its clean end, so that the
// connection can carry another message.
func (b *Body) Done() bool { return b.done }

// BytesRead returns the number of body bytes, framing excluded, returned
// by Read so far.
func (b *Body) BytesRead() int64 { return b.n }

// Trailers returns the trailer fields of a chunked body once Read has
// returned io.EOF, else nil. They are valid until the next head is read.
func (b *Body) Trailers() Fields {
	if !b.done || b.framing != BodyChunked {
		return nil
	}
	return b.r.trailers
}

// Read reads body bytes into p.
func (b *Body) Read(p []byte) (int, error) {
	if b.done || b.r == nil {
		return 0, io.EOF
	}
	if b.r.err != nil {
		return 0, b.r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch b.framing {
	case BodyLength:
		return b.readFixed(p)
	case BodyChunked:
		return b.readChunked(p)
	}
	return b.readUntilClose(p)
}

func (b *Body) readFixed(p []byte) (int, error) {
	const op = "read body"
	r := b.r
	if b.limit > 0 && b.n+b.remain > b.limit {
		return 0, r.fail(newError(statusTooLarge, op, "Content-Length larger than the limit"))
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := r.br.Read(p)
	b.remain -= int64(n)
	b.n += int64(n)
	switch {
	case b.remain == 0:
		b.done = true
		return n, io.EOF
	case err == io.EOF:
		return n, r.fail(newError(r.bad, op, "unexpected EOF"))
	case err != nil:
		return n, r.fail(fmt.Errorf("%s: %w", op, err))
	}
	return n, nil
}

func (b *Body) readUntilClose(p []byte) (int, error) {
	const op = "read body"
	r := b.r
	n, err := r.br.Read(p)
	b.n += int64(n)
	switch {
	case b.limit > 0 && b.n > b.limit:
		return n, r.fail(newError(statusTooLarge, op, "body larger than the limit"))
	case err == io.EOF:
		b.done = true
		return n, io.EOF
	case err != nil:
		return n, r.fail(fmt.Errorf("%s: %w", op, err))
	}
	return n, nil
}

// readChunked decodes the chunked transfer coding (RFC 9112 §7.1):
//
//	chunked-body = *chunk last-chunk trailer-section CRLF
//	chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	last-chunk   = 1*("0") [ chunk-ext ] CRLF
func (b *Body) readChunked(p []byte) (int, error) {
	const op = "read chunked body"
	r := b.r
	for {
		switch b.state {
		case stSize:
			size, err := b.readChunkSize(op)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				b.state = stTrailers
				continue
			}
			if b.limit > 0 && size > b.limit-b.n {
				return 0, r.fail(newError(statusTooLarge, op, "body larger than the limit"))
			}
			b.remain, b.state = size, stData
		case stData:
			if int64(len(p)) > b.remain {
				p = p[:b.remain]
			}
			n, err := r.br.Read(p)
			b.remain -= int64(n)
			b.n += int64(n)
			switch {
			case b.remain == 0:
				b.state = stDataEnd
			case err == io.EOF:
				return n, r.fail(newError(r.bad, op, "unexpected EOF"))
			case err != nil:
				return n, r.fail(fmt.Errorf("%s: %w", op, err))
			}
			return n, nil
		case stDataEnd:
			for _, want := range [2]byte{'\r', '\n'} {
				c, err := r.br.ReadByte()
				switch {
				case err == io.EOF:
					return 0, r.fail(newError(r.bad, op, "unexpected EOF"))
				case err != nil:
					return 0, r.fail(fmt.Errorf("%s: %w", op, err))
				case c != want:
					return 0, r.fail(newError(r.bad, op, "chunk data not followed by CRLF"))
				}
			}
			b.state = stSize
		default: // stTrailers
			if err := b.readTrailers(); err != nil {
				return 0, err
			}
			b.done = true
			return 0, io.EOF
		}
	}
}

// readChunkSize reads a chunk-size line and returns the size.
func (b *Body) readChunkSize(op string) (int64, error) {
	r := b.r
	var err error
	r.line, err = readLine(r.br, r.line[:0], maxChunkLineSize)
	switch {
	case err == nil:
	case err == errLineTooLong:
		return 0, r.fail(newError(r.bad, op, "chunk-size line too long"))
	case err == io.EOF:
		return 0, r.fail(newError(r.bad, op, "unexpected EOF"))
	default:
		return 0, r.fail(fmt.Errorf("%s: %w", op, err))
	}
	line := r.line
	if n := len(line); n < 2 || line[n-2] != '\r' {
		return 0, r.fail(newError(r.bad, op, "bare LF after chunk size"))
	}
	size, ext, msg := parseChunkLine(line[:len(line)-2])
	if msg != "" {
		return 0, r.fail(newError(r.bad, op, msg))
	}
	if b.extBytes += ext; b.extBytes > maxChunkExtBytes {
		return 0, r.fail(newError(r.bad, op, "too many chunk extension bytes"))
	}
	return size, nil
}

// parseChunkLine parses a chunk-size line without its CRLF:
//
//	chunk-size [ chunk-ext ]
//	chunk-size = 1*HEXDIG
//
// The size is plain hex: no sign, no "0x", no whitespace, at most
// math.MaxInt64. It returns the size, the number of extension bytes and
// what is wrong, if anything.
func parseChunkLine(line []byte) (size int64, ext int, msg string) {
	i := 0
	for i < len(line) && chars[line[i]]&cHex != 0 {
		if size > math.MaxInt64>>4 {
			return 0, 0, "chunk size overflows"
		}
		size = size<<4 | int64(unhex(line[i]))
		i++
	}
	if i == 0 {
		return 0, 0, "chunk size is not hex digits"
	}
	if !validChunkExt(line[i:]) {
		return 0, 0, "malformed chunk extension"
	}
	return size, len(line) - i, ""
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// validChunkExt reports whether s is a chunk-ext (RFC 9112 §7.1.1):
//
//	chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-name = token
//	chunk-ext-val  = token / quoted-string
//
// BWS is only allowed where the grammar puts it, so whitespace after the
// size or at the end of the line, without a following ";", is rejected.
func validChunkExt(s []byte) bool {
	for len(s) > 0 {
		s = trimLeftOWS(s)
		if len(s) == 0 || s[0] != ';' {
			return false
		}
		s = trimLeftOWS(s[1:])
		n := tokenLen(s)
		if n == 0 {
			return false
		}
		s = s[n:]
		if t := trimLeftOWS(s); len(t) > 0 && t[0] == '=' {
			t = trimLeftOWS(t[1:])
			if len(t) > 0 && t[0] == '"' {
				n = quotedLen(t)
			} else {
				n = tokenLen(t)
			}
			if n == 0 {
				return false
			}
			s = t[n:]
		}
	}
	return true
}

func trimLeftOWS(s []byte) []byte {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	return s
}

// tokenLen returns the length of the token at the start of s.
func tokenLen(s []byte) int {
	i := 0
	for i < len(s) && chars[s[i]]&cToken != 0 {
		i++
	}
	return i
}

// quotedLen returns the length of the quoted-string at the start of s, or
// 0 if there is none (RFC 9110 §5.6.4):
//
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//	quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
func quotedLen(s []byte) int {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i++; i == len(s) || chars[s[i]]&cValue == 0 {
				return 0
			}
		case chars[c]&cQdtext == 0:
			return 0
		}
	}
	return 0
}

// readTrailers reads the trailer section (RFC 9112 §7.1.2) with the field
// rules of a head into r.trailers.
func (b *Body) readTrailers() error {
	const op = "read trailers"
	r := b.r
	r.tbuf, r.toffs = r.tbuf[:0], r.toffs[:0]
	for {
		start := len(r.tbuf)
		var err error
		r.tbuf, err = readLine(r.br, r.tbuf, maxTrailerSize)
		switch {
		case err == nil:
		case err == errLineTooLong:
			return r.fail(newError(r.bad, op, "trailer section too large"))
		case err == io.EOF:
			return r.fail(newError(r.bad, op, "unexpected EOF"))
		default:
			return r.fail(fmt.Errorf("%s: %w", op, err))
		}
		line := r.tbuf[start:]
		n := len(line)
		if n < 2 || line[n-2] != '\r' {
			return r.fail(newError(r.bad, op, "bare LF"))
		}
		if n == 2 {
			break
		}
		nameEnd, valStart, valEnd, msg := splitField(line[:n-2])
		if msg != "" {
			return r.fail(newError(r.bad, op, msg))
		}
		if name := line[:nameEnd]; !allowedTrailer(name) {
			return r.fail(newError(r.bad, op, "framing, routing or hop-by-hop field in trailers"))
		}
		r.toffs = append(r.toffs, fieldOff{start, start + nameEnd, start + valStart, start + valEnd})
	}
	r.trailers = r.trailers[:0]
	for _, o := range r.toffs {
		r.trailers = append(r.trailers, Field{r.tbuf[o.ns:o.ne:o.ne], r.tbuf[o.vs:o.ve:o.ve]})
	}
	return nil
}

// allowedTrailer reports whether a field called name may be a trailer.
// RFC 9110 §6.5.1 forbids trailers that frame the message, route it or
// manage the connection; a recipient that merged one into the header
// section would read the message differently, so they are refused.
func allowedTrailer[T ~string | ~[]byte](name T) bool {
	k := fieldKind(name)
	return k != fHost && k != fContentLength && !IsHopByHop(name)
}
