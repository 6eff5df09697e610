package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// keyRoutes are the routes the API key tests add to baseConfig: one that
// needs read for GET and write for everything else.
const keyRoutes = `  - name: api
    path: /api/*
    auth: api_key
    permission: by_method
`

// issued is the JSON `rampart keys create --json` and the admin API print.
type issued struct {
	Key struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"key"`
	APIKey   string `json:"api_key"`
	Previous *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"previous"`
}

// createKey creates a key with the CLI, on the gateway's store and pepper,
// and returns the key and its ID.
func createKey(t *testing.T, g *gateway, name, perms string, extra ...string) (key, id string) {
	t.Helper()
	out := g.keys(t, append([]string{"create", "--name", name, "--permissions", perms, "--json"}, extra...)...)
	var iss issued
	if err := json.Unmarshal([]byte(out), &iss); err != nil {
		t.Fatalf("keys create output: %v\n%s", err, out)
	}
	if iss.APIKey == "" || iss.Key.ID == "" || !strings.Contains(iss.APIKey, iss.Key.ID) {
		t.Fatalf("keys create printed no usable key:\n%s", out)
	}
	return iss.APIKey, iss.Key.ID
}

// adminCall sends a JSON request to the gateway's admin API with an admin key.
func adminCall(t *testing.T, g *gateway, method, path, adminKey, body string) (*http.Response, string) {
	t.Helper()
	hdr := map[string]string{"Authorization": "Bearer " + adminKey}
	var rd *strings.Reader
	if body != "" {
		hdr["Content-Type"] = "application/json"
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	return do(t, &http.Client{Timeout: 10 * time.Second}, method, "http://"+g.admin+path, rd, hdr)
}

// keyStatus is the status field of a key view in JSON.
func keyStatus(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Status string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("key view: %v\n%s", err, body)
	}
	return v.Status
}

// bearer is the header map presenting key.
func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }

// pollStatus repeats the request until it answers want or the deadline
// passes; it returns the last response and how long the flip took.
func pollStatus(t *testing.T, c *http.Client, method, url string, hdr map[string]string, want int, deadline time.Duration) (*http.Response, string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		resp, body := do(t, c, method, url, nil, hdr)
		if resp.StatusCode == want || time.Since(start) > deadline {
			return resp, body, time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAPIKeysEndToEnd(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, cert := certPair(t, dir, false, 3001)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, keyRoutes))
	c := client(cert, nil)
	base := "https://" + g.public

	// No key exists until someone creates one, and no key means 401.
	if out := g.keys(t, "list", "--json"); strings.Contains(out, `"id"`) {
		t.Fatalf("a fresh store holds keys:\n%s", out)
	}
	resp, body := get(t, c, base+"/api/items", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no key: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}

	readKey, readID := createKey(t, g, "reader", "read")
	writeKey, writeID := createKey(t, g, "writer", "read,write")

	// A key in the query string is refused, on a keyed route and on a
	// public one, even when a valid key is also in the header.
	for _, u := range []string{
		"/api/items?api_key=" + readKey,
		"/api/items?token=" + url.QueryEscape(writeKey),
		"/api/items?q=1&x=" + writeKey,
		"/public/page?key=" + readKey,
	} {
		resp, body := get(t, c, base+u, bearer(readKey))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "header") {
			t.Errorf("key in query %s: %d %s", strings.SplitN(u, "?", 2)[0], resp.StatusCode, body)
		}
	}

	// read on POST: 403, and the upstream never sees the request.
	resp, body = do(t, c, "POST", base+"/api/items", strings.NewReader(`{}`), bearer(readKey))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("read key on POST: %d %s", resp.StatusCode, body)
	}
	// read on GET passes.
	if resp, body := get(t, c, base+"/api/items", map[string]string{"X-API-Key": readKey}); resp.StatusCode != http.StatusOK {
		t.Errorf("read key on GET: %d %s", resp.StatusCode, body)
	}

	// write on POST: 200; the upstream learns who called, never the key,
	// and forged identity headers are replaced.
	forged := map[string]string{
		"Authorization":         "Bearer " + writeKey,
		"X-Rampart-Key-ID":      "forged-id",
		"X-Rampart-Permissions": "admin",
	}
	resp, body = do(t, c, "POST", base+"/api/items", strings.NewReader(`{"a":1}`), forged)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("write key on POST: %d %s", resp.StatusCode, body)
	}
	// A forged key ID on a route without authentication is dropped too.
	if resp, body := get(t, c, base+"/public/x", map[string]string{"X-Rampart-Key-ID": "forged-public"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("public route: %d %s", resp.StatusCode, body)
	}

	var sawPost, sawGet, sawPublic bool
	for _, r := range up.seen() {
		if strings.Contains(r.RawQuery, "rk_") {
			t.Errorf("the upstream received a key in the query: %s?%s", r.Path, r.RawQuery)
		}
		for name, vals := range r.Header {
			for _, v := range vals {
				if strings.Contains(v, readKey) || strings.Contains(v, writeKey) {
					t.Errorf("the upstream received the key in %s", name)
				}
			}
		}
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-API-Key") != "" {
			t.Errorf("the upstream received credentials on %s %s", r.Method, r.Path)
		}
		switch {
		case r.Method == "POST" && r.Path == "/api/items":
			sawPost = true
			if got := r.Header.Values("X-Rampart-Key-ID"); len(got) != 1 || got[0] != writeID {
				t.Errorf("upstream X-Rampart-Key-ID = %q, want [%s]", got, writeID)
			}
			if got := r.Header.Get("X-Rampart-Permissions"); strings.Contains(got, "admin") || !strings.Contains(got, "write") {
				t.Errorf("upstream X-Rampart-Permissions = %q", got)
			}
		case r.Method == "GET" && r.Path == "/api/items":
			sawGet = true
			if got := r.Header.Get("X-Rampart-Key-ID"); got != readID {
				t.Errorf("upstream X-Rampart-Key-ID = %q, want %s", got, readID)
			}
		case r.Path == "/public/x":
			sawPublic = true
			if got := r.Header.Values("X-Rampart-Key-ID"); len(got) != 0 {
				t.Errorf("a client-sent X-Rampart-Key-ID reached the upstream: %q", got)
			}
		case r.Path == "/public/page":
			t.Errorf("a request with a key in the query reached the upstream")
		}
	}
	if !sawPost || !sawGet || !sawPublic {
		t.Fatalf("upstream saw post=%v get=%v public=%v; want all", sawPost, sawGet, sawPublic)
	}
	if n := len(up.seen()); n != 3 {
		t.Errorf("upstream saw %d requests, want 3 (refused requests must not reach it)", n)
	}

	// The keys that were sent in URLs are nowhere: not in the process
	// output, not in any file under the state dir (audit segments, SQLite
	// database and WAL). Stop first, so buffered audit events are written.
	g.stop(t)
	for _, k := range []string{readKey, writeKey} {
		secret := k[strings.LastIndexByte(k, '_')+1:]
		if strings.Contains(g.logs.String(), secret) {
			t.Errorf("the gateway output contains a key")
		}
	}
	var sawQueryEvent bool
	err := filepath.WalkDir(g.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, k := range []string{readKey, writeKey} {
			secret := k[strings.LastIndexByte(k, '_')+1:]
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains a key's secret", path)
			}
		}
		if strings.HasPrefix(path, filepath.Join(g.dir, "audit")) && bytes.Contains(b, []byte("auth_key_in_query")) {
			sawQueryEvent = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawQueryEvent {
		t.Errorf("no audit segment records the key-in-query refusals, so the search above proves nothing")
	}
	if !strings.Contains(g.logs.String(), "auth_key_in_query") {
		t.Errorf("the access log does not record the key-in-query refusals")
	}
}

func TestAPIKeyExpires(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 3002)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, keyRoutes))
	c := client(cert, nil)
	u := "https://" + g.public + "/api/items"

	// The CLI takes any positive duration; a few seconds leave time to see
	// the key work first.
	key, id := createKey(t, g, "short-lived", "read", "--expires", "4s")
	if resp, body := get(t, c, u, bearer(key)); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh key: %d %s", resp.StatusCode, body)
	}
	resp, body, _ := pollStatus(t, c, "GET", u, bearer(key), http.StatusUnauthorized, 30*time.Second)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("expired key: %d %s", resp.StatusCode, body)
	}
	if st := keyStatus(t, g.keys(t, "show", id, "--json")); st != "expired" {
		t.Fatalf("keys show: status %q, want expired", st)
	}
	// Expiry is final: the refusal does not flip back.
	if resp, _ := get(t, c, u, bearer(key)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired key later: %d", resp.StatusCode)
	}
}

func TestAPIKeyRotationGrace(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 3003)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, keyRoutes))
	c := client(cert, nil)
	u := "https://" + g.public + "/api/items"

	adminKey, _ := createKey(t, g, "ops", "admin")
	oldKey, oldID := createKey(t, g, "billing", "read,write")
	if resp, _ := get(t, c, u, bearer(oldKey)); resp.StatusCode != http.StatusOK || resp.Header.Get("Deprecation") != "" {
		t.Fatalf("before rotation: %d Deprecation=%q", resp.StatusCode, resp.Header.Get("Deprecation"))
	}

	resp, body := adminCall(t, g, "POST", "/v1/keys/"+oldID+"/rotate", adminKey, `{"grace":"4s"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("rotate: %d %s", resp.StatusCode, body)
	}
	var iss issued
	if err := json.Unmarshal([]byte(body), &iss); err != nil || iss.APIKey == "" || iss.Previous == nil || iss.Previous.ID != oldID {
		t.Fatalf("rotate response: %v %s", err, body)
	}
	newKey := iss.APIKey

	// During grace the old key works, marked deprecated with its sunset.
	resp, body = do(t, c, "POST", u, strings.NewReader(`{}`), bearer(oldKey))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("old key during grace: %d %s", resp.StatusCode, body)
	}
	if dep := resp.Header.Get("Deprecation"); !strings.HasPrefix(dep, "@") {
		t.Errorf("old key during grace: Deprecation = %q, want @<unix time>", dep)
	}
	if resp.Header.Get("Sunset") == "" {
		t.Errorf("old key during grace: no Sunset header")
	}
	if resp, _ := get(t, c, u, bearer(newKey)); resp.StatusCode != http.StatusOK || resp.Header.Get("Deprecation") != "" {
		t.Fatalf("successor: %d Deprecation=%q", resp.StatusCode, resp.Header.Get("Deprecation"))
	}

	// After grace the old key is refused; the successor keeps working.
	resp, body, _ = pollStatus(t, c, "GET", u, bearer(oldKey), http.StatusUnauthorized, 30*time.Second)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old key after grace: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, c, u, bearer(newKey)); resp.StatusCode != http.StatusOK {
		t.Fatalf("successor after grace: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(g.logs.String(), "rotated api key used during grace period") {
		t.Errorf("no warning was logged for the deprecated key's use")
	}
	resp, body = adminCall(t, g, "GET", "/v1/keys/"+oldID, adminKey, "")
	if resp.StatusCode != http.StatusOK || keyStatus(t, body) != "retired" {
		t.Errorf("old key after grace: %d %s", resp.StatusCode, body)
	}
}

// postgresURL returns RAMPART_TEST_POSTGRES_URL, skipping (or failing when
// RAMPART_TEST_REQUIRE_SERVICES=1) when it is unset.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("RAMPART_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("RAMPART_TEST_POSTGRES_URL is unset and RAMPART_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("RAMPART_TEST_POSTGRES_URL is unset")
	}
	return u
}

func randomName(t *testing.T, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

func pgExec(t *testing.T, connURL string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// pgSchema creates a fresh schema, dropped when the test ends, and returns
// the store URL whose search_path points at it.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := postgresURL(t)
	schema := randomName(t, "rampart_e2e_")
	pgExec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgExec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// pgDatabase creates a fresh database, dropped when the test ends, and
// returns its name and URL.
func pgDatabase(t *testing.T) (name, dbURL string) {
	t.Helper()
	base := postgresURL(t)
	name = randomName(t, "rampart_e2e_")
	pgExec(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { pgExec(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return name, u.String()
}

func TestAPIKeyRevokeAcrossInstances(t *testing.T) {
	t.Parallel()
	storeURL := pgSchema(t)
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 3004)
	// auth.cache_ttl is left at its default (1s): that is the bound on how
	// long another instance may still accept a revoked key.
	cfg := baseConfig(up.URL, certFile, keyFile, keyRoutes+"store: {url: \""+storeURL+"\"}\n")
	secrets := secretEnv(t, t.TempDir())
	a := startGatewayEnv(t, cfg, secrets)
	b := startGatewayEnv(t, cfg, secrets)
	c := client(cert, nil)

	adminKey, _ := createKey(t, a, "ops", "admin")
	key, id := createKey(t, a, "mobile", "read")
	// Both instances accept it, and B now has it in its cache.
	for _, g := range []*gateway{a, b, b} {
		if resp, body := get(t, c, "https://"+g.public+"/api/items", bearer(key)); resp.StatusCode != http.StatusOK {
			t.Fatalf("before revoke on %s: %d %s", g.public, resp.StatusCode, body)
		}
	}

	revoked := time.Now()
	resp, body := adminCall(t, a, "POST", "/v1/keys/"+id+"/revoke", adminKey, "")
	if resp.StatusCode != http.StatusOK || keyStatus(t, body) != "revoked" {
		t.Fatalf("revoke on A: %d %s", resp.StatusCode, body)
	}
	// A forgets the key at once.
	if resp, _ := get(t, c, "https://"+a.public+"/api/items", bearer(key)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("A right after revoke: %d", resp.StatusCode)
	}
	// B refuses it once its cache entry ends (auth.cache_ttl, 1s). The
	// deadline only bounds the poll; how long B still accepted the key is
	// logged, not asserted.
	var lastAccepted time.Time
	for deadline := time.Now().Add(15 * time.Second); ; {
		sent := time.Now()
		resp, body := get(t, c, "https://"+b.public+"/api/items", bearer(key))
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if resp.StatusCode != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("B after the revoke: %d %s", resp.StatusCode, body)
		}
		lastAccepted = sent
		time.Sleep(5 * time.Millisecond)
	}
	if !lastAccepted.IsZero() {
		t.Logf("instance B last accepted the revoked key %s after the revoke request on A was sent", lastAccepted.Sub(revoked).Round(time.Millisecond))
	}
	// and keeps refusing it.
	for _, g := range []*gateway{a, b} {
		if resp, _ := get(t, c, "https://"+g.public+"/api/items", bearer(key)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after revoke on %s: %d", g.public, resp.StatusCode)
		}
	}
}

func TestAPIKeyStoreOutage(t *testing.T) {
	t.Parallel()
	dbName, storeURL := pgDatabase(t)
	base := postgresURL(t)
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 3005)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, keyRoutes+"store: {url: \""+storeURL+"\"}\n"))
	c := client(cert, nil)
	u := "https://" + g.public + "/api/items"

	used, _ := createKey(t, g, "used", "read")
	fresh, _ := createKey(t, g, "fresh", "read")
	if resp, body := get(t, c, u, bearer(used)); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the outage: %d %s", resp.StatusCode, body)
	}

	// The outage: the database refuses new connections and every open one
	// is terminated.
	pgExec(t, base,
		"ALTER DATABASE "+dbName+" ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+dbName+"'")
	restored := false
	t.Cleanup(func() {
		if !restored {
			pgExec(t, base, "ALTER DATABASE "+dbName+" ALLOW_CONNECTIONS true")
		}
	})

	// A key the gateway has not cached needs the store: 503 at once.
	resp, body := get(t, c, u, bearer(fresh))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("uncached key during the outage: %d %s", resp.StatusCode, body)
	}
	// A cached key may pass until its cache entry ends (auth.cache_ttl),
	// then gets 503 as well.
	resp, body, _ = pollStatus(t, c, "GET", u, bearer(used), http.StatusServiceUnavailable, 15*time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("cached key during the outage: %d %s", resp.StatusCode, body)
	}
	// From then on nothing passes: every key gets 503, never 200. A key
	// whose checksum fails is refused before any lookup, so it stays 401.
	swap := "A"
	if strings.HasSuffix(fresh, swap) {
		swap = "B"
	}
	garbled := fresh[:len(fresh)-1] + swap
	for i := range 10 {
		for _, k := range []string{used, fresh, garbled} {
			want := http.StatusServiceUnavailable
			if k == garbled {
				want = http.StatusUnauthorized
			}
			if resp, body := get(t, c, u, bearer(k)); resp.StatusCode != want {
				t.Fatalf("request %d during the store outage: %d, want %d: %s", i, resp.StatusCode, want, body)
			}
		}
	}
	if !strings.Contains(g.logs.String(), "api key lookup failed") {
		t.Errorf("the store errors were not logged")
	}

	// The store comes back: keys work again without a restart.
	pgExec(t, base, "ALTER DATABASE "+dbName+" ALLOW_CONNECTIONS true")
	restored = true
	resp, body, _ = pollStatus(t, c, "GET", u, bearer(fresh), http.StatusOK, 30*time.Second)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the outage: %d %s", resp.StatusCode, body)
	}
}
