// Package proxy forwards admitted requests to the upstream API with
// httputil.ReverseProxy: a tuned keep-alive transport, forwarding headers
// rewritten from the resolved client address, upstream banners removed, body
// limits enforced, and upstream failures turned into generic 502/504 answers
// that say nothing about the upstream.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/rampart-security/rampart/internal/clientip"
	"github.com/rampart-security/rampart/internal/redact"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Options configure a Proxy.
type Options struct {
	Upstream              *url.URL
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdleConns          int
	// StripResponseHeaders are removed from every upstream response: version
	// banners, and the security headers rampart sets itself.
	StripResponseHeaders []string
	// ModifyResponse, when set, runs after the headers are stripped.
	ModifyResponse func(*http.Response) error
	// TrustedPeer reports whether a direct peer is a trusted proxy whose
	// X-Forwarded-For chain is kept.
	TrustedPeer func(netip.Addr) bool
	Log         *slog.Logger
	// OnUpstreamError, if set, is called for every upstream failure (not for
	// oversized bodies or clients that went away), for metrics.
	OnUpstreamError func(err error)
}

// Proxy is an http.Handler that forwards to one upstream.
type Proxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport
	strip     []string
	modify    func(*http.Response) error
	trusted   func(netip.Addr) bool
	log       *slog.Logger
	onError   func(error)
}

// New builds a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Upstream == nil || opts.Upstream.Host == "" || (opts.Upstream.Scheme != "http" && opts.Upstream.Scheme != "https") {
		return nil, errors.New("proxy: upstream must be an absolute http(s) URL")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.TrustedPeer == nil {
		opts.TrustedPeer = func(netip.Addr) bool { return false }
	}
	if opts.MaxIdleConns <= 0 {
		opts.MaxIdleConns = 512
	}
	p := &Proxy{
		transport: NewTransport(opts),
		strip:     opts.StripResponseHeaders,
		modify:    opts.ModifyResponse,
		onError:   opts.OnUpstreamError,
		trusted:   opts.TrustedPeer,
		log:       opts.Log,
	}
	target := opts.Upstream
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			p.setForwarded(pr)
		},
		Transport:      p.transport,
		BufferPool:     bufferPool{},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// NewTransport returns the upstream transport: a keep-alive pool sized for a
// gateway (http.DefaultTransport keeps two idle connections per host, which
// costs a new connection on most requests under load).
func NewTransport(opts Options) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never send upstream traffic through an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   opts.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          opts.MaxIdleConns,
		MaxIdleConnsPerHost:   opts.MaxIdleConns,
		IdleConnTimeout:       opts.IdleConnTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     opts.Upstream != nil && opts.Upstream.Scheme == "https",
		DisableCompression:    true,
	}
}

// Transport returns the upstream transport, for readiness probes that should
// use the same pool and timeouts.
func (p *Proxy) Transport() *http.Transport { return p.transport }

// Close releases idle upstream connections.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// ServeHTTP forwards r.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }

// setForwarded rewrites X-Forwarded-*: the client's chain is kept only when the
// direct peer is a trusted proxy; otherwise the peer's own address stands alone.
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	peer, err := clientip.Peer(in.RemoteAddr)
	if err != nil {
		return
	}
	xff := peer.String()
	if p.trusted(peer) {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			chain := ""
			for _, v := range prior {
				if chain != "" {
					chain += ", "
				}
				chain += v
			}
			xff = chain + ", " + xff
		}
	}
	out.Header.Set("X-Forwarded-For", xff)
	if in.TLS != nil {
		out.Header.Set("X-Forwarded-Proto", "https")
	} else {
		out.Header.Set("X-Forwarded-Proto", "http")
	}
	out.Header.Set("X-Forwarded-Host", in.Host)
	if info := reqinfo.From(in.Context()); info != nil {
		out.Header.Set("X-Real-IP", info.ClientIP.String())
		if info.ID != "" {
			out.Header.Set("X-Request-ID", info.ID)
		}
	}
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	for _, h := range p.strip {
		resp.Header.Del(h)
	}
	if p.modify != nil {
		return p.modify(resp)
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		reqinfo.Reject(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; there is nobody to answer.
		if info := reqinfo.From(r.Context()); info != nil {
			info.Outcome = "client_closed"
		}
		w.WriteHeader(499)
	case isTimeout(err):
		p.upstreamError(err)
		p.log.Warn("upstream timeout", "request_id", requestID(r), "error", redact.Error(err))
		reqinfo.Reject(w, r, http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
	default:
		p.upstreamError(err)
		p.log.Warn("upstream error", "request_id", requestID(r), "error", redact.Error(err))
		reqinfo.Reject(w, r, http.StatusBadGateway, "upstream_error", "the upstream is unavailable")
	}
}

func (p *Proxy) upstreamError(err error) {
	if p.onError != nil {
		p.onError(err)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func requestID(r *http.Request) string {
	if info := reqinfo.From(r.Context()); info != nil {
		return info.ID
	}
	return ""
}

// bufferPool reuses copy buffers across requests.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// LimitBody answers 413 when a request declares a body larger than limit, and
// otherwise caps what the upstream can read at limit bytes; the excess turns
// into a 413 from the error handler. limit <= 0 means no limit.
func LimitBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		reqinfo.Reject(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body is larger than %d bytes", limit))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return true
}
