package loadtest

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// probes are well-behaved clients measuring the proxy while a test abuses
// it: each sends keep-alive GETs through the proxy to the plain origin,
// pausing think between requests, and records their latency.
type probes struct {
	p     *proxyProc
	req   []byte
	think time.Duration
	from  byte

	mu       sync.Mutex
	h        hist  // guarded by mu
	errs     int64 // guarded by mu
	firstErr string

	stop chan struct{}
	wg   sync.WaitGroup
}

// startProbes starts n probe clients from 127.0.0.<from>; they stop at
// the test's end.
func startProbes(t *testing.T, p *proxyProc, n int, think time.Duration, from byte) *probes {
	t.Helper()
	g := newGen(p, 1, map[string]int{"plain": 1})
	pr := &probes{p: p, req: g.plainReq, think: think, from: from, stop: make(chan struct{})}
	for range n {
		pr.wg.Add(1)
		go pr.client()
	}
	t.Cleanup(pr.close)
	return pr
}

func (pr *probes) close() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	pr.wg.Wait()
}

func (pr *probes) fail(err error) {
	pr.mu.Lock()
	pr.errs++
	if pr.firstErr == "" {
		pr.firstErr = err.Error()
	}
	pr.mu.Unlock()
}

func (pr *probes) client() {
	defer pr.wg.Done()
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-pr.stop:
			return
		case <-time.After(pr.think):
		}
		start := time.Now()
		if c == nil {
			var err error
			if c, err = dialFrom(pr.p.addr, pr.from, opTimeout); err != nil {
				pr.fail(err)
				c = nil
				continue
			}
			br = bufio.NewReader(c)
		}
		c.SetDeadline(start.Add(opTimeout))
		_, err := c.Write(pr.req)
		if err == nil {
			_, err = readResponse(br, "GET", 200, bodySize)
		}
		if err != nil {
			pr.fail(err)
			c.Close()
			c = nil
			continue
		}
		d := time.Since(start)
		pr.mu.Lock()
		pr.h.record(d)
		pr.mu.Unlock()
	}
}

// take returns the latencies and failures recorded since the last take.
func (pr *probes) take() (h hist, errs int64, firstErr string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	h, errs, firstErr = pr.h, pr.errs, pr.firstErr
	pr.h, pr.errs, pr.firstErr = hist{}, 0, ""
	return h, errs, firstErr
}

// phase lets the probes run for d and returns what they saw.
func (pr *probes) phase(d time.Duration) (hist, int64, string) {
	pr.take()
	time.Sleep(d)
	return pr.take()
}

func describe(h *hist) string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", h.n, fmtDur(h.quantile(0.5)), fmtDur(h.quantile(0.99)), fmtDur(h.max))
}
