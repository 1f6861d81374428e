package metrics

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestCounterGauge(t *testing.T) {
	var c Counter
	c.Inc()
	c.Add(41)
	if got := c.Value(); got != 42 {
		t.Errorf("Counter.Value() = %d, want 42", got)
	}
	var g Gauge
	g.Inc()
	g.Inc()
	g.Dec()
	g.Add(0.5)
	if got := g.Value(); got != 1.5 {
		t.Errorf("Gauge.Value() = %v, want 1.5", got)
	}
	g.Set(-3)
	if got := g.Value(); got != -3 {
		t.Errorf("Gauge.Value() after Set(-3) = %v", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	hv := NewHistogramVec("h_seconds", "h", []float64{0.1, 1, 10})
	h := hv.With()
	for _, v := range []float64{0, 0.1, 0.10001, 1, 5, 10, 11, math.Inf(1), math.NaN()} {
		h.Observe(v)
	}
	h.ObserveDuration(250 * time.Millisecond)
	// le is inclusive: 0.1 is in the first bucket, 10 in the third.
	want := []uint64{2, 3, 2, 2}
	for i, w := range want {
		if got := h.counts[i].Load(); got != w {
			t.Errorf("bucket %d holds %d, want %d", i, got, w)
		}
	}
	if got := h.Count(); got != 9 {
		t.Errorf("Count() = %d, want 9 (NaN ignored)", got)
	}
	if got := h.Sum(); !math.IsInf(got, 1) {
		t.Errorf("Sum() = %v, want +Inf", got)
	}
	out := string(hv.appendText(nil))
	wantText := `# HELP h_seconds h
# TYPE h_seconds histogram
h_seconds_bucket{le="0.1"} 2
h_seconds_bucket{le="1"} 5
h_seconds_bucket{le="10"} 7
h_seconds_bucket{le="+Inf"} 9
h_seconds_sum +Inf
h_seconds_count 9
`
	if out != wantText {
		t.Errorf("appendText =\n%s\nwant\n%s", out, wantText)
	}
}

func TestAppendFloat(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{0.005, "0.005"},
		{2.5, "2.5"},
		{10, "10"},
		{1e6, "1000000"},
		{1700000000.5, "1700000000.5"},
		{1 << 53, "9007199254740992"},
		{1e21, "1e+21"},
		{0.0001, "0.0001"},
		{0.00001, "1e-05"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
		{math.NaN(), "NaN"},
	}
	for _, tt := range tests {
		if got := string(appendFloat(nil, tt.v)); got != tt.want {
			t.Errorf("appendFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestEscaping(t *testing.T) {
	if got, want := string(appendLabelPair(nil, "l", "a\\b\"c\nd\té")), `l="a\\b\"c\nd`+"\t"+`é"`; got != want {
		t.Errorf("appendLabelPair = %s, want %s", got, want)
	}
	d := desc{name: "m", help: "back\\slash \"quoted\"\nnext", typ: typeGauge}
	if got, want := string(appendHeader(nil, &d)), "# HELP m back\\\\slash \"quoted\"\\nnext\n# TYPE m gauge\n"; got != want {
		t.Errorf("appendHeader = %q, want %q", got, want)
	}
}

func TestVecEnum(t *testing.T) {
	cv := NewCounterVec("c_total", "c",
		Label{Name: "a", Values: []string{"x", "y"}},
		Label{Name: "b", Values: []string{"p", "q", "r"}})
	cv.With(1, 2).Add(7)
	cv.With(0, 1).Inc()
	got := string(cv.appendText(nil))
	want := `# HELP c_total c
# TYPE c_total counter
c_total{a="x",b="p"} 0
c_total{a="x",b="q"} 1
c_total{a="x",b="r"} 0
c_total{a="y",b="p"} 0
c_total{a="y",b="q"} 0
c_total{a="y",b="r"} 7
`
	if got != want {
		t.Errorf("appendText =\n%s\nwant\n%s", got, want)
	}
	for name, f := range map[string]func(){
		"too few":      func() { cv.With(1) },
		"too many":     func() { cv.With(1, 1, 1) },
		"out of range": func() { cv.With(0, 3) },
		"negative":     func() { cv.With(-1, 0) },
		"WithName":     func() { cv.WithName("x", 0, 0) },
		"SetNames":     func() { cv.SetNames([]string{"x"}) },
	} {
		if !panics(f) {
			t.Errorf("With %s did not panic", name)
		}
	}
}

func TestVecNamed(t *testing.T) {
	cv := NewCounterVec("c_total", "c", Label{Name: "client"}, Label{Name: "d", Values: []string{"in", "out"}})
	// Before SetNames every name counts under Other, and an all-zero
	// family still writes one series.
	if got, want := string(cv.appendText(nil)), "# HELP c_total c\n# TYPE c_total counter\nc_total{client=\"other\",d=\"in\"} 0\n"; got != want {
		t.Errorf("empty named family =\n%s\nwant\n%s", got, want)
	}
	cv.WithName("early", 1).Inc()
	cv.SetNames([]string{"zed", "alpha", "alpha", "", "bad\xff"})
	cv.WithName("zed", 0).Add(2)
	cv.WithName("alpha", 1).Add(3)
	cv.WithName("unknown", 0).Inc()
	cv.WithName("bad\uFFFD", 0).Inc()
	got := string(cv.appendText(nil))
	want := `# HELP c_total c
# TYPE c_total counter
c_total{client="alpha",d="out"} 3
c_total{client="bad` + "\uFFFD" + `",d="in"} 1
c_total{client="other",d="in"} 1
c_total{client="other",d="out"} 1
c_total{client="zed",d="in"} 2
`
	if got != want {
		t.Errorf("appendText =\n%s\nwant\n%s", got, want)
	}
	// A reload keeps the counts of kept names, drops the others, and a
	// configured name equal to Other shares its series.
	cv.SetNames([]string{"alpha", "new", Other})
	cv.WithName("alpha", 1).Inc()
	cv.WithName("zed", 0).Inc() // dropped: counts under other now
	got = string(cv.appendText(nil))
	want = `# HELP c_total c
# TYPE c_total counter
c_total{client="alpha",d="out"} 4
c_total{client="other",d="in"} 2
c_total{client="other",d="out"} 1
`
	if got != want {
		t.Errorf("after reload appendText =\n%s\nwant\n%s", got, want)
	}
	if !panics(func() { cv.With(0) }) {
		t.Errorf("With on a named family did not panic")
	}
}

func TestInfoAndFunc(t *testing.T) {
	in := NewInfo("x_info", "x", "a", "b")
	if got, want := string(in.appendText(nil)), "# HELP x_info x\n# TYPE x_info gauge\nx_info{a=\"unknown\",b=\"unknown\"} 1\n"; got != want {
		t.Errorf("unset Info = %q, want %q", got, want)
	}
	in.Set("1\"", "")
	if got, want := string(in.appendText(nil)), "# HELP x_info x\n# TYPE x_info gauge\nx_info{a=\"1\\\"\",b=\"unknown\"} 1\n"; got != want {
		t.Errorf("Info = %q, want %q", got, want)
	}
	fn := NewCounterFunc("f_total", "f", nil)
	if got := string(fn.appendText(nil)); !strings.HasSuffix(got, "\nf_total 0\n") {
		t.Errorf("nil Func = %q", got)
	}
	fn.Set(func() float64 { return 12 })
	if got := string(fn.appendText(nil)); !strings.HasSuffix(got, "\nf_total 12\n") {
		t.Errorf("Func = %q", got)
	}
}

func TestConstructorsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"metric name":      func() { NewCounterVec("1bad", "h") },
		"metric name dash": func() { NewCounterVec("bad-name", "h") },
		"no help":          func() { NewCounterVec("c_total", "") },
		"label name":       func() { NewCounterVec("c_total", "h", Label{Name: "a-b", Values: []string{"x"}}) },
		"reserved label":   func() { NewCounterVec("c_total", "h", Label{Name: "__a", Values: []string{"x"}}) },
		"duplicate label": func() {
			NewCounterVec("c_total", "h", Label{Name: "a", Values: []string{"x"}}, Label{Name: "a", Values: []string{"y"}})
		},
		"le on histogram":   func() { NewHistogramVec("h", "h", []float64{1}, Label{Name: "le", Values: []string{"x"}}) },
		"duplicate value":   func() { NewCounterVec("c_total", "h", Label{Name: "a", Values: []string{"x", "x"}}) },
		"empty value":       func() { NewCounterVec("c_total", "h", Label{Name: "a", Values: []string{""}}) },
		"no values":         func() { NewCounterVec("c_total", "h", Label{Name: "a", Values: []string{}}) },
		"named not first":   func() { NewCounterVec("c_total", "h", Label{Name: "a", Values: []string{"x"}}, Label{Name: "b"}) },
		"named gauge":       func() { NewGaugeVec("g", "h", Label{Name: "b"}) },
		"no buckets":        func() { NewHistogramVec("h", "h", nil) },
		"unsorted buckets":  func() { NewHistogramVec("h", "h", []float64{1, 1}) },
		"infinite bucket":   func() { NewHistogramVec("h", "h", []float64{1, math.Inf(1)}) },
		"duplicate family":  func() { var r Registry; r.Register(NewCounterVec("c_total", "h"), NewCounterVec("c_total", "h")) },
		"info label":        func() { NewInfo("i_info", "h", "a", "a") },
		"record bad mode":   func() { New(Options{OmitProcess: true}).Record(Request{Mode: numModes}) },
		"record bad choice": func() { New(Options{OmitProcess: true}).Record(Request{Decision: numDecisions}) },
	} {
		if !panics(f) {
			t.Errorf("%s: no panic", name)
		}
	}
}

func TestRegistrySorted(t *testing.T) {
	var r Registry
	r.Register(NewGaugeVec("b", "b"), NewGaugeVec("a_b", "a"), NewGaugeVec("a", "a"))
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	e := parseExposition(t, sb.String())
	var names []string
	for _, f := range e.families {
		names = append(names, f.name)
	}
	if got := strings.Join(names, " "); got != "a a_b b" {
		t.Errorf("families = %s, want a a_b b", got)
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}
