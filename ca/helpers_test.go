package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is an adjustable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// Whole seconds: certificates store times to the second.
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := new(logBuffer)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// openTest opens an Authority on a fresh CA directory.
func openTest(tb testing.TB, opts Options) *Authority {
	tb.Helper()
	a, err := Open(filepath.Join(tb.TempDir(), "ca"), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return a
}

// generated creates a CA directory and returns it.
func generated(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "ca")
	if _, err := Open(dir, Options{}); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return dir
}

// readFiles returns the content of the four CA files that exist in dir.
func readFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	files := make(map[string][]byte)
	for _, name := range []string{rootCertFile, rootKeyFile, interCertFile, interKeyFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			files[name] = data
		}
	}
	return files
}

// writeFiles writes files into a new directory with the modes Open uses.
func writeFiles(tb testing.TB, files map[string][]byte) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range files {
		mode := certMode
		if filepath.Ext(name) == ".key" {
			mode = keyMode
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// craftIntermediate replaces dir's intermediate with one signed by dir's
// root key and valid from notBefore to notAfter.
func craftIntermediate(tb testing.TB, dir string, notBefore, notAfter time.Time) *x509.Certificate {
	tb.Helper()
	root, err := readCertFile(filepath.Join(dir, rootCertFile))
	if err != nil {
		tb.Fatal(err)
	}
	rootKey, err := readKeyFile(filepath.Join(dir, rootKeyFile))
	if err != nil {
		tb.Fatal(err)
	}
	key, err := newKey()
	if err != nil {
		tb.Fatal(err)
	}
	tmpl, err := intermediateTemplate(key.Public(), root, nil, notBefore)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	m := &material{root: root, rootKey: rootKey, inter: inter, interKey: key}
	if err := m.writeIntermediate(dir); err != nil {
		tb.Fatal(err)
	}
	return inter
}

// verifyLeaf checks cert the way a TLS client trusting only the root
// would, taking the intermediate from the served chain.
func verifyLeaf(tb testing.TB, a *Authority, cert *tls.Certificate, host string, now time.Time) {
	tb.Helper()
	if len(cert.Certificate) != 2 {
		tb.Fatalf("chain has %d certificates, want 2 (leaf, intermediate)", len(cert.Certificate))
	}
	if cert.Leaf == nil {
		tb.Fatal("tls.Certificate.Leaf is nil")
	}
	if !bytes.Equal(cert.Leaf.Raw, cert.Certificate[0]) {
		tb.Fatal("Leaf is not Certificate[0]")
	}
	inters := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			tb.Fatal(err)
		}
		inters.AddCert(c)
	}
	chains, err := cert.Leaf.Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         a.RootPool(),
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		tb.Fatalf("Verify(%s): %v", host, err)
	}
	if len(chains) != 1 || len(chains[0]) != 3 || !chains[0][2].Equal(a.Root()) {
		tb.Fatalf("Verify(%s) built %v, want one chain leaf → intermediate → root", host, chains)
	}
}
