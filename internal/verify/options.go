package verify

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults used by Options.withDefaults.
const (
	DefaultMaxRequests  = 200
	DefaultConcurrency  = 8
	DefaultTimeout      = 5 * time.Second
	DefaultTicketPath   = "/.rampart/ws/ticket"
	DefaultBodyProbe    = 16 << 20
	DefaultHeaderProbe  = 128 << 10
	maxResponseBodyRead = 64 << 10
)

// RateLimit names one rate-limited path and its limit per window.
type RateLimit struct {
	// Path is requested (GET) up to Limit+1 times.
	Path string
	// Limit is the number of requests the window allows; 0 means unknown
	// and the rate-limit checks are skipped.
	Limit int
}

// Options configure one Run. Target is required; everything else has a
// default or makes the checks that need it skip with the reason.
type Options struct {
	// Target is the https:// URL audited (a plain http:// URL fails the TLS
	// checks).
	Target string
	// HTTPURL is the plain-HTTP address used for the redirect check. Empty
	// means http://host/ when the target uses the default port 443, and the
	// check is skipped otherwise.
	HTTPURL string
	// ProtectedPaths must refuse requests without valid credentials.
	ProtectedPaths []string
	// WSPaths are WebSocket endpoints that must require a ticket.
	WSPaths []string
	// WSTicketPath issues tickets (POST with the key); default
	// /.rampart/ws/ticket.
	WSTicketPath string
	// RateLimit names a limited path; zero Limit skips the rate-limit checks.
	RateLimit RateLimit
	// AllowedOrigins are the origins the deployment means to allow; the CORS
	// battery builds look-alikes of each (and of the target's own origin).
	AllowedOrigins []string
	// CookiePaths are extra paths fetched for their Set-Cookie headers.
	CookiePaths []string
	// Key is a valid API key for the checks that need one. It is sent only
	// to a target whose certificate verified (or with Insecure) and never
	// appears in evidence.
	Key string
	// KeyHeader is the header that carries Key: "Authorization" (sent as
	// "Bearer KEY") or any other name (sent as the bare key). Empty sends
	// both Authorization and X-API-Key.
	KeyHeader string
	// Insecure accepts an untrusted certificate (self-signed targets such as
	// rampart demo); the chain check then warns instead of failing.
	Insecure bool
	// RootCAs verifies the certificate chain; nil uses the system roots.
	RootCAs *x509.CertPool
	// MaxRequests bounds the rate-limit check (default 200).
	MaxRequests int
	// Concurrency bounds requests in flight across all checks (default 8).
	Concurrency int
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// BodyProbeBytes is the size of the oversized body (default 16 MiB).
	BodyProbeBytes int
	// HeaderProbeBytes is the size of the oversized header (default 128 KiB).
	HeaderProbeBytes int
	// Now and Rand are injected for tests; defaults time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	// Progress, when set, is called after each check completes.
	Progress func(done, total int, r Result)
}

func (o Options) withDefaults() Options {
	if o.WSTicketPath == "" {
		o.WSTicketPath = DefaultTicketPath
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = DefaultMaxRequests
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BodyProbeBytes <= 0 {
		o.BodyProbeBytes = DefaultBodyProbe
	}
	if o.HeaderProbeBytes <= 0 {
		o.HeaderProbeBytes = DefaultHeaderProbe
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	return o
}

// validate checks the options and returns the parsed target.
func (o Options) validate() (*url.URL, error) {
	var errs []error
	u, err := url.Parse(o.Target)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("target: %w", err))
	case u.Scheme != "https" && u.Scheme != "http":
		errs = append(errs, fmt.Errorf("target %q: scheme must be https or http", o.Target))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("target %q: no host", o.Target))
	}
	if o.HTTPURL != "" {
		h, err := url.Parse(o.HTTPURL)
		if err != nil || h.Scheme != "http" || h.Host == "" {
			errs = append(errs, fmt.Errorf("http url %q: want http://host[:port]/", o.HTTPURL))
		}
	}
	for _, group := range [][]string{o.ProtectedPaths, o.WSPaths, o.CookiePaths, {o.RateLimit.Path, o.WSTicketPath}} {
		for _, p := range group {
			if p != "" && !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("path %q: must start with /", p))
			}
		}
	}
	if o.RateLimit.Limit < 0 {
		errs = append(errs, errors.New("rate limit: must not be negative"))
	}
	if o.RateLimit.Limit > 0 && o.RateLimit.Path == "" {
		errs = append(errs, errors.New("rate limit: a limit needs a path"))
	}
	for _, origin := range o.AllowedOrigins {
		ou, err := url.Parse(origin)
		if err != nil || ou.Host == "" || (ou.Scheme != "https" && ou.Scheme != "http") {
			errs = append(errs, fmt.Errorf("allowed origin %q: want scheme://host[:port]", origin))
		}
	}
	if strings.ContainsAny(o.Key, "\r\n") {
		errs = append(errs, errors.New("key: contains a line break"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}

// httpURL derives the plain-HTTP address for the redirect check, or "" when
// none can be guessed.
func (o Options) httpURL(target *url.URL) string {
	if o.HTTPURL != "" {
		return o.HTTPURL
	}
	if target.Scheme != "https" {
		return ""
	}
	if p := target.Port(); p != "" && p != "443" {
		return ""
	}
	host := target.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "http://" + host + "/"
}

// hostPort returns host:port of the target with the scheme's default port.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
