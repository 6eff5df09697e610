package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// TestSecretPepperRotationUnderLoad rotates the API-key pepper of a running
// `rampart serve` while four clients send requests with a key made under
// the old pepper, the way an operator rotates a mounted secret: the old
// value moves to api_key_pepper.previous, the new one replaces
// api_key_pepper, then SIGHUP. It shows:
//   - zero failed requests across the rotation;
//   - the old key keeps working through the overlap, and its first use
//     after the rotation re-hashes it under the new pepper (stored version);
//   - a key created after the rotation (`rampart keys create -c`, reading
//     the same files) is hashed under the new pepper and works at once;
//   - once the previous pepper is removed (and SIGHUP), a key made under the
//     old pepper and never used since is refused, while the re-hashed old
//     key and the new key keep working: the old pepper is really gone;
//   - no pepper value ever appears in the gateway's output.
//
// JWT signing-key rotation, also in issue 7's acceptance, is not tested:
// the identity service that signs JWTs is not wired into serve yet.
func TestSecretPepperRotationUnderLoad(t *testing.T) {
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 7001)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, secAPIRoute))
	pepperFile := filepath.Join(g.dir, "api_key_pepper")
	p1 := secReadPepper(t, pepperFile)
	v1 := apikey.VersionFromID(secrets.ContentID([]byte(p1)))

	loadID, loadKey := secCreateKey(t, g, "load")     // used all along
	idleID, idleKey := secCreateKey(t, g, "idle")     // never used after the rotation
	if v := secStoredVersion(t, g, loadID); v != v1 { // made by the CLI from the same file
		t.Fatalf("key created before the rotation has pepper version %d, want %d", v, v1)
	}
	c := client(cert, nil)
	url := "https://" + g.public + "/api/rotation"
	if status := secGet(c, url, idleKey); status != http.StatusOK {
		t.Fatalf("idle key before the rotation: %d", status)
	}

	// Load: four clients, each at most secMaxPerWorker requests, stopped
	// once the rotation has been observed and more requests have passed.
	const workers, secMaxPerWorker = 4, 1500
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range secMaxPerWorker {
				select {
				case <-stop:
					return
				default:
				}
				if status := secGet(c, url, loadKey); status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					failMu.Lock()
					failures = append(failures, fmt.Sprint(status))
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

	// Rotate: previous first, then current, each by rename, then SIGHUP.
	p2 := secNewPepper(t)
	v2 := apikey.VersionFromID(secrets.ContentID([]byte(p2)))
	writeAtomic(t, pepperFile+secrets.FilePreviousSuffix, []byte(p1+"\n"))
	writeAtomic(t, pepperFile, []byte(p2+"\n"))
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The first request with the old key after the swap re-hashes it.
	rehashed := fmt.Sprintf(`"msg":"api key rehashed under current pepper","key_id":%q,"pepper_version":%d`, loadID, v2)
	secWaitLoad(t, loadDone, "the old key re-hashed under the new pepper", func() bool {
		return strings.Contains(g.logs.String(), rehashed)
	})
	after := total()
	// A key created now, during the overlap, while the load goes on.
	newID, newKey := secCreateKey(t, g, "after-rotation")
	if status := secGet(c, url, newKey); status != http.StatusOK {
		t.Errorf("key created after the rotation: %d", status)
	}
	secWaitLoad(t, loadDone, "requests after the rotation", func() bool { return total() >= after+200 })
	stopLoad()
	t.Logf("%d requests, %d after the rotation was seen", total(), total()-after)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed across the rotation (statuses %v)", n, total(), failures[:min(len(failures), 10)])
	}

	for _, k := range []struct {
		name, id string
		want     int
	}{{"old key in use", loadID, v2}, {"old key unused since", idleID, v1}, {"new key", newID, v2}} {
		if v := secStoredVersion(t, g, k.id); v != k.want {
			t.Errorf("%s: stored pepper version %d, want %d", k.name, v, k.want)
		}
	}

	// End the overlap: remove the previous pepper, SIGHUP. The idle key,
	// still hashed under it, is refused from then on; the others work.
	// The idle key must not be tried before the reload is done: a use
	// during the overlap would (rightly) re-hash it. Reload re-reads the
	// secrets before the certificate, so the second "certificate reloaded"
	// line means the secrets were re-read.
	if err := os.Remove(pepperFile + secrets.FilePreviousSuffix); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	secWaitLog(t, g, `"msg":"certificate reloaded"`, 2)
	if status := secGet(c, url, idleKey); status != http.StatusUnauthorized {
		t.Errorf("a key hashed under the removed previous pepper: %d, want 401", status)
	}
	for name, key := range map[string]string{"re-hashed old key": loadKey, "new key": newKey} {
		if status := secGet(c, url, key); status != http.StatusOK {
			t.Errorf("%s after the previous pepper was removed: %d", name, status)
		}
	}

	logs := g.logs.String()
	for name, v := range map[string]string{"old pepper": p1, "new pepper": p2} {
		if strings.Contains(logs, v) {
			t.Errorf("the %s value appears in the gateway output", name)
		}
	}
	if want := fmt.Sprintf(`"msg":"secret rotated","secret":"api_key_pepper","version":%q`, secrets.ContentID([]byte(p2))); !strings.Contains(logs, want) {
		t.Errorf("no rotation log line %s", want)
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
		env  []string
		want []string
	}{
		{name: "missing file", ref: "file:" + missing, want: []string{`"api_key_pepper"`, missing, "no such file"}},
		{name: "unset variable", ref: "env:RAMPART_E2E_UNSET_PEPPER", want: []string{`"api_key_pepper"`, "RAMPART_E2E_UNSET_PEPPER is not set"}},
		{name: "unknown scheme", ref: "ssm:/prod/pepper", want: []string{"secrets.api_key_pepper"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := append(secretEnv(t, t.TempDir()), "RAMPART_STATE_DIR="+dir, "RAMPART_SECRETS_API_KEY_PEPPER="+tc.ref)
			out, code := secRun(t, append(env, tc.env...), "serve", "-c", cfgPath)
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
func secGet(c *http.Client, url, key string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("X-API-Key", key)
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
