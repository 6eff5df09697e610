// Package redact removes credentials from what rampart logs: query parameters
// named like credentials, credential headers, and URLs inside errors.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mask replaces every redacted value.
const Mask = "REDACTED"

// credentialParams are query parameter names whose values never reach a log.
var credentialParams = []string{
	"api_key", "apikey", "api-key", "key", "token", "access_token", "refresh_token",
	"id_token", "ticket", "password", "passwd", "pwd", "secret", "client_secret",
	"signature", "sig", "auth", "authorization", "code", "session", "jwt",
}

// credentialHeaders never reach a log.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-API-Key", "X-Auth-Token"}

// IsCredentialParam reports whether a query parameter name carries a credential.
func IsCredentialParam(name string) bool {
	for _, p := range credentialParams {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}

// IsCredentialHeader reports whether a header carries a credential.
func IsCredentialHeader(name string) bool {
	for _, h := range credentialHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// Query returns rawQuery with the values of credential parameters, and any
// parameter holding something shaped like a Rampart API key whatever its
// name, masked. An unparsable query is masked whole: what cannot be read
// cannot be vetted.
func Query(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	parts := strings.Split(rawQuery, "&")
	for i, part := range parts {
		name, value, hasValue := strings.Cut(part, "=")
		dec, err := url.QueryUnescape(name)
		if err != nil {
			return Mask
		}
		switch {
		case looksLikeAPIKey(dec):
			parts[i] = Mask
		case hasValue && (IsCredentialParam(dec) || looksLikeAPIKey(value)):
			parts[i] = name + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

// looksLikeAPIKey reports whether a raw or escaped query component contains
// a Rampart API key prefix.
func looksLikeAPIKey(s string) bool {
	if dec, err := url.QueryUnescape(s); err == nil {
		s = dec
	}
	return strings.Contains(s, "rk_live_") || strings.Contains(s, "rk_test_")
}

// URI returns a request URI (path and query) with credential values masked.
func URI(path, rawQuery string) string {
	if rawQuery == "" {
		return path
	}
	return path + "?" + Query(rawQuery)
}

// Error returns err's message with the query of any URL inside it masked.
func Error(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = Query(u.RawQuery)
			u.User = nil
			return ue.Op + " " + u.Redacted() + ": " + ue.Err.Error()
		}
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
