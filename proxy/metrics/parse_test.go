package metrics

import (
	"bufio"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file reads the text exposition format 0.0.4 back, strictly: it
// accepts what a Prometheus server accepts, minus what this package never
// writes (comments other than HELP and TYPE, blank lines, timestamps,
// trailing commas in label sets), and it checks the rules the format
// states only in prose.

// family is one parsed metric family.
type family struct {
	name, help, typ string
	samples         []sample
}

// sample is one parsed sample line.
type sample struct {
	name   string
	labels [][2]string // in written order
	value  float64
}

// key returns the sample's series as written: name{a="x",b="y"}.
func (s sample) key() string {
	if len(s.labels) == 0 {
		return s.name
	}
	var b []byte
	for i, l := range s.labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabelPair(b, l[0], l[1])
	}
	return s.name + "{" + string(b) + "}"
}

func (s sample) label(name string) (string, bool) {
	for _, l := range s.labels {
		if l[0] == name {
			return l[1], true
		}
	}
	return "", false
}

// exposition is a parsed scrape.
type exposition struct {
	families []*family
	values   map[string]float64 // by sample key
}

// parseExposition parses text and checks it, failing t on the first
// problem.
func parseExposition(t testing.TB, text string) *exposition {
	t.Helper()
	e, err := parseText(text)
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, text)
	}
	return e
}

func parseText(text string) (*exposition, error) {
	e := &exposition{values: map[string]float64{}}
	if text == "" || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition is empty or does not end in a line feed")
	}
	var cur *family
	seenFamily := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(line[len("# HELP "):], " ")
			if !ok || !validMetricName(name) {
				return nil, fail("malformed HELP")
			}
			if seenFamily[name] {
				return nil, fail("family %s appears twice", name)
			}
			if cur != nil && name <= cur.name {
				return nil, fail("family %s is not sorted after %s", name, cur.name)
			}
			h, err := unescape(help, false)
			if err != nil {
				return nil, fail("help: %v", err)
			}
			seenFamily[name] = true
			cur = &family{name: name, help: h}
			e.families = append(e.families, cur)
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, ok := strings.Cut(line[len("# TYPE "):], " ")
			if !ok || cur == nil || name != cur.name || cur.typ != "" || len(cur.samples) > 0 {
				return nil, fail("TYPE does not directly follow its family's HELP")
			}
			switch typ {
			case typeCounter, typeGauge, typeHistogram:
			default:
				return nil, fail("unexpected type %q", typ)
			}
			cur.typ = typ
		case line == "" || strings.HasPrefix(line, "#"):
			return nil, fail("blank line or unexpected comment")
		default:
			if cur == nil || cur.typ == "" {
				return nil, fail("sample before its family's HELP and TYPE")
			}
			s, err := parseSample(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if !belongs(cur, s.name) {
				return nil, fail("sample %s does not belong to %s family %s", s.name, cur.typ, cur.name)
			}
			k := s.key()
			if _, dup := e.values[k]; dup {
				return nil, fail("duplicate series")
			}
			if k != line[:strings.LastIndexByte(line, ' ')] {
				return nil, fail("series does not round-trip: %s", k)
			}
			e.values[k] = s.value
			cur.samples = append(cur.samples, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, f := range e.families {
		if f.typ == "" {
			return nil, fmt.Errorf("family %s has no TYPE", f.name)
		}
		if err := checkFamily(f); err != nil {
			return nil, fmt.Errorf("family %s: %v", f.name, err)
		}
	}
	return e, nil
}

func belongs(f *family, name string) bool {
	if f.typ != typeHistogram {
		return name == f.name
	}
	rest, ok := strings.CutPrefix(name, f.name)
	return ok && (rest == "_bucket" || rest == "_sum" || rest == "_count")
}

// parseSample parses name[{labels}] value.
func parseSample(line string) (sample, error) {
	var s sample
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !validMetricName(s.name) {
		return s, fmt.Errorf("invalid metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return s, fmt.Errorf("label without =")
			}
			name := rest[:eq]
			if !validLabelName(name) {
				return s, fmt.Errorf("invalid label name %q", name)
			}
			for _, l := range s.labels {
				if l[0] == name {
					return s, fmt.Errorf("label %s repeated", name)
				}
			}
			rest = rest[eq+1:]
			if rest == "" || rest[0] != '"' {
				return s, fmt.Errorf("label %s value is not quoted", name)
			}
			// Find the closing quote, skipping escapes.
			j := 1
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' {
					j++
				}
			}
			if j >= len(rest) {
				return s, fmt.Errorf("label %s value is not terminated", name)
			}
			val, err := unescape(rest[1:j], true)
			if err != nil {
				return s, fmt.Errorf("label %s: %v", name, err)
			}
			if val == "" {
				return s, fmt.Errorf("label %s is empty, which means no label", name)
			}
			s.labels = append(s.labels, [2]string{name, val})
			rest = rest[j+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
				continue
			}
			if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("label set is not closed")
			}
			rest = rest[1:]
			break
		}
	}
	v, ok := strings.CutPrefix(rest, " ")
	if !ok || v == "" || strings.Contains(v, " ") {
		return s, fmt.Errorf("want exactly one space and a value (no timestamp)")
	}
	f, err := parseValue(v)
	if err != nil {
		return s, err
	}
	s.value = f
	return s, nil
}

// parseValue parses a sample value as Prometheus does (Go float syntax
// plus +Inf, -Inf and NaN).
func parseValue(v string) (float64, error) {
	switch v {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(v, 64)
}

// unescape undoes the format's escapes: \\ and \n, and \" in label values.
func unescape(s string, label bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if label && c == '"' || c == '\n' {
			return "", fmt.Errorf("unescaped %q", c)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		switch {
		case i == len(s):
			return "", fmt.Errorf("dangling backslash")
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		case s[i] == '"' && label:
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

// checkFamily checks a family's samples: at least one; counters not
// negative; histograms consistent.
func checkFamily(f *family) error {
	if len(f.samples) == 0 {
		return fmt.Errorf("no samples")
	}
	if f.help == "" {
		return fmt.Errorf("empty HELP")
	}
	if f.typ == typeCounter {
		for _, s := range f.samples {
			if !(s.value >= 0) {
				return fmt.Errorf("counter %s is %v", s.key(), s.value)
			}
		}
	}
	if f.typ != typeHistogram {
		return nil
	}
	// A histogram's series are groups of _bucket lines (le ascending,
	// +Inf last, counts not decreasing), then _sum and _count, where
	// _count equals the +Inf bucket.
	type group struct {
		les     []float64
		buckets []float64
		sum     *float64
		count   *float64
	}
	groups := map[string]*group{}
	var order []string
	for _, s := range f.samples {
		var rest [][2]string
		le, hasLE := "", false
		for _, l := range s.labels {
			if l[0] == "le" {
				le, hasLE = l[1], true
				continue
			}
			rest = append(rest, l)
		}
		k := sample{labels: rest}.key()
		g := groups[k]
		if g == nil {
			g = &group{}
			groups[k] = g
			order = append(order, k)
		} else if order[len(order)-1] != k {
			return fmt.Errorf("series %s is not contiguous", k)
		}
		v := s.value
		switch strings.TrimPrefix(s.name, f.name) {
		case "_bucket":
			if !hasLE {
				return fmt.Errorf("bucket of %s has no le", k)
			}
			if g.sum != nil || g.count != nil {
				return fmt.Errorf("bucket of %s after _sum or _count", k)
			}
			bound, err := parseValue(le)
			if err != nil || math.IsNaN(bound) {
				return fmt.Errorf("bucket of %s: bad le %q", k, le)
			}
			if n := len(g.les); n > 0 && bound <= g.les[n-1] {
				return fmt.Errorf("buckets of %s: le %v after %v", k, bound, g.les[n-1])
			}
			if n := len(g.buckets); n > 0 && v < g.buckets[n-1] {
				return fmt.Errorf("buckets of %s decrease: %v after %v", k, v, g.buckets[n-1])
			}
			if v != math.Trunc(v) || v < 0 {
				return fmt.Errorf("bucket of %s is %v", k, v)
			}
			g.les = append(g.les, bound)
			g.buckets = append(g.buckets, v)
		case "_sum":
			if hasLE || g.sum != nil {
				return fmt.Errorf("bad or repeated _sum of %s", k)
			}
			g.sum = &v
		case "_count":
			if hasLE || g.count != nil || g.sum == nil {
				return fmt.Errorf("bad, repeated or early _count of %s", k)
			}
			g.count = &v
		}
	}
	for _, k := range order {
		g := groups[k]
		n := len(g.les)
		switch {
		case n == 0 || !math.IsInf(g.les[n-1], 1):
			return fmt.Errorf("%s has no +Inf bucket", k)
		case g.sum == nil || g.count == nil:
			return fmt.Errorf("%s lacks _sum or _count", k)
		case *g.count != g.buckets[n-1]:
			return fmt.Errorf("%s: _count %v != +Inf bucket %v", k, *g.count, g.buckets[n-1])
		}
	}
	return nil
}

func (e *exposition) family(name string) *family {
	i := slices.IndexFunc(e.families, func(f *family) bool { return f.name == name })
	if i < 0 {
		return nil
	}
	return e.families[i]
}

// sum returns the sum of the samples of the named family's samples called
// name (the family's own name, or a histogram's _count, say).
func (e *exposition) sum(name string) float64 {
	var t float64
	for _, f := range e.families {
		for _, s := range f.samples {
			if s.name == name {
				t += s.value
			}
		}
	}
	return t
}

// TestParserRejects checks that the parser finds what it is meant to find,
// so that its silence on the real output means something.
func TestParserRejects(t *testing.T) {
	const head = "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
	hist := func(lines ...string) string { return head + strings.Join(lines, "\n") + "\n" }
	good := hist(
		`h_seconds_bucket{a="x",le="1"} 1`,
		`h_seconds_bucket{a="x",le="+Inf"} 2`,
		`h_seconds_sum{a="x"} 3.5`,
		`h_seconds_count{a="x"} 2`,
	)
	if _, err := parseText(good); err != nil {
		t.Fatalf("parseText(good) = %v", err)
	}
	tests := []struct {
		name, text string
	}{
		{"no TYPE", "# HELP a_total a\na_total 1\n"},
		{"no HELP", "# TYPE a_total counter\na_total 1\n"},
		{"unsorted", "# HELP b b\n# TYPE b gauge\nb 1\n# HELP a a\n# TYPE a gauge\na 1\n"},
		{"no samples", "# HELP a a\n# TYPE a gauge\n"},
		{"foreign sample", "# HELP a a\n# TYPE a gauge\nb 1\n"},
		{"bad label name", "# HELP a a\n# TYPE a gauge\na{1x=\"v\"} 1\n"},
		{"unquoted", "# HELP a a\n# TYPE a gauge\na{x=v} 1\n"},
		{"bad escape", "# HELP a a\n# TYPE a gauge\na{x=\"\\t\"} 1\n"},
		{"unterminated", "# HELP a a\n# TYPE a gauge\na{x=\"v} 1\n"},
		{"duplicate series", "# HELP a a\n# TYPE a gauge\na{x=\"v\"} 1\na{x=\"v\"} 2\n"},
		{"repeated label", "# HELP a a\n# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n"},
		{"bad value", "# HELP a a\n# TYPE a gauge\na 1e\n"},
		{"timestamp", "# HELP a a\n# TYPE a gauge\na 1 1700000000\n"},
		{"negative counter", "# HELP a_total a\n# TYPE a_total counter\na_total -1\n"},
		{"count != +Inf", hist(`h_seconds_bucket{le="+Inf"} 2`, `h_seconds_sum 1`, `h_seconds_count 3`)},
		{"no +Inf", hist(`h_seconds_bucket{le="1"} 2`, `h_seconds_sum 1`, `h_seconds_count 2`)},
		{"decreasing", hist(`h_seconds_bucket{le="1"} 2`, `h_seconds_bucket{le="+Inf"} 1`, `h_seconds_sum 1`, `h_seconds_count 1`)},
		{"le descending", hist(`h_seconds_bucket{le="2"} 1`, `h_seconds_bucket{le="1"} 1`, `h_seconds_bucket{le="+Inf"} 1`, `h_seconds_sum 1`, `h_seconds_count 1`)},
		{"no sum", hist(`h_seconds_bucket{le="+Inf"} 1`, `h_seconds_count 1`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseText(tt.text); err == nil {
				t.Errorf("parseText(%q) = nil error, want one", tt.text)
			}
		})
	}
}
