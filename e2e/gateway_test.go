package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTLSPolicy(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	// An RSA certificate, so that RSA key exchange would be possible if the
	// server allowed it: the refusal below is the policy's, not the key's.
	certFile, keyFile, cert := certPair(t, dir, true, 1)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, ""))

	handshake := func(conf *tls.Config) error {
		conf.ServerName = "localhost"
		c := client(cert, conf)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.public, c.Transport.(*http.Transport).TLSClientConfig)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	refused := []struct {
		name string
		conf *tls.Config
	}{
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}},
		{"TLS 1.2 RSA key exchange only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}},
		{"TLS 1.2 CBC only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256}}},
		{"TLS 1.2 3DES only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}}},
	}
	for _, c := range refused {
		t.Run("refuses "+c.name, func(t *testing.T) {
			if err := handshake(c.conf); err == nil {
				t.Fatalf("%s handshake succeeded", c.name)
			}
		})
	}
	t.Run("accepts TLS 1.2 ECDHE AEAD", func(t *testing.T) {
		if err := handshake(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("negotiates TLS 1.3", func(t *testing.T) {
		resp, _ := get(t, client(cert, nil), "https://"+g.public+"/public/x", nil)
		if resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("version %x", resp.TLS.Version)
		}
	})
}

func TestEdge(t *testing.T) {
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, ""))
	c := client(cert, nil)
	base := "https://" + g.public

	t.Run("redirect keeps path and query", func(t *testing.T) {
		plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		_, port, _ := net.SplitHostPort(g.public)
		for method, code := range map[string]int{"GET": 301, "HEAD": 301, "POST": 308, "DELETE": 308} {
			resp, body := do(t, plain, method, "http://localhost:"+portOf(g.http)+"/public/a%20b?x=1&y=two", nil, nil)
			want := "https://localhost:" + port + "/public/a%20b?x=1&y=two"
			if resp.StatusCode != code || resp.Header.Get("Location") != want || body != "" {
				t.Errorf("%s: %d Location %q body %q; want %d %q and no body", method, resp.StatusCode, resp.Header.Get("Location"), body, code, want)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("%s: HSTS over plain HTTP", method)
			}
		}
		resp, _ := get(t, plain, "http://"+g.http+"/.well-known/acme-challenge/token", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("acme challenge without ACME: %d, want 404", resp.StatusCode)
		}
	})

	t.Run("security headers with exact values", func(t *testing.T) {
		resp, _ := get(t, c, base+"/public/headers", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		want := map[string]string{
			"Strict-Transport-Security":    "max-age=31536000; includeSubDomains",
			"X-Content-Type-Options":       "nosniff",
			"X-Frame-Options":              "DENY",
			"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
			"Referrer-Policy":              "no-referrer",
			"Cross-Origin-Resource-Policy": "same-origin",
			"Permissions-Policy":           "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
			"X-Xss-Protection":             "0",
		}
		for k, v := range want {
			if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s = %q, want exactly %q", k, got, v)
			}
		}
		for _, banned := range []string{"Server", "X-Powered-By", "Access-Control-Allow-Origin"} {
			if v := resp.Header.Get(banned); v != "" {
				t.Errorf("upstream %s leaked: %q", banned, v)
			}
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-ID")
		}
	})

	t.Run("forwarding headers", func(t *testing.T) {
		before := len(up.seen())
		get(t, c, base+"/public/fwd", map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "trace-123"})
		seen := up.seen()[before:]
		if len(seen) != 1 {
			t.Fatalf("upstream saw %d requests", len(seen))
		}
		h := seen[0].Header
		if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Request-Id") != "trace-123" {
			t.Errorf("forwarded headers: %v", h)
		}
	})

	t.Run("2 MiB body refused before the upstream", func(t *testing.T) {
		before := len(up.seen())
		resp, body := do(t, c, "POST", base+"/upload", bytes.NewReader(make([]byte, 2<<20)), map[string]string{"Content-Type": "application/octet-stream"})
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"body_too_large"`) {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		// A chunked body without a length is cut at the limit too.
		pr, pw := io.Pipe()
		go func() {
			chunk := make([]byte, 64<<10)
			for range 32 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, _ = do(t, c, "POST", base+"/upload", pr, nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: status %d", resp.StatusCode)
		}
		for _, r := range up.seen()[before:] {
			if r.BodyLen > 1<<20 {
				t.Errorf("upstream received %d body bytes", r.BodyLen)
			}
			if r.Path == "/upload" && r.BodyLen == 2<<20 {
				t.Errorf("upstream received the whole body")
			}
		}
		if n := countPath(up.seen()[before:], "/upload"); n > 1 {
			t.Errorf("upstream saw /upload %d times", n)
		}
		resp, _ = do(t, c, "POST", base+"/upload", bytes.NewReader(make([]byte, 1000)), nil)
		if resp.StatusCode != 200 {
			t.Errorf("small body: %d", resp.StatusCode)
		}
	})

	t.Run("cors", func(t *testing.T) {
		resp, _ := get(t, c, base+"/public/cors", map[string]string{"Origin": "https://evil.example"})
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("disallowed origin got ACAO %q", v)
		}
		resp, _ = get(t, c, base+"/public/cors", map[string]string{"Origin": "https://app.example.com"})
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "https://app.example.com" {
			t.Errorf("allowed origin got ACAO %q", v)
		}
		before := len(up.seen())
		resp, _ = do(t, c, "OPTIONS", base+"/public/cors", nil, map[string]string{
			"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "content-type",
		})
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = do(t, c, "OPTIONS", base+"/public/cors", nil, map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
		})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("disallowed preflight got ACAO")
		}
		if n := len(up.seen()) - before; n != 0 {
			t.Errorf("preflights reached the upstream %d times", n)
		}
	})

	t.Run("path tricks cannot change the rule", func(t *testing.T) {
		// /admin/* allows only GET; /public/* allows everything. Every
		// spelling of an admin path must get the admin rule (405 for POST),
		// and the upstream must see the normalised path.
		for _, p := range []string{"/admin/users", "/public/../admin/users", "//admin//users", "/ADMIN/users",
			"/public/%2e%2e/admin/users", "/./admin/./users", "/%61dmin/users"} {
			before := len(up.seen())
			resp, _ := rawRequest(t, g.public, cert, "POST", p)
			if resp != http.StatusMethodNotAllowed {
				t.Errorf("POST %s: %d, want 405 (the admin rule)", p, resp)
			}
			if n := len(up.seen()) - before; n != 0 {
				t.Errorf("POST %s reached the upstream", p)
			}
		}
		for _, p := range []string{"/public%2f..%2fadmin/users", "/admin%5cusers", "/public/%252e%252e/admin", "/public/a%00b"} {
			if code, _ := rawRequest(t, g.public, cert, "GET", p); code != http.StatusBadRequest {
				t.Errorf("GET %s: %d, want 400", p, code)
			}
		}
		before := len(up.seen())
		if code, _ := rawRequest(t, g.public, cert, "GET", "/public/x/../../admin/users"); code != 200 {
			t.Fatalf("GET via dot segments: %d", code)
		}
		if seen := up.seen()[before:]; len(seen) != 1 || seen[0].Path != "/admin/users" {
			t.Errorf("upstream saw %+v, want /admin/users", seen)
		}
		if code, _ := rawRequest(t, g.public, cert, "GET", "/unrouted"); code != http.StatusNotFound {
			t.Errorf("unrouted path: %d, want 404", code)
		}
	})

	t.Run("header size limit", func(t *testing.T) {
		h1 := client(cert, &tls.Config{NextProtos: []string{"http/1.1"}})
		h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
		resp, _ := get(t, h1, base+"/public/big", map[string]string{"X-Big": strings.Repeat("a", 64<<10)})
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
		}
	})

	t.Run("admin listener", func(t *testing.T) {
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/debug/pprof/": 404} {
			resp, _ := get(t, http.DefaultClient, "http://"+g.admin+path, nil)
			if resp.StatusCode != want {
				t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
			}
		}
	})
}

func countPath(rs []recorded, path string) int {
	n := 0
	for _, r := range rs {
		if r.Path == path {
			n++
		}
	}
	return n
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// rawRequest sends a request line exactly as given (Go's client would clean
// or re-encode the path) over TLS and returns the status code and body.
func rawRequest(t *testing.T, addr string, cert *x509.Certificate, method, path string) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, method+" "+path+" HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
