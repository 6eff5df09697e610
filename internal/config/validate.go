package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/route"
	"github.com/rampart-security/rampart/internal/secrets"
	"github.com/rampart-security/rampart/internal/store"
	"github.com/rampart-security/rampart/internal/store/postgres"
)

// MinHSTSMaxAge is the shortest HSTS max-age production mode accepts.
const MinHSTSMaxAge = 365 * 24 * time.Hour

// Validate checks cfg. Errors that make the config unusable are always
// returned in err; the checklist rules are errors in production mode and
// warnings (returned, never fatal) in development mode. Every problem is
// reported, not just the first.
func (c *Config) Validate() (warnings []string, err error) {
	var errs []error
	hard := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	prod := func(format string, a ...any) {
		if c.Production() {
			errs = append(errs, fmt.Errorf(format, a...))
		} else {
			warnings = append(warnings, fmt.Sprintf(format, a...))
		}
	}

	switch c.Mode {
	case ModeProduction, ModeDevelopment:
	default:
		hard("mode: %q is not production or development", c.Mode)
	}
	switch c.Log.Level {
	case "debug":
		prod("log.level: debug logs request details; production uses info or above")
	case "info", "warn", "error":
	default:
		hard("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "json", "text":
	default:
		hard("log.format: %q is not json or text", c.Log.Format)
	}
	if c.StateDir == "" {
		hard("state_dir: must be set")
	}

	c.validateServer(hard, prod)
	c.validateTLS(hard, prod)
	c.validateUpstream(hard)
	c.validateHeaders(hard, prod)
	c.validateCORS(hard, prod)
	if c.Limits.Body <= 0 {
		hard("limits.body: must be positive")
	}
	if _, rerr := c.RouteTable(); rerr != nil {
		errs = append(errs, rerr)
	}
	c.validateStore(hard, prod)
	c.validateSecrets(hard, prod)
	c.validateRateLimits(hard)
	c.validateAudit(hard, prod)
	c.validateWebSocket(hard)
	c.validateIdentity(hard, prod)
	if c.Auth.CacheTTL <= 0 || c.Auth.UsageInterval <= 0 {
		hard("auth: cache_ttl and usage_interval must be positive")
	}
	if c.Metrics.SlowThreshold <= 0 {
		hard("metrics.slow_threshold: must be positive")
	}
	return warnings, errors.Join(errs...)
}

type reportFunc func(format string, a ...any)

func (c *Config) validateServer(hard, prod reportFunc) {
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		hard("server.listen: %q is not host:port", s.Listen)
	}
	if s.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(s.HTTPListen); err != nil {
			hard("server.http_listen: %q is not host:port", s.HTTPListen)
		}
	}
	if s.PublicHTTPSPort < 0 || s.PublicHTTPSPort > 65535 {
		hard("server.public_https_port: %d is not a port", s.PublicHTTPSPort)
	}
	if _, err := ParseCIDRs(s.AdminAllow); err != nil {
		hard("server.admin_allow: %v", err)
	}
	if _, err := ParseCIDRs(s.TrustedProxies); err != nil {
		hard("server.trusted_proxies: %v", err)
	}
	if s.AdminListen != "" {
		host, _, err := net.SplitHostPort(s.AdminListen)
		if err != nil {
			hard("server.admin_listen: %q is not host:port", s.AdminListen)
		} else if !isLoopbackHost(host) && len(s.AdminAllow) == 0 {
			prod("server.admin_listen: %q is not a loopback address and server.admin_allow is empty", s.AdminListen)
		}
	}
	if s.Debug {
		prod("server.debug: debug endpoints (pprof) must be off in production")
	}
	for name, d := range map[string]time.Duration{
		"read_header_timeout": s.ReadHeaderTimeout, "read_timeout": s.ReadTimeout,
		"write_timeout": s.WriteTimeout, "idle_timeout": s.IdleTimeout, "shutdown_timeout": s.ShutdownTimeout,
	} {
		if d <= 0 {
			hard("server.%s: must be positive", name)
		}
	}
	if s.MaxHeaderBytes < 1024 {
		hard("server.max_header_bytes: %d is below 1KiB", s.MaxHeaderBytes)
	}
}

func (c *Config) validateTLS(hard, prod reportFunc) {
	t := c.TLS
	files := t.CertFile != "" || t.KeyFile != ""
	if files && (t.CertFile == "" || t.KeyFile == "") {
		hard("tls: cert_file and key_file go together")
	}
	sources := 0
	for _, on := range []bool{files, t.ACME.Enabled, t.SelfSigned} {
		if on {
			sources++
		}
	}
	if sources > 1 {
		hard("tls: choose one of cert_file/key_file, acme and self_signed")
	}
	if sources == 0 {
		prod("tls: no certificate configured (set tls.cert_file and tls.key_file, or tls.acme); plain HTTP is refused")
		if !c.Production() {
			hard("tls: no certificate configured; in development set tls.self_signed: true")
		}
	}
	if t.SelfSigned {
		prod("tls.self_signed: a self-signed certificate is for development only")
	}
	if t.ACME.Enabled {
		if len(t.ACME.Hosts) == 0 {
			hard("tls.acme.hosts: at least one host is needed")
		}
		if t.ACME.DirectoryURL != "" {
			if u, err := url.Parse(t.ACME.DirectoryURL); err != nil || u.Scheme != "https" {
				hard("tls.acme.directory_url: %q is not an https URL", t.ACME.DirectoryURL)
			}
		}
	}
	if t.ReloadInterval < 0 {
		hard("tls.reload_interval: must not be negative")
	}
}

func (c *Config) validateUpstream(hard reportFunc) {
	u, err := url.Parse(c.Upstream.URL)
	switch {
	case c.Upstream.URL == "":
		hard("upstream.url: must be set")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		hard("upstream.url: %q is not an http(s) URL", c.Upstream.URL)
	}
	if c.Upstream.HealthPath != "" && !strings.HasPrefix(c.Upstream.HealthPath, "/") {
		hard("upstream.health_path: %q must start with /", c.Upstream.HealthPath)
	}
	if c.Upstream.MaxIdleConns <= 0 {
		hard("upstream.max_idle_conns: must be positive")
	}
}

func (c *Config) validateHeaders(hard, prod reportFunc) {
	h := c.Headers.HSTS
	if h.MaxAge < 0 {
		hard("headers.hsts.max_age: must not be negative")
	}
	if h.MaxAge < MinHSTSMaxAge {
		prod("headers.hsts.max_age: %s is below one year (31536000s)", h.MaxAge)
	}
	if !h.IncludeSubdomains {
		prod("headers.hsts.include_subdomains: must be true")
	}
	if h.Preload && (h.MaxAge < MinHSTSMaxAge || !h.IncludeSubdomains) {
		hard("headers.hsts.preload: needs max_age of at least one year and include_subdomains")
	}
	switch strings.ToUpper(c.Headers.FrameOptions) {
	case "DENY", "SAMEORIGIN":
	default:
		hard("headers.frame_options: %q is not DENY or SAMEORIGIN", c.Headers.FrameOptions)
	}
	switch c.Headers.XSSProtection {
	case "", "0", "1", "1; mode=block":
	default:
		hard("headers.x_xss_protection: %q is not 0, 1 or \"1; mode=block\"", c.Headers.XSSProtection)
	}
	if c.Headers.ContentSecurityPolicy == "" {
		prod("headers.content_security_policy: must be set")
	}
}

func (c *Config) validateCORS(hard, prod reportFunc) {
	cr := c.CORS
	for _, o := range cr.AllowedOrigins {
		switch {
		case o == "*":
			prod("cors.allowed_origins: \"*\" allows every site")
			if cr.AllowCredentials {
				hard("cors: allow_credentials with origin \"*\" is never allowed")
			}
			continue
		case strings.Contains(o, "*"):
			if cr.AllowCredentials {
				prod("cors: allow_credentials with the wildcard origin %q", o)
			}
		}
		u, err := url.Parse(strings.Replace(o, "*.", "wildcard.", 1))
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			hard("cors.allowed_origins: %q is not an origin (scheme://host[:port])", o)
			continue
		}
		if isLocalHost(u.Hostname()) {
			prod("cors.allowed_origins: %q is a local origin", o)
		} else if u.Scheme != "https" {
			prod("cors.allowed_origins: %q is not https", o)
		}
	}
	for _, m := range cr.AllowedMethods {
		if !route.ValidMethod(m) {
			hard("cors.allowed_methods: %q is not an HTTP method", m)
		}
	}
	if cr.MaxAge < 0 {
		hard("cors.max_age: must not be negative")
	}
}

// RouteTable compiles the configured routes.
func (c *Config) RouteTable() (*route.Table, error) {
	specs := make([]route.Spec, 0, len(c.Routes))
	for _, r := range c.Routes {
		limit := int64(r.BodyLimit)
		if limit == 0 {
			limit = int64(c.Limits.Body)
		}
		specs = append(specs, route.Spec{
			Name: r.Name, Pattern: r.Path, Methods: r.Methods, BodyLimit: limit,
			CSP: r.CSP, Auth: r.Auth, Permission: r.Permission, WebSocket: r.WebSocket,
		})
	}
	return route.NewTable(specs)
}

// ParseCIDRs parses a list of CIDRs or bare addresses.
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	var errs []error
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("%q is not a CIDR or IP address", s))
	}
	return out, errors.Join(errs...)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// isLocalHost reports whether an origin host points at the client's own machine.
func isLocalHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && (a.IsLoopback() || a.IsUnspecified())
}

// StoreURL is store.url, or rampart.db in state_dir when it is empty.
func (c *Config) StoreURL() string {
	if c.Store.URL != "" {
		return c.Store.URL
	}
	return "sqlite://" + filepath.Join(c.StateDir, "rampart.db")
}

// AuditDir is audit.dir, or state_dir/audit when it is empty.
func (c *Config) AuditDir() string {
	if c.Audit.Dir != "" {
		return c.Audit.Dir
	}
	return filepath.Join(c.StateDir, "audit")
}

// NeedsAPIKeys reports whether some route accepts API keys.
func (c *Config) NeedsAPIKeys() bool {
	for _, r := range c.Routes {
		if r.Auth == route.AuthAPIKey || r.Auth == route.AuthAny {
			return true
		}
	}
	return false
}

// NeedsUsers reports whether some route accepts people's tokens.
func (c *Config) NeedsUsers() bool {
	for _, r := range c.Routes {
		if r.Auth == route.AuthUser || r.Auth == route.AuthAny {
			return true
		}
	}
	return false
}

func (c *Config) validateStore(hard, prod reportFunc) {
	loc, err := store.ParseURL(c.StoreURL())
	if err != nil {
		hard("store.url: %v", err)
	} else if err := loc.CheckTLS(); err != nil {
		prod("store.url: %v", err)
	}
	if c.Audit.PostgresURL != "" {
		if err := postgres.CheckTLS(c.Audit.PostgresURL); err != nil {
			prod("audit.postgres_url: %v", err)
		}
	}
	if c.Redis.URL != "" {
		u, err := url.Parse(c.Redis.URL)
		switch {
		case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "":
			hard("redis.url: not a redis:// or rediss:// URL (the value is not shown: it may hold a password)")
		case u.Scheme == "redis" && !isLoopbackHost(u.Hostname()):
			prod("redis.url: %s is not loopback and the connection is plaintext; use rediss://", u.Host)
		}
	}
}

func (c *Config) validateSecrets(hard, prod reportFunc) {
	if c.Secrets.RefreshInterval < 0 {
		hard("secrets.refresh_interval: must not be negative")
	}
	for name, ref := range c.SecretRefs() {
		r, err := secrets.ParseRef(ref)
		if err != nil {
			hard("secrets.%s: %v", name, err)
		} else if r.Scheme == secrets.SchemeInline {
			prod("secrets.%s: %v", name, secrets.ErrInlineSecret)
		}
	}
	if c.NeedsAPIKeys() && c.Secrets.APIKeyPepper == "" {
		prod("secrets.api_key_pepper: routes require API keys; set a secret reference (development generates one in state_dir)")
	}
	if c.Audit.Enabled && c.Secrets.AuditSealKey == "" {
		prod("secrets.audit_seal_key: the audit log is on; set a secret reference (development generates one in state_dir)")
	}
	if c.Audit.Enabled && c.Audit.Encrypt && c.Secrets.AuditEncryptionKey == "" {
		prod("secrets.audit_encryption_key: audit.encrypt is on; set a secret reference (development generates one in state_dir)")
	}
}

// SecretRefs maps each configured secret's name to its reference.
func (c *Config) SecretRefs() map[string]string {
	m := map[string]string{}
	for name, ref := range map[string]string{
		"api_key_pepper":       c.Secrets.APIKeyPepper,
		"audit_seal_key":       c.Secrets.AuditSealKey,
		"audit_encryption_key": c.Secrets.AuditEncryptionKey,
		"jwt_key":              c.Secrets.JWTKey,
		"totp_key":             c.Secrets.TOTPKey,
	} {
		if ref != "" {
			m[name] = ref
		}
	}
	return m
}

func (c *Config) validateRateLimits(hard reportFunc) {
	rl := c.RateLimits
	if _, err := ratelimit.ParseStoreErrorMode(rl.OnStoreError); err != nil {
		hard("rate_limits.on_store_error: %v", err)
	}
	if rl.Instances < 1 {
		hard("rate_limits.instances: must be at least 1")
	}
	if _, _, err := c.PreAuthLimit(); err != nil {
		hard("%v", err)
	}
	if _, err := c.LimitRules(); err != nil {
		hard("%v", err)
	}
}

func (c *Config) validateAudit(hard, prod reportFunc) {
	if c.Audit.RetentionDays < 0 {
		hard("audit.retention_days: must not be negative")
	}
	if !c.Audit.Enabled {
		prod("audit.enabled: the audit log must be on in production")
	}
}

func (c *Config) validateWebSocket(hard reportFunc) {
	w := c.WebSocket
	if !strings.HasPrefix(w.TicketPath, "/") {
		hard("websocket.ticket_path: %q must start with /", w.TicketPath)
	}
	if w.TicketTTL < time.Second || w.TicketTTL > 10*time.Minute {
		hard("websocket.ticket_ttl: %s is not between 1s and 10m", w.TicketTTL)
	}
	if w.MaxPerPrincipal == 0 || w.MaxTotal == 0 {
		hard("websocket: max_per_principal and max_total must be positive (negative: no cap)")
	}
	if w.MaxMessageBytes <= 0 {
		hard("websocket.max_message_bytes: must be positive")
	}
	if w.MessageRate != "" {
		if _, err := ratelimit.ParseLimit(w.MessageRate); err != nil {
			hard("websocket.message_rate: %v", err)
		}
	}
}

func (c *Config) validateIdentity(hard, prod reportFunc) {
	id := c.Identity
	if c.NeedsUsers() && !id.Enabled {
		hard("identity.enabled: routes use auth user or any; turn identity on")
	}
	if !id.Enabled {
		return
	}
	if c.Secrets.JWTKey == "" {
		prod("secrets.jwt_key: identity is on; set a secret reference (development generates one in state_dir)")
	}
	if c.Secrets.TOTPKey == "" {
		prod("secrets.totp_key: identity is on; TOTP secrets must be encrypted at rest")
	}
	if id.BcryptCost < 10 || id.BcryptCost > 16 {
		hard("identity.bcrypt_cost: %d is not between 10 and 16", id.BcryptCost)
	}
	if id.MinPasswordLength < 12 {
		prod("identity.min_password_length: %d is below 12", id.MinPasswordLength)
	}
	for name, d := range map[string]time.Duration{
		"access_token_ttl": id.AccessTokenTTL, "refresh_token_ttl": id.RefreshTokenTTL,
		"session_lifetime": id.SessionLifetime, "idle_timeout": id.IdleTimeout,
		"lockout_window": id.LockoutWindow, "lockout_duration": id.LockoutDuration,
	} {
		if d <= 0 {
			hard("identity.%s: must be positive", name)
		}
	}
	if id.AccessTokenTTL > time.Hour {
		prod("identity.access_token_ttl: %s is above one hour", id.AccessTokenTTL)
	}
	if id.LoginLimit != "" {
		if _, err := ratelimit.ParseLimit(id.LoginLimit); err != nil {
			hard("identity.login_limit: %v", err)
		}
	}
	if id.BackupCodes < 1 || id.MFAAttemptLimit < 1 || id.MFAWindow <= 0 || id.MFAIssuer == "" {
		hard("identity: backup_codes and mfa_attempt_limit must be at least 1, mfa_window positive, mfa_issuer set")
	}
	if id.MaxSessions < 1 || id.LockoutThreshold < 1 || id.TrustedDeviceDays < 0 {
		hard("identity: max_sessions and lockout_threshold must be at least 1, trusted_device_days not negative")
	}
}
