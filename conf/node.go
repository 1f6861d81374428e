package conf

// This file declares the parse tree that the TOML subset parser (toml.go)
// produces and that the decoder (decode.go) reads. Every value remembers
// where it was written so that later errors (unknown key, bad value, failed
// validation) can point at FILE:LINE:COL.

// kind is the type of a parsed TOML value.
type kind uint8

const (
	kindString kind = iota + 1
	kindInteger
	kindBool
	kindArray
	kindTable
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindInteger:
		return "integer"
	case kindBool:
		return "boolean"
	case kindArray:
		return "array"
	case kindTable:
		return "table"
	}
	return "invalid"
}

// node is one parsed TOML value.
//
// Positions have File unset: the parser knows only the text; the loader
// fills in the file name.
type node struct {
	kind kind

	// pos is where the value starts: the first character of a string,
	// integer, boolean, array ('[') or inline table ('{'). For a table
	// defined by a [header] or [[header]] it is the '[' of that header; for
	// a table created implicitly (by a dotted key or a deeper header) it is
	// where it was first implied.
	pos Pos

	// keyPos is where the key that names this value was written: the first
	// character of the (possibly dotted) key, or of the header for a table.
	// Elements of arrays have keyPos == pos.
	keyPos Pos

	str     string // kindString
	integer int64  // kindInteger
	boolean bool   // kindBool

	// array holds the elements of kindArray, including arrays of tables
	// ([[header]]), in document order.
	array []*node

	// keys lists a kindTable's keys in definition order; fields maps each
	// key to its value.
	keys   []string
	fields map[string]*node
}

// field returns the value stored under key in table n, or nil.
func (n *node) field(key string) *node {
	if n == nil || n.kind != kindTable {
		return nil
	}
	return n.fields[key]
}
