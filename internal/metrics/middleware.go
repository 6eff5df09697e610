package metrics

import (
	"bufio"
	"net"
	"net/http"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Middleware counts and times every request. It sits inside
// reqinfo.Middleware and reads the route name from reqinfo after next
// returns (the route matcher further in sets it); requests without a route
// are labelled "unmatched", and the raw path is never used. A request whose
// connection is hijacked (a WebSocket upgrade) is timed up to the hijack, so
// long-lived sockets do not distort the latency histogram, and counted with
// status 101 unless the handler wrote another.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.From(r.Context())
		rw := &responseWriter{ResponseWriter: w, now: m.now, start: m.now()}
		completed := false
		defer func() {
			if !completed && !rw.hijacked {
				// next panicked; the recoverer outside answers 500.
				rw.status = http.StatusInternalServerError
			}
			m.observe(info, r.Method, rw)
		}()
		next.ServeHTTP(rw, r)
		completed = true
	})
}

func (m *Metrics) observe(info *reqinfo.Info, method string, rw *responseWriter) {
	route := RouteUnmatched
	if info != nil && info.Route != "" {
		route = info.Route
	}
	end := rw.hijackedAt
	if !rw.hijacked {
		end = m.now()
	}
	d := end.Sub(rw.start)
	status := rw.status
	switch {
	case status != 0:
	case rw.hijacked:
		status = http.StatusSwitchingProtocols
	default:
		status = http.StatusOK
	}
	m.requests.WithLabelValues(route, methodLabel(method), statusClass(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
	if d > m.slow {
		m.slowRequests.WithLabelValues(route).Inc()
	}
}

// methodLabel keeps the method label to the standard set so a client cannot
// create series with made-up methods.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return MethodOther
}

// statusClass maps 404 to "4xx"; codes outside 100-599 become "other".
func statusClass(code int) string {
	switch code / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other"
}

// responseWriter records the final status and the hijack time. Flush and
// Hijack go through http.ResponseController, so they reach whatever the
// wrapped writer supports, and Unwrap lets callers reach the rest.
type responseWriter struct {
	http.ResponseWriter
	now        func() time.Time
	start      time.Time
	status     int
	hijacked   bool
	hijackedAt time.Time
}

// WriteHeader records the first final status; informational codes other
// than 101 (such as 103 Early Hints) pass through unrecorded.
func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implies status 200 when no status was written.
func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError flushes the wrapped writer and reports whether it could.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker; it fails with an error wrapping
// http.ErrNotSupported when the wrapped writer cannot hijack (HTTP/2).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		w.hijackedAt = w.now()
	}
	return c, brw, err
}
