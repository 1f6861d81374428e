// Package metrics counts what the proxy does and serves it to Prometheus.
//
// It has three layers. Counter, Gauge and Histogram are single atomic
// values: recording into one never locks and never allocates. Families
// (CounterVec, GaugeVec, HistogramVec, Func, Info) give them a name, help
// text and labels, and a Registry writes its families in the Prometheus
// text exposition format 0.0.4. Set is the ExfilGuard metric set: every
// family the proxy exports, with one recording method per event, and
// Server serves a registry's GET /metrics.
//
// Label values never come from requests. A label either has a closed list
// of values fixed when its family is made, addressed by index, or takes
// configured names (clients, policies, rules) that SetNames installs at
// startup and on reload; a name that is not installed counts under the
// fixed value "other".
package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// Counter is a count that only goes up. The zero Counter is ready to use;
// a Counter must not be copied after first use.
type Counter struct {
	v atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down. The zero Gauge is ready to use
// and reads 0; a Gauge must not be copied after first use.
type Gauge struct {
	bits atomic.Uint64 // math.Float64bits of the value
}

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d, which may be negative.
func (g *Gauge) Add(d float64) { addFloat(&g.bits, d) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// addFloat adds d to the float64 whose bits are in p, lock-free.
func addFloat(p *atomic.Uint64, d float64) {
	for {
		old := p.Load()
		if p.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// durationBuckets are the original's request latency buckets, in seconds
// (reference §11.2).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts observations in fixed buckets. Histograms are made by
// a HistogramVec, which sets the buckets; a Histogram must not be copied.
type Histogram struct {
	upper []float64 // bucket upper bounds, ascending, shared by a family; +Inf is implied
	// counts[i] is the number of observations in bucket i alone (not
	// cumulative); counts[len(upper)] is the +Inf bucket. The total is
	// their sum, so the written _count always equals the +Inf bucket,
	// even when a scrape races with observations.
	counts []atomic.Uint64
	sum    atomic.Uint64 // math.Float64bits of the sum of observations
}

func (h *Histogram) init(upper []float64) {
	h.upper = upper
	h.counts = make([]atomic.Uint64, len(upper)+1)
}

// Observe records v. NaN is ignored: it belongs to no bucket and would
// turn the sum into NaN for good.
func (h *Histogram) Observe(v float64) {
	if v != v {
		return
	}
	// A linear scan: families have about ten buckets, and most
	// observations land in the first few.
	i := 0
	for i < len(h.upper) && v > h.upper[i] {
		i++
	}
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum returns the sum of the observations.
func (h *Histogram) Sum() float64 { return math.Float64frombits(h.sum.Load()) }
