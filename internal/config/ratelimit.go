package config

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/route"
)

// Method classes a rate-limit rule may name instead of methods.
var (
	readMethods  = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	writeMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// LimitRule is a compiled rate_limits.rules entry.
type LimitRule struct {
	ratelimit.Rule
	match *route.Table
}

// Applies reports whether the rule counts a request with this method and
// cleaned path.
func (l LimitRule) Applies(method, cleanPath string) bool {
	r, _ := l.match.Match(method, cleanPath)
	return r != nil
}

// LimitRules compiles rate_limits.rules.
func (c *Config) LimitRules() ([]LimitRule, error) {
	var errs []error
	out := make([]LimitRule, 0, len(c.RateLimits.Rules))
	seen := map[string]bool{}
	for i, r := range c.RateLimits.Rules {
		where := fmt.Sprintf("rate_limits.rules[%d]", i)
		if r.Name != "" {
			where = fmt.Sprintf("rate_limits.rules[%d] (%s)", i, r.Name)
		}
		lr, err := compileLimitRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[r.Name] = true
		out = append(out, lr)
	}
	return out, errors.Join(errs...)
}

func compileLimitRule(r RateLimitRule) (LimitRule, error) {
	lim, err := ratelimit.ParseLimit(r.Limit)
	if err != nil {
		return LimitRule{}, fmt.Errorf("limit: %w", err)
	}
	key := ratelimit.KeyKind(r.Key)
	if r.Key == "" {
		key = ratelimit.KeyAPIKey
	}
	rule := ratelimit.Rule{Name: r.Name, Limit: lim, Key: key}
	if err := rule.Validate(); err != nil {
		return LimitRule{}, err
	}
	var methods []string
	for _, m := range r.Methods {
		switch strings.ToLower(m) {
		case "read":
			methods = append(methods, readMethods...)
		case "write":
			methods = append(methods, writeMethods...)
		default:
			methods = append(methods, m)
		}
	}
	path := r.Path
	if path == "" {
		path = "/*"
	}
	t, err := route.NewTable([]route.Spec{{Name: r.Name, Pattern: path, Methods: methods}})
	if err != nil {
		return LimitRule{}, err
	}
	return LimitRule{Rule: rule, match: t}, nil
}

// PreAuthLimit is rate_limits.pre_auth as a per-IP rule; ok is false when
// it is not set.
func (c *Config) PreAuthLimit() (rule ratelimit.Rule, ok bool, err error) {
	if c.RateLimits.PreAuth == "" {
		return ratelimit.Rule{}, false, nil
	}
	lim, err := ratelimit.ParseLimit(c.RateLimits.PreAuth)
	if err != nil {
		return ratelimit.Rule{}, false, fmt.Errorf("rate_limits.pre_auth: %w", err)
	}
	return ratelimit.Rule{Name: "pre_auth", Limit: lim, Key: ratelimit.KeyIP}, true, nil
}
