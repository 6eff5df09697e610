package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// KeyKind says whose quota a rule counts.
type KeyKind string

// Key kinds. A rule whose subject is absent from the request (an api_key
// rule on a request without an API key, say) does not apply to it.
const (
	// KeyAPIKey counts per API key ID (Principal.Kind "api_key").
	KeyAPIKey KeyKind = "api_key"
	// KeyUser counts per user ID (Principal.Kind "user").
	KeyUser KeyKind = "user"
	// KeyIP counts per client IP: the address for IPv4, the /64 for IPv6
	// (one IPv6 client commonly holds a whole /64).
	KeyIP KeyKind = "ip"
	// KeyGlobal counts every request together.
	KeyGlobal KeyKind = "global"
	// KeySubject counts per principal when authenticated, else per client IP.
	KeySubject KeyKind = "subject"
)

// Rule is one limit applied to the requests the integrator selects.
type Rule struct {
	// Name identifies the rule in state keys and headers: 1 to 64 of
	// A-Z a-z 0-9 . _ -
	Name  string
	Limit Limit
	Key   KeyKind
}

// Validate reports whether r is well formed; call it when loading
// configuration so a bad rule fails at start.
func (r Rule) Validate() error {
	var errs []error
	if len(r.Name) == 0 || len(r.Name) > 64 {
		errs = append(errs, errors.New("name must be 1 to 64 characters"))
	}
	for i := 0; i < len(r.Name); i++ {
		c := r.Name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			errs = append(errs, fmt.Errorf("name %q: only A-Z a-z 0-9 . _ - allowed", r.Name))
			break
		}
	}
	switch r.Key {
	case KeyAPIKey, KeyUser, KeyIP, KeyGlobal, KeySubject:
	default:
		errs = append(errs, fmt.Errorf("key %q: want api_key, user, ip, global or subject", r.Key))
	}
	if err := r.Limit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rate limit rule %q: %w", r.Name, err)
	}
	return nil
}

// subject returns the state subject of a rule for a request, and false when
// the rule does not apply (its kind of principal is absent). A request
// without a usable client IP shares the subject "ip:unknown".
func subject(k KeyKind, info *reqinfo.Info) (string, bool) {
	p := info.Principal
	switch k {
	case KeyAPIKey, KeyUser:
		if string(k) != p.Kind || p.ID == "" {
			return "", false
		}
		return p.Kind + ":" + p.ID, true
	case KeyGlobal:
		return "global", true
	case KeySubject:
		if !p.Anonymous() && p.ID != "" {
			return p.Kind + ":" + p.ID, true
		}
	}
	return ipSubject(info.ClientIP), true
}

func ipSubject(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "ip:unknown"
	case ip.Is4():
		return "ip:" + ip.String()
	}
	return "ip:" + netip.PrefixFrom(ip, 64).Masked().String()
}

// PreAuthRules returns a rules function for the instance of the middleware
// that runs before authentication: it applies the given rules, which must
// all be keyed by ip or global, to every request, so credential guessing is
// throttled per client before any credential is checked.
func PreAuthRules(rules ...Rule) (func(*http.Request) []Rule, error) {
	var errs []error
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
		if r.Key != KeyIP && r.Key != KeyGlobal {
			errs = append(errs, fmt.Errorf("pre-auth rule %q: key %q is unknown before authentication; use ip or global", r.Name, r.Key))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs := append([]Rule(nil), rules...)
	return func(*http.Request) []Rule { return rs }, nil
}
