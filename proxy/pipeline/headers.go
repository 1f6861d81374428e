package pipeline

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the header fields that describe one connection, not the
// message (RFC 9110 §7.6.1), plus framing fields that the writer on the
// other side regenerates (RFC 9112 §6).
var hopByHop = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection", // obsolete, never forwarded
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Content-Length",
	"Host",
}

// identityHeaders are request fields that carry a client's identity or
// claim one for someone else (reference §5.3). ExfilGuard adds none and
// forwards none: upstreams must not learn internal addresses, and a
// client must not be able to forge one.
var identityHeaders = []string{
	"Forwarded",
	"X-Real-Ip",
	"X-Client-Ip",
	"X-Cluster-Client-Ip",
	"True-Client-Ip",
	"Cf-Connecting-Ip",
	"Fastly-Client-Ip",
	"Fly-Client-Ip",
}

// forwardHeaders returns the request header fields to send upstream:
// everything but hop-by-hop fields, fields named by Connection, Proxy-*
// fields, identity fields, and Expect (the proxy answers 100-continue
// itself, SPEC §5).
func forwardHeaders(in http.Header) http.Header {
	out := make(http.Header, len(in))
	for k, vs := range in {
		out[k] = vs
	}
	removeConnectionFields(out, in)
	for _, k := range identityHeaders {
		delete(out, k)
	}
	delete(out, "Expect")
	// TE: trailers is how a client says it accepts trailers (gRPC needs it
	// on HTTP/2, RFC 9113 §8.2.2); any other TE value stays hop-by-hop.
	if te := in["Te"]; len(te) == 1 && strings.EqualFold(strings.TrimSpace(te[0]), "trailers") {
		if _, named := out["Te"]; !named && !connectionNames(in, "Te") {
			out["Te"] = []string{"trailers"}
		}
	}
	for k := range out {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "proxy-") || strings.HasPrefix(lk, "x-forwarded-") || strings.HasSuffix(lk, "-client-ip") {
			delete(out, k)
		}
	}
	return out
}

// copyResponseHeaders copies the upstream response fields to relay into
// dst: everything but hop-by-hop fields, fields named by Connection, and
// Proxy-Authenticate / Proxy-Authorization, which belong to a proxy hop.
func copyResponseHeaders(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = vs
	}
	removeConnectionFields(dst, src)
	delete(dst, "Proxy-Authenticate")
	delete(dst, "Proxy-Authorization")
}

// removeConnectionFields deletes from dst the hop-by-hop fields and every
// field that src's Connection header names (RFC 9110 §7.6.1).
func removeConnectionFields(dst, src http.Header) {
	for _, v := range src["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(dst, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	for _, k := range hopByHop {
		delete(dst, k)
	}
}

// connectionNames reports whether src's Connection header names name.
func connectionNames(src http.Header, name string) bool {
	for _, v := range src["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(tok)) == name {
				return true
			}
		}
	}
	return false
}
