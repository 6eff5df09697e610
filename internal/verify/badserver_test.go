package verify

import (
	"bufio"
	"context"
	"crypto/sha1" //nolint:gosec // WebSocket accept key is defined with SHA-1
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"expvar"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodKey = "rk_test_0123456789abcdef0123456789abcdef"

// badHandler plants every problem verify looks for.
func badHandler(t *testing.T) http.Handler {
	t.Helper()
	static := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(static, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "read %d bytes", n)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc", Path: "/"})
		fmt.Fprint(w, "<html><body>hello</body></html>")
	})
	mux.HandleFunc("/.env", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "DATABASE_URL=postgres://app:hunter2@db/app\nSECRET_KEY=your-secret-key-here-change-in-production\n")
	})
	mux.HandleFunc("/.git/config", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total 1\n")
	})
	mux.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"openapi":"3.1.0","info":{"title":"x"},"paths":{"/a":{}}}`)
	})
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir(static))))
	keyOK := func(r *http.Request) bool {
		for _, k := range []string{r.Header.Get("X-API-Key"), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.URL.Query().Get("api_key")} {
			if k == goodKey || k == "dev-api-key-change-in-production" {
				return true
			}
		}
		return false
	}
	mux.HandleFunc("/api/private", func(w http.ResponseWriter, r *http.Request) {
		if !keyOK(r) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, "Traceback (most recent call last):\n  File \"/app/main.py\", line 12, in auth\nKeyError: 'key'\n")
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("/api/admin", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"admin":true}`) })
	mux.HandleFunc("/limited", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/ws", acceptWebSocket)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "Werkzeug/2.0.1 Python/3.9.7")
		w.Header().Set("X-Powered-By", "Express")
		if o := r.Header.Get("Origin"); o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// acceptWebSocket completes any opening handshake, then closes.
func acceptWebSocket(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
		return
	}
	h := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) //nolint:gosec // RFC 6455
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(h[:]))
	_ = rw.Flush()
	_, _ = bufio.NewReader(conn).Peek(1)
}

// startBad starts the bad target over TLS (TLS 1.0 and every weak suite Go
// still implements) and a plain-HTTP twin that serves content instead of
// redirecting.
func startBad(t *testing.T) (tlsSrv, plain *httptest.Server) {
	t.Helper()
	h := badHandler(t)
	tlsSrv = httptest.NewUnstartedServer(h)
	var suites []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		suites = append(suites, s.ID)
	}
	tlsSrv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, CipherSuites: suites}
	tlsSrv.EnableHTTP2 = false
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		fmt.Fprint(w, "plain")
	}))
	t.Cleanup(plain.Close)
	return tlsSrv, plain
}

func rootsOf(srv *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return p
}

func TestRunBadGoServer(t *testing.T) {
	srv, plain := startBad(t)
	opts := Options{
		Target:         srv.URL + "/",
		HTTPURL:        plain.URL + "/",
		ProtectedPaths: []string{"/api/private", "/api/admin"},
		WSPaths:        []string{"/ws"},
		RateLimit:      RateLimit{Path: "/limited", Limit: 10},
		Key:            goodKey,
		RootCAs:        rootsOf(srv),
		Now:            func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFail := []string{
		"TLS-002", "TLS-003", // TLS 1.0 and 1.1
		"TLS-004", "TLS-005", "TLS-006", // RSA kex, CBC, 3DES/RC4
		"HTTPS-001", "HTTPS-002", "HTTPS-004", // no redirect, no HSTS, HSTS over HTTP
		"HDR-001", "HDR-002", "HDR-003", "HDR-005", "HDR-006", "HDR-007", "HDR-008", // no security headers, banners
		"CORS-001", "CORS-002", "CORS-003", // reflection with credentials
		"COOKIE-001", "COOKIE-002", "COOKIE-003", "COOKIE-004",
		"AUTH-001", "AUTH-003", "AUTH-004", "AUTH-005", // open admin, default key, key in query, traceback
		"WS-001", "WS-002", // upgrade without ticket, with key in query
		"RL-001",             // no rate limit
		"LIM-001", "LIM-002", // no body or header limit
		"EXP-001", "EXP-002", "EXP-003", "EXP-004", "EXP-005", "EXP-007",
	}
	for _, id := range wantFail {
		res, ok := rep.Result(id)
		if !ok {
			t.Errorf("%s: missing", id)
			continue
		}
		if res.Status != StatusFail {
			t.Errorf("%s: status %s, want fail: %s", id, res.Status, res.Message)
		}
		if len(res.Evidence) == 0 {
			t.Errorf("%s: fail without evidence", id)
		}
	}
	assertBudgets(t, rep)
	assertNoKey(t, rep, goodKey)
	if rep.Grade != "F" {
		t.Errorf("grade %s (score %d), want F", rep.Grade, rep.Score)
	}
	if testing.Verbose() {
		_ = WriteText(os.Stdout, rep, TextOptions{})
	}
}

// assertBudgets checks no check sent more than it stated and the total adds up.
func assertBudgets(t *testing.T, rep *Report) {
	t.Helper()
	sum := rep.BaselineRequests
	for _, r := range rep.Results {
		if r.Requests > r.MaxRequests {
			t.Errorf("%s sent %d requests, stated max %d", r.ID, r.Requests, r.MaxRequests)
		}
		if strings.Contains(r.Message, errBudget.Error()) {
			t.Errorf("%s ran out of budget: %s", r.ID, r.Message)
		}
		sum += r.Requests
	}
	if sum != rep.Requests {
		t.Errorf("results account for %d requests, report counts %d", sum, rep.Requests)
	}
}

func assertNoKey(t *testing.T, rep *Report, key string) {
	t.Helper()
	for _, r := range rep.Results {
		for _, e := range r.Evidence {
			if strings.Contains(e.Request+e.Response, key) {
				t.Errorf("%s: evidence contains the key: %q", r.ID, e.Request)
			}
		}
		if strings.Contains(r.Message, key) {
			t.Errorf("%s: message contains the key", r.ID)
		}
	}
}
