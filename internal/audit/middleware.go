package audit

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// MiddlewareOptions configure Middleware.
type MiddlewareOptions struct {
	// NoWait makes the middleware enqueue the request event without waiting
	// for it to be durable (fire-and-forget with backpressure). By default
	// the response headers are held until the event is on disk, so every
	// request a client saw answered has its event in the log even after SIGKILL.
	NoWait bool
	// Log receives events that could not be made durable (default slog.Default()).
	Log *slog.Logger
}

// StateChanging reports whether method changes state and is audited by
// Middleware: everything except GET, HEAD, OPTIONS and TRACE.
func StateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// Middleware records a "request" event (method, route, principal, status;
// never a body or raw path) for every state-changing request. It sits inside
// reqinfo.Middleware and outside authentication, which fills the Info it reads.
//
// Before calling next it reserves room in the queue; if the queue stays full
// for Options.EnqueueTimeout the request is answered 503 and never reaches
// the upstream. The event is recorded when the handler first writes its
// status (or returns without writing): by default the status line is held
// until the event is durable, so no client sees an answer whose audit event
// could be lost. If the event cannot be made durable (sink failure) the
// response still goes out, because the upstream already acted, and the
// failure is logged and counted in Stats.Failed.
func Middleware(l *Logger, o MiddlewareOptions) func(http.Handler) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !StateChanging(r.Method) {
				next.ServeHTTP(w, r)
				return
			}
			res, err := l.Reserve(r.Context())
			if err != nil {
				if info := reqinfo.From(r.Context()); info != nil {
					info.Outcome = "audit_unavailable"
				}
				w.Header().Set("Retry-After", "1")
				http.Error(w, "service unavailable", http.StatusServiceUnavailable)
				return
			}
			rw := &responseWriter{ResponseWriter: w, r: r, res: res, o: &o}
			defer func() {
				if v := recover(); v != nil {
					rw.record(http.StatusInternalServerError, "panic")
					panic(v)
				}
				rw.record(http.StatusOK, "")
			}()
			next.ServeHTTP(rw, r)
		})
	}
}

// responseWriter records the request event at the first status it sees.
type responseWriter struct {
	http.ResponseWriter
	r    *http.Request
	res  *Reservation
	o    *MiddlewareOptions
	once sync.Once
}

func (w *responseWriter) record(status int, outcome string) {
	w.once.Do(func() {
		info := reqinfo.From(w.r.Context())
		ev := NewEvent(TypeRequest, info)
		if ev.Outcome == "" {
			ev.Outcome = outcome
		}
		if ev.Outcome == "" {
			ev.Outcome = OutcomeOK
			if status >= 400 {
				ev.Outcome = OutcomeError
			}
		}
		d := map[string]any{"method": w.r.Method, "status": status}
		if info != nil && !info.Principal.Anonymous() {
			d["principal_kind"] = info.Principal.Kind
			if info.Principal.SessionID != "" {
				d["session_id"] = info.Principal.SessionID
			}
		}
		ev.Details = d
		var err error
		if w.o.NoWait {
			err = w.res.Enqueue(ev)
		} else {
			err = w.res.Record(context.WithoutCancel(w.r.Context()), ev)
		}
		if err != nil {
			w.o.Log.Error("audit request event not durable", slog.String("request_id", ev.RequestID), slog.String("error", err.Error()))
		}
	})
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.record(code, "")
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.record(http.StatusOK, "")
	return w.ResponseWriter.Write(b)
}

// Flush keeps http.Flusher working through the wrapper.
func (w *responseWriter) Flush() {
	w.record(http.StatusOK, "")
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack keeps http.Hijacker working through the wrapper.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.record(http.StatusSwitchingProtocols, "hijacked")
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("audit response writer: %w", http.ErrNotSupported)
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
