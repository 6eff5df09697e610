package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a real upstream that remembers the last request it saw.
type recorder struct {
	mu     sync.Mutex
	header http.Header
	body   []byte
	calls  int
}

func (u *recorder) handler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.header, u.body = r.Header.Clone(), b
	u.calls++
	u.mu.Unlock()
	w.Header().Set("Server", "upstream/1.0")
	w.Header().Set("X-Powered-By", "PHP/8")
	w.Header().Set("Connection", "X-Hop")
	w.Header().Set("X-Hop", "secret-hop")
	_, _ = io.WriteString(w, "ok")
}

func newProxy(t *testing.T, upstream string, opts Options) *Proxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	opts.Upstream = u
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestForwardedHeadersAndStripping(t *testing.T) {
	up := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(up.handler))
	defer srv.Close()
	trusted := netip.MustParsePrefix("10.0.0.0/8")
	p := newProxy(t, srv.URL, Options{
		StripResponseHeaders: []string{"Server", "X-Powered-By"},
		TrustedPeer:          trusted.Contains,
	})
	for _, tc := range []struct {
		name, peer, wantXFF string
	}{
		{"untrusted peer: its own address only", "203.0.113.7:4000", "203.0.113.7"},
		{"trusted proxy: the chain is kept", "10.1.2.3:4000", "198.51.100.1, 10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "https://api.example.com/x?q=1", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-For", "198.51.100.1")
			req.Header.Set("Connection", "X-Client-Hop")
			req.Header.Set("X-Client-Hop", "drop-me")
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Body.String() != "ok" {
				t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
			}
			up.mu.Lock()
			h := up.header
			up.mu.Unlock()
			if got := h.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
			if h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Host") != "api.example.com" {
				t.Errorf("proto %q host %q", h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
			}
			if h.Get("X-Client-Hop") != "" {
				t.Error("a hop-by-hop header named in Connection reached the upstream")
			}
			for _, name := range []string{"Server", "X-Powered-By", "X-Hop"} {
				if v := rec.Header().Get(name); v != "" {
					t.Errorf("response header %s = %q reached the client", name, v)
				}
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	// A port nothing listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	// An upstream that never answers in time.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)

	for _, tc := range []struct {
		name, upstream string
		status         int
		outcome        string
	}{
		{"refused", dead, http.StatusBadGateway, "upstream_error"},
		{"timeout", slow.URL, http.StatusGatewayTimeout, "upstream_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []error
			p := newProxy(t, tc.upstream, Options{
				ResponseHeaderTimeout: 50 * time.Millisecond,
				OnUpstreamError:       func(err error) { seen = append(seen, err) },
			})
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.outcome) {
				t.Fatalf("status %d body %s, want %d %s", rec.Code, rec.Body.String(), tc.status, tc.outcome)
			}
			// The body says nothing about the upstream.
			host := strings.TrimPrefix(tc.upstream, "http://")
			if strings.Contains(rec.Body.String(), host) || strings.Contains(rec.Body.String(), "dial") {
				t.Errorf("error body leaks the upstream: %s", rec.Body.String())
			}
			if len(seen) != 1 {
				t.Errorf("OnUpstreamError called %d times", len(seen))
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	up := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(up.handler))
	defer srv.Close()
	p := newProxy(t, srv.URL, Options{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if LimitBody(w, r, 10) {
			p.ServeHTTP(w, r)
		}
	})

	// Declared too large: refused before the upstream sees anything.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/x", strings.NewReader(strings.Repeat("a", 11))))
	if rec.Code != http.StatusRequestEntityTooLarge || up.calls != 0 {
		t.Fatalf("declared 11 bytes: status %d, upstream calls %d", rec.Code, up.calls)
	}
	// Chunked (no length) and too large: 413, and the upstream never gets
	// more than the limit.
	req := httptest.NewRequest("POST", "/x", io.MultiReader(strings.NewReader(strings.Repeat("b", 64))))
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked 64 bytes: status %d", rec.Code)
	}
	up.mu.Lock()
	if len(up.body) > 10 {
		t.Errorf("upstream read %d bytes past a 10-byte limit", len(up.body))
	}
	up.mu.Unlock()
	// Within the limit: passed through whole.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/x", strings.NewReader("0123456789")))
	up.mu.Lock()
	defer up.mu.Unlock()
	if rec.Code != 200 || string(up.body) != "0123456789" {
		t.Errorf("10 bytes: status %d, upstream got %q", rec.Code, up.body)
	}
}

func TestNewRefusesBadUpstream(t *testing.T) {
	for _, raw := range []string{"", "ftp://x", "/relative", "http://"} {
		u, _ := url.Parse(raw)
		if _, err := New(Options{Upstream: u}); err == nil {
			t.Errorf("New accepted upstream %q", raw)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted no upstream")
	}
}
