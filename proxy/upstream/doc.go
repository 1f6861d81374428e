// Package upstream is the only way out: it resolves, vets and dials
// upstream addresses, and its Transport carries requests to upstream
// servers: HTTP/1.1 through one process-wide idle pool (transport.go), and
// HTTP/2 over one shared connection per origin when an HTTPS origin
// negotiates it (transport_h2.go).
//
// The flow is resolve once, vet every address, dial only vetted addresses
// (peers §4.1, DNS rebinding): Resolver.Resolve turns a host into
// addresses (hosts_file first, then DNS), Dialer.Vet drops the non-public
// ones unless the rule allows them (SPEC §6), and Dialer.DialAddrs connects
// to exactly those addresses, with a net.Dialer Control hook that checks
// the final address once more before connect(2). Classify is the one
// address table; ParseHost is the one strict host parser.
package upstream
