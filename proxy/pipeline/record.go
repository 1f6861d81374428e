package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// record writes the exchange's one decision record (SPEC §8, reference
// §10.2). Values from the request are logged as data, never as format
// strings; the query is left out unless log_queries is set.
func (ex *exchange) record() {
	if ex.h.Log == nil {
		return
	}
	r := ex.r
	path := r.RequestURI
	if !ex.h.LogQueries {
		path, _, _ = strings.Cut(path, "?")
	}
	mode := "direct"
	if ex.info.FrontEnd == BumpH1 || ex.info.FrontEnd == BumpH2 {
		mode = "bump"
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("session_id", ex.info.SessionID),
		slog.String("mode", mode),
		slog.String("client_ip", ex.info.Peer.Addr().String()),
		slog.Int("client_port", int(ex.info.Peer.Port())),
		slog.String("method", r.Method),
		slog.String("scheme", ex.preq.Scheme),
		slog.String("host", ex.preq.Host),
		slog.Int("port", int(ex.preq.Port)),
		slog.String("path", path),
	)
	if ex.decided {
		d := &ex.decision
		attrs = append(attrs, slog.String("client", d.Client))
		if d.Rule != "" {
			attrs = append(attrs, slog.String("policy", d.Policy), slog.String("rule", d.Rule))
		}
	}
	attrs = append(attrs,
		slog.String("decision", ex.action),
		slog.String("reason", ex.reason),
		slog.Int("status", ex.status),
		slog.Int64("bytes_in", ex.bodyIn.n),
		slog.Int64("bytes_out", ex.bytesOut),
		slog.Int64("elapsed_ms", time.Since(ex.start).Milliseconds()),
	)
	if ex.upstream != "" {
		attrs = append(attrs, slog.String("upstream_addr", ex.upstream), slog.Bool("upstream_reused", ex.reused))
	}
	if ex.detail != "" {
		attrs = append(attrs, slog.String("error", ex.detail))
	}
	ex.h.Log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelInfo, "decision", attrs...)
}
