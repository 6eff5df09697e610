// Package e2e runs the built rampart binary as a subprocess against real
// upstreams and real clients.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rampart-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "rampart")
	build := exec.Command("go", "build", "-o", binary, "../cmd/rampart")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rampart:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer collects a subprocess's output for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is a running `rampart serve`.
type gateway struct {
	cmd                 *exec.Cmd
	public, http, admin string
	logs                *syncBuffer
	dir                 string
	config              string        // the config file, for `rampart keys -c`
	done                chan struct{} // closed when the process has exited
}

// secretEnv writes a pepper, an audit seal key and any more secrets named
// (e.g. "jwt_key") into dir, as an operator's secret files, and returns the
// RAMPART_* variables that reference them.
func secretEnv(t *testing.T, dir string, more ...string) []string {
	t.Helper()
	var env []string
	for _, name := range append([]string{"api_key_pepper", "audit_seal_key"}, more...) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "RAMPART_SECRETS_"+strings.ToUpper(name)+"=file:"+path)
	}
	return env
}

// startGateway writes config to a file and runs `rampart serve` on it until
// the test ends; it returns once the listeners are bound.
func startGateway(t *testing.T, config string) *gateway {
	t.Helper()
	return startGatewayEnv(t, config, nil)
}

// startGatewayEnv is startGateway with the given RAMPART_SECRETS_* variables
// (from secretEnv) instead of fresh ones, so that several instances share one
// pepper.
func startGatewayEnv(t *testing.T, config string, secrets []string) *gateway {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{logs: &syncBuffer{}, dir: dir, config: path}
	g.cmd = exec.Command(binary, "serve", "-c", path)
	g.cmd.Env = append(os.Environ(), "RAMPART_STATE_DIR="+dir)
	if secrets == nil {
		secrets = secretEnv(t, dir)
	}
	g.cmd.Env = append(g.cmd.Env, secrets...)
	pr, pw := io.Pipe()
	g.cmd.Stderr = io.MultiWriter(pw, g.logs)
	g.cmd.Stdout = g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	g.done = done
	var waitErr error
	go func() { waitErr = g.cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rampart output:\n%s", g.logs.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct {
				Msg, Public, HTTP, Admin string
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				g.public, g.http, g.admin = line.Public, line.HTTP, line.Admin
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("rampart exited before listening: %v\n%s", waitErr, g.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("rampart did not start listening:\n%s", g.logs.String())
	}
	return g
}

// stop ends the gateway gracefully (SIGTERM) and waits for it to exit, so
// that what it buffers (audit events) is on disk.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		t.Fatal("rampart did not exit after SIGTERM")
	}
}

// keys runs `rampart keys -c <config> args...` with the gateway's
// environment (its state dir and secrets) and returns standard output.
func (g *gateway) keys(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"keys", "-c", g.config}, args...)...)
	cmd.Env = g.cmd.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rampart keys %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// certPair writes a certificate for localhost and 127.0.0.1 and returns the
// file paths and the certificate (to trust it in clients).
func certPair(t *testing.T, dir string, useRSA bool, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	var priv any
	var pub any
	if useRSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// upstream is a real HTTP server that records what reaches it.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	BodyLen                int
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), int(n)})
		u.mu.Unlock()
		w.Header().Set("Server", "upstream/1.2.3 (Debian)")
		w.Header().Set("X-Powered-By", "PHP/8.2")
		w.Header().Set("X-Frame-Options", "ALLOWALL")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) seen() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.requests...)
}

// client trusts cert and keeps connections alive.
func client(cert *x509.Certificate, tlsConf *tls.Config) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	if tlsConf == nil {
		tlsConf = &tls.Config{}
	}
	tlsConf.RootCAs = pool
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 10 * time.Second,
	}
}

func baseConfig(upstreamURL, certFile, keyFile string, extra string) string {
	return fmt.Sprintf(`mode: production
log: {level: info, format: json}
server:
  listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  shutdown_timeout: 5s
tls:
  cert_file: %s
  key_file: %s
upstream:
  url: %s
cors:
  allowed_origins: ["https://app.example.com"]
  allowed_methods: [GET, POST]
routes:
  - name: public
    path: /public/*
  - name: admin
    path: /admin/*
    methods: [GET]
  - name: upload
    path: /upload
    methods: [POST]
    body_limit: 1MiB
%s`, certFile, keyFile, upstreamURL, extra)
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	return do(t, c, "GET", url, nil, hdr)
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(b))
}
