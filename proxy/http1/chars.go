package http1

// Byte classes of the grammars this package implements.
const (
	cToken  = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue              // field-vchar, SP or HTAB: field-content bytes (RFC 9110 §5.5)
	cTarget             // a byte of a request-target: VCHAR (RFC 9112 §3.2, RFC 3986 §2)
	cQdtext             // qdtext (RFC 9110 §5.6.4)
	cHex                // HEXDIG (RFC 5234 §B.1)
	cHost               // a byte of a host name label: ALPHA, DIGIT, "-" or "_"
)

var chars = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		var k uint8
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if alnum || c < 0x7f && c > ' ' && contains("!#$%&'*+-.^_`|~", byte(c)) {
			k |= cToken
		}
		// field-vchar = VCHAR / obs-text; obs-text (0x80-0xFF) is accepted
		// as opaque bytes (RFC 9110 §5.5).
		if c == '\t' || c >= ' ' && c != 0x7f {
			k |= cValue
		}
		if c > ' ' && c < 0x7f {
			k |= cTarget
		}
		// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
		if c == '\t' || c == ' ' || c == 0x21 || c >= 0x23 && c <= 0x5b || c >= 0x5d && c != 0x7f {
			k |= cQdtext
		}
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			k |= cHex
		}
		if alnum || c == '-' || c == '_' {
			k |= cHost
		}
		t[c] = k
	}
	return t
}()

func contains(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// isToken reports whether s is a token: one or more tchar (RFC 9110 §5.6.2).
func isToken[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if chars[s[i]]&cToken == 0 {
			return false
		}
	}
	return true
}

// isFieldValue reports whether s is a field value as it is written on the
// wire after OWS removal: field-content bytes only, and no leading or
// trailing SP or HTAB (RFC 9110 §5.5).
func isFieldValue[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if chars[s[i]]&cValue == 0 {
			return false
		}
	}
	return len(s) == 0 || !isOWS(s[0]) && !isOWS(s[len(s)-1])
}

// isOWS reports whether c is SP or HTAB, the bytes of OWS (RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// lower returns c in lower case if it is an ASCII letter.
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether s equals the lower-case ASCII string t, ignoring
// ASCII case (field names and tokens are case-insensitive, RFC 9110 §5.1).
func equalFold[T ~string | ~[]byte](s T, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != t[i] {
			return false
		}
	}
	return true
}

// foldEqual reports whether a and b are equal ignoring ASCII case.
func foldEqual[A, B ~string | ~[]byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s starts with the lower-case ASCII string
// prefix, ignoring ASCII case.
func hasPrefixFold[T ~string | ~[]byte](s T, prefix string) bool {
	return len(s) >= len(prefix) && equalFold(s[:len(prefix)], prefix)
}

// hasSuffixFold reports whether s ends with the lower-case ASCII string
// suffix, ignoring ASCII case.
func hasSuffixFold[T ~string | ~[]byte](s T, suffix string) bool {
	return len(s) >= len(suffix) && equalFold(s[len(s)-len(suffix):], suffix)
}

// trimOWS removes leading and trailing OWS.
func trimOWS[T ~string | ~[]byte](s T) T {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
