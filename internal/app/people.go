package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/audit"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/route"
	"github.com/rampart-security/rampart/internal/secrets"
)

// Secret names of the identity keys.
const (
	secretJWT  = "jwt_key"
	secretTOTP = "totp_key"
)

// identityKeys turns a secret's versions into JWT or TOTP keys, current
// first; the version ID is the key ID (the JWT kid).
func identityKeys(ring *secrets.Keyring) []identity.Key {
	if ring == nil {
		return nil
	}
	var out []identity.Key
	for _, v := range ring.All() {
		out = append(out, identity.Key{ID: v.ID, Secret: v.Value.Bytes()})
	}
	return out
}

func (s *stack) buildIdentity() error {
	id := s.cfg.Identity
	if !id.Enabled {
		return nil
	}
	st, ok := s.store.(identity.Store)
	if !ok {
		return errors.New("identity: the store does not keep users")
	}
	svc, err := identity.New(identity.Options{
		Store: st, Keys: identityKeys(s.ring(secretJWT)), TOTPKeys: identityKeys(s.ring(secretTOTP)),
		Issuer: id.Issuer, Audience: id.Issuer, Now: s.now, Logger: s.log,
		OnEvent:    s.identityEvent,
		BcryptCost: id.BcryptCost, Policy: identity.PasswordPolicy{MinLength: id.MinPasswordLength},
		AccessTTL: id.AccessTokenTTL, RefreshTTL: id.RefreshTokenTTL,
		SessionLifetime: id.SessionLifetime, IdleTimeout: id.IdleTimeout, MaxSessions: id.MaxSessions,
		LockoutThreshold: id.LockoutThreshold, LockoutWindow: id.LockoutWindow, LockoutDuration: id.LockoutDuration,
		MFARequiredRoles: id.MFARequiredRoles, TrustedDeviceTTL: time.Duration(id.TrustedDeviceDays) * 24 * time.Hour,
		DisableTrustedDevices: id.TrustedDeviceDays == 0,
		MFAIssuer:             id.MFAIssuer, BackupCodes: id.BackupCodes,
		MFAAttemptLimit: id.MFAAttemptLimit, MFAWindow: id.MFAWindow,
	})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	s.people = svc
	return nil
}

// identityEvent audits people's security events, counts failures, and
// closes the WebSockets of a session that ended.
func (s *stack) identityEvent(ctx context.Context, ev identity.Event) {
	switch ev.Type {
	case identity.EventLoginFailure, identity.EventMFAFailure, identity.EventLockout, identity.EventRefreshReuse:
		s.metrics.AuthFailure(ev.Type)
	case identity.EventLogout, identity.EventSessionRevoked, identity.EventSessionEvicted:
		if s.gate != nil && ev.SessionID != "" {
			s.gate.CloseSession(ev.SessionID)
		}
	}
	e := audit.NewEvent(ev.Type, reqinfo.From(ctx))
	e.User = ev.UserID
	if ip, err := netip.ParseAddr(ev.ClientIP); err == nil {
		e.SourceIP = ip
	}
	e.Details = map[string]any{"username": ev.Username}
	if ev.SessionID != "" {
		e.Details["session_id"] = ev.SessionID
	}
	s.record(ctx, e)
}

// identityHandler serves /.rampart/ (login, MFA, tokens, sessions, pages),
// every request limited per client IP by rate_limits.pre_auth first.
func (s *stack) identityHandler() (http.Handler, error) {
	limit, err := s.preAuthAlways()
	if err != nil {
		return nil, err
	}
	h := s.people.Handler()
	if s.cfg.Identity.LoginLimit != "" {
		lim, err := ratelimit.ParseLimit(s.cfg.Identity.LoginLimit)
		if err != nil {
			return nil, fmt.Errorf("identity.login_limit: %w", err)
		}
		rules := []ratelimit.Rule{{Name: "login", Limit: lim, Key: ratelimit.KeyIP}}
		login, err := ratelimit.New(ratelimit.Options{Limiter: s.limiter, Logger: s.log, OnReject: s.onReject,
			Rules: func(r *http.Request) []ratelimit.Rule {
				if r.Method == http.MethodPost && credentialEndpoints[strings.TrimPrefix(r.URL.Path, "/.rampart/")] {
					return rules
				}
				return nil
			}})
		if err != nil {
			return nil, err
		}
		h = login(h)
	}
	return limit(h), nil
}

// credentialEndpoints are the identity endpoints that check a password,
// a second factor or a reset token: what identity.login_limit counts.
var credentialEndpoints = map[string]bool{
	"login": true, "mfa/verify": true, "password/reset": true, "ui/login": true, "ui/mfa": true,
}

// userAuth authenticates people on routes with auth user or any (when no
// API key was accepted), enforces the route's permission, passes the
// user and roles to the upstream, and keeps Rampart's cookies from it.
func (s *stack) userAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		identity.StripCookies(r.Header)
		rt := routeFrom(r.Context())
		info := reqinfo.From(r.Context())
		if rt == nil || rt.WebSocket || (rt.Auth != route.AuthUser && rt.Auth != route.AuthAny) ||
			info == nil || !info.Principal.Anonymous() {
			next.ServeHTTP(w, r)
			return
		}
		p, err := s.people.Authenticate(r)
		switch {
		case errors.Is(err, identity.ErrUnavailable):
			reqinfo.Reject(w, r, http.StatusServiceUnavailable, auth.OutcomeUnavailable, "authentication is temporarily unavailable")
			return
		case errors.Is(err, identity.ErrMFARequired):
			s.metrics.AuthFailure("mfa_required")
			reqinfo.Reject(w, r, http.StatusForbidden, "mfa_required", "this account needs a second factor")
			return
		case err != nil:
			s.metrics.AuthFailure(auth.OutcomeInvalid)
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
			reqinfo.Reject(w, r, http.StatusUnauthorized, auth.OutcomeInvalid, "a valid access token is required")
			return
		}
		req, _ := auth.ParseRequirement(rt.Permission)
		info.Principal = p
		if !p.Permissions.Has(req.For(r.Method)) {
			s.metrics.AuthFailure(auth.OutcomeForbidden)
			reqinfo.Reject(w, r, http.StatusForbidden, auth.OutcomeForbidden, "this account does not have the permission this request needs")
			return
		}
		r.Header.Del("Authorization") // the person's token is Rampart's, not the upstream's
		r.Header.Set(auth.HeaderUser, p.Name)
		r.Header.Set(auth.HeaderRoles, p.Permissions.String())
		next.ServeHTTP(w, r)
	})
}

// carriesAPIKey reports whether a request presents an API key (rather than
// a person's token) on a route that accepts both.
func carriesAPIKey(r *http.Request) bool {
	if r.Header.Get("X-API-Key") != "" {
		return true
	}
	v := r.Header.Get("Authorization")
	return len(v) > 7 && strings.EqualFold(v[:7], "bearer ") && strings.HasPrefix(strings.TrimSpace(v[7:]), "rk_")
}

// ticketAuth authenticates a WebSocket ticket request with an API key, or,
// when identity is on and no key is presented, with a person's access
// token, so people's sockets are governed (and closed when their session
// ends) like keys' sockets.
func (s *stack) ticketAuth(keyAuth middleware) middleware {
	return func(next http.Handler) http.Handler {
		withKey := keyAuth(next)
		if s.people == nil {
			return withKey
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			if carriesAPIKey(r) || info == nil {
				withKey.ServeHTTP(w, r)
				return
			}
			p, err := s.people.Authenticate(r)
			switch {
			case errors.Is(err, identity.ErrUnavailable):
				reqinfo.Reject(w, r, http.StatusServiceUnavailable, auth.OutcomeUnavailable, "authentication is temporarily unavailable")
			case err != nil:
				// Neither a key nor a person: the key path gives the usual 401.
				withKey.ServeHTTP(w, r)
			case !p.Permissions.Has(reqinfo.PermRead):
				reqinfo.Reject(w, r, http.StatusForbidden, auth.OutcomeForbidden, "this account cannot open WebSockets")
			default:
				info.Principal = p
				next.ServeHTTP(w, r)
			}
		})
	}
}
