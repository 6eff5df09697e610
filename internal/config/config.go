// Package config defines rampart's typed configuration: defaults, loading from
// one YAML file with RAMPART_* environment overrides, and validation that
// reports every problem at once. Production mode turns the checklists' "must"
// items into start-up refusals; development mode reports them as warnings.
package config

import (
	"time"
)

// Modes.
const (
	ModeProduction  = "production"
	ModeDevelopment = "development"
)

// Config is the whole of rampart's configuration.
type Config struct {
	Mode     string   `yaml:"mode"`
	StateDir string   `yaml:"state_dir"`
	Log      Log      `yaml:"log"`
	Server   Server   `yaml:"server"`
	TLS      TLS      `yaml:"tls"`
	Upstream Upstream `yaml:"upstream"`
	Headers  Headers  `yaml:"headers"`
	CORS     CORS     `yaml:"cors"`
	Limits   Limits   `yaml:"limits"`
	Routes   []Route  `yaml:"routes"`

	Store      Store      `yaml:"store"`
	Redis      Redis      `yaml:"redis"`
	Secrets    Secrets    `yaml:"secrets"`
	Auth       Auth       `yaml:"auth"`
	RateLimits RateLimits `yaml:"rate_limits"`
	Audit      Audit      `yaml:"audit"`
	Metrics    Metrics    `yaml:"metrics"`
	WebSocket  WebSocket  `yaml:"websocket"`
	Identity   Identity   `yaml:"identity"`
}

// Production reports whether the config is in production mode.
func (c *Config) Production() bool { return c.Mode == ModeProduction }

// Log configures the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text; default json in production, text in development
	Access bool   `yaml:"access"` // one line per request
}

// Server configures the listeners and their timeouts.
type Server struct {
	Listen            string        `yaml:"listen"`            // public HTTPS address
	HTTPListen        string        `yaml:"http_listen"`       // plain HTTP, redirect only; empty disables
	PublicHTTPSPort   int           `yaml:"public_https_port"` // port used in redirects; default: the port of listen
	AdminListen       string        `yaml:"admin_listen"`      // health, readiness, metrics, admin API
	AdminAllow        []string      `yaml:"admin_allow"`       // CIDRs allowed to reach the admin listener
	TrustedProxies    []string      `yaml:"trusted_proxies"`   // CIDRs whose X-Forwarded-For is believed
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	MaxHeaderBytes    ByteSize      `yaml:"max_header_bytes"`
	Debug             bool          `yaml:"debug"` // pprof on the admin listener
}

// TLS configures the public listener's certificate.
type TLS struct {
	CertFile       string        `yaml:"cert_file"`
	KeyFile        string        `yaml:"key_file"`
	SelfSigned     bool          `yaml:"self_signed"` // development only: generate into state_dir
	ReloadInterval time.Duration `yaml:"reload_interval"`
	ACME           ACME          `yaml:"acme"`
}

// ACME configures automatic certificates.
type ACME struct {
	Enabled      bool     `yaml:"enabled"`
	Hosts        []string `yaml:"hosts"`
	Email        string   `yaml:"email"`
	DirectoryURL string   `yaml:"directory_url"`
	CARootsFile  string   `yaml:"ca_roots_file"`
	CacheDir     string   `yaml:"cache_dir"`
}

// Upstream is the protected API.
type Upstream struct {
	URL                   string        `yaml:"url"`
	HealthPath            string        `yaml:"health_path"` // GET for /readyz; empty means a TCP connect
	DialTimeout           time.Duration `yaml:"dial_timeout"`
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	MaxIdleConns          int           `yaml:"max_idle_conns"`
	IdleConnTimeout       time.Duration `yaml:"idle_conn_timeout"`
}

// Headers are the security response headers.
type Headers struct {
	HSTS                      HSTS     `yaml:"hsts"`
	ContentSecurityPolicy     string   `yaml:"content_security_policy"`
	FrameOptions              string   `yaml:"frame_options"`
	ReferrerPolicy            string   `yaml:"referrer_policy"`
	PermissionsPolicy         string   `yaml:"permissions_policy"`
	CrossOriginResourcePolicy string   `yaml:"cross_origin_resource_policy"`
	XSSProtection             string   `yaml:"x_xss_protection"`
	StripResponseHeaders      []string `yaml:"strip_response_headers"`
}

// HSTS is Strict-Transport-Security.
type HSTS struct {
	MaxAge            time.Duration `yaml:"max_age"`
	IncludeSubdomains bool          `yaml:"include_subdomains"`
	Preload           bool          `yaml:"preload"`
}

// CORS is the cross-origin policy, answered at the edge.
type CORS struct {
	AllowedOrigins   []string      `yaml:"allowed_origins"`
	AllowedMethods   []string      `yaml:"allowed_methods"`
	AllowedHeaders   []string      `yaml:"allowed_headers"`
	ExposedHeaders   []string      `yaml:"exposed_headers"`
	AllowCredentials bool          `yaml:"allow_credentials"`
	MaxAge           time.Duration `yaml:"max_age"`
}

// Limits are request limits applied to every route unless a route overrides them.
type Limits struct {
	Body ByteSize `yaml:"body"`
}

// Route is one entry of the route table.
type Route struct {
	Name       string   `yaml:"name"`
	Path       string   `yaml:"path"`    // "/exact" or "/prefix/*"
	Methods    []string `yaml:"methods"` // empty: every method
	BodyLimit  ByteSize `yaml:"body_limit"`
	CSP        string   `yaml:"csp"`
	Auth       string   `yaml:"auth"`       // none (default)
	Permission string   `yaml:"permission"` // read, write, admin, by_method
	WebSocket  bool     `yaml:"websocket"`
}

// Store is where API keys (and later users and sessions) live.
type Store struct {
	// URL is sqlite:///path/rampart.db, a file path, or postgres://...;
	// empty means rampart.db in state_dir.
	URL string `yaml:"url"`
}

// Redis is the shared state of several instances: rate limits and key
// revocations. Empty URL keeps that state in memory (one instance).
type Redis struct {
	URL string `yaml:"url"` // redis://[user:pass@]host:port/db or rediss://
}

// Secrets are references to the secrets rampart needs (env:NAME,
// file:/path, aws-sm:NAME[#field], vault:MOUNT/PATH#field).
type Secrets struct {
	RefreshInterval    time.Duration `yaml:"refresh_interval"`
	APIKeyPepper       string        `yaml:"api_key_pepper"`
	AuditSealKey       string        `yaml:"audit_seal_key"`
	AuditEncryptionKey string        `yaml:"audit_encryption_key"`
	JWTKey             string        `yaml:"jwt_key"`  // HS256 signing key for people's access tokens
	TOTPKey            string        `yaml:"totp_key"` // encrypts TOTP secrets at rest
}

// Auth tunes API key authentication.
type Auth struct {
	// CacheTTL bounds how long a key revoked on another instance can still
	// be accepted here.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// UsageInterval is how often last_used_at is written per key at most.
	UsageInterval time.Duration `yaml:"usage_interval"`
}

// RateLimits are the rate-limit rules and their failure mode.
type RateLimits struct {
	// OnStoreError is fail_closed, fail_open or local (per-instance limits,
	// divided by instances) while Redis is unreachable.
	OnStoreError string `yaml:"on_store_error"`
	Instances    int    `yaml:"instances"`
	// PreAuth limits every request to a route that needs a key, per client
	// IP, before the key is checked: credential guessing is throttled.
	PreAuth string          `yaml:"pre_auth"`
	Rules   []RateLimitRule `yaml:"rules"`
}

// RateLimitRule limits requests matching a path pattern and methods.
type RateLimitRule struct {
	Name    string   `yaml:"name"`
	Path    string   `yaml:"path"`    // route pattern: "/exact" or "/prefix/*"
	Methods []string `yaml:"methods"` // empty: every method; "read" and "write" name the method classes
	Key     string   `yaml:"key"`     // api_key (default), ip or global
	Limit   string   `yaml:"limit"`   // "60/min", "1000/hour", "100/min burst 20"
}

// Audit is the tamper-evident audit log.
type Audit struct {
	Enabled bool `yaml:"enabled"`
	// Dir holds the segment files; default state_dir/audit.
	Dir           string `yaml:"dir"`
	Encrypt       bool   `yaml:"encrypt"`
	RetentionDays int    `yaml:"retention_days"`
	Stdout        bool   `yaml:"stdout"` // also write events to standard output
	// PostgresURL adds a queryable PostgreSQL table as a second sink.
	PostgresURL string `yaml:"postgres_url"`
	// Wait holds each state-changing response until its event is on disk.
	Wait bool `yaml:"wait"`
}

// Metrics is the Prometheus endpoint on the admin listener.
type Metrics struct {
	Enabled       bool          `yaml:"enabled"`
	SlowThreshold time.Duration `yaml:"slow_threshold"`
}

// WebSocket governs routes with websocket: true: single-use tickets, caps,
// idle reaping and message limits.
type WebSocket struct {
	TicketPath      string        `yaml:"ticket_path"` // POST here (with an API key) for a ticket
	TicketTTL       time.Duration `yaml:"ticket_ttl"`
	BindClientIP    bool          `yaml:"bind_client_ip"` // a ticket works only from the IP it was issued to
	BindOrigin      bool          `yaml:"bind_origin"`
	MaxPerPrincipal int           `yaml:"max_per_principal"`
	MaxTotal        int           `yaml:"max_total"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	PingInterval    time.Duration `yaml:"ping_interval"`
	MaxMessageBytes ByteSize      `yaml:"max_message_bytes"`
	MessageRate     string        `yaml:"message_rate"` // per connection, e.g. "20/s"; empty: off
}

// Identity is people: passwords, TOTP MFA, JWT access and refresh tokens,
// sessions and lockout, served under /.rampart/ on the public listener for
// routes with auth: user or any.
type Identity struct {
	Enabled           bool          `yaml:"enabled"`
	Issuer            string        `yaml:"issuer"`
	AccessTokenTTL    time.Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL   time.Duration `yaml:"refresh_token_ttl"`
	SessionLifetime   time.Duration `yaml:"session_lifetime"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	MaxSessions       int           `yaml:"max_sessions"`
	BcryptCost        int           `yaml:"bcrypt_cost"`
	MinPasswordLength int           `yaml:"min_password_length"`
	LockoutThreshold  int           `yaml:"lockout_threshold"`
	LockoutWindow     time.Duration `yaml:"lockout_window"`
	LockoutDuration   time.Duration `yaml:"lockout_duration"`
	MFARequiredRoles  []string      `yaml:"mfa_required_roles"`
	MFAIssuer         string        `yaml:"mfa_issuer"`        // the name authenticator apps show
	BackupCodes       int           `yaml:"backup_codes"`      // issued at enrolment, each usable once
	MFAAttemptLimit   int           `yaml:"mfa_attempt_limit"` // wrong codes within mfa_window block MFA
	MFAWindow         time.Duration `yaml:"mfa_window"`
	// LoginLimit limits login, MFA verification and password reset per
	// client IP (OptiBid: authentication 5 requests/minute); empty: off.
	LoginLimit        string `yaml:"login_limit"`
	TrustedDeviceDays int    `yaml:"trusted_device_days"` // 0 turns trusted devices off
}

// Default returns the configuration every file is applied on top of.
func Default() Config {
	return Config{
		Mode:     ModeProduction,
		StateDir: "/var/lib/rampart",
		Log:      Log{Level: "info", Access: true},
		Server: Server{
			Listen:            ":8443",
			HTTPListen:        ":8080",
			AdminListen:       "127.0.0.1:9090",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   30 * time.Second,
			MaxHeaderBytes:    32 << 10,
		},
		TLS: TLS{ReloadInterval: 10 * time.Second},
		Upstream: Upstream{
			DialTimeout:           5 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConns:          512,
			IdleConnTimeout:       90 * time.Second,
		},
		Headers: Headers{
			HSTS:                      HSTS{MaxAge: 365 * 24 * time.Hour, IncludeSubdomains: true},
			ContentSecurityPolicy:     "default-src 'none'; frame-ancestors 'none'",
			FrameOptions:              "DENY",
			ReferrerPolicy:            "no-referrer",
			PermissionsPolicy:         "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
			CrossOriginResourcePolicy: "same-origin",
			XSSProtection:             "0",
			StripResponseHeaders:      []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Runtime", "X-Generator", "Via"},
		},
		CORS: CORS{
			AllowedMethods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
			AllowedHeaders: []string{"Authorization", "Content-Type", "X-API-Key", "X-Request-ID"},
			MaxAge:         10 * time.Minute,
		},
		Limits:     Limits{Body: 1 << 20},
		Secrets:    Secrets{RefreshInterval: 5 * time.Minute},
		Auth:       Auth{CacheTTL: time.Second, UsageInterval: time.Minute},
		RateLimits: RateLimits{OnStoreError: "local", Instances: 1},
		Audit:      Audit{Enabled: true, Wait: true},
		Metrics:    Metrics{Enabled: true, SlowThreshold: 2 * time.Second},
		Identity: Identity{
			Issuer: "rampart", AccessTokenTTL: 30 * time.Minute, RefreshTokenTTL: 7 * 24 * time.Hour,
			SessionLifetime: 7 * 24 * time.Hour, IdleTimeout: 24 * time.Hour, MaxSessions: 5,
			BcryptCost: 12, MinPasswordLength: 12,
			LockoutThreshold: 5, LockoutWindow: 15 * time.Minute, LockoutDuration: 15 * time.Minute,
			MFARequiredRoles: []string{"admin"}, TrustedDeviceDays: 30,
			MFAIssuer: "Rampart", BackupCodes: 10, MFAAttemptLimit: 5, MFAWindow: 15 * time.Minute,
			LoginLimit: "5/min",
		},
		WebSocket: WebSocket{
			TicketPath: "/.rampart/ws/ticket", TicketTTL: 30 * time.Second,
			MaxPerPrincipal: 10, MaxTotal: 1000,
			IdleTimeout: 5 * time.Minute, PingInterval: 30 * time.Second,
			MaxMessageBytes: 64 << 10,
		},
	}
}
