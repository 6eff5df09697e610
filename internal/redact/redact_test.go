package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestQuery(t *testing.T) {
	cases := map[string]string{
		"":                                "",
		"a=1&b=2":                         "a=1&b=2",
		"api_key=rk_live_x&page=2":        "api_key=REDACTED&page=2",
		"API_KEY=x":                       "API_KEY=REDACTED",
		"ticket=abc&token=def&password=p": "ticket=REDACTED&token=REDACTED&password=REDACTED",
		"api%5Fkey=x":                     "api%5Fkey=REDACTED",
		"bad%zz=1":                        "REDACTED",
		"key":                             "key",
		"q=1&x=rk_live_abc_def":           "q=1&x=REDACTED",
		"x=rk%5Ftest%5Fabc":               "x=REDACTED",
		"rk_live_abc_def&a=1":             "REDACTED&a=1",
		"rk_live_abc=1":                   "REDACTED",
	}
	for in, want := range cases {
		if got := Query(in); got != want {
			t.Errorf("Query(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestError(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "http://u:p@up/x?access_token=s3cret&a=1", Err: errors.New("connection refused")}
	got := Error(err)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "u:p") || !strings.Contains(got, "connection refused") {
		t.Errorf("Error = %q", got)
	}
}

func FuzzQuery(f *testing.F) {
	f.Add("api_key=secretvalue&x=1")
	f.Fuzz(func(t *testing.T, q string) {
		out := Query(q)
		vals, err := url.ParseQuery(out)
		if err != nil {
			return
		}
		for k, vs := range vals {
			if IsCredentialParam(k) {
				for _, v := range vs {
					if v != Mask && v != "" {
						t.Fatalf("Query(%q) left %s=%q", q, k, v)
					}
				}
			}
		}
	})
}
