package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"exfilguard/proxy/metrics"
)

// record writes the exchange's one decision record (SPEC §8, reference
// §10.2). Values from the request are logged as data, never as format
// strings; the query is left out unless log_queries is set.
func (ex *exchange) record() {
	ex.count()
	if ex.h.Log == nil {
		return
	}
	r := ex.r
	path := r.RequestURI
	if !ex.h.LogQueries {
		path, _, _ = strings.Cut(path, "?")
	}
	mode := modeOf(ex.info.FrontEnd)
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
		slog.Int64("bytes_in", ex.bodyIn.n.Load()),
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

// RecordRejected writes the decision record of a request that a front end
// refused before it could become an http.Request: a malformed, oversized
// or timed-out head, or a request form the listener does not take. method
// is "" when the head could not be read; target is not logged, since a
// malformed target may hold anything.
func (h *Handler) RecordRejected(ctx context.Context, method string, status int, reason, detail string) {
	if h.Log == nil {
		return
	}
	info := FromContext(ctx)
	if info == nil {
		panic("pipeline: internal error: rejected request without ConnInfo")
	}
	if method == "" {
		method = "UNKNOWN"
	}
	if h.Metrics != nil {
		h.Metrics.Record(metrics.Request{Mode: metricsMode(info.FrontEnd), Decision: metrics.DecisionError, Method: method, Status: status})
	}
	h.Log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "decision",
		slog.String("session_id", info.SessionID),
		slog.String("mode", modeOf(info.FrontEnd)),
		slog.String("client_ip", info.Peer.Addr().String()),
		slog.Int("client_port", int(info.Peer.Port())),
		slog.String("method", method),
		slog.String("decision", "ERROR"),
		slog.String("reason", reason),
		slog.Int("status", status),
		slog.String("error", detail),
	)
}

// count adds the exchange to the metrics, from the same facts as its
// record.
func (ex *exchange) count() {
	m := ex.h.Metrics
	if m == nil {
		return
	}
	req := metrics.Request{
		Mode: metricsMode(ex.info.FrontEnd), Decision: metricsDecision(ex.action),
		Method: ex.r.Method, Status: ex.status,
		Duration: time.Since(ex.start), BytesIn: ex.bodyIn.n.Load(), BytesOut: ex.bytesOut,
	}
	if ex.decided {
		req.Client, req.Policy, req.Rule = ex.decision.Client, ex.decision.Policy, ex.decision.Rule
	}
	m.Record(req)
	if ex.upstream != "" {
		m.UpstreamConn(ex.reused)
	}
	m.UpstreamError(ex.reason)
}

func metricsMode(fe FrontEnd) metrics.Mode {
	switch fe {
	case BumpH1, BumpH2:
		return metrics.ModeBump
	case Connect:
		return metrics.ModeTunnel
	}
	return metrics.ModeDirect
}

func metricsDecision(action string) metrics.Decision {
	switch action {
	case "ALLOW":
		return metrics.DecisionAllow
	case "DENY":
		return metrics.DecisionDeny
	}
	return metrics.DecisionError
}

func modeOf(fe FrontEnd) string {
	switch fe {
	case BumpH1, BumpH2:
		return "bump"
	case Connect:
		return "tunnel"
	}
	return "direct"
}
