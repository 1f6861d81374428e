package loadtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mintHosts is how many distinct host names the hosts file maps for the
// leaf-minting storm: m0000.mint.test … m0999.mint.test.
const mintHosts = 1000

// bodySize is the size of the origins' answers.
const bodySize = 1024

// origins are the upstreams every test uses, all on 127.0.0.1: a plain
// HTTP server, an HTTPS server that negotiates h2, an HTTPS server that
// speaks HTTP/1.1 only, and a TCP echo server behind tunnels. Their
// certificate comes from a test CA that the proxy trusts through
// upstream_ca_file; it names h1.test, h2.test and *.mint.test.
type origins struct {
	plain, h2, h1 *httptest.Server
	echo          *echoServer
	caPEM         []byte
	// certFile and keyFile hold the origins' certificate and key, for
	// origins in other processes (TestMintStorm's attacker).
	certFile, keyFile string

	// sunk counts request body bytes read by /sink handlers.
	sunk atomic.Int64
	// stall is closed at cleanup; /stall handlers wait for it.
	stall chan struct{}
}

func newOrigins(tb testing.TB) *origins {
	tb.Helper()
	o := &origins{stall: make(chan struct{})}
	caPEM, cert := originCert(tb)
	o.caPEM = caPEM
	dir := tb.TempDir()
	o.certFile, o.keyFile = filepath.Join(dir, "origin.crt"), filepath.Join(dir, "origin.key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(o.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(o.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), bodySize)
	h := originHandler(body, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/sink":
			// Reads the whole body, however long, counting it as it
			// comes.
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Body.Read(buf)
				o.sunk.Add(int64(n))
				if err != nil {
					break
				}
			}
			io.WriteString(w, "sunk")
		case r.URL.Path == "/stall":
			// Never reads the body and never answers.
			select {
			case <-o.stall:
			case <-r.Context().Done():
			}
		}
	})
	o.plain = httptest.NewServer(h)
	o.h2 = httptest.NewUnstartedServer(h)
	o.h2.EnableHTTP2 = true
	o.h2.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	o.h2.StartTLS()
	o.h1 = httptest.NewUnstartedServer(h)
	o.h1.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	o.h1.StartTLS()
	o.echo = newEchoServer(tb)
	tb.Cleanup(func() {
		close(o.stall)
		o.plain.Close()
		o.h2.Close()
		o.h1.Close()
		o.echo.Close()
	})
	return o
}

// originHandler answers with body, or hands /sink and /stall to other
// when set.
func originHandler(body []byte, other http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if other != nil && (r.URL.Path == "/sink" || r.URL.Path == "/stall") {
			other(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

// originCert returns a new CA's certificate in PEM and a leaf it signed
// for the origins' names.
func originCert(tb testing.TB) ([]byte, tls.Certificate) {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "loadtest origin CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "origin.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		DNSNames:     []string{"h1.test", "h2.test", "*.mint.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func port(s *httptest.Server) string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// echoServer sends back every byte it receives, on every connection.
type echoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
	wg    sync.WaitGroup
}

func newEchoServer(tb testing.TB) *echoServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e := &echoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				io.Copy(c, c)
				c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
			}()
		}
	}()
	return e
}

func (e *echoServer) port() string {
	_, p, _ := net.SplitHostPort(e.ln.Addr().String())
	return p
}

func (e *echoServer) Close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// The policies of every test: 127.0.0.0/8 is client "load", which may
// tunnel to tunnel.test, have h1.test, h2.test and *.mint.test bumped,
// and send plain HTTP to 127.0.0.1 under /ok/**; everything else is
// denied with 470.
const (
	testClients = `
[[client]]
name = "load"
cidr = "127.0.0.0/8"
policies = ["load", "deny"]

[[client]]
name = "rest"
cidr = "0.0.0.0/0"
policies = ["deny"]
fallback = true
`
	testPolicies = `
[[policy]]
name = "load"

[[policy.rule]]
action = "ALLOW"
methods = ["CONNECT"]
url_pattern = "https://tunnel.test:*/**"
inspect_payload = false
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://127.0.0.1:*/ok/**"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://127.0.0.1:*/sink"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://127.0.0.1:*/stall"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "https://h1.test:*/ok/**"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "https://h2.test:*/ok/**"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "https://*.mint.test:*/ok/**"
allow_private_upstream = true

[[policy]]
name = "deny"

[[policy.rule]]
action = "DENY"
status = 470
reason = "Policy Blocked"
body = "Blocked by ExfilGuard\n"
`
)

// proxyOpts configure one run of the binary.
type proxyOpts struct {
	// settings are extra lines of the main settings file.
	settings string
	// nofile, when positive, is the open-file limit (soft and hard) the
	// binary runs under.
	nofile int
}

// proxyProc is a running exfilguard process.
type proxyProc struct {
	addr, metricsAddr string
	cmd               *exec.Cmd
	logs              *logSink
	roots             *x509.CertPool // trusts the proxy's root, for bumps
	rootFile          string
	o                 *origins
}

// startProxy writes a configuration for o and runs the binary on it.
func startProxy(tb testing.TB, o *origins, opts proxyOpts) *proxyProc {
	tb.Helper()
	dir := tb.TempDir()
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 tunnel.test h1.test h2.test\n")
	for i := range mintHosts {
		fmt.Fprintf(&hosts, "127.0.0.1 %s\n", mintHost(i))
	}
	files := map[string]string{
		"exfilguard.toml": `listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
ca_dir = "ca"
clients = "clients.toml"
policies = "policies.toml"
upstream_ca_file = "origin-ca.pem"
hosts_file = "hosts"
` + opts.settings + "\n",
		"clients.toml":  testClients,
		"policies.toml": testPolicies,
		"origin-ca.pem": string(o.caPEM),
		"hosts":         hosts.String(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	args := []string{"--config", filepath.Join(dir, "exfilguard.toml")}
	cmd := exec.Command(binary, args...)
	if opts.nofile > 0 {
		sh, err := exec.LookPath("sh")
		if err != nil {
			tb.Skip("no sh to lower the open-file limit with")
		}
		// Both the soft and the hard limit: a Go program raises its soft
		// limit to the hard one at startup. exec keeps the pid.
		script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, opts.nofile)
		cmd = exec.Command(sh, append([]string{"-c", script, binary}, args...)...)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p := &proxyProc{cmd: cmd, logs: &logSink{}, o: o}
	cmd.Stderr = &p.logs.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if f, ok := stdout.(*os.File); ok {
		growPipe(f)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		p.logs.consume(stdout)
	}()
	go func() {
		<-logsDone
		cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if out := p.logs.stderr.String(); strings.Contains(out, "WARNING: DATA RACE") {
			tb.Errorf("the race detector found a race in the proxy:\n%s", out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for p.addr == "" || p.metricsAddr == "" {
		select {
		case <-exited:
			tb.Fatalf("exfilguard exited before listening:\n%s%s", p.logs.String(), p.logs.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("exfilguard did not start listening:\n%s", p.logs.String())
		}
		p.addr = p.logs.address("proxy listener started")
		p.metricsAddr = p.logs.address("metrics endpoint started")
	}
	p.rootFile = filepath.Join(dir, "ca", "root.crt")
	p.roots = loadRoots(p.rootFile)
	if p.roots == nil {
		tb.Fatalf("no root in %s", p.rootFile)
	}
	return p
}

// loadRoots returns a pool holding the certificates of a PEM file, or
// nil when there are none.
func loadRoots(file string) *x509.CertPool {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil
	}
	return pool
}

func mintHost(i int) string { return fmt.Sprintf("m%04d.mint.test", i) }

// logSink reads the proxy's log. Decision records, one per request, are
// only counted (there may be millions); other lines are kept, up to a
// bound, for the tests to look for.
type logSink struct {
	decisions atomic.Int64
	mu        sync.Mutex
	lines     []string // guarded by mu
	dropped   int      // guarded by mu
	stderr    syncBuffer
}

// maxKeptLines bounds logSink.lines: a test that floods the log with
// warnings must not exhaust the test's memory.
const maxKeptLines = 20000

func (l *logSink) consume(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	decision := []byte(`"msg":"decision"`)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case bytes.Contains(line, decision):
			l.decisions.Add(1)
		case len(line) > 0:
			l.mu.Lock()
			if len(l.lines) < maxKeptLines {
				l.lines = append(l.lines, string(line))
			} else {
				l.dropped++
			}
			l.mu.Unlock()
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: skip to its end.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// String returns the kept lines.
func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

// count returns how many kept lines contain s.
func (l *logSink) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// address returns the address field of the first line with message msg.
func (l *logSink) address(msg string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		var rec struct{ Msg, Address string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Address
		}
	}
	return ""
}

// waitLog waits until n kept lines contain s.
func (l *logSink) waitLog(tb testing.TB, s string, n int, timeout time.Duration) {
	tb.Helper()
	for deadline := time.Now().Add(timeout); l.count(s) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %d log lines with %q; log:\n%s", timeout, n, s, tail(l.String(), 4000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// procStat is what the tests read of the proxy process from /proc.
type procStat struct {
	cpu time.Duration // user + system CPU time
	rss int64         // resident set size, bytes (VmRSS)
	hwm int64         // peak resident set size, bytes (VmHWM)
	fds int           // open file descriptors
	at  time.Time
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (see
// proxy/metrics/process_linux.go).
const userHZ = 100

// stat reads the proxy's /proc entries.
func (p *proxyProc) stat(tb testing.TB) procStat {
	tb.Helper()
	s, err := p.readStat()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (p *proxyProc) readStat() (procStat, error) {
	pid := p.cmd.Process.Pid
	s := procStat{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which ends at the last ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(fields[14-3], 10, 64)
	stime, _ := strconv.ParseInt(fields[15-3], 10, 64)
	s.cpu = time.Duration(utime+stime) * time.Second / userHZ
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.hwm = kb << 10
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	return s, nil
}

// metrics returns the proxy's /metrics text.
func (p *proxyProc) metrics(tb testing.TB) string {
	tb.Helper()
	text, err := p.readMetrics()
	if err != nil {
		tb.Fatal(err)
	}
	return text
}

func (p *proxyProc) readMetrics() (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return "", fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		return "", fmt.Errorf("GET /metrics: %w", err)
	}
	return string(b), nil
}

// metric returns the value of one series (its name with labels, exactly
// as exposed) from the proxy's /metrics, or -1 when absent.
func (p *proxyProc) metric(tb testing.TB, series string) float64 {
	tb.Helper()
	return metricValue(p.metrics(tb), series)
}

func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// goroutines returns the proxy's go_goroutines.
func (p *proxyProc) goroutines(tb testing.TB) int {
	tb.Helper()
	return int(p.metric(tb, "go_goroutines"))
}

// settle waits until ok holds for the proxy's state, polling; it returns
// whether it did within timeout.
func settle(timeout time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// dialFrom opens a connection to addr from the loopback address
// 127.0.0.<from> (0 means the kernel's choice).
func dialFrom(addr string, from byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if from != 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}
	}
	return d.Dial("tcp", addr)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
