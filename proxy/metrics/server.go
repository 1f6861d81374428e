package metrics

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Path is the one path the endpoint serves (reference §11.1).
const Path = "/metrics"

// Limits of the endpoint's HTTP server (reference §11.1).
const (
	// maxHeaderBytes bounds a request head; a scrape is one short GET.
	// (net/http allows 4 KiB of slack past it, then answers 431.)
	maxHeaderBytes = 8 << 10
	// readTimeout bounds the TLS handshake and the request, which has
	// no body.
	readTimeout = 5 * time.Second
	// writeTimeout bounds writing a response to a slow reader.
	writeTimeout = 30 * time.Second
	// idleTimeout closes a scraper's keep-alive connection between
	// scrapes that are further apart than usual.
	idleTimeout = 2 * time.Minute
)

// Handler returns the endpoint: GET /metrics answers the registry's
// families; /metrics with another method answers 405, and any other
// target (a query string included) 404.
func (r *Registry) Handler() http.Handler { return handler{r} }

type handler struct{ r *Registry }

func (h handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The raw target must be exactly /metrics, as in the original: no
	// query, no escapes, no absolute form.
	if req.RequestURI != Path {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body := h.r.text()
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// Server serves a Handler over HTTP, or HTTPS when made with a key pair.
type Server struct {
	hs *http.Server
}

// NewServer returns a server of h. If certFile and keyFile are set, it
// serves TLS 1.2 or later with the PEM certificate chain and key in them
// (PKCS #8, PKCS #1 or SEC 1); a key pair that does not load is an error
// here, before anything is served. errorLog receives connection errors,
// such as failed TLS handshakes; nil means the log package's standard
// logger.
func NewServer(h http.Handler, certFile, keyFile string, errorLog *log.Logger) (*Server, error) {
	hs := &http.Server{
		Handler:           h,
		ErrorLog:          errorLog,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Protocols:         new(http.Protocols),
	}
	// HTTP/1.1 only, ALPN http/1.1 (reference §11.1): a scrape needs
	// nothing more.
	hs.Protocols.SetHTTP1(true)
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load metrics TLS certificate and key: %w", err)
		}
		hs.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		}
	}
	return &Server{hs: hs}, nil
}

// Serve accepts connections on ln until Shutdown or Close, after which it
// returns http.ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.hs.TLSConfig != nil {
		return s.hs.ServeTLS(ln, "", "")
	}
	return s.hs.Serve(ln)
}

// Shutdown stops accepting and waits for the requests being served to
// finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.hs.Close() }
