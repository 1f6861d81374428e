package conf

import "errors"

// parseTOML parses a TOML document in ExfilGuard's subset and returns its
// root table. Errors are *Error values with Line and Col set and File empty.
//
// (Implementation in progress.)
func parseTOML(data []byte) (*node, error) {
	return nil, errors.New("parseTOML: not implemented")
}
