package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

func TestLoginAndProtectedRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice", "write")
	tk := e.login("alice", goodPassword)
	if tk.ExpiresIn != 1800 {
		t.Fatalf("access expires_in = %d, want 1800", tk.ExpiresIn)
	}
	if !strings.HasPrefix(tk.RefreshToken, "rt_") {
		t.Fatalf("refresh token %q", tk.RefreshToken)
	}
	code, body := e.do("GET", "/api/me", nil, tk.AccessToken)
	if code != http.StatusOK {
		t.Fatalf("protected route: %d %s", code, body)
	}
	p := decode[reqinfo.Principal](t, body)
	if p.Kind != "user" || p.Name != "alice" || p.SessionID != tk.SessionID || !p.Permissions.Has(reqinfo.PermWrite) || p.Permissions.Has(reqinfo.PermAdmin) {
		t.Fatalf("principal = %+v", p)
	}
	if code := e.me(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	// The access token expires after 30 minutes.
	e.clock.Advance(30 * time.Minute)
	if code := e.me(tk.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("expired access token: %d", code)
	}
}

func TestUnknownUserAndWrongPasswordLookAlike(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	e.createUser("locked")
	if err := e.svc.Manager().Lock(context.Background(), "locked"); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
	}
	var answers []answer
	for _, c := range []struct{ user, pass string }{
		{"alice", "wrong password here"},
		{"nobody", "wrong password here"},
		{"not a valid name!", "wrong password here"},
		{"locked", goodPassword},
		{"alice", strings.Repeat("x", 100)},
	} {
		code, body := e.do("POST", "/.rampart/login", map[string]string{"username": c.user, "password": c.pass}, "")
		answers = append(answers, answer{code, string(body)})
	}
	for i, a := range answers {
		if a != answers[0] {
			t.Fatalf("answer %d = %+v, answer 0 = %+v", i, a, answers[0])
		}
	}
	if answers[0].code != http.StatusUnauthorized || !strings.Contains(answers[0].body, "invalid_credentials") {
		t.Fatalf("answer = %+v", answers[0])
	}
}

func TestLockoutAndUnlock(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.LockoutThreshold = 3 })
	e.createUser("alice")
	for i := range 3 {
		code, _ := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": "wrong password " + string(rune('a'+i))}, "")
		if code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	if !slices.Contains(e.eventTypes(), identity.EventLockout) {
		t.Fatalf("no lockout event: %v", e.eventTypes())
	}
	code, _ := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": goodPassword}, "")
	if code != http.StatusUnauthorized {
		t.Fatalf("locked out account accepted the right password: %d", code)
	}
	// The lock ends by itself after the lockout duration...
	e.clock.Advance(identity.DefaultLockoutDuration)
	e.login("alice", goodPassword)

	// ...or at once with unlock.
	for i := range 3 {
		e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": "wrong again " + string(rune('a'+i))}, "")
	}
	if code, _ := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": goodPassword}, ""); code != http.StatusUnauthorized {
		t.Fatalf("second lockout: %d", code)
	}
	if err := e.svc.Manager().Unlock(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	e.login("alice", goodPassword)
}

func TestLockoutWindow(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.LockoutThreshold = 3; o.LockoutWindow = 10 * time.Minute })
	e.createUser("alice")
	fail := func() {
		e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": "not the password"}, "")
	}
	fail()
	fail()
	e.clock.Advance(10 * time.Minute) // the window of the first two failures is over
	fail()
	e.login("alice", goodPassword)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	first := e.login("alice", goodPassword)

	e.clock.Advance(time.Minute)
	code, body := e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": first.RefreshToken}, "")
	if code != http.StatusOK {
		t.Fatalf("refresh: %d %s", code, body)
	}
	second := decode[tokens](t, body)
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken || second.SessionID != first.SessionID {
		t.Fatalf("refresh did not rotate: %+v", second)
	}
	if e.me(second.AccessToken) != http.StatusOK {
		t.Fatal("rotated access token refused")
	}

	// Presenting the used token again is theft: the whole family dies.
	code, _ = e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": first.RefreshToken}, "")
	if code != http.StatusUnauthorized {
		t.Fatalf("reused refresh token: %d", code)
	}
	if !slices.Contains(e.eventTypes(), identity.EventRefreshReuse) {
		t.Fatalf("no reuse event: %v", e.eventTypes())
	}
	code, _ = e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": second.RefreshToken}, "")
	if code != http.StatusUnauthorized {
		t.Fatalf("descendant refresh token still works after reuse: %d", code)
	}
	for _, at := range []string{first.AccessToken, second.AccessToken} {
		if e.me(at) != http.StatusUnauthorized {
			t.Fatal("access token of the revoked family still accepted")
		}
	}
	// Another session of the same user is untouched.
	other := e.login("alice", goodPassword)
	if e.me(other.AccessToken) != http.StatusOK {
		t.Fatal("unrelated session affected")
	}
}

func TestRefreshLimits(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		ok      bool
	}{
		{"within idle timeout", 23 * time.Hour, true},
		{"idle timeout", 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.createUser("alice")
			tk := e.login("alice", goodPassword)
			e.clock.Advance(tt.advance)
			code, _ := e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": tk.RefreshToken}, "")
			if (code == http.StatusOK) != tt.ok {
				t.Fatalf("refresh after %s: %d", tt.advance, code)
			}
		})
	}
	t.Run("absolute lifetime", func(t *testing.T) {
		e := newEnv(t, func(o *identity.Options) { o.SessionLifetime = 2 * time.Hour })
		e.createUser("alice")
		tk := e.login("alice", goodPassword)
		for range 3 {
			e.clock.Advance(50 * time.Minute)
			code, body := e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": tk.RefreshToken}, "")
			if e.clock.Now().Sub(newClock().Now()) >= 2*time.Hour {
				if code != http.StatusUnauthorized {
					t.Fatalf("refresh past absolute lifetime: %d", code)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("refresh: %d %s", code, body)
			}
			tk = decode[tokens](t, body)
		}
		t.Fatal("never reached the lifetime")
	})
	t.Run("garbage", func(t *testing.T) {
		e := newEnv(t, nil)
		for _, rt := range []string{"", "rt_", "rt_" + strings.Repeat("A", 43), "xx_" + strings.Repeat("A", 43), strings.Repeat("x", 5000)} {
			code, _ := e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": rt}, "")
			if code != http.StatusUnauthorized {
				t.Fatalf("refresh %q: %d", rt, code)
			}
		}
	})
}

func TestLogoutEndsAccess(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	tk := e.login("alice", goodPassword)
	if code, body := e.do("POST", "/.rampart/logout", nil, tk.AccessToken); code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", code, body)
	}
	if e.me(tk.AccessToken) != http.StatusUnauthorized {
		t.Fatal("access token accepted after logout")
	}
	if code, _ := e.do("POST", "/.rampart/token/refresh", map[string]string{"refresh_token": tk.RefreshToken}, ""); code != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d", code)
	}
	if code, _ := e.do("POST", "/.rampart/logout", nil, tk.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("second logout: %d", code)
	}
}

func TestSessionCapEvictsOldest(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.MaxSessions = 2 })
	e.createUser("alice")
	var ts []tokens
	for range 3 {
		ts = append(ts, e.login("alice", goodPassword))
		e.clock.Advance(time.Second)
	}
	if e.me(ts[0].AccessToken) != http.StatusUnauthorized {
		t.Fatal("oldest session survived past the cap")
	}
	for _, tk := range ts[1:] {
		if e.me(tk.AccessToken) != http.StatusOK {
			t.Fatal("newer session evicted")
		}
	}
	code, body := e.do("GET", "/.rampart/sessions", nil, ts[2].AccessToken)
	if code != http.StatusOK {
		t.Fatalf("sessions: %d %s", code, body)
	}
	list := decode[struct {
		Sessions []identity.SessionView `json:"sessions"`
	}](t, body)
	if len(list.Sessions) != 2 || list.Sessions[0].ID != ts[1].SessionID || !list.Sessions[1].Current {
		t.Fatalf("sessions = %+v", list.Sessions)
	}
	if !slices.Contains(e.eventTypes(), identity.EventSessionEvicted) {
		t.Fatalf("no eviction event: %v", e.eventTypes())
	}
}

func TestRevokeSession(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	e.createUser("bob")
	a1 := e.login("alice", goodPassword)
	a2 := e.login("alice", goodPassword)
	b := e.login("bob", goodPassword)
	if code, _ := e.do("DELETE", "/.rampart/sessions/"+b.SessionID, nil, a1.AccessToken); code != http.StatusNotFound {
		t.Fatalf("revoking another user's session: %d", code)
	}
	if code, _ := e.do("DELETE", "/.rampart/sessions/"+a2.SessionID, nil, a1.AccessToken); code != http.StatusNoContent {
		t.Fatalf("revoke own session: %d", code)
	}
	if e.me(a2.AccessToken) != http.StatusUnauthorized || e.me(a1.AccessToken) != http.StatusOK || e.me(b.AccessToken) != http.StatusOK {
		t.Fatal("wrong sessions affected")
	}
}

// enrol runs enrol + confirm for a logged-in user and returns the secret
// and backup codes.
func (e *env) enrol(access string) (string, []string) {
	e.t.Helper()
	code, body := e.do("POST", "/.rampart/mfa/enroll", nil, access)
	if code != http.StatusOK {
		e.t.Fatalf("enroll: %d %s", code, body)
	}
	en := decode[identity.Enrollment](e.t, body)
	if !strings.HasPrefix(en.URL, "otpauth://totp/") || !strings.Contains(en.URL, en.Secret) {
		e.t.Fatalf("enrollment = %+v", en)
	}
	totp, err := identity.TOTPCode(en.Secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	code, body = e.do("POST", "/.rampart/mfa/confirm", map[string]string{"code": totp}, access)
	if code != http.StatusOK {
		e.t.Fatalf("confirm: %d %s", code, body)
	}
	codes := decode[struct {
		BackupCodes []string `json:"backup_codes"`
	}](e.t, body).BackupCodes
	return en.Secret, codes
}

func (e *env) verify(mfaToken, code string) (int, tokens) {
	e.t.Helper()
	status, body := e.do("POST", "/.rampart/mfa/verify", map[string]string{"mfa_token": mfaToken, "code": code}, "")
	if status != http.StatusOK {
		return status, tokens{}
	}
	return status, decode[tokens](e.t, body)
}

func TestMFAFlow(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	tk := e.login("alice", goodPassword)
	secret, backup := e.enrol(tk.AccessToken)
	if len(backup) != identity.DefaultBackupCodes {
		t.Fatalf("%d backup codes", len(backup))
	}
	// A second enrolment is refused until an operator resets MFA.
	if code, _ := e.do("POST", "/.rampart/mfa/enroll", nil, tk.AccessToken); code != http.StatusConflict {
		t.Fatalf("second enroll: %d", code)
	}

	ch := e.login("alice", goodPassword)
	if !ch.MFARequired || ch.MFAToken == "" || ch.AccessToken != "" {
		t.Fatalf("login with MFA = %+v", ch)
	}
	// The MFA token is not an access token.
	if e.me(ch.MFAToken) != http.StatusUnauthorized {
		t.Fatal("MFA token accepted as access token")
	}
	// The code used to confirm enrolment is in the same time step: replay.
	now, _ := identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.verify(ch.MFAToken, now); code != http.StatusUnauthorized {
		t.Fatalf("replayed TOTP code: %d", code)
	}
	e.clock.Advance(30 * time.Second)
	next, _ := identity.TOTPCode(secret, e.clock.Now())
	code, got := e.verify(ch.MFAToken, next)
	if code != http.StatusOK || e.me(got.AccessToken) != http.StatusOK {
		t.Fatalf("verify TOTP: %d", code)
	}
	if code, _ := e.verify(ch.MFAToken, next); code != http.StatusUnauthorized {
		t.Fatalf("same code twice: %d", code)
	}

	// A backup code works once, typed in any case and spacing.
	ch = e.login("alice", goodPassword)
	typed := strings.ToUpper(strings.ReplaceAll(backup[3], "-", " "))
	if code, _ := e.verify(ch.MFAToken, typed); code != http.StatusOK {
		t.Fatalf("backup code: %d", code)
	}
	if code, _ := e.verify(ch.MFAToken, backup[3]); code != http.StatusUnauthorized {
		t.Fatalf("backup code reused: %d", code)
	}

	// The MFA token expires.
	ch = e.login("alice", goodPassword)
	e.clock.Advance(identity.DefaultMFATokenTTL + time.Second)
	later, _ := identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.verify(ch.MFAToken, later); code != http.StatusUnauthorized {
		t.Fatalf("expired MFA token: %d", code)
	}

	// reset-mfa clears the secret and codes and ends sessions.
	if err := e.svc.Manager().ResetMFA(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if e.me(got.AccessToken) != http.StatusUnauthorized {
		t.Fatal("session survived reset-mfa")
	}
	if tk := e.login("alice", goodPassword); tk.MFARequired {
		t.Fatal("MFA still required after reset")
	}
}

func TestMFAAttemptLimit(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.MFAAttemptLimit = 3; o.MFAWindow = 10 * time.Minute })
	e.createUser("alice")
	secret, _ := e.enrol(e.login("alice", goodPassword).AccessToken)
	e.clock.Advance(30 * time.Second)
	ch := e.login("alice", goodPassword)
	for _, wrong := range []string{"000000", "abc", "111111"} {
		if code, _ := e.verify(ch.MFAToken, wrong); code != http.StatusUnauthorized {
			t.Fatalf("wrong code %q: %d", wrong, code)
		}
	}
	right, _ := identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.verify(ch.MFAToken, right); code != http.StatusTooManyRequests {
		t.Fatalf("right code past the attempt limit: %d", code)
	}
	e.clock.Advance(10 * time.Minute)
	ch = e.login("alice", goodPassword)
	right, _ = identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.verify(ch.MFAToken, right); code != http.StatusOK {
		t.Fatalf("after the window: %d", code)
	}
}

func TestMFARequiredForAdmin(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("root", "admin")
	tk := e.login("root", goodPassword)
	_, err := e.svc.AuthenticateToken(context.Background(), tk.AccessToken)
	if !errors.Is(err, identity.ErrMFARequired) {
		t.Fatalf("admin without MFA: %v", err)
	}
	// The identity API itself stays usable, so the admin can enrol.
	secret, _ := e.enrol(tk.AccessToken)
	e.clock.Advance(30 * time.Second)
	ch := e.login("root", goodPassword)
	code, _ := identity.TOTPCode(secret, e.clock.Now())
	status, got := e.verify(ch.MFAToken, code)
	if status != http.StatusOK {
		t.Fatalf("verify: %d", status)
	}
	p, err := e.svc.AuthenticateToken(context.Background(), got.AccessToken)
	if err != nil || !p.Permissions.Has(reqinfo.PermAdmin) {
		t.Fatalf("admin with MFA: %+v %v", p, err)
	}

	none := newEnv(t, func(o *identity.Options) { o.MFARequiredRoles = []string{} })
	none.createUser("root", "admin")
	if _, err := none.svc.AuthenticateToken(context.Background(), none.login("root", goodPassword).AccessToken); err != nil {
		t.Fatalf("MFA required with an empty role list: %v", err)
	}
}

func TestPasswordChange(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	a1 := e.login("alice", goodPassword)
	a2 := e.login("alice", goodPassword)
	tests := []struct {
		name    string
		current string
		next    string
		want    int
	}{
		{"wrong current", "not my password", "another long passphrase", http.StatusUnauthorized},
		{"too short", goodPassword, "short", http.StatusBadRequest},
		{"common", goodPassword, "1q2w3e4r5t6y", http.StatusBadRequest},
		{"contains username", goodPassword, "my name is alice ok", http.StatusBadRequest},
		{"ok", goodPassword, "another long passphrase", http.StatusNoContent},
	}
	for _, tt := range tests {
		code, body := e.do("POST", "/.rampart/password/change",
			map[string]string{"current_password": tt.current, "new_password": tt.next}, a1.AccessToken)
		if code != tt.want {
			t.Fatalf("%s: %d %s", tt.name, code, body)
		}
	}
	if e.me(a1.AccessToken) != http.StatusOK || e.me(a2.AccessToken) != http.StatusUnauthorized {
		t.Fatal("password change should keep the current session and end the others")
	}
	e.login("alice", "another long passphrase")
}

func TestPasswordReset(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	old := e.login("alice", goodPassword)
	tok, exp, err := e.svc.Manager().ResetPasswordToken(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("reset token expires %v", exp)
	}
	if code, _ := e.do("POST", "/.rampart/password/reset", map[string]string{"token": tok, "new_password": "short"}, ""); code != http.StatusBadRequest {
		t.Fatalf("weak password: %d", code)
	}
	code, body := e.do("POST", "/.rampart/password/reset", map[string]string{"token": tok, "new_password": "a brand new passphrase"}, "")
	if code != http.StatusNoContent {
		t.Fatalf("reset: %d %s", code, body)
	}
	if code, _ := e.do("POST", "/.rampart/password/reset", map[string]string{"token": tok, "new_password": "yet another passphrase"}, ""); code != http.StatusUnauthorized {
		t.Fatalf("reset token used twice: %d", code)
	}
	if e.me(old.AccessToken) != http.StatusUnauthorized {
		t.Fatal("session survived password reset")
	}
	e.login("alice", "a brand new passphrase")

	tok, _, _ = e.svc.Manager().ResetPasswordToken(context.Background(), "alice")
	e.clock.Advance(time.Hour)
	if code, _ := e.do("POST", "/.rampart/password/reset", map[string]string{"token": tok, "new_password": "yet another passphrase"}, ""); code != http.StatusUnauthorized {
		t.Fatalf("expired reset token: %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, ctype, body string
		want              int
	}{
		{"form post", "application/x-www-form-urlencoded", "username=a&password=b", http.StatusBadRequest},
		{"text plain", "text/plain", `{"username":"a","password":"b"}`, http.StatusBadRequest},
		{"unknown field", "application/json", `{"username":"a","password":"b","admin":true}`, http.StatusBadRequest},
		{"trailing data", "application/json", `{"username":"a","password":"b"}{}`, http.StatusBadRequest},
		{"not an object", "application/json", `[1,2]`, http.StatusBadRequest},
		{"too large", "application/json", `{"username":"` + strings.Repeat("a", 20000) + `"}`, http.StatusBadRequest},
		{"charset ok", "application/json; charset=utf-8", `{"username":"a","password":"b"}`, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/.rampart/login", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatal("no Cache-Control: no-store")
			}
		})
	}
	if code, _ := e.do("GET", "/.rampart/login", nil, ""); code != http.StatusNotFound {
		t.Fatalf("GET login: %d", code)
	}
	if code, _ := e.do("GET", "/.rampart/nope", nil, ""); code != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d", code)
	}
}

func TestAccountChangesEndSessionsWithEvents(t *testing.T) {
	tests := []struct {
		name     string
		change   func(m *identity.Manager) error
		canLogin bool
	}{
		{"lock", func(m *identity.Manager) error { return m.Lock(context.Background(), "alice") }, false},
		{"disable", func(m *identity.Manager) error {
			return m.SetStatus(context.Background(), "alice", identity.StatusDisabled)
		}, false},
		{"reset MFA", func(m *identity.Manager) error { return m.ResetMFA(context.Background(), "alice") }, true},
		{"set roles", func(m *identity.Manager) error {
			return m.SetRoles(context.Background(), "alice", []string{"write"})
		}, true},
		{"delete", func(m *identity.Manager) error { return m.Delete(context.Background(), "alice") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.createUser("alice")
			tk := e.login("alice", goodPassword)
			if err := tt.change(e.svc.Manager()); err != nil {
				t.Fatal(err)
			}
			if e.me(tk.AccessToken) != http.StatusUnauthorized {
				t.Fatal("session survived")
			}
			if !slices.Contains(e.eventTypes(), identity.EventUserSessionsRevoked) {
				t.Fatalf("events %v", e.eventTypes())
			}
			code, _ := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": goodPassword}, "")
			if (code == http.StatusOK) != tt.canLogin {
				t.Fatalf("login after %s: %d", tt.name, code)
			}
		})
	}
}

func TestExport(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	tk := e.login("alice", goodPassword)
	_, codes := e.enrol(tk.AccessToken)
	ch := e.login("alice", goodPassword)
	if code, _ := e.verify(ch.MFAToken, codes[0]); code != http.StatusOK {
		t.Fatal("backup code refused")
	}
	ex, err := e.svc.Manager().Export(context.Background(), "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, c := range ex.BackupCodes {
		if c.UsedAt != nil {
			used++
		}
	}
	if ex.User.Username != "alice" || !ex.User.MFAEnabled || len(ex.Sessions) != 2 || len(ex.BackupCodes) != 10 || used != 1 || ex.User.LastLoginAt == nil {
		t.Fatalf("export = %+v", ex)
	}
	if _, err := e.svc.Manager().Export(context.Background(), "nobody"); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("export unknown: %v", err)
	}
}

func TestTrustedDevices(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.TrustedDeviceTTL = 7 * 24 * time.Hour })
	e.createUser("alice", "admin")
	e.createUser("bob")
	secret, _ := e.enrol(e.login("alice", goodPassword).AccessToken)
	bobSecret, _ := e.enrol(e.login("bob", goodPassword).AccessToken)

	// verify with remember_device returns a device token.
	remember := func(user, sec string) string {
		t.Helper()
		e.clock.Advance(30 * time.Second)
		ch := e.login(user, goodPassword)
		code, _ := identity.TOTPCode(sec, e.clock.Now())
		status, body := e.do("POST", "/.rampart/mfa/verify", map[string]any{"mfa_token": ch.MFAToken, "code": code, "remember_device": true}, "")
		if status != http.StatusOK {
			t.Fatalf("verify: %d %s", status, body)
		}
		v := decode[struct {
			DeviceToken string `json:"device_token"`
		}](t, body)
		if !strings.HasPrefix(v.DeviceToken, "dv_") {
			t.Fatalf("device token %q", v.DeviceToken)
		}
		return v.DeviceToken
	}
	loginWith := func(user, device string) tokens {
		t.Helper()
		status, body := e.do("POST", "/.rampart/login", map[string]string{"username": user, "password": goodPassword, "device_token": device}, "")
		if status != http.StatusOK {
			t.Fatalf("login: %d %s", status, body)
		}
		return decode[tokens](t, body)
	}
	dev := remember("alice", secret)
	bobDev := remember("bob", bobSecret)

	tk := loginWith("alice", dev)
	if tk.MFARequired || tk.AccessToken == "" {
		t.Fatalf("trusted device still asked for MFA: %+v", tk)
	}
	if _, err := e.svc.AuthenticateToken(context.Background(), tk.AccessToken); err != nil {
		t.Fatalf("admin on a trusted device: %v", err)
	}
	for name, d := range map[string]string{"another user's device": bobDev, "garbage": "dv_nope", "empty": ""} {
		if tk := loginWith("alice", d); !tk.MFARequired {
			t.Fatalf("%s skipped MFA", name)
		}
	}
	// A trusted device never replaces the password.
	if code, _ := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": "wrong password!!", "device_token": dev}, ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong password with a trusted device: %d", code)
	}

	// forget → MFA again.
	if code, _ := e.do("POST", "/.rampart/devices/forget", nil, tk.AccessToken); code != http.StatusNoContent {
		t.Fatalf("forget: %d", code)
	}
	if tk := loginWith("alice", dev); !tk.MFARequired {
		t.Fatal("forgotten device skipped MFA")
	}

	// Expiry.
	dev = remember("alice", secret)
	e.clock.Advance(7 * 24 * time.Hour)
	if tk := loginWith("alice", dev); !tk.MFARequired {
		t.Fatal("expired device skipped MFA")
	}

	// A password change forgets devices.
	dev = remember("alice", secret)
	cur := loginWith("alice", dev)
	if code, _ := e.do("POST", "/.rampart/password/change", map[string]string{"current_password": goodPassword, "new_password": "a fresh long passphrase"}, cur.AccessToken); code != http.StatusNoContent {
		t.Fatalf("password change: %d", code)
	}
	if _, body := e.do("POST", "/.rampart/login", map[string]string{"username": "alice", "password": "a fresh long passphrase", "device_token": dev}, ""); !strings.Contains(string(body), "mfa_required") {
		t.Fatalf("device survived a password change: %s", body)
	}

	ex, err := e.svc.Manager().Export(context.Background(), "alice")
	if err != nil || len(ex.TrustedDevices) != 3 {
		t.Fatalf("export devices: %d, %v", len(ex.TrustedDevices), err)
	}
}

func TestTrustedDevicesDisabled(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.DisableTrustedDevices = true })
	e.createUser("alice")
	secret, _ := e.enrol(e.login("alice", goodPassword).AccessToken)
	e.clock.Advance(30 * time.Second)
	ch := e.login("alice", goodPassword)
	code, _ := identity.TOTPCode(secret, e.clock.Now())
	status, body := e.do("POST", "/.rampart/mfa/verify", map[string]any{"mfa_token": ch.MFAToken, "code": code, "remember_device": true}, "")
	if status != http.StatusOK || strings.Contains(string(body), "device_token") {
		t.Fatalf("verify: %d %s", status, body)
	}
}

func TestIPThrottleAcrossAccounts(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.IPFailureThreshold = 4; o.LockoutThreshold = 100 })
	e.createUser("alice")
	e.createUser("bob")
	ctx := context.Background()
	attacker := identity.ClientMeta{IP: "192.0.2.7"}
	for i, u := range []string{"alice", "bob", "carol", "alice", "bob"} {
		_, err := e.svc.Login(ctx, u, "guess number one", attacker)
		if !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := e.svc.Login(ctx, "alice", goodPassword, attacker); !errors.Is(err, identity.ErrTooManyAttempts) {
		t.Fatalf("blocked IP with the right password: %v", err)
	}
	if _, err := e.svc.Login(ctx, "alice", goodPassword, identity.ClientMeta{IP: "198.51.100.1"}); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.svc.Login(ctx, "alice", goodPassword, attacker); err != nil {
		t.Fatalf("after the block: %v", err)
	}

	// Over HTTP the block is a 429 with Retry-After.
	for range 5 {
		e.do("POST", "/.rampart/login", map[string]string{"username": "bob", "password": "guess number two"}, "")
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/.rampart/login", strings.NewReader(`{"username":"bob","password":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("blocked over HTTP: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestTOTPSecretEncryptedAtRest(t *testing.T) {
	totpKey := identity.Key{ID: "t1", Secret: []byte("totp-key-totp-key-totp-key-totp!")}
	e := newEnv(t, func(o *identity.Options) { o.TOTPKeys = []identity.Key{totpKey} })
	u := e.createUser("alice")
	tk := e.login("alice", goodPassword)
	code, body := e.do("POST", "/.rampart/mfa/enroll", nil, tk.AccessToken)
	if code != http.StatusOK {
		t.Fatalf("enroll: %d", code)
	}
	secret := decode[identity.Enrollment](t, body).Secret
	stored, _ := e.store.LookupUser(context.Background(), u.ID)
	if !strings.HasPrefix(stored.TOTPPending, "enc:t1:") || strings.Contains(stored.TOTPPending, secret) {
		t.Fatalf("pending secret stored as %q", stored.TOTPPending)
	}
	totp, _ := identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.do("POST", "/.rampart/mfa/confirm", map[string]string{"code": totp}, tk.AccessToken); code != http.StatusOK {
		t.Fatalf("confirm: %d", code)
	}
	stored, _ = e.store.LookupUser(context.Background(), u.ID)
	if !strings.HasPrefix(stored.TOTPSecret, "enc:t1:") {
		t.Fatalf("secret stored as %q", stored.TOTPSecret)
	}
	e.clock.Advance(30 * time.Second)
	ch := e.login("alice", goodPassword)
	totp, _ = identity.TOTPCode(secret, e.clock.Now())
	if code, _ := e.verify(ch.MFAToken, totp); code != http.StatusOK {
		t.Fatalf("verify with sealed secret: %d", code)
	}

	// The same store without the key cannot open it: 503, never a pass.
	blind, err := identity.New(identity.Options{Store: e.store, Keys: []identity.Key{testKey}, Now: e.clock.Now, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second)
	res, err := blind.Login(context.Background(), "alice", goodPassword, identity.ClientMeta{})
	if err != nil || !res.MFARequired {
		t.Fatalf("login: %+v %v", res, err)
	}
	totp, _ = identity.TOTPCode(secret, e.clock.Now())
	if _, err := blind.VerifyMFA(context.Background(), res.MFAToken, totp, false, identity.ClientMeta{}); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("verify without the TOTP key: %v", err)
	}
}

func TestRequestInfo(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	h := e.svc.Handler()
	serve := func(body string, ip string) (*reqinfo.Info, *httptest.ResponseRecorder) {
		info := &reqinfo.Info{ID: "req-1", ClientIP: netip.MustParseAddr(ip)}
		req := httptest.NewRequest("POST", "/.rampart/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(reqinfo.With(req.Context(), info))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return info, rec
	}
	info, rec := serve(`{"username":"alice","password":"`+goodPassword+`"}`, "203.0.113.9")
	if rec.Code != http.StatusOK || info.Principal.Name != "alice" || info.Principal.Kind != "user" {
		t.Fatalf("login: %d principal %+v", rec.Code, info.Principal)
	}
	list, err := e.store.ListSessions(context.Background(), info.Principal.ID)
	if err != nil || len(list) != 1 || list[0].ClientIP != "203.0.113.9" {
		t.Fatalf("session client IP from reqinfo: %+v %v", list, err)
	}
	info, rec = serve(`{"username":"alice","password":"nope nope nope"}`, "203.0.113.9")
	if rec.Code != http.StatusUnauthorized || info.Outcome != "invalid_credentials" || !info.Principal.Anonymous() {
		t.Fatalf("failure: %d outcome %q principal %+v", rec.Code, info.Outcome, info.Principal)
	}
	if !strings.Contains(rec.Body.String(), `"request_id":"req-1"`) {
		t.Fatalf("body %s", rec.Body)
	}
}

func TestPrune(t *testing.T) {
	e := newEnv(t, nil)
	e.createUser("alice")
	old := e.login("alice", goodPassword)
	if code, _ := e.do("POST", "/.rampart/logout", nil, old.AccessToken); code != http.StatusNoContent {
		t.Fatal("logout")
	}
	e.clock.Advance(48 * time.Hour)
	live := e.login("alice", goodPassword)
	n, err := e.svc.Prune(context.Background(), 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if e.me(live.AccessToken) != http.StatusOK {
		t.Fatal("live session pruned")
	}
}

func TestLockoutGrowingDelay(t *testing.T) {
	e := newEnv(t, nil) // threshold 5, delay after 3, lock 15m
	e.createUser("alice")
	ctx := context.Background()
	try := func(pass string) error {
		_, err := e.svc.Login(ctx, "alice", pass, identity.ClientMeta{})
		return err
	}
	steps := []struct {
		name    string
		advance time.Duration
		pass    string
		ok      bool
	}{
		{"1st failure", 0, "wrong password 1", false},
		{"2nd failure", 0, "wrong password 2", false},
		{"3rd failure starts a 1s delay", 0, "wrong password 3", false},
		{"right password during the delay", 500 * time.Millisecond, goodPassword, false},
		{"4th failure after the delay: 2s", 500 * time.Millisecond, "wrong password 4", false},
		{"still waiting", time.Second, goodPassword, false},
		{"5th failure locks", time.Second, "wrong password 5", false},
		{"locked", 2 * time.Second, goodPassword, false},
		{"lock over", identity.DefaultLockoutDuration, goodPassword, true},
	}
	for _, st := range steps {
		e.clock.Advance(st.advance)
		err := try(st.pass)
		if (err == nil) != st.ok {
			t.Fatalf("%s: err = %v, want ok=%v", st.name, err, st.ok)
		}
		if err != nil && !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("%s: %v is not the generic refusal", st.name, err)
		}
	}
}
