package policy

import "strings"

// PathError reports a request target that has no single canonical policy
// path. The proxy answers it with 400 and never forwards the request.
// Reason is fixed text (it never contains request bytes), safe to log.
type PathError struct {
	Reason string
}

// Error returns "canonical path: " and the reason.
func (e *PathError) Error() string { return "canonical path: " + e.Reason }

// The rejections are preallocated: a client sending garbage must not make
// the proxy allocate.
var (
	errNotOriginForm   = &PathError{Reason: "request target is not a path"}
	errBadEscape       = &PathError{Reason: "invalid percent-encoding"}
	errEncodedSlash    = &PathError{Reason: "encoded '/' or '\\'"}
	errEncodedControl  = &PathError{Reason: "encoded control character"}
	errBackslash       = &PathError{Reason: "literal '\\'"}
	errControl         = &PathError{Reason: "control character"}
	errEncodedDot      = &PathError{Reason: "dot segment written with %2e"}
	errFragment        = &PathError{Reason: "fragment in request target"}
	errAsteriskQueried = &PathError{Reason: "asterisk-form with a query"}
)

// CanonicalPath returns the path that policy rules are matched against for
// a request target in origin form (path and optional query) or asterisk
// form ("*"). The upstream still receives the raw target; the canonical
// path exists so that a path rule judges the resource the origin will
// serve, whatever spelling the client chose (peers §4.8: `/ok/../admin`
// must be judged as `/admin`).
//
// Rules, in order:
//   - "*" stays "*" (RFC 9112 §3.2.4, OPTIONS only; the caller checks the method).
//   - The query never takes part: everything from the first '?' is dropped
//     (RFC 3986 §3.4). An empty path becomes "/". A '#' is rejected: a
//     fragment is never part of a request target (RFC 9112 §3.2).
//   - The path must start with '/'.
//   - Rejected, because origins disagree on what they mean: a '%' not
//     followed by two hex digits (RFC 3986 §2.1); %2F and %5C, which some
//     origins decode into separators (Envoy CVE-2021-29492); an encoded
//     control byte (%00–%1F, %7F); a literal '\' (Windows servers treat it
//     as '/') or control byte; a "." or ".." segment with any dot written as
//     %2e or %2E (RFC 3986 §2.3 makes them equal to '.', RFC 3986 §5.2.4
//     only removes literal ones, so origins split on what to do).
//   - Literal "." and ".." segments are removed as RFC 3986 §5.2.4 does;
//     ".." at the root stays at the root.
//
// Nothing else is decoded or changed: "/%61pi" stays "/%61pi" and does not
// match "/api" (percent-encoding normalisation, RFC 3986 §6.2.2.2, is left
// to the origin; a pattern cannot contain '%'). Empty segments ("//") are
// kept. When the path needs no dot-segment removal the result is a
// substring of target and CanonicalPath does not allocate.
//
// Errors are *PathError.
func CanonicalPath(target string) (string, error) {
	if target == "*" {
		return target, nil
	}
	path := target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
		if path == "*" {
			return "", errAsteriskQueried
		}
	}
	if path == "" {
		return "/", nil
	}
	if path[0] != '/' {
		return "", errNotOriginForm
	}
	// One pass checks every byte and notes whether any segment is a literal
	// dot segment. A segment is "only dots" while every byte so far was '.'
	// or %2e; dots counts them and encoded says whether one was %2e.
	dotSegs := false
	dots, onlyDots, encoded := 0, true, false
	for i := 1; i < len(path); i++ {
		c := path[i]
		switch pathClass[c] {
		case pcOrdinary:
			onlyDots = false
			continue
		case pcSlash:
			if onlyDots && (dots == 1 || dots == 2) {
				if encoded {
					return "", errEncodedDot
				}
				dotSegs = true
			}
			dots, onlyDots, encoded = 0, true, false
		case pcDot:
			dots++
		case pcPercent:
			if i+2 >= len(path) {
				return "", errBadEscape
			}
			hi, ok1 := unhex(path[i+1])
			lo, ok2 := unhex(path[i+2])
			if !ok1 || !ok2 {
				return "", errBadEscape
			}
			switch d := hi<<4 | lo; {
			case d == '/' || d == '\\':
				return "", errEncodedSlash
			case d < 0x20 || d == 0x7f:
				return "", errEncodedControl
			case d == '.':
				dots++
				encoded = true
			default:
				onlyDots = false
			}
			i += 2
		case pcBackslash:
			return "", errBackslash
		case pcControl:
			return "", errControl
		case pcHash:
			return "", errFragment
		}
	}
	if onlyDots && (dots == 1 || dots == 2) {
		if encoded {
			return "", errEncodedDot
		}
		dotSegs = true
	}
	if !dotSegs {
		return path, nil
	}
	return removeDotSegments(path), nil
}

// Byte classes for CanonicalPath's scan.
const (
	pcOrdinary = iota
	pcSlash
	pcDot
	pcPercent
	pcBackslash
	pcControl
	pcHash
)

var pathClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = pcControl
	}
	t[0x7f] = pcControl
	t['/'] = pcSlash
	t['.'] = pcDot
	t['%'] = pcPercent
	t['\\'] = pcBackslash
	t['#'] = pcHash
	return t
}()

// removeDotSegments applies RFC 3986 §5.2.4 to an absolute path whose
// dot segments are all literal. The output buffer holds "/seg" for each
// kept segment, so removing the last segment is cutting at the last '/'.
func removeDotSegments(path string) string {
	var stack [256]byte
	out := stack[:0]
	if len(path) > len(stack) {
		out = make([]byte, 0, len(path))
	}
	for rest := path[1:]; ; {
		seg, next, more := strings.Cut(rest, "/")
		switch seg {
		case ".":
			if !more {
				// A trailing "/." leaves the directory: "/a/." is "/a/".
				out = append(out, '/')
			}
		case "..":
			if i := lastSlash(out); i >= 0 {
				out = out[:i]
			}
			if !more {
				out = append(out, '/')
			}
		default:
			out = append(out, '/')
			out = append(out, seg...)
		}
		if !more {
			break
		}
		rest = next
	}
	if len(out) == 0 {
		return "/"
	}
	return string(out)
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return -1
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
