package metrics

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Family types, as written on # TYPE lines.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
)

// desc is what a family says about itself.
type desc struct {
	name, help, typ string
}

func newDesc(typ, name, help string) desc {
	if !validMetricName(name) {
		panic("metrics: invalid metric name " + name)
	}
	if help == "" {
		panic("metrics: " + name + " has no help text")
	}
	return desc{name: name, help: help, typ: typ}
}

// Collector is a family that a Registry can write: a CounterVec, GaugeVec,
// HistogramVec, Func or Info.
type Collector interface {
	describe() *desc
	// appendText appends the family's # HELP and # TYPE lines and its
	// samples.
	appendText(b []byte) []byte
}

// Registry is a set of families with distinct names. The zero Registry is
// empty and ready to use.
type Registry struct {
	mu sync.Mutex
	cs []Collector // guarded by mu; sorted by name

	size atomic.Int64 // length of the last text, to size the next buffer
}

// Register adds families. It panics if a name is already registered.
func (r *Registry) Register(cs ...Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		name := c.describe().name
		i, found := slices.BinarySearchFunc(r.cs, name, func(c Collector, name string) int {
			return strings.Compare(c.describe().name, name)
		})
		if found {
			panic("metrics: " + name + " registered twice")
		}
		r.cs = slices.Insert(r.cs, i, c)
	}
}

// AppendText appends the families in the text exposition format 0.0.4,
// sorted by name, each with its # HELP and # TYPE lines.
func (r *Registry) AppendText(b []byte) []byte {
	r.mu.Lock()
	cs := slices.Clone(r.cs)
	r.mu.Unlock()
	for _, c := range cs {
		b = c.appendText(b)
	}
	return b
}

// WriteText writes the families in the text exposition format 0.0.4.
func (r *Registry) WriteText(w io.Writer) error {
	_, err := w.Write(r.text())
	return err
}

// text returns the families in the text format, in a buffer sized after
// the previous scrape's.
func (r *Registry) text() []byte {
	b := r.AppendText(make([]byte, 0, r.size.Load()*9/8+4096))
	r.size.Store(int64(len(b)))
	return b
}

// appendHeader appends a family's # HELP and # TYPE lines. In help text
// the format escapes only backslash and line feed.
func appendHeader(b []byte, d *desc) []byte {
	b = append(b, "# HELP "...)
	b = append(b, d.name...)
	b = append(b, ' ')
	for i := 0; i < len(d.help); i++ {
		switch c := d.help[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	b = append(b, "\n# TYPE "...)
	b = append(b, d.name...)
	b = append(b, ' ')
	b = append(b, d.typ...)
	return append(b, '\n')
}

// appendLabelPair appends name="value", escaping backslash, double quote
// and line feed in the value as the format requires.
func appendLabelPair(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, `="`...)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendSeries appends name+suffix and the label set: lbl (pairs without
// braces) and, if le is set, an le pair.
func appendSeries(b []byte, name, suffix string, lbl []byte, le string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(lbl) == 0 && le == "" {
		return b
	}
	b = append(b, '{')
	b = append(b, lbl...)
	if le != "" {
		if len(lbl) > 0 {
			b = append(b, ',')
		}
		b = appendLabelPair(b, "le", le)
	}
	return append(b, '}')
}

func appendUintSample(b []byte, name, suffix string, lbl []byte, v uint64) []byte {
	b = appendSeries(b, name, suffix, lbl, "")
	b = append(b, ' ')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
}

func appendFloatSample(b []byte, name, suffix string, lbl []byte, le string, v float64) []byte {
	b = appendSeries(b, name, suffix, lbl, le)
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendHistogram appends one histogram's cumulative _bucket lines, one
// per le (the last is +Inf), then _sum and _count.
func appendHistogram(b []byte, name string, lbl []byte, les []string, h *Histogram) []byte {
	var cum uint64
	for i, le := range les {
		cum += h.counts[i].Load()
		b = appendSeries(b, name, "_bucket", lbl, le)
		b = append(b, ' ')
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}
	b = appendFloatSample(b, name, "_sum", lbl, "", h.Sum())
	return appendUintSample(b, name, "_count", lbl, cum)
}

// appendFloat formats v as Prometheus reads it: +Inf, -Inf and NaN by
// name, and other values without an exponent when that stays short
// (1700000000.5 rather than 1.7000000005e+09).
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == 0:
		return append(b, '0') // also for -0
	}
	if a := math.Abs(v); a >= 1e-4 && a < 1e21 {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and does
// not start with the reserved "__".
func validLabelName(s string) bool {
	return validMetricName(s) && !strings.Contains(s, ":") && !strings.HasPrefix(s, "__")
}

// validLabelValue reports whether s can be an enum label value: UTF-8 and
// not empty (an empty value is the same as no label).
func validLabelValue(s string) bool { return s != "" && utf8.ValidString(s) }
