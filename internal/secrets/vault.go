package secrets

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Vault authentication methods.
const (
	VaultAuthToken      = "token"
	VaultAuthKubernetes = "kubernetes"
)

// DefaultServiceAccountTokenFile is where Kubernetes mounts the pod's token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// VaultOptions configures the Vault KV v2 provider.
type VaultOptions struct {
	// Address is the Vault URL, e.g. https://vault.internal:8200 (VAULT_ADDR).
	Address string
	// Namespace is sent as X-Vault-Namespace (Vault Enterprise, HCP).
	Namespace string
	// Auth is "token" (default) or "kubernetes".
	Auth string
	// Token is the Vault token for token auth (VAULT_TOKEN).
	Token Secret
	// KubernetesRole is the Vault role to log in as (kubernetes auth).
	KubernetesRole string
	// KubernetesMount is the auth mount; default "kubernetes".
	KubernetesMount string
	// KubernetesTokenFile is the service account JWT; default
	// DefaultServiceAccountTokenFile. It is re-read at every login, so
	// projected tokens that rotate keep working.
	KubernetesTokenFile string
	// CACertFile is a PEM bundle to trust for Vault's TLS certificate (VAULT_CACERT).
	CACertFile string
	// HTTPClient overrides the client (and CACertFile); default has a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
}

// VaultOptionsFromEnv reads the Vault CLI's variables: VAULT_ADDR,
// VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT.
func VaultOptionsFromEnv(getenv func(string) string) VaultOptions {
	o := VaultOptions{
		Address:    getenv("VAULT_ADDR"),
		Namespace:  getenv("VAULT_NAMESPACE"),
		CACertFile: getenv("VAULT_CACERT"),
	}
	if t := getenv("VAULT_TOKEN"); t != "" {
		o.Token = NewSecret([]byte(t))
	}
	return o
}

// VaultError is an error response from Vault.
type VaultError struct {
	Status int
	Errors []string
}

func (e *VaultError) Error() string {
	msg := strings.Join(e.Errors, "; ")
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("vault: %d: %s", e.Status, msg)
}

// Sealed reports whether Vault answered that it is sealed.
func (e *VaultError) Sealed() bool {
	if e.Status != http.StatusServiceUnavailable {
		return false
	}
	for _, m := range e.Errors {
		if strings.Contains(strings.ToLower(m), "sealed") {
			return true
		}
	}
	return false
}

// VaultProvider reads vault:MOUNT/PATH#field from KV v2. The version number
// in data.metadata.version is the version ID; version-1, unless deleted or
// destroyed, is the previous.
type VaultProvider struct {
	o      VaultOptions
	base   *url.URL
	client *http.Client

	mu      sync.Mutex
	token   Secret
	expires time.Time // zero: no expiry known
}

// NewVaultProvider validates o and returns a provider. It does no network I/O.
func NewVaultProvider(o VaultOptions) (*VaultProvider, error) {
	if o.Address == "" {
		return nil, errors.New("vault: no address (set VAULT_ADDR or the address option)")
	}
	u, err := url.Parse(o.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("vault: address %q is not an http(s) URL", o.Address)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.Auth {
	case "", VaultAuthToken:
		o.Auth = VaultAuthToken
		if o.Token.IsZero() {
			return nil, errors.New("vault: token auth without a token (set VAULT_TOKEN)")
		}
	case VaultAuthKubernetes:
		if o.KubernetesRole == "" {
			return nil, errors.New("vault: kubernetes auth needs a role")
		}
		if o.KubernetesMount == "" {
			o.KubernetesMount = "kubernetes"
		}
		if o.KubernetesTokenFile == "" {
			o.KubernetesTokenFile = DefaultServiceAccountTokenFile
		}
	default:
		return nil, fmt.Errorf("vault: unknown auth method %q (token or kubernetes)", o.Auth)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
		if o.CACertFile != "" {
			pem, err := os.ReadFile(o.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("vault: read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("vault: no certificates in %s", o.CACertFile)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			client.Transport = tr
		}
	}
	p := &VaultProvider{o: o, base: u, client: client}
	if o.Auth == VaultAuthToken {
		p.token = o.Token
	}
	return p, nil
}

type kvResponse struct {
	Data struct {
		Data     map[string]json.RawMessage `json:"data"`
		Metadata struct {
			Version      int    `json:"version"`
			DeletionTime string `json:"deletion_time"`
			Destroyed    bool   `json:"destroyed"`
		} `json:"metadata"`
	} `json:"data"`
}

// Fetch reads the latest version and the one before it.
func (p *VaultProvider) Fetch(ctx context.Context, ref Ref) (Fetched, error) {
	cur, ok, err := p.read(ctx, ref, 0)
	if err != nil {
		return Fetched{}, err
	}
	if !ok {
		return Fetched{}, fmt.Errorf("vault %s: no live version", ref)
	}
	f := Fetched{Current: cur}
	n, _ := strconv.Atoi(cur.ID)
	if n > 1 {
		prev, ok, err := p.read(ctx, ref, n-1)
		if err != nil {
			return Fetched{}, err
		}
		if ok {
			f.Previous = &prev
		}
	}
	return f, nil
}

// read returns version (0: latest); ok is false for a deleted or destroyed version.
func (p *VaultProvider) read(ctx context.Context, ref Ref, version int) (Version, bool, error) {
	path := "/v1/" + ref.Mount + "/data/" + ref.Name
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	var resp kvResponse
	status, err := p.do(ctx, http.MethodGet, path, nil, &resp, true)
	if err != nil {
		if status == http.StatusNotFound && version > 0 {
			return Version{}, false, nil
		}
		return Version{}, false, fmt.Errorf("vault read %s: %w", ref, err)
	}
	md := resp.Data.Metadata
	if resp.Data.Data == nil || md.DeletionTime != "" || md.Destroyed {
		return Version{}, false, nil
	}
	raw, ok := resp.Data.Data[ref.Field]
	if !ok {
		return Version{}, false, fmt.Errorf("vault read %s: field %q not found", ref, ref.Field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return Version{}, false, fmt.Errorf("vault read %s: field %q is not a string", ref, ref.Field)
	}
	if s == "" {
		return Version{}, false, fmt.Errorf("vault read %s: field %q is empty", ref, ref.Field)
	}
	return Version{ID: strconv.Itoa(md.Version), Value: NewSecret([]byte(s))}, true, nil
}

// do sends one request with the token, logging in first when needed; with
// retry, a 403 under kubernetes auth logs in again once.
func (p *VaultProvider) do(ctx context.Context, method, path string, body any, out any, retry bool) (int, error) {
	token, err := p.currentToken(ctx)
	if err != nil {
		return 0, err
	}
	status, err := p.send(ctx, method, path, token, body, out)
	if status == http.StatusForbidden && retry && p.o.Auth == VaultAuthKubernetes {
		p.mu.Lock()
		p.token, p.expires = Secret{}, time.Time{}
		p.mu.Unlock()
		return p.do(ctx, method, path, body, out, false)
	}
	return status, err
}

func (p *VaultProvider) currentToken(ctx context.Context) (Secret, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.token.IsZero() && (p.expires.IsZero() || p.o.Now().Before(p.expires)) {
		return p.token, nil
	}
	if p.o.Auth != VaultAuthKubernetes {
		return p.token, nil
	}
	jwt, err := os.ReadFile(p.o.KubernetesTokenFile)
	if err != nil {
		return Secret{}, fmt.Errorf("vault kubernetes login: read service account token: %w", err)
	}
	var resp struct {
		Auth struct {
			ClientToken   string `json:"client_token"`
			LeaseDuration int    `json:"lease_duration"`
		} `json:"auth"`
	}
	body := map[string]string{"role": p.o.KubernetesRole, "jwt": strings.TrimSpace(string(jwt))}
	if _, err := p.send(ctx, http.MethodPost, "/v1/auth/"+p.o.KubernetesMount+"/login", Secret{}, body, &resp); err != nil {
		return Secret{}, fmt.Errorf("vault kubernetes login: %w", err)
	}
	if resp.Auth.ClientToken == "" {
		return Secret{}, errors.New("vault kubernetes login: no client token in response")
	}
	p.token = NewSecret([]byte(resp.Auth.ClientToken))
	p.expires = time.Time{}
	if d := resp.Auth.LeaseDuration; d > 0 {
		// Log in again at 80% of the lease rather than renewing.
		p.expires = p.o.Now().Add(time.Duration(d) * time.Second * 8 / 10)
	}
	return p.token, nil
}

func (p *VaultProvider) send(ctx context.Context, method, path string, token Secret, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	u := *p.base
	rel, err := url.Parse(path)
	if err != nil {
		return 0, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + rel.Path
	u.RawQuery = rel.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, err
	}
	if !token.IsZero() {
		req.Header.Set("X-Vault-Token", string(token.Bytes()))
	}
	if p.o.Namespace != "" {
		req.Header.Set("X-Vault-Namespace", p.o.Namespace)
	}
	req.Header.Set("X-Vault-Request", "true")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, &VaultError{Status: resp.StatusCode, Errors: e.Errors}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("decode vault response: %w", err)
	}
	return resp.StatusCode, nil
}
