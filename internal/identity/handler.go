package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// maxBodyBytes bounds a JSON request body.
const maxBodyBytes = 16 << 10

// SetKeys replaces the JWT keyring (keys[0] signs, all verify), for a
// secret rotation without a restart; on error the old keys stay.
func (s *Service) SetKeys(keys []Key) error { return s.kr.replace(keys) }

// Handler returns the JSON API and the browser pages under BasePath. Mount
// it for every path starting with BasePath on the public listener, inside
// reqinfo.Middleware so client IPs resolve through trusted proxies:
//
//	POST   login            {"username","password"[,"device_token"]} → tokens | {"mfa_required":true,"mfa_token"}
//	POST   mfa/verify       {"mfa_token","code"[,"remember_device"]} → tokens [+ "device_token"]
//	POST   token/refresh    {"refresh_token"} → tokens (rotated)
//	POST   logout           bearer → 204
//	GET    sessions         bearer → {"sessions":[...]}
//	DELETE sessions/{id}    bearer → 204
//	POST   mfa/enroll       bearer → {"secret","otpauth_url"}
//	POST   mfa/confirm      bearer {"code"} → {"backup_codes":[...]}
//	POST   password/change  bearer {"current_password","new_password"} → 204
//	POST   password/reset   {"token","new_password"} → 204
//	POST   devices/forget   bearer → 204 (every trusted device asks for MFA again)
//
// POST bodies must be application/json (so a cross-site form cannot send
// them), at most 16 KiB, with no unknown fields.
//
// The pages live under BasePath+"ui/": login, mfa, account (sessions with
// revoke, MFA enrolment with a QR code, backup codes shown once), logout.
// They keep the session in __Host- cookies (Secure, HttpOnly,
// SameSite=Strict), guard every form with a double-submit CSRF token and
// an Origin check, and use no inline script or style, so the CSP
// "default-src 'self'" holds.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	b := s.o.BasePath
	mux.HandleFunc("POST "+b+"login", s.handleLogin)
	mux.HandleFunc("POST "+b+"mfa/verify", s.handleMFAVerify)
	mux.HandleFunc("POST "+b+"token/refresh", s.handleRefresh)
	mux.HandleFunc("POST "+b+"logout", s.withCaller(s.handleLogout))
	mux.HandleFunc("GET "+b+"sessions", s.withCaller(s.handleSessions))
	mux.HandleFunc("DELETE "+b+"sessions/{id}", s.withCaller(s.handleRevokeSession))
	mux.HandleFunc("POST "+b+"mfa/enroll", s.withCaller(s.handleEnroll))
	mux.HandleFunc("POST "+b+"mfa/confirm", s.withCaller(s.handleConfirm))
	mux.HandleFunc("POST "+b+"password/change", s.withCaller(s.handlePasswordChange))
	mux.HandleFunc("POST "+b+"password/reset", s.handlePasswordReset)
	mux.HandleFunc("POST "+b+"devices/forget", s.withCaller(s.handleForgetDevices))
	s.registerPages(mux)
	mux.HandleFunc(b, func(w http.ResponseWriter, r *http.Request) {
		reqinfo.Reject(w, r, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// Authenticate is the authenticator for routes that take people (auth:
// jwt or session): it reads `Authorization: Bearer <access token>` or,
// when there is no Authorization header, the session cookie the pages
// set. It returns the user's principal (Kind "user", ID, username,
// permissions from roles, SessionID), checking the session is still live
// so logout and revocation take effect at once. A cookie-authenticated
// request with an unsafe method from another site (Origin or
// Sec-Fetch-Site) is refused, so cookies cannot be ridden by CSRF.
// Errors wrap ErrUnauthenticated (answer 401), ErrMFARequired (403) or
// ErrUnavailable (503).
func (s *Service) Authenticate(r *http.Request) (reqinfo.Principal, error) {
	if len(r.Header.Values("Authorization")) > 0 {
		tok, ok := bearer(r)
		if !ok {
			return reqinfo.Principal{}, fmt.Errorf("%w: not a single bearer token", ErrUnauthenticated)
		}
		return s.AuthenticateToken(r.Context(), tok)
	}
	c, err := r.Cookie(cookieSession)
	if err != nil {
		return reqinfo.Principal{}, fmt.Errorf("%w: no bearer token or session cookie", ErrUnauthenticated)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !sameOrigin(r) {
			return reqinfo.Principal{}, fmt.Errorf("%w: cross-site request with a session cookie", ErrUnauthenticated)
		}
	}
	return s.AuthenticateToken(r.Context(), c.Value)
}

// bearer returns the token of a single "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// meta describes the client: the IP reqinfo resolved (the peer address
// outside the chain) and the User-Agent.
func meta(r *http.Request) ClientMeta {
	m := ClientMeta{UserAgent: r.UserAgent()}
	if info := reqinfo.From(r.Context()); info != nil && info.ClientIP.IsValid() {
		m.IP = info.ClientIP.String()
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		m.IP = host
	}
	return m
}

// fail answers err with a generic body. Details go to the log only.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrUnavailable):
		reqinfo.Reject(w, r, http.StatusServiceUnavailable, "identity_unavailable", "try again later")
	case errors.Is(err, ErrTooManyAttempts):
		after := s.o.MFAWindow
		if t, ok := errors.AsType[*throttled](err); ok {
			after = t.after
		}
		w.Header().Set("Retry-After", fmt.Sprint(int((after+time.Second-1)/time.Second)))
		reqinfo.Reject(w, r, http.StatusTooManyRequests, "too_many_attempts", "too many attempts; try again later")
	case errors.Is(err, ErrWeakPassword):
		reqinfo.Reject(w, r, http.StatusBadRequest, "weak_password", err.Error())
	case errors.Is(err, ErrInvalidCredentials):
		reqinfo.Reject(w, r, http.StatusUnauthorized, "invalid_credentials", "the credentials are not valid")
	case errors.Is(err, ErrMFARequired):
		reqinfo.Reject(w, r, http.StatusForbidden, "mfa_required", "this account needs a second factor")
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		reqinfo.Reject(w, r, http.StatusUnauthorized, "invalid_token", "the token is not valid")
	case errors.Is(err, ErrMFAEnrolled), errors.Is(err, ErrNoEnrollment):
		reqinfo.Reject(w, r, http.StatusConflict, "mfa_state", "MFA is already enrolled, or no enrolment is in progress")
	case errors.Is(err, ErrNotFound):
		reqinfo.Reject(w, r, http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, errBadRequest):
		reqinfo.Reject(w, r, http.StatusBadRequest, "bad_request", "the request body is not valid")
	default:
		s.log.ErrorContext(r.Context(), "identity internal error", "error", err)
		reqinfo.Reject(w, r, http.StatusInternalServerError, "internal", "internal error")
	}
}

var errBadRequest = errors.New("bad request")

// readJSON reads a bounded application/json body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return fmt.Errorf("%w: content type %q", errBadRequest, r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes exactly one JSON object into v, refusing unknown
// fields and trailing data.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", errBadRequest)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// LoginRequest is the body of POST login. DeviceToken is a trusted-device
// token from an earlier mfa/verify with remember_device.
type LoginRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DeviceToken string `json:"device_token,omitempty"`
}

// ParseLoginRequest decodes and bounds a login body.
func ParseLoginRequest(body []byte) (LoginRequest, error) {
	var req LoginRequest
	if err := decodeJSON(body, &req); err != nil {
		return LoginRequest{}, err
	}
	if len(req.Username) > 256 || len(req.Password) > 1024 || len(req.DeviceToken) > 256 {
		return LoginRequest{}, fmt.Errorf("%w: field too long", errBadRequest)
	}
	return req, nil
}

type mfaChallenge struct {
	MFARequired bool   `json:"mfa_required"`
	MFAToken    string `json:"mfa_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := readJSON(w, r, &raw); err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := ParseLoginRequest(raw)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m := meta(r)
	m.DeviceToken = req.DeviceToken
	res, err := s.Login(r.Context(), req.Username, req.Password, m)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.MFARequired {
		writeJSON(w, http.StatusOK, mfaChallenge{MFARequired: true, MFAToken: res.MFAToken,
			ExpiresIn: int64(s.o.MFATokenTTL / time.Second)})
		return
	}
	s.setPrincipal(r, *res.Tokens)
	writeJSON(w, http.StatusOK, res.Tokens)
}

// setPrincipal records who logged in on the request's Info, for audit.
func (s *Service) setPrincipal(r *http.Request, t Tokens) {
	info := reqinfo.From(r.Context())
	if info == nil {
		return
	}
	if p, err := s.AuthenticateToken(r.Context(), t.AccessToken); err == nil {
		info.Principal = p
	}
}

func (s *Service) handleMFAVerify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		MFAToken       string `json:"mfa_token"`
		Code           string `json:"code"`
		RememberDevice bool   `json:"remember_device"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.VerifyMFA(r.Context(), req.MFAToken, req.Code, req.RememberDevice, meta(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.setPrincipal(r, t)
	writeJSON(w, http.StatusOK, t)
}

func (s *Service) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.Refresh(r.Context(), req.RefreshToken, meta(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// withCaller requires a valid bearer access token (MFA enrolment not
// demanded, so a person who must enrol can).
func (s *Service) withCaller(h func(http.ResponseWriter, *http.Request, Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			s.fail(w, r, ErrUnauthenticated)
			return
		}
		cl, err := s.caller(r.Context(), tok)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.recordCaller(r, cl)
		h(w, r, cl)
	}
}

// recordCaller puts the caller on the request's Info, for the access log
// and audit.
func (s *Service) recordCaller(r *http.Request, cl Caller) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Principal = reqinfo.Principal{Kind: "user", ID: cl.User.ID, Name: cl.User.Username,
			Permissions: s.m.Permissions(cl.User.Roles), SessionID: cl.Session.ID}
	}
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request, cl Caller) {
	if err := s.Logout(r.Context(), cl, meta(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SessionView is one session as the API shows it.
type SessionView struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	MFA        bool      `json:"mfa"`
	ClientIP   string    `json:"client_ip"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

func (s *Service) handleSessions(w http.ResponseWriter, r *http.Request, cl Caller) {
	ss, err := s.Sessions(r.Context(), cl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Sessions []SessionView `json:"sessions"`
	}{Sessions: []SessionView{}}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, SessionView{ID: x.ID, CreatedAt: x.CreatedAt, LastSeenAt: x.LastSeenAt,
			ExpiresAt: x.ExpiresAt, MFA: x.MFA, ClientIP: x.ClientIP, UserAgent: x.UserAgent, Current: x.ID == cl.Session.ID})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) handleRevokeSession(w http.ResponseWriter, r *http.Request, cl Caller) {
	if err := s.RevokeSession(r.Context(), cl, r.PathValue("id"), meta(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleEnroll(w http.ResponseWriter, r *http.Request, cl Caller) {
	e, err := s.EnrollMFA(r.Context(), cl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Service) handleConfirm(w http.ResponseWriter, r *http.Request, cl Caller) {
	var req struct {
		Code string `json:"code"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	codes, err := s.ConfirmMFA(r.Context(), cl, req.Code, meta(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		BackupCodes []string `json:"backup_codes"`
	}{codes})
}

func (s *Service) handlePasswordChange(w http.ResponseWriter, r *http.Request, cl Caller) {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.ChangePassword(r.Context(), cl, req.Current, req.New, meta(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handlePasswordReset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		New   string `json:"new_password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.ResetPassword(r.Context(), req.Token, req.New, meta(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleForgetDevices(w http.ResponseWriter, r *http.Request, cl Caller) {
	if err := s.ForgetDevices(r.Context(), cl); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
