package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validProduction = `
mode: production
state_dir: /tmp/rampart
tls:
  cert_file: /etc/rampart/cert.pem
  key_file: /etc/rampart/key.pem
upstream:
  url: http://127.0.0.1:8000
cors:
  allowed_origins: ["https://app.example.com"]
routes:
  - name: api
    path: /api/*
    auth: api_key
secrets:
  api_key_pepper: env:RAMPART_PEPPER
  audit_seal_key: file:/run/secrets/audit-seal
`

// withSection returns validProduction with its top-level section key replaced
// by text (or added when absent).
func withSection(key, text string) string {
	lines := strings.Split(validProduction, "\n")
	var out []string
	skipping := false
	for _, l := range lines {
		top := l != "" && l[0] != ' '
		if top {
			skipping = strings.HasPrefix(l, key+":")
		}
		if !skipping {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + text
}

func load(t *testing.T, yaml string, env ...string) (Config, []string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path, env)
}

func TestValidProduction(t *testing.T) {
	cfg, warnings, err := load(t, validProduction)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Load = %v, warnings %v", err, warnings)
	}
	if cfg.Server.ReadHeaderTimeout != 5*time.Second || cfg.Limits.Body != 1<<20 {
		t.Errorf("defaults not applied: %+v", cfg.Server)
	}
}

func TestProductionRefusals(t *testing.T) {
	cases := []struct {
		name, key, edit, want string
	}{
		{"no tls", "tls", "tls: {}\n", "no certificate configured"},
		{"cors star", "cors", "cors: {allowed_origins: ['*']}\n", `"*" allows every site`},
		{"cors localhost", "cors", "cors: {allowed_origins: ['http://localhost:3000']}\n", "is a local origin"},
		{"cors 127", "cors", "cors: {allowed_origins: ['https://127.0.0.1']}\n", "is a local origin"},
		{"cors 0000", "cors", "cors: {allowed_origins: ['https://0.0.0.0:8080']}\n", "is a local origin"},
		{"cors credentials wildcard", "cors", "cors: {allowed_origins: ['https://*.example.com'], allow_credentials: true}\n", "allow_credentials with the wildcard origin"},
		{"cors plain http", "cors", "cors: {allowed_origins: ['http://app.example.com']}\n", "is not https"},
		{"hsts short", "headers", "headers: {hsts: {max_age: 24h}}\n", "below one year"},
		{"hsts no subdomains", "headers", "headers: {hsts: {include_subdomains: false}}\n", "include_subdomains: must be true"},
		{"debug", "server", "server: {debug: true}\n", "debug endpoints"},
		{"public admin", "server", "server: {admin_listen: '0.0.0.0:9090'}\n", "is not a loopback address"},
		{"log debug", "log", "log: {level: debug}\n", "log.level: debug"},
		{"self signed", "tls", "tls: {self_signed: true}\n", "self-signed certificate is for development only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := load(t, withSection(c.key, c.edit))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			// The same config in development mode is a warning, not an error
			// (except where it is never allowed).
			_, warnings, err := load(t, strings.Replace(withSection(c.key, c.edit), "mode: production", "mode: development", 1))
			if c.name == "no tls" {
				return
			}
			if err != nil {
				t.Fatalf("development: err = %v", err)
			}
			if !strings.Contains(strings.Join(warnings, "\n"), c.want) {
				t.Fatalf("development warnings %q lack %q", warnings, c.want)
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, _, err := load(t, `
mode: production
state_dir: /tmp/x
bogus_key: 1
server:
  listen: ":8443"
  colour: blue
upstream: {url: "http://127.0.0.1:1"}
headers: {hsts: {max_age: 1h}}
cors: {allowed_origins: ["*", "http://localhost:3000"]}
`)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		"line 4: field bogus_key not found",
		"line 7: field colour not found",
		"no certificate configured",
		"below one year",
		`"*" allows every site`,
		"is a local origin",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, _, err := load(t, validProduction,
		"RAMPART_SERVER_LISTEN=127.0.0.1:9443",
		"RAMPART_SERVER_READ_HEADER_TIMEOUT=2s",
		"RAMPART_LIMITS_BODY=2MiB",
		"RAMPART_CORS_ALLOWED_ORIGINS=https://a.example.com, https://b.example.com",
		"RAMPART_HEADERS_HSTS_PRELOAD=true",
		"RAMPART_TLS_ACME_EMAIL=ops@example.com",
		"OTHER=ignored",
	)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9443" || cfg.Server.ReadHeaderTimeout != 2*time.Second ||
		cfg.Limits.Body != 2<<20 || len(cfg.CORS.AllowedOrigins) != 2 || !cfg.Headers.HSTS.Preload ||
		cfg.TLS.ACME.Email != "ops@example.com" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	_, _, err = load(t, validProduction, "RAMPART_SERVER_READ_TIMEOUT=soon")
	if err == nil || !strings.Contains(err.Error(), "RAMPART_SERVER_READ_TIMEOUT") {
		t.Errorf("bad env value: err = %v", err)
	}
}

func TestEnvNames(t *testing.T) {
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"RAMPART_MODE", "RAMPART_TLS_ACME_DIRECTORY_URL", "RAMPART_HEADERS_HSTS_MAX_AGE"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	if strings.Contains(names, "ROUTES") {
		t.Errorf("routes are file-only: %s", names)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "1MiB": 1 << 20, "2MB": 2e6, "1 GiB": 1 << 30} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1TB", "MiB", "99999999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validProduction))
	f.Add([]byte("routes: [{name: a, path: /x/*}]\nlimits: {body: 1KiB}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		// Validation must never panic, whatever was decoded.
		_, _ = cfg.Validate()
	})
}

func TestFeatureValidation(t *testing.T) {
	tests := []struct {
		name, section, text string
		want                []string
	}{
		{"inline and unknown secrets", "secrets", "\nsecrets:\n  api_key_pepper: changeme\n  audit_seal_key: evn:KEY\n",
			[]string{"secrets.api_key_pepper: inline secret refused", "secrets.audit_seal_key:"}},
		{"missing pepper and seal key", "secrets", "\n",
			[]string{"secrets.api_key_pepper: routes require API keys", "secrets.audit_seal_key: the audit log is on"}},
		{"plaintext postgres off loopback", "store", "\nstore:\n  url: postgres://rampart@db.internal/rampart?sslmode=disable\n",
			[]string{"store.url: postgres: host db.internal is not loopback"}},
		{"plaintext redis off loopback", "redis", "\nredis:\n  url: redis://cache.internal:6379\n",
			[]string{"redis.url: cache.internal:6379 is not loopback"}},
		{"redis password never echoed", "redis", "\nredis:\n  url: \"mysql://u:hunter2@x\"\n",
			[]string{"redis.url: not a redis://"}},
		{"bad rate limits", "rate_limits", "\nrate_limits:\n  on_store_error: shrug\n  pre_auth: 5/fortnight\n  rules:\n    - {name: a, path: /x/*, limit: 60/min, key: face}\n    - {name: b, path: nope, limit: 1/s}\n",
			[]string{"rate_limits.on_store_error", "rate_limits.pre_auth", "rate_limits.rules[0] (a): rate limit rule \"a\": key", "rate_limits.rules[1] (b):"}},
		{"audit off", "audit", "\naudit:\n  enabled: false\n", []string{"audit.enabled: the audit log must be on"}},
		{"encrypt without key", "audit", "\naudit:\n  encrypt: true\n", []string{"secrets.audit_encryption_key: audit.encrypt is on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, withSection(tt.section, tt.text))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("a password reached the error: %v", err)
			}
		})
	}
}

func TestLimitRules(t *testing.T) {
	cfg, _, err := load(t, withSection("rate_limits", `
rate_limits:
  pre_auth: 5/min
  rules:
    - {name: simulation, path: /simulation/*, limit: 60/min}
    - {name: writes, methods: [write], key: ip, limit: "50/min burst 10"}
`))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := cfg.LimitRules()
	if err != nil || len(rules) != 2 {
		t.Fatalf("rules %v %v", rules, err)
	}
	for _, tc := range []struct {
		rule         int
		method, path string
		want         bool
	}{
		{0, "GET", "/simulation/start", true},
		{0, "GET", "/simulation", true},
		{0, "GET", "/agents", false},
		{1, "POST", "/agents", true},
		{1, "GET", "/agents", false},
	} {
		if got := rules[tc.rule].Applies(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s %s = %v", rules[tc.rule].Name, tc.method, tc.path, got)
		}
	}
	if rules[0].Key != "api_key" || rules[1].Limit.Burst != 10 {
		t.Errorf("%+v", rules)
	}
	if pre, ok, err := cfg.PreAuthLimit(); !ok || err != nil || pre.Key != "ip" || pre.Limit.Count != 5 {
		t.Errorf("pre_auth %+v %v %v", pre, ok, err)
	}
}
