// Package http1 is ExfilGuard's HTTP/1.1 wire format: request and response
// heads, Content-Length and chunked bodies with trailers, and the writers
// for heads, chunked bodies and the proxy's own fixed responses.
//
// It implements RFC 9112 (HTTP/1.1) with the field rules of RFC 9110, and
// it is strict on purpose: everything a client or an upstream sends passes
// through it, and a forward proxy that repairs or guesses is a request
// smuggling target. Input that the RFCs call invalid, or that two parsers
// could read differently (bare LF, obs-fold, whitespace before a colon,
// duplicate or conflicting framing fields, Transfer-Encoding other than
// "chunked", chunk sizes that are not plain hex, malformed chunk
// extensions), is rejected with an *Error carrying the status to send and is
// never repaired. Every read is bounded by a named limit, and parsing makes
// one pass over the input.
//
// The package makes no policy decisions and opens no connections. A Reader
// wraps a *bufio.Reader that the caller owns, so that bytes already buffered
// after a head can be handed elsewhere (into a CONNECT tunnel). The slices of
// a RequestHead or ResponseHead point into the Reader's buffer and stay valid
// until the same Reader reads the next head; reading a head allocates nothing
// once the Reader's buffers have grown to fit.
package http1
