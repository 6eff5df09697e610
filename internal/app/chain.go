package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rampart-security/rampart/internal/proxy"
	"github.com/rampart-security/rampart/internal/redact"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/route"
)

// middleware is the one shape every layer has.
type middleware = func(http.Handler) http.Handler

// chain wraps h so that the first middleware listed is the outermost.
func chain(h http.Handler, mws ...middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverer turns a panic in a handler into a 500 and a log line.
func recoverer(log *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panic", "panic", v, "path", r.URL.Path, "stack", string(debug.Stack()))
					reqinfo.Reject(w, r, http.StatusInternalServerError, "internal_error", "internal error")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// accessLog writes one line per request after it is answered. Credentials in
// the query string are masked; headers are never logged.
func accessLog(log *slog.Logger, now func() time.Time) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			info := reqinfo.From(r.Context())
			if info == nil {
				return
			}
			attrs := []slog.Attr{
				slog.String("request_id", info.ID),
				slog.String("client_ip", info.ClientIP.String()),
				slog.String("method", r.Method),
				slog.String("path", redact.URI(r.URL.Path, r.URL.RawQuery)),
				slog.String("route", info.Route),
				slog.Int("status", info.Status),
				slog.Int64("bytes", info.Bytes),
				slog.Float64("duration_ms", float64(now().Sub(info.Start).Microseconds())/1000),
			}
			if info.Outcome != "" {
				attrs = append(attrs, slog.String("outcome", info.Outcome))
			}
			if !info.Principal.Anonymous() {
				attrs = append(attrs, slog.String("principal", info.Principal.Kind+":"+info.Principal.ID))
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		})
	}
}

type routeKey struct{}

// routeFrom returns the matched route of a request, or nil.
func routeFrom(ctx context.Context) *route.Route {
	rt, _ := ctx.Value(routeKey{}).(*route.Route)
	return rt
}

// routing normalises the path, matches the route table and applies the
// route's edge settings. The upstream receives the normalised path, so what
// rampart matched is exactly what the upstream serves.
func routing(table *route.Table) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := route.Normalize(r.URL.EscapedPath(), r.URL.Path)
			if err != nil {
				reqinfo.Reject(w, r, http.StatusBadRequest, "bad_path", "the request path is not allowed")
				return
			}
			rt, mismatch := table.Match(r.Method, p)
			if rt == nil {
				if mismatch {
					reqinfo.Reject(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
					return
				}
				reqinfo.Reject(w, r, http.StatusNotFound, "not_found", "no such route")
				return
			}
			if info := reqinfo.From(r.Context()); info != nil {
				info.Route = rt.Name
			}
			h := w.Header()
			if rt.CSP != "" {
				h.Set("Content-Security-Policy", rt.CSP)
			}
			if rt.Authenticated() {
				h.Set("Cache-Control", "no-store")
			}
			// The outer request keeps the path as sent, for the access log.
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
			r.URL = &u
			if !proxy.LimitBody(w, r, rt.BodyLimit) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// routeResponse drops upstream headers that would contradict the route's
// edge settings: Cache-Control on authenticated routes, where rampart sends
// no-store.
func routeResponse(resp *http.Response) error {
	rt := routeFrom(resp.Request.Context())
	if rt == nil {
		return nil
	}
	if rt.Authenticated() {
		resp.Header.Del("Cache-Control")
	}
	return nil
}

// redirectHandler answers every plain-HTTP request with a redirect to the
// same host, path and query over HTTPS: 301 for GET and HEAD, 308 for the rest
// so the method and body are kept. No body is sent.
func redirectHandler(httpsPort int) http.Handler {
	portSuffix := ""
	if httpsPort != 0 && httpsPort != 443 {
		portSuffix = ":" + strconv.Itoa(httpsPort)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, err := hostOnly(r.Host)
		if err != nil {
			http.Error(w, "bad host", http.StatusBadRequest)
			return
		}
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		w.Header().Set("Location", "https://"+host+portSuffix+r.URL.RequestURI())
		w.Header().Set("Connection", "close")
		w.WriteHeader(code)
	})
}

var errBadHost = errors.New("bad host")

// hostOnly returns the host of a Host header without its port, refusing
// anything that is not a plain DNS name or IP literal.
func hostOnly(hostport string) (string, error) {
	host := hostport
	if len(host) > 0 && host[0] == '[' {
		end := -1
		for i := range len(host) {
			if host[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return "", errBadHost
		}
		inner := host[1:end]
		for _, c := range inner {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return "", errBadHost
			}
		}
		return host[:end+1], nil
	}
	for i := range len(host) {
		if host[i] == ':' {
			host = host[:i]
			break
		}
	}
	if host == "" || len(host) > 253 {
		return "", errBadHost
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", errBadHost
		}
	}
	return host, nil
}
