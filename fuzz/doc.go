// Package fuzz holds the fuzz tests of ExfilGuard's parsers; go test runs their seed corpora.
package fuzz
