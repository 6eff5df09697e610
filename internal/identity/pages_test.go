package identity_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/identity"
)

// browser is a real HTTP client with a cookie jar against a TLS server
// (the __Host- cookies are Secure).
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newPagesEnv(t *testing.T) (*env, func() *browser) {
	e := newEnv(t, nil)
	srv := httptest.NewTLSServer(e.svc.Handler())
	t.Cleanup(srv.Close)
	return e, func() *browser {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		// srv.Client() is shared; each browser needs its own jar.
		c := &http.Client{Transport: srv.Client().Transport, Jar: jar, Timeout: 10 * time.Second}
		return &browser{t: t, base: srv.URL, client: c}
	}
}

type page struct {
	status int
	path   string
	body   string
	header http.Header
}

func (b *browser) get(path string) page {
	b.t.Helper()
	resp, err := b.client.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) page {
	b.t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: resp.StatusCode, path: resp.Request.URL.Path, body: string(body), header: resp.Header}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// submit posts form fields plus the CSRF token found in from.
func (b *browser) submit(from page, path string, fields url.Values) page {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(from.body)
	if m == nil {
		b.t.Fatalf("no CSRF field on %s:\n%s", from.path, from.body)
	}
	if fields == nil {
		fields = url.Values{}
	}
	fields.Set("csrf", m[1])
	return b.post(path, fields, nil)
}

func (b *browser) post(path string, fields url.Values, hdr http.Header) page {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(fields.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func checkPage(t *testing.T, p page, wantPath string) {
	t.Helper()
	if p.status != http.StatusOK || p.path != wantPath {
		t.Fatalf("at %s (%d), want %s:\n%s", p.path, p.status, wantPath, p.body)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("CSP = %q", csp)
	}
	lower := strings.ToLower(p.body)
	for _, inline := range []string{"<script", "style=", "<style", "javascript:"} {
		if strings.Contains(lower, inline) {
			t.Fatalf("page %s has inline %q", p.path, inline)
		}
	}
	if regexp.MustCompile(`\son[a-z]+=`).MatchString(p.body) {
		t.Fatalf("page %s has an inline event handler", p.path)
	}
}

var secretRE = regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`)

func TestPagesFlow(t *testing.T) {
	e, newBrowser := newPagesEnv(t)
	e.createUser("alice")
	b := newBrowser()

	login := b.get("/.rampart/ui/login")
	checkPage(t, login, "/.rampart/ui/login")
	bad := b.submit(login, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {"wrong password!"}})
	if bad.status != http.StatusUnauthorized || !strings.Contains(bad.body, `id="error"`) {
		t.Fatalf("wrong password: %d", bad.status)
	}
	acct := b.submit(login, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}})
	checkPage(t, acct, "/.rampart/ui/account")
	if !strings.Contains(acct.body, `id="username">alice<`) || strings.Count(acct.body, "data-session=") != 1 {
		t.Fatalf("account page:\n%s", acct.body)
	}

	// Enrol TOTP reading the secret from the page.
	enrol := b.submit(acct, "/.rampart/ui/mfa/enroll", nil)
	checkPage(t, enrol, "/.rampart/ui/mfa/enroll")
	m := secretRE.FindStringSubmatch(enrol.body)
	if m == nil {
		t.Fatalf("no secret on the enrolment page:\n%s", enrol.body)
	}
	secret := m[1]
	qr := b.get("/.rampart/ui/mfa/qr.png")
	if qr.status != http.StatusOK || !bytes.HasPrefix([]byte(qr.body), []byte("\x89PNG")) {
		t.Fatalf("QR code: %d %q", qr.status, qr.header.Get("Content-Type"))
	}
	wrong := b.submit(enrol, "/.rampart/ui/mfa/confirm", url.Values{"code": {"000000"}})
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, secret) {
		t.Fatalf("wrong confirm code: %d", wrong.status)
	}
	code, _ := identity.TOTPCode(secret, e.clock.Now())
	backup := b.submit(enrol, "/.rampart/ui/mfa/confirm", url.Values{"code": {code}})
	checkPage(t, backup, "/.rampart/ui/mfa/confirm")
	if n := strings.Count(backup.body, "<li><code>"); n != identity.DefaultBackupCodes {
		t.Fatalf("%d backup codes on the page", n)
	}
	if backup.header.Get("Cache-Control") != "no-store" {
		t.Fatal("backup codes page may be cached")
	}

	// Log out, log in again with a computed TOTP code.
	acct = b.get("/.rampart/ui/account")
	if !strings.Contains(acct.body, `id="mfa-status">On`) {
		t.Fatalf("MFA not shown as on:\n%s", acct.body)
	}
	out := b.submit(acct, "/.rampart/ui/logout", nil)
	checkPage(t, out, "/.rampart/ui/login")
	if p := b.get("/.rampart/ui/account"); p.path != "/.rampart/ui/login" {
		t.Fatalf("account after logout: %s", p.path)
	}
	e.clock.Advance(30 * time.Second)
	mfa := b.submit(out, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}})
	checkPage(t, mfa, "/.rampart/ui/mfa")
	code, _ = identity.TOTPCode(secret, e.clock.Now())
	acct = b.submit(mfa, "/.rampart/ui/mfa", url.Values{"code": {code}})
	checkPage(t, acct, "/.rampart/ui/account")

	// A second browser logs in; the first revokes it.
	other := newBrowser()
	e.clock.Advance(30 * time.Second)
	ol := other.get("/.rampart/ui/login")
	om := other.submit(ol, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}})
	code, _ = identity.TOTPCode(secret, e.clock.Now())
	oa := other.submit(om, "/.rampart/ui/mfa", url.Values{"code": {code}})
	checkPage(t, oa, "/.rampart/ui/account")
	acct = b.get("/.rampart/ui/account")
	ids := regexp.MustCompile(`name="id" value="([^"]+)"`).FindAllStringSubmatch(acct.body, -1)
	if len(ids) != 1 {
		t.Fatalf("want one revocable session, page:\n%s", acct.body)
	}
	revoked := b.submit(acct, "/.rampart/ui/sessions/revoke", url.Values{"id": {ids[0][1]}})
	checkPage(t, revoked, "/.rampart/ui/account")
	if !strings.Contains(revoked.body, "Session revoked") || strings.Count(revoked.body, "data-session=") != 1 {
		t.Fatalf("after revoke:\n%s", revoked.body)
	}
	if p := other.get("/.rampart/ui/account"); p.path != "/.rampart/ui/login" {
		t.Fatalf("revoked browser still in: %s", p.path)
	}
}

func TestPagesRefreshExpiredAccessCookie(t *testing.T) {
	e, newBrowser := newPagesEnv(t)
	e.createUser("alice")
	b := newBrowser()
	login := b.get("/.rampart/ui/login")
	checkPage(t, b.submit(login, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}}), "/.rampart/ui/account")
	e.clock.Advance(45 * time.Minute) // access token expired, refresh token good
	checkPage(t, b.get("/.rampart/ui/account"), "/.rampart/ui/account")
	checkPage(t, b.get("/.rampart/ui/account"), "/.rampart/ui/account")
}

func TestPagesCSRF(t *testing.T) {
	e, newBrowser := newPagesEnv(t)
	e.createUser("alice")
	b := newBrowser()
	login := b.get("/.rampart/ui/login")
	good := url.Values{"username": {"alice"}, "password": {goodPassword}}
	token := csrfRE.FindStringSubmatch(login.body)[1]
	withToken := func(v url.Values, tok string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		out.Set("csrf", tok)
		return out
	}
	tests := []struct {
		name   string
		fields url.Values
		hdr    http.Header
	}{
		{"no token", good, nil},
		{"wrong token", withToken(good, strings.Repeat("A", 43)), nil},
		{"cross-site origin", withToken(good, token), http.Header{"Origin": {"https://evil.example"}}},
		{"cross-site fetch", withToken(good, token), http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p := b.post("/.rampart/ui/login", tt.fields, tt.hdr); p.status != http.StatusForbidden {
				t.Fatalf("status %d at %s", p.status, p.path)
			}
		})
	}
	// A fresh browser without the CSRF cookie cannot replay a token.
	if p := newBrowser().post("/.rampart/ui/login", withToken(good, token), nil); p.status != http.StatusForbidden {
		t.Fatalf("token without cookie: %d", p.status)
	}
	if p := b.post("/.rampart/ui/login", withToken(good, token), http.Header{"Sec-Fetch-Site": {"same-origin"}}); p.path != "/.rampart/ui/account" {
		t.Fatalf("same-origin login: %d %s", p.status, p.path)
	}
}

func TestPagesStaticAndUnauthenticated(t *testing.T) {
	_, newBrowser := newPagesEnv(t)
	b := newBrowser()
	css := b.get("/.rampart/ui/static/style.css")
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", css.status, css.header.Get("Content-Type"))
	}
	for _, p := range []string{"/.rampart/ui/account", "/.rampart/ui/mfa", "/.rampart/ui/mfa/qr.png"} {
		if got := b.get(p); got.path != "/.rampart/ui/login" {
			t.Fatalf("%s without a session ended at %s", p, got.path)
		}
	}
}

func TestAuthenticateWithSessionCookie(t *testing.T) {
	e, newBrowser := newPagesEnv(t)
	e.createUser("alice")
	b := newBrowser()
	login := b.get("/.rampart/ui/login")
	checkPage(t, b.submit(login, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}}), "/.rampart/ui/account")
	u, _ := url.Parse(b.base)
	var session *http.Cookie
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "__Host-rampart_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		ok     bool
	}{
		{"GET", "GET", nil, true},
		{"POST same origin", "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"POST no headers", "POST", nil, true},
		{"POST cross-site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"DELETE foreign origin", "DELETE", map[string]string{"Origin": "https://evil.example"}, false},
		{"POST origin null", "POST", map[string]string{"Origin": "null"}, false},
		{"POST same-origin with origin null (no-referrer page)", "POST", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, true},
		{"POST same-site is not same-origin", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"bad Authorization wins over cookie", "GET", map[string]string{"Authorization": "Basic eDp5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://"+u.Host+"/api/x", nil)
			r.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			p, err := e.svc.Authenticate(r)
			if (err == nil) != tt.ok {
				t.Fatalf("Authenticate = %+v, %v; want ok=%v", p, err, tt.ok)
			}
			if tt.ok && p.Name != "alice" {
				t.Fatalf("principal %+v", p)
			}
		})
	}

	// ui/refresh renews an expired access cookie and goes back to a local path only.
	e.clock.Advance(time.Hour)
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for next, want := range map[string]string{
		"/app/agents?page=2":    "/app/agents?page=2",
		"//evil.example/":       "/.rampart/ui/account",
		"https://evil.example/": "/.rampart/ui/account",
	} {
		resp, err := b.client.Get(b.base + "/.rampart/ui/refresh?next=" + url.QueryEscape(next))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("refresh next=%q: %d %q", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestPagesTrustedDevice(t *testing.T) {
	e, newBrowser := newPagesEnv(t)
	e.createUser("alice")
	b := newBrowser()
	login := b.get("/.rampart/ui/login")
	acct := b.submit(login, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}})
	enrol := b.submit(acct, "/.rampart/ui/mfa/enroll", nil)
	secret := secretRE.FindStringSubmatch(enrol.body)[1]
	code, _ := identity.TOTPCode(secret, e.clock.Now())
	b.submit(enrol, "/.rampart/ui/mfa/confirm", url.Values{"code": {code}})
	acct = b.get("/.rampart/ui/account")
	out := b.submit(acct, "/.rampart/ui/logout", nil)

	e.clock.Advance(30 * time.Second)
	mfa := b.submit(out, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}})
	if !strings.Contains(mfa.body, `id="remember"`) || !strings.Contains(mfa.body, "30 days") {
		t.Fatalf("no trust checkbox:\n%s", mfa.body)
	}
	code, _ = identity.TOTPCode(secret, e.clock.Now())
	acct = b.submit(mfa, "/.rampart/ui/mfa", url.Values{"code": {code}, "remember": {"1"}})
	checkPage(t, acct, "/.rampart/ui/account")
	out = b.submit(acct, "/.rampart/ui/logout", nil)
	// The trusted device skips the code.
	checkPage(t, b.submit(out, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}}), "/.rampart/ui/account")

	acct = b.get("/.rampart/ui/account")
	acct = b.submit(acct, "/.rampart/ui/devices/forget", nil)
	checkPage(t, acct, "/.rampart/ui/account")
	out = b.submit(acct, "/.rampart/ui/logout", nil)
	checkPage(t, b.submit(out, "/.rampart/ui/login", url.Values{"username": {"alice"}, "password": {goodPassword}}), "/.rampart/ui/mfa")
}
