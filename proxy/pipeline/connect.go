package pipeline

import (
	"context"
	"log/slog"
	"time"

	"exfilguard/policy"
	"exfilguard/proxy/metrics"
)

// DecideConnect decides a CONNECT to host:port from the connection in ctx
// with the policy snapshot of this moment: the same decision path as
// every other request (SPEC §5 "One pipeline"). host is in lower case
// without brackets or a trailing dot.
func (h *Handler) DecideConnect(ctx context.Context, host string, port uint16) policy.Decision {
	info := FromContext(ctx)
	if info == nil {
		panic("pipeline: internal error: CONNECT without ConnInfo")
	}
	rs := h.Policies.Load()
	if rs == nil {
		panic("pipeline: internal error: nil ruleset")
	}
	return rs.DecideConnect(info.Peer.Addr(), host, port)
}

// ConnectRecord is what the decision record of one CONNECT says. The
// front end fills it as the CONNECT proceeds and hands it to
// RecordConnect when the tunnel or bumped session ends.
type ConnectRecord struct {
	Start    time.Time
	Host     string // empty when the target could not be parsed
	Port     uint16
	Decision policy.Decision
	Decided  bool
	// Action is ALLOW, DENY or ERROR; Reason the machine word; Status the
	// status sent to the client (200 for an established tunnel).
	Action string
	Reason string
	Status int
	Detail string
	// BytesIn and BytesOut are tunnel bytes from and to the client.
	BytesIn, BytesOut int64
	// Upstream is the upstream address of a tunnel.
	Upstream string
}

// Fail sets an error outcome.
func (r *ConnectRecord) Fail(status int, action, reason, detail string) {
	r.Status, r.Action, r.Reason, r.Detail = status, action, reason, detail
}

// RecordConnect writes the decision record of a CONNECT (SPEC §8). Its
// session_id is shared by every request inside a bumped tunnel.
func (h *Handler) RecordConnect(ctx context.Context, r *ConnectRecord) {
	info := FromContext(ctx)
	mode, mmode := "tunnel", metrics.ModeTunnel
	if r.Decision.Action == policy.Inspect {
		mode, mmode = "bump", metrics.ModeBump
	}
	if m := h.Metrics; m != nil {
		req := metrics.Request{Mode: mmode, Decision: metricsDecision(r.Action), Method: "CONNECT", Status: r.Status,
			Duration: time.Since(r.Start), BytesIn: r.BytesIn, BytesOut: r.BytesOut}
		if r.Decided {
			req.Client, req.Policy, req.Rule = r.Decision.Client, r.Decision.Policy, r.Decision.Rule
		}
		m.Record(req)
		m.UpstreamError(r.Reason)
	}
	if h.Log == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("session_id", info.SessionID),
		slog.String("mode", mode),
		slog.String("client_ip", info.Peer.Addr().String()),
		slog.Int("client_port", int(info.Peer.Port())),
		slog.String("method", "CONNECT"),
		slog.String("scheme", "https"),
		slog.String("host", r.Host),
		slog.Int("port", int(r.Port)),
	)
	if r.Decided {
		attrs = append(attrs, slog.String("client", r.Decision.Client))
		if r.Decision.Rule != "" {
			attrs = append(attrs, slog.String("policy", r.Decision.Policy), slog.String("rule", r.Decision.Rule))
		}
	}
	attrs = append(attrs,
		slog.String("decision", r.Action),
		slog.String("reason", r.Reason),
		slog.Int("status", r.Status),
		slog.Int64("bytes_in", r.BytesIn),
		slog.Int64("bytes_out", r.BytesOut),
		slog.Int64("elapsed_ms", time.Since(r.Start).Milliseconds()),
	)
	if r.Upstream != "" {
		attrs = append(attrs, slog.String("upstream_addr", r.Upstream))
	}
	if r.Detail != "" {
		attrs = append(attrs, slog.String("error", r.Detail))
	}
	h.Log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "decision", attrs...)
}
