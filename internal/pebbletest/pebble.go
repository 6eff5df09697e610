// Package pebbletest runs a real Pebble ACME server (github.com/letsencrypt/pebble)
// on loopback for tests, with a small DNS server for its validation
// authority so that a dotted test name such as "rampart.test" resolves to
// 127.0.0.1. Validation is real: Pebble connects to the ports it is given
// and checks the http-01 or tls-alpn-01 response there.
//
// It is test support only: nothing outside _test.go files imports it.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv is the variable that turns a missing pebble binary from a skip
// into a failure, as for every other service the tests use.
const RequireEnv = "RAMPART_TEST_REQUIRE_SERVICES"

// Binary returns the pebble binary from PATH or $(go env GOPATH)/bin. It
// skips the test when there is none, unless RAMPART_TEST_REQUIRE_SERVICES=1.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "pebble")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	msg := "pebble not found in PATH or $(go env GOPATH)/bin; install with go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Options configures a Pebble server.
type Options struct {
	// Host is the name the test DNS server resolves to 127.0.0.1 for
	// Pebble's validation authority; every other name is NXDOMAIN. It needs
	// a dot: ACME clients refuse single-label names. Required.
	Host string
	// HTTPPort is the port Pebble connects to for http-01 challenges.
	HTTPPort int
	// TLSPort is the port Pebble connects to for tls-alpn-01 challenges.
	TLSPort int
}

// Server is a running Pebble.
type Server struct {
	// DirectoryURL is the ACME directory (https://127.0.0.1:PORT/dir).
	DirectoryURL string
	// CertFile is the PEM certificate Pebble serves its API with: the CA
	// roots an ACME client must trust to talk to it.
	CertFile string
	// Root is the root of the CA that issues certificates, fetched from
	// Pebble's management interface.
	Root *x509.Certificate

	rootsURL string
	output   *syncBuffer
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start writes a Pebble configuration, starts binary with the test DNS
// server and waits until its directory and management interface answer.
// Pebble is stopped at the end of the test, and its output logged when
// the test failed.
func Start(t testing.TB, binary string, opts Options) *Server {
	t.Helper()
	if !strings.Contains(opts.Host, ".") {
		t.Fatalf("pebble: host %q needs a dot", opts.Host)
	}
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	dnsAddr := StartDNS(t, opts.Host, net.IPv4(127, 0, 0, 1))
	listenAddr, mgmtAddr := FreeAddr(t), FreeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listenAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{
			"default": map[string]any{"description": "rampart test", "validityPeriod": 7776000},
		},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s := &Server{
		DirectoryURL: "https://" + listenAddr + "/dir",
		CertFile:     certFile,
		rootsURL:     "https://" + mgmtAddr + "/roots/0",
		output:       &syncBuffer{},
		exited:       make(chan struct{}),
	}
	s.cmd = exec.Command(binary, "-config", cfgFile, "-dnsserver", dnsAddr)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once instead of after a random delay
		"PEBBLE_WFE_NONCEREJECT=0", // no deliberately rejected nonces
	)
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("pebble output:\n%s", s.output.String())
		}
	})
	s.get(t, s.DirectoryURL)
	s.Root = s.fetchRoot(t)
	return s
}

// Stop kills Pebble and waits for it to exit; later calls do nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill pebble: %v", err)
	}
	<-s.exited
}

// Output is what Pebble printed so far.
func (s *Server) Output() string { return s.output.String() }

// Roots is a pool holding only the root of Pebble's issuing CA.
func (s *Server) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Root)
	return p
}

// HTTPClient trusts Pebble's API certificate.
func (s *Server) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(s.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("pebble: %s holds no certificate", s.CertFile)
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// get polls url until Pebble answers 200 and returns the body. Pebble logs
// its addresses before it binds them and starts the management listener in
// its own goroutine, so there is no earlier signal to wait on.
func (s *Server) get(t testing.TB, url string) []byte {
	t.Helper()
	client := s.HTTPClient(t)
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return body
			}
			err = errors.Join(rerr, errors.New(resp.Status))
		}
		select {
		case <-s.exited:
			t.Fatalf("pebble exited:\n%s", s.output.String())
		case <-deadline:
			t.Fatalf("GET %s: %v\n%s", url, err, s.output.String())
		case <-tick.C:
		}
	}
}

// fetchRoot downloads the root of Pebble's CA from its management interface.
func (s *Server) fetchRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(s.get(t, s.rootsURL))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("pebble root: no PEM certificate")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	return root
}

// FreeAddr returns a loopback address whose port was free a moment ago,
// for a server (Pebble) that cannot be handed a listener.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// selfSigned writes an ECDSA P-256 certificate for 127.0.0.1 and localhost
// into dir for Pebble's own HTTPS API.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pebble test API"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	for path, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// syncBuffer collects a subprocess's output.
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
