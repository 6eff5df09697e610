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
		Limits: Limits{Body: 1 << 20},
	}
}
