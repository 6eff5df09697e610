package auth

import (
	"net/url"
	"strings"
)

// queryKeyNames are query parameters commonly used to pass API keys.
var queryKeyNames = []string{"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key"}

// isKeyParam reports whether a (decoded) query parameter name is one that
// carries credentials.
func isKeyParam(name string) bool {
	for _, n := range queryKeyNames {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// looksLikeKey reports whether a raw (possibly escaped) value contains
// something shaped like a Rampart key.
func looksLikeKey(v string) bool {
	return strings.Contains(v, "rk_live_") || strings.Contains(v, "rk_test_") ||
		strings.Contains(v, "rk%5Flive%5F") || strings.Contains(v, "rk%5Ftest%5F")
}

// queryCarriesKey reports whether a raw query string carries a credential:
// any value shaped like a Rampart key, or, when byName is set (routes that
// need a key), any parameter named like a key parameter.
func queryCarriesKey(raw string, byName bool) bool {
	if looksLikeKey(raw) {
		return true
	}
	if !byName {
		return false
	}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		name, _, _ := strings.Cut(part, "=")
		if strings.ContainsAny(name, "%+") {
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
		}
		if isKeyParam(name) {
			return true
		}
	}
	return false
}

// RedactQuery returns raw with the values of credential-like parameters
// (api_key, key, token, access_token, ...) and anything shaped like a
// Rampart key replaced by "[redacted]". Access logs that record query
// strings must pass them through it.
func RedactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	changed := false
	for i, part := range parts {
		name, value, hasValue := strings.Cut(part, "=")
		decoded := name
		if n, err := url.QueryUnescape(name); err == nil {
			decoded = n
		}
		switch {
		case isKeyParam(decoded) && hasValue:
			parts[i] = name + "=[redacted]"
			changed = true
		case looksLikeKey(part):
			if hasValue {
				parts[i] = name + "=[redacted]"
			} else {
				parts[i] = "[redacted]"
			}
			changed = true
		case hasValue && strings.Contains(value, "rk"):
			if v, err := url.QueryUnescape(value); err == nil && looksLikeKey(v) {
				parts[i] = name + "=[redacted]"
				changed = true
			}
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}
