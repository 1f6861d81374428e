package metrics

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchSet returns a Set loaded with a realistic number of names.
func benchSet(tb testing.TB) *Set {
	tb.Helper()
	s := New(Options{OmitProcess: true})
	var p Policies
	for i := range 50 {
		p.Clients = append(p.Clients, "client-"+strconv.Itoa(i))
	}
	for i := range 20 {
		name := "policy-" + strconv.Itoa(i)
		p.Policies = append(p.Policies, name)
		for j := range 10 {
			p.Rules = append(p.Rules, name+"#"+strconv.Itoa(j))
		}
	}
	s.Loaded(p, time.Unix(0, 0))
	return s
}

var benchRequest = Request{
	Mode: ModeBump, Decision: DecisionAllow, Method: "GET", Status: 200,
	Client: "client-17", Policy: "policy-3", Rule: "policy-3#4",
	Duration: 12 * time.Millisecond, BytesIn: 300, BytesOut: 4000,
}

// TestRecordingDoesNotAllocate holds the hot path to zero allocations.
func TestRecordingDoesNotAllocate(t *testing.T) {
	s := benchSet(t)
	cv := NewCounterVec("c_total", "c", Label{Name: "d", Values: decisionNames}, Label{Name: "mode", Values: modeNames})
	hv := NewHistogramVec("h_seconds", "h", durationBuckets, Label{Name: "client"}, Label{Name: "mode", Values: modeNames})
	hv.SetNames([]string{"a", "b"})
	var c Counter
	var g Gauge
	tests := []struct {
		name string
		f    func()
	}{
		{"Counter.Inc", func() { c.Inc() }},
		{"Gauge.Inc", func() { g.Inc() }},
		{"CounterVec.With.Inc", func() { cv.With(int(DecisionDeny), int(ModeTunnel)).Inc() }},
		{"HistogramVec.WithName.Observe", func() { hv.WithName("b", int(ModeBump)).Observe(0.3) }},
		{"HistogramVec.WithName.Observe other", func() { hv.WithName("unknown", 0).Observe(0.3) }},
		{"Set.Record", func() { s.Record(benchRequest) }},
		{"Set.Record unknown names", func() {
			s.Record(Request{Mode: ModeDirect, Decision: DecisionDeny, Method: "PROPFIND", Status: 403, Client: "x", Policy: "y", Rule: "z"})
		}},
		{"Set.RequestStarted/Done", func() { s.RequestStarted(ModeDirect); s.RequestDone(ModeDirect) }},
		{"Set.TunnelOpened/Closed", func() { s.TunnelOpened(ModeBump); s.TunnelClosed(ModeBump) }},
		{"Set.UpstreamConn", func() { s.UpstreamConn(false) }},
		{"Set.UpstreamError", func() { s.UpstreamError("connect_failed") }},
		{"Set.TLSHandshakeFailure", func() { s.TLSHandshakeFailure(SideUpstream) }},
		{"Set.ReloadFailed", func() { s.ReloadFailed() }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}

// TestConcurrent records from many goroutines while others scrape and
// reload; run with -race. Reloads keep every name, so no count is lost.
func TestConcurrent(t *testing.T) {
	s := New(Options{})
	p := Policies{Hash: "h", Clients: []string{"a", "b", "c"}, Policies: []string{"p", "q"}, Rules: []string{"p#0", "q#0"}}
	s.Loaded(p, time.Unix(1, 0))
	const workers, perWorker = 8, 2000
	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		scrapes  atomic.Int64
		recorded atomic.Int64
	)
	for w := range workers {
		wg.Go(func() {
			// Record until there were some scrapes and reloads too.
			for i := 0; i < perWorker || scrapes.Load() < 20; i++ {
				recorded.Add(1)
				m := Mode((w + i) % int(numModes))
				s.RequestStarted(m)
				s.Record(Request{
					Mode: m, Decision: Decision(i % int(numDecisions)), Method: methods[i%len(methods)],
					Status: 100 * (i % 7), Client: p.Clients[i%3], Policy: []string{"p", "q", "gone"}[i%3],
					Rule: p.Rules[i%2], Duration: time.Duration(i) * time.Millisecond, BytesIn: 1, BytesOut: 2,
				})
				s.UpstreamConn(i%2 == 0)
				s.RequestDone(m)
			}
		})
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			q := p
			q.Hash = fmt.Sprint("h", i)
			// Same names, other order: every series survives.
			q.Clients = []string{"c", "b", "a"}
			s.Reloaded(q, time.Unix(int64(i), 0))
		}
	})
	for range 2 {
		bg.Go(func() {
			for !stop.Load() {
				var b []byte
				b = s.reg.AppendText(b)
				if _, err := parseText(string(b)); err != nil {
					t.Errorf("scrape during recording: %v", err)
					return
				}
				scrapes.Add(1)
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	bg.Wait()

	e := parseExposition(t, scrape(t, s.Handler()))
	total := float64(recorded.Load())
	for _, name := range []string{
		"exfilguard_requests_total", "exfilguard_requests_status_total", "exfilguard_requests_method_total",
		"exfilguard_client_requests_total", "exfilguard_client_request_duration_seconds_count",
		"exfilguard_policy_requests_total", "exfilguard_rule_hits_total",
	} {
		if got := e.sum(name); got != total {
			t.Errorf("sum of %s = %v, want %v", name, got, total)
		}
	}
	var other float64
	for _, s := range e.family("exfilguard_policy_requests_total").samples {
		if v, _ := s.label("policy"); v == Other {
			other += s.value
		}
	}
	if want := math.Ceil(total / 3); other < want-float64(workers) || other > want+float64(workers) {
		t.Errorf("policy other = %v, want about a third of %v", other, total)
	}
	if got := e.sum("exfilguard_inflight_requests"); got != 0 {
		t.Errorf("in flight after all done = %v, want 0", got)
	}
	if got := e.sum("exfilguard_upstream_pool_reuse_total"); got != total {
		t.Errorf("pool reuse total = %v, want %v", got, total)
	}
	t.Logf("%d scrapes during %v recordings", scrapes.Load(), total)
}

func BenchmarkCounterInc(b *testing.B) {
	b.ReportAllocs()
	var c Counter
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterVecWith(b *testing.B) {
	b.ReportAllocs()
	cv := NewCounterVec("c_total", "c", Label{Name: "d", Values: decisionNames}, Label{Name: "mode", Values: modeNames})
	for b.Loop() {
		cv.With(int(DecisionDeny), int(ModeBump)).Inc()
	}
}

func BenchmarkCounterVecWithName(b *testing.B) {
	b.ReportAllocs()
	s := benchSet(b)
	for b.Loop() {
		s.clientRequests.WithName("client-17", int(DecisionAllow), int(ModeBump)).Inc()
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	b.ReportAllocs()
	hv := NewHistogramVec("h_seconds", "h", durationBuckets)
	h := hv.With()
	for b.Loop() {
		h.Observe(0.03)
	}
}

func BenchmarkHistogramVecWithNameObserve(b *testing.B) {
	b.ReportAllocs()
	s := benchSet(b)
	for b.Loop() {
		s.clientDuration.WithName("client-17", int(DecisionAllow), int(ModeBump)).Observe(0.03)
	}
}

// BenchmarkSetRecord is the whole per-request cost.
func BenchmarkSetRecord(b *testing.B) {
	b.ReportAllocs()
	s := benchSet(b)
	for b.Loop() {
		s.Record(benchRequest)
	}
}

func BenchmarkSetRecordParallel(b *testing.B) {
	b.ReportAllocs()
	s := benchSet(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record(benchRequest)
		}
	})
}

// BenchmarkScrape is the cost of one /metrics body after traffic touched
// every client and policy.
func BenchmarkScrape(b *testing.B) {
	b.ReportAllocs()
	s := benchSet(b)
	for i := range 50 {
		r := benchRequest
		r.Client, r.Policy = "client-"+strconv.Itoa(i), "policy-"+strconv.Itoa(i%20)
		s.Record(r)
	}
	for b.Loop() {
		if err := s.WriteText(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
