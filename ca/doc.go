// Package ca is ExfilGuard's certificate authority: it opens or creates
// the CA material in ca_dir and mints the leaf certificates a bumped
// tunnel presents to its client (SPEC §7).
//
// ca_dir holds four PEM files: root.crt, root.key, intermediate.crt and
// intermediate.key. Open generates all four (ECDSA P-256, root valid 10
// years, intermediate 1 year) when none exists, loads them otherwise, and
// refuses partial material, key files readable by group or other, an
// intermediate that does not chain to root.crt and a key that does not
// match its certificate. root.key is optional: an intermediate signed by
// an external CA works without it. When the intermediate has less than 30
// days left and root.key is present, Open mints a new intermediate.
//
// Authority.Leaf returns a certificate for one host, signed by the
// intermediate; the chain it serves is the leaf and the intermediate only,
// never the root. Leaves are cached in a bounded in-memory LRU, then
// optionally in a directory (cert_cache_dir) so a restart reuses them, and
// minted again once less than 10% of their lifetime remains. Concurrent
// first requests for one host mint once.
//
// The package imports nothing from the rest of ExfilGuard.
package ca
