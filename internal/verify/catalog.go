package verify

import "slices"

// checkDef describes one check; the area functions run them.
type checkDef struct {
	ID          string
	Title       string
	Area        Area
	Severity    Severity
	Checklist   []string
	Remediation string
	// budget is the most requests the check may send; nil means none (it
	// reads the baseline or the responses of an earlier check in its area).
	budget func(o *Options) int
}

func (d *checkDef) maxRequests(o *Options) int {
	if d.budget == nil {
		return 0
	}
	return d.budget(o)
}

func fixed(n int) func(*Options) int { return func(*Options) int { return n } }

// CheckInfo describes a check for documentation and SARIF rules.
type CheckInfo struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Area        Area     `json:"area"`
	Severity    Severity `json:"severity"`
	Checklist   []string `json:"checklist"`
	Remediation string   `json:"remediation"`
	// MaxRequests is the budget under the given options.
	MaxRequests int `json:"max_requests"`
}

// Catalog lists every check in report order with its budget under opts
// (defaults applied).
func Catalog(opts Options) []CheckInfo {
	o := opts.withDefaults()
	out := make([]CheckInfo, 0, len(catalog))
	for _, d := range catalog {
		out = append(out, CheckInfo{ID: d.ID, Title: d.Title, Area: d.Area, Severity: d.Severity,
			Checklist: slices.Clone(d.Checklist), Remediation: d.Remediation, MaxRequests: d.maxRequests(&o)})
	}
	return out
}

// ChecklistItems maps the checklist references used in results to the item
// they stand for. "rideshare:" refers to checklists/rideshare-api.md
// (P0.1 … P3.17 by priority and number, VC.n the n-th line of its
// Verification Checklist); "optibid:" to checklists/optibid-platform.md by
// section number.
var ChecklistItems = map[string]string{
	"rideshare:P0.1":  "Replace Default API Key",
	"rideshare:P0.2":  "Fix WebSocket Authentication",
	"rideshare:P0.3":  "Enable HTTPS/TLS",
	"rideshare:P0.4":  "Configure Secrets Manager",
	"rideshare:P0.5":  "Set Up IAM Roles",
	"rideshare:P0.6":  "Enable Network Isolation",
	"rideshare:P1.7":  "Add API Rate Limiting",
	"rideshare:P1.8":  "WebSocket Connection Limits",
	"rideshare:P1.9":  "Migrate to PostgreSQL",
	"rideshare:P1.10": "Add Audit Logging",
	"rideshare:P1.11": "Configure Monitoring Alarms",
	"rideshare:P2.12": "Implement Multi-Key Authentication",
	"rideshare:P2.13": "Add Security Headers",
	"rideshare:P2.14": "Enable Container Image Scanning",
	"rideshare:P2.15": "Configure Secret Rotation",
	"rideshare:P3.16": "GDPR Compliance",
	"rideshare:P3.17": "SOC 2 Preparation",
	"rideshare:VC.1":  "Verification: Default API key replaced",
	"rideshare:VC.2":  "Verification: WebSocket auth upgraded from query string",
	"rideshare:VC.3":  "Verification: All traffic over HTTPS",
	"rideshare:VC.4":  "Verification: Secrets in Secrets Manager (not env vars)",
	"rideshare:VC.5":  "Verification: IAM roles configured with least privilege",
	"rideshare:VC.6":  "Verification: VPC with private subnets",
	"rideshare:VC.7":  "Verification: Rate limiting enabled",
	"rideshare:VC.8":  "Verification: Audit logging active",
	"rideshare:VC.9":  "Verification: Monitoring alarms configured",
	"rideshare:VC.10": "Verification: Container images scanned",
	"rideshare:VC.11": "Verification: Security headers present",
	"rideshare:VC.12": "Verification: Penetration test completed",
	"optibid:1":       "Environment Configuration (SECRET_KEY, JWT)",
	"optibid:2":       "CORS Configuration",
	"optibid:3":       "HTTPS/TLS Configuration (certificates, redirect, HSTS)",
	"optibid:4":       "Rate Limiting Configuration",
	"optibid:5":       "Security Headers",
	"optibid:6":       "Database Security",
	"optibid:7":       "Authentication & Authorization",
	"optibid:8":       "API Security (keys, input validation, request size limits)",
	"optibid:9":       "Logging & Monitoring",
	"optibid:10":      "Compliance & Data Protection",
	"optibid:11":      "Backup & Disaster Recovery",
	"optibid:12":      "External Services Security",
	"optibid:13":      "Network Security",
	"optibid:14":      "Dependency Security",
	"optibid:15":      "Testing & Validation (security testing)",
	"optibid:16":      "Documentation",
	"optibid:17":      "Incident Response",
	"optibid:18":      "Pre- and Post-Deployment Verification",
}

var (
	refTLS      = []string{"rideshare:P0.3", "rideshare:VC.3", "optibid:3", "optibid:18"}
	refHSTS     = []string{"rideshare:P0.3", "optibid:3", "optibid:5"}
	refHeaders  = []string{"rideshare:P2.13", "rideshare:VC.11", "optibid:5"}
	refCORS     = []string{"optibid:2", "optibid:15", "optibid:18"}
	refCookies  = []string{"optibid:7", "optibid:8"}
	refAuth     = []string{"rideshare:P2.12", "optibid:7", "optibid:15", "optibid:18"}
	refDefault  = []string{"rideshare:P0.1", "rideshare:VC.1", "optibid:1", "optibid:18"}
	refWS       = []string{"rideshare:P0.2", "rideshare:VC.2"}
	refRate     = []string{"rideshare:P1.7", "rideshare:VC.7", "optibid:4", "optibid:15", "optibid:18"}
	refLimits   = []string{"optibid:8"}
	refExposure = []string{"optibid:18", "optibid:15"}
)

// Check definitions, one variable each so area code refers to them by name.
var (
	defHTTPS = &checkDef{ID: "TLS-001", Title: "Target is served over HTTPS", Area: AreaTLS, Severity: SeverityCritical,
		Checklist:   refTLS,
		Remediation: "Serve the API only over HTTPS (TLS 1.2+), terminating TLS at the gateway or load balancer."}
	defTLS10 = &checkDef{ID: "TLS-002", Title: "TLS 1.0 is refused", Area: AreaTLS, Severity: SeverityHigh,
		Checklist: refTLS, budget: fixed(1),
		Remediation: "Allow only TLS 1.2 and 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3; Go: MinVersion tls.VersionTLS12; AWS ALB: ELBSecurityPolicy-TLS13-1-2-2021-06)."}
	defTLS11 = &checkDef{ID: "TLS-003", Title: "TLS 1.1 is refused", Area: AreaTLS, Severity: SeverityHigh,
		Checklist: refTLS, budget: fixed(1),
		Remediation: "Allow only TLS 1.2 and 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3; Go: MinVersion tls.VersionTLS12)."}
	defSuiteKex = &checkDef{ID: "TLS-004", Title: "TLS 1.2 offers only ECDHE key exchange", Area: AreaTLS, Severity: SeverityMedium,
		Checklist: refTLS, budget: func(*Options) int { return len(nonECDHESuites) + 1 },
		Remediation: "Offer only ECDHE suites with TLS 1.2 (nginx: ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305)."}
	defSuiteCBC = &checkDef{ID: "TLS-005", Title: "TLS 1.2 offers no CBC suites", Area: AreaTLS, Severity: SeverityMedium,
		Checklist: refTLS, budget: func(*Options) int { return len(cbcSuites) },
		Remediation: "Offer only AEAD suites (AES-GCM, ChaCha20-Poly1305) with TLS 1.2; remove every *-CBC-* / *-SHA suite."}
	defSuiteBroken = &checkDef{ID: "TLS-006", Title: "No RC4, 3DES, NULL, export or anonymous suites", Area: AreaTLS, Severity: SeverityHigh,
		Checklist: refTLS, budget: func(*Options) int { return len(brokenSuites) },
		Remediation: "Remove RC4, 3DES, NULL, EXPORT and anonymous (aNULL) suites; never use @SECLEVEL=0 or ALL in an OpenSSL cipher string."}
	defChain = &checkDef{ID: "TLS-010", Title: "Certificate chain is trusted", Area: AreaTLS, Severity: SeverityCritical,
		Checklist:   refTLS,
		Remediation: "Serve a certificate from a public CA (ACM, Let's Encrypt) with the full intermediate chain."}
	defHostname = &checkDef{ID: "TLS-011", Title: "Certificate matches the hostname", Area: AreaTLS, Severity: SeverityCritical,
		Checklist:   refTLS,
		Remediation: "Issue the certificate for the exact host name clients use (SAN entry), or a wildcard that covers it."}
	defExpiry = &checkDef{ID: "TLS-012", Title: "Certificate is valid for at least 30 more days", Area: AreaTLS, Severity: SeverityHigh,
		Checklist:   refTLS,
		Remediation: "Renew the certificate and automate renewal (ACM, certbot) with an alarm 30 days before expiry."}
	defKeySize = &checkDef{ID: "TLS-013", Title: "Certificate key is strong", Area: AreaTLS, Severity: SeverityMedium,
		Checklist:   refTLS,
		Remediation: "Use an ECDSA P-256 (or larger) or RSA 2048-bit (or larger) key."}
	defSigAlg = &checkDef{ID: "TLS-014", Title: "Certificate signature uses SHA-256 or better", Area: AreaTLS, Severity: SeverityMedium,
		Checklist:   refTLS,
		Remediation: "Reissue certificates signed with SHA-256 or stronger; SHA-1 and MD5 signatures are forgeable."}

	defRedirect = &checkDef{ID: "HTTPS-001", Title: "Plain HTTP redirects to HTTPS on the same host", Area: AreaHTTPS, Severity: SeverityHigh,
		Checklist:   []string{"rideshare:P0.3", "rideshare:VC.3", "optibid:3"},
		Remediation: "Answer every plain-HTTP request with 301/308 to https:// on the same host before anything else (nginx: return 301 https://$host$request_uri;)."}
	defHSTS = &checkDef{ID: "HTTPS-002", Title: "HSTS with max-age of at least one year", Area: AreaHTTPS, Severity: SeverityHigh,
		Checklist:   refHSTS,
		Remediation: "Send Strict-Transport-Security: max-age=31536000; includeSubDomains on every HTTPS response."}
	defHSTSSub = &checkDef{ID: "HTTPS-003", Title: "HSTS includes subdomains", Area: AreaHTTPS, Severity: SeverityMedium,
		Checklist:   refHSTS,
		Remediation: "Add includeSubDomains to Strict-Transport-Security once every subdomain serves HTTPS."}
	defHSTSPlain = &checkDef{ID: "HTTPS-004", Title: "No HSTS over plain HTTP", Area: AreaHTTPS, Severity: SeverityLow,
		Checklist:   []string{"optibid:3"},
		Remediation: "Send Strict-Transport-Security only on HTTPS responses; over plain HTTP browsers ignore it and it signals a misrouted configuration."}

	defNoSniff = &checkDef{ID: "HDR-001", Title: "X-Content-Type-Options: nosniff", Area: AreaHeaders, Severity: SeverityMedium,
		Checklist:   refHeaders,
		Remediation: "Send X-Content-Type-Options: nosniff on every response."}
	defFraming = &checkDef{ID: "HDR-002", Title: "Framing is forbidden (X-Frame-Options or CSP frame-ancestors)", Area: AreaHeaders, Severity: SeverityMedium,
		Checklist:   refHeaders,
		Remediation: "Send X-Frame-Options: DENY and/or Content-Security-Policy: frame-ancestors 'none'."}
	defCSP = &checkDef{ID: "HDR-003", Title: "Content-Security-Policy is set", Area: AreaHeaders, Severity: SeverityMedium,
		Checklist:   refHeaders,
		Remediation: "Send a Content-Security-Policy; for a JSON API: default-src 'none'; frame-ancestors 'none'."}
	defCSPSafe = &checkDef{ID: "HDR-004", Title: "Content-Security-Policy has no unsafe sources", Area: AreaHeaders, Severity: SeverityMedium,
		Checklist:   refHeaders,
		Remediation: "Remove 'unsafe-inline', 'unsafe-eval', wildcard and http: sources from script, object and default sources; use nonces or hashes."}
	defReferrer = &checkDef{ID: "HDR-005", Title: "Referrer-Policy does not leak URLs", Area: AreaHeaders, Severity: SeverityLow,
		Checklist:   refHeaders,
		Remediation: "Send Referrer-Policy: no-referrer (or strict-origin-when-cross-origin)."}
	defPermissions = &checkDef{ID: "HDR-006", Title: "Permissions-Policy is set", Area: AreaHeaders, Severity: SeverityLow,
		Checklist:   refHeaders,
		Remediation: "Send a Permissions-Policy that disables unused features, e.g. camera=(), microphone=(), geolocation=()."}
	defCORP = &checkDef{ID: "HDR-007", Title: "Cross-Origin-Resource-Policy is set", Area: AreaHeaders, Severity: SeverityLow,
		Checklist:   refHeaders,
		Remediation: "Send Cross-Origin-Resource-Policy: same-origin (or same-site)."}
	defBanner = &checkDef{ID: "HDR-008", Title: "No version banners", Area: AreaHeaders, Severity: SeverityLow,
		Checklist:   []string{"optibid:18", "rideshare:P2.13"},
		Remediation: "Remove X-Powered-By, X-AspNet-Version and similar headers, and strip versions from Server (nginx: server_tokens off)."}

	defCORSHostile = &checkDef{ID: "CORS-001", Title: "Hostile origins are not allowed", Area: AreaCORS, Severity: SeverityHigh,
		Checklist: refCORS, budget: func(o *Options) int { return 2 * len(hostileOrigins(o, "x")) },
		Remediation: "Allow only an explicit list of exact origins; compare the whole Origin string, never with prefix, suffix or regex matching, and never reflect it."}
	defCORSLocal = &checkDef{ID: "CORS-002", Title: "Development origins (localhost, 127.0.0.1, 0.0.0.0) are not allowed", Area: AreaCORS, Severity: SeverityHigh,
		Checklist: refCORS, budget: fixed(2 * len(localOrigins)),
		Remediation: "Remove localhost, 127.0.0.1 and 0.0.0.0 origins from the production allow-list."}
	defCORSCreds = &checkDef{ID: "CORS-003", Title: "No foreign origin is allowed with credentials", Area: AreaCORS, Severity: SeverityCritical,
		Checklist:   refCORS,
		Remediation: "Never echo the request Origin together with Access-Control-Allow-Credentials: true; allow credentials only for listed origins."}
	defCORSWildcard = &checkDef{ID: "CORS-004", Title: "No wildcard origin with credentials", Area: AreaCORS, Severity: SeverityHigh,
		Checklist:   refCORS,
		Remediation: "Do not combine Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true; list the origins."}

	defCookieSecure = &checkDef{ID: "COOKIE-001", Title: "Cookies are Secure", Area: AreaCookies, Severity: SeverityHigh,
		Checklist: refCookies, budget: func(o *Options) int { return len(o.CookiePaths) },
		Remediation: "Set the Secure attribute on every cookie."}
	defCookieHTTPOnly = &checkDef{ID: "COOKIE-002", Title: "Session cookies are HttpOnly", Area: AreaCookies, Severity: SeverityMedium,
		Checklist:   refCookies,
		Remediation: "Set HttpOnly on session and token cookies so scripts cannot read them."}
	defCookieSameSite = &checkDef{ID: "COOKIE-003", Title: "Cookies set SameSite", Area: AreaCookies, Severity: SeverityMedium,
		Checklist:   refCookies,
		Remediation: "Set SameSite=Lax or Strict on every cookie (SameSite=None only with Secure and a CSRF defence)."}
	defCookieHost = &checkDef{ID: "COOKIE-004", Title: "Session cookies use the __Host- prefix", Area: AreaCookies, Severity: SeverityLow,
		Checklist:   refCookies,
		Remediation: "Name session cookies __Host-… with Secure, Path=/ and no Domain so subdomains cannot overwrite them."}

	defAuthNone = &checkDef{ID: "AUTH-001", Title: "Protected paths refuse requests without credentials (401)", Area: AreaAuth, Severity: SeverityCritical,
		Checklist: refAuth, budget: func(o *Options) int { return len(o.ProtectedPaths) },
		Remediation: "Require authentication on every protected route and answer 401 with WWW-Authenticate when credentials are missing."}
	defAuthGarbage = &checkDef{ID: "AUTH-002", Title: "Protected paths refuse garbage credentials (401)", Area: AreaAuth, Severity: SeverityCritical,
		Checklist: refAuth, budget: func(o *Options) int { return len(o.ProtectedPaths) },
		Remediation: "Reject malformed keys and tokens with 401 before any lookup; never fall through to the upstream."}
	defAuthDefault = &checkDef{ID: "AUTH-003", Title: "Known default keys and secrets are refused", Area: AreaAuth, Severity: SeverityCritical,
		Checklist: refDefault, budget: func(o *Options) int {
			if len(o.ProtectedPaths) == 0 {
				return 0
			}
			return 2*len(defaultKeys) + len(defaultJWTSecrets)
		},
		Remediation: "Replace default keys and JWT secrets (dev-api-key-change-in-production, your-secret-key-here-change-in-production) with 256-bit random values from a secrets manager (rampart secrets generate)."}
	defAuthQuery = &checkDef{ID: "AUTH-004", Title: "API keys in the query string are refused", Area: AreaAuth, Severity: SeverityHigh,
		Checklist: append([]string{"rideshare:P0.2"}, refAuth...), budget: func(o *Options) int {
			if o.Key == "" || len(o.ProtectedPaths) == 0 {
				return 0
			}
			return 2
		},
		Remediation: "Accept keys only in a header (Authorization or X-API-Key); query strings end up in logs, proxies and browser history."}
	defAuthLeak = &checkDef{ID: "AUTH-005", Title: "Error bodies leak no stack traces, frameworks or versions", Area: AreaAuth, Severity: SeverityMedium,
		Checklist: []string{"optibid:8", "optibid:18"}, budget: fixed(1),
		Remediation: "Answer errors with a generic body (e.g. {\"error\":\"not found\"}); turn off debug mode and framework error pages."}

	defWSNoTicket = &checkDef{ID: "WS-001", Title: "WebSocket upgrade without a ticket is refused", Area: AreaWebSocket, Severity: SeverityHigh,
		Checklist: refWS, budget: func(o *Options) int { return len(o.WSPaths) },
		Remediation: "Require a single-use ticket (issued over authenticated REST, valid 30 s) before accepting the upgrade; refuse with 401."}
	defWSQueryKey = &checkDef{ID: "WS-002", Title: "WebSocket upgrade with an API key in the query is refused", Area: AreaWebSocket, Severity: SeverityHigh,
		Checklist: refWS, budget: func(o *Options) int {
			if o.Key == "" {
				return 0
			}
			return len(o.WSPaths)
		},
		Remediation: "Never accept API keys in the WebSocket URL; exchange the key for a ticket over REST."}
	defWSReplay = &checkDef{ID: "WS-003", Title: "A used WebSocket ticket is refused the second time", Area: AreaWebSocket, Severity: SeverityHigh,
		Checklist: refWS, budget: func(o *Options) int {
			if o.Key == "" || len(o.WSPaths) == 0 {
				return 0
			}
			return 3
		},
		Remediation: "Delete the ticket atomically when it is used (Redis GETDEL) so it cannot be replayed."}

	defRateLimit = &checkDef{ID: "RL-001", Title: "Rate limit answers 429 once the limit is exceeded", Area: AreaRateLimit, Severity: SeverityHigh,
		Checklist: refRate, budget: func(o *Options) int {
			if o.RateLimit.Limit <= 0 || o.RateLimit.Path == "" {
				return 0
			}
			return min(o.RateLimit.Limit+1, o.MaxRequests)
		},
		Remediation: "Limit requests per client or key on every route (e.g. 60/min) with a shared store (Redis) and answer 429 beyond the limit."}
	defRetryAfter = &checkDef{ID: "RL-002", Title: "429 carries Retry-After", Area: AreaRateLimit, Severity: SeverityLow,
		Checklist:   refRate,
		Remediation: "Send Retry-After (seconds) with every 429."}
	defRateHeaders = &checkDef{ID: "RL-003", Title: "Rate-limit headers are sent", Area: AreaRateLimit, Severity: SeverityLow,
		Checklist:   refRate,
		Remediation: "Send RateLimit-Policy and RateLimit (IETF draft) or X-RateLimit-Limit/-Remaining headers."}

	defBodyLimit = &checkDef{ID: "LIM-001", Title: "Oversized request body is refused with 413", Area: AreaLimits, Severity: SeverityMedium,
		Checklist: refLimits, budget: fixed(1),
		Remediation: "Limit request bodies (e.g. 1 MiB; nginx client_max_body_size) and answer 413 without reading the rest."}
	defHeaderLimit = &checkDef{ID: "LIM-002", Title: "Oversized request header is refused with 431", Area: AreaLimits, Severity: SeverityLow,
		Checklist: refLimits, budget: fixed(1),
		Remediation: "Limit header size (e.g. 32 KiB; Go http.Server.MaxHeaderBytes, nginx large_client_header_buffers with error_page 494 =431)."}

	defExpEnv = &checkDef{ID: "EXP-001", Title: "No .env files are served", Area: AreaExposure, Severity: SeverityCritical,
		Checklist: append([]string{"rideshare:P0.4", "optibid:1"}, refExposure...), budget: fixed(len(envPaths)),
		Remediation: "Never deploy .env files under the web root; deny dotfiles at the proxy (nginx: location ~ /\\. { deny all; }) and rotate every secret they held."}
	defExpGit = &checkDef{ID: "EXP-002", Title: "No .git directory is served", Area: AreaExposure, Severity: SeverityHigh,
		Checklist: refExposure, budget: fixed(len(gitPaths)),
		Remediation: "Remove .git from the deployed tree and deny dotfiles at the proxy."}
	defExpDebug = &checkDef{ID: "EXP-003", Title: "No debug endpoints (pprof, expvar, actuator)", Area: AreaExposure, Severity: SeverityHigh,
		Checklist: refExposure, budget: fixed(len(debugPaths)),
		Remediation: "Serve /debug/pprof, /debug/vars and actuator endpoints only on a private admin listener, never on the public address."}
	defExpDocs = &checkDef{ID: "EXP-004", Title: "No API documentation on the public address", Area: AreaExposure, Severity: SeverityLow,
		Checklist: refExposure, budget: fixed(len(docsPaths)),
		Remediation: "Disable /docs, /redoc and the OpenAPI schema in production (FastAPI: docs_url=None, redoc_url=None, openapi_url=None) or put them behind authentication."}
	defExpMetrics = &checkDef{ID: "EXP-005", Title: "No metrics on the public address", Area: AreaExposure, Severity: SeverityMedium,
		Checklist: append([]string{"rideshare:P1.11"}, refExposure...), budget: fixed(len(metricsPaths)),
		Remediation: "Serve /metrics on a private listener or behind authentication."}
	defExpStatus = &checkDef{ID: "EXP-006", Title: "No server-status pages", Area: AreaExposure, Severity: SeverityMedium,
		Checklist: refExposure, budget: fixed(len(statusPaths)),
		Remediation: "Disable mod_status / stub_status on the public address or restrict it to loopback."}
	defExpListing = &checkDef{ID: "EXP-007", Title: "No directory listings", Area: AreaExposure, Severity: SeverityMedium,
		Checklist: refExposure, budget: fixed(len(listingPaths)),
		Remediation: "Turn off directory listings (nginx: autoindex off; Apache: Options -Indexes)."}
)

// catalog lists the checks in report order.
var catalog = append([]*checkDef{
	defHTTPS, defTLS10, defTLS11, defSuiteKex, defSuiteCBC, defSuiteBroken,
	defChain, defHostname, defExpiry, defKeySize, defSigAlg,
	defRedirect, defHSTS, defHSTSSub, defHSTSPlain,
	defNoSniff, defFraming, defCSP, defCSPSafe, defReferrer, defPermissions, defCORP, defBanner,
	defCORSHostile, defCORSLocal, defCORSCreds, defCORSWildcard,
	defCookieSecure, defCookieHTTPOnly, defCookieSameSite, defCookieHost,
	defAuthNone, defAuthGarbage, defAuthDefault, defAuthQuery, defAuthLeak,
	defWSNoTicket, defWSQueryKey, defWSReplay,
	defRateLimit, defRetryAfter, defRateHeaders,
	defBodyLimit, defHeaderLimit,
	defExpEnv, defExpGit, defExpDebug, defExpDocs, defExpMetrics, defExpStatus, defExpListing,
}, manualDefs...)
