package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

type env struct {
	store   *sqlite.Store
	clock   *clock
	ring    *apikey.Keyring
	authn   *auth.Authenticator
	m       *Manager
	h       http.Handler
	admin   string // full admin key
	secrets []string
	hashes  [][]byte
	changes []Change
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, clock: &clock{t: t0}}
	e.ring, err = apikey.NewKeyring(apikey.Pepper{Version: 1, Secret: bytes.Repeat([]byte("s"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	e.authn, err = auth.New(auth.Options{Keys: st, Keyring: e.ring, Now: e.clock.Now, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.authn.Close(context.Background()) })
	e.m, err = NewManager(ManagerOptions{
		Store: st, Keyring: e.ring, Now: e.clock.Now,
		OnChange: func(_ context.Context, c Change) {
			e.changes = append(e.changes, c)
			e.authn.Invalidate(c.KeyID)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h, err = NewHandler(HandlerOptions{Manager: e.m, Auth: e.authn, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := e.m.Create(ctx, CreateParams{Name: "bootstrap", Permissions: reqinfo.PermAdmin, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = iss.Key.Reveal()
	e.remember(iss)
	return e
}

func (e *env) remember(iss Issued) {
	e.secrets = append(e.secrets, iss.Key.Reveal())
	e.hashes = append(e.hashes, iss.Record.Hash)
}

func (e *env) call(t *testing.T, key, method, path, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var out map[string]any
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: invalid JSON %q: %v", method, path, w.Body, err)
		}
	}
	return w, out
}

// assertNoSecrets fails if out contains any issued key, key secret or hash.
func (e *env) assertNoSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range e.secrets {
		if strings.Contains(out, s) || strings.Contains(out, s[21:64]) {
			t.Fatalf("%s output contains a key secret:\n%s", what, out)
		}
	}
	for _, h := range e.hashes {
		for _, enc := range []string{hex.EncodeToString(h), base64.StdEncoding.EncodeToString(h), base64.RawURLEncoding.EncodeToString(h)} {
			if strings.Contains(out, enc) {
				t.Fatalf("%s output contains a key hash:\n%s", what, out)
			}
		}
	}
	if strings.Contains(out, "rk_live_") || strings.Contains(out, "rk_test_") {
		t.Fatalf("%s output contains something shaped like a key:\n%s", what, out)
	}
}

func TestAdminRequiresAdminKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	read, err := e.m.Create(ctx, CreateParams{Name: "reader", Permissions: reqinfo.PermRead | reqinfo.PermWrite})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"no key", "", 401},
		{"garbage", "nope", 401},
		{"write key", read.Key.Reveal(), 403},
		{"admin key", e.admin, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, _ := e.call(t, tt.key, "GET", "/v1/keys", ""); w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
}

func TestAdminLifecycleNeverLeaksSecrets(t *testing.T) {
	e := newEnv(t)

	// Create: the only response with a secret.
	w, out := e.call(t, e.admin, "POST", "/v1/keys", `{"name":"rides","permissions":["read","write"],"expires_in":"720h"}`)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("create response may be cached")
	}
	secret, _ := out["api_key"].(string)
	k, err := apikey.Parse(secret)
	if err != nil {
		t.Fatalf("created key does not parse: %v", err)
	}
	view := out["key"].(map[string]any)
	if view["id"] != k.ID() || view["status"] != "active" || view["created_by"] != "api_key:"+e.changes[0].KeyID {
		t.Fatalf("created view %v", view)
	}
	if _, ok := view["hash"]; ok {
		t.Fatal("view has a hash")
	}
	if got := view["expires_at"]; got != t0.Add(720*time.Hour).Format(time.RFC3339) {
		t.Fatalf("expires_at = %v", got)
	}
	rec, err := e.store.LookupKey(context.Background(), k.ID())
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, secret)
	e.hashes = append(e.hashes, rec.Hash)

	// The new key authenticates for what it was given.
	if p, err := e.authn.Authenticate(context.Background(), secret); err != nil || !p.Permissions.Has(reqinfo.PermWrite) {
		t.Fatalf("new key: %+v %v", p, err)
	}

	var outputs []string
	w, _ = e.call(t, e.admin, "GET", "/v1/keys", "")
	outputs = append(outputs, w.Body.String())
	if !strings.Contains(w.Body.String(), k.ID()) {
		t.Fatalf("list lacks new key: %s", w.Body)
	}
	w, _ = e.call(t, e.admin, "GET", "/v1/keys/"+k.ID(), "")
	if w.Code != 200 {
		t.Fatalf("show: %d", w.Code)
	}
	outputs = append(outputs, w.Body.String())

	// Rotate: a successor secret, once; the old one in grace.
	w, out = e.call(t, e.admin, "POST", "/v1/keys/"+k.ID()+"/rotate", `{"grace":"1h"}`)
	if w.Code != 201 {
		t.Fatalf("rotate: %d %s", w.Code, w.Body)
	}
	next, err := apikey.Parse(out["api_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	prev := out["previous"].(map[string]any)
	if prev["status"] != "grace" || out["key"].(map[string]any)["rotated_from"] != k.ID() {
		t.Fatalf("rotate response %v", out)
	}
	nrec, _ := e.store.LookupKey(context.Background(), next.ID())
	e.secrets = append(e.secrets, next.Reveal())
	e.hashes = append(e.hashes, nrec.Hash)
	if nrec.ExpiresAt.Sub(nrec.CreatedAt) != 720*time.Hour {
		t.Fatalf("successor lifetime %v, want the old key's 720h", nrec.ExpiresAt.Sub(nrec.CreatedAt))
	}
	if _, err := e.authn.Authenticate(context.Background(), secret); err != nil {
		t.Fatalf("old key refused during grace: %v", err)
	}
	w, _ = e.call(t, e.admin, "POST", "/v1/keys/"+k.ID()+"/rotate", "")
	if w.Code != 409 {
		t.Fatalf("second rotate: %d", w.Code)
	}
	outputs = append(outputs, w.Body.String())

	// Revoke: refused at once through the invalidated cache.
	w, out = e.call(t, e.admin, "POST", "/v1/keys/"+next.ID()+"/revoke", "")
	if w.Code != 200 || out["status"] != "revoked" {
		t.Fatalf("revoke: %d %v", w.Code, out)
	}
	outputs = append(outputs, w.Body.String())
	if _, err := e.authn.Authenticate(context.Background(), next.Reveal()); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked key accepted: %v", err)
	}

	w, _ = e.call(t, e.admin, "GET", "/v1/keys/review?unused_days=30&expiring_days=60", "")
	if w.Code != 200 {
		t.Fatalf("review: %d %s", w.Code, w.Body)
	}
	outputs = append(outputs, w.Body.String())
	w, _ = e.call(t, e.admin, "GET", "/v1/keys", "")
	outputs = append(outputs, w.Body.String())

	for i, o := range outputs {
		e.assertNoSecrets(t, "admin API response "+string(rune('0'+i)), o)
	}
}

func TestAdminErrors(t *testing.T) {
	e := newEnv(t)
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `","permissions":["read"]}`
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown field", "POST", "/v1/keys", `{"name":"a","permissions":["read"],"admin":true}`, 400},
		{"not json", "POST", "/v1/keys", `name=a`, 400},
		{"two objects", "POST", "/v1/keys", `{"name":"a","permissions":["read"]}{}`, 400},
		{"no name", "POST", "/v1/keys", `{"permissions":["read"]}`, 400},
		{"control char in name", "POST", "/v1/keys", `{"name":"a\nb","permissions":["read"]}`, 400},
		{"bad permission", "POST", "/v1/keys", `{"name":"a","permissions":["root"]}`, 400},
		{"no permission", "POST", "/v1/keys", `{"name":"a","permissions":[]}`, 400},
		{"past expiry", "POST", "/v1/keys", `{"name":"a","permissions":["read"],"expires_at":"2020-01-01T00:00:00Z"}`, 400},
		{"both expiries", "POST", "/v1/keys", `{"name":"a","permissions":["read"],"expires_at":"2030-01-01T00:00:00Z","expires_in":"1h"}`, 400},
		{"bad duration", "POST", "/v1/keys", `{"name":"a","permissions":["read"],"expires_in":"soon"}`, 400},
		{"too large", "POST", "/v1/keys", big, 413},
		{"unknown id", "GET", "/v1/keys/AAAAAAAAAAAA", "", 404},
		{"malformed id", "GET", "/v1/keys/..%2f..", "", 404},
		{"revoke unknown", "POST", "/v1/keys/AAAAAAAAAAAA/revoke", "", 404},
		{"rotate unknown", "POST", "/v1/keys/AAAAAAAAAAAA/rotate", "", 404},
		{"rotate bad grace", "POST", "/v1/keys/AAAAAAAAAAAA/rotate", `{"grace":"-1h"}`, 400},
		{"rotate grace too long", "POST", "/v1/keys/" + e.changes[0].KeyID + "/rotate", `{"grace":"9000h"}`, 400},
		{"review bad days", "GET", "/v1/keys/review?unused_days=x", "", 400},
		{"unknown endpoint", "GET", "/v1/users", "", 404},
		{"wrong method", "DELETE", "/v1/keys", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, out := e.call(t, e.admin, tt.method, tt.path, tt.body)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if out["error"] == nil {
				t.Fatalf("no error code in %s", w.Body)
			}
		})
	}
}

func TestReview(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(name string, perm reqinfo.Permission, expires time.Time) apikey.Record {
		iss, err := e.m.Create(ctx, CreateParams{Name: name, Permissions: perm, ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Record
	}
	stale := mk("stale", reqinfo.PermRead, t0.Add(400*24*time.Hour))
	fresh := mk("fresh", reqinfo.PermRead, t0.Add(400*24*time.Hour))
	mk("expiring", reqinfo.PermRead, t0.Add(100*24*time.Hour))
	gone := mk("gone", reqinfo.PermAdmin, time.Time{})
	if _, err := e.m.Revoke(ctx, gone.ID, "test"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(90 * 24 * time.Hour)
	if err := e.store.TouchKeys(ctx, map[string]time.Time{stale.ID: t0.Add(time.Hour), fresh.ID: e.clock.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rv, err := e.m.Review(ctx, ReviewParams{UnusedDays: 60, ExpiringDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, f := range rv.Findings {
		got[f.Name] = append(got[f.Name], f.Kind)
	}
	want := map[string][]string{
		"bootstrap": {FindingAdmin, FindingNoExpiry, FindingUnused},
		"stale":     {FindingUnused},
		"expiring":  {FindingExpiring, FindingUnused},
	}
	for name, kinds := range want {
		if strings.Join(sorted(got[name]), ",") != strings.Join(sorted(kinds), ",") {
			t.Errorf("findings for %s = %v, want %v", name, got[name], kinds)
		}
	}
	if len(got["fresh"]) != 0 || len(got["gone"]) != 0 {
		t.Errorf("unexpected findings: %v", got)
	}
	if rv.ActiveKeys != 4 {
		t.Errorf("ActiveKeys = %d, want 4", rv.ActiveKeys)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestManagerRotateRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	iss, err := e.m.Create(ctx, CreateParams{Name: "k", Permissions: reqinfo.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Revoke(ctx, iss.Record.ID, "t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Rotate(ctx, iss.Record.ID, RotateParams{Grace: time.Hour}); !errors.Is(err, apikey.ErrConflict) {
		t.Fatalf("rotating revoked key = %v", err)
	}
	other, _ := e.m.Create(ctx, CreateParams{Name: "o", Permissions: reqinfo.PermRead})
	succ, old, err := e.m.Rotate(ctx, other.Record.ID, RotateParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !old.GraceUntil.Equal(old.RotatedAt) || !succ.Record.ExpiresAt.IsZero() {
		t.Fatalf("zero grace: old %+v successor expires %v", old, succ.Record.ExpiresAt)
	}
	if _, err := e.authn.Authenticate(ctx, other.Key.Reveal()); err == nil {
		t.Fatal("key rotated with zero grace still works")
	}
	if strings.Contains(succ.String(), succ.Key.Reveal()) {
		t.Fatal("Issued.String leaks the key")
	}
	noRing, _ := NewManager(ManagerOptions{Store: e.store})
	if _, err := noRing.Create(ctx, CreateParams{Name: "x", Permissions: reqinfo.PermRead}); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("create without keyring = %v", err)
	}
}

func TestAdminOverRealServer(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/keys", nil)
	req.Header.Set("X-API-Key", e.admin)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e.assertNoSecrets(t, "list over HTTP", string(body))
}
