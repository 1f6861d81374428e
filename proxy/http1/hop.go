package http1

// IsHopByHop reports whether a field called name describes one connection
// rather than the message, so that a proxy must not forward it (RFC 9110
// §7.6.1): Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade, and every Proxy-* field (Proxy-Authorization
// carries the client's proxy credentials; reference §5.3 strips the whole
// prefix). Fields that a Connection field names are hop-by-hop too; see
// InConnection.
func IsHopByHop[T ~string | ~[]byte](name T) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 17:
		return equalFold(name, "transfer-encoding")
	}
	return hasPrefixFold(name, "proxy-")
}

// IsIdentity reports whether a field called name carries a client's
// address or forwarding history, which the proxy removes so that no
// client-supplied identity reaches an upstream (reference §5.3; peers
// §4.10): Forwarded, X-Forwarded-*, X-Real-IP, CF-Connecting-IP and every
// name ending in -Client-IP (X-Client-IP, True-Client-IP,
// X-Cluster-Client-IP, Fastly-Client-IP, Fly-Client-IP, ...).
func IsIdentity[T ~string | ~[]byte](name T) bool {
	return equalFold(name, "forwarded") ||
		equalFold(name, "x-real-ip") ||
		equalFold(name, "cf-connecting-ip") ||
		hasPrefixFold(name, "x-forwarded-") ||
		hasSuffixFold(name, "-client-ip")
}

// InConnection reports whether the Connection field value connection lists
// name as one of its options (RFC 9110 §7.6.1), ignoring ASCII case.
func InConnection[T ~string | ~[]byte](connection, name T) bool {
	for len(connection) > 0 {
		var elem T
		elem, connection = cutComma(connection)
		if elem = trimOWS(elem); len(elem) > 0 && foldEqual(elem, name) {
			return true
		}
	}
	return false
}

// StripHopByHop removes, in place, the hop-by-hop fields of fs (see
// IsHopByHop) and the fields named by its Connection fields, and returns
// the shortened slice. Transfer-Encoding is among them; Content-Length and
// Host are not, though the proxy writes its own of both.
func StripHopByHop(fs Fields) Fields {
	// The Connection values are collected first: compaction overwrites
	// the fields it has passed.
	var arr [2][]byte
	conn := arr[:0]
	for _, f := range fs {
		if equalFold(f.Name, "connection") {
			conn = append(conn, f.Value)
		}
	}
	out := fs[:0]
	for _, f := range fs {
		if !IsHopByHop(f.Name) && !anyInConnection(conn, f.Name) {
			out = append(out, f)
		}
	}
	clear(fs[len(out):])
	return out
}

func anyInConnection(conn [][]byte, name []byte) bool {
	for _, c := range conn {
		if InConnection(c, name) {
			return true
		}
	}
	return false
}

// StripIdentity removes, in place, the fields of fs that carry a client's
// identity (see IsIdentity) and returns the shortened slice.
func StripIdentity(fs Fields) Fields {
	out := fs[:0]
	for _, f := range fs {
		if !IsIdentity(f.Name) {
			out = append(out, f)
		}
	}
	clear(fs[len(out):])
	return out
}
