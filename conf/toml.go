package conf

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is the TOML subset parser: TOML 1.0 (https://toml.io/en/v1.0.0)
// without floats and date-times, which no setting needs and which are
// rejected with "unsupported TOML value". It makes one pass over the bytes,
// stops at the first error and never repairs its input. The grammar lines
// quoted above the parse functions are from the TOML 1.0 ABNF
// (toml.abnf); where the ABNF and the prose of the specification differ,
// the prose wins and a comment says so.

// Limits of the parser. TOML sets none; these bound the recursion of the
// parser and of the walks over its tree on hostile input, and no real
// configuration comes near them.
const (
	// maxNesting bounds how deeply arrays and inline tables nest.
	maxNesting = 128
	// maxKeyParts bounds the parts of one dotted key or table header.
	maxKeyParts = 128
)

// origin says how a table or an array came to be, which decides whether a
// later header or dotted key may define or extend it (TOML 1.0 "Table",
// "Inline Table" and "Array of Tables").
type origin struct {
	how     uint8
	section int // for byDotted: the section whose keys made the table
}

const (
	// byHeader: a table defined by a [header], an element of an array of
	// tables, or the root. The default for tables.
	byHeader uint8 = iota
	// byValue: an inline table or a static array, written as a value.
	// Immutable. The default for arrays.
	byValue
	// implied: a table created by a deeper header ([a.b] implies a). A
	// header may define it once; dotted keys may extend it.
	implied
	// byDotted: a table created by dotted keys. Only dotted keys of the
	// same section may extend it; headers may add sub-tables to it.
	byDotted
	// arrayOfTables: an array made by [[header]]s.
	arrayOfTables
)

// keyPart is one simple key of a dotted key or of a table header.
type keyPart struct {
	name string
	off  int // offset of its first character, for errors
}

// parser holds the state of one parse. Positions are tracked for the
// current line only: line is the number of the line that starts at byte
// lineStart, and pos turns an offset on that line into a Pos.
type parser struct {
	data []byte
	off  int // next byte to read

	line      int // 1-based number of the current line
	lineStart int // offset of the current line's first byte
	colOff    int // an offset on the current line whose column is col
	col       int

	err *Error // the first error; once set, parsing stops

	root *node
	cur  *node // the table that key/value pairs go into

	// sections counts the sections made so far: the lines before the
	// first header, each header's lines, each inline table. section
	// identifies the current one.
	sections int
	section  int

	// meta records the origin of tables and arrays that differ from the
	// default (byHeader for tables, byValue for arrays).
	meta map[*node]origin

	// prefix is the full key path of the current section, then of each
	// key whose value is being parsed (for inline tables); for messages.
	prefix []string

	parts []keyPart // scratch: the key being parsed
	buf   []byte    // scratch: a string with escapes or newlines

	keys map[string]string // interned bare keys

	// Nodes, tables' first keys and arrays' first elements are carved
	// from slabs, to spare the allocations of many small objects.
	slab  int // the size of the next slab, in nodes
	nodes []node
	names []string
	elems []*node
}

// Sizes of the slabs and of what is carved from them: most tables of a
// configuration have at most 8 keys and most arrays at most 4 elements.
// Slabs start small for small documents and double up to maxSlab.
const (
	minSlab    = 8
	maxSlab    = 256
	firstKeys  = 8
	firstElems = 4
)

// maxInterned bounds the interned bare keys: a configuration uses a few
// dozen names, so more than this means the input is not one.
const maxInterned = 1024

// utf8BOM may open a document (the toml-test suite accepts it); it is not
// part of the first line's columns.
const utf8BOM = "\xef\xbb\xbf"

// Parse parses a TOML document in ExfilGuard's subset: TOML 1.0 without
// floats and date-times, which are rejected with "unsupported TOML value".
// The result holds only string, int64, bool, []any and map[string]any
// values. An error is an *Error whose Pos has Line and Col set and File
// empty.
func Parse(data []byte) (map[string]any, error) {
	root, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	return plainTable(root), nil
}

func plainTable(n *node) map[string]any {
	m := make(map[string]any, len(n.keys))
	for _, k := range n.keys {
		m[k] = plain(n.fields[k])
	}
	return m
}

func plain(n *node) any {
	switch n.kind {
	case kindString:
		return n.str
	case kindInteger:
		return n.integer
	case kindBool:
		return n.boolean
	case kindArray:
		a := make([]any, len(n.array))
		for i, e := range n.array {
			a[i] = plain(e)
		}
		return a
	case kindTable:
		return plainTable(n)
	}
	panic("conf: internal error: node of kind " + n.kind.String())
}

// parseTOML parses a TOML document in ExfilGuard's subset and returns its
// root table. Errors are *Error values with Line and Col set and File empty.
func parseTOML(data []byte) (*node, error) {
	p := &parser{data: data, line: 1, col: 1, meta: make(map[*node]origin)}
	first := Pos{Line: 1, Col: 1}
	p.root = p.newNode(kindTable, first)
	p.cur = p.root
	p.document()
	if p.err != nil {
		return nil, p.err
	}
	return p.root, nil
}

// toml = expression *( newline expression )
// expression =  ws [ comment ]
// expression =/ ws keyval ws [ comment ]
// expression =/ ws table ws [ comment ]
func (p *parser) document() {
	if bytes.HasPrefix(p.data, []byte(utf8BOM)) {
		p.off = len(utf8BOM)
		p.lineStart = p.off
	}
	for p.err == nil {
		p.skipWS()
		if p.off >= len(p.data) {
			return
		}
		switch p.data[p.off] {
		case '#', '\n', '\r':
			p.endLine("")
		case '[':
			p.table()
			p.endLine("table header")
		default:
			p.keyval(p.cur, 0)
			p.endLine("value")
		}
	}
}

// endLine reads the end of an expression: ws [ comment ] newline, or the
// end of the document. After names what came before, for the message.
func (p *parser) endLine(after string) {
	if p.err != nil {
		return
	}
	p.skipWS()
	if p.off < len(p.data) && p.data[p.off] == '#' {
		p.comment()
	}
	if p.err != nil || p.off >= len(p.data) {
		return
	}
	if !p.newline() {
		p.fail(p.off, "expected end of line after "+after)
	}
}

// ws = *wschar
// wschar = %x20 / %x09
func (p *parser) skipWS() {
	for p.off < len(p.data) && (p.data[p.off] == ' ' || p.data[p.off] == '\t') {
		p.off++
	}
}

// newline = %x0A / %x0D.0A
//
// newline reads a newline at p.off, if there is one, and reports whether
// it did. A carriage return not followed by a line feed is an error.
func (p *parser) newline() bool {
	switch p.data[p.off] {
	case '\n':
		p.off++
	case '\r':
		if p.off+1 >= len(p.data) || p.data[p.off+1] != '\n' {
			p.fail(p.off, "carriage return must be followed by a line feed")
			return false
		}
		p.off += 2
	default:
		return false
	}
	p.line++
	p.lineStart = p.off
	return true
}

// comment = comment-start-symbol *non-eol
// non-eol = %x09 / %x20-7F / non-ascii
//
// The specification's prose forbids DEL (U+007F) in comments along with
// the other control characters but tab, and so does this parser.
func (p *parser) comment() {
	i := p.off + 1
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c >= 0x20 && c < 0x7f || c == '\t':
			i++
		case c == '\n' || c == '\r':
			// The caller reads the newline; newline rejects a bare CR.
			p.off = i
			return
		case c >= utf8.RuneSelf:
			n := p.utf8At(i)
			if n == 0 {
				return
			}
			i += n
		default:
			p.fail(i, fmt.Sprintf("control character %U is not allowed in comments", c))
			return
		}
	}
	p.off = i
}

// ws-comment-newline = *( wschar / [ comment ] newline )
func (p *parser) skipWSCommentNewline() {
	for p.err == nil && p.off < len(p.data) {
		switch p.data[p.off] {
		case ' ', '\t':
			p.off++
		case '#':
			p.comment()
		case '\n', '\r':
			p.newline()
		default:
			return
		}
	}
}

// table = std-table / array-table
// std-table = std-table-open key std-table-close
// array-table = array-table-open key array-table-close
// std-table-open  = %x5B ws     ; [
// std-table-close = ws %x5D     ; ]
// array-table-open  = %x5B.5B ws  ; [[
// array-table-close = ws %x5D.5D  ; ]]
func (p *parser) table() {
	hdr := p.pos(p.off)
	array := p.off+1 < len(p.data) && p.data[p.off+1] == '['
	if array {
		p.off += 2
	} else {
		p.off++
	}
	p.skipWS()
	parts := p.key()
	if p.err != nil {
		return
	}
	p.skipWS()
	switch {
	case !array && p.off < len(p.data) && p.data[p.off] == ']':
		p.off++
	case array && p.off+1 < len(p.data) && p.data[p.off] == ']' && p.data[p.off+1] == ']':
		p.off += 2
	case array:
		at := p.off
		if at < len(p.data) && p.data[at] == ']' {
			at++
		}
		p.fail(at, "expected ']]' after array of tables header key")
		return
	default:
		p.fail(p.off, "expected ']' after table header key")
		return
	}
	p.sections++
	p.section = p.sections
	p.prefix = p.prefix[:0]
	for _, part := range parts {
		p.prefix = append(p.prefix, part.name)
	}
	p.defineTable(parts, hdr, array)
}

// defineTable makes the table that header parts names the current table:
// a new element of the array of tables when array is set.
func (p *parser) defineTable(parts []keyPart, hdr Pos, array bool) {
	t := p.root
	last := len(parts) - 1
	for i, part := range parts[:last] {
		child := t.fields[part.name]
		switch {
		case child == nil:
			child = p.newNode(kindTable, hdr)
			p.meta[child] = origin{how: implied}
			p.add(t, part.name, child)
		case child.kind == kindTable:
			if p.origin(child).how == byValue {
				p.fail(part.off, fmt.Sprintf("cannot extend inline table %s (defined at line %d) with a table header",
					tomlKey(p.prefix[:i+1]), child.keyPos.Line))
				return
			}
		case child.kind == kindArray:
			if p.origin(child).how != arrayOfTables {
				p.fail(part.off, fmt.Sprintf("cannot extend array %s (defined at line %d) with a table header",
					tomlKey(p.prefix[:i+1]), child.keyPos.Line))
				return
			}
			// TOML 1.0: a sub-table header belongs to the most recently
			// defined element of the array.
			child = child.array[len(child.array)-1]
		default:
			p.notTable(part.off, p.prefix[:i+1], child)
			return
		}
		t = child
	}

	name, off := parts[last].name, parts[last].off
	prev := t.fields[name]
	if array {
		switch {
		case prev == nil:
			prev = p.newNode(kindArray, hdr)
			p.meta[prev] = origin{how: arrayOfTables}
			p.add(t, name, prev)
		case prev.kind == kindArray && p.origin(prev).how == arrayOfTables:
		case prev.kind == kindArray:
			p.fail(off, fmt.Sprintf("cannot extend array %s (defined at line %d) with a table header",
				tomlKey(p.prefix), prev.keyPos.Line))
			return
		case prev.kind == kindTable:
			p.fail(off, fmt.Sprintf("key %s is a table, not an array of tables (defined at line %d)",
				quoteKey(p.prefix), prev.keyPos.Line))
			return
		default:
			p.duplicate(off, p.prefix, prev)
			return
		}
		elem := p.newNode(kindTable, hdr)
		prev.array = append(prev.array, elem)
		p.cur = elem
		return
	}
	switch {
	case prev == nil:
		prev = p.newNode(kindTable, hdr)
		p.add(t, name, prev)
	case prev.kind == kindTable && p.origin(prev).how == implied:
		delete(p.meta, prev)
		prev.pos, prev.keyPos = hdr, hdr
	case prev.kind == kindTable:
		p.fail(off, fmt.Sprintf("table [%s] already defined at line %d", tomlKey(p.prefix), prev.keyPos.Line))
		return
	case prev.kind == kindArray && p.origin(prev).how == arrayOfTables:
		p.fail(off, fmt.Sprintf("table [%s] already defined as an array of tables at line %d",
			tomlKey(p.prefix), prev.keyPos.Line))
		return
	default:
		p.duplicate(off, p.prefix, prev)
		return
	}
	p.cur = prev
}

// key = simple-key / dotted-key
// dotted-key = simple-key 1*( dot-sep simple-key )
// dot-sep   = ws %x2E ws  ; . Period
//
// key returns the parts in p.parts, valid until the next key.
func (p *parser) key() []keyPart {
	p.parts = p.parts[:0]
	for {
		if len(p.parts) == maxKeyParts {
			p.fail(p.off, fmt.Sprintf("key has more than %d parts", maxKeyParts))
			return nil
		}
		off := p.off
		name := p.simpleKey()
		if p.err != nil {
			return nil
		}
		p.parts = append(p.parts, keyPart{name: name, off: off})
		p.skipWS()
		if p.off >= len(p.data) || p.data[p.off] != '.' {
			return p.parts
		}
		p.off++
		p.skipWS()
	}
}

// simple-key = quoted-key / unquoted-key
// unquoted-key = 1*( ALPHA / DIGIT / %x2D / %x5F ) ; A-Z / a-z / 0-9 / - / _
// quoted-key = basic-string / literal-string
func (p *parser) simpleKey() string {
	start := p.off
	if start < len(p.data) {
		switch c := p.data[start]; c {
		case '"', '\'':
			if p.off+2 < len(p.data) && p.data[p.off+1] == c && p.data[p.off+2] == c {
				p.fail(start, "multi-line strings cannot be keys")
				return ""
			}
			if c == '"' {
				return p.basicString()
			}
			return p.literalString()
		}
	}
	i := start
	for i < len(p.data) && isBare(p.data[i]) {
		i++
	}
	if i == start {
		p.fail(start, "expected a key")
		return ""
	}
	p.off = i
	return p.intern(p.data[start:i])
}

func isBare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func (p *parser) intern(b []byte) string {
	if s, ok := p.keys[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.keys == nil {
		p.keys = make(map[string]string)
	}
	if len(p.keys) < maxInterned {
		p.keys[s] = s
	}
	return s
}

// keyval = key keyval-sep val
// keyval-sep = ws %x3D ws ; =
//
// keyval stores the pair in table t; depth counts the arrays and inline
// tables around it.
func (p *parser) keyval(t *node, depth int) {
	keyPos := p.pos(p.off)
	parts := p.key()
	if p.err != nil {
		return
	}
	parent := p.resolve(t, parts, keyPos)
	if p.err != nil {
		return
	}
	p.skipWS()
	if p.off >= len(p.data) || p.data[p.off] != '=' {
		p.fail(p.off, "expected '=' after key")
		return
	}
	p.off++
	p.skipWS()

	// The key's parts go on the prefix: p.parts is reused by the keys of
	// inline tables in the value, and the prefix names them in messages.
	base := len(p.prefix)
	for _, part := range parts {
		p.prefix = append(p.prefix, part.name)
	}
	v := p.value(depth)
	name := p.prefix[len(p.prefix)-1]
	p.prefix = p.prefix[:base]
	if p.err != nil {
		return
	}
	v.keyPos = keyPos
	p.add(parent, name, v)
}

// resolve walks the dotted key parts from table t, creating the tables
// that its parts but the last name, and returns the table that the last
// part goes into, which must not hold it yet. TOML 1.0: dotted keys define
// tables, so they cannot extend a table defined by a header, an inline
// table, or a table that dotted keys of another section defined.
func (p *parser) resolve(t *node, parts []keyPart, keyPos Pos) *node {
	base := len(p.prefix)
	defer func() { p.prefix = p.prefix[:base] }()
	last := len(parts) - 1
	for i, part := range parts[:last] {
		p.prefix = append(p.prefix, part.name)
		child := t.fields[part.name]
		switch {
		case child == nil:
			child = p.newNode(kindTable, keyPos)
			p.meta[child] = origin{how: byDotted, section: p.section}
			p.add(t, part.name, child)
		case child.kind == kindTable:
			switch o := p.origin(child); {
			case o.how == implied:
				// Now defined here, as a header would define it.
				p.meta[child] = origin{how: byDotted, section: p.section}
				child.pos, child.keyPos = keyPos, keyPos
			case o.how == byDotted && o.section == p.section:
			case o.how == byValue:
				p.fail(part.off, fmt.Sprintf("cannot extend inline table %s (defined at line %d)",
					tomlKey(p.prefix), child.keyPos.Line))
				return nil
			default:
				p.fail(part.off, fmt.Sprintf("table [%s] already defined at line %d",
					tomlKey(p.prefix), child.keyPos.Line))
				return nil
			}
		default:
			p.notTable(part.off, parts[:i+1], child)
			return nil
		}
		t = child
	}
	if prev := t.fields[parts[last].name]; prev != nil {
		p.duplicate(parts[last].off, parts, prev)
		return nil
	}
	return t
}

// duplicate reports that key, a []keyPart or a []string, is defined again.
func (p *parser) duplicate(off int, key any, prev *node) {
	p.fail(off, fmt.Sprintf("duplicate key %s (first defined at line %d)", quoteKey(key), prev.keyPos.Line))
}

// notTable reports that key names a value that is not a table.
func (p *parser) notTable(off int, key any, v *node) {
	article := "a"
	if v.kind == kindArray || v.kind == kindInteger {
		article = "an"
	}
	p.fail(off, fmt.Sprintf("key %s is %s %s, not a table (defined at line %d)",
		quoteKey(key), article, v.kind, v.keyPos.Line))
}

// val = string / boolean / array / inline-table / date-time / float / integer
// string = ml-basic-string / basic-string / ml-literal-string / literal-string
func (p *parser) value(depth int) *node {
	if p.off >= len(p.data) {
		p.fail(p.off, "expected a value")
		return nil
	}
	pos := p.pos(p.off)
	c := p.data[p.off]
	switch c {
	case '"', '\'':
		var s string
		multi := p.off+2 < len(p.data) && p.data[p.off+1] == c && p.data[p.off+2] == c
		switch {
		case c == '"' && multi:
			s = p.mlString('"')
		case c == '"':
			s = p.basicString()
		case multi:
			s = p.mlString('\'')
		default:
			s = p.literalString()
		}
		if p.err != nil {
			return nil
		}
		n := p.newNode(kindString, pos)
		n.str = s
		return n
	case '[':
		return p.array(pos, depth+1)
	case '{':
		return p.inlineTable(pos, depth+1)
	}
	return p.scalar(pos)
}

// scalar reads a boolean or an integer, and rejects floats and
// date-times: everything up to the next delimiter is one word.
//
// boolean = true / false
func (p *parser) scalar(pos Pos) *node {
	start := p.off
	end := start
	for end < len(p.data) && !isDelim(p.data[end]) {
		end++
	}
	w := p.data[start:end]
	switch {
	case len(w) == 0:
		p.fail(start, "expected a value")
		return nil
	case string(w) == "true" || string(w) == "false":
		p.off = end
		n := p.newNode(kindBool, pos)
		n.boolean = w[0] == 't'
		return n
	}
	unsigned := w
	if w[0] == '+' || w[0] == '-' {
		unsigned = w[1:]
	}
	switch string(unsigned) {
	case "inf", "nan":
		p.fail(start, "unsupported TOML value: floats are not supported")
		return nil
	}
	if len(unsigned) == 0 || unsigned[0] < '0' || unsigned[0] > '9' {
		p.fail(start, "invalid value (expected a string, integer, boolean, array or inline table)")
		return nil
	}
	if isDateTime(w) {
		p.fail(start, "unsupported TOML value: dates and times are not supported")
		return nil
	}
	v, ok := p.integer(start, end)
	if !ok {
		return nil
	}
	p.off = end
	n := p.newNode(kindInteger, pos)
	n.integer = v
	return n
}

// isDelim reports whether c ends a boolean or a number.
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ']', '}', '#':
		return true
	}
	return false
}

// isDateTime reports whether w starts like a date (full-date = 4DIGIT "-"
// ...) or a time (partial-time = 2DIGIT ":" ...): no integer does.
func isDateTime(w []byte) bool {
	digits := func(n int) bool {
		if len(w) <= n {
			return false
		}
		for _, c := range w[:n] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return digits(4) && w[4] == '-' || digits(2) && w[2] == ':'
}

// integer = dec-int / hex-int / oct-int / bin-int
// dec-int = [ minus / plus ] unsigned-dec-int
// unsigned-dec-int = DIGIT / digit1-9 1*( DIGIT / underscore DIGIT )
// hex-int = hex-prefix HEXDIG *( HEXDIG / underscore HEXDIG )
// oct-int = oct-prefix digit0-7 *( digit0-7 / underscore digit0-7 )
// bin-int = bin-prefix digit0-1 *( digit0-1 / underscore digit0-1 )
//
// integer parses data[start:end], which starts with a digit or a sign.
func (p *parser) integer(start, end int) (int64, bool) {
	i := start
	neg := false
	if c := p.data[i]; c == '+' || c == '-' {
		neg = c == '-'
		i++
	}
	base, name := uint64(10), "integer"
	if p.data[i] == '0' && i+1 < end {
		switch p.data[i+1] {
		case 'x':
			base, name = 16, "hexadecimal integer"
		case 'o':
			base, name = 8, "octal integer"
		case 'b':
			base, name = 2, "binary integer"
		}
		if base != 10 && i != start {
			p.fail(start, "signs are not allowed on "+name+"s")
			return 0, false
		}
	}
	if base != 10 {
		i += 2
		if i == end {
			p.fail(i, "expected a digit after "+string(p.data[i-2:i]))
			return 0, false
		}
	} else {
		// A '.' or an exponent after the digits makes it a float.
		for _, c := range p.data[i:end] {
			if c == '.' || c == 'e' || c == 'E' {
				p.float(start, end)
				return 0, false
			}
			if !isDigit(c) && c != '_' && c != '+' && c != '-' {
				break
			}
		}
		if p.data[i] == '0' && i+1 < end && (isDigit(p.data[i+1]) || p.data[i+1] == '_') {
			p.fail(i, "leading zeros are not allowed in integers")
			return 0, false
		}
	}

	// -9223372036854775808 is an int64; 9223372036854775808 is not.
	limit := uint64(1<<63 - 1)
	if neg {
		limit = 1 << 63
	}
	var v uint64
	digit := false // whether the previous character was a digit
	for j := i; j < end; j++ {
		c := p.data[j]
		if c == '_' {
			if !digit {
				p.fail(j, "underscores in integers must be between digits")
				return 0, false
			}
			digit = false
			continue
		}
		d := digitValue(c)
		if d >= base {
			if c < utf8.RuneSelf && c > ' ' && c != 0x7f {
				p.fail(j, fmt.Sprintf("invalid character %q in %s", c, name))
			} else {
				p.fail(j, "invalid character in "+name)
			}
			return 0, false
		}
		if v > (limit-d)/base {
			p.fail(start, "integer overflows int64")
			return 0, false
		}
		v = v*base + d
		digit = true
	}
	if !digit {
		p.fail(end-1, "underscores in integers must be between digits")
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digitValue returns the value of c as a digit in any base up to 16, or
// 16 when c is not one.
func digitValue(c byte) uint64 {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 16
}

// float = float-int-part ( exp / frac [ exp ] )
// float-int-part = dec-int
// frac = decimal-point zero-prefixable-int
// exp = "e" float-exp-part
// float-exp-part = [ minus / plus ] zero-prefixable-int
//
// float rejects data[start:end]: floats are not supported, but a malformed
// one is reported as such.
func (p *parser) float(start, end int) {
	w := p.data[start:end]
	i := 0
	if w[0] == '+' || w[0] == '-' {
		i++
	}
	bad := -1
	if n := zeroPrefixable(w, i); n == i || w[i] == '0' && n > i+1 {
		bad = i
	} else {
		i = n
		if i < len(w) && w[i] == '.' {
			if n := zeroPrefixable(w, i+1); n == i+1 {
				bad = i + 1
			} else {
				i = n
			}
		}
		if bad < 0 && i < len(w) && (w[i] == 'e' || w[i] == 'E') {
			i++
			if i < len(w) && (w[i] == '+' || w[i] == '-') {
				i++
			}
			if n := zeroPrefixable(w, i); n == i {
				bad = i
			} else {
				i = n
			}
		}
		if bad < 0 && i < len(w) {
			bad = i
		}
	}
	if bad >= 0 {
		p.fail(start+bad, "invalid float (and floats are not supported)")
		return
	}
	p.fail(start, "unsupported TOML value: floats are not supported")
}

// zero-prefixable-int = DIGIT *( DIGIT / underscore DIGIT )
//
// zeroPrefixable returns the end of the zero-prefixable-int at w[i:], or i.
func zeroPrefixable(w []byte, i int) int {
	if i >= len(w) || !isDigit(w[i]) {
		return i
	}
	i++
	for i < len(w) {
		switch {
		case isDigit(w[i]):
			i++
		case w[i] == '_' && i+1 < len(w) && isDigit(w[i+1]):
			i += 2
		default:
			return i
		}
	}
	return i
}

// basic-string = quotation-mark *basic-char quotation-mark
// basic-char = basic-unescaped / escaped
// basic-unescaped = wschar / %x21 / %x23-5B / %x5D-7E / non-ascii
func (p *parser) basicString() string {
	open := p.off
	i := open + 1
	// Fast path: a string without escapes is a slice of the input.
	for i < len(p.data) {
		c := p.data[i]
		if c == '"' {
			p.off = i + 1
			return string(p.data[open+1 : i])
		}
		if c == '\\' || c < 0x20 && c != '\t' || c == 0x7f {
			break
		}
		if c >= utf8.RuneSelf {
			n := p.utf8At(i)
			if n == 0 {
				return ""
			}
			i += n
			continue
		}
		i++
	}
	buf := append(p.buf[:0], p.data[open+1:i]...)
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.off = i + 1
			p.buf = buf
			return string(buf)
		case c == '\\':
			buf, i = p.escape(buf, i)
			if p.err != nil {
				return ""
			}
		case c == '\n' || c == '\r' && i+1 < len(p.data) && p.data[i+1] == '\n':
			p.fail(open, "unterminated string")
			return ""
		case c < 0x20 && c != '\t' || c == 0x7f:
			p.fail(i, fmt.Sprintf("control character %U must be escaped", c))
			return ""
		case c >= utf8.RuneSelf:
			n := p.utf8At(i)
			if n == 0 {
				return ""
			}
			buf = append(buf, p.data[i:i+n]...)
			i += n
		default:
			buf = append(buf, c)
			i++
		}
	}
	p.fail(open, "unterminated string")
	return ""
}

// escaped = escape escape-seq-char
// escape-seq-char =  %x22 / %x5C / %x62 / %x66 / %x6E / %x72 / %x74  ; " \ b f n r t
// escape-seq-char =/ %x75 4HEXDIG / %x55 8HEXDIG                     ; uXXXX UXXXXXXXX
//
// escape appends the character that the escape at data[i] stands for to
// buf and returns buf and the offset after the escape.
func (p *parser) escape(buf []byte, i int) ([]byte, int) {
	if i+1 >= len(p.data) {
		p.fail(i, "unterminated escape sequence")
		return buf, i
	}
	c := p.data[i+1]
	var r byte
	switch c {
	case '"', '\\':
		r = c
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u', 'U':
		n := 4
		if c == 'U' {
			n = 8
		}
		var v uint32
		for j := i + 2; j < i+2+n; j++ {
			if j >= len(p.data) || digitValue(p.data[j]) >= 16 {
				p.fail(j, fmt.Sprintf("invalid escape sequence: \\%c needs %d hexadecimal digits", c, n))
				return buf, i
			}
			v = v<<4 | uint32(digitValue(p.data[j]))
		}
		seq := string(p.data[i : i+2+n])
		switch {
		case v > utf8.MaxRune:
			p.fail(i, "invalid escape sequence "+seq+": beyond the last Unicode code point")
			return buf, i
		case 0xd800 <= v && v <= 0xdfff:
			p.fail(i, "invalid escape sequence "+seq+": surrogate code points are not characters")
			return buf, i
		}
		return utf8.AppendRune(buf, rune(v)), i + 2 + n
	default:
		if c > ' ' && c < 0x7f {
			p.fail(i, "invalid escape sequence \\"+string(c))
		} else {
			r, _ := utf8.DecodeRune(p.data[i+1:])
			p.fail(i, fmt.Sprintf("invalid escape sequence: '\\' followed by %U", r))
		}
		return buf, i
	}
	return append(buf, r), i + 2
}

// literal-string = apostrophe *literal-char apostrophe
// literal-char = %x09 / %x20-26 / %x28-7E / non-ascii
func (p *parser) literalString() string {
	open := p.off
	for i := open + 1; i < len(p.data); {
		c := p.data[i]
		switch {
		case c == '\'':
			p.off = i + 1
			return string(p.data[open+1 : i])
		case c >= 0x20 && c < 0x7f || c == '\t':
			i++
		case c == '\n' || c == '\r' && i+1 < len(p.data) && p.data[i+1] == '\n':
			p.fail(open, "unterminated string")
			return ""
		case c >= utf8.RuneSelf:
			n := p.utf8At(i)
			if n == 0 {
				return ""
			}
			i += n
		default:
			p.fail(i, fmt.Sprintf("control character %U is not allowed in literal strings", c))
			return ""
		}
	}
	p.fail(open, "unterminated string")
	return ""
}

// ml-basic-string = ml-basic-string-delim [ newline ] ml-basic-body ml-basic-string-delim
// ml-basic-body = *mlb-content *( mlb-quotes 1*mlb-content ) [ mlb-quotes ]
// mlb-content = mlb-char / newline / mlb-escaped-nl
// mlb-char = mlb-unescaped / escaped
// mlb-quotes = 1*2quotation-mark
// mlb-escaped-nl = escape ws newline *( wschar / newline )
//
// ml-literal-string = ml-literal-string-delim [ newline ] ml-literal-body ml-literal-string-delim
// ml-literal-body = *mll-content *( mll-quotes 1*mll-content ) [ mll-quotes ]
// mll-content = mll-char / newline
// mll-char = %x09 / %x20-26 / %x28-7E / non-ascii
// mll-quotes = 1*2apostrophe
//
// mlString reads the multi-line string opened by three delim characters.
// A newline in the string is a line feed whatever the file uses, so that
// the value does not depend on how the file was checked out.
func (p *parser) mlString(delim byte) string {
	open := p.off
	basic := delim == '"'
	p.off += 3
	if p.off < len(p.data) && (p.data[p.off] == '\n' || p.data[p.off] == '\r') {
		if !p.newline() {
			return ""
		}
	}
	buf := p.buf[:0]
	i := p.off
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == delim:
			n := 1
			for i+n < len(p.data) && p.data[i+n] == delim {
				n++
			}
			if n < 3 {
				buf = append(buf, p.data[i:i+n]...)
				i += n
				continue
			}
			if n > 5 {
				p.fail(i+5, "too many quotation marks at the end of a multi-line string")
				return ""
			}
			buf = append(buf, p.data[i:i+n-3]...)
			p.off = i + n
			p.buf = buf
			return string(buf)
		case c == '\\' && basic:
			j := i + 1
			for j < len(p.data) && (p.data[j] == ' ' || p.data[j] == '\t') {
				j++
			}
			if j < len(p.data) && (p.data[j] == '\n' || p.data[j] == '\r') {
				// A line-ending backslash trims the newline and all
				// whitespace and newlines after it.
				p.off = j
				for p.err == nil && p.off < len(p.data) {
					switch p.data[p.off] {
					case ' ', '\t':
						p.off++
						continue
					case '\n', '\r':
						p.newline()
						continue
					}
					break
				}
				if p.err != nil {
					return ""
				}
				i = p.off
				continue
			}
			buf, i = p.escape(buf, i)
			if p.err != nil {
				return ""
			}
		case c == '\n' || c == '\r':
			p.off = i
			if !p.newline() {
				return ""
			}
			buf = append(buf, '\n')
			i = p.off
		case c >= 0x20 && c < 0x7f || c == '\t':
			buf = append(buf, c)
			i++
		case c >= utf8.RuneSelf:
			n := p.utf8At(i)
			if n == 0 {
				return ""
			}
			buf = append(buf, p.data[i:i+n]...)
			i += n
		case basic:
			p.fail(i, fmt.Sprintf("control character %U must be escaped", c))
			return ""
		default:
			p.fail(i, fmt.Sprintf("control character %U is not allowed in literal strings", c))
			return ""
		}
	}
	p.fail(open, "unterminated multi-line string")
	return ""
}

// utf8At returns the length of the valid UTF-8 sequence at data[i], or
// reports an error and returns 0.
func (p *parser) utf8At(i int) int {
	r, n := utf8.DecodeRune(p.data[i:])
	if r == utf8.RuneError && n == 1 {
		p.fail(i, "invalid UTF-8")
		return 0
	}
	return n
}

// array = array-open [ array-values ] ws-comment-newline array-close
// array-values =  ws-comment-newline val ws-comment-newline array-sep array-values
// array-values =/ ws-comment-newline val ws-comment-newline [ array-sep ]
func (p *parser) array(pos Pos, depth int) *node {
	open := p.off
	if depth > maxNesting {
		p.fail(open, fmt.Sprintf("arrays and inline tables nest more than %d deep", maxNesting))
		return nil
	}
	n := p.newNode(kindArray, pos)
	p.off++
	for {
		p.skipWSCommentNewline()
		if p.err != nil {
			return nil
		}
		if p.off >= len(p.data) {
			p.fail(open, "unterminated array")
			return nil
		}
		if p.data[p.off] == ']' {
			p.off++
			return n
		}
		v := p.value(depth)
		if p.err != nil {
			return nil
		}
		if n.array == nil {
			if len(p.elems) < firstElems {
				p.elems = make([]*node, p.slab*firstElems)
			}
			n.array = p.elems[:0:firstElems]
			p.elems = p.elems[firstElems:]
		}
		n.array = append(n.array, v)
		p.skipWSCommentNewline()
		if p.err != nil {
			return nil
		}
		switch {
		case p.off >= len(p.data):
			p.fail(open, "unterminated array")
			return nil
		case p.data[p.off] == ',':
			p.off++
		case p.data[p.off] == ']':
			p.off++
			return n
		default:
			p.fail(p.off, "expected ',' or ']' after array element")
			return nil
		}
	}
}

// inline-table = inline-table-open [ inline-table-keyvals ] inline-table-close
// inline-table-open  = %x7B ws     ; {
// inline-table-close = ws %x7D     ; }
// inline-table-sep   = ws %x2C ws  ; , Comma
// inline-table-keyvals = keyval [ inline-table-sep inline-table-keyvals ]
func (p *parser) inlineTable(pos Pos, depth int) *node {
	open := p.off
	if depth > maxNesting {
		p.fail(open, fmt.Sprintf("arrays and inline tables nest more than %d deep", maxNesting))
		return nil
	}
	n := p.newNode(kindTable, pos)
	// Dotted keys inside may extend only the tables they made here.
	outer := p.section
	p.sections++
	p.section = p.sections
	defer func() { p.section = outer }()

	p.off++
	p.skipWS()
	if p.off < len(p.data) && p.data[p.off] == '}' {
		p.off++
		p.meta[n] = origin{how: byValue}
		return n
	}
	for {
		if p.off < len(p.data) && (p.data[p.off] == '\n' || p.data[p.off] == '\r') {
			p.fail(p.off, "newlines are not allowed in inline tables")
			return nil
		}
		p.keyval(n, depth)
		if p.err != nil {
			return nil
		}
		p.skipWS()
		if p.off >= len(p.data) {
			p.fail(open, "unterminated inline table")
			return nil
		}
		switch p.data[p.off] {
		case ',':
			comma := p.off
			p.off++
			p.skipWS()
			if p.off < len(p.data) && p.data[p.off] == '}' {
				p.fail(comma, "trailing comma not allowed in inline table")
				return nil
			}
		case '}':
			p.off++
			p.meta[n] = origin{how: byValue}
			return n
		case '\n', '\r':
			p.fail(p.off, "newlines are not allowed in inline tables")
			return nil
		default:
			p.fail(p.off, "expected ',' or '}' after inline table entry")
			return nil
		}
	}
}

// origin returns how table or array n came to be.
func (p *parser) origin(n *node) origin {
	if o, ok := p.meta[n]; ok {
		return o
	}
	if n.kind == kindArray {
		return origin{how: byValue}
	}
	return origin{how: byHeader}
}

// add stores v under name in table t, which does not hold name yet.
func (p *parser) add(t *node, name string, v *node) {
	if t.fields == nil {
		t.fields = make(map[string]*node)
		if len(p.names) < firstKeys {
			p.names = make([]string, p.slab*firstKeys)
		}
		t.keys = p.names[:0:firstKeys]
		p.names = p.names[firstKeys:]
	}
	t.fields[name] = v
	t.keys = append(t.keys, name)
}

// newNode returns a node of kind k at pos; keyPos is pos until the caller
// says otherwise.
func (p *parser) newNode(k kind, pos Pos) *node {
	if len(p.nodes) == 0 {
		p.slab = min(max(2*p.slab, minSlab), maxSlab)
		p.nodes = make([]node, p.slab)
	}
	n := &p.nodes[0]
	p.nodes = p.nodes[1:]
	n.kind, n.pos, n.keyPos = k, pos, pos
	return n
}

// pos returns the position of offset off on the current line. Offsets
// asked for in turn mostly grow, so it counts runes from the last one.
func (p *parser) pos(off int) Pos {
	if p.colOff < p.lineStart || off < p.colOff {
		p.colOff, p.col = p.lineStart, 1
	}
	p.col += utf8.RuneCount(p.data[p.colOff:off])
	p.colOff = off
	return Pos{Line: p.line, Col: p.col}
}

// fail records the error msg at offset off unless there is one already.
// Invalid UTF-8, a bare carriage return or a control character at off is
// the error, whatever the parser expected there.
func (p *parser) fail(off int, msg string) {
	if p.err != nil {
		return
	}
	if off < len(p.data) {
		switch c := p.data[off]; {
		case c >= utf8.RuneSelf:
			if r, n := utf8.DecodeRune(p.data[off:]); r == utf8.RuneError && n == 1 {
				msg = "invalid UTF-8"
			}
		case c == '\r' && (off+1 >= len(p.data) || p.data[off+1] != '\n'):
			msg = "carriage return must be followed by a line feed"
		case (c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f) && !strings.HasPrefix(msg, "control character"):
			msg = fmt.Sprintf("control character %U is not allowed here", c)
		}
	}
	// Errors are rare: find the line afresh rather than trust p.line,
	// which may be past off (an unterminated multi-line string).
	line, start := 1, 0
	if bytes.HasPrefix(p.data, []byte(utf8BOM)) {
		start = len(utf8BOM)
	}
	for i, c := range p.data[:off] {
		if c == '\n' {
			line++
			start = i + 1
		}
	}
	p.err = &Error{Pos: Pos{Line: line, Col: utf8.RuneCount(p.data[start:off]) + 1}, Msg: msg}
}

// tomlKey writes a key path as TOML would: a.b."c d".
func tomlKey(names []string) string {
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('.')
		}
		bare := name != ""
		for j := 0; j < len(name); j++ {
			if !isBare(name[j]) {
				bare = false
				break
			}
		}
		if bare {
			b.WriteString(name)
		} else {
			b.WriteString(strconv.Quote(name))
		}
	}
	return b.String()
}

// quoteKey names a key, a []keyPart or a []string, in a message: "a.b"
// when its parts are bare keys, as TOML writes it otherwise.
func quoteKey(key any) string {
	var names []string
	switch k := key.(type) {
	case []string:
		names = k
	case []keyPart:
		names = make([]string, len(k))
		for i, part := range k {
			names[i] = part.name
		}
	}
	s := tomlKey(names)
	if strings.Contains(s, `"`) {
		return s
	}
	return `"` + s + `"`
}
