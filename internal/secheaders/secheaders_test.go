package secheaders

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	h, err := New(Options{
		HSTSMaxAge: 365 * 24 * time.Hour, HSTSIncludeSubdomains: true,
		ContentSecurityPolicy: "default-src 'none'", FrameOptions: "deny",
		ReferrerPolicy: "no-referrer", PermissionsPolicy: "camera=()",
		CrossOriginResourcePolicy: "same-origin", XSSProtection: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	want := map[string]string{
		"Strict-Transport-Security":    "max-age=31536000; includeSubDomains",
		"Content-Security-Policy":      "default-src 'none'",
		"X-Frame-Options":              "DENY",
		"X-Content-Type-Options":       "nosniff",
		"Referrer-Policy":              "no-referrer",
		"Permissions-Policy":           "camera=()",
		"Cross-Origin-Resource-Policy": "same-origin",
		"X-Xss-Protection":             "0",
	}
	req := httptest.NewRequest("GET", "https://example.com/", nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	for k, v := range want {
		if got := rec.Header().Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	plain := httptest.NewRecorder()
	handler.ServeHTTP(plain, httptest.NewRequest("GET", "http://example.com/", nil))
	if v := plain.Header().Get("Strict-Transport-Security"); v != "" {
		t.Errorf("HSTS over plain HTTP: %q", v)
	}
}

func TestPreload(t *testing.T) {
	h, err := New(Options{HSTSMaxAge: 2 * 365 * 24 * time.Hour, HSTSIncludeSubdomains: true, HSTSPreload: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.HSTS(), "max-age=63072000; includeSubDomains; preload"; got != want {
		t.Errorf("HSTS = %q, want %q", got, want)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	h, _ := New(Options{HSTSMaxAge: time.Hour, ContentSecurityPolicy: "default-src 'none'", FrameOptions: "DENY"})
	handler := h.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("GET", "https://example.com/", nil)
	req.TLS = &tls.ConnectionState{}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		handler.ServeHTTP(w, req)
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func ExampleHeaders_Middleware() {
	h, _ := New(Options{HSTSMaxAge: 365 * 24 * time.Hour, HSTSIncludeSubdomains: true, FrameOptions: "DENY"})
	req := httptest.NewRequest("GET", "https://api.example.com/", nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	h.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
	fmt.Println(rec.Header().Get("Strict-Transport-Security"))
	// Output: max-age=31536000; includeSubDomains
}
