// Package app is rampart's composition root: it turns a validated config into
// listeners, a middleware chain in one declared order, and a graceful
// shutdown. Feature packages never import each other's backends; only app
// wires them together.
package app

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/audit"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/certs"
	"github.com/rampart-security/rampart/internal/clientip"
	"github.com/rampart-security/rampart/internal/config"
	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/metrics"
	"github.com/rampart-security/rampart/internal/proxy"
	"github.com/rampart-security/rampart/internal/redact"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/route"
	"github.com/rampart-security/rampart/internal/secheaders"
	"github.com/rampart-security/rampart/internal/wsgate"
)

// Options are what the caller provides besides the config.
type Options struct {
	Log *slog.Logger
	Now func() time.Time
	// ConfigPath and Environ are where the config came from; when set,
	// Reload re-reads it and audits what changed.
	ConfigPath string
	Environ    []string
}

// App is a configured gateway, ready to listen.
type App struct {
	cfg   config.Config
	log   *slog.Logger
	now   func() time.Time
	proxy *proxy.Proxy

	stack *stack

	configPath string   // re-read by Reload; empty: the config did not come from a file
	environ    []string // RAMPART_* overrides for that re-read

	certFile *certs.FileSource // nil unless certificates come from files
	acme     *certs.ACMESource // nil unless ACME is on
	tlsConf  *tls.Config

	public, redirect, admin   *http.Server
	lnPublic, lnHTTP, lnAdmin net.Listener

	// SelfSignedCert is the path of a generated development certificate.
	SelfSignedCert string
}

// New builds the gateway from a validated config: it opens the secrets,
// the store, the audit log and Redis the config names, so Close must be
// called if Serve is not.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := devSecrets(&cfg, opts.Log); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: opts.Log, now: opts.Now, configPath: opts.ConfigPath, environ: opts.Environ}
	if a.stack, err = buildStack(ctx, cfg, opts.Log, opts.Now); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = a.stack.close(context.Background())
		}
	}()

	if err := a.setupTLS(); err != nil {
		return nil, err
	}
	handler, err := a.publicHandler()
	if err != nil {
		return nil, err
	}
	s := cfg.Server
	errLog := slog.NewLogLogger(a.log.With("listener", "public").Handler(), slog.LevelDebug)
	a.public = &http.Server{
		Handler:           handler,
		TLSConfig:         a.tlsConf,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    int(s.MaxHeaderBytes),
		ErrorLog:          errLog,
	}
	if s.HTTPListen != "" {
		var h http.Handler = redirectHandler(a.httpsPort())
		if a.acme != nil {
			h = a.acme.HTTPHandler(h)
		} else {
			h = withoutACMEChallenges(h)
		}
		a.redirect = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: s.ReadHeaderTimeout,
			ReadTimeout:       s.ReadTimeout,
			WriteTimeout:      s.WriteTimeout,
			IdleTimeout:       s.IdleTimeout,
			MaxHeaderBytes:    int(s.MaxHeaderBytes),
			ErrorLog:          slog.NewLogLogger(a.log.With("listener", "http").Handler(), slog.LevelDebug),
		}
	}
	if s.AdminListen != "" {
		h, err := a.adminHandler()
		if err != nil {
			return nil, err
		}
		a.admin = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: s.ReadHeaderTimeout,
			ReadTimeout:       s.ReadTimeout,
			WriteTimeout:      s.WriteTimeout,
			IdleTimeout:       s.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(a.log.With("listener", "admin").Handler(), slog.LevelDebug),
		}
	}
	return a, nil
}

func (a *App) setupTLS() error {
	t := a.cfg.TLS
	switch {
	case t.ACME.Enabled:
		src, err := certs.NewACMESource(certs.ACMEOptions{
			Hosts:        t.ACME.Hosts,
			Email:        t.ACME.Email,
			CacheDir:     orDefault(t.ACME.CacheDir, filepath.Join(a.cfg.StateDir, "acme")),
			DirectoryURL: t.ACME.DirectoryURL,
			CARootsFile:  t.ACME.CARootsFile,
			Logger:       a.log,
		})
		if err != nil {
			return fmt.Errorf("tls.acme: %w", err)
		}
		a.acme = src
		a.tlsConf = certs.ServerConfig(src)
		return nil
	case t.SelfSigned:
		certFile, keyFile, err := certs.SelfSigned(filepath.Join(a.cfg.StateDir, "tls"),
			[]string{"localhost", "127.0.0.1", "::1"}, a.now, crand.Reader)
		if err != nil {
			return fmt.Errorf("tls.self_signed: %w", err)
		}
		a.SelfSignedCert = certFile
		t.CertFile, t.KeyFile = certFile, keyFile
	}
	if t.CertFile == "" {
		return errors.New("tls: no certificate configured")
	}
	src, err := certs.NewFileSource(t.CertFile, t.KeyFile, a.log)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	a.certFile = src
	a.tlsConf = certs.ServerConfig(src)
	return nil
}

func (a *App) publicHandler() (http.Handler, error) {
	cfg := a.cfg
	trusted, err := config.ParseCIDRs(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("server.trusted_proxies: %w", err)
	}
	ips := clientip.New(trusted)
	table, err := cfg.RouteTable()
	if err != nil {
		return nil, err
	}
	h := cfg.Headers
	headers, err := secheaders.New(secheaders.Options{
		HSTSMaxAge:                h.HSTS.MaxAge,
		HSTSIncludeSubdomains:     h.HSTS.IncludeSubdomains,
		HSTSPreload:               h.HSTS.Preload,
		ContentSecurityPolicy:     h.ContentSecurityPolicy,
		FrameOptions:              h.FrameOptions,
		ReferrerPolicy:            h.ReferrerPolicy,
		PermissionsPolicy:         h.PermissionsPolicy,
		CrossOriginResourcePolicy: h.CrossOriginResourcePolicy,
		XSSProtection:             h.XSSProtection,
	})
	if err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	upstream, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %w", err)
	}
	strip := append([]string{}, h.StripResponseHeaders...)
	strip = append(strip, secheaders.Managed...)
	strip = append(strip, corsResponseHeaders...)
	p, err := proxy.New(proxy.Options{
		Upstream:              upstream,
		DialTimeout:           cfg.Upstream.DialTimeout,
		ResponseHeaderTimeout: cfg.Upstream.ResponseHeaderTimeout,
		IdleConnTimeout:       cfg.Upstream.IdleConnTimeout,
		MaxIdleConns:          cfg.Upstream.MaxIdleConns,
		StripResponseHeaders:  strip,
		ModifyResponse:        routeResponse,
		TrustedPeer:           ips.Trusted,
		Log:                   a.log,
		OnUpstreamError: func(err error) {
			a.stack.metrics.UpstreamError(metrics.UpstreamErrorKind(err))
		},
	})
	if err != nil {
		return nil, err
	}
	a.proxy = p

	st := a.stack
	preLimit, postLimit, err := st.rateLimits()
	if err != nil {
		return nil, err
	}
	mws := []middleware{
		recoverer(a.log),
		reqinfo.Middleware(ips, a.now),
		st.metrics.Middleware,
	}
	if cfg.Log.Access {
		mws = append(mws, accessLog(a.log, a.now))
	}
	mws = append(mws,
		headers.Middleware,
		corsPolicy(cfg.CORS).Handler,
	)
	if st.tickets != nil && st.auth != nil {
		// The ticket endpoint is not in the route table: it needs an API
		// key with read permission, and is limited like a keyed route.
		always, err := st.preAuthAlways()
		if err != nil {
			return nil, err
		}
		keyAuth := st.auth.Require(auth.Policy{Auth: auth.AuthAPIKey, Permission: auth.PermissionRead})
		ticketChain := []middleware{always}
		if st.audit != nil { // a ticket request is state-changing: audited like one
			ticketChain = append(ticketChain, audit.Middleware(st.audit, audit.MiddlewareOptions{NoWait: !cfg.Audit.Wait, Log: a.log}))
		}
		tickets := chain(st.tickets.Handler(), append(ticketChain, st.ticketAuth(keyAuth), postLimit)...)
		mws = append(mws, exactPath(cfg.WebSocket.TicketPath, tickets))
	}
	if st.people != nil {
		people, err := st.identityHandler()
		if err != nil {
			return nil, err
		}
		mws = append(mws, pathPrefix("/.rampart/", people))
	}
	mws = append(mws, routing(table), preLimit)
	if st.audit != nil {
		mws = append(mws, audit.Middleware(st.audit, audit.MiddlewareOptions{NoWait: !cfg.Audit.Wait, Log: a.log}))
	}
	if st.auth != nil {
		mws = append(mws, st.auth.Middleware)
	} else {
		mws = append(mws, refuseKeyRoutes)
	}
	if st.people != nil {
		mws = append(mws, st.userAuth)
	}
	mws = append(mws, postLimit)
	final := http.Handler(p)
	if st.gate != nil {
		if final, err = a.webSocketRoutes(table, p); err != nil {
			return nil, err
		}
	}
	return chain(final, mws...), nil
}

// exactPath sends requests for path to h and everything else down the chain.
func exactPath(path string, h http.Handler) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path {
				h.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// pathPrefix sends requests under prefix to h and the rest down the chain.
func pathPrefix(prefix string, h http.Handler) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, prefix) {
				h.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// refuseKeyRoutes fails closed when no API keys can be checked (no pepper
// configured): a route that needs a key answers 503, never passes.
func refuseKeyRoutes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := routeFrom(r.Context()); rt != nil && (rt.Auth == route.AuthAPIKey || rt.Auth == route.AuthAny) && !rt.WebSocket {
			reqinfo.Reject(w, r, http.StatusServiceUnavailable, auth.OutcomeUnavailable, "authentication is not configured")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// webSocketRoutes sends requests on websocket routes to the gate, the rest
// to the proxy.
func (a *App) webSocketRoutes(table *route.Table, p http.Handler) (http.Handler, error) {
	gates := map[string]http.Handler{}
	for _, rc := range a.cfg.Routes {
		if !rc.WebSocket {
			continue
		}
		perm := reqinfo.Permission(0)
		if rc.Permission != "" && rc.Permission != route.PermByMethod {
			pp, err := apikey.ParsePermissions(rc.Permission)
			if err != nil {
				return nil, fmt.Errorf("routes %s: %w", rc.Name, err)
			}
			perm = pp
		}
		h, err := a.stack.gate.Handler(wsgate.RouteOptions{Name: rc.Name, Upstream: a.cfg.Upstream.URL, Permission: perm})
		if err != nil {
			return nil, fmt.Errorf("routes %s: %w", rc.Name, err)
		}
		gates[rc.Name] = h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := routeFrom(r.Context()); rt != nil && rt.WebSocket {
			if h := gates[rt.Name]; h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		p.ServeHTTP(w, r)
	}), nil
}

// corsResponseHeaders are dropped from upstream responses: the edge alone
// decides cross-origin access, so an upstream cannot widen it.
var corsResponseHeaders = []string{
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
	"Access-Control-Expose-Headers", "Access-Control-Max-Age",
}

// corsPolicy answers preflights at the edge. An empty origin list allows no
// cross-origin access at all (rs/cors would read it as "*").
func corsPolicy(c config.CORS) *cors.Cors {
	opts := cors.Options{
		AllowedOrigins:       c.AllowedOrigins,
		AllowedMethods:       c.AllowedMethods,
		AllowedHeaders:       c.AllowedHeaders,
		ExposedHeaders:       c.ExposedHeaders,
		AllowCredentials:     c.AllowCredentials,
		MaxAge:               int(c.MaxAge / time.Second),
		OptionsSuccessStatus: http.StatusNoContent,
	}
	if len(c.AllowedOrigins) == 0 {
		opts.AllowOriginFunc = func(string) bool { return false }
	}
	return cors.New(opts)
}

// withoutACMEChallenges answers ACME challenge paths with 404 instead of a
// redirect when ACME is off.
func withoutACMEChallenges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= len(acmeChallengePrefix) && r.URL.Path[:len(acmeChallengePrefix)] == acmeChallengePrefix {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const acmeChallengePrefix = "/.well-known/acme-challenge/"

func (a *App) httpsPort() int {
	if a.cfg.Server.PublicHTTPSPort != 0 {
		return a.cfg.Server.PublicHTTPSPort
	}
	if a.lnPublic != nil {
		if ap, err := netip.ParseAddrPort(a.lnPublic.Addr().String()); err == nil {
			return int(ap.Port())
		}
	}
	_, port, _ := net.SplitHostPort(a.cfg.Server.Listen)
	n, _ := strconv.Atoi(port)
	return n
}

func (a *App) adminHandler() (http.Handler, error) {
	allow, err := config.ParseCIDRs(a.cfg.Server.AdminAllow)
	if err != nil {
		return nil, fmt.Errorf("server.admin_allow: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.cfg.Metrics.Enabled {
		mux.Handle("GET /metrics", metrics.Handler(a.stack.reg))
	}
	if a.stack.keys != nil {
		api, err := admin.NewHandler(admin.HandlerOptions{Manager: a.stack.keys, Auth: a.stack.auth, Logger: a.log, Now: a.now})
		if err != nil {
			return nil, err
		}
		mux.Handle("/v1/", chain(api, reqinfo.Middleware(clientip.New(nil), a.now)))
	}
	if a.cfg.Server.Debug {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if len(allow) == 0 {
		return mux, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := clientip.Peer(r.RemoteAddr)
		if err != nil || !containsAddr(allow, peer) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// readyz reports whether the upstream answers and the stores are reachable.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := []struct {
		name string
		run  func(context.Context) error
	}{{"upstream", a.checkUpstream}, {"store", a.stack.store.Ping}}
	if a.stack.redis != nil {
		checks = append(checks, struct {
			name string
			run  func(context.Context) error
		}{"redis", func(ctx context.Context) error { return a.stack.redis.Ping(ctx).Err() }})
	}
	for _, c := range checks {
		if err := c.run(ctx); err != nil {
			a.log.Warn("not ready", "check", c.name, "error", redact.Error(err))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "check": c.name})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *App) checkUpstream(ctx context.Context) error {
	u, err := url.Parse(a.cfg.Upstream.URL)
	if err != nil {
		return err
	}
	if a.cfg.Upstream.HealthPath == "" {
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return fmt.Errorf("dial upstream: %w", err)
		}
		return c.Close()
	}
	u.Path = a.cfg.Upstream.HealthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := a.proxy.Transport().RoundTrip(req)
	if err != nil {
		return fmt.Errorf("upstream health: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("upstream health: status %d", resp.StatusCode)
	}
	return nil
}

// Listen binds every configured listener, so their addresses are known
// before Serve (port 0 picks a free port).
func (a *App) Listen() error {
	var err error
	if a.lnPublic, err = net.Listen("tcp", a.cfg.Server.Listen); err != nil {
		return fmt.Errorf("listen public: %w", err)
	}
	if a.redirect != nil {
		if a.lnHTTP, err = net.Listen("tcp", a.cfg.Server.HTTPListen); err != nil {
			return fmt.Errorf("listen http: %w", err)
		}
		// The redirect port follows the bound public port when it was 0.
		a.redirect.Handler = a.redirectWithPort()
	}
	if a.admin != nil {
		if a.lnAdmin, err = net.Listen("tcp", a.cfg.Server.AdminListen); err != nil {
			return fmt.Errorf("listen admin: %w", err)
		}
	}
	return nil
}

func (a *App) redirectWithPort() http.Handler {
	h := redirectHandler(a.httpsPort())
	if a.acme != nil {
		return a.acme.HTTPHandler(h)
	}
	return withoutACMEChallenges(h)
}

// Addrs returns the bound addresses (empty strings for listeners not in use).
func (a *App) Addrs() (public, httpAddr, admin string) {
	if a.lnPublic != nil {
		public = a.lnPublic.Addr().String()
	}
	if a.lnHTTP != nil {
		httpAddr = a.lnHTTP.Addr().String()
	}
	if a.lnAdmin != nil {
		admin = a.lnAdmin.Addr().String()
	}
	return public, httpAddr, admin
}

// Reload re-reads what can change without a restart: the certificate files
// and the secrets (a rotated pepper takes effect at once).
func (a *App) Reload(ctx context.Context) {
	a.reloadConfig(ctx)
	if a.stack.secrets != nil {
		if err := a.stack.secrets.Refresh(ctx); err != nil {
			a.log.Error("secrets refresh", "error", err)
		}
	}
	if a.certFile != nil {
		if err := a.certFile.Reload(); err != nil {
			a.log.Error("certificate reload", "error", err)
			return
		}
		a.log.Info("certificate reloaded", "not_after", a.certFile.NotAfter())
		a.stack.metrics.SetCertExpiry("public", a.certFile.NotAfter(), a.now())
	}
}

// Serve runs the listeners bound by Listen until ctx ends, then shuts down
// gracefully: in-flight requests get server.shutdown_timeout to finish.
func (a *App) Serve(ctx context.Context) error {
	if a.lnPublic == nil {
		return errors.New("serve: Listen was not called")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.certFile != nil && a.cfg.TLS.ReloadInterval > 0 {
		go a.certFile.Watch(ctx, a.cfg.TLS.ReloadInterval)
	}
	a.background(ctx)
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	serve := func(name string, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	serve("public", func() error { return a.public.ServeTLS(a.lnPublic, "", "") })
	if a.redirect != nil {
		serve("http", func() error { return a.redirect.Serve(a.lnHTTP) })
	}
	if a.admin != nil {
		serve("admin", func() error { return a.admin.Serve(a.lnAdmin) })
	}
	pub, httpAddr, adm := a.Addrs()
	a.log.Info("listening", "public", pub, "http", httpAddr, "admin", adm, "mode", a.cfg.Mode)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.log.Info("shutting down", "timeout", a.cfg.Server.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), a.cfg.Server.ShutdownTimeout)
	defer scancel()
	var errs []error
	for _, s := range []*http.Server{a.public, a.redirect, a.admin} {
		if s != nil {
			if err := s.Shutdown(sctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	wg.Wait()
	a.proxy.Close()
	if err := a.stack.close(sctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(append(errs, runErr)...)
	}
	return runErr
}

// background runs the periodic work of the stack until ctx ends: secret
// refresh and the per-minute rate-limit violation summaries.
func (a *App) background(ctx context.Context) {
	if m := a.stack.secrets; m != nil && a.cfg.Secrets.RefreshInterval > 0 {
		go func() {
			if err := m.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("secrets refresh loop", "error", err)
			}
		}()
	}
	if a.certFile != nil {
		go a.every(ctx, time.Minute, func() {
			a.stack.metrics.SetCertExpiry("public", a.certFile.NotAfter(), a.now())
		})
	}
	if a.stack.redis != nil && a.stack.auth != nil {
		go a.stack.followInvalidations(ctx)
	}
	if agg := a.stack.agg; agg != nil {
		go func() {
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := agg.Flush(ctx); err != nil {
						a.log.Error("audit aggregator", "error", err)
					}
				}
			}
		}()
	}
}

// Close releases what New opened, for callers that never reach Serve.
func (a *App) Close(ctx context.Context) error { return a.stack.close(ctx) }

// Keys is the API key manager, nil when no pepper is configured.
func (a *App) Keys() *admin.Manager { return a.stack.keys }

// TicketPath is where clients ask for WebSocket tickets.
func (a *App) TicketPath() string { return a.cfg.WebSocket.TicketPath }

// People is the account manager, nil unless identity is enabled.
func (a *App) People() *identity.Manager {
	if a.stack.people == nil {
		return nil
	}
	return a.stack.people.Manager()
}

// every runs f now and then every interval until ctx ends.
func (a *App) every(ctx context.Context, interval time.Duration, f func()) {
	f()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// reloadConfig re-reads the config file on SIGHUP and writes a
// config.reloaded audit event naming every setting that changed (secret
// references masked). Certificates and secrets are re-read by Reload
// itself; any other change needs a restart to apply, which the event and a
// warning say, so an operator never believes a change is live when it is not.
func (a *App) reloadConfig(ctx context.Context) {
	if a.configPath == "" {
		return
	}
	next, _, err := config.Load(a.configPath, a.environ)
	if err != nil {
		a.log.Error("config reload refused: the running configuration stays", "error", err)
		ev := audit.Event{Type: audit.TypeConfigReloaded, Outcome: "rejected", Details: map[string]any{"error": redact.Error(err)}}
		a.stack.record(ctx, ev)
		return
	}
	if err := devSecrets(&next, a.log); err != nil {
		a.log.Error("config reload", "error", err)
		return
	}
	old, cur := config.Flatten(a.cfg), config.Flatten(next)
	ev := audit.ConfigEvent(old, cur, nil)
	var pending []string
	for k, v := range cur {
		if old[k] != v {
			pending = append(pending, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			pending = append(pending, k)
		}
	}
	if len(pending) == 0 {
		return
	}
	slices.Sort(pending)
	if ev.Details == nil {
		ev.Details = map[string]any{}
	}
	ev.Details["restart_required"] = pending
	a.stack.record(ctx, ev)
	a.log.Warn("configuration changed on disk; restart to apply", "settings", pending)
}
