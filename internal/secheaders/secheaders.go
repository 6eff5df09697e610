// Package secheaders sets the security response headers on every response.
// Values are rendered once at construction; the per-request cost is a few map
// assignments of shared, pre-built slices.
package secheaders

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Options are the header values. Empty strings leave a header out.
type Options struct {
	HSTSMaxAge                time.Duration
	HSTSIncludeSubdomains     bool
	HSTSPreload               bool
	ContentSecurityPolicy     string
	FrameOptions              string
	ReferrerPolicy            string
	PermissionsPolicy         string
	CrossOriginResourcePolicy string
	XSSProtection             string
}

// Headers holds the rendered headers.
type Headers struct {
	always map[string][]string // every response
	hsts   []string            // HTTPS responses only
}

// Managed lists the header names Headers owns; the proxy drops the upstream's
// copies so the client never sees two conflicting values.
var Managed = []string{
	"Strict-Transport-Security", "Content-Security-Policy", "X-Frame-Options",
	"X-Content-Type-Options", "Referrer-Policy", "Permissions-Policy",
	"Cross-Origin-Resource-Policy", "X-XSS-Protection",
}

// New renders opts.
func New(opts Options) (*Headers, error) {
	if opts.HSTSMaxAge < 0 {
		return nil, fmt.Errorf("hsts max-age %s is negative", opts.HSTSMaxAge)
	}
	h := &Headers{always: map[string][]string{"X-Content-Type-Options": {"nosniff"}}}
	set := func(name, value string) {
		if value != "" {
			h.always[http.CanonicalHeaderKey(name)] = []string{value}
		}
	}
	set("Content-Security-Policy", opts.ContentSecurityPolicy)
	set("X-Frame-Options", strings.ToUpper(opts.FrameOptions))
	set("Referrer-Policy", opts.ReferrerPolicy)
	set("Permissions-Policy", opts.PermissionsPolicy)
	set("Cross-Origin-Resource-Policy", opts.CrossOriginResourcePolicy)
	set("X-XSS-Protection", opts.XSSProtection)
	hsts := "max-age=" + strconv.FormatInt(int64(opts.HSTSMaxAge/time.Second), 10)
	if opts.HSTSIncludeSubdomains {
		hsts += "; includeSubDomains"
	}
	if opts.HSTSPreload {
		hsts += "; preload"
	}
	h.hsts = []string{hsts}
	return h, nil
}

// HSTS returns the Strict-Transport-Security value.
func (h *Headers) HSTS() string { return h.hsts[0] }

// Set writes the headers for a response to r into dst. HSTS is sent only
// over TLS: browsers ignore it on plain HTTP and RFC 6797 forbids it there.
func (h *Headers) Set(dst http.Header, r *http.Request) {
	for k, v := range h.always {
		dst[k] = v
	}
	if r.TLS != nil {
		dst["Strict-Transport-Security"] = h.hsts
	}
}

// Middleware sets the headers before next runs, so responses rampart answers
// itself (errors, redirects, preflights) carry them too.
func (h *Headers) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Set(w.Header(), r)
		next.ServeHTTP(w, r)
	})
}
