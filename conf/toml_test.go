package conf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

type tbl = map[string]any
type arr = []any

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want tbl
	}{
		// Documents, comments and whitespace.
		{"empty", "", tbl{}},
		{"only comment", "# nothing here\n", tbl{}},
		{"blank lines and tabs", "\n\t\n  \t# c\n\n", tbl{}},
		{"comment without newline", "a = 1 # end", tbl{"a": int64(1)}},
		{"comment with non-ASCII and tab", "#\tçà va ✓\na = 1", tbl{"a": int64(1)}},
		{"no newline at end", "a = 1", tbl{"a": int64(1)}},
		{"crlf", "a = 1\r\n[t]\r\nb = 'x' # c\r\n", tbl{"a": int64(1), "t": tbl{"b": "x"}}},
		{"byte order mark", "\xef\xbb\xbfa = 1\n", tbl{"a": int64(1)}},

		// Keys.
		{"bare keys", "key = 1\nbare_key = 2\nbare-key = 3\n1234 = 4\n-_- = 5",
			tbl{"key": int64(1), "bare_key": int64(2), "bare-key": int64(3), "1234": int64(4), "-_-": int64(5)}},
		{"quoted keys", "\"127.0.0.1\" = 1\n\"ʎǝʞ\" = 2\n'quoted \"value\"' = 3\n\"a\\tb\" = 4",
			tbl{"127.0.0.1": int64(1), "ʎǝʞ": int64(2), `quoted "value"`: int64(3), "a\tb": int64(4)}},
		{"empty quoted keys", "\"\" = 1\na.'' = 2", tbl{"": int64(1), "a": tbl{"": int64(2)}}},
		{"no spaces around =", "a=1", tbl{"a": int64(1)}},
		{"dotted keys", "name = 'Orange'\nphysical.color = 'orange'\nphysical.shape = 'round'\nsite.\"google.com\" = true",
			tbl{"name": "Orange", "physical": tbl{"color": "orange", "shape": "round"}, "site": tbl{"google.com": true}}},
		{"dotted key whitespace", "a . b\t.\tc = 1", tbl{"a": tbl{"b": tbl{"c": int64(1)}}}},
		{"numeric dotted key", "3.14159 = 'pi'", tbl{"3": tbl{"14159": "pi"}}},
		{"dotted keys extend their own tables", "a.b.c = 1\na.b.d = 2\na.e = 3",
			tbl{"a": tbl{"b": tbl{"c": int64(1), "d": int64(2)}, "e": int64(3)}}},

		// Strings.
		{"basic string", `a = "I'm a string."`, tbl{"a": "I'm a string."}},
		{"every escape", `a = "\b\t\n\f\r\"\\ \u00e9 \U0001F600 \u0000 \U0010FFFF \uFFFD"`,
			tbl{"a": "\b\t\n\f\r\"\\ é 😀 \x00 \U0010FFFF \uFFFD"}},
		{"tab and non-ASCII unescaped", "a = \"\tcafé ✓\"", tbl{"a": "\tcafé ✓"}},
		{"literal string", `a = 'C:\Users\nodejs\templates'`, tbl{"a": `C:\Users\nodejs\templates`}},
		{"literal string keeps quotes", `a = '<\i\c*\s*>"'`, tbl{"a": `<\i\c*\s*>"`}},
		{"empty strings", "a = \"\"\nb = ''", tbl{"a": "", "b": ""}},
		{"multi-line basic", "a = \"\"\"\nRoses are red\nViolets are blue\"\"\"", tbl{"a": "Roses are red\nViolets are blue"}},
		{"multi-line basic crlf", "a = \"\"\"\r\none\r\ntwo\"\"\"\r\n", tbl{"a": "one\ntwo"}},
		{"multi-line line-ending backslash", "a = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\\t \r\n    the lazy dog.\"\"\"",
			tbl{"a": "The quick brown fox jumps over the lazy dog."}},
		{"multi-line backslash before closing", "a = \"\"\"\\\n   \"\"\"", tbl{"a": ""}},
		{"multi-line escapes", `a = """\u00e9\t\""""`, tbl{"a": "é\t\""}},
		{"multi-line quotes inside", `a = """Here are two quotation marks: "". Simple enough."""`,
			tbl{"a": `Here are two quotation marks: "". Simple enough.`}},
		{"multi-line quotes at the end", `a = """"This," she said, "is just a pointless statement.""""`,
			tbl{"a": `"This," she said, "is just a pointless statement."`}},
		{"multi-line two quotes at the end", `a = """x"""""`, tbl{"a": `x""`}},
		{"multi-line literal", "a = '''\nThe first newline is\ntrimmed in raw strings.\n   \\ is kept\n'''",
			tbl{"a": "The first newline is\ntrimmed in raw strings.\n   \\ is kept\n"}},
		{"multi-line literal quotes", `a = ''''That,' she said, 'is still pointless.''''`,
			tbl{"a": `'That,' she said, 'is still pointless.'`}},
		{"multi-line literal crlf", "a = '''a\r\nb'''", tbl{"a": "a\nb"}},
		{"empty multi-line", "a = \"\"\"\"\"\"\nb = ''''''", tbl{"a": "", "b": ""}},

		// Integers.
		{"decimal integers", "a = 99\nb = 42\nc = 0\nd = -17\ne = +17\nf = +0\ng = -0",
			tbl{"a": int64(99), "b": int64(42), "c": int64(0), "d": int64(-17), "e": int64(17), "f": int64(0), "g": int64(0)}},
		{"underscores", "a = 1_000\nb = 5_349_221\nc = 53_49_221\nd = 1_2_3_4_5\ne = -1_0",
			tbl{"a": int64(1000), "b": int64(5349221), "c": int64(5349221), "d": int64(12345), "e": int64(-10)}},
		{"hexadecimal", "a = 0xDEADBEEF\nb = 0xdeadbeef\nc = 0xdead_beef\nd = 0x0\ne = 0x00ff",
			tbl{"a": int64(0xdeadbeef), "b": int64(0xdeadbeef), "c": int64(0xdeadbeef), "d": int64(0), "e": int64(255)}},
		{"octal", "a = 0o01234567\nb = 0o755\nc = 0o7_7", tbl{"a": int64(0o1234567), "b": int64(0o755), "c": int64(0o77)}},
		{"binary", "a = 0b11010110\nb = 0b0\nc = 0b1_0", tbl{"a": int64(214), "b": int64(0), "c": int64(2)}},
		{"int64 limits", "max = 9223372036854775807\nmin = -9223372036854775808\nhex = 0x7FFFFFFFFFFFFFFF\noct = 0o777777777777777777777\nbin = 0b" + strings.Repeat("1", 63),
			tbl{"max": int64(math.MaxInt64), "min": int64(math.MinInt64), "hex": int64(math.MaxInt64), "oct": int64(math.MaxInt64), "bin": int64(math.MaxInt64)}},

		// Booleans.
		{"booleans", "t = true\nf = false\nb = [true,false]", tbl{"t": true, "f": false, "b": arr{true, false}}},

		// Arrays.
		{"arrays", "a = [ 1, 2, 3 ]\nb = [ \"red\", 'yellow', \"\"\"green\"\"\" ]\nc = [ [ 1, 2 ], [3, 4, 5] ]\nd = []",
			tbl{"a": arr{int64(1), int64(2), int64(3)}, "b": arr{"red", "yellow", "green"},
				"c": arr{arr{int64(1), int64(2)}, arr{int64(3), int64(4), int64(5)}}, "d": arr{}}},
		{"mixed array", "a = [ 0x1, 'all', [ \"strings\" ], { x = 1 }, true ]",
			tbl{"a": arr{int64(1), "all", arr{"strings"}, tbl{"x": int64(1)}, true}}},
		{"multi-line array", "a = [\n  1, # one\n  2,\n\n  # comment line\n  3,\n]\nb = [ # c\n]",
			tbl{"a": arr{int64(1), int64(2), int64(3)}, "b": arr{}}},
		{"array crlf", "a = [\r\n1,\r\n2\r\n]", tbl{"a": arr{int64(1), int64(2)}}},
		{"array of inline tables", "points = [ { x = 1, y = 2 },\n           { x = 7, y = 8 } ]",
			tbl{"points": arr{tbl{"x": int64(1), "y": int64(2)}, tbl{"x": int64(7), "y": int64(8)}}}},

		// Inline tables.
		{"inline tables", "name = { first = \"Tom\", last = \"Preston-Werner\" }\npoint = {x=1,y=2}\nempty = {}\nanimal = { type.name = \"pug\" }",
			tbl{"name": tbl{"first": "Tom", "last": "Preston-Werner"}, "point": tbl{"x": int64(1), "y": int64(2)},
				"empty": tbl{}, "animal": tbl{"type": tbl{"name": "pug"}}}},
		{"nested inline tables", "a = { b = { c = [ { d = 1 } ] }, e.f = 2, e.g = 3 }",
			tbl{"a": tbl{"b": tbl{"c": arr{tbl{"d": int64(1)}}}, "e": tbl{"f": int64(2), "g": int64(3)}}}},

		// Tables.
		{"tables", "[table-1]\nkey1 = \"some string\"\n\n[table-2]\nkey1 = 'x'\n",
			tbl{"table-1": tbl{"key1": "some string"}, "table-2": tbl{"key1": "x"}}},
		{"header whitespace and quotes", "[ j . \"ʞ\" . 'l' ]\nk = 1\n[\tdog.\"tater.man\"\t]",
			tbl{"j": tbl{"ʞ": tbl{"l": tbl{"k": int64(1)}}}, "dog": tbl{"tater.man": tbl{}}}},
		{"implicit super-tables", "[x.y.z.w]\n[x]\na = 1", tbl{"x": tbl{"y": tbl{"z": tbl{"w": tbl{}}}, "a": int64(1)}}},
		{"sub-table of dotted-key table", "[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true",
			tbl{"fruit": tbl{"apple": tbl{"color": "red", "taste": tbl{"sweet": true}, "texture": tbl{"smooth": true}}}}},
		{"dotted keys into implied table", "[a.b.c]\n[a]\nb.d = 1", tbl{"a": tbl{"b": tbl{"c": tbl{}, "d": int64(1)}}}},
		{"empty table", "[a]", tbl{"a": tbl{}}},

		// Arrays of tables.
		{"array of tables", "[[products]]\nname = 'Hammer'\n\n[[products]]  # empty\n\n[[products]]\nname = 'Nail'",
			tbl{"products": arr{tbl{"name": "Hammer"}, tbl{}, tbl{"name": "Nail"}}}},
		{"policies", "[[policy]]\nname = 'a'\n[[policy.rule]]\naction = 'ALLOW'\n[[policy.rule]]\naction = 'DENY'\n[policy.rule.cache]\nforce_cache_duration = 60\n[[policy]]\nname = 'b'\n[[policy.rule]]\naction = 'ALLOW'\n[policy.rule.cache]\n",
			tbl{"policy": arr{
				tbl{"name": "a", "rule": arr{tbl{"action": "ALLOW"}, tbl{"action": "DENY", "cache": tbl{"force_cache_duration": int64(60)}}}},
				tbl{"name": "b", "rule": arr{tbl{"action": "ALLOW", "cache": tbl{}}}},
			}}},
		{"array of tables under implied table", "[[a.b]]\nx = 1\n[a]\ny = 2\n[[a.b]]\nx = 3",
			tbl{"a": tbl{"b": arr{tbl{"x": int64(1)}, tbl{"x": int64(3)}}, "y": int64(2)}}},
		{"sub-tables per element", "[[fruits]]\nname = 'apple'\n[fruits.physical]\ncolor = 'red'\n[[fruits.varieties]]\nname = 'delicious'\n[[fruits]]\nname = 'banana'\n[fruits.physical]\ncolor = 'yellow'",
			tbl{"fruits": arr{
				tbl{"name": "apple", "physical": tbl{"color": "red"}, "varieties": arr{tbl{"name": "delicious"}}},
				tbl{"name": "banana", "physical": tbl{"color": "yellow"}},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			root, _ := parseTOML([]byte(tt.in))
			checkPositions(t, []byte(tt.in), root)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // LINE:COL: message
	}{
		// Keys and key/value pairs.
		{"missing =", "name", "1:5: expected '=' after key"},
		{"missing = before value", "name 1", "1:6: expected '=' after key"},
		{"missing key", "= 1", "1:1: expected a key"},
		{"trailing dot", "a. = 1", "1:4: expected a key"},
		{"leading dot", ".a = 1", "1:1: expected a key"},
		{"invalid bare key", "a@b = 1", "1:2: expected '=' after key"},
		{"multi-line key", `"""a""" = 1`, "1:1: multi-line strings cannot be keys"},
		{"missing value", "a =\nb = 1", "1:4: expected a value"},
		{"missing value at end", "a = ", "1:5: expected a value"},
		{"two pairs on a line", "a = 1 b = 2", "1:7: expected end of line after value"},
		{"unquoted string", "a = hello", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"capitalised boolean", "a = True", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"boolean with suffix", "a = truex", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"too many key parts", strings.Repeat("a.", maxKeyParts) + "a = 1",
			fmt.Sprintf("1:%d: key has more than %d parts", 2*maxKeyParts+1, maxKeyParts)},

		// Duplicate keys.
		{"duplicate key", "a = 1\na = 2", `2:1: duplicate key "a" (first defined at line 1)`},
		{"duplicate key in array of tables", "[[policy]]\nname = 'x'\n\nname = 'y'", `4:1: duplicate key "name" (first defined at line 2)`},
		{"duplicate quoted key", "a = 1\n\"a\" = 2", `2:1: duplicate key "a" (first defined at line 1)`},
		{"duplicate literal key", "\"a b\" = 1\n'a b' = 2", `2:1: duplicate key "a b" (first defined at line 1)`},
		{"duplicate dotted key", "a.b = 1\na . b = 2", `2:5: duplicate key "a.b" (first defined at line 1)`},
		{"duplicate key in inline table", "a = { b = 1, b = 2 }", `1:14: duplicate key "b" (first defined at line 1)`},
		{"value used as table", "a = 1\na.b = 2", `2:1: key "a" is an integer, not a table (defined at line 1)`},
		{"array used as table", "a = []\na.b = 2", `2:1: key "a" is an array, not a table (defined at line 1)`},
		{"string used as table in header", "a = 'x'\n[a.b]", `2:2: key "a" is a string, not a table (defined at line 1)`},
		{"table overwritten by value", "a.b = 1\na = 2", `2:1: duplicate key "a" (first defined at line 1)`},

		// Tables.
		{"table defined twice", "[a]\nb = 1\n\n[a]\nc = 2", "4:2: table [a] already defined at line 1"},
		{"sub-table defined twice", "[a]\n[a.b]\n[a.b]", "3:4: table [a.b] already defined at line 2"},
		{"implied table defined twice", "[a.b]\n[a]\n[a]", "3:2: table [a] already defined at line 2"},
		{"header over a value", "[a]\nb = 1\n[a.b]", `3:4: duplicate key "a.b" (first defined at line 2)`},
		{"header over dotted-key table", "[fruit]\napple.color = 'red'\n\n[fruit.apple]", "4:8: table [fruit.apple] already defined at line 2"},
		{"header over deeper dotted-key table", "[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]", "3:14: table [fruit.apple.taste] already defined at line 2"},
		{"dotted key into header table", "[a.b.c]\nz = 9\n[a]\nb.c.t = 1", "4:3: table [a.b.c] already defined at line 1"},
		{"dotted key table redefined by header", "a.b = 1\n[a]", "2:2: table [a] already defined at line 1"},
		{"header over implied table defined by dotted key", "[a.b.c]\n[a]\nb.d = 1\n[a.b]", "4:4: table [a.b] already defined at line 3"},
		{"quoted key in message", "[a.\"b c\"]\n[a.\"b c\"]", `2:4: table [a."b c"] already defined at line 1`},
		{"table over array of tables", "[[a]]\n[a]", "2:2: table [a] already defined as an array of tables at line 1"},
		{"array of tables over table", "[a]\n[[a]]", `2:3: key "a" is a table, not an array of tables (defined at line 1)`},
		{"array of tables over implied table", "[[a.b]]\n[[a]]", `2:3: key "a" is a table, not an array of tables (defined at line 1)`},
		{"array of tables over static array", "a = [1]\n[[a]]", "2:3: cannot extend array a (defined at line 1) with a table header"},
		{"table header through static array", "a = [{}]\n[a.b]", "2:2: cannot extend array a (defined at line 1) with a table header"},
		{"array of tables over value", "a = 1\n[[a]]", `2:3: duplicate key "a" (first defined at line 1)`},
		{"dotted key into array of tables", "[[t.arr]]\n[t]\narr.x = 1", `3:1: key "arr" is an array, not a table (defined at line 1)`},
		{"empty header", "[]", "1:2: expected a key"},
		{"unclosed header", "[a\nb = 1", "1:3: expected ']' after table header key"},
		{"unclosed array header", "[[a]\n", "1:5: expected ']]' after array of tables header key"},
		{"spaced array header", "[[a] ]", "1:5: expected ']]' after array of tables header key"},
		{"text after header", "[a] b = 1", "1:5: expected end of line after table header"},

		// Inline tables are immutable.
		{"dotted key into inline table", "a = { b = 1 }\na.c = 2", "2:1: cannot extend inline table a (defined at line 1)"},
		{"header into inline table", "a = { b = 1 }\n[a.c]", "2:2: cannot extend inline table a (defined at line 1) with a table header"},
		{"header over inline table", "a = {}\n[a]", "2:2: table [a] already defined at line 1"},
		{"array of tables into inline table", "t = { nest = {} }\n[[t.nest]]", "2:3: cannot extend inline table t (defined at line 1) with a table header"},
		{"inline table extended inside", "a = { b = { c = 1 }, b.d = 2 }", "1:22: cannot extend inline table a.b (defined at line 1)"},
		{"inline trailing comma", "a = { b = 1, }", "1:12: trailing comma not allowed in inline table"},
		{"inline newline", "a = { b = 1\n}", "1:12: newlines are not allowed in inline tables"},
		{"inline newline at start", "a = {\nb = 1 }", "1:6: newlines are not allowed in inline tables"},
		{"inline missing comma", "a = { b = 1 c = 2 }", "1:13: expected ',' or '}' after inline table entry"},
		{"inline unterminated", "a = { b = 1", "1:5: unterminated inline table"},

		// Arrays.
		{"array missing comma", "a = [1 2]", "1:8: expected ',' or ']' after array element"},
		{"array double comma", "a = [1,,2]", "1:8: expected a value"},
		{"array only comma", "a = [,]", "1:6: expected a value"},
		{"array unterminated", "a = [1,\n2", "1:5: unterminated array"},
		{"array nested too deep", "a = " + strings.Repeat("[", maxNesting+1),
			fmt.Sprintf("1:%d: arrays and inline tables nest more than %d deep", 5+maxNesting, maxNesting)},
		{"inline table nested too deep", "a = " + strings.Repeat("{b=", maxNesting+1),
			fmt.Sprintf("1:%d: arrays and inline tables nest more than %d deep", 5+3*maxNesting, maxNesting)},

		// Strings.
		{"unterminated string", "a = \"abc", "1:5: unterminated string"},
		{"newline in string", "a = \"abc\nb = 1\"", "1:5: unterminated string"},
		{"unterminated literal", "a = 'abc\n'", "1:5: unterminated string"},
		{"unterminated multi-line", "a = \"\"\"abc\n\ndef", "1:5: unterminated multi-line string"},
		{"unterminated multi-line literal", "a = '''abc''", "1:5: unterminated multi-line string"},
		{"invalid escape", `a = "x\y"`, `1:7: invalid escape sequence \y`},
		{"byte escape", `a = "\x41"`, `1:6: invalid escape sequence \x`},
		{"escape of a space", `a = "\ "`, `1:6: invalid escape sequence: '\' followed by U+0020`},
		{"short unicode escape", `a = "\u12G4"`, `1:10: invalid escape sequence: \u needs 4 hexadecimal digits`},
		{"truncated unicode escape", `a = "\U0001F60"`, `1:15: invalid escape sequence: \U needs 8 hexadecimal digits`},
		{"surrogate escape", `a = "\uD800"`, `1:6: invalid escape sequence \uD800: surrogate code points are not characters`},
		{"out of range escape", `a = "\U00110000"`, `1:6: invalid escape sequence \U00110000: beyond the last Unicode code point`},
		{"huge escape", `a = "\UFFFFFFFF"`, `1:6: invalid escape sequence \UFFFFFFFF: beyond the last Unicode code point`},
		{"backslash space in multi-line", "a = \"\"\"\nx \\ y\"\"\"", `2:3: invalid escape sequence: '\' followed by U+0020`},
		{"too many quotes", `a = """x""""""`, "1:14: too many quotation marks at the end of a multi-line string"},
		{"text after string", `a = "x" "y"`, "1:9: expected end of line after value"},

		// Control characters, line endings and UTF-8.
		{"control in string", "a = \"x\x01\"", "1:7: control character U+0001 must be escaped"},
		{"DEL in string", "a = \"x\x7f\"", "1:7: control character U+007F must be escaped"},
		{"control in multi-line", "a = \"\"\"\nx\x1f\"\"\"", "2:2: control character U+001F must be escaped"},
		{"control in literal", "a = 'x\x00'", "1:7: control character U+0000 is not allowed in literal strings"},
		{"control in multi-line literal", "a = '''\x08'''", "1:8: control character U+0008 is not allowed in literal strings"},
		{"control in comment", "# abc\x00", "1:6: control character U+0000 is not allowed in comments"},
		{"DEL in comment", "a = 1 # \x7f", "1:9: control character U+007F is not allowed in comments"},
		{"control outside strings", "a = 1\x0c", "1:6: control character U+000C is not allowed here"},
		{"form feed as whitespace", "\x0ca = 1", "1:1: control character U+000C is not allowed here"},
		{"bare CR", "a = 1\rb = 2", "1:6: carriage return must be followed by a line feed"},
		{"bare CR in comment", "# x\ry\n", "1:4: carriage return must be followed by a line feed"},
		{"bare CR in string", "a = \"x\ry\"", "1:7: carriage return must be followed by a line feed"},
		{"bare CR in multi-line", "a = '''x\ry'''", "1:9: carriage return must be followed by a line feed"},
		{"CR at end", "a = 1\r", "1:6: carriage return must be followed by a line feed"},
		{"invalid UTF-8 in string", "a = \"\xff\"", "1:6: invalid UTF-8"},
		{"invalid UTF-8 in literal", "a = 'é\xc3'", "1:7: invalid UTF-8"},
		{"invalid UTF-8 in comment", "# \xc3\x28", "1:3: invalid UTF-8"},
		{"invalid UTF-8 key", "\xff = 1", "1:1: invalid UTF-8"},
		{"invalid UTF-8 value", "a = \xff", "1:5: invalid UTF-8"},
		{"encoded surrogate", "a = \"\xed\xa0\x80\"", "1:6: invalid UTF-8"},
		{"overlong encoding", "# \xc0\xaf", "1:3: invalid UTF-8"},
		{"non-ASCII bare key", "é = 1", "1:1: expected a key"},

		// Integers.
		{"overflow", "a = 9223372036854775808", "1:5: integer overflows int64"},
		{"negative overflow", "a = -9223372036854775809", "1:5: integer overflows int64"},
		{"hex overflow", "a = 0x8000000000000000", "1:5: integer overflows int64"},
		{"binary overflow", "a = 0b1" + strings.Repeat("0", 63), "1:5: integer overflows int64"},
		{"leading zero", "a = 007", "1:5: leading zeros are not allowed in integers"},
		{"signed leading zero", "a = -01", "1:6: leading zeros are not allowed in integers"},
		{"zero underscore", "a = 0_0", "1:5: leading zeros are not allowed in integers"},
		{"double underscore", "a = 1__0", "1:7: underscores in integers must be between digits"},
		{"trailing underscore", "a = 1_", "1:6: underscores in integers must be between digits"},
		{"leading underscore", "a = _1", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"underscore after prefix", "a = 0x_1", "1:7: underscores in integers must be between digits"},
		{"empty hex", "a = 0x", "1:7: expected a digit after 0x"},
		{"bad octal digit", "a = 0o8", "1:7: invalid character '8' in octal integer"},
		{"bad binary digit", "a = 0b102", "1:9: invalid character '2' in binary integer"},
		{"bad hex digit", "a = 0xfg", "1:8: invalid character 'g' in hexadecimal integer"},
		{"uppercase prefix", "a = 0X1", "1:6: invalid character 'X' in integer"},
		{"signed hex", "a = -0x1", "1:5: signs are not allowed on hexadecimal integers"},
		{"signed octal", "a = +0o1", "1:5: signs are not allowed on octal integers"},
		{"letters after digits", "a = 12abc", "1:7: invalid character 'a' in integer"},
		{"double sign", "a = +-1", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"lone sign", "a = -", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},

		// Floats and date-times are outside the subset.
		{"float", "a = 1.5", "1:5: unsupported TOML value: floats are not supported"},
		{"float exponent", "a = 1e3", "1:5: unsupported TOML value: floats are not supported"},
		{"float full", "a = -6.626_0E-34", "1:5: unsupported TOML value: floats are not supported"},
		{"float in array", "a = [1, 2.0]", "1:9: unsupported TOML value: floats are not supported"},
		{"inf", "a = inf", "1:5: unsupported TOML value: floats are not supported"},
		{"signed inf", "a = +inf", "1:5: unsupported TOML value: floats are not supported"},
		{"nan", "a = -nan", "1:5: unsupported TOML value: floats are not supported"},
		{"malformed float", "a = 1.", "1:7: invalid float (and floats are not supported)"},
		{"float leading zero", "a = 03.14", "1:5: invalid float (and floats are not supported)"},
		{"offset date-time", "a = 1979-05-27T07:32:00Z", "1:5: unsupported TOML value: dates and times are not supported"},
		{"date-time with space", "a = 1979-05-27 07:32:00", "1:5: unsupported TOML value: dates and times are not supported"},
		{"local date", "a = 1979-05-27", "1:5: unsupported TOML value: dates and times are not supported"},
		{"local time", "a = 07:32:00", "1:5: unsupported TOML value: dates and times are not supported"},

		// Positions.
		{"tabs count as one column", "\ta = 1\n\ta = 2", `2:2: duplicate key "a" (first defined at line 1)`},
		{"non-ASCII before the error", "a = \"héllo ✓\" x", "1:15: expected end of line after value"},
		{"non-ASCII key before the error", "\"ключ\" = 1 2", "1:12: expected end of line after value"},
		{"crlf lines", "a = 1\r\nb = 2\r\nb = 3\r\n", `3:1: duplicate key "b" (first defined at line 2)`},
		{"after a multi-line string", "a = \"\"\"\nline 1\nline 2\"\"\"\nb = 1 2", "4:7: expected end of line after value"},
		{"after a crlf multi-line string", "a = '''\r\nx\r\n''' + 1", "3:5: expected end of line after value"},
		{"escape on a later line", "a = \"\"\"\nx\ny\\qz\"\"\"", `3:2: invalid escape sequence \q`},
		{"after a line-ending backslash", "a = \"\"\"x\\\n\n   y\"\"\" z", "3:9: expected end of line after value"},
		{"after a multi-line array", "a = [\n  1,\n  2,\n] x", "4:3: expected end of line after value"},
		{"after a byte order mark", "\xef\xbb\xbfa = @", "1:5: invalid value (expected a string, integer, boolean, array or inline table)"},
		{"byte order mark not at start", "a = 1\n\xef\xbb\xbf", "2:1: expected a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want error %q", tt.in, got, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error %T %v, want *Error", tt.in, err, err)
			}
			if e.Pos.File != "" {
				t.Errorf("Parse(%q) error Pos.File = %q, want empty", tt.in, e.Pos.File)
			}
			if s := fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg); s != tt.want {
				t.Errorf("Parse(%q) error = %q, want %q", tt.in, s, tt.want)
			}
		})
	}
}

func TestParseTOMLPositions(t *testing.T) {
	doc := "# policies\n" + // line 1
		"[[policy]]\n" + // 2
		"name = \"web\"\n" + // 3
		"\n" + // 4
		"  [[policy.rule]]\n" + // 5
		"  action = \"ALLOW\"\n" + // 6
		"  url_pattern = \"https://api.example.com/**\"\n" + // 7
		"  methods = [\"GET\",\n" + // 8
		"             'HEAD']\n" + // 9
		"\n" + // 10
		"  [policy.rule.cache]\n" + // 11
		"  force_cache_duration = 60\n" + // 12
		"\n" + // 13
		"[[policy]]\n" + // 14
		"\"clé\" = \"é\" \r\n" + // 15
		"limits.max = { n = -1 }\n" + // 16
		"[a.b]\n" + // 17
		"[a]\n" // 18
	root, err := parseTOML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	policy := root.field("policy")
	rule := policy.array[0].field("rule")
	limits := policy.array[1].field("limits")
	tests := []struct {
		name        string
		n           *node
		kind        kind
		pos, keyPos Pos
	}{
		{"root", root, kindTable, Pos{Line: 1, Col: 1}, Pos{Line: 1, Col: 1}},
		{"policy", policy, kindArray, Pos{Line: 2, Col: 1}, Pos{Line: 2, Col: 1}},
		{"policy[0]", policy.array[0], kindTable, Pos{Line: 2, Col: 1}, Pos{Line: 2, Col: 1}},
		{"policy[0].name", policy.array[0].field("name"), kindString, Pos{Line: 3, Col: 8}, Pos{Line: 3, Col: 1}},
		{"rule", rule, kindArray, Pos{Line: 5, Col: 3}, Pos{Line: 5, Col: 3}},
		{"rule[0]", rule.array[0], kindTable, Pos{Line: 5, Col: 3}, Pos{Line: 5, Col: 3}},
		{"action", rule.array[0].field("action"), kindString, Pos{Line: 6, Col: 12}, Pos{Line: 6, Col: 3}},
		{"url_pattern", rule.array[0].field("url_pattern"), kindString, Pos{Line: 7, Col: 17}, Pos{Line: 7, Col: 3}},
		{"methods", rule.array[0].field("methods"), kindArray, Pos{Line: 8, Col: 13}, Pos{Line: 8, Col: 3}},
		{"methods[0]", rule.array[0].field("methods").array[0], kindString, Pos{Line: 8, Col: 14}, Pos{Line: 8, Col: 14}},
		{"methods[1]", rule.array[0].field("methods").array[1], kindString, Pos{Line: 9, Col: 14}, Pos{Line: 9, Col: 14}},
		{"cache", rule.array[0].field("cache"), kindTable, Pos{Line: 11, Col: 3}, Pos{Line: 11, Col: 3}},
		{"force_cache_duration", rule.array[0].field("cache").field("force_cache_duration"), kindInteger, Pos{Line: 12, Col: 26}, Pos{Line: 12, Col: 3}},
		{"policy[1]", policy.array[1], kindTable, Pos{Line: 14, Col: 1}, Pos{Line: 14, Col: 1}},
		{"clé", policy.array[1].field("clé"), kindString, Pos{Line: 15, Col: 9}, Pos{Line: 15, Col: 1}},
		{"limits (dotted)", limits, kindTable, Pos{Line: 16, Col: 1}, Pos{Line: 16, Col: 1}},
		{"limits.max", limits.field("max"), kindTable, Pos{Line: 16, Col: 14}, Pos{Line: 16, Col: 1}},
		{"limits.max.n", limits.field("max").field("n"), kindInteger, Pos{Line: 16, Col: 20}, Pos{Line: 16, Col: 16}},
		{"a (implied, then defined)", root.field("a"), kindTable, Pos{Line: 18, Col: 1}, Pos{Line: 18, Col: 1}},
		{"a.b", root.field("a").field("b"), kindTable, Pos{Line: 17, Col: 1}, Pos{Line: 17, Col: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.n == nil {
				t.Fatal("node missing")
			}
			if tt.n.kind != tt.kind || tt.n.pos != tt.pos || tt.n.keyPos != tt.keyPos {
				t.Errorf("node = %v at %v key at %v, want %v at %v key at %v",
					tt.n.kind, tt.n.pos, tt.n.keyPos, tt.kind, tt.pos, tt.keyPos)
			}
		})
	}
	if got, want := rule.array[0].keys, []string{"action", "url_pattern", "methods", "cache"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rule keys = %q, want %q", got, want)
	}
	if got, want := root.keys, []string{"policy", "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("root keys = %q, want %q", got, want)
	}
	checkPositions(t, []byte(doc), root)
}

// checkPositions checks that every node of the tree parsed from data sits
// where its kind says: a value's pos on its first character, a key's
// keyPos on a key's first character or a header's '[', an element's
// keyPos on its pos; and that keys and fields agree.
func checkPositions(t *testing.T, data []byte, root *node) {
	t.Helper()
	var lines [][]rune // lines[i] is line i+1, BOM dropped
	text := strings.TrimPrefix(string(data), "\xef\xbb\xbf")
	for _, l := range strings.Split(text, "\n") {
		lines = append(lines, []rune(l))
	}
	at := func(p Pos) rune {
		if p.File != "" || p.Line < 1 || p.Line > len(lines) || p.Col < 1 || p.Col > len(lines[p.Line-1]) {
			return -1
		}
		return lines[p.Line-1][p.Col-1]
	}
	isKeyStart := func(r rune) bool {
		return r < 128 && isBare(byte(r)) || r == '"' || r == '\'' || r == '['
	}
	var walk func(path string, n *node, element bool)
	walk = func(path string, n *node, element bool) {
		ok := true
		switch r := at(n.pos); n.kind {
		case kindString:
			ok = r == '"' || r == '\''
		case kindInteger:
			ok = r == '+' || r == '-' || r >= '0' && r <= '9'
		case kindBool:
			ok = r == 't' || r == 'f'
		case kindArray:
			ok = r == '['
		case kindTable:
			ok = r == '{' || isKeyStart(r) // '[' of a header or a dotted key
		default:
			ok = false
		}
		if !ok {
			t.Errorf("%s: %v at %v: unexpected %q there", path, n.kind, n.pos, at(n.pos))
		}
		if element && n.keyPos != n.pos {
			t.Errorf("%s: element keyPos %v != pos %v", path, n.keyPos, n.pos)
		}
		if !element && !isKeyStart(at(n.keyPos)) {
			t.Errorf("%s: keyPos %v: unexpected %q there", path, n.keyPos, at(n.keyPos))
		}
		if n.keyPos.Line > n.pos.Line || n.keyPos.Line == n.pos.Line && n.keyPos.Col > n.pos.Col {
			t.Errorf("%s: keyPos %v after pos %v", path, n.keyPos, n.pos)
		}
		switch n.kind {
		case kindArray:
			for i, e := range n.array {
				walk(fmt.Sprintf("%s[%d]", path, i), e, true)
			}
		case kindTable:
			if len(n.keys) != len(n.fields) {
				t.Errorf("%s: %d keys, %d fields", path, len(n.keys), len(n.fields))
			}
			for _, k := range n.keys {
				f := n.fields[k]
				if f == nil {
					t.Errorf("%s: key %q without a field", path, k)
					continue
				}
				walk(path+"."+k, f, false)
			}
		}
	}
	if root.pos != (Pos{Line: 1, Col: 1}) {
		t.Errorf("root pos = %v, want 1:1", root.pos)
	}
	for _, k := range root.keys {
		walk(k, root.fields[k], false)
	}
}

// TestTOMLConformance runs the toml-test cases in the directory named by
// TOML_TEST_DIR: every valid/**.toml must parse to the value in its
// sibling .json file, every invalid/**.toml must be rejected.
func TestTOMLConformance(t *testing.T) {
	dir := os.Getenv("TOML_TEST_DIR")
	if dir == "" {
		t.Skip("TOML_TEST_DIR is not set")
	}
	var valid, invalid []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".toml") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasPrefix(rel, "valid/"):
			valid = append(valid, rel)
		case strings.HasPrefix(rel, "invalid/"):
			invalid = append(invalid, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(valid) == 0 || len(invalid) == 0 {
		t.Fatalf("%s: no valid/ or invalid/ cases", dir)
	}

	var passed, rejected int
	for _, rel := range valid {
		ok := t.Run(rel, func(t *testing.T) {
			data := readFile(t, filepath.Join(dir, rel))
			tagged := readFile(t, filepath.Join(dir, strings.TrimSuffix(rel, ".toml")+".json"))
			want, err := untag(tagged)
			if err != nil {
				t.Fatalf("%s.json: %v", strings.TrimSuffix(rel, ".toml"), err)
			}
			got, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse = %#v, want %#v", got, want)
			}
			root, _ := parseTOML(data)
			checkPositions(t, data, root)
		})
		if ok {
			passed++
		}
	}
	for _, rel := range invalid {
		ok := t.Run(rel, func(t *testing.T) {
			data := readFile(t, filepath.Join(dir, rel))
			got, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse = %#v, want an error", got)
			}
			var e *Error
			if !errors.As(err, &e) || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Errorf("Parse error %#v is not an *Error with a position", err)
			}
		})
		if ok {
			rejected++
		}
	}
	t.Logf("valid: %d passed; invalid: %d rejected", passed, rejected)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// untag decodes toml-test's tagged JSON into the values Parse returns.
// Leaves are {"type": T, "value": "text"} with T string, integer or bool.
func untag(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return untagValue(v)
}

func untagValue(v any) (any, error) {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			u, err := untagValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = u
		}
		return out, nil
	case map[string]any:
		typ, okT := v["type"].(string)
		text, okV := v["value"].(string)
		if len(v) == 2 && okT && okV {
			switch typ {
			case "string":
				return text, nil
			case "integer":
				return strconv.ParseInt(text, 10, 64)
			case "bool":
				switch text {
				case "true":
					return true, nil
				case "false":
					return false, nil
				}
			}
			return nil, fmt.Errorf("unexpected leaf {type: %q, value: %q}", typ, text)
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			u, err := untagValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = u
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected JSON value %#v", v)
}
