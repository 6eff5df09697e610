package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"
)

// testCA issues certificates for 127.0.0.1 and localhost.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart verify test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a leaf certificate and key (RSA 2048 when rsaKey, else
// ECDSA P-256) into dir as cert.pem and key.pem.
func (ca *testCA) issue(t *testing.T, dir string, rsaKey bool) {
	t.Helper()
	var pub, priv any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(200 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	writeFile(t, filepath.Join(dir, "cert.pem"), string(chain))
	writeFile(t, filepath.Join(dir, "key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nginxBinary finds nginx or skips (fails when services are required).
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal("nginx not installed (apt-get install -y nginx) and RAMPART_TEST_REQUIRE_SERVICES=1")
	}
	t.Skip("nginx not installed (apt-get install -y nginx)")
	return ""
}

// nginxVars fill the config templates.
type nginxVars struct {
	Dir      string
	TLSAddr  string
	HTTPAddr string
	TLSPort  int
	Key      string
}

// startNginx writes conf (a text/template over nginxVars) into a temp dir
// and runs nginx in the foreground on two free loopback ports, waiting
// (bounded) until both accept connections.
func startNginx(t *testing.T, conf string, files map[string]string, setup func(dir string)) nginxVars {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	tlsAddr, httpAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(tlsAddr)
	v := nginxVars{Dir: dir, TLSAddr: tlsAddr, HTTPAddr: httpAddr, Key: goodKey}
	_, _ = fmt.Sscan(port, &v.TLSPort)
	for name, content := range files {
		writeFile(t, filepath.Join(dir, "www", name), content)
	}
	for _, sub := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	setup(dir)
	var buf bytes.Buffer
	if err := template.Must(template.New("nginx").Parse(conf)).Execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "nginx.conf"), buf.String())

	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off; master_process off;")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Logf("nginx stderr:\n%s\nerror.log:\n%s", stderr.String(), log)
		}
	})
	for _, addr := range []string{tlsAddr, httpAddr} {
		waitListening(t, addr, exited, &stderr)
	}
	return v
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// waitListening dials addr until it accepts, nginx exits, or 200 attempts
// (about 10 s) pass.
func waitListening(t *testing.T, addr string, exited <-chan error, stderr *bytes.Buffer) {
	t.Helper()
	for range 200 {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited at start: %v\n%s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond) // readiness poll, not a timing assertion
	}
	t.Fatalf("nginx did not listen on %s", addr)
}

const nginxCommon = `
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/tmp/body;
  proxy_temp_path {{.Dir}}/tmp/proxy;
  fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
  uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
  scgi_temp_path {{.Dir}}/tmp/scgi;
  types { text/html html; text/plain txt; application/json json; }
  default_type text/plain;
`

// badNginx: TLS 1.0 and 1.1 with every cipher at security level 0, no
// security headers, CORS reflecting any origin with credentials, .env and
// .git/config served, a directory listing, no rate limit, a key accepted in
// the query string, the version in Server.
const badNginx = nginxCommon + `
  server_tokens on;
  server {
    listen {{.TLSAddr}} ssl;
    ssl_certificate {{.Dir}}/cert.pem;
    ssl_certificate_key {{.Dir}}/key.pem;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    ssl_ciphers ALL:@SECLEVEL=0;
    root {{.Dir}}/www;
    add_header Access-Control-Allow-Origin $http_origin always;
    add_header Access-Control-Allow-Credentials true always;
    location / {
      if ($request_method = OPTIONS) { return 204; }
    }
    location /static/ { autoindex on; }
    location = /api/private {
      if ($arg_api_key = "{{.Key}}") { return 200 '{"ok":true}'; }
      if ($http_x_api_key = "{{.Key}}") { return 200 '{"ok":true}'; }
      return 401;
    }
    location = /limited { return 200 "ok"; }
  }
  server {
    listen {{.HTTPAddr}};
    root {{.Dir}}/www;
  }
}
`

// goodNginx implements what nginx can: TLS 1.2+ ECDHE AEAD, redirect,
// HSTS, every header, strict CORS, __Host- cookie, auth by header only,
// generic JSON errors, a rate limit with 429 + Retry-After, body and
// header limits (494 remapped to 431), and nothing exposed. It has no
// WebSocket tickets.
const goodNginx = nginxCommon + `
  server_tokens off;
  limit_req_zone $binary_remote_addr zone=rl:1m rate=5r/m;
  map $http_origin $cors_origin { default ""; "https://app.example.test" $http_origin; }
  map $http_origin $cors_creds { default ""; "https://app.example.test" "true"; }
  server {
    listen {{.TLSAddr}} ssl;
    ssl_certificate {{.Dir}}/cert.pem;
    ssl_certificate_key {{.Dir}}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    client_max_body_size 1m;
    large_client_header_buffers 4 8k;
    root {{.Dir}}/www;
    include {{.Dir}}/headers.conf;
    error_page 401 /errors/401.json;
    error_page 404 /errors/404.json;
    error_page 413 /errors/413.json;
    error_page 494 =431 /errors/431.json;
    error_page 429 /errors/429.json;
    location / {
      if ($request_method = OPTIONS) { return 204; }
      default_type application/json;
      return 200 '{"status":"ok"}';
    }
    location ~ /\. { return 404; }
    location = /api/private {
      if ($http_x_api_key != "{{.Key}}") { return 401; }
      default_type application/json;
      return 200 '{"ok":true}';
    }
    location = /ws { return 401; }
    location = /limited {
      limit_req zone=rl burst=4 nodelay;
      limit_req_status 429;
      include {{.Dir}}/headers.conf;
      add_header RateLimit-Policy '"default";q=5;w=60' always;
      default_type application/json;
      alias {{.Dir}}/www/ok.json; # not "return": it runs before limit_req
    }
    location /errors/ { internal; include {{.Dir}}/headers.conf; }
    location = /errors/429.json {
      internal;
      include {{.Dir}}/headers.conf;
      add_header Retry-After 60 always;
      add_header RateLimit-Policy '"default";q=5;w=60' always;
    }
  }
  server {
    listen {{.HTTPAddr}};
    return 301 https://127.0.0.1:{{.TLSPort}}$request_uri;
  }
}
`

const goodHeaders = `
add_header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always;
add_header X-Content-Type-Options nosniff always;
add_header X-Frame-Options DENY always;
add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
add_header Referrer-Policy no-referrer always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
add_header Cross-Origin-Resource-Policy same-origin always;
add_header Set-Cookie "__Host-session=abc; Path=/; Secure; HttpOnly; SameSite=Strict" always;
add_header Access-Control-Allow-Origin $cors_origin always;
add_header Access-Control-Allow-Credentials $cors_creds always;
add_header Vary Origin always;
`

func TestRunBadNginx(t *testing.T) {
	ca := newTestCA(t)
	v := startNginx(t, badNginx, map[string]string{
		"index.html":      "<html><body>app</body></html>",
		".env":            "DATABASE_URL=postgres://app:hunter2@db/app\nSECRET_KEY=your-secret-key-here-change-in-production\n",
		".git/config":     "[core]\n\trepositoryformatversion = 0\n\tbare = false\n",
		".git/HEAD":       "ref: refs/heads/main\n",
		"static/app.js":   "console.log(1)",
		"static/app.css":  "body{}",
		"api/placeholder": "x",
	}, func(dir string) { ca.issue(t, dir, true) })

	rep, err := Run(context.Background(), Options{
		Target:         "https://" + v.TLSAddr + "/",
		HTTPURL:        "http://" + v.HTTPAddr + "/",
		ProtectedPaths: []string{"/api/private"},
		RateLimit:      RateLimit{Path: "/limited", Limit: 10},
		Key:            goodKey,
		KeyHeader:      "X-API-Key",
		RootCAs:        ca.pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFail := []string{
		"TLS-002", "TLS-003", "TLS-004", "TLS-005",
		"HTTPS-001", "HTTPS-002",
		"HDR-001", "HDR-002", "HDR-003", "HDR-005", "HDR-006", "HDR-007", "HDR-008",
		"CORS-001", "CORS-002", "CORS-003",
		"AUTH-004", "AUTH-005",
		"RL-001",
		"EXP-001", "EXP-002", "EXP-007",
	}
	for _, id := range wantFail {
		res, _ := rep.Result(id)
		if res.Status != StatusFail {
			t.Errorf("%s: status %s, want fail: %s", id, res.Status, res.Message)
		}
	}
	assertBudgets(t, rep)
	assertNoKey(t, rep, goodKey)
	if t.Failed() || testing.Verbose() {
		var b strings.Builder
		_ = WriteText(&b, rep, TextOptions{})
		t.Log(b.String())
	}
}

func TestRunGoodNginx(t *testing.T) {
	ca := newTestCA(t)
	v := startNginx(t, goodNginx, map[string]string{
		".env":        "SECRET_KEY=x\n",
		"ok.json":     `{"ok":true}`,
		".git/config": "[core]\n\trepositoryformatversion = 0\n",
	}, func(dir string) {
		ca.issue(t, dir, false)
		writeFile(t, filepath.Join(dir, "headers.conf"), goodHeaders)
		for code, msg := range map[string]string{"401": "unauthorized", "404": "not found", "413": "request too large", "431": "headers too large", "429": "rate limited"} {
			writeFile(t, filepath.Join(dir, "www", "errors", code+".json"), fmt.Sprintf(`{"error":%q}`, msg))
		}
	})
	rep, err := Run(context.Background(), Options{
		Target:         "https://" + v.TLSAddr + "/",
		HTTPURL:        "http://" + v.HTTPAddr + "/",
		ProtectedPaths: []string{"/api/private"},
		WSPaths:        []string{"/ws"},
		RateLimit:      RateLimit{Path: "/limited", Limit: 5},
		AllowedOrigins: []string{"https://app.example.test"},
		Key:            goodKey,
		KeyHeader:      "X-API-Key",
		RootCAs:        ca.pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	// nginx has no WebSocket tickets: WS-003 skips, everything else passes.
	for _, r := range rep.Results {
		want := StatusPass
		switch {
		case r.Area == AreaManual:
			want = StatusManual
		case r.ID == "WS-003":
			want = StatusSkip
		}
		if r.Status != want {
			t.Errorf("%s %s: %s, want %s: %s\n%v", r.ID, r.Title, r.Status, want, r.Message, r.Evidence)
		}
	}
	assertBudgets(t, rep)
	assertNoKey(t, rep, goodKey)
	if rep.Grade != "A+" {
		t.Errorf("grade %s (score %d), want A+", rep.Grade, rep.Score)
	}
	if t.Failed() || testing.Verbose() {
		var b strings.Builder
		_ = WriteText(&b, rep, TextOptions{})
		t.Log(b.String())
	}
}
