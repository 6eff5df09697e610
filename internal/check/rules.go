package check

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/rampart-security/rampart/internal/secrets"
)

// origin says where an environment value was written, which decides how a
// secret in it is reported.
type origin int

const (
	fromDotEnv         origin = iota // a .env file
	fromCompose                      // a literal in a compose file's environment
	fromComposeVar                   // ${VAR} in a compose file: the value comes from the host
	fromComposeDefault               // the default of ${VAR:-default} in a compose file
	fromManifest                     // a Kubernetes env value or ConfigMap entry
	fromConfig                       // rampart's own config file
)

// interpolated marks where a compose ${VAR} without a default stood.
const interpolated = "RAMPARTINTERPOLATED"

type findings struct {
	file    string
	list    []Finding
	visited int // nodes walked by configNode, bounded against alias bombs
}

func (f *findings) add(id string, line int, format string, a ...any) *Finding {
	f.list = append(f.list, newFinding(id, f.file, line, fmt.Sprintf(format, a...)))
	return &f.list[len(f.list)-1]
}

// envVar applies every environment rule to one KEY=value.
func (f *findings) envVar(o origin, key, value string, line int) {
	k := strings.ToUpper(strings.TrimSpace(key))
	v := strings.TrimSpace(value)
	if v == "" || isSecretRef(v) {
		return
	}
	if u, ok := parseServiceURL(v); ok {
		f.serviceURL(o, k, u, line)
		return
	}
	lv := strings.ToLower(v)
	if isSecretKey(k) && !isPlainScalar(v) {
		f.secret(o, k, v, line)
	}
	switch {
	case (k == "DEBUG" || strings.HasSuffix(k, "_DEBUG") || k == "DEBUG_MODE") && truthy(lv):
		f.add(IDDebug, line, "%s=%s enables debug mode", k, v)
	case isEnvironmentKey(k) && (lv == "development" || lv == "dev" || lv == "debug" || lv == "local"):
		f.add(IDDevelopmentMode, line, "%s=%s runs the app in development mode", k, v)
	case (k == "LOG_LEVEL" || k == "LOGLEVEL" || strings.HasSuffix(k, "_LOG_LEVEL")) && (lv == "debug" || lv == "trace"):
		f.add(IDDebugLogLevel, line, "%s=%s logs at debug level", k, v)
	case k == "ENABLE_REDIS" && falsy(lv):
		f.add(IDMemoryRateLimit, line, "ENABLE_REDIS=%s: rate limits fall back to in-memory counters", v)
	case strings.Contains(k, "RATE") && strings.Contains(k, "LIMIT") && (strings.Contains(k, "STORAGE") || strings.Contains(k, "BACKEND")) && strings.HasPrefix(lv, "memory"):
		f.add(IDMemoryRateLimit, line, "%s=%s keeps rate-limit counters in process memory", k, v)
	case strings.Contains(k, "JWT") && strings.Contains(k, "ALGORITHM") && lv == "none":
		f.add(IDJWTAlgNone, line, "%s=none accepts unsigned tokens", k)
	case (k == "AUDIT_LOG_ENABLED" || k == "AUDIT_LOG_ENCRYPTED") && falsy(lv):
		f.add(IDAuditLogDisabled, line, "%s=%s", k, v)
	}
	if isCORSKey(k) {
		f.cors(k, splitList(v), line)
	}
}

// cors reports wildcard and local origins in a list.
func (f *findings) cors(k string, items []string, line int) {
	var local []string
	wildcard := false
	for _, it := range items {
		if it == "*" || it == "'*'" {
			wildcard = true
		} else if isLocalOrigin(it) {
			local = append(local, it)
		}
	}
	if wildcard {
		fi := f.add(IDCORSWildcard, line, "%s allows any origin (*)", k)
		if strings.Contains(k, "METHOD") || strings.Contains(k, "HEADER") {
			fi.Severity = Low
			fi.Message = fmt.Sprintf("%s allows every value (*); list the ones the API uses", k)
		}
	}
	if len(local) > 0 {
		f.add(IDCORSLocalhost, line, "%s allows development origins: %s", k, strings.Join(local, ", "))
	}
}

// secret reports a secret-bearing variable with a literal value.
func (f *findings) secret(o origin, name, value string, line int) {
	unknown := o == fromComposeVar || strings.Contains(value, interpolated)
	if o == fromComposeDefault {
		if secrets.IsKnownDefault([]byte(value)) {
			fi := f.add(IDComposeDefault, line, "%s falls back to a known default secret written in the compose file", name)
			fi.Severity = Critical
		} else {
			f.add(IDComposeDefault, line, "%s falls back to a default secret written in the compose file", name)
		}
		return
	}
	if strings.Contains(name, "SECRET_ACCESS_KEY") {
		f.add(IDAWSStaticKeys, line, "%s holds a static AWS access key", name)
	} else {
		switch {
		case unknown:
			fi := f.add(IDSecretInEnv, line, "%s is passed to the container as a plain environment variable", name)
			fi.Severity = Low
		case o == fromDotEnv:
			f.add(IDSecretInEnv, line, "%s is a secret kept in a plain environment variable", name)
		case o == fromCompose:
			fi := f.add(IDSecretInEnv, line, "%s is written in the compose file and passed as a plain environment variable", name)
			fi.Severity = High
		case o == fromManifest:
			fi := f.add(IDSecretInEnv, line, "%s is written in the manifest as a plain environment value", name)
			fi.Severity = High
		case o == fromConfig:
			f.add(IDInlineConfig, line, "%s is a secret written inline in the config", name)
		}
	}
	if !unknown {
		f.secretValue(name, value, line)
	}
}

// secretValue reports a default or weak value.
func (f *findings) secretValue(name, value string, line int) {
	if secrets.IsKnownDefault([]byte(value)) {
		f.add(IDDefaultSecret, line, "%s is a known default or placeholder value", name)
		return
	}
	for _, p := range secrets.CheckMin(name, []byte(value), minBytesFor(name)) {
		f.add(IDWeakSecret, line, "%s %s", name, strings.TrimPrefix(p.Message, fmt.Sprintf("secret %q ", name)))
	}
}

// minBytesFor is 32 for keys the app signs or encrypts with, 16 for
// passwords and third-party tokens whose format someone else chose.
func minBytesFor(name string) int {
	for _, w := range []string{"SECRET_KEY", "JWT", "SIGNING", "PEPPER", "ENCRYPTION", "SESSION", "COOKIE", "API_KEY", "APIKEY", "MASTER"} {
		if strings.Contains(strings.ToUpper(name), w) {
			return secrets.MinBytes
		}
	}
	return 16
}

// serviceURL checks a connection URL: TLS and password for PostgreSQL and
// Redis, and the password embedded in any URL.
func (f *findings) serviceURL(o origin, k string, u *url.URL, line int) {
	host := u.Hostname()
	loopback := isLoopback(host)
	scheme := strings.ToLower(u.Scheme)
	pw, hasPW := u.User.Password()
	if !hasPW && (scheme == "redis" || scheme == "rediss") && u.User != nil && u.User.Username() != "" {
		// redis://:password@host and redis://password@host both appear in the wild.
		pw, hasPW = u.User.Username(), true
	}
	switch {
	case strings.HasPrefix(scheme, "postgres"):
		q := u.Query()
		ok := false
		for _, v := range []string{q.Get("sslmode"), q.Get("ssl")} {
			switch strings.ToLower(v) {
			case "require", "verify-ca", "verify-full", "true", "1":
				ok = true
			}
		}
		if !ok && !loopback {
			f.add(IDDatabaseTLS, line, "%s connects to PostgreSQL at %s without sslmode=require or stronger", k, host)
		}
	case scheme == "redis" && !loopback:
		f.add(IDRedisTLS, line, "%s connects to Redis at %s without TLS (redis://)", k, host)
		if !hasPW {
			f.add(IDRedisPassword, line, "%s connects to Redis at %s without a password", k, host)
		}
	case scheme == "rediss" && !loopback && !hasPW:
		f.add(IDRedisPassword, line, "%s connects to Redis at %s without a password", k, host)
	}
	if hasPW && pw != "" {
		f.secret(o, k+" password", pw, line)
	}
}

var serviceSchemes = []string{"postgres", "postgresql", "redis", "rediss", "mysql", "mariadb", "mongodb", "mongodb+srv", "amqp", "amqps", "kafka", "sqlite"}

func parseServiceURL(v string) (*url.URL, bool) {
	scheme, _, ok := strings.Cut(v, "://")
	if !ok {
		return nil, false
	}
	base, _, _ := strings.Cut(strings.ToLower(scheme), "+") // postgresql+asyncpg
	known := false
	for _, s := range serviceSchemes {
		if base == s || strings.ToLower(scheme) == s {
			known = true
		}
	}
	if !known {
		return nil, false
	}
	u, err := url.Parse(v)
	if err != nil {
		return nil, false
	}
	return u, true
}

func isLoopback(host string) bool {
	switch strings.ToLower(host) {
	case "", "localhost":
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isLocalOrigin(o string) bool {
	o = strings.ToLower(strings.Trim(o, `"' `))
	if u, err := url.Parse(o); err == nil && u.Host != "" {
		o = u.Hostname()
	} else if h, _, err := net.SplitHostPort(o); err == nil {
		o = h
	}
	o = strings.Trim(o, "[]")
	return o == "localhost" || strings.HasSuffix(o, ".localhost") || o == "0.0.0.0" || isLoopback(o) && o != ""
}

// splitList splits "a,b", "a b" and `["a","b"]` into items.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '[' || r == ']' || r == '"' || r == ';'
	})
}

// isSecretRef reports whether v points at a secret instead of holding one.
func isSecretRef(v string) bool {
	for _, p := range []string{"aws-sm:", "vault:", "file:", "env:", "arn:aws:secretsmanager:", "arn:aws:ssm:"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// notSecretSuffix are last name words that make a variable about a secret
// rather than the secret itself.
var notSecretSuffix = map[string]bool{
	"ID": true, "FILE": true, "ARN": true, "PATH": true, "NAME": true, "ALGORITHM": true, "ALG": true,
	"MINUTES": true, "DAYS": true, "HOURS": true, "SECONDS": true, "TTL": true, "EXPIRE": true, "EXPIRY": true,
	"EXPIRES": true, "LENGTH": true, "COUNT": true, "ENABLED": true, "TYPE": true, "VERSION": true,
	"HEADER": true, "PREFIX": true, "ISSUER": true, "URL": true, "URI": true, "HOST": true, "PORT": true,
	"REGION": true, "ROTATION": true, "LIMIT": true, "ATTEMPTS": true, "WINDOW": true, "SIZE": true,
	"FORMAT": true, "MODE": true, "LOCATION": true, "AUDIENCE": true, "LIFETIME": true, "REQUIRED": true,
	"METHOD": true, "BACKEND": true, "PROVIDER": true, "SID": true, "DIR": true, "USER": true, "USERNAME": true,
	"POLICY": true, "MIN": true, "MAX": true, "HASH": true, "KEYS": true,
}

var secretWords = map[string]bool{
	"SECRET": true, "SECRETS": true, "PASSWORD": true, "PASSWD": true, "PASS": true, "PWD": true,
	"TOKEN": true, "APIKEY": true, "PEPPER": true, "CREDENTIAL": true, "CREDENTIALS": true,
	"PRIVATEKEY": true, "KEY": true, "DSN": false,
}

// isSecretKey reports whether an environment variable name holds a secret.
func isSecretKey(k string) bool {
	words := strings.FieldsFunc(strings.ToUpper(k), func(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' })
	if len(words) == 0 || notSecretSuffix[words[len(words)-1]] {
		return false
	}
	for i, w := range words {
		if !secretWords[w] {
			continue
		}
		if w == "KEY" && i > 0 && (words[i-1] == "PUBLIC" || words[i-1] == "PUB") {
			continue
		}
		return true
	}
	return false
}

func isEnvironmentKey(k string) bool {
	switch k {
	case "ENVIRONMENT", "ENV", "APP_ENV", "APP_ENVIRONMENT", "FLASK_ENV", "NODE_ENV", "PYTHON_ENV", "RAILS_ENV", "DJANGO_ENV", "FASTAPI_ENV":
		return true
	}
	return false
}

func isCORSKey(k string) bool {
	return strings.Contains(k, "ORIGIN") || strings.Contains(k, "CORS") || k == "ALLOWED_HOSTS" || strings.HasSuffix(k, "_ALLOWED_HOSTS")
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on", "y":
		return true
	}
	return false
}

func falsy(v string) bool {
	switch strings.ToLower(v) {
	case "0", "false", "no", "off", "n":
		return true
	}
	return false
}

// isPlainScalar reports booleans, which are settings, not secrets (a number
// may be a PIN or a weak password, so it is checked).
func isPlainScalar(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off":
		return true
	}
	return false
}
