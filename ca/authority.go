package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero Options.
const (
	defaultLeafTTL   = 24 * time.Hour // reference §1.1: leaf_ttl 86400 s
	defaultCacheSize = 512            // reference §8.2: leaf cert memory cache
)

// Options configure Open. The zero value is usable.
type Options struct {
	// LeafTTL is how long a minted leaf is valid (leaf_ttl). Zero means
	// 24 hours.
	LeafTTL time.Duration
	// CacheSize is how many leaves the in-memory LRU holds. Zero or
	// negative means 512.
	CacheSize int
	// CacheDir is the on-disk leaf cache (cert_cache_dir), created 0700
	// when missing. Empty means memory only.
	CacheDir string
	// Logger receives the lines about generated, loaded and renewed
	// material and discarded cache entries. Nil means no logging.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Authority mints leaf certificates with the intermediate loaded from
// ca_dir. Its methods are safe for concurrent use.
type Authority struct {
	dir      string
	root     *x509.Certificate
	roots    *x509.CertPool // holds root only; never handed out (see RootPool)
	inter    *x509.Certificate
	interKey crypto.Signer
	// interID names the intermediate in disk cache file names, so a new
	// intermediate makes every old entry a miss.
	interID [sha256.Size]byte

	ttl      time.Duration
	cacheDir string // empty: no disk cache
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	cache    lru              // guarded by mu
	inflight map[string]*call // guarded by mu; the mints under way, by name

	minted atomic.Uint64 // leaves minted (not found in any cache)
	hits   atomic.Uint64 // Leaf calls answered without minting

	// Test hooks, nil outside tests. testHookMint runs in the minting
	// call just before it mints; testHookWait runs when a call joins a
	// mint already under way.
	testHookMint func()
	testHookWait func()
}

// Open loads the CA material in dir, generating it when dir is missing or
// holds none of root.crt, root.key, intermediate.crt and intermediate.key,
// and renewing the intermediate when it has less than 30 days left and
// root.key is present. It refuses partial material, key files readable
// by group or other, an intermediate that does not chain to root.crt, a
// key that does not match its certificate, an expired root, and an
// expired intermediate that cannot be renewed.
func Open(dir string, opts Options) (*Authority, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := statLayout(dir)
	if err != nil {
		return nil, fmt.Errorf("open CA material: %w", err)
	}
	var m *material
	switch {
	case l.none():
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("create CA directory: %w", err)
		}
		removeTemps(dir)
		if m, err = generate(dir, now()); err != nil {
			return nil, fmt.Errorf("generate CA material in %s: %w", dir, err)
		}
		log.Info("generated new certificate authority material",
			slog.String("ca_dir", dir),
			slog.String("root_cert", filepath.Join(dir, rootCertFile)),
			slog.Time("intermediate_not_after", m.inter.NotAfter))
	case !l.complete():
		return nil, fmt.Errorf("open CA material: %w", incompleteError(dir, l))
	default:
		if m, err = loadMaterial(dir, l); err != nil {
			return nil, fmt.Errorf("open CA material: %w", err)
		}
		removeTemps(dir)
		v, err := assess(dir, m, now())
		if err != nil {
			return nil, fmt.Errorf("open CA material: %w", err)
		}
		for _, w := range v.warn {
			log.Warn("certificate authority needs attention", slog.String("problem", w))
		}
		if v.renew {
			old := m.inter
			if err := m.newIntermediate(now(), old.RawSubject); err != nil {
				return nil, fmt.Errorf("renew intermediate in %s: %w", dir, err)
			}
			if err := m.writeIntermediate(dir); err != nil {
				return nil, fmt.Errorf("renew intermediate in %s: %w", dir, err)
			}
			log.Info("renewed intermediate certificate",
				slog.String("ca_dir", dir),
				slog.Time("old_not_after", old.NotAfter),
				slog.Time("new_not_after", m.inter.NotAfter))
		}
		log.Info("loaded existing certificate authority material",
			slog.String("ca_dir", dir),
			slog.Bool("root_key_present", m.rootKey != nil),
			slog.Time("intermediate_not_after", m.inter.NotAfter))
	}

	a := &Authority{
		dir:      dir,
		root:     m.root,
		roots:    x509.NewCertPool(),
		inter:    m.inter,
		interKey: m.interKey,
		interID:  sha256.Sum256(m.inter.Raw),
		ttl:      opts.LeafTTL,
		cacheDir: opts.CacheDir,
		log:      log,
		now:      now,
		inflight: make(map[string]*call),
	}
	// m.rootKey is dropped here: only renewal needs it, and a key not
	// held in memory cannot leak from it.
	a.roots.AddCert(m.root)
	if a.ttl <= 0 {
		a.ttl = defaultLeafTTL
	}
	size := opts.CacheSize
	if size <= 0 {
		size = defaultCacheSize
	}
	a.cache.init(size)
	if a.cacheDir != "" {
		if err := os.MkdirAll(a.cacheDir, dirMode); err != nil {
			return nil, fmt.Errorf("create leaf cache directory: %w", err)
		}
		a.sweep()
	}
	return a, nil
}

// Check validates the CA material in dir the way Open would, without
// writing anything: a missing directory or one holding none of the four
// files passes (Open would generate), as does an intermediate Open would
// renew. It is for `exfilguard check`.
func Check(dir string) error {
	l, err := statLayout(dir)
	if err != nil {
		return fmt.Errorf("check CA material: %w", err)
	}
	if l.none() {
		return nil
	}
	if !l.complete() {
		return fmt.Errorf("check CA material: %w", incompleteError(dir, l))
	}
	m, err := loadMaterial(dir, l)
	if err != nil {
		return fmt.Errorf("check CA material: %w", err)
	}
	if _, err := assess(dir, m, time.Now()); err != nil {
		return fmt.Errorf("check CA material: %w", err)
	}
	return nil
}

// Root returns the root certificate clients must trust. The caller must
// not modify it.
func (a *Authority) Root() *x509.Certificate { return a.root }

// RootFile returns the path of root.crt, the file to install in clients'
// trust stores.
func (a *Authority) RootFile() string { return filepath.Join(a.dir, rootCertFile) }

// RootPool returns a new pool holding only the root, for verifying leaves
// (tests, health checks).
func (a *Authority) RootPool() *x509.CertPool { return a.roots.Clone() }

// Intermediate returns the certificate that signs leaves. The caller must
// not modify it.
func (a *Authority) Intermediate() *x509.Certificate { return a.inter }

// Minted returns how many leaves were minted because neither cache held
// a usable one.
func (a *Authority) Minted() uint64 { return a.minted.Load() }

// CacheHits returns how many Leaf calls were answered without minting:
// from memory, from the disk cache, or by sharing a mint already under
// way for the same host.
func (a *Authority) CacheHits() uint64 { return a.hits.Load() }
