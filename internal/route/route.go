// Package route is rampart's route table: it normalises request paths so that
// encodings, dot segments, doubled slashes and letter case cannot reach a route
// under another route's rule, and matches them to per-route settings.
package route

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
)

// Auth kinds a route may require.
const (
	AuthNone   = "none"
	AuthAPIKey = "api_key"
	AuthUser   = "user" // a person's access token or page session (identity)
	AuthAny    = "any"  // an API key or a person
)

// Permission names a route may require.
const (
	PermRead     = "read"
	PermWrite    = "write"
	PermAdmin    = "admin"
	PermByMethod = "by_method"
)

// ErrAmbiguousPath is returned for paths whose meaning differs between
// servers: encoded slashes, backslashes, NUL and other control bytes,
// double encoding.
var ErrAmbiguousPath = errors.New("ambiguous path encoding")

// Spec is a route as configured.
type Spec struct {
	Name       string
	Pattern    string   // "/exact", "/prefix/*" or "/*"
	Methods    []string // empty: any
	BodyLimit  int64
	CSP        string
	Auth       string
	Permission string
	WebSocket  bool
}

// Route is a compiled route. It is read-only once the table is built.
type Route struct {
	Spec
	prefix  string // for prefix patterns: "/simulation" (matches it and below)
	exact   bool
	methods []string // upper case, with HEAD added where GET is
}

// Authenticated reports whether the route requires a credential.
func (r *Route) Authenticated() bool { return r.Auth != "" && r.Auth != AuthNone }

// Table is an immutable set of routes.
type Table struct {
	routes []*Route // most specific first
}

// NewTable compiles specs, reporting every invalid one.
func NewTable(specs []Spec) (*Table, error) {
	var errs []error
	names := make(map[string]bool)
	t := &Table{}
	for i, s := range specs {
		where := fmt.Sprintf("routes[%d]", i)
		if s.Name != "" {
			where = fmt.Sprintf("routes[%d] (%s)", i, s.Name)
		}
		r, err := compile(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate route name", where))
		}
		names[s.Name] = true
		t.routes = append(t.routes, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(t.routes, func(i, j int) bool {
		a, b := t.routes[i], t.routes[j]
		if a.exact != b.exact {
			return a.exact
		}
		return len(a.prefix) > len(b.prefix)
	})
	return t, nil
}

// Routes returns the routes, most specific first.
func (t *Table) Routes() []*Route { return t.routes }

func compile(s Spec) (*Route, error) {
	if s.Name == "" {
		return nil, errors.New("name: must be set")
	}
	if err := ValidPattern(s.Pattern); err != nil {
		return nil, err
	}
	r := &Route{Spec: s}
	if s.Auth == "" {
		r.Auth = AuthNone
	}
	switch r.Auth {
	case AuthNone, AuthAPIKey, AuthUser, AuthAny:
	default:
		return nil, fmt.Errorf("auth: %q is not none, api_key, user or any", s.Auth)
	}
	switch s.Permission {
	case "":
		if r.Authenticated() {
			r.Permission = PermByMethod
		}
	case PermRead, PermWrite, PermAdmin, PermByMethod:
		if !r.Authenticated() {
			return nil, fmt.Errorf("permission: %q needs an auth kind other than none", s.Permission)
		}
	default:
		return nil, fmt.Errorf("permission: %q is not read, write, admin or by_method", s.Permission)
	}
	if s.BodyLimit < 0 {
		return nil, errors.New("body_limit: must not be negative")
	}
	if strings.HasSuffix(s.Pattern, "/*") {
		r.prefix = strings.TrimSuffix(s.Pattern, "/*")
	} else {
		r.exact, r.prefix = true, s.Pattern
	}
	for _, m := range s.Methods {
		if !ValidMethod(m) {
			return nil, fmt.Errorf("methods: %q is not an HTTP method", m)
		}
		m = strings.ToUpper(m)
		r.methods = append(r.methods, m)
		if m == http.MethodGet {
			r.methods = append(r.methods, http.MethodHead)
		}
	}
	return r, nil
}

// ValidPattern reports whether p is an exact path or a prefix ending in "/*",
// already in normal form.
func ValidPattern(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path: %q must start with /", p)
	}
	base := strings.TrimSuffix(p, "/*")
	if base == "" {
		base = "/"
	}
	if strings.ContainsAny(base, "*%\\?#") || strings.ContainsFunc(base, isControl) {
		return fmt.Errorf("path: %q may contain * only as a final /*, and no %%, \\, ?, # or control bytes", p)
	}
	if path.Clean(base) != base {
		return fmt.Errorf("path: %q is not in normal form (want %q)", p, path.Clean(base))
	}
	return nil
}

// ValidMethod reports whether m is an HTTP method token.
func ValidMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := range len(m) {
		c := m[i]
		if c < 'A' || c > 'Z' {
			if c < 'a' || c > 'z' {
				return false
			}
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Normalize returns the path rampart matches and forwards for r: decoded once,
// dot segments resolved, slashes collapsed, a trailing slash kept. It refuses
// (ErrAmbiguousPath) encoded slashes and backslashes, backslashes, NUL and
// other control bytes, and double encoding of those or of dots.
func Normalize(rawPath, decodedPath string) (string, error) {
	if containsFoldAny(rawPath, "%2f", "%5c", "%00") ||
		strings.ContainsAny(decodedPath, "\\") ||
		strings.ContainsFunc(decodedPath, isControl) ||
		containsFoldAny(decodedPath, "%2f", "%5c", "%00", "%2e", "%25") {
		return "", ErrAmbiguousPath
	}
	if !strings.HasPrefix(decodedPath, "/") {
		return "", ErrAmbiguousPath
	}
	clean := path.Clean(decodedPath)
	if clean != "/" && strings.HasSuffix(decodedPath, "/") {
		clean += "/"
	}
	return clean, nil
}

func containsFoldAny(s string, subs ...string) bool {
	if !strings.Contains(s, "%") {
		return false
	}
	for i := 0; i+3 <= len(s); i++ {
		if s[i] != '%' {
			continue
		}
		for _, sub := range subs {
			if strings.EqualFold(s[i:i+3], sub) {
				return true
			}
		}
	}
	return false
}

// Match finds the most specific route for a normalised path and method.
// When routes match the path but none allows the method, it returns nil and
// methodMismatch true (the caller answers 405).
func (t *Table) Match(method, p string) (r *Route, methodMismatch bool) {
	trimmed := p
	if len(trimmed) > 1 {
		trimmed = strings.TrimSuffix(trimmed, "/")
	}
	for _, rt := range t.routes {
		if !rt.matchPath(trimmed) {
			continue
		}
		if rt.allows(method) {
			return rt, false
		}
		methodMismatch = true
	}
	return nil, methodMismatch
}

func (r *Route) matchPath(p string) bool {
	if r.exact {
		return strings.EqualFold(p, r.prefix)
	}
	if r.prefix == "" { // "/*"
		return true
	}
	if len(p) < len(r.prefix) || !strings.EqualFold(p[:len(r.prefix)], r.prefix) {
		return false
	}
	return len(p) == len(r.prefix) || p[len(r.prefix)] == '/'
}

func (r *Route) allows(method string) bool {
	if len(r.methods) == 0 {
		return true
	}
	for _, m := range r.methods {
		if m == method {
			return true
		}
	}
	return false
}
