package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadSettings are the settings of the load and soak runs: the defaults,
// except that idle upstream connections close after 2 s, so that the
// figures after a run show what the run left behind, not the pool.
const loadSettings = "upstream_idle_timeout = 2\n"

// sample is one reading of the proxy during a run.
type sample struct {
	at         time.Duration // since the start of the run
	st         procStat
	goroutines int
	ops, errs  int64
}

func (s sample) String() string {
	return fmt.Sprintf("t=%4.0fs rss=%6.1fMiB goroutines=%5d fds=%5d ops=%9d errors=%d",
		s.at.Seconds(), mib(s.st.rss), s.goroutines, s.st.fds, s.ops, s.errs)
}

// run is the outcome of one load run.
type run struct {
	d             time.Duration
	tot           map[string]*totals
	before, after procStat
	gBefore       int
	samples       []sample
	sampleErr     error
}

// errors returns the failed operations of every class.
func (r *run) errors() int64 {
	var n int64
	for _, t := range r.tot {
		n += t.errs
	}
	return n
}

// loadRun drives the proxy for d with the generator, reading the proxy
// every interval; onSample, when set, sees each reading as it is taken.
func loadRun(t *testing.T, p *proxyProc, conns int, mix map[string]int, d, interval time.Duration, onSample func(sample)) *run {
	t.Helper()
	r := &run{d: d, before: p.stat(t), gBefore: p.goroutines(t)}
	g := newGen(p, conns, mix)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := sample{at: time.Since(start)}
			var err error
			if s.st, err = p.readStat(); err == nil {
				var text string
				if text, err = p.readMetrics(); err == nil {
					s.goroutines = int(metricValue(text, "go_goroutines"))
				}
			}
			if err != nil {
				r.sampleErr = err
				return
			}
			for _, tt := range g.totals() {
				s.ops += int64(tt.h.n)
				s.errs += tt.errs
			}
			if ctx.Err() != nil {
				// The run ended while reading: the clients are going
				// away, and the reading is not one of the run.
				return
			}
			r.samples = append(r.samples, s)
			if onSample != nil {
				onSample(s)
			}
		}
	}()
	g.run(ctx)
	r.d = time.Since(start)
	cancel()
	wg.Wait()
	r.after = p.stat(t)
	r.tot = g.totals()
	if r.sampleErr != nil {
		t.Errorf("reading the proxy during the run: %v", r.sampleErr)
	}
	return r
}

// summary describes the proxy's side of a run.
func (r *run) summary(gAfter int, settled procStat) string {
	cpu := r.after.cpu - r.before.cpu
	var gMax, fdMax int
	for _, s := range r.samples {
		gMax, fdMax = max(gMax, s.goroutines), max(fdMax, s.st.fds)
	}
	return fmt.Sprintf("proxy: CPU %.1f s (%.2f cores), peak RSS %.1f MiB, RSS %.1f MiB at the end; "+
		"goroutines %d before, %d at most during, %d after; fds %d before, %d at most during, %d after",
		cpu.Seconds(), cpu.Seconds()/r.d.Seconds(), mib(r.after.hwm), mib(r.after.rss),
		r.gBefore, gMax, gAfter, r.before.fds, fdMax, settled.fds)
}

// afterRun waits for the proxy to let go of what the run held: its
// goroutines and file descriptors back to their level before the run
// (within slack), once idle upstream connections have closed. It returns
// the figures it ended with.
func afterRun(t *testing.T, p *proxyProc, r *run) (int, procStat) {
	t.Helper()
	const slack = 3
	var g int
	var st procStat
	ok := settle(15*time.Second, func() bool {
		g, st = p.goroutines(t), p.stat(t)
		return g <= r.gBefore+slack && st.fds <= r.before.fds+slack
	})
	if !ok {
		t.Errorf("after the run: %d goroutines (%d before), %d fds (%d before); something was left behind\n%s",
			g, r.gBefore, st.fds, r.before.fds, tail(p.logs.String(), 2000))
	}
	return g, st
}

func mixOrFatal(t *testing.T) map[string]int {
	mix, err := parseMix(*loadMix)
	if err != nil {
		t.Fatal(err)
	}
	return mix
}

// TestLoad drives the binary with the mixed workload (-load, default a
// short smoke run) and reports throughput, latency, errors and the
// proxy's CPU, memory, goroutines and fds. Every operation must succeed,
// and the proxy must be back to its idle goroutines and fds afterwards.
func TestLoad(t *testing.T) {
	d := *loadDuration
	if d == 0 {
		d = 2 * time.Second
	}
	mix := mixOrFatal(t)
	o := newOrigins(t)
	p := startProxy(t, o, proxyOpts{settings: loadSettings})
	r := loadRun(t, p, *loadConns, mix, d, time.Second, nil)
	g, settled := afterRun(t, p, r)
	t.Logf("load: %v, %d connections, mix %s\n%s%s", d, *loadConns, *loadMix, report(r.tot, r.d), r.summary(g, settled))
	for _, name := range sortedClasses(mix) {
		tt := r.tot[name]
		if tt.errs != 0 {
			t.Errorf("%s: %d failed operations, want 0: %s", name, tt.errs, strings.Join(tt.firstErrs, "; "))
		}
		if tt.h.n == 0 {
			t.Errorf("%s: no operation completed", name)
		}
	}
}

// soakWarmup is the start of a soak that the flatness checks leave out:
// the heap, the pools and the leaf cache reach their working size.
func soakWarmup(d time.Duration) time.Duration { return min(max(d/10, 30*time.Second), 2*time.Minute) }

// TestSoak runs the mixed workload for -soak, reading the proxy every
// 10 s, and fails if any operation fails or if RSS, goroutines or open
// fds are not flat after the warm-up:
//
//   - none grows: the mean of the last third of the readings after the
//     warm-up is within 10% of the mean of the first third, so that a leak
//     shows as a trend whatever the noise of single readings;
//   - RSS stays within 10%: its largest reading after the warm-up is at
//     most 10% above its smallest (the bound);
//   - goroutines and fds come back to their idle level once the load
//     stops (afterRun), which finds a leak of even one.
//
// Single readings of goroutines and fds are not bounded by themselves:
// with 48 clients opening and closing tunnels and connections all the
// time, a reading lands anywhere in their setup and teardown, and moves by
// a quarter from one reading to the next with nothing leaking.
func TestSoak(t *testing.T) {
	if *soakDuration == 0 {
		t.Skip("runs under -soak (make soak)")
	}
	d := *soakDuration
	mix := mixOrFatal(t)
	o := newOrigins(t)
	p := startProxy(t, o, proxyOpts{settings: loadSettings})
	t.Logf("soak: %v, %d connections, mix %s, readings every 10 s, warm-up %v", d, *loadConns, *loadMix, soakWarmup(d))
	r := loadRun(t, p, *loadConns, mix, d, 10*time.Second, func(s sample) { t.Log(s) })
	g, settled := afterRun(t, p, r)
	t.Logf("soak done\n%s%s", report(r.tot, r.d), r.summary(g, settled))
	if n := r.errors(); n != 0 {
		t.Errorf("%d operations failed, want 0", n)
	}
	var flat []sample
	for _, s := range r.samples {
		if s.at >= soakWarmup(d) {
			flat = append(flat, s)
		}
	}
	if len(flat) < 6 {
		t.Fatalf("%d readings after the warm-up; the soak is too short to judge", len(flat))
	}
	check := func(what string, v func(sample) int64, band bool, unit func(float64) string) {
		vals := make([]float64, len(flat))
		for i, s := range flat {
			vals[i] = float64(v(s))
		}
		third := len(vals) / 3
		first, last := mean(vals[:third]), mean(vals[len(vals)-third:])
		lo, hi := slices.Min(vals), slices.Max(vals)
		t.Logf("%s after warm-up: min %s, max %s (+%.1f%%); mean of the first third %s, of the last third %s (%+.1f%%)",
			what, unit(lo), unit(hi), 100*(hi-lo)/lo, unit(first), unit(last), 100*(last-first)/first)
		if last > first*1.10 {
			t.Errorf("%s grew by %.1f%% from the first to the last third of the soak, more than 10%%", what, 100*(last-first)/first)
		}
		if band && hi > lo*1.10 {
			t.Errorf("%s ranged from %s to %s after the warm-up, more than 10%%", what, unit(lo), unit(hi))
		}
	}
	count := func(n float64) string { return fmt.Sprintf("%.0f", n) }
	check("RSS", func(s sample) int64 { return s.st.rss }, true, func(n float64) string { return fmt.Sprintf("%.1fMiB", n/(1<<20)) })
	check("goroutines", func(s sample) int64 { return int64(s.goroutines) }, false, count)
	check("fds", func(s sample) int64 { return int64(s.st.fds) }, false, count)
}

func mean(vals []float64) float64 {
	var sum float64
	for _, v := range vals {
		sum += v
	}
	return sum / float64(len(vals))
}
