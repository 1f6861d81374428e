package policy

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"

	"exfilguard/conf"
)

// Pattern is a compiled url_pattern: a scheme, a host matcher, a port and
// a path matcher. It is immutable and safe for concurrent use.
//
// The fields that every rule check reads come first and fit, with the
// rest of a rule, in one cache line; the rest sits behind x.
type Pattern struct {
	scheme   scheme
	hostKind hostKind
	pathKind pathKind
	anyPort  bool
	port     uint16
	// minLabels is the fewest labels a host matching hostLabels has.
	minLabels uint8
	// hostHash is hashName(x.host) for hostExact: most rules name other
	// hosts, and one integer comparison tells them apart.
	hostHash uint64
	path     string // pathExact: the path; pathPrefix: the prefix
	x        *patternExtra
}

// patternExtra is the part of a Pattern that few checks read.
type patternExtra struct {
	raw, hostRaw, pathRaw string     // as written, for String and Explain
	host                  string     // hostExact: the name in lower case
	addr                  netip.Addr // hostAddr
	labels                []token    // hostLabels
	segs                  []token    // pathGlob
}

// scheme is a request or pattern scheme. Unknown schemes match no pattern.
type scheme uint8

const (
	schemeOther scheme = iota
	schemeHTTP
	schemeHTTPS
)

func parseScheme(s string) scheme {
	switch s {
	case "http":
		return schemeHTTP
	case "https":
		return schemeHTTPS
	}
	return schemeOther
}

func (s scheme) String() string {
	switch s {
	case schemeHTTP:
		return "http"
	case schemeHTTPS:
		return "https"
	}
	return "other"
}

// CompilePattern compiles a parsed url_pattern into a matcher. The pattern
// is normally valid (conf.ParseURLPattern checked it); anything odd is an
// error, never a matcher that quietly matches more than was written.
//
// Matching (SPEC §4):
//   - Scheme: equal.
//   - Port: the pattern's port (the scheme's default when it names none),
//     or any port for ":*".
//   - Host: "*" alone matches any host, IP literals included. An exact
//     name matches ignoring ASCII case and one trailing dot on the request
//     host (RFC 4343, RFC 1034 §3.1). In a name, a "*" label matches
//     exactly one label and a "**" label one or more; such patterns match
//     names only, never an IP literal or a name ending in a number. An IP
//     literal is compared as an address: [2001:db8::1] matches
//     2001:0db8:0:0::1, and a request for ::ffff:10.0.0.1 matches 10.0.0.1.
//   - Path: no path matches any path. Otherwise segment by segment: '*'
//     matches any run of characters within one segment, and a "**"
//     segment matches one or more whole segments, which may be empty. So
//     "/api/**" matches "/api/", "/api/x" and "/api/x/y" but not "/api"
//     (the original's regex "^/api/.*$" agreed), and "/a/**/b" matches
//     "/a//b" and "/a/x/y/b" but not "/a/b". The asterisk-form target "*"
//     is matched only by no path or "/**". Paths are compared as the
//     canonical policy path spells them (see CanonicalPath): case-
//     sensitively, percent-escapes undecoded.
func CompilePattern(p *conf.URLPattern) (*Pattern, error) {
	if p == nil {
		return nil, errors.New("compile url_pattern: nil pattern")
	}
	cp := &Pattern{
		scheme:  parseScheme(p.Scheme),
		port:    p.Port,
		anyPort: p.AnyPort,
		x:       &patternExtra{raw: p.Raw, hostRaw: p.Host, pathRaw: p.Path},
	}
	if cp.scheme == schemeOther {
		return nil, fmt.Errorf("compile url_pattern %q: scheme %q is not http or https", p.Raw, p.Scheme)
	}
	if !p.AnyPort && p.Port == 0 {
		return nil, fmt.Errorf("compile url_pattern %q: no port", p.Raw)
	}
	if err := cp.compileHost(p.Host, p.Addr); err != nil {
		return nil, fmt.Errorf("compile url_pattern %q: %v", p.Raw, err)
	}
	if err := cp.compilePath(p.Path); err != nil {
		return nil, fmt.Errorf("compile url_pattern %q: %v", p.Raw, err)
	}
	return cp, nil
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.x.raw }

// Match reports whether a request for scheme://host:port/path matches the
// pattern. Host is a name or an IP literal (IPv6 with or without
// brackets); port 0 means the scheme's default; path is a canonical policy
// path (see CanonicalPath).
func (p *Pattern) Match(scheme, host string, port uint16, path string) bool {
	var v view
	v.init("", scheme, host, port, path)
	return p.check(&v, true) == matchOK
}

// mismatch says which part of a rule failed to match, for Explain. Decide
// only compares it with matchOK, so both reach the same answer.
type mismatch uint8

const (
	matchOK mismatch = iota
	missMethod
	missScheme
	missHost
	missPort
	missPath
)

// check matches the pattern against v; withPath false matches the
// authority only (the CONNECT walk, SPEC §4).
func (p *Pattern) check(v *view, withPath bool) mismatch {
	switch {
	case p.scheme != v.scheme:
		return missScheme
	case !p.matchHost(&v.host):
		return missHost
	case !p.anyPort && p.port != v.port:
		return missPort
	case withPath && !p.matchPath(v.path):
		return missPath
	}
	return matchOK
}

// anyPath reports whether the pattern matches every path: no path or
// exactly "/**". Such a DENY rule denies a whole CONNECT (SPEC §4).
func (p *Pattern) anyPath() bool {
	return p.pathKind == pathNone || p.pathKind == pathAll
}

// Host matching.

type hostKind uint8

const (
	hostAny    hostKind = iota // "*"
	hostExact                  // a name, compared without case
	hostAddr                   // an IP literal, compared as an address
	hostLabels                 // a name with "*" or "**" labels
)

// token is one element of a label or segment pattern: a literal, one
// element of any value ("*" label, "*" segment, or a segment glob), or
// zero or more elements. A "**" is compiled as one element followed by
// zero or more, since it must match at least one.
type token struct {
	kind tokenKind
	lit  string
}

type tokenKind uint8

const (
	tokLit  tokenKind = iota // exactly lit
	tokOne                   // any one element
	tokGlob                  // one element matching lit, where '*' is any run of bytes
	tokMany                  // zero or more elements
)

func (p *Pattern) compileHost(host string, addr netip.Addr) error {
	x := p.x
	switch {
	case addr.IsValid():
		if addr.Zone() != "" {
			return errors.New("host IP literal has a zone")
		}
		// A request host ::ffff:a.b.c.d is unmapped before matching, so
		// the pattern must be unmapped too.
		p.hostKind, x.addr = hostAddr, addr.Unmap()
		return nil
	case host == "*":
		p.hostKind = hostAny
		return nil
	case host == "":
		return errors.New("empty host")
	case !strings.Contains(host, "*"):
		if _, ok := checkName(host); !ok {
			return fmt.Errorf("host %q is not a valid name", host)
		}
		x.host = strings.ToLower(host)
		p.hostKind, p.hostHash = hostExact, hashName(x.host)
		return nil
	}
	p.hostKind = hostLabels
	for l := range strings.SplitSeq(host, ".") {
		switch {
		case l == "*":
			x.labels = append(x.labels, token{kind: tokOne})
			p.minLabels++
		case l == "**":
			x.labels = append(x.labels, token{kind: tokOne}, token{kind: tokMany})
			p.minLabels++
		case l == "" || strings.Contains(l, "*"):
			return fmt.Errorf("host %q: wildcards must be whole labels", host)
		default:
			if _, ok := checkName(l); !ok {
				return fmt.Errorf("host %q is not a valid name", host)
			}
			x.labels = append(x.labels, token{kind: tokLit, lit: strings.ToLower(l)})
			p.minLabels++
		}
	}
	return nil
}

func (p *Pattern) matchHost(h *hostView) bool {
	switch p.hostKind {
	case hostAny:
		return true
	case hostExact:
		if h.kind != viewName || h.hash != p.hostHash {
			return false
		}
		if h.lower {
			return h.name == p.x.host
		}
		return equalFoldASCII(h.name, p.x.host)
	case hostAddr:
		return h.kind == viewAddr && h.addr == p.x.addr
	case hostLabels:
		return h.kind == viewName && h.nlabels >= p.minLabels && p.x.matchLabels(h)
	}
	return false
}

// matchLabels is wildcard matching over labels with one backtracking point
// (the last tokMany seen). Every other token consumes exactly one label,
// which is what makes a single backtracking point enough.
func (x *patternExtra) matchLabels(h *hostView) bool {
	toks, n := x.labels, int(h.nlabels)
	ti, li := 0, 0
	starTi, starLi := -1, 0
	for ti < len(toks) || li < n {
		if ti < len(toks) {
			t := &toks[ti]
			if t.kind == tokMany {
				starTi, starLi = ti, li
				ti++
				continue
			}
			if li < n && (t.kind == tokOne || equalFoldASCII(h.label(li), t.lit)) {
				ti++
				li++
				continue
			}
		}
		if starTi >= 0 && starLi < n {
			starLi++
			ti, li = starTi+1, starLi
			continue
		}
		return false
	}
	return true
}

// Path matching.

type pathKind uint8

const (
	pathNone   pathKind = iota // no path in the pattern: any path
	pathAll                    // "/**": any path
	pathExact                  // no wildcard: the whole path
	pathPrefix                 // "/a/b/**" without other wildcards: lit is "/a/b/"
	pathGlob                   // anything else, segment by segment
)

func (p *Pattern) compilePath(path string) error {
	switch {
	case path == "":
		p.pathKind = pathNone
		return nil
	case path[0] != '/':
		return fmt.Errorf("path %q does not start with '/'", path)
	case path == "/**":
		p.pathKind = pathAll
		return nil
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		if seg != "**" && strings.Contains(seg, "**") {
			return fmt.Errorf("path segment %q: '**' must be a whole segment", seg)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("path segment %q can never match a canonical path", seg)
		}
	}
	if !strings.Contains(path, "*") {
		p.pathKind, p.path = pathExact, path
		return nil
	}
	if head, ok := strings.CutSuffix(path, "/**"); ok && !strings.Contains(head, "*") {
		// The common "/dir/**": "**" matches one or more segments, that is
		// any text after "/dir/" (RFC 3986 segments may be empty).
		p.pathKind, p.path = pathPrefix, head+"/"
		return nil
	}
	p.pathKind = pathGlob
	for seg := range strings.SplitSeq(path[1:], "/") {
		switch {
		case seg == "**":
			p.x.segs = append(p.x.segs, token{kind: tokOne}, token{kind: tokMany})
		case seg == "*":
			p.x.segs = append(p.x.segs, token{kind: tokOne})
		case strings.Contains(seg, "*"):
			p.x.segs = append(p.x.segs, token{kind: tokGlob, lit: seg})
		default:
			p.x.segs = append(p.x.segs, token{kind: tokLit, lit: seg})
		}
	}
	return nil
}

// match reports whether the canonical path matches. The asterisk-form
// target "*" (OPTIONS, RFC 9112 §3.2.4) names the server rather than a
// resource, so only the patterns that match every path match it.
func (p *Pattern) matchPath(path string) bool {
	switch p.pathKind {
	case pathNone, pathAll:
		return true
	case pathExact:
		return path == p.path
	case pathPrefix:
		return strings.HasPrefix(path, p.path)
	case pathGlob:
		return len(path) > 0 && path[0] == '/' && p.x.matchSegments(path[1:])
	}
	return false
}

// matchSegments is wildcard matching over the segments of s (a path
// without its leading '/'), with the same single backtracking point as
// matchLabels. Positions are byte offsets of a segment's start in s;
// len(s)+1 means no segment is left, since "" is itself one empty segment.
func (x *patternExtra) matchSegments(s string) bool {
	toks, end := x.segs, len(s)+1
	ti, pos := 0, 0
	starTi, starPos := -1, 0
	for ti < len(toks) || pos < end {
		if ti < len(toks) {
			t := &toks[ti]
			if t.kind == tokMany {
				starTi, starPos = ti, pos
				ti++
				continue
			}
			if pos < end {
				seg, next := segmentAt(s, pos)
				if t.matchSegment(seg) {
					ti, pos = ti+1, next
					continue
				}
			}
		}
		if starTi >= 0 && starPos < end {
			_, starPos = segmentAt(s, starPos)
			ti, pos = starTi+1, starPos
			continue
		}
		return false
	}
	return true
}

func (t *token) matchSegment(seg string) bool {
	switch t.kind {
	case tokOne:
		return true
	case tokGlob:
		return globMatch(t.lit, seg)
	}
	return seg == t.lit
}

// segmentAt returns the segment of s starting at pos and the start of the
// next one (len(s)+1 when it was the last).
func segmentAt(s string, pos int) (seg string, next int) {
	if i := strings.IndexByte(s[pos:], '/'); i >= 0 {
		return s[pos : pos+i], pos + i + 1
	}
	return s[pos:], len(s) + 1
}

// globMatch reports whether s matches pat, where '*' in pat matches any
// run of bytes (within one segment: s never holds a '/').
func globMatch(pat, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, 0
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			c := pat[px]
			if c == '*' {
				nextPx, nextSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && s[sx] == c {
				px++
				sx++
				continue
			}
		}
		if nextPx >= 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// nameSeed seeds hashName; hashes are compared only within one process.
var nameSeed = maphash.MakeSeed()

// hashName hashes a lower-case host name.
func hashName(s string) uint64 { return maphash.String(nameSeed, s) }

// equalFoldASCII reports whether s equals lower, a lower-case string,
// ignoring ASCII case. Host names are ASCII (IDNs arrive as A-labels,
// RFC 5890), and RFC 4343 makes their comparison ASCII case-insensitive.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
