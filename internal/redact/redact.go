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

// Query returns rawQuery with the values of credential parameters masked. An
// unparsable query is masked whole: what cannot be read cannot be vetted.
func Query(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	parts := strings.Split(rawQuery, "&")
	for i, part := range parts {
		name, _, hasValue := strings.Cut(part, "=")
		dec, err := url.QueryUnescape(name)
		if err != nil {
			return Mask
		}
		if hasValue && IsCredentialParam(dec) {
			parts[i] = name + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
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
