package auth

import (
	"fmt"
	"net/http"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Kind is how a route authenticates. The zero value is AuthAPIKey, so a
// Policy left empty by mistake fails closed.
type Kind uint8

// Authentication kinds.
const (
	AuthAPIKey Kind = iota // an API key is required
	AuthNone               // anonymous access; client-sent identity headers are still stripped
)

// String returns the configuration spelling ("api_key", "none").
func (k Kind) String() string {
	switch k {
	case AuthAPIKey:
		return "api_key"
	case AuthNone:
		return "none"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// ParseKind parses "none" or "api_key".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "api_key":
		return AuthAPIKey, nil
	case "none":
		return AuthNone, nil
	}
	return 0, fmt.Errorf("auth: unknown auth kind %q (want none or api_key)", s)
}

// Requirement is the permission a route needs. The zero value is
// PermissionByMethod.
type Requirement uint8

// Permission requirements.
const (
	PermissionByMethod Requirement = iota // GET, HEAD, OPTIONS need read; other methods need write
	PermissionRead
	PermissionWrite
	PermissionAdmin
)

// String returns the configuration spelling.
func (r Requirement) String() string {
	switch r {
	case PermissionByMethod:
		return "by_method"
	case PermissionRead:
		return "read"
	case PermissionWrite:
		return "write"
	case PermissionAdmin:
		return "admin"
	}
	return fmt.Sprintf("Requirement(%d)", r)
}

// ParseRequirement parses "read", "write", "admin" or "by_method".
func ParseRequirement(s string) (Requirement, error) {
	switch s {
	case "by_method":
		return PermissionByMethod, nil
	case "read":
		return PermissionRead, nil
	case "write":
		return PermissionWrite, nil
	case "admin":
		return PermissionAdmin, nil
	}
	return 0, fmt.Errorf("auth: unknown permission %q (want read, write, admin or by_method)", s)
}

// For returns the permission bit a request with method needs.
func (r Requirement) For(method string) reqinfo.Permission {
	switch r {
	case PermissionRead:
		return reqinfo.PermRead
	case PermissionWrite:
		return reqinfo.PermWrite
	case PermissionAdmin:
		return reqinfo.PermAdmin
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return reqinfo.PermRead
	}
	return reqinfo.PermWrite
}

// Policy is what one route demands. The zero Policy requires an API key
// with by-method permission and does not forward credentials.
type Policy struct {
	Auth               Kind
	Permission         Requirement
	ForwardCredentials bool // pass Authorization / X-API-Key to the upstream
}

// PolicyFunc returns the policy for a request; the integrator derives it
// from the route table.
type PolicyFunc func(r *http.Request) Policy
