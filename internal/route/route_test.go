package route

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func testTable(t *testing.T) *Table {
	t.Helper()
	tb, err := NewTable([]Spec{
		{Name: "public", Pattern: "/*"},
		{Name: "simulation", Pattern: "/simulation/*", Auth: AuthAPIKey, Permission: PermWrite},
		{Name: "status", Pattern: "/simulation/status", Methods: []string{"GET"}},
		{Name: "agents-read", Pattern: "/agents", Methods: []string{"GET"}},
		{Name: "agents-write", Pattern: "/agents", Methods: []string{"POST"}, Auth: AuthAPIKey},
		{Name: "admin", Pattern: "/admin/*", Auth: AuthAPIKey, Permission: PermAdmin},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// match runs a raw request URI through Normalize and Match as the gateway does.
func match(t *testing.T, tb *Table, method, requestURI string) (string, error) {
	t.Helper()
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return "", err
	}
	p, err := Normalize(u.EscapedPath(), u.Path)
	if err != nil {
		return "", err
	}
	r, mismatch := tb.Match(method, p)
	switch {
	case r != nil:
		return r.Name, nil
	case mismatch:
		return "405", nil
	}
	return "404", nil
}

func TestMatch(t *testing.T) {
	tb := testTable(t)
	cases := []struct {
		name, method, uri, want string
	}{
		{"exact beats prefix", "GET", "/simulation/status", "status"},
		{"prefix", "POST", "/simulation/start", "simulation"},
		{"prefix root itself", "GET", "/simulation", "simulation"},
		{"method falls to prefix", "POST", "/simulation/status", "simulation"},
		{"double slash", "POST", "//simulation//start", "simulation"},
		{"dot dot", "POST", "/x/../simulation/start", "simulation"},
		{"dot segment", "POST", "/./simulation/./start", "simulation"},
		{"encoded dot dot", "POST", "/x/%2e%2e/simulation/start", "simulation"},
		{"upper case", "POST", "/SIMULATION/start", "simulation"},
		{"mixed case admin", "GET", "/AdMiN/users", "admin"},
		{"escape to admin", "GET", "/public/../admin/users", "admin"},
		{"encoded letters", "GET", "/%61dmin/users", "admin"},
		{"trailing slash", "GET", "/agents/", "agents-read"},
		{"head follows get", "HEAD", "/agents", "agents-read"},
		{"method routes", "POST", "/agents", "agents-write"},
		{"prefix needs boundary", "GET", "/simulationx", "public"},
		{"catch all", "GET", "/anything", "public"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := match(t, tb, c.method, c.uri)
			if err != nil {
				t.Fatalf("match %s %s: %v", c.method, c.uri, err)
			}
			if got != c.want {
				t.Errorf("match %s %s = %s, want %s", c.method, c.uri, got, c.want)
			}
		})
	}
}

func TestMatchMethodNotAllowed(t *testing.T) {
	tb, err := NewTable([]Spec{{Name: "agents", Pattern: "/agents", Methods: []string{"GET"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, mismatch := tb.Match("DELETE", "/agents"); r != nil || !mismatch {
		t.Errorf("DELETE /agents = %v, %v; want nil, true", r, mismatch)
	}
	if r, mismatch := tb.Match("GET", "/other"); r != nil || mismatch {
		t.Errorf("GET /other = %v, %v; want nil, false", r, mismatch)
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, uri := range []string{
		"/simulation%2fstart",
		"/simulation%2Fstart",
		"/admin%5cusers",
		"/a%00b",
		"/a%0ab",
		"/x/%252e%252e/admin",
		"/x%252fadmin",
	} {
		t.Run(uri, func(t *testing.T) {
			_, err := match(t, testTable(t), "GET", uri)
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Errorf("match %s: err = %v, want ErrAmbiguousPath", uri, err)
			}
		})
	}
	if _, err := Normalize("/a\\b", "/a\\b"); !errors.Is(err, ErrAmbiguousPath) {
		t.Errorf("backslash: err = %v", err)
	}
	if _, err := Normalize("*", "*"); !errors.Is(err, ErrAmbiguousPath) {
		t.Errorf("asterisk form: err = %v", err)
	}
}

func TestNewTableErrors(t *testing.T) {
	_, err := NewTable([]Spec{
		{Name: "a", Pattern: "relative"},
		{Name: "b", Pattern: "/x/../y"},
		{Name: "c", Pattern: "/x/*/y"},
		{Name: "d", Pattern: "/ok", Auth: "magic"},
		{Name: "e", Pattern: "/ok", Permission: PermRead},
		{Name: "f", Pattern: "/ok", Methods: []string{"G T"}},
		{Name: "g", Pattern: "/ok"},
		{Name: "g", Pattern: "/ok2"},
		{Pattern: "/noname"},
	})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "duplicate route name", "routes[8]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "//a//b/", "/a/../b", "/%2e%2e/x", "/a%2fb", "/a%252fb", "/%61", "/a\\b", "/a/./b/"} {
		f.Add(s)
	}
	tb, err := NewTable([]Spec{{Name: "a", Pattern: "/admin/*"}, {Name: "s", Pattern: "/s"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		p, err := Normalize(u.EscapedPath(), u.Path)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "/../") ||
			strings.Contains(p, "/./") || strings.HasSuffix(p, "/..") || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("Normalize(%q) = %q is not normal", raw, p)
		}
		again, err := Normalize(p, p)
		if err != nil && !errors.Is(err, ErrAmbiguousPath) {
			t.Fatalf("renormalize %q: %v", p, err)
		}
		if err == nil && again != p {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q", raw, p, again)
		}
		// A path the matcher sends to /admin/* must look like /admin to a
		// case-insensitive upstream, and vice versa.
		r, _ := tb.Match("GET", p)
		lower := strings.ToLower(p)
		underAdmin := lower == "/admin" || lower == "/admin/" || strings.HasPrefix(lower, "/admin/")
		if underAdmin != (r != nil && r.Name == "a") {
			t.Fatalf("path %q (from %q) matched %v", p, raw, r)
		}
	})
}
