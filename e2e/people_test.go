package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeopleThroughGateway: a person created with `rampart users` logs in
// at /.rampart/login, reaches an auth: user route with the access token
// (the upstream sees X-Rampart-User and no Rampart cookie), a read-only
// person is refused a write, logout makes the token fail, and the login
// endpoint is limited per client IP by identity.login_limit.
func TestPeopleThroughGateway(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, cert := certPair(t, dir, false, 7)
	cfg := baseConfig(up.URL, certFile, keyFile, `  - name: people
    path: /people/*
    auth: user
    permission: by_method
identity:
  enabled: true
  bcrypt_cost: 10
  login_limit: 5/min
`)
	secrets := secretEnv(t, dir, "jwt_key", "totp_key")
	g := startGatewayEnv(t, cfg, secrets)
	c := client(cert, nil)
	base := "https://" + g.public

	password := createUser(t, g, "reader", "read")
	token := login(t, c, base, "reader", password)

	resp, body := get(t, c, base+"/people/list", map[string]string{"Authorization": "Bearer " + token, "Cookie": "theirs=1"})
	if resp.StatusCode != 200 {
		t.Fatalf("person on a user route: %d %s", resp.StatusCode, body)
	}
	seen := up.seen()
	last := seen[len(seen)-1]
	if last.Header.Get("X-Rampart-User") != "reader" || last.Header.Get("Authorization") != "" {
		t.Errorf("upstream headers: user %q authorization %q", last.Header.Get("X-Rampart-User"), last.Header.Get("Authorization"))
	}
	if resp, _ := do(t, c, "POST", base+"/people/list", nil, map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 403 {
		t.Errorf("read-only person writing: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/people/list", nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", base+"/.rampart/logout", nil, map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/people/list", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 401 {
		t.Errorf("token after logout: %d, want 401", resp.StatusCode)
	}

	// login_limit: five tries per minute per client IP, the sixth is 429
	// from the "login" rule whatever the password (one success above).
	var statuses []int
	for range 5 {
		resp, _ := do(t, c, "POST", base+"/.rampart/login", strings.NewReader(`{"username":"nobody","password":"wrong-password-1"}`),
			map[string]string{"Content-Type": "application/json"})
		statuses = append(statuses, resp.StatusCode)
	}
	resp, body = do(t, c, "POST", base+"/.rampart/login", strings.NewReader(`{"username":"nobody","password":"wrong-password-1"}`),
		map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 429 || !strings.Contains(body, `"rule":"login"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("login after %v: %d %s", statuses, resp.StatusCode, body)
	}
}

// createUser runs `rampart users create` on the gateway's store and returns
// the generated password.
func createUser(t *testing.T, g *gateway, name, roles string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "users", "create", "--username", name, "--roles", roles, "--json",
		"--bcrypt-cost", "10", "--store", "sqlite://"+filepath.Join(g.dir, "rampart.db"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("users create: %v\n%s", err, stderr.String())
	}
	var created struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Password == "" {
		t.Fatalf("users create output: %v\n%s", err, out)
	}
	return created.Password
}

func login(t *testing.T, c *http.Client, base, user, password string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, body := do(t, c, "POST", base+"/.rampart/login", bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	return tok.AccessToken
}
