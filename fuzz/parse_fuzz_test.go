package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"exfilguard/conf"
)

// FuzzParse checks conf.Parse: it never panics; an error is a *conf.Error
// whose position lies inside the input; and a document it accepts, written
// back as TOML by encode, parses again to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"a = 1\n",
		"[[policy]]\nname = \"web\"\n[[policy.rule]]\naction = \"ALLOW\"\nmethods = [\"GET\", \"HEAD\"]\n[policy.rule.cache]\n",
		"s = \"\\u00e9\\U0001F600\\t\"\nl = 'C:\\x'\nm = \"\"\"\nx \\\n  y\"\"\"\n",
		"a = { b.c = [1, { d = true }], e = 'x' }\n",
		"n = [0x7FFFFFFFFFFFFFFF, -9223372036854775808, 0o755, 0b1_0, +1_000]\n",
		"a = 1.5\n",
		"[a]\n[a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := conf.Parse(data)
		if err != nil {
			checkError(t, data, err)
			return
		}
		text := encode(m)
		m2, err := conf.Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v\nencoded as %q\nwhich does not parse: %v", data, m, text, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("Parse(%q) = %#v\nencoded as %q\nwhich parses to %#v", data, m, text, m2)
		}
	})
}

// checkError checks that err is a *conf.Error at a position in data and
// that formatting it does not panic.
func checkError(t *testing.T, data []byte, err error) {
	t.Helper()
	var e *conf.Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q) error %T %v, want *conf.Error", data, err, err)
	}
	lines := strings.Split(strings.TrimPrefix(string(data), "\xef\xbb\xbf"), "\n")
	if e.Pos.File != "" || e.Pos.Line < 1 || e.Pos.Line > len(lines) ||
		e.Pos.Col < 1 || e.Pos.Col > utf8.RuneCountInString(lines[e.Pos.Line-1])+1 {
		t.Fatalf("Parse(%q) error at %d:%d, outside the input: %v", data, e.Pos.Line, e.Pos.Col, err)
	}
	if e.Msg == "" {
		t.Fatalf("Parse(%q) error without a message at %v", data, e.Pos)
	}
	e.Source = strings.TrimSuffix(lines[e.Pos.Line-1], "\r")
	_ = e.Error()
	_ = e.Excerpt()
}

// maxKeyParts is conf's limit on the parts of one key or table header.
// encode stays within it and never nests arrays and inline tables deeper
// than the document it re-encodes did, so a document Parse accepted still
// parses when re-encoded.
const maxKeyParts = 128

// encode writes m as a TOML document, deterministically: keys sorted;
// scalars and arrays as key/value pairs; tables as [headers] and arrays of
// tables as [[headers]] while the header stays within maxKeyParts, dotted
// keys beyond; tables inside arrays as inline tables, whose sub-tables are
// written with dotted keys.
func encode(m map[string]any) []byte {
	var b bytes.Buffer
	table(&b, nil, m)
	return b.Bytes()
}

// table writes the content of table m, whose header is path.
func table(b *bytes.Buffer, path []string, m map[string]any) {
	keys := sortedKeys(m)
	headers := len(path) < maxKeyParts
	// Key/value pairs first: after a header, every pair belongs to it.
	for _, k := range keys {
		if v := m[k]; !headers || !isTable(v) && !isArrayOfTables(v) {
			flatten([]string{k}, v, func(key []string, v any) {
				writeKey(b, key)
				b.WriteString(" = ")
				value(b, v)
				b.WriteByte('\n')
			})
		}
	}
	if !headers {
		return
	}
	for _, k := range keys {
		sub := append(path[:len(path):len(path)], k)
		switch v := m[k].(type) {
		case map[string]any:
			b.WriteString("\n[")
			writeKey(b, sub)
			b.WriteString("]\n")
			table(b, sub, v)
		case []any:
			if !isArrayOfTables(v) {
				continue
			}
			for _, e := range v {
				b.WriteString("\n[[")
				writeKey(b, sub)
				b.WriteString("]]\n")
				table(b, sub, e.(map[string]any))
			}
		}
	}
}

// flatten calls emit for the key/value pairs that write v under key: one
// pair, or for a non-empty table one dotted key per leaf, up to
// maxKeyParts parts.
func flatten(key []string, v any, emit func(key []string, v any)) {
	t, ok := v.(map[string]any)
	if !ok || len(t) == 0 || len(key) == maxKeyParts {
		emit(key, v)
		return
	}
	for _, k := range sortedKeys(t) {
		flatten(append(key[:len(key):len(key)], k), t[k], emit)
	}
}

func value(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case string:
		quote(b, v)
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			value(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		first := true
		for _, k := range sortedKeys(v) {
			flatten([]string{k}, v[k], func(key []string, v any) {
				if !first {
					b.WriteString(", ")
				}
				first = false
				writeKey(b, key)
				b.WriteString(" = ")
				value(b, v)
			})
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("conf.Parse returned a %T", v))
	}
}

func isTable(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// isArrayOfTables reports whether v can be written as [[headers]]: a
// non-empty array of tables.
func isArrayOfTables(v any) bool {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return false
	}
	for _, e := range a {
		if !isTable(e) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeKey writes a dotted key, each part bare when it can be.
func writeKey(b *bytes.Buffer, key []string) {
	for i, k := range key {
		if i > 0 {
			b.WriteByte('.')
		}
		bare := k != ""
		for _, c := range []byte(k) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				bare = false
				break
			}
		}
		if bare {
			b.WriteString(k)
		} else {
			quote(b, k)
		}
	}
}

// quote writes s as a TOML basic string.
func quote(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
