package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/store/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testKey = identity.Key{ID: "k1", Secret: bytes.Repeat([]byte("k"), 32)}

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "id.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// env is a Service over a real SQLite store, served by a real HTTP server.
type env struct {
	t      testing.TB
	clock  *clock
	store  *sqlite.Store
	svc    *identity.Service
	srv    *httptest.Server
	mu     sync.Mutex
	events []identity.Event
}

func newEnv(t testing.TB, mod func(*identity.Options)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), store: openStore(t)}
	o := identity.Options{
		Store: e.store, Keys: []identity.Key{testKey}, Now: e.clock.Now, BcryptCost: bcrypt.MinCost,
		OnEvent: func(_ context.Context, ev identity.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&o)
	}
	svc, err := identity.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	mux := http.NewServeMux()
	mux.Handle("/.rampart/", svc.Handler())
	// A protected upstream route, as the integrator mounts one with auth: jwt.
	mux.HandleFunc("/api/me", func(w http.ResponseWriter, r *http.Request) {
		p, err := svc.Authenticate(r)
		if err != nil {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

const goodPassword = "correct horse battery staple"

func (e *env) createUser(name string, roles ...string) identity.User {
	e.t.Helper()
	if roles == nil {
		roles = []string{"read"}
	}
	u, err := e.svc.Manager().Create(context.Background(), identity.NewUser{Username: name, Password: goodPassword, Roles: roles})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// do sends a request with a JSON body (nil for none) and optional bearer
// token, returning status and body.
func (e *env) do(method, path string, body any, token string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.srv.Client().Do(req.WithContext(ctx))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
	ExpiresIn    int    `json:"expires_in"`
	MFARequired  bool   `json:"mfa_required"`
	MFAToken     string `json:"mfa_token"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// login logs in and requires tokens (no MFA).
func (e *env) login(name, password string) tokens {
	e.t.Helper()
	code, body := e.do("POST", "/.rampart/login", map[string]string{"username": name, "password": password}, "")
	if code != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", name, code, body)
	}
	tk := decode[tokens](e.t, body)
	if tk.AccessToken == "" && !tk.MFARequired {
		e.t.Fatalf("login %s: no tokens: %s", name, body)
	}
	return tk
}

// me calls the protected route and returns its status.
func (e *env) me(access string) int {
	e.t.Helper()
	code, _ := e.do("GET", "/api/me", nil, access)
	return code
}

func (e *env) eventTypes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ts []string
	for _, ev := range e.events {
		ts = append(ts, ev.Type)
	}
	return ts
}
