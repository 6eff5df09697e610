package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/secrets"
	"github.com/rampart-security/rampart/internal/store"
)

// secAPIRoute adds a route that needs an API key with read permission, and
// a refresh interval long enough that only SIGHUP re-reads the secrets.
const secAPIRoute = `  - name: api
    path: /api/*
    auth: api_key
    permission: read
secrets:
  refresh_interval: 1h
`

// TestSecretRotationUnderLoad rotates the API-key pepper and the JWT
// signing key of a running `rampart serve` together while four clients send
// requests, two with an API key made under the old pepper and two with a
// person's access token signed with the old JWT key. It rotates the way an
// operator rotates mounted secrets: the old value moves to NAME.previous,
// the new one replaces NAME, then SIGHUP. It shows:
//   - zero failed requests across the rotation;
//   - the old key and the old token keep working through the overlap; the
//     old key's first use after the rotation re-hashes it under the new
//     pepper (stored version);
//   - a key created after the rotation (`rampart keys create -c`, reading
//     the same files) is hashed under the new pepper, and a token from a
//     login after the rotation is signed with the new key (its kid); both
//     work at once;
//   - once the previous versions are removed (and SIGHUP), a key made under
//     the old pepper and never used since and the old token are refused,
//     while the re-hashed key, the new key and the new token keep working:
//     the old secrets are really gone;
//   - no secret value ever appears in the gateway's output.
func TestSecretRotationUnderLoad(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, cert := certPair(t, dir, false, 7001)
	jwtFile, totpFile := filepath.Join(dir, "jwt_key"), filepath.Join(dir, "totp_key")
	j1 := secNewPepper(t)
	writeAtomic(t, jwtFile, []byte(j1+"\n"))
	writeAtomic(t, totpFile, []byte(secNewPepper(t)+"\n"))
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, `  - name: people
    path: /people/*
    auth: user
    permission: read
`+secAPIRoute+fmt.Sprintf(`  jwt_key: file:%s
  totp_key: file:%s
identity:
  enabled: true
  bcrypt_cost: 10
`, jwtFile, totpFile)))
	pepperFile := filepath.Join(g.dir, "api_key_pepper")
	p1 := secReadPepper(t, pepperFile)
	v1 := apikey.VersionFromID(secrets.ContentID([]byte(p1)))
	c := client(cert, nil)
	keyURL, userURL := "https://"+g.public+"/api/rotation", "https://"+g.public+"/people/rotation"

	loadID, loadKey := secCreateKey(t, g, "load")     // used all along
	idleID, idleKey := secCreateKey(t, g, "idle")     // never used after the rotation
	if v := secStoredVersion(t, g, loadID); v != v1 { // made by the CLI from the same file
		t.Fatalf("key created before the rotation has pepper version %d, want %d", v, v1)
	}
	if status := secGet(c, keyURL, idleKey); status != http.StatusOK {
		t.Fatalf("idle key before the rotation: %d", status)
	}
	password := secCreateUser(t, g, "rotation.user")
	oldToken := secLogin(t, c, g, "rotation.user", password)
	if kid := secKID(t, oldToken); kid != secrets.ContentID([]byte(j1)) {
		t.Fatalf("token before the rotation has kid %q, want %q", kid, secrets.ContentID([]byte(j1)))
	}

	// Load: four clients, each at most maxPerWorker requests, stopped once
	// the rotation has been observed and more requests have passed.
	const workers, maxPerWorker = 4, 1500
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		url, auth := keyURL, secAPIKey(loadKey)
		if w%2 == 1 {
			url, auth = userURL, secBearer(oldToken)
		}
		wg.Go(func() {
			for range maxPerWorker {
				select {
				case <-stop:
					return
				default:
				}
				if status := secDo(c, url, auth); status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					failMu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %d", url, status))
					failMu.Unlock()
				}
			}
		})
	}
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}
	t.Cleanup(stopLoad)
	total := func() int64 { return ok.Load() + failed.Load() }
	secWaitLoad(t, loadDone, "requests before the rotation", func() bool { return total() >= 100 })

	// Rotate both: previous first, then current, each by rename, then SIGHUP.
	p2, j2 := secNewPepper(t), secNewPepper(t)
	v2 := apikey.VersionFromID(secrets.ContentID([]byte(p2)))
	writeAtomic(t, pepperFile+secrets.FilePreviousSuffix, []byte(p1+"\n"))
	writeAtomic(t, pepperFile, []byte(p2+"\n"))
	writeAtomic(t, jwtFile+secrets.FilePreviousSuffix, []byte(j1+"\n"))
	writeAtomic(t, jwtFile, []byte(j2+"\n"))
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The first request with the old key after the swap re-hashes it; the
	// JWT rotation is logged after the new key is in use.
	rehashed := fmt.Sprintf(`"msg":"api key rehashed under current pepper","key_id":%q,"pepper_version":%d`, loadID, v2)
	jwtRotated := fmt.Sprintf(`"msg":"secret rotated","secret":"jwt_key","version":%q`, secrets.ContentID([]byte(j2)))
	secWaitLoad(t, loadDone, "the old key re-hashed and the JWT key rotated", func() bool {
		logs := g.logs.String()
		return strings.Contains(logs, rehashed) && strings.Contains(logs, jwtRotated)
	})
	after := total()
	// A key created and a person logged in now, during the overlap, while
	// the load goes on.
	newID, newKey := secCreateKey(t, g, "after-rotation")
	if status := secGet(c, keyURL, newKey); status != http.StatusOK {
		t.Errorf("key created after the rotation: %d", status)
	}
	newToken := secLogin(t, c, g, "rotation.user", password)
	if kid := secKID(t, newToken); kid != secrets.ContentID([]byte(j2)) {
		t.Errorf("token after the rotation has kid %q, want the new key's %q", kid, secrets.ContentID([]byte(j2)))
	}
	if status := secDo(c, userURL, secBearer(newToken)); status != http.StatusOK {
		t.Errorf("token issued after the rotation: %d", status)
	}
	secWaitLoad(t, loadDone, "requests after the rotation", func() bool { return total() >= after+200 })
	stopLoad()
	t.Logf("%d requests, %d after the rotation was seen", total(), total()-after)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed across the rotation: %v", n, total(), failures[:min(len(failures), 10)])
	}

	for _, k := range []struct {
		name, id string
		want     int
	}{{"old key in use", loadID, v2}, {"old key unused since", idleID, v1}, {"new key", newID, v2}} {
		if v := secStoredVersion(t, g, k.id); v != k.want {
			t.Errorf("%s: stored pepper version %d, want %d", k.name, v, k.want)
		}
	}

	// End the overlap: remove both previous versions, SIGHUP. What is
	// still under them is refused from then on; the rest works. The idle
	// key must not be tried before the reload is done: a use during the
	// overlap would (rightly) re-hash it. Reload re-reads the secrets
	// before the certificate, so the second "certificate reloaded" line
	// means the secrets were re-read.
	for _, f := range []string{pepperFile, jwtFile} {
		if err := os.Remove(f + secrets.FilePreviousSuffix); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	secWaitLog(t, g, `"msg":"certificate reloaded"`, 2)
	if status := secGet(c, keyURL, idleKey); status != http.StatusUnauthorized {
		t.Errorf("a key hashed under the removed previous pepper: %d, want 401", status)
	}
	if status := secDo(c, userURL, secBearer(oldToken)); status != http.StatusUnauthorized {
		t.Errorf("a token signed with the removed previous JWT key: %d, want 401", status)
	}
	for name, auth := range map[string]func(*http.Request){
		"re-hashed old key": secAPIKey(loadKey), "new key": secAPIKey(newKey), "new token": secBearer(newToken),
	} {
		url := keyURL
		if name == "new token" {
			url = userURL
		}
		if status := secDo(c, url, auth); status != http.StatusOK {
			t.Errorf("%s after the previous versions were removed: %d", name, status)
		}
	}

	logs := g.logs.String()
	for name, v := range map[string]string{"old pepper": p1, "new pepper": p2, "old JWT key": j1, "new JWT key": j2, "password": password} {
		if strings.Contains(logs, v) {
			t.Errorf("the %s value appears in the gateway output", name)
		}
	}
	if want := fmt.Sprintf(`"msg":"secret rotated","secret":"api_key_pepper","version":%q`, secrets.ContentID([]byte(p2))); !strings.Contains(logs, want) {
		t.Errorf("no rotation log line %s", want)
	}

	// Each rotation is one metric increment (ending the overlap is not a
	// rotation) and one audit event naming the secret and the version ID.
	for _, name := range []string{"api_key_pepper", "jwt_key"} {
		if v, ok := secMetric(t, g, fmt.Sprintf(`rampart_secret_rotations_total{secret=%q}`, name)); !ok || v != 1 {
			t.Errorf("rampart_secret_rotations_total{secret=%q} = %v (found %v), want 1", name, v, ok)
		}
	}
	want := map[string]string{"api_key_pepper": secrets.ContentID([]byte(p2)), "jwt_key": secrets.ContentID([]byte(j2))}
	var rotated map[string]map[string]any
	deadline := time.Now().Add(15 * time.Second) // the event is queued, not waited for
	for {
		rotated = map[string]map[string]any{}
		for _, e := range auditExport(t, g) {
			if e.Type == "secret.rotated" {
				rotated[fmt.Sprint(e.Details["secret"])] = e.Details
			}
		}
		if len(rotated) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, version := range want {
		d, ok := rotated[name]
		if !ok || d["version"] != version || len(d) != 2 {
			t.Errorf("audit secret.rotated for %s: %v, want exactly the secret and version %s", name, d, version)
		}
	}
	if len(rotated) != len(want) {
		t.Errorf("audit secret.rotated events for %v, want only %v", rotated, want)
	}
}

// TestSecretDefaultsRefusedAtStart starts `rampart serve` in production
// with every known default value (both checklists' defaults, and the rest
// of secrets.KnownDefaults) as the API-key pepper, given through an env:
// reference as a deployment would: each start exits non-zero with a message
// naming the secret, and never shows the value.
func TestSecretDefaultsRefusedAtStart(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, _ := certPair(t, dir, false, 7002)
	cfgPath := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfgPath, []byte(baseConfig(up.URL, certFile, keyFile, secAPIRoute)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := append(secretEnv(t, dir), "RAMPART_STATE_DIR="+dir,
		"RAMPART_SECRETS_API_KEY_PEPPER=env:RAMPART_E2E_PEPPER")
	serve := func(value string) (string, int) {
		return secRun(t, append(base, "RAMPART_E2E_PEPPER="+value), "serve", "-c", cfgPath)
	}

	// A refused value that occurs nowhere else: the output for it is the
	// yardstick for how often each default's text occurs in a refusal that
	// does not print the value (some defaults, such as "secret", are words
	// of the message itself).
	const canary = "changeme-e2e-canary-q7Zx"
	canaryOut, code := serve(canary)
	if code == 0 || strings.Contains(canaryOut, canary) || !strings.Contains(canaryOut, "api_key_pepper") {
		t.Fatalf("canary refusal: exit %d\n%s", code, canaryOut)
	}

	defaults := append([]string{
		"dev-api-key-change-in-production",          // rideshare checklist P0-1
		"your-secret-key-here-change-in-production", // OptiBid checklist section 1
	}, secrets.KnownDefaults()...)
	for _, d := range defaults {
		t.Run(d, func(t *testing.T) {
			out, code := serve(d)
			if code == 0 {
				t.Fatalf("serve started with %q as the pepper:\n%s", d, out)
			}
			for _, want := range []string{`api_key_pepper`, "known default"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, `"listening"`) {
				t.Errorf("it started listening:\n%s", out)
			}
			if got, base := strings.Count(out, d), strings.Count(canaryOut, d); got > base {
				t.Errorf("the value occurs %d times in the output, %d times in a refusal of another value: it is shown\n%s", got, base, out)
			}
		})
	}
}

// TestSecretProviderFailureAtStart shows that a secret that cannot be read
// at start stops `rampart serve` with an error naming the secret and the
// reason, before any listener opens.
func TestSecretProviderFailureAtStart(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, _ := certPair(t, dir, false, 7003)
	cfgPath := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfgPath, []byte(baseConfig(up.URL, certFile, keyFile, secAPIRoute)), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-pepper")
	tests := []struct {
		name string
		ref  string
		// manager is a local secret manager to point the standard
		// variables at: "aws" (holds no secret), "vault-denied" (a token
		// without access), "vault-sealed".
		manager string
		want    []string
	}{
		{name: "missing file", ref: "file:" + missing, want: []string{`"api_key_pepper"`, missing, "no such file"}},
		{name: "unset variable", ref: "env:RAMPART_E2E_UNSET_PEPPER", want: []string{`"api_key_pepper"`, "RAMPART_E2E_UNSET_PEPPER is not set"}},
		{name: "unknown scheme", ref: "ssm:/prod/pepper", want: []string{"secrets.api_key_pepper"}},
		{name: "AWS secret not found", ref: "aws-sm:rampart/missing", manager: "aws",
			want: []string{`"api_key_pepper"`, "rampart/missing", "ResourceNotFoundException"}},
		{name: "Vault permission denied", ref: "vault:secret/other#pepper", manager: "vault-denied",
			want: []string{`"api_key_pepper"`, "secret/other", "403", "permission denied"}},
		{name: "Vault sealed", ref: "vault:secret/rampart#pepper", manager: "vault-sealed",
			want: []string{`"api_key_pepper"`, "503", "Vault is sealed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.manager {
			case "aws":
				secStartFakeAWS(t)
			case "vault-denied":
				secStartFakeVault(t)
				t.Setenv("VAULT_TOKEN", "hvs.not-this-one")
			case "vault-sealed":
				secStartFakeVault(t).setSealed(true)
			}
			env := append(secretEnv(t, t.TempDir()), "RAMPART_STATE_DIR="+dir, "RAMPART_SECRETS_API_KEY_PEPPER="+tc.ref)
			out, code := secRun(t, env, "serve", "-c", cfgPath)
			if code == 0 {
				t.Fatalf("serve exited 0:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, `"listening"`) {
				t.Errorf("it started listening:\n%s", out)
			}
		})
	}
}

// secRun runs the binary with env added to this process's environment and
// returns its combined output and exit code.
func secRun(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("rampart %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", 0
	}
}

// secCreateKey creates a read key with `rampart keys create -c`, in the
// gateway's environment (same state directory and secret references).
func secCreateKey(t *testing.T, g *gateway, name string) (id, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "keys", "create", "-c", g.config, "--name", name, "--permissions", "read", "--json")
	cmd.Env = g.cmd.Env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create %s: %v\n%s", name, err, stderr.String())
	}
	var v struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Key.ID == "" || v.APIKey == "" {
		t.Fatalf("keys create %s: %v\n%s", name, err, out)
	}
	return v.Key.ID, v.APIKey
}

// secStoredVersion reads the pepper version stored with a key's hash from
// the gateway's SQLite store (the CLI does not print it).
func secStoredVersion(t *testing.T, g *gateway, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(g.dir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.LookupKey(ctx, id)
	if err != nil {
		t.Fatalf("lookup %s: %v", id, err)
	}
	return rec.PepperVersion
}

// secGet sends one GET with an API key and returns the status, or 0 when
// the request did not complete.
func secGet(c *http.Client, url, key string) int { return secDo(c, url, secAPIKey(key)) }

func secAPIKey(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("X-API-Key", key) }
}

func secBearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// secDo sends one GET with the credential auth sets and returns the
// status, or 0 when the request did not complete.
func secDo(c *http.Client, url string, auth func(*http.Request)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	auth(req)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// secWaitLoad polls cond until it holds; it fails the test when the load
// ran out of requests first or after a deadline.
func secWaitLoad(t *testing.T, loadDone <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-loadDone:
			if cond() {
				return
			}
			t.Fatalf("the load ended before %s", what)
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func secReadPepper(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func secNewPepper(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// secWaitLog polls the gateway's output until it holds line at least n
// times, with a deadline.
func secWaitLog(t *testing.T, g *gateway, line string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(g.logs.String(), line) < n {
		select {
		case <-deadline:
			t.Fatalf("the gateway did not log %s %d times", line, n)
		case <-tick.C:
		}
	}
}

// secCreateUser creates a person with read access in the gateway's store
// with `rampart users create` and returns the generated password.
func secCreateUser(t *testing.T, g *gateway, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "users", "create", "--store", "sqlite://"+filepath.Join(g.dir, "rampart.db"),
		"--username", name, "--roles", "read", "--bcrypt-cost", "10", "--json")
	cmd.Env = g.cmd.Env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("users create %s: %v\n%s", name, err, stderr.String())
	}
	var v struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Password == "" {
		t.Fatalf("users create %s: %v\n%s", name, err, out)
	}
	return v.Password
}

// secLogin logs a person in through the gateway's /.rampart/login and
// returns the access token.
func secLogin(t *testing.T, c *http.Client, g *gateway, user, password string) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"username": user, "password": password})
	if err != nil {
		t.Fatal(err)
	}
	resp, out := do(t, c, http.MethodPost, "https://"+g.public+"/.rampart/login", strings.NewReader(string(body)),
		map[string]string{"Content-Type": "application/json"})
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(out), &v) != nil || v.AccessToken == "" {
		t.Fatalf("login %s: %d %s", user, resp.StatusCode, out)
	}
	return v.AccessToken
}

// secKID returns the kid in a JWT's header (not verified: the gateway does
// that; the test only reads which key signed it).
func secKID(t *testing.T, token string) string {
	t.Helper()
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("not a JWT: %d bytes", len(token))
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return h.KID
}

// secManagerCase is a secret manager run locally for the gateway: put adds
// a new current version (the old current becomes the previous one) and
// returns its version ID, dropPrevious ends the overlap the way an
// operator does in that manager, and fail makes every request fail.
type secManagerCase struct {
	ref          string
	put          func(value string) (versionID string)
	dropPrevious func()
	fail         func(bool)
	calls        func() int
}

// TestSecretManagerRotationByInterval takes the JWT signing key from a
// secret manager and re-reads it every secrets.refresh_interval, with no
// signal: AWS Secrets Manager (aws-sm:, the real AWS SDK against a local
// endpoint speaking the Secrets Manager JSON protocol, found through the
// standard AWS_ENDPOINT_URL_SECRETS_MANAGER variable) and Vault KV v2
// (vault:, VAULT_ADDR and VAULT_TOKEN, KV v2's response shapes). For each:
// a new version becomes the signing key (its version ID is the kid) while
// tokens signed with the previous one keep working; a failing manager keeps
// the last good keys and raises rampart_secret_refresh_failures_total;
// ending the overlap in the manager (AWSPREVIOUS stage removed, Vault
// version deleted) refuses the old tokens.
func TestSecretManagerRotationByInterval(t *testing.T) {
	cases := []struct {
		name  string
		start func(t *testing.T) secManagerCase
	}{
		{"aws-sm", func(t *testing.T) secManagerCase {
			aws := secStartFakeAWS(t)
			n := 0
			return secManagerCase{
				ref: "aws-sm:rampart/jwt",
				put: func(v string) string {
					n++
					id := fmt.Sprintf("3a1f0c6e-%04d", n)
					aws.rotate("rampart/jwt", id, v)
					return id
				},
				dropPrevious: func() { aws.remove("rampart/jwt", secrets.StagePrevious) },
				fail: func(on bool) {
					status := 0
					if on {
						status = http.StatusInternalServerError
					}
					aws.setFail(status)
				},
				calls: aws.calls,
			}
		}},
		{"vault", func(t *testing.T) secManagerCase {
			vault := secStartFakeVault(t)
			return secManagerCase{
				ref: "vault:secret/rampart/identity#jwt",
				put: func(v string) string {
					return strconv.Itoa(vault.put("secret/rampart/identity", map[string]any{"jwt": v, "note": "rotated by ops"}))
				},
				dropPrevious: func() { vault.deletePrevious("secret/rampart/identity") },
				fail:         vault.setSealed,
				calls:        vault.calls,
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mc := tc.start(t)
			j1, j2 := secNewPepper(t), secNewPepper(t)
			kid1 := mc.put(j1)

			up := startUpstream(t)
			dir := t.TempDir()
			certFile, keyFile, cert := certPair(t, dir, false, 7004)
			totpFile := filepath.Join(dir, "totp_key")
			writeAtomic(t, totpFile, []byte(secNewPepper(t)+"\n"))
			g := startGateway(t, baseConfig(up.URL, certFile, keyFile, fmt.Sprintf(`  - name: people
    path: /people/*
    auth: user
    permission: read
secrets:
  refresh_interval: 100ms
  jwt_key: %s
  totp_key: file:%s
identity:
  enabled: true
  bcrypt_cost: 10
`, mc.ref, totpFile)))
			c := client(cert, nil)
			url := "https://" + g.public + "/people/manager"
			password := secCreateUser(t, g, "manager.user")
			oldToken := secLogin(t, c, g, "manager.user", password)
			if kid := secKID(t, oldToken); kid != kid1 {
				t.Fatalf("kid %q, want the manager's version ID %q", kid, kid1)
			}

			// Rotate in the manager; no signal is sent.
			kid2 := mc.put(j2)
			secWaitLog(t, g, fmt.Sprintf(`"msg":"secret rotated","secret":"jwt_key","version":%q`, kid2), 1)
			newToken := secLogin(t, c, g, "manager.user", password)
			if kid := secKID(t, newToken); kid != kid2 {
				t.Errorf("kid after the rotation %q, want %q", kid, kid2)
			}
			for name, tok := range map[string]string{"old token": oldToken, "new token": newToken} {
				if status := secDo(c, url, secBearer(tok)); status != http.StatusOK {
					t.Errorf("%s during the overlap: %d", name, status)
				}
			}

			// The manager fails: the last good keys stay, the failure counts.
			mc.fail(true)
			secWaitMetric(t, g, `rampart_secret_refresh_failures_total{secret="jwt_key"}`, 1)
			for name, tok := range map[string]string{"old token": oldToken, "new token": newToken} {
				if status := secDo(c, url, secBearer(tok)); status != http.StatusOK {
					t.Errorf("%s while the manager fails: %d", name, status)
				}
			}
			mc.fail(false)

			// The overlap ends in the manager: the old token is refused
			// within a few refresh intervals, the new one keeps working.
			mc.dropPrevious()
			deadline := time.Now().Add(15 * time.Second)
			for secDo(c, url, secBearer(oldToken)) != http.StatusUnauthorized {
				if status := secDo(c, url, secBearer(newToken)); status != http.StatusOK {
					t.Fatalf("new token while the overlap ends: %d", status)
				}
				if time.Now().After(deadline) {
					t.Fatal("a token signed with the removed previous key is still accepted")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if status := secDo(c, url, secBearer(newToken)); status != http.StatusOK {
				t.Errorf("new token after the overlap: %d", status)
			}
			logs := g.logs.String()
			for name, v := range map[string]string{"old JWT key": j1, "new JWT key": j2} {
				if strings.Contains(logs, v) {
					t.Errorf("the %s value appears in the gateway output", name)
				}
			}
			if mc.calls() == 0 {
				t.Error("the secret manager was never called")
			}
		})
	}
}

// secFakeAWS speaks the Secrets Manager JSON 1.1 protocol for
// GetSecretValue with version stages, and checks that requests are signed
// with the test credentials.
type secFakeAWS struct {
	URL     string
	mu      sync.Mutex
	secrets map[string]map[string][2]string // name -> stage -> {VersionId, SecretString}
	fail    int
	n       int
}

// secStartFakeAWS starts the endpoint and points this test's AWS standard
// chain at it (the gateway inherits the environment): fake credentials, a
// region, no shared config files, no instance metadata, one attempt.
func secStartFakeAWS(t *testing.T) *secFakeAWS {
	t.Helper()
	f := &secFakeAWS{secrets: map[string]map[string][2]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDRAMPARTE2E", "AWS_SECRET_ACCESS_KEY": "e2e-secret-access-key",
		"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL,
		"AWS_CONFIG_FILE": "/nonexistent/config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_MAX_ATTEMPTS": "1",
	} {
		t.Setenv(k, v)
	}
	return f
}

func (f *secFakeAWS) set(name, stage, id, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets[name] == nil {
		f.secrets[name] = map[string][2]string{}
	}
	f.secrets[name][stage] = [2]string{id, value}
}

// rotate makes (id, value) AWSCURRENT and the old AWSCURRENT AWSPREVIOUS,
// as Secrets Manager's PutSecretValue does.
func (f *secFakeAWS) rotate(name, id, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets[name] == nil {
		f.secrets[name] = map[string][2]string{}
	}
	if cur, ok := f.secrets[name][secrets.StageCurrent]; ok {
		f.secrets[name][secrets.StagePrevious] = cur
	}
	f.secrets[name][secrets.StageCurrent] = [2]string{id, value}
}

func (f *secFakeAWS) remove(name, stage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.secrets[name], stage)
}

func (f *secFakeAWS) setFail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = status
}

func (f *secFakeAWS) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *secFakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		fail(http.StatusBadRequest, "UnknownOperationException", "only GetSecretValue")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDRAMPARTE2E/") {
		fail(http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	if f.fail != 0 {
		fail(f.fail, "InternalServiceError", "An error occurred on the server side.")
		return
	}
	var in struct {
		SecretID     string `json:"SecretId"`
		VersionStage string `json:"VersionStage"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(http.StatusBadRequest, "InvalidRequestException", "bad JSON")
		return
	}
	if in.VersionStage == "" {
		in.VersionStage = secrets.StageCurrent
	}
	v, ok := f.secrets[in.SecretID][in.VersionStage]
	if !ok {
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: "+in.VersionStage)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ARN":           "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + in.SecretID + "-AbCdEf",
		"Name":          in.SecretID,
		"VersionId":     v[0],
		"SecretString":  v[1],
		"VersionStages": []string{in.VersionStage},
		"CreatedDate":   1.7e9,
	})
}

// secWaitMetric polls the admin listener's /metrics until the sample
// named by series (name and labels, as exposed) is at least min.
func secWaitMetric(t *testing.T, g *gateway, series string, min float64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last float64
	for {
		v, ok := secMetric(t, g, series)
		if ok && v >= min {
			return
		}
		last = v
		select {
		case <-deadline:
			t.Fatalf("%s did not reach %v (last %v, found %v)", series, min, last, ok)
		case <-tick.C:
		}
	}
}

// secMetric reads one sample from the admin listener's /metrics.
func secMetric(t *testing.T, g *gateway, series string) (float64, bool) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// secFakeVault answers KV v2 reads (GET /v1/MOUNT/data/PATH[?version=N])
// with Vault's response shapes, for one token.
type secFakeVault struct {
	mu       sync.Mutex
	versions map[string][]secVaultVersion // "mount/path" -> versions 1..n
	sealed   bool
	n        int
}

type secVaultVersion struct {
	data    map[string]any
	deleted bool
}

const secVaultToken = "hvs.rampart-e2e-token"

// secStartFakeVault starts the server and points VAULT_ADDR and
// VAULT_TOKEN at it (the gateway inherits the environment).
func secStartFakeVault(t *testing.T) *secFakeVault {
	t.Helper()
	f := &secFakeVault{versions: map[string][]secVaultVersion{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", secVaultToken)
	t.Setenv("VAULT_NAMESPACE", "")
	return f
}

// put writes a new version, as `vault kv put` does, and returns its number.
func (f *secFakeVault) put(path string, data map[string]any) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[path] = append(f.versions[path], secVaultVersion{data: data})
	return len(f.versions[path])
}

// deletePrevious soft-deletes the version before the latest, as
// `vault kv delete -versions=N` does.
func (f *secFakeVault) deletePrevious(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.versions[path]); n > 1 {
		f.versions[path][n-2].deleted = true
	}
}

func (f *secFakeVault) setSealed(sealed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sealed = sealed
}

func (f *secFakeVault) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *secFakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, msgs ...string) {
		w.WriteHeader(status)
		if msgs == nil {
			msgs = []string{}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
	}
	if f.sealed {
		fail(http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if r.Method != http.MethodGet || r.Header.Get("X-Vault-Token") != secVaultToken {
		fail(http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	rest, _ := strings.CutPrefix(r.URL.Path, "/v1/")
	mount, path, ok := strings.Cut(rest, "/data/")
	versions := f.versions[mount+"/"+path]
	if !ok || len(versions) == 0 {
		fail(http.StatusNotFound)
		return
	}
	n := len(versions)
	if q := r.URL.Query().Get("version"); q != "" {
		n, _ = strconv.Atoi(q)
	}
	if n < 1 || n > len(versions) {
		fail(http.StatusNotFound)
		return
	}
	v := versions[n-1]
	md := map[string]any{"created_time": "2026-11-23T10:00:00.000000Z", "custom_metadata": nil,
		"deletion_time": "", "destroyed": false, "version": n}
	var data any = v.data
	status := http.StatusOK
	if v.deleted {
		md["deletion_time"] = "2026-11-23T11:00:00.000000Z"
		data, status = nil, http.StatusNotFound
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"request_id": "e2e", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": map[string]any{"data": data, "metadata": md}, "wrap_info": nil, "warnings": nil, "auth": nil,
	})
}

// TestSecretDefaultWarnsInDevelopment shows the other half of the refusal
// rule: in development mode a known default secret (here the JWT key)
// does not stop the start but is logged as a warning that names the secret
// and not the value.
func TestSecretDefaultWarnsInDevelopment(t *testing.T) {
	up := startUpstream(t)
	t.Setenv("RAMPART_E2E_DEV_JWT", "your-secret-key-here-change-in-production")
	g := startGateway(t, fmt.Sprintf(`mode: development
log: {level: info, format: json}
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin_listen: 127.0.0.1:0
tls:
  self_signed: true
upstream:
  url: %s
routes:
  - name: people
    path: /people/*
    auth: user
secrets:
  jwt_key: env:RAMPART_E2E_DEV_JWT
identity:
  enabled: true
  bcrypt_cost: 10
`, up.URL))
	logs := g.logs.String()
	if !strings.Contains(logs, `"msg":"weak secret configuration","secret":"jwt_key"`) {
		t.Errorf("no warning naming jwt_key:\n%s", logs)
	}
	if strings.Contains(logs, "your-secret-key-here-change-in-production") {
		t.Error("the default value appears in the output")
	}
}
