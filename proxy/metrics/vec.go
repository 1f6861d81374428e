package metrics

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Other is the value a named label takes for a name that SetNames did not
// install: a request that raced with a reload, or a caller's mistake. It
// keeps the hot path from allocating and the label set closed. A
// configured name equal to Other shares its series.
const Other = "other"

// Label is one label of a family. An enum label lists its closed set of
// values, addressed by index in that order. A label with no Values is a
// named label: its values are configured names installed with SetNames.
// Only a family's first label may be named.
type Label struct {
	Name   string
	Values []string
}

// vec is a family of series of T over labels: the cross product of the
// first label's names (when named) and the enum labels' values.
type vec[T any] struct {
	desc
	labels []Label  // as given; labels[0].Values is nil when named
	enums  []Label  // the enum labels
	named  bool     // labels[0] takes configured names
	stride int      // series per name: the product of the enum label sizes
	init   func(*T) // prepares a new series; nil for zero-value types
	// zero reports whether a series has nothing to show. A named family
	// writes only the series that are not zero (see appendText).
	zero  func(*T) bool
	write func(b []byte, d *desc, labels []byte, t *T) []byte

	mu    sync.Mutex // serializes SetNames
	state atomic.Pointer[vecState[T]]
}

// vecState is a vec's immutable set of series. SetNames replaces it whole,
// so a recorder sees either the old set or the new one, never a mixture.
type vecState[T any] struct {
	names    []string       // named: sorted, Other included; enum-only: nil
	index    map[string]int // named: name → position in names
	other    int            // position of Other in names
	children []*T           // len(names)*stride (or stride), name-major
}

func newVec[T any](typ, name, help string, labels []Label, init func(*T), zero func(*T) bool,
	write func([]byte, *desc, []byte, *T) []byte) *vec[T] {
	v := &vec[T]{desc: newDesc(typ, name, help), labels: labels, init: init, zero: zero, write: write, stride: 1}
	seen := map[string]bool{}
	for i, l := range labels {
		if !validLabelName(l.Name) {
			panic("metrics: invalid label name " + l.Name + " in " + name)
		}
		if seen[l.Name] || typ == typeHistogram && l.Name == "le" {
			panic("metrics: duplicate or reserved label name " + l.Name + " in " + name)
		}
		seen[l.Name] = true
		if l.Values == nil {
			if i != 0 {
				panic("metrics: only the first label may be named, in " + name)
			}
			v.named = true
			continue
		}
		vals := map[string]bool{}
		for _, val := range l.Values {
			if vals[val] || !validLabelValue(val) {
				panic("metrics: duplicate or invalid value " + val + " of label " + l.Name + " in " + name)
			}
			vals[val] = true
		}
		if len(l.Values) == 0 {
			panic("metrics: label " + l.Name + " has no values, in " + name)
		}
		v.enums = append(v.enums, l)
		v.stride *= len(l.Values)
	}
	if v.named {
		v.state.Store(v.build(nil, nil))
	} else {
		v.state.Store(&vecState[T]{children: v.block()})
	}
	return v
}

// block returns stride new series.
func (v *vec[T]) block() []*T {
	ts := make([]T, v.stride)
	ps := make([]*T, v.stride)
	for i := range ts {
		if v.init != nil {
			v.init(&ts[i])
		}
		ps[i] = &ts[i]
	}
	return ps
}

// build makes the state holding names (plus Other), reusing old's series
// for the names they share so that counts survive a reload.
func (v *vec[T]) build(old *vecState[T], names []string) *vecState[T] {
	all := make([]string, 0, len(names)+1)
	all = append(all, Other)
	for _, n := range names {
		if n != "" { // an empty label value is no label at all
			all = append(all, strings.ToValidUTF8(n, "\uFFFD"))
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	s := &vecState[T]{names: all, index: make(map[string]int, len(all)), children: make([]*T, 0, len(all)*v.stride)}
	for i, n := range all {
		s.index[n] = i
		if n == Other {
			s.other = i
		}
		if j, ok := old.lookup(n); ok {
			s.children = append(s.children, old.children[j*v.stride:(j+1)*v.stride]...)
		} else {
			s.children = append(s.children, v.block()...)
		}
	}
	return s
}

func (s *vecState[T]) lookup(name string) (int, bool) {
	if s == nil {
		return 0, false
	}
	i, ok := s.index[name]
	return i, ok
}

// setNames installs the named label's values; series of names no longer
// listed are dropped, those of names kept keep their counts.
func (v *vec[T]) setNames(names []string) {
	if !v.named {
		panic("metrics: SetNames on " + v.name + ", which has no named label")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.state.Store(v.build(v.state.Load(), names))
}

// offset returns the position of the enum value indexes idx within a
// name's block.
func (v *vec[T]) offset(idx []int) int {
	if len(idx) != len(v.enums) {
		panic("metrics: wrong number of label indexes for " + v.name)
	}
	o := 0
	for i, x := range idx {
		n := len(v.enums[i].Values)
		if uint(x) >= uint(n) {
			panic("metrics: label index out of range for " + v.name)
		}
		o = o*n + x
	}
	return o
}

func (v *vec[T]) with(idx []int) *T {
	if v.named {
		panic("metrics: With on " + v.name + ", which has a named label: use WithName")
	}
	return v.state.Load().children[v.offset(idx)]
}

func (v *vec[T]) withName(name string, idx []int) *T {
	if !v.named {
		panic("metrics: WithName on " + v.name + ", which has no named label")
	}
	s := v.state.Load()
	i, ok := s.index[name]
	if !ok {
		i = s.other
	}
	return s.children[i*v.stride+v.offset(idx)]
}

// appendText writes the family. An enum-only family writes every series,
// so all of them exist from the start. A named family writes only the
// series that are not zero: one per name and enum combination would be
// hundreds of mostly empty series per client; when all are zero it writes
// the first series of Other, so that the family still shows.
func (v *vec[T]) appendText(b []byte) []byte {
	b = appendHeader(b, &v.desc)
	s := v.state.Load()
	var lbl []byte
	wrote := false
	for i, t := range s.children {
		if v.named && v.zero(t) {
			continue
		}
		lbl = v.appendLabels(lbl[:0], s, i)
		b = v.write(b, &v.desc, lbl, t)
		wrote = true
	}
	if !wrote && len(s.children) > 0 {
		i := s.other * v.stride
		lbl = v.appendLabels(lbl[:0], s, i)
		b = v.write(b, &v.desc, lbl, s.children[i])
	}
	return b
}

// appendLabels appends the label pairs of series i, without braces.
func (v *vec[T]) appendLabels(b []byte, s *vecState[T], i int) []byte {
	rest := i % v.stride
	if v.named {
		b = appendLabelPair(b, v.labels[0].Name, s.names[i/v.stride])
	}
	div := v.stride
	for _, l := range v.enums {
		div /= len(l.Values)
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = appendLabelPair(b, l.Name, l.Values[rest/div])
		rest %= div
	}
	return b
}

// CounterVec is a family of counters. Its series exist from the start, or
// for a named family from SetNames; recording never allocates.
type CounterVec struct{ v *vec[Counter] }

// NewCounterVec returns a counter family. With no labels it has a single
// series, With().
func NewCounterVec(name, help string, labels ...Label) *CounterVec {
	return &CounterVec{newVec(typeCounter, name, help, labels, nil,
		func(c *Counter) bool { return c.Value() == 0 },
		func(b []byte, d *desc, lbl []byte, c *Counter) []byte {
			return appendUintSample(b, d.name, "", lbl, c.Value())
		})}
}

// With returns the counter of the enum labels' value indexes, in label
// order. It panics on a family with a named label or an index out of range.
func (cv *CounterVec) With(idx ...int) *Counter { return cv.v.with(idx) }

// WithName returns the counter of a configured name (Other if name is not
// installed) and the enum labels' value indexes.
func (cv *CounterVec) WithName(name string, idx ...int) *Counter { return cv.v.withName(name, idx) }

// SetNames installs the values of the named label. Counters of names kept
// keep their counts; those of names dropped disappear.
func (cv *CounterVec) SetNames(names []string) { cv.v.setNames(names) }

func (cv *CounterVec) describe() *desc            { return &cv.v.desc }
func (cv *CounterVec) appendText(b []byte) []byte { return cv.v.appendText(b) }

// GaugeVec is a family of gauges over enum labels.
type GaugeVec struct{ v *vec[Gauge] }

// NewGaugeVec returns a gauge family. Its labels must all be enum labels:
// a gauge has no natural zero to hide, so it has no named label.
func NewGaugeVec(name, help string, labels ...Label) *GaugeVec {
	if len(labels) > 0 && labels[0].Values == nil {
		panic("metrics: gauge family " + name + " cannot have a named label")
	}
	return &GaugeVec{newVec(typeGauge, name, help, labels, nil, nil,
		func(b []byte, d *desc, lbl []byte, g *Gauge) []byte {
			return appendFloatSample(b, d.name, "", lbl, "", g.Value())
		})}
}

// With returns the gauge of the enum labels' value indexes, in label order.
func (gv *GaugeVec) With(idx ...int) *Gauge { return gv.v.with(idx) }

func (gv *GaugeVec) describe() *desc            { return &gv.v.desc }
func (gv *GaugeVec) appendText(b []byte) []byte { return gv.v.appendText(b) }

// HistogramVec is a family of histograms with the same buckets.
type HistogramVec struct{ v *vec[Histogram] }

// NewHistogramVec returns a histogram family with the given bucket upper
// bounds, which must be finite and ascending (+Inf is implied). With no
// labels it has a single series, With().
func NewHistogramVec(name, help string, buckets []float64, labels ...Label) *HistogramVec {
	if len(buckets) == 0 {
		panic("metrics: histogram " + name + " has no buckets")
	}
	for i, u := range buckets {
		if math.IsInf(u, 0) || math.IsNaN(u) || i > 0 && u <= buckets[i-1] {
			panic("metrics: histogram " + name + " buckets must be finite and ascending")
		}
	}
	upper := slices.Clone(buckets)
	les := make([]string, len(upper)+1)
	for i, u := range upper {
		les[i] = string(appendFloat(nil, u))
	}
	les[len(upper)] = "+Inf"
	return &HistogramVec{newVec(typeHistogram, name, help, labels,
		func(h *Histogram) { h.init(upper) },
		func(h *Histogram) bool { return h.Count() == 0 },
		func(b []byte, d *desc, lbl []byte, h *Histogram) []byte {
			return appendHistogram(b, d.name, lbl, les, h)
		})}
}

// With returns the histogram of the enum labels' value indexes, in label
// order.
func (hv *HistogramVec) With(idx ...int) *Histogram { return hv.v.with(idx) }

// WithName returns the histogram of a configured name (Other if name is
// not installed) and the enum labels' value indexes.
func (hv *HistogramVec) WithName(name string, idx ...int) *Histogram {
	return hv.v.withName(name, idx)
}

// SetNames installs the values of the named label, as CounterVec.SetNames.
func (hv *HistogramVec) SetNames(names []string) { hv.v.setNames(names) }

func (hv *HistogramVec) describe() *desc            { return &hv.v.desc }
func (hv *HistogramVec) appendText(b []byte) []byte { return hv.v.appendText(b) }

// Func is an unlabelled counter or gauge whose value is read from a
// function at scrape time, for figures another part of the program already
// keeps.
type Func struct {
	desc
	f atomic.Pointer[func() float64]
}

// NewCounterFunc returns a counter read from f; nil f reads 0 until Set.
func NewCounterFunc(name, help string, f func() float64) *Func {
	return newFunc(typeCounter, name, help, f)
}

// NewGaugeFunc returns a gauge read from f; nil f reads 0 until Set.
func NewGaugeFunc(name, help string, f func() float64) *Func {
	return newFunc(typeGauge, name, help, f)
}

func newFunc(typ, name, help string, f func() float64) *Func {
	fn := &Func{desc: newDesc(typ, name, help)}
	fn.Set(f)
	return fn
}

// Set replaces the function; nil reads 0. f must be safe to call from
// any goroutine.
func (fn *Func) Set(f func() float64) {
	if f == nil {
		fn.f.Store(nil)
		return
	}
	fn.f.Store(&f)
}

func (fn *Func) describe() *desc { return &fn.desc }

func (fn *Func) appendText(b []byte) []byte {
	b = appendHeader(b, &fn.desc)
	v := 0.0
	if f := fn.f.Load(); f != nil {
		v = (*f)()
	}
	return appendFloatSample(b, fn.name, "", nil, "", v)
}

// Info is a gauge family with one series of value 1 whose labels carry
// facts, such as a version or a configuration hash.
type Info struct {
	desc
	labels []string
	values atomic.Pointer[[]string]
}

// NewInfo returns an info family; its label values are "unknown" until Set.
func NewInfo(name, help string, labels ...string) *Info {
	in := &Info{desc: newDesc(typeGauge, name, help), labels: labels}
	for i, l := range labels {
		if !validLabelName(l) || slices.Contains(labels[:i], l) {
			panic("metrics: duplicate or invalid label name " + l + " in " + name)
		}
	}
	in.Set()
	return in
}

// Set replaces the label values, given in label order. Missing or empty
// ones are written "unknown" (an empty value would be no label at all),
// and invalid UTF-8 is replaced.
func (in *Info) Set(values ...string) {
	vs := make([]string, len(in.labels))
	for i := range vs {
		vs[i] = "unknown"
		if i < len(values) && values[i] != "" {
			vs[i] = strings.ToValidUTF8(values[i], "\uFFFD")
		}
	}
	in.values.Store(&vs)
}

func (in *Info) describe() *desc { return &in.desc }

func (in *Info) appendText(b []byte) []byte {
	b = appendHeader(b, &in.desc)
	vs := *in.values.Load()
	var lbl []byte
	for i, l := range in.labels {
		if i > 0 {
			lbl = append(lbl, ',')
		}
		lbl = appendLabelPair(lbl, l, vs[i])
	}
	return appendFloatSample(b, in.name, "", lbl, "", 1)
}
