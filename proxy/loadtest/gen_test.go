package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// defaultMix is the mixed workload: class=weight, the weights sharing out
// the client connections.
const defaultMix = "plain=4,tunnel=2,bump-h1=2,bump-h2=2,denied=1,churn=1"

// opTimeout bounds one operation: a request and its response, or one
// tunnel round trip. An operation that takes longer is a failure.
const opTimeout = 10 * time.Second

// Operations on one connection before the client opens a new one, so
// that handshakes and connection setup stay part of every workload.
const (
	opsPerKeepalive = 1000
	opsPerTunnel    = 200
	opsPerBump      = 500
)

// tunnelChunk is what a tunnel client writes and reads back per round trip.
const tunnelChunk = 16 << 10

// classes are the workloads by name.
var classes = map[string]func(*gen, *worker){
	"plain":   (*gen).plain,
	"tunnel":  (*gen).tunnel,
	"bump-h1": (*gen).bumpH1,
	"bump-h2": (*gen).bumpH2,
	"denied":  (*gen).denied,
	"churn":   (*gen).churn,
}

// classOrder is the order of the report.
var classOrder = []string{"plain", "tunnel", "bump-h1", "bump-h2", "denied", "churn"}

// gen is the load generator: a fixed number of client connections, each
// run by one worker goroutine doing one kind of operation in a closed
// loop until the run ends.
type gen struct {
	p       *proxyProc
	workers []*worker
	ctx     context.Context

	plainReq, deniedReq, churnReq []byte
}

// worker is one client. Its counters are guarded by mu, which only the
// worker and a reader of the totals take.
type worker struct {
	class string
	from  byte // source address 127.0.0.<from>
	mu    sync.Mutex
	h     hist
	errs  int64
	bytes int64
	// firstErr is the first failure, for the report.
	firstErr string
}

func (w *worker) ok(d time.Duration, n int64) {
	w.mu.Lock()
	w.h.record(d)
	w.bytes += n
	w.mu.Unlock()
}

func (w *worker) fail(op string, err error) {
	w.mu.Lock()
	w.errs++
	if w.firstErr == "" {
		w.firstErr = op + ": " + err.Error()
	}
	w.mu.Unlock()
}

// parseMix parses "class=weight,…".
func parseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			w = "1"
		}
		if classes[name] == nil {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", name, strings.Join(classOrder, ", "))
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("workload %s: weight %q is not a positive integer", name, w)
		}
		mix[name] = n
	}
	return mix, nil
}

// newGen shares conns client connections among the workloads of mix by
// weight, each workload getting at least one.
func newGen(p *proxyProc, conns int, mix map[string]int) *gen {
	g := &gen{p: p}
	plain := "127.0.0.1:" + port(p.o.plain)
	g.plainReq = []byte("GET http://" + plain + "/ok/plain HTTP/1.1\r\nHost: " + plain + "\r\n\r\n")
	g.deniedReq = []byte("GET http://" + plain + "/denied HTTP/1.1\r\nHost: " + plain + "\r\n\r\n")
	g.churnReq = []byte("GET http://" + plain + "/ok/churn HTTP/1.1\r\nHost: " + plain + "\r\nConnection: close\r\n\r\n")
	total := 0
	for _, w := range mix {
		total += w
	}
	for _, name := range classOrder {
		w, ok := mix[name]
		if !ok {
			continue
		}
		for range max(1, conns*w/total) {
			// Workers take turns over 16 source addresses, so that
			// connection churn does not run one address out of ports.
			g.workers = append(g.workers, &worker{class: name, from: byte(1 + len(g.workers)%16)})
		}
	}
	return g
}

// run drives the load until ctx ends and waits for every worker to
// finish its operation in progress.
func (g *gen) run(ctx context.Context) {
	g.ctx = ctx
	var wg sync.WaitGroup
	for _, w := range g.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				classes[w.class](g, w)
			}
		}()
	}
	wg.Wait()
}

// done reports whether the run is over; operations in progress finish.
func (g *gen) done() bool { return g.ctx.Err() != nil }

// dial opens a client connection to the proxy, counting a failure.
func (g *gen) dial(w *worker) net.Conn {
	c, err := dialFrom(g.p.addr, w.from, opTimeout)
	if err != nil {
		w.fail("dial", err)
		// Do not spin on a proxy that refuses.
		time.Sleep(100 * time.Millisecond)
		return nil
	}
	return c
}

// readResponse reads one response and its body and checks the status
// and body length; it returns the body length.
func readResponse(br *bufio.Reader, method string, status, size int) (int64, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != status {
		return n, fmt.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if size >= 0 && n != int64(size) {
		return n, fmt.Errorf("body of %d bytes, want %d", n, size)
	}
	return n, nil
}

// plain sends keep-alive GETs through the proxy to the plain origin.
func (g *gen) plain(w *worker) {
	c := g.dial(w)
	if c == nil {
		return
	}
	defer c.Close()
	g.keepalive(w, c, bufio.NewReader(c), "plain")
}

// keepalive sends GETs for the plain origin on c until the run ends or
// opsPerKeepalive were sent.
func (g *gen) keepalive(w *worker, c net.Conn, br *bufio.Reader, op string) {
	for range opsPerKeepalive {
		if g.done() {
			return
		}
		start := time.Now()
		c.SetDeadline(start.Add(opTimeout))
		if _, err := c.Write(g.plainReq); err != nil {
			w.fail(op, err)
			return
		}
		n, err := readResponse(br, "GET", 200, bodySize)
		if err != nil {
			w.fail(op, err)
			return
		}
		w.ok(time.Since(start), n)
	}
}

// oneShot sends req on a new connection and expects status and a body
// of size bytes (-1: any).
func (g *gen) oneShot(w *worker, req []byte, status, size int, op string) {
	start := time.Now()
	c := g.dial(w)
	if c == nil {
		return
	}
	defer c.Close()
	c.SetDeadline(start.Add(opTimeout))
	if _, err := c.Write(req); err != nil {
		w.fail(op, err)
		return
	}
	n, err := readResponse(bufio.NewReader(c), "GET", status, size)
	if err != nil {
		w.fail(op, err)
		return
	}
	w.ok(time.Since(start), n)
}

// denied sends a request the policy denies: 470, and the proxy closes.
func (g *gen) denied(w *worker) {
	g.oneShot(w, g.deniedReq, 470, -1, "denied")
}

// churn sends one allowed request per new connection.
func (g *gen) churn(w *worker) {
	g.oneShot(w, g.churnReq, 200, bodySize, "churn")
}

// connect opens a CONNECT to authority and returns the connection once
// the proxy answered 200.
func (g *gen) connect(w *worker, authority, op string) net.Conn {
	c := g.dial(w)
	if c == nil {
		return nil
	}
	c.SetDeadline(time.Now().Add(opTimeout))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	switch {
	case err != nil:
	case resp.StatusCode != 200:
		err = fmt.Errorf("CONNECT status %d", resp.StatusCode)
	case br.Buffered() != 0:
		err = errors.New("bytes after the CONNECT response")
	}
	if err != nil {
		c.Close()
		w.fail(op, err)
		return nil
	}
	return c
}

// tunnel opens a pass-through tunnel to the echo server and streams data
// through it: each operation writes 16 KiB and reads it back.
func (g *gen) tunnel(w *worker) {
	c := g.connect(w, "tunnel.test:"+g.p.o.echo.port(), "tunnel")
	if c == nil {
		return
	}
	defer c.Close()
	out := make([]byte, tunnelChunk)
	for i := range out {
		out[i] = byte(i * 7)
	}
	in := make([]byte, tunnelChunk)
	for i := range opsPerTunnel {
		if g.done() {
			return
		}
		out[0] = byte(i)
		start := time.Now()
		c.SetDeadline(start.Add(opTimeout))
		// The echo answers while the write is still going: the socket
		// buffers hold a whole chunk each way, so writing first is safe.
		if _, err := c.Write(out); err != nil {
			w.fail("tunnel", err)
			return
		}
		if _, err := io.ReadFull(c, in); err != nil {
			w.fail("tunnel", err)
			return
		}
		if !bytes.Equal(in, out) {
			w.fail("tunnel", errors.New("echoed bytes differ"))
			return
		}
		w.ok(time.Since(start), 2*tunnelChunk)
	}
}

// bump opens a bumped tunnel to host:port and returns the client TLS
// connection after the handshake, having negotiated proto.
func (g *gen) bump(w *worker, host, port, proto, op string) *tls.Conn {
	c := g.connect(w, host+":"+port, op)
	if c == nil {
		return nil
	}
	tc := tls.Client(c, &tls.Config{RootCAs: g.p.roots, ServerName: host, NextProtos: []string{proto}})
	err := tc.Handshake()
	if err == nil && tc.ConnectionState().NegotiatedProtocol != proto {
		err = fmt.Errorf("negotiated %q, want %q", tc.ConnectionState().NegotiatedProtocol, proto)
	}
	if err != nil {
		c.Close()
		w.fail(op, err)
		return nil
	}
	// The CONNECT's deadline covered the handshake; each operation sets
	// its own from now on (HTTP/2 through its request's context).
	tc.SetDeadline(time.Time{})
	return tc
}

// bumpH1 sends keep-alive GETs inside a bumped HTTP/1.1 session to the
// origin that speaks HTTP/1.1 only.
func (g *gen) bumpH1(w *worker) {
	authority := "h1.test:" + port(g.p.o.h1)
	tc := g.bump(w, "h1.test", port(g.p.o.h1), "http/1.1", "bump-h1")
	if tc == nil {
		return
	}
	defer tc.Close()
	req := []byte("GET /ok/bump HTTP/1.1\r\nHost: " + authority + "\r\n\r\n")
	br := bufio.NewReader(tc)
	for range opsPerBump {
		if g.done() {
			return
		}
		start := time.Now()
		tc.SetDeadline(start.Add(opTimeout))
		if _, err := tc.Write(req); err != nil {
			w.fail("bump-h1", err)
			return
		}
		n, err := readResponse(br, "GET", 200, bodySize)
		if err != nil {
			w.fail("bump-h1", err)
			return
		}
		w.ok(time.Since(start), n)
	}
}

// bumpH2 sends GETs, one stream after another, inside a bumped HTTP/2
// session to the origin that negotiates h2.
func (g *gen) bumpH2(w *worker) {
	tc := g.bump(w, "h2.test", port(g.p.o.h2), "h2", "bump-h2")
	if tc == nil {
		return
	}
	defer tc.Close()
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		w.fail("bump-h2", err)
		return
	}
	defer cc.Close()
	url := "https://h2.test:" + port(g.p.o.h2) + "/ok/h2"
	for range opsPerBump {
		if g.done() {
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			cancel()
			w.fail("bump-h2", err)
			return
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		switch {
		case err != nil:
		case resp.StatusCode != 200:
			err = fmt.Errorf("status %d", resp.StatusCode)
		case n != bodySize:
			err = fmt.Errorf("body of %d bytes", n)
		}
		if err != nil {
			w.fail("bump-h2", err)
			return
		}
		w.ok(time.Since(start), n)
	}
}

// totals are a class's merged figures.
type totals struct {
	conns     int
	h         hist
	errs      int64
	bytes     int64
	firstErrs []string
}

// totals merges the workers' figures by class.
func (g *gen) totals() map[string]*totals {
	out := map[string]*totals{}
	for _, w := range g.workers {
		t := out[w.class]
		if t == nil {
			t = &totals{}
			out[w.class] = t
		}
		w.mu.Lock()
		t.conns++
		t.h.merge(&w.h)
		t.errs += w.errs
		t.bytes += w.bytes
		if w.firstErr != "" && len(t.firstErrs) < 3 {
			t.firstErrs = append(t.firstErrs, w.firstErr)
		}
		w.mu.Unlock()
	}
	return out
}

// report formats the figures of a run that lasted d.
func report(tot map[string]*totals, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %5s %9s %9s %8s %8s %8s %8s %6s %8s\n",
		"class", "conns", "ops", "ops/s", "p50", "p99", "p999", "max", "errors", "MB/s")
	var all totals
	for _, name := range classOrder {
		t := tot[name]
		if t == nil {
			continue
		}
		all.conns += t.conns
		all.h.merge(&t.h)
		all.errs += t.errs
		all.bytes += t.bytes
		writeRow(&b, name, t, d)
	}
	writeRow(&b, "total", &all, d)
	for _, name := range classOrder {
		if t := tot[name]; t != nil {
			for _, e := range t.firstErrs {
				fmt.Fprintf(&b, "  %s error: %s\n", name, e)
			}
		}
	}
	return b.String()
}

func writeRow(b *strings.Builder, name string, t *totals, d time.Duration) {
	fmt.Fprintf(b, "%-8s %5d %9d %9.0f %8s %8s %8s %8s %6d %8.1f\n",
		name, t.conns, t.h.n, float64(t.h.n)/d.Seconds(),
		fmtDur(t.h.quantile(0.50)), fmtDur(t.h.quantile(0.99)), fmtDur(t.h.quantile(0.999)), fmtDur(t.h.max),
		t.errs, float64(t.bytes)/d.Seconds()/1e6)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// hist is a latency histogram in microseconds with log-linear buckets:
// exact below 128 µs, then 64 buckets per power of two (at most 1.6%
// error), up to about 2^40 µs. It is fixed-size so that a days-long run
// costs no more memory than a short one.
type hist struct {
	counts [128 + 34*64]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(us uint64) int {
	if us < 128 {
		return int(us)
	}
	e := bits.Len64(us) - 7 // us>>e is in [64, 128)
	i := 128 + (e-1)*64 + int(us>>e) - 64
	return min(i, 128+34*64-1)
}

// bucketValue is the middle of bucket i, in microseconds.
func bucketValue(i int) uint64 {
	if i < 128 {
		return uint64(i)
	}
	e := (i-128)/64 + 1
	m := uint64((i-128)%64 + 64)
	return m<<e + 1<<(e-1)
}

func (h *hist) record(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)/time.Microsecond))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q ≤ 1), or 0 for no samples.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketValue(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}

// sortedClasses returns the classes of mix in report order.
func sortedClasses(mix map[string]int) []string {
	var out []string
	for _, c := range classOrder {
		if _, ok := mix[c]; ok {
			out = append(out, c)
		}
	}
	return out
}
