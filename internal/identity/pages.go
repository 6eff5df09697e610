package identity

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
)

//go:embed pages/*.html pages/static/*
var pageFS embed.FS

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/
// and no Domain, so a sibling subdomain cannot plant or read them.
const (
	cookieSession = CookiePrefix + "session" // access token
	cookieRefresh = CookiePrefix + "refresh" // refresh token
	cookieMFA     = CookiePrefix + "mfa"     // token between password and second factor
	cookieCSRF    = CookiePrefix + "csrf"    // double-submit CSRF token
	cookieDevice  = CookiePrefix + "device"  // trusted-device token
)

// pageCSP is the policy the pages are written for: nothing inline, nothing
// from elsewhere.
const pageCSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type pageData struct {
	Title, Base, CSRF, Error, Notice string
	Username                         string
	MFAEnabled, MFARequired          bool
	TrustDays                        int
	Sessions                         []SessionView
	Secret, URL                      string
	Codes                            []string
}

// pageSet holds one parsed template per page.
type pageSet map[string]*template.Template

func parsePages() (pageSet, error) {
	set := pageSet{}
	for _, name := range []string{"login", "mfa", "account", "enroll", "backup"} {
		t, err := template.ParseFS(pageFS, "pages/layout.html", "pages/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		set[name] = t
	}
	return set, nil
}

// registerPages adds the browser pages under BasePath+"ui/".
func (s *Service) registerPages(mux *http.ServeMux) {
	b := s.o.BasePath + "ui/"
	static, _ := fs.Sub(pageFS, "pages/static")
	mux.Handle("GET "+b+"static/", http.StripPrefix(b+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+b+"login", s.pageLogin)
	mux.HandleFunc("POST "+b+"login", s.csrf(s.pageLoginPost))
	mux.HandleFunc("GET "+b+"mfa", s.pageMFA)
	mux.HandleFunc("POST "+b+"mfa", s.csrf(s.pageMFAPost))
	mux.HandleFunc("GET "+b+"account", s.withPageCaller(s.pageAccount))
	mux.HandleFunc("GET "+b+"refresh", s.withPageCaller(s.pageRefresh))
	mux.HandleFunc("POST "+b+"sessions/revoke", s.csrf(s.withPageCaller(s.pageRevoke)))
	mux.HandleFunc("POST "+b+"logout", s.csrf(s.withPageCaller(s.pageLogout)))
	mux.HandleFunc("POST "+b+"devices/forget", s.csrf(s.withPageCaller(s.pageForgetDevices)))
	mux.HandleFunc("POST "+b+"mfa/enroll", s.csrf(s.withPageCaller(s.pageEnroll)))
	mux.HandleFunc("GET "+b+"mfa/qr.png", s.withPageCaller(s.pageQR))
	mux.HandleFunc("POST "+b+"mfa/confirm", s.csrf(s.withPageCaller(s.pageConfirm)))
}

func (s *Service) pagePath(p string) string { return s.o.BasePath + "ui/" + p }

func (s *Service) setCookie(w http.ResponseWriter, name, value string, expires time.Time) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	// Max-Age, not Expires: the browser's clock need not agree with ours.
	c.MaxAge = int(expires.Sub(s.o.Now()) / time.Second)
	if value == "" || c.MaxAge <= 0 {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(w, c)
}

func (s *Service) setSessionCookies(w http.ResponseWriter, t Tokens) {
	s.setCookie(w, cookieSession, t.AccessToken, t.RefreshExpiresAt)
	s.setCookie(w, cookieRefresh, t.RefreshToken, t.RefreshExpiresAt)
}

func (s *Service) clearSessionCookies(w http.ResponseWriter) {
	s.setCookie(w, cookieSession, "", time.Time{})
	s.setCookie(w, cookieRefresh, "", time.Time{})
}

// csrfToken returns the request's CSRF cookie value, setting a new one
// when there is none.
func (s *Service) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookieCSRF); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.o.Rand, b); err != nil {
		return ""
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: cookieCSRF, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return v
}

// csrf guards a form POST: the form's csrf field must equal the CSRF
// cookie (double submit; the __Host- cookie cannot be planted from a
// subdomain), and a cross-site Origin or Sec-Fetch-Site is refused.
func (s *Service) csrf(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if err := r.ParseForm(); err != nil || !sameOrigin(r) {
			s.pageForbidden(w, r)
			return
		}
		c, err := r.Cookie(cookieCSRF)
		form := r.PostForm.Get("csrf")
		if err != nil || len(c.Value) != 43 || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
			s.pageForbidden(w, r)
			return
		}
		h(w, r)
	}
}

// sameOrigin refuses requests a browser marks as cross-site. Fetch
// metadata (Sec-Fetch-Site) decides when present: it is right even where a
// no-referrer policy makes the browser send "Origin: null". Otherwise an
// Origin header must name this host; no header at all (a non-browser
// client) passes, and the pages still need their CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && u.Host == r.Host
}

func (s *Service) pageForbidden(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "This form has expired or came from another site. Go back, reload the page and try again.\n")
}

func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) {
	d.Base = s.o.BasePath
	d.CSRF = s.csrfToken(w, r)
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Service) redirect(w http.ResponseWriter, r *http.Request, page string) {
	http.Redirect(w, r, s.pagePath(page), http.StatusSeeOther)
}

func (s *Service) pageLogin(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", pageData{Title: "Log in"})
}

// pageError renders page with a generic message for err, or 503 when the
// store failed.
func (s *Service) pageError(w http.ResponseWriter, r *http.Request, page, title string, err error, d pageData) {
	d.Title = title
	switch {
	case errors.Is(err, ErrUnavailable):
		d.Error = "The service is unavailable. Try again in a moment."
		s.render(w, r, http.StatusServiceUnavailable, page, d)
	case errors.Is(err, ErrTooManyAttempts):
		d.Error = "Too many attempts. Wait a few minutes and try again."
		s.render(w, r, http.StatusTooManyRequests, page, d)
	case errors.Is(err, ErrWeakPassword):
		d.Error = err.Error()
		s.render(w, r, http.StatusBadRequest, page, d)
	default:
		d.Error = "That did not work. Check what you typed and try again."
		s.render(w, r, http.StatusUnauthorized, page, d)
	}
}

func (s *Service) pageLoginPost(w http.ResponseWriter, r *http.Request) {
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	if len(user) > 256 || len(pass) > 1024 {
		s.pageError(w, r, "login", "Log in", ErrInvalidCredentials, pageData{})
		return
	}
	m := meta(r)
	if c, err := r.Cookie(cookieDevice); err == nil {
		m.DeviceToken = c.Value
	}
	res, err := s.Login(r.Context(), user, pass, m)
	if err != nil {
		s.pageError(w, r, "login", "Log in", err, pageData{})
		return
	}
	if res.MFARequired {
		s.setCookie(w, cookieMFA, res.MFAToken, s.o.Now().Add(s.o.MFATokenTTL))
		s.redirect(w, r, "mfa")
		return
	}
	s.setPrincipal(r, *res.Tokens)
	s.setSessionCookies(w, *res.Tokens)
	s.redirect(w, r, "account")
}

func (s *Service) pageMFA(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(cookieMFA); err != nil {
		s.redirect(w, r, "login")
		return
	}
	s.render(w, r, http.StatusOK, "mfa", s.mfaPageData())
}

func (s *Service) pageMFAPost(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(cookieMFA)
	if err != nil {
		s.redirect(w, r, "login")
		return
	}
	t, err := s.VerifyMFA(r.Context(), c.Value, r.PostForm.Get("code"), r.PostForm.Get("remember") == "1", meta(r))
	if errors.Is(err, ErrInvalidToken) {
		s.setCookie(w, cookieMFA, "", time.Time{})
		s.redirect(w, r, "login")
		return
	}
	if err != nil {
		s.pageError(w, r, "mfa", "Two-factor authentication", err, s.mfaPageData())
		return
	}
	s.setCookie(w, cookieMFA, "", time.Time{})
	if t.DeviceToken != "" {
		s.setCookie(w, cookieDevice, t.DeviceToken, t.DeviceExpiresAt)
	}
	s.setPrincipal(r, t)
	s.setSessionCookies(w, t)
	s.redirect(w, r, "account")
}

func (s *Service) mfaPageData() pageData {
	d := pageData{Title: "Two-factor authentication"}
	if !s.o.DisableTrustedDevices {
		d.TrustDays = int(s.o.TrustedDeviceTTL / (24 * time.Hour))
	}
	return d
}

// withPageCaller resolves the session cookie to a Caller, refreshing the
// access token with the refresh cookie when it has expired, and sends
// anyone else to the login page.
func (s *Service) withPageCaller(h func(http.ResponseWriter, *http.Request, Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var cl Caller
		err := ErrUnauthenticated
		if c, cerr := r.Cookie(cookieSession); cerr == nil {
			cl, err = s.caller(r.Context(), c.Value)
		}
		if errors.Is(err, ErrUnauthenticated) {
			if c, cerr := r.Cookie(cookieRefresh); cerr == nil {
				var t Tokens
				if t, err = s.Refresh(r.Context(), c.Value, meta(r)); err == nil {
					s.setSessionCookies(w, t)
					cl, err = s.caller(r.Context(), t.AccessToken)
				}
			}
		}
		if errors.Is(err, ErrUnavailable) {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			s.clearSessionCookies(w)
			s.redirect(w, r, "login")
			return
		}
		s.recordCaller(r, cl)
		h(w, r, cl)
	}
}

func (s *Service) accountData(r *http.Request, cl Caller) (pageData, error) {
	ss, err := s.Sessions(r.Context(), cl)
	if err != nil {
		return pageData{}, err
	}
	d := pageData{Title: "Your account", Username: cl.User.Username, MFAEnabled: cl.User.MFAEnabled()}
	for _, role := range cl.User.Roles {
		d.MFARequired = d.MFARequired || slices.Contains(s.mfaRole, role)
	}
	for _, x := range ss {
		d.Sessions = append(d.Sessions, SessionView{ID: x.ID, CreatedAt: x.CreatedAt, LastSeenAt: x.LastSeenAt,
			ExpiresAt: x.ExpiresAt, MFA: x.MFA, ClientIP: x.ClientIP, UserAgent: x.UserAgent, Current: x.ID == cl.Session.ID})
	}
	return d, nil
}

func (s *Service) pageAccount(w http.ResponseWriter, r *http.Request, cl Caller) {
	d, err := s.accountData(r, cl)
	if err != nil {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.URL.Query().Get("revoked") == "1":
		d.Notice = "Session revoked."
	case r.URL.Query().Get("forgot") == "1":
		d.Notice = "Every trusted device will ask for a code at the next login."
	}
	s.render(w, r, http.StatusOK, "account", d)
}

// pageRefresh renews the session cookies (withPageCaller refreshes an
// expired access cookie) and redirects to the local path in ?next, so a
// browser app whose API calls got 401 can navigate here and come back.
func (s *Service) pageRefresh(w http.ResponseWriter, r *http.Request, _ Caller) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = s.pagePath("account")
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// localPath accepts only a path on this host: "/x", not "//host/x",
// "/\\host" or a URL with a scheme.
func localPath(p string) bool {
	if len(p) == 0 || len(p) > 2048 || p[0] != '/' || len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && !strings.ContainsAny(p, "\\\r\n")
}

func (s *Service) pageRevoke(w http.ResponseWriter, r *http.Request, cl Caller) {
	err := s.RevokeSession(r.Context(), cl, r.PostForm.Get("id"), meta(r))
	if err != nil && !errors.Is(err, ErrNotFound) {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, s.pagePath("account?revoked=1"), http.StatusSeeOther)
}

func (s *Service) pageForgetDevices(w http.ResponseWriter, r *http.Request, cl Caller) {
	if err := s.ForgetDevices(r.Context(), cl); err != nil {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	s.setCookie(w, cookieDevice, "", time.Time{})
	http.Redirect(w, r, s.pagePath("account?forgot=1"), http.StatusSeeOther)
}

func (s *Service) pageLogout(w http.ResponseWriter, r *http.Request, cl Caller) {
	if err := s.Logout(r.Context(), cl, meta(r)); err != nil {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	s.clearSessionCookies(w)
	s.redirect(w, r, "login")
}

func (s *Service) pageEnroll(w http.ResponseWriter, r *http.Request, cl Caller) {
	e, err := s.EnrollMFA(r.Context(), cl)
	if errors.Is(err, ErrMFAEnrolled) {
		s.redirect(w, r, "account")
		return
	}
	if err != nil {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	s.render(w, r, http.StatusOK, "enroll", pageData{Title: "Set up two-factor authentication", Secret: e.Secret, URL: e.URL})
}

// pageQR serves the pending enrolment's otpauth URL as a PNG QR code.
func (s *Service) pageQR(w http.ResponseWriter, r *http.Request, cl Caller) {
	if cl.User.TOTPPending == "" {
		http.NotFound(w, r)
		return
	}
	pending, err := s.pendingSecret(r.Context(), cl)
	if err != nil {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	k, err := otp.NewKeyFromURL(totpURL(s.o.MFAIssuer, cl.User.Username, pending))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	img, err := k.Image(240, 240)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(buf.Bytes())
}

func (s *Service) pageConfirm(w http.ResponseWriter, r *http.Request, cl Caller) {
	codes, err := s.ConfirmMFA(r.Context(), cl, r.PostForm.Get("code"), meta(r))
	switch {
	case errors.Is(err, ErrMFAEnrolled), errors.Is(err, ErrNoEnrollment):
		s.redirect(w, r, "account")
		return
	case err != nil:
		pending, perr := s.pendingSecret(r.Context(), cl)
		if perr != nil {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		s.pageError(w, r, "enroll", "Set up two-factor authentication", err, pageData{
			Secret: pending, URL: totpURL(s.o.MFAIssuer, cl.User.Username, pending)})
		return
	}
	s.render(w, r, http.StatusOK, "backup", pageData{Title: "Your backup codes", Codes: codes})
}

// CookiePrefix starts the name of every cookie this package sets.
const CookiePrefix = "__Host-rampart_"

// StripCookies removes Rampart's own cookies (session, refresh, MFA, CSRF,
// device) from a request's Cookie headers, keeping the others. The proxy
// calls it before forwarding, so an upstream never sees Rampart's tokens.
func StripCookies(h http.Header) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if p := strings.TrimSpace(part); p != "" && !strings.HasPrefix(name, CookiePrefix) {
				kept = append(kept, p)
			}
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}
