package ca

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cacheSetup is a CA directory and a leaf cache directory that several
// Authorities open in turn, as restarts would.
type cacheSetup struct {
	caDir, cacheDir string
	clock           *fakeClock
	ttl             time.Duration
}

func newCacheSetup(t *testing.T) *cacheSetup {
	t.Helper()
	root := t.TempDir()
	return &cacheSetup{
		caDir:    filepath.Join(root, "ca"),
		cacheDir: filepath.Join(root, "cache", "leaves"),
		clock:    newFakeClock(),
		ttl:      24 * time.Hour,
	}
}

func (s *cacheSetup) open(t *testing.T) (*Authority, *logBuffer) {
	t.Helper()
	log, logs := newLogger()
	a, err := Open(s.caDir, Options{CacheDir: s.cacheDir, LeafTTL: s.ttl, Now: s.clock.Now, Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a, logs
}

func leaf(t *testing.T, a *Authority, host string) []byte {
	t.Helper()
	c, err := a.Leaf(context.Background(), host)
	if err != nil {
		t.Fatalf("Leaf(%q): %v", host, err)
	}
	verifyLeaf(t, a, c, canonicalName(host), a.now())
	return c.Certificate[0]
}

func TestDiskCacheRestart(t *testing.T) {
	s := newCacheSetup(t)
	a, _ := s.open(t)
	der := leaf(t, a, "example.com")
	ipDER := leaf(t, a, "[2001:db8::1]")
	if a.Minted() != 2 {
		t.Fatalf("Minted() = %d, want 2", a.Minted())
	}
	fi, err := os.Stat(s.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %04o, want 0700", fi.Mode().Perm())
	}
	path := a.cachePath("example.com")
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatalf("no cache entry: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache entry mode %04o, want 0600", fi.Mode().Perm())
	}
	if name := filepath.Base(path); !strings.HasPrefix(name, "leaf-") || len(name) != len("leaf-")+64+len(".pem") {
		t.Errorf("entry name %q, want leaf-<64 hex>.pem", name)
	}
	ents, _ := os.ReadDir(s.cacheDir)
	if len(ents) != 2 {
		t.Errorf("cache dir holds %d files, want 2 (no temporaries)", len(ents))
	}

	b, _ := s.open(t)
	if got := leaf(t, b, "example.com"); !bytes.Equal(got, der) {
		t.Error("restart did not reuse the cached leaf")
	}
	if got := leaf(t, b, "[2001:db8::1]"); !bytes.Equal(got, ipDER) {
		t.Error("restart did not reuse the cached IP leaf")
	}
	if b.Minted() != 0 || b.CacheHits() != 2 {
		t.Errorf("after restart Minted() = %d, CacheHits() = %d; want 0, 2", b.Minted(), b.CacheHits())
	}
	// Then from memory.
	leaf(t, b, "example.com")
	if b.Minted() != 0 || b.CacheHits() != 3 {
		t.Errorf("Minted() = %d, CacheHits() = %d; want 0, 3", b.Minted(), b.CacheHits())
	}
}

func TestDiskCacheCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, a *Authority, path string)
	}{
		{"garbage", func(t *testing.T, a *Authority, path string) {
			write(t, path, []byte("\x00\x01garbage\xff"))
		}},
		{"empty", func(t *testing.T, a *Authority, path string) {
			write(t, path, nil)
		}},
		{"truncated", func(t *testing.T, a *Authority, path string) {
			data, _ := os.ReadFile(path)
			write(t, path, data[:len(data)/2])
		}},
		{"flipped byte in the leaf", func(t *testing.T, a *Authority, path string) {
			data, _ := os.ReadFile(path)
			data[100] ^= 0x01
			write(t, path, data)
		}},
		{"another host's entry", func(t *testing.T, a *Authority, path string) {
			leaf(t, a, "other.example.com")
			data, _ := os.ReadFile(a.cachePath("other.example.com"))
			write(t, path, data)
		}},
		{"another leaf's key", func(t *testing.T, a *Authority, path string) {
			leaf(t, a, "other.example.com")
			other, _ := os.ReadFile(a.cachePath("other.example.com"))
			data, _ := os.ReadFile(path)
			i := bytes.Index(data, []byte("-----BEGIN PRIVATE KEY"))
			j := bytes.Index(other, []byte("-----BEGIN PRIVATE KEY"))
			write(t, path, append(data[:i:i], other[j:]...))
		}},
		{"without the intermediate", func(t *testing.T, a *Authority, path string) {
			data, _ := os.ReadFile(path)
			i := bytes.Index(data, []byte("-----END CERTIFICATE-----\n")) + len("-----END CERTIFICATE-----\n")
			j := bytes.Index(data, []byte("-----BEGIN PRIVATE KEY"))
			write(t, path, append(data[:i:i], data[j:]...))
		}},
		{"17 certificates", func(t *testing.T, a *Authority, path string) {
			data, _ := os.ReadFile(path)
			cert := encodeCert(a.Intermediate().Raw)
			write(t, path, append(bytes.Repeat(cert, 17), data...))
		}},
		{"over 1 MiB", func(t *testing.T, a *Authority, path string) {
			data, _ := os.ReadFile(path)
			write(t, path, append(data, bytes.Repeat([]byte("\n"), maxEntrySize)...))
		}},
		{"a directory", func(t *testing.T, a *Authority, path string) {
			os.Remove(path)
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCacheSetup(t)
			a, _ := s.open(t)
			leaf(t, a, "example.com")

			// Corrupted while the next process runs: the read rejects it.
			b, logs := s.open(t)
			path := b.cachePath("example.com")
			tc.corrupt(t, b, path)
			minted := b.Minted()
			leaf(t, b, "example.com")
			if b.Minted() != minted+1 {
				t.Fatalf("Minted() = %d, want %d: the bad entry was served", b.Minted(), minted+1)
			}
			if tc.name != "a directory" {
				if !strings.Contains(logs.String(), "discarding invalid leaf cache entry") {
					t.Errorf("log = %q, want the discard line", logs.String())
				}
				// The entry was replaced by a good one.
				c, _ := s.open(t)
				leaf(t, c, "example.com")
				if c.Minted() != 0 {
					t.Error("replacement entry not reused after restart")
				}
			}
		})
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDiskCacheRenewal(t *testing.T) {
	s := newCacheSetup(t)
	a, _ := s.open(t)
	der := leaf(t, a, "example.com")
	c, _ := a.Leaf(context.Background(), "example.com")
	due := renewAt(c.Leaf)

	s.clock.Add(due.Add(-time.Minute).Sub(s.clock.Now()))
	b, _ := s.open(t)
	if got := leaf(t, b, "example.com"); !bytes.Equal(got, der) || b.Minted() != 0 {
		t.Fatal("entry with more than 10% of its lifetime left was not reused")
	}

	s.clock.Add(2 * time.Minute) // past 90% of the lifetime
	d, _ := s.open(t)
	got := leaf(t, d, "example.com")
	if bytes.Equal(got, der) || d.Minted() != 1 {
		t.Fatalf("entry past 90%% of its lifetime reused (minted %d)", d.Minted())
	}
	e, _ := s.open(t)
	if again := leaf(t, e, "example.com"); !bytes.Equal(again, got) || e.Minted() != 0 {
		t.Error("renewed entry not written back")
	}
}

func TestDiskCacheNewIntermediate(t *testing.T) {
	s := newCacheSetup(t)
	a, _ := s.open(t)
	leaf(t, a, "example.com")
	old := a.cachePath("example.com")
	// A renewed intermediate: old entries are misses and the sweep
	// deletes them.
	now := s.clock.Now()
	craftIntermediate(t, s.caDir, now.AddDate(0, 0, -355), now.AddDate(0, 0, 10))
	b, logs := s.open(t)
	if b.Intermediate().Equal(a.Intermediate()) {
		t.Fatal("intermediate not renewed")
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("sweep kept an entry of the old intermediate")
	}
	if !strings.Contains(logs.String(), "removed stale leaf cache entries") {
		t.Errorf("log = %q, want the sweep line", logs.String())
	}
	if b.cachePath("example.com") == old {
		t.Error("entry name does not depend on the intermediate")
	}
	leaf(t, b, "example.com")
	if b.Minted() != 1 {
		t.Errorf("Minted() = %d, want 1", b.Minted())
	}
}

func TestDiskCacheSweep(t *testing.T) {
	s := newCacheSetup(t)
	s.ttl = time.Hour
	a, _ := s.open(t)
	leaf(t, a, "expired.example.com")
	expired := a.cachePath("expired.example.com")
	s.clock.Add(2 * time.Hour)
	b, _ := s.open(t)
	leaf(t, b, "live.example.com")
	live := b.cachePath("live.example.com")

	files := map[string]bool{ // name → kept
		".leaf-abc.pem.tmp-123": false, // stale temporary
		".leaf-abc.pem.tmp-456": true,  // fresh: may be another writer's
		"leaf-garbage.pem":      false,
		"other.txt":             true, // not ours
	}
	for name := range files {
		write(t, filepath.Join(s.cacheDir, name), []byte("x"))
	}
	// The sweep judges temporaries' age by the injected clock.
	old, fresh := s.clock.Now().Add(-time.Hour), s.clock.Now()
	os.Chtimes(filepath.Join(s.cacheDir, ".leaf-abc.pem.tmp-123"), old, old)
	os.Chtimes(filepath.Join(s.cacheDir, ".leaf-abc.pem.tmp-456"), fresh, fresh)
	if err := os.Mkdir(filepath.Join(s.cacheDir, "v1"), 0o700); err != nil {
		t.Fatal(err)
	}
	files["v1"] = true

	s.open(t)
	for name, kept := range files {
		_, err := os.Stat(filepath.Join(s.cacheDir, name))
		if kept && err != nil {
			t.Errorf("sweep removed %s", name)
		}
		if !kept && err == nil {
			t.Errorf("sweep kept %s", name)
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("sweep removed a live entry")
	}
	if _, err := os.Stat(expired); err == nil {
		t.Error("sweep kept an expired entry")
	}
}

func BenchmarkDiskCacheRead(b *testing.B) {
	dir := b.TempDir()
	a, err := Open(filepath.Join(dir, "ca"), Options{CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Leaf(context.Background(), "bench.example.com"); err != nil {
		b.Fatal(err)
	}
	path := a.cachePath("bench.example.com")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.readEntry(path, "bench.example.com", now); err != nil {
			b.Fatal(err)
		}
	}
}
