// Package reqinfo carries one mutable *Info per request through the middleware
// chain. The outermost layer creates it; inner layers fill it (the route
// matcher sets Route, authentication sets Principal) and outer layers read it
// after next returns (access log, audit, metrics).
package reqinfo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"time"
)

// Permission is a bit set of what a principal may do.
type Permission uint8

// Permissions. Admin implies write implies read; see Implied.
const (
	PermRead Permission = 1 << iota
	PermWrite
	PermAdmin
)

// Implied returns p with every permission it implies added.
func (p Permission) Implied() Permission {
	if p&PermAdmin != 0 {
		p |= PermWrite
	}
	if p&PermWrite != 0 {
		p |= PermRead
	}
	return p
}

// Has reports whether p (with implications) includes want.
func (p Permission) Has(want Permission) bool { return p.Implied()&want == want }

// String renders p as a comma-separated list, e.g. "read,write".
func (p Permission) String() string {
	s := ""
	for _, x := range []struct {
		bit  Permission
		name string
	}{{PermRead, "read"}, {PermWrite, "write"}, {PermAdmin, "admin"}} {
		if p&x.bit != 0 {
			if s != "" {
				s += ","
			}
			s += x.name
		}
	}
	return s
}

// Principal is who made the request, once authentication has run.
type Principal struct {
	Kind        string // "api_key" or "user"; empty when anonymous
	ID          string // key ID or user ID
	Name        string // key name or username
	Permissions Permission
	SessionID   string // set for browser/JWT sessions
}

// Anonymous reports whether no credential was accepted.
func (p Principal) Anonymous() bool { return p.Kind == "" }

// Info is everything the chain learns about one request.
type Info struct {
	ID        string     // request ID, returned as X-Request-ID
	ClientIP  netip.Addr // resolved through trusted proxies
	Start     time.Time
	Route     string // route name from the route table; never a raw path
	Principal Principal
	Outcome   string // short machine reason for a refusal, e.g. "auth_missing", "rate_limited"
	Status    int    // status code written to the client; set by Middleware's writer
	Bytes     int64  // response body bytes written to the client
}

type ctxKey struct{}

// With returns a context carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the request's Info, or nil outside the chain.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// Reject answers a request rampart refuses itself: it records outcome on the
// request's Info and writes a generic JSON body that names the outcome and the
// request ID and nothing about why a credential or path was wrong.
func Reject(w http.ResponseWriter, r *http.Request, status int, outcome, message string) {
	id := ""
	if info := From(r.Context()); info != nil {
		info.Outcome = outcome
		id = info.ID
	}
	body, _ := json.Marshal(errorBody{Error: outcome, Message: message, RequestID: id})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}
