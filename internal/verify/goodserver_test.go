package verify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// goodTarget is a Go target that does everything the checklists ask,
// including single-use WebSocket tickets and a rate limit.
type goodTarget struct {
	limit int

	mu      sync.Mutex
	tickets map[string]bool
	hits    int
}

func (g *goodTarget) handler() http.Handler {
	mux := http.NewServeMux()
	refuse := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":%q}`, msg)
	}
	authed := func(r *http.Request) bool {
		return r.Header.Get("X-API-Key") == goodKey || r.Header.Get("Authorization") == "Bearer "+goodKey
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "__Host-session", Value: "v", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 1<<20 {
			refuse(w, http.StatusRequestEntityTooLarge, "request too large")
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("/api/private", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			refuse(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("POST /.rampart/ws/ticket", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			refuse(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		t := hex.EncodeToString(b)
		g.mu.Lock()
		g.tickets[t] = true
		g.mu.Unlock()
		fmt.Fprintf(w, `{"ticket":%q}`, t)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		t := r.URL.Query().Get("ticket")
		g.mu.Lock()
		ok := g.tickets[t]
		delete(g.tickets, t)
		g.mu.Unlock()
		if !ok {
			refuse(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		acceptWebSocket(w, r)
	})
	mux.HandleFunc("/limited", func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		g.hits++
		over := g.hits > g.limit
		g.mu.Unlock()
		w.Header().Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=60`, g.limit))
		if over {
			w.Header().Set("Retry-After", "60")
			refuse(w, http.StatusTooManyRequests, "rate limited")
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	allowed := "https://app.example.test"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=()")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Vary", "Origin")
		if r.Header.Get("Origin") == allowed {
			h.Set("Access-Control-Allow-Origin", allowed)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			refuse(w, http.StatusNotFound, "not found")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// startGood starts the target with TLS 1.2+ and ECDHE AEAD suites only, a
// 32 KiB header limit, and a plain-HTTP redirector.
func startGood(t *testing.T, g *goodTarget, tlsCfg *tls.Config) (srv, redirect *httptest.Server) {
	t.Helper()
	g.tickets = map[string]bool{}
	srv = httptest.NewUnstartedServer(g.handler())
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}}
	}
	srv.TLS = tlsCfg
	srv.Config.MaxHeaderBytes = 32 << 10
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	redirect = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusMovedPermanently)
	}))
	t.Cleanup(redirect.Close)
	return srv, redirect
}

func goodOptions(srv, redirect *httptest.Server, limit int) Options {
	return Options{
		Target:         srv.URL + "/",
		HTTPURL:        redirect.URL + "/",
		ProtectedPaths: []string{"/api/private"},
		WSPaths:        []string{"/ws"},
		RateLimit:      RateLimit{Path: "/limited", Limit: limit},
		AllowedOrigins: []string{"https://app.example.test"},
		Key:            goodKey,
		RootCAs:        rootsOf(srv),
	}
}

func TestRunGoodGoServer(t *testing.T) {
	g := &goodTarget{limit: 20}
	srv, redirect := startGood(t, g, nil)
	rep, err := Run(context.Background(), goodOptions(srv, redirect, 20))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		want := StatusPass
		if r.Area == AreaManual {
			want = StatusManual
		}
		if r.Status != want {
			t.Errorf("%s %s: %s, want %s: %s\n%v", r.ID, r.Title, r.Status, want, r.Message, r.Evidence)
		}
	}
	if rep.Score != 115 || rep.Grade != "A+" {
		t.Errorf("score %d grade %s, want 115 A+ (100 + three bonuses)", rep.Score, rep.Grade)
	}
	if rep.Failed(SeverityInfo) {
		t.Error("Failed(info) on a clean report")
	}
	assertBudgets(t, rep)
	assertNoKey(t, rep, goodKey)
	if res, _ := rep.Result("RL-001"); !strings.Contains(res.Message, "after 21 request") {
		t.Errorf("RL-001: %s", res.Message)
	}
}

// The rate-limit check sends no more than --max-requests even when the
// limit is higher, and says why it cannot conclude.
func TestRateLimitBoundedByMaxRequests(t *testing.T) {
	g := &goodTarget{limit: 1000}
	srv, redirect := startGood(t, g, nil)
	opts := goodOptions(srv, redirect, 1000)
	opts.MaxRequests = 7
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := rep.Result("RL-001")
	if res.Status != StatusWarn || res.Requests != 7 || res.MaxRequests != 7 {
		t.Errorf("RL-001 %s after %d/%d requests: %s", res.Status, res.Requests, res.MaxRequests, res.Message)
	}
	if g.hits != 7 {
		t.Errorf("server saw %d hits on the limited path, want 7", g.hits)
	}
}

// A TLS 1.3-only server has no TLS 1.2 suites to judge.
func TestTLS13Only(t *testing.T) {
	g := &goodTarget{limit: 5}
	srv, redirect := startGood(t, g, &tls.Config{MinVersion: tls.VersionTLS13})
	rep, err := Run(context.Background(), goodOptions(srv, redirect, 5))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"TLS-002", "TLS-003", "TLS-004", "TLS-005", "TLS-006"} {
		if res, _ := rep.Result(id); res.Status != StatusPass {
			t.Errorf("%s: %s: %s", id, res.Status, res.Message)
		}
	}
	if res, _ := rep.Result("TLS-004"); !strings.Contains(res.Message, "TLS 1.3 only") || res.Requests != 1 {
		t.Errorf("TLS-004: %s (%d requests)", res.Message, res.Requests)
	}
}

// Certificate expiry is judged against the injected clock.
func TestCertificateExpiry(t *testing.T) {
	g := &goodTarget{limit: 5}
	srv, redirect := startGood(t, g, nil)
	notAfter := srv.Certificate().NotAfter
	tests := []struct {
		name string
		now  time.Time
		want Status
	}{
		{"valid", notAfter.Add(-365 * 24 * time.Hour), StatusPass},
		{"under 30 days", notAfter.Add(-10 * 24 * time.Hour), StatusWarn},
		{"expired", notAfter.Add(time.Hour), StatusFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goodOptions(srv, redirect, 0)
			opts.Now = func() time.Time { return tt.now }
			opts.Key, opts.ProtectedPaths, opts.WSPaths = "", nil, nil
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if res, _ := rep.Result("TLS-012"); res.Status != tt.want {
				t.Errorf("TLS-012 %s: %s", res.Status, res.Message)
			}
		})
	}
}

// An untrusted certificate fails the chain check and withholds the key;
// --insecure turns the failure into a warning and sends the key.
func TestUntrustedCertificateWithholdsKey(t *testing.T) {
	g := &goodTarget{limit: 5}
	srv, redirect := startGood(t, g, nil)
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprint("insecure=", insecure), func(t *testing.T) {
			opts := goodOptions(srv, redirect, 5)
			opts.RootCAs = nil // the httptest certificate is not in the system roots
			opts.Insecure = insecure
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			chain, _ := rep.Result("TLS-010")
			query, _ := rep.Result("AUTH-004")
			replay, _ := rep.Result("WS-003")
			if insecure {
				if chain.Status != StatusWarn || query.Status != StatusPass || replay.Status != StatusPass {
					t.Errorf("insecure: chain %s, AUTH-004 %s, WS-003 %s", chain.Status, query.Status, replay.Status)
				}
				return
			}
			if chain.Status != StatusFail || query.Status != StatusSkip || replay.Status != StatusSkip {
				t.Errorf("chain %s, AUTH-004 %s (%s), WS-003 %s", chain.Status, query.Status, query.Message, replay.Status)
			}
		})
	}
}

// A plain-HTTP target fails TLS-001 and HSTS and skips the rest of TLS.
func TestPlainHTTPTarget(t *testing.T) {
	g := &goodTarget{limit: 5}
	srv := httptest.NewServer(g.handlerWithTickets())
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Options{Target: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"TLS-001": StatusFail, "TLS-002": StatusSkip, "TLS-010": StatusSkip, "HTTPS-001": StatusSkip,
		"HTTPS-002": StatusFail, "HTTPS-004": StatusFail, "AUTH-001": StatusSkip, "RL-001": StatusSkip}
	for id, st := range want {
		if res, _ := rep.Result(id); res.Status != st {
			t.Errorf("%s: %s, want %s: %s", id, res.Status, st, res.Message)
		}
	}
	assertBudgets(t, rep)
}

func (g *goodTarget) handlerWithTickets() http.Handler {
	g.tickets = map[string]bool{}
	return g.handler()
}

// A ticket endpoint whose tickets work twice fails WS-003.
func TestReusableTicketFails(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.rampart/ws/ticket", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"ticket":"same"}`) })
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ticket") != "same" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		acceptWebSocket(w, r)
	})
	srv := httptest.NewTLSServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Options{Target: srv.URL + "/", WSPaths: []string{"/ws"}, Key: goodKey, RootCAs: rootsOf(srv)})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := rep.Result("WS-003")
	if res.Status != StatusFail || res.Requests != 3 {
		t.Errorf("WS-003 %s after %d requests: %s", res.Status, res.Requests, res.Message)
	}
	for _, e := range res.Evidence {
		if strings.Contains(e.Request, "ticket=same") {
			t.Errorf("ticket in evidence: %s", e.Request)
		}
	}
}

func TestRunErrors(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.Listener.Addr().String()
	ln.Close() // nothing listens there now
	tests := []struct {
		name string
		opts Options
	}{
		{"no target", Options{}},
		{"bad scheme", Options{Target: "ftp://example.test/"}},
		{"relative path", Options{Target: "https://example.test/", ProtectedPaths: []string{"api"}}},
		{"limit without path", Options{Target: "https://example.test/", RateLimit: RateLimit{Limit: 5}}},
		{"bad origin", Options{Target: "https://example.test/", AllowedOrigins: []string{"app.example.test"}}},
		{"key with newline", Options{Target: "https://example.test/", Key: "a\nb"}},
		{"unreachable", Options{Target: "https://" + addr + "/", Timeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.opts); err == nil {
				t.Error("no error")
			}
		})
	}
}
