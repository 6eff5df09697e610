package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteHeaders(t *testing.T) {
	perKey := Rule{Name: "per-key", Key: KeyAPIKey, Limit: Limit{Count: 60, Period: time.Minute}}
	perIP := Rule{Name: "per-ip", Key: KeyIP, Limit: Limit{Count: 100, Period: time.Minute}}
	tests := []struct {
		name    string
		rules   []Rule
		results []Result
		want    http.Header
	}{
		{
			name:    "one rule admitted",
			rules:   []Rule{perKey},
			results: []Result{{Allowed: true, Limit: perKey.Limit, Remaining: 59, ResetAfter: time.Second}},
			want: http.Header{
				"Ratelimit-Policy":      {`"per-key";q=60;w=60`},
				"Ratelimit":             {`"per-key";r=59;t=1`},
				"X-Ratelimit-Limit":     {"60"},
				"X-Ratelimit-Remaining": {"59"},
				"X-Ratelimit-Reset":     {"1"},
			},
		},
		{
			name:  "two rules, least remaining wins, reset rounded up",
			rules: []Rule{perKey, perIP},
			results: []Result{
				{Allowed: true, Limit: perKey.Limit, Remaining: 0, ResetAfter: 59500 * time.Millisecond},
				{Allowed: true, Limit: perIP.Limit, Remaining: 97, ResetAfter: 1800 * time.Millisecond},
			},
			want: http.Header{
				"Ratelimit-Policy":      {`"per-key";q=60;w=60, "per-ip";q=100;w=60`},
				"Ratelimit":             {`"per-key";r=0;t=60, "per-ip";r=97;t=2`},
				"X-Ratelimit-Limit":     {"60"},
				"X-Ratelimit-Remaining": {"0"},
				"X-Ratelimit-Reset":     {"60"},
			},
		},
		{
			name:  "rejection describes the rejecting rule",
			rules: []Rule{perKey, perIP},
			results: []Result{
				{Allowed: true, Limit: perKey.Limit, Remaining: 3, ResetAfter: 57 * time.Second},
				{Allowed: false, Limit: perIP.Limit, Remaining: 0, ResetAfter: 60 * time.Second, RetryAfter: 600 * time.Millisecond},
			},
			want: http.Header{
				"Ratelimit-Policy":      {`"per-key";q=60;w=60, "per-ip";q=100;w=60`},
				"Ratelimit":             {`"per-key";r=3;t=57, "per-ip";r=0;t=60`},
				"X-Ratelimit-Limit":     {"100"},
				"X-Ratelimit-Remaining": {"0"},
				"X-Ratelimit-Reset":     {"60"},
			},
		},
		{
			name:    "name escaped as sf-string",
			rules:   []Rule{{Name: `a"b\c` + "\n"}},
			results: []Result{{Allowed: true, Limit: Limit{Count: 5, Period: time.Hour}, Remaining: 4, ResetAfter: 12 * time.Minute}},
			want: http.Header{
				"Ratelimit-Policy":      {`"a\"b\\c?";q=5;w=3600`},
				"Ratelimit":             {`"a\"b\\c?";r=4;t=720`},
				"X-Ratelimit-Limit":     {"5"},
				"X-Ratelimit-Remaining": {"4"},
				"X-Ratelimit-Reset":     {"720"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			WriteHeaders(h, tt.rules, tt.results)
			if d := cmp.Diff(tt.want, h); d != "" {
				t.Fatalf("headers (-want +got):\n%s", d)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	if got := RetryAfter([]Result{{RetryAfter: time.Second}, {RetryAfter: 3 * time.Second}, {}}); got != 3*time.Second {
		t.Fatalf("RetryAfter = %v", got)
	}
}

func TestRuleValidate(t *testing.T) {
	ok := Rule{Name: "per-key_1.x", Key: KeyAPIKey, Limit: Limit{Count: 60, Period: time.Minute}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Rule{
		"empty name": {Key: KeyIP, Limit: ok.Limit},
		"bad name":   {Name: "a b", Key: KeyIP, Limit: ok.Limit},
		"long name":  {Name: string(make([]byte, 65)), Key: KeyIP, Limit: ok.Limit},
		"bad key":    {Name: "x", Key: "session", Limit: ok.Limit},
		"no limit":   {Name: "x", Key: KeyIP},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
