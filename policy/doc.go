// Package policy is ExfilGuard's decision engine. Compile turns validated
// configuration (package conf) into an immutable Ruleset; a reload
// compiles a new one and swaps it whole, so readers never lock.
//
// A decision resolves the client by its source address with a
// longest-prefix trie (Trie), then walks the client's policies and their
// rules in order; the first rule that matches decides, and nothing
// matching is a default deny (SPEC §4). Decide judges an ordinary request
// by method, scheme, host, port and canonical path; DecideConnect judges a
// CONNECT by authority alone and chooses tunnel, bump or deny. Neither
// allocates.
//
// URL patterns are compiled to matchers without regular expressions:
// hosts by whole labels ("*" one label, "**" one or more) or as IP
// addresses, paths segment by segment ("*" within a segment, "**" one or
// more whole segments). CanonicalPath produces the path rules are matched
// against and rejects request targets that origins could read in more
// than one way.
//
// Explain and ExplainConnect report how a decision was reached, for
// `exfilguard explain`; RunTests runs the policies files' [[test]] tables
// (SPEC §9).
package policy
