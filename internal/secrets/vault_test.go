package secrets

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type kvVersion struct {
	data      map[string]any
	deleted   bool
	destroyed bool
}

// fakeVault answers with KV v2's response shapes and the Kubernetes auth login.
type fakeVault struct {
	mu        sync.Mutex
	kv        map[string][]kvVersion // "mount/path" -> versions 1..n
	tokens    map[string]bool
	namespace string // required X-Vault-Namespace, if set
	sealed    bool
	k8sJWT    string
	k8sRole   string
	logins    int
	nextToken int
}

func newFakeVault() *fakeVault {
	return &fakeVault{kv: map[string][]kvVersion{}, tokens: map[string]bool{}}
}

func (f *fakeVault) put(path string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[path] = append(f.kv[path], kvVersion{data: data})
}

func writeVaultErr(w http.ResponseWriter, status int, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if msgs == nil {
		msgs = []string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealed {
		writeVaultErr(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if f.namespace != "" && r.Header.Get("X-Vault-Namespace") != f.namespace {
		writeVaultErr(w, http.StatusForbidden, "permission denied")
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1/auth/kubernetes/login" {
		var in struct{ JWT, Role string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.JWT != f.k8sJWT || in.Role != f.k8sRole {
			writeVaultErr(w, http.StatusForbidden, "permission denied")
			return
		}
		f.logins++
		f.nextToken++
		tok := "hvs.k8s-" + strconv.Itoa(f.nextToken)
		f.tokens[tok] = true
		_ = json.NewEncoder(w).Encode(map[string]any{
			"request_id": "1", "lease_id": "", "renewable": false, "lease_duration": 0, "data": nil,
			"auth": map[string]any{"client_token": tok, "accessor": "acc", "policies": []string{"default", "rampart"},
				"lease_duration": 3600, "renewable": true},
		})
		return
	}
	if r.Method != http.MethodGet || !f.tokens[r.Header.Get("X-Vault-Token")] {
		writeVaultErr(w, http.StatusForbidden, "permission denied")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	mount, path, ok2 := strings.Cut(rest, "/data/")
	if !ok || !ok2 {
		writeVaultErr(w, http.StatusNotFound)
		return
	}
	versions := f.kv[mount+"/"+path]
	n := len(versions)
	if q := r.URL.Query().Get("version"); q != "" {
		n, _ = strconv.Atoi(q)
	}
	if n < 1 || n > len(versions) {
		writeVaultErr(w, http.StatusNotFound)
		return
	}
	v := versions[n-1]
	md := map[string]any{"created_time": "2026-11-23T10:00:00.000000Z", "custom_metadata": nil,
		"deletion_time": "", "destroyed": v.destroyed, "version": n}
	var data any = v.data
	status := http.StatusOK
	if v.deleted || v.destroyed {
		data, status = nil, http.StatusNotFound
		if v.deleted {
			md["deletion_time"] = "2026-11-23T11:00:00.000000Z"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"request_id": "1", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": map[string]any{"data": data, "metadata": md}, "wrap_info": nil, "warnings": nil, "auth": nil,
	})
}

func vaultRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVaultTokenAuth(t *testing.T) {
	fv := newFakeVault()
	fv.tokens["hvs.root"] = true
	fv.namespace = "team-a"
	fv.put("secret/rampart/pepper", map[string]any{"value": "pepper-v1"})
	srv := httptest.NewServer(fv)
	defer srv.Close()
	p, err := NewVaultProvider(VaultOptions{Address: srv.URL, Token: NewSecret([]byte("hvs.root")), Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := vaultRef(t, "vault:secret/rampart/pepper#value")
	f, err := p.Fetch(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if f.Current.ID != "1" || string(f.Current.Value.Bytes()) != "pepper-v1" || f.Previous != nil {
		t.Fatalf("got %s %q %v", f.Current.ID, f.Current.Value.Bytes(), f.Previous)
	}

	fv.put("secret/rampart/pepper", map[string]any{"value": "pepper-v2"})
	f, err = p.Fetch(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if f.Current.ID != "2" || string(f.Current.Value.Bytes()) != "pepper-v2" || f.Previous == nil ||
		f.Previous.ID != "1" || string(f.Previous.Value.Bytes()) != "pepper-v1" {
		t.Fatalf("after v2: current %s, previous %+v", f.Current.ID, f.Previous)
	}

	// A deleted previous version is not offered.
	fv.mu.Lock()
	fv.kv["secret/rampart/pepper"][0].deleted = true
	fv.mu.Unlock()
	f, err = p.Fetch(ctx, ref)
	if err != nil || f.Previous != nil {
		t.Fatalf("deleted previous: %v %+v", err, f.Previous)
	}
}

func TestVaultErrors(t *testing.T) {
	fv := newFakeVault()
	fv.tokens["hvs.good"] = true
	fv.put("secret/app", map[string]any{"value": "x", "n": 3})
	srv := httptest.NewServer(fv)
	defer srv.Close()
	ctx := context.Background()
	good, _ := NewVaultProvider(VaultOptions{Address: srv.URL, Token: NewSecret([]byte("hvs.good"))})
	bad, _ := NewVaultProvider(VaultOptions{Address: srv.URL, Token: NewSecret([]byte("hvs.bad"))})

	tests := []struct {
		name   string
		p      *VaultProvider
		ref    string
		sealed bool
		status int
		want   string
	}{
		{"permission denied", bad, "vault:secret/app#value", false, 403, "permission denied"},
		{"sealed", good, "vault:secret/app#value", true, 503, "Vault is sealed"},
		{"missing secret", good, "vault:secret/nope#value", false, 404, "404"},
		{"missing field", good, "vault:secret/app#other", false, 0, `field "other" not found`},
		{"non-string field", good, "vault:secret/app#n", false, 0, `field "n" is not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv.mu.Lock()
			fv.sealed = tt.sealed
			fv.mu.Unlock()
			_, err := tt.p.Fetch(ctx, vaultRef(t, tt.ref))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hvs.") {
				t.Errorf("error leaks the token: %v", err)
			}
			var ve *VaultError
			if tt.status != 0 && (!errors.As(err, &ve) || ve.Status != tt.status) {
				t.Errorf("VaultError = %+v, want status %d", ve, tt.status)
			}
			if tt.sealed && !ve.Sealed() {
				t.Error("Sealed() = false")
			}
		})
	}
}

func TestVaultKubernetesAuth(t *testing.T) {
	fv := newFakeVault()
	fv.k8sJWT, fv.k8sRole = "eyJhbGciOi.service-account.jwt", "rampart"
	fv.put("kv/gw/jwt", map[string]any{"key": "jwt-signing-key"})
	srv := httptest.NewTLSServer(fv)
	defer srv.Close()

	dir := t.TempDir()
	jwtFile := filepath.Join(dir, "token")
	if err := os.WriteFile(jwtFile, []byte(fv.k8sJWT+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p, err := NewVaultProvider(VaultOptions{
		Address: srv.URL, Auth: VaultAuthKubernetes, KubernetesRole: "rampart",
		KubernetesTokenFile: jwtFile, CACertFile: caFile, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := vaultRef(t, "vault:kv/gw/jwt#key")
	for range 2 {
		f, err := p.Fetch(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.Current.Value.Bytes()) != "jwt-signing-key" {
			t.Fatalf("value = %q", f.Current.Value.Bytes())
		}
	}
	if fv.logins != 1 {
		t.Errorf("logins = %d, want 1 (token reused)", fv.logins)
	}
	// Past 80% of the lease the provider logs in again.
	now = now.Add(50 * time.Minute)
	if _, err := p.Fetch(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if fv.logins != 2 {
		t.Errorf("logins after lease = %d, want 2", fv.logins)
	}
	// A revoked token is replaced by a new login once.
	fv.mu.Lock()
	fv.tokens = map[string]bool{}
	fv.mu.Unlock()
	if _, err := p.Fetch(ctx, ref); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if fv.logins != 3 {
		t.Errorf("logins after revocation = %d, want 3", fv.logins)
	}
	// A wrong role is a clear login error.
	fv.mu.Lock()
	fv.tokens = map[string]bool{}
	fv.k8sRole = "other"
	fv.mu.Unlock()
	if _, err := p.Fetch(ctx, ref); err == nil || !strings.Contains(err.Error(), "kubernetes login") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("wrong role: %v", err)
	}
}

func TestVaultOptions(t *testing.T) {
	tests := []struct {
		name string
		o    VaultOptions
		want string
	}{
		{"no address", VaultOptions{}, "no address"},
		{"bad address", VaultOptions{Address: "vault:8200", Token: NewSecret([]byte("t"))}, "not an http(s) URL"},
		{"no token", VaultOptions{Address: "https://vault:8200"}, "without a token"},
		{"no role", VaultOptions{Address: "https://vault:8200", Auth: VaultAuthKubernetes}, "needs a role"},
		{"bad auth", VaultOptions{Address: "https://vault:8200", Auth: "ldap"}, "unknown auth method"},
		{"bad ca", VaultOptions{Address: "https://vault:8200", Token: NewSecret([]byte("t")), CACertFile: "/nonexistent/ca.pem"}, "read CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVaultProvider(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	env := map[string]string{"VAULT_ADDR": "https://v:8200", "VAULT_TOKEN": "hvs.x", "VAULT_NAMESPACE": "ns", "VAULT_CACERT": "/ca"}
	o := VaultOptionsFromEnv(func(k string) string { return env[k] })
	if o.Address != "https://v:8200" || string(o.Token.Bytes()) != "hvs.x" || o.Namespace != "ns" || o.CACertFile != "/ca" {
		t.Errorf("FromEnv = %+v", o)
	}
}
