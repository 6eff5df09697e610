package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

// do sends one request through h with the given request info.
func do(h http.Handler, info reqinfo.Info) (*httptest.ResponseRecorder, *reqinfo.Info) {
	r := httptest.NewRequest(http.MethodGet, "/simulation/run", nil)
	p := &info
	r = r.WithContext(reqinfo.With(r.Context(), p))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, p
}

func keyInfo(id string) reqinfo.Info {
	return reqinfo.Info{ID: "req", ClientIP: netip.MustParseAddr("192.0.2.1"), Principal: reqinfo.Principal{Kind: "api_key", ID: id}}
}

func TestMiddlewarePerKey(t *testing.T) {
	clk := newClock()
	rule := ratelimit.Rule{Name: "per-key", Key: ratelimit.KeyAPIKey, Limit: must(ratelimit.ParseLimit("3/min"))}
	var rejected []string
	mw := must(ratelimit.New(ratelimit.Options{
		Limiter:  ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now}),
		Rules:    func(*http.Request) []ratelimit.Rule { return []ratelimit.Rule{rule} },
		OnReject: func(_ *http.Request, r ratelimit.Rule, res ratelimit.Result) { rejected = append(rejected, r.Name) },
	}))
	h := mw(okHandler)
	for i, want := range []string{`"per-key";r=2;t=20`, `"per-key";r=1;t=40`, `"per-key";r=0;t=60`} {
		w, info := do(h, keyInfo("k1"))
		if w.Code != http.StatusNoContent || w.Header().Get("RateLimit") != want || info.Outcome != "" {
			t.Fatalf("request %d: %d %q %q", i, w.Code, w.Header().Get("RateLimit"), info.Outcome)
		}
		if got := w.Header().Get("RateLimit-Policy"); got != `"per-key";q=3;w=60` {
			t.Fatalf("policy %q", got)
		}
		if w.Header().Get("X-RateLimit-Remaining") != fmt.Sprint(2-i) {
			t.Fatalf("X-RateLimit-Remaining %q", w.Header().Get("X-RateLimit-Remaining"))
		}
	}
	clk.Advance(500 * time.Millisecond)
	w, info := do(h, keyInfo("k1"))
	if w.Code != http.StatusTooManyRequests || info.Outcome != ratelimit.OutcomeRateLimited {
		t.Fatalf("4th: %d %q", w.Code, info.Outcome)
	}
	if got := w.Header().Get("Retry-After"); got != "20" { // 19.5 s rounded up
		t.Fatalf("Retry-After %q", got)
	}
	if got := w.Header().Get("RateLimit"); got != `"per-key";r=0;t=60` {
		t.Fatalf("RateLimit on 429: %q", got)
	}
	if w.Header().Get("X-RateLimit-Remaining") != "0" || w.Header().Get("X-RateLimit-Reset") != "60" || w.Header().Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("X-RateLimit-* on 429: %v", w.Header())
	}
	var body struct {
		Error      string `json:"error"`
		Rule       string `json:"rule"`
		RetryAfter int    `json:"retry_after"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "rate_limited" || body.Rule != "per-key" || body.RetryAfter != 20 {
		t.Fatalf("body %s: %+v %v", w.Body, body, err)
	}
	if w.Header().Get("Content-Type") != "application/json" || len(rejected) != 1 {
		t.Fatalf("content type %q, hook calls %v", w.Header().Get("Content-Type"), rejected)
	}
	// Another key has its own quota; the rejected request took nothing.
	if w, _ := do(h, keyInfo("k2")); w.Code != http.StatusNoContent {
		t.Fatalf("other key: %d", w.Code)
	}
	clk.Advance(19500 * time.Millisecond)
	if w, _ := do(h, keyInfo("k1")); w.Code != http.StatusNoContent || w.Header().Get("RateLimit") != `"per-key";r=0;t=60` {
		t.Fatalf("after Retry-After: %d %q", w.Code, w.Header().Get("RateLimit"))
	}
}

func TestMiddlewareSubjects(t *testing.T) {
	lim := must(ratelimit.ParseLimit("1/hour"))
	tests := []struct {
		name    string
		key     ratelimit.KeyKind
		a, b    reqinfo.Info
		shared  bool // a and b count against one quota
		limited bool // the rule applies to a at all
	}{
		{"api key rule skips anonymous", ratelimit.KeyAPIKey, reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")}, reqinfo.Info{}, false, false},
		{"api key rule skips users", ratelimit.KeyAPIKey, reqinfo.Info{Principal: reqinfo.Principal{Kind: "user", ID: "u"}}, reqinfo.Info{}, false, false},
		{"user rule per user", ratelimit.KeyUser,
			reqinfo.Info{Principal: reqinfo.Principal{Kind: "user", ID: "u1"}, ClientIP: netip.MustParseAddr("192.0.2.1")},
			reqinfo.Info{Principal: reqinfo.Principal{Kind: "user", ID: "u2"}, ClientIP: netip.MustParseAddr("192.0.2.1")}, false, true},
		{"ip rule ignores the principal", ratelimit.KeyIP,
			reqinfo.Info{Principal: reqinfo.Principal{Kind: "user", ID: "u1"}, ClientIP: netip.MustParseAddr("192.0.2.1")},
			reqinfo.Info{Principal: reqinfo.Principal{Kind: "api_key", ID: "k"}, ClientIP: netip.MustParseAddr("192.0.2.1")}, true, true},
		{"ip rule separates IPv4 addresses", ratelimit.KeyIP,
			reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")}, reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.2")}, false, true},
		{"ip rule groups an IPv6 /64", ratelimit.KeyIP,
			reqinfo.Info{ClientIP: netip.MustParseAddr("2001:db8:1:2::1")}, reqinfo.Info{ClientIP: netip.MustParseAddr("2001:db8:1:2:ffff::9")}, true, true},
		{"ip rule separates IPv6 /64s", ratelimit.KeyIP,
			reqinfo.Info{ClientIP: netip.MustParseAddr("2001:db8:1:2::1")}, reqinfo.Info{ClientIP: netip.MustParseAddr("2001:db8:1:3::1")}, false, true},
		{"ip rule unmaps IPv4 in IPv6", ratelimit.KeyIP,
			reqinfo.Info{ClientIP: netip.MustParseAddr("::ffff:192.0.2.1")}, reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")}, true, true},
		{"unknown IPs share one quota", ratelimit.KeyIP, reqinfo.Info{}, reqinfo.Info{}, true, true},
		{"global", ratelimit.KeyGlobal, keyInfo("a"), keyInfo("b"), true, true},
		{"subject falls back to IP", ratelimit.KeySubject,
			reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")}, reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")}, true, true},
		{"subject per principal", ratelimit.KeySubject, keyInfo("a"), keyInfo("b"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := ratelimit.Rule{Name: "r", Key: tt.key, Limit: lim}
			h := must(ratelimit.New(ratelimit.Options{
				Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
				Rules:   func(*http.Request) []ratelimit.Rule { return []ratelimit.Rule{rule} },
			}))(okHandler)
			w, _ := do(h, tt.a)
			if got := w.Header().Get("RateLimit") != ""; got != tt.limited {
				t.Fatalf("limited = %v, want %v", got, tt.limited)
			}
			if !tt.limited {
				return
			}
			w, _ = do(h, tt.b)
			if shared := w.Code == http.StatusTooManyRequests; shared != tt.shared {
				t.Fatalf("shared = %v, want %v", shared, tt.shared)
			}
		})
	}
}

// TestMiddlewarePreAuthThenKey: one instance before authentication (per IP)
// and one after (per key); the response describes both rules. The pre-auth
// instance decides before authentication runs, so a request the second
// instance rejects has already been counted by the first.
func TestMiddlewarePreAuthThenKey(t *testing.T) {
	lim := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: newClock().Now})
	pre := must(ratelimit.New(ratelimit.Options{
		Limiter: lim,
		Rules:   must(ratelimit.PreAuthRules(ratelimit.Rule{Name: "per-ip", Key: ratelimit.KeyIP, Limit: must(ratelimit.ParseLimit("5/min"))})),
	}))
	post := must(ratelimit.New(ratelimit.Options{
		Limiter: lim,
		Rules: func(*http.Request) []ratelimit.Rule {
			return []ratelimit.Rule{{Name: "per-key", Key: ratelimit.KeyAPIKey, Limit: must(ratelimit.ParseLimit("2/min"))}}
		},
	}))
	// A stand-in for authentication between the two.
	authn := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqinfo.From(r.Context()).Principal = reqinfo.Principal{Kind: "api_key", ID: "k"}
			next.ServeHTTP(w, r)
		})
	}
	h := pre(authn(post(okHandler)))
	anon := reqinfo.Info{ClientIP: netip.MustParseAddr("198.51.100.7")}
	w, _ := do(h, anon)
	if got := w.Header().Get("RateLimit"); got != `"per-ip";r=4;t=12, "per-key";r=1;t=30` {
		t.Fatalf("RateLimit %q", got)
	}
	if got := w.Header().Get("RateLimit-Policy"); got != `"per-ip";q=5;w=60, "per-key";q=2;w=60` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
	if w.Header().Get("X-RateLimit-Limit") != "2" || w.Header().Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("X-RateLimit-*: %v", w.Header())
	}
	do(h, anon)
	w, info := do(h, anon)
	if w.Code != http.StatusTooManyRequests || info.Outcome != ratelimit.OutcomeRateLimited {
		t.Fatalf("3rd: %d", w.Code)
	}
	if got := w.Header().Get("RateLimit"); got != `"per-ip";r=2;t=36, "per-key";r=0;t=60` {
		t.Fatalf("RateLimit on 429 %q", got)
	}
	// The pre-auth rule alone stops a client before authentication runs.
	do(h, anon)
	do(h, anon)
	w, _ = do(h, anon)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("RateLimit") != `"per-ip";r=0;t=60` {
		t.Fatalf("per-ip exhausted: %d %q", w.Code, w.Header().Get("RateLimit"))
	}

	if _, err := ratelimit.PreAuthRules(ratelimit.Rule{Name: "k", Key: ratelimit.KeyAPIKey, Limit: must(ratelimit.ParseLimit("5/min"))}); err == nil {
		t.Fatal("PreAuthRules accepted an api_key rule")
	}
}

type failing struct{ err error }

func (f failing) Allow(context.Context, []ratelimit.Check, []ratelimit.Result) (bool, error) {
	return false, f.err
}

func TestMiddlewareErrors(t *testing.T) {
	rules := func(*http.Request) []ratelimit.Rule {
		return []ratelimit.Rule{{Name: "g", Key: ratelimit.KeyGlobal, Limit: must(ratelimit.ParseLimit("5/min"))}}
	}
	h := must(ratelimit.New(ratelimit.Options{Limiter: failing{fmt.Errorf("x: %w", ratelimit.ErrUnavailable)}, Rules: rules}))(okHandler)
	w, info := do(h, reqinfo.Info{})
	if w.Code != http.StatusServiceUnavailable || info.Outcome != ratelimit.OutcomeUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("store down: %d %q %v", w.Code, info.Outcome, w.Header())
	}
	// Outside reqinfo the middleware fails closed.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("without reqinfo: %d", w.Code)
	}
	if _, err := ratelimit.New(ratelimit.Options{}); err == nil {
		t.Fatal("New accepted empty options")
	}
	// No rules: untouched.
	h = must(ratelimit.New(ratelimit.Options{Limiter: failing{errors.New("unused")}, Rules: func(*http.Request) []ratelimit.Rule { return nil }}))(okHandler)
	if w, _ := do(h, reqinfo.Info{}); w.Code != http.StatusNoContent || len(w.Header()) != 0 {
		t.Fatalf("no rules: %d %v", w.Code, w.Header())
	}
}

func ExampleNew() {
	perKey := ratelimit.Rule{Name: "per-key", Key: ratelimit.KeyAPIKey, Limit: must(ratelimit.ParseLimit("60/min"))}
	mw, err := ratelimit.New(ratelimit.Options{
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		Rules:   func(*http.Request) []ratelimit.Rule { return []ratelimit.Rule{perKey} },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := mw(okHandler)

	r := httptest.NewRequest(http.MethodGet, "/simulation/run", nil)
	r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{Principal: reqinfo.Principal{Kind: "api_key", ID: "k_1"}}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Header().Get("RateLimit-Policy"))
	fmt.Println(w.Header().Get("RateLimit"))
	fmt.Println(w.Header().Get("X-RateLimit-Remaining"))
	// Output:
	// "per-key";q=60;w=60
	// "per-key";r=59;t=1
	// 59
}
