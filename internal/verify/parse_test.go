package verify

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHSTS(t *testing.T) {
	tests := []struct {
		in   string
		want hsts
	}{
		{"max-age=31536000; includeSubDomains", hsts{maxAge: 31536000, hasMaxAge: true, includeSubDomains: true}},
		{`max-age="63072000"; includesubdomains; preload`, hsts{maxAge: 63072000, hasMaxAge: true, includeSubDomains: true, preload: true}},
		{"MAX-AGE = 10", hsts{maxAge: 10, hasMaxAge: true}},
		{"max-age=-1", hsts{}},
		{"max-age=abc; includeSubDomains", hsts{includeSubDomains: true}},
		{"", hsts{}},
		{";;;", hsts{}},
	}
	for _, tt := range tests {
		if got := parseHSTS(tt.in); got != tt.want {
			t.Errorf("parseHSTS(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCSPProblems(t *testing.T) {
	tests := []struct {
		name         string
		policy       string
		strong, weak int
	}{
		{"api lockdown", "default-src 'none'; frame-ancestors 'none'", 0, 0},
		{"checklist example", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'", 1, 1},
		{"nonce neutralises unsafe-inline", "default-src 'self'; script-src 'nonce-abc' 'unsafe-inline'", 0, 0},
		{"eval", "default-src 'self'; script-src 'self' 'unsafe-eval'", 1, 0},
		{"wildcard", "default-src *", 2, 1},
		{"scheme source", "default-src 'self'; script-src https:", 1, 0},
		{"insecure host", "default-src 'self'; script-src http://cdn.example.com", 1, 0},
		{"wildcard host", "default-src 'self'; script-src *.example.com", 1, 0},
		{"no script restriction", "frame-ancestors 'none'", 2, 0},
		{"first directive wins", "default-src 'none'; default-src *", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			strong, weak := cspProblems(parseCSP(tt.policy))
			if len(strong) != tt.strong || len(weak) != tt.weak {
				t.Errorf("strong %q, weak %q; want %d, %d", strong, weak, tt.strong, tt.weak)
			}
		})
	}
}

func TestFrameAncestors(t *testing.T) {
	for policy, want := range map[string][2]bool{
		"frame-ancestors 'none'":                   {true, true},
		"frame-ancestors 'self'":                   {true, true},
		"frame-ancestors https://a.example":        {true, false},
		"frame-ancestors *":                        {true, false},
		"default-src 'none'":                       {false, false},
		"frame-ancestors 'self' https://a.example": {true, false},
	} {
		set, denied := frameAncestorsDenied(parseCSP(policy))
		if [2]bool{set, denied} != want {
			t.Errorf("%q: set=%v denied=%v, want %v", policy, set, denied, want)
		}
	}
}

func TestLastReferrerPolicy(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"no-referrer"}, "no-referrer"},
		{[]string{"unsafe-url, strict-origin-when-cross-origin"}, "strict-origin-when-cross-origin"},
		{[]string{"no-referrer", "bogus"}, "no-referrer"},
		{[]string{"no-referrer", "unsafe-url"}, "unsafe-url"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := lastReferrerPolicy(tt.in); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExposureMatchers(t *testing.T) {
	tests := []struct {
		name  string
		match func([]byte) string
		body  string
		hit   bool
	}{
		{"env", matchEnv, "DATABASE_URL=postgres://x\nDEBUG=1\n", true},
		{"env single secret", matchEnv, "export API_KEY=abc\n", true},
		{"env single harmless", matchEnv, "MODE=prod\n", false},
		{"env html soft 404", matchEnv, "<!DOCTYPE html><html><body>A=1\nB=2</body></html>", false},
		{"env json", matchEnv, `{"status":"ok"}`, false},
		{"openapi", matchOpenAPI, `{"openapi":"3.0.0","paths":{}}`, true},
		{"openapi without paths", matchOpenAPI, `{"openapi":"3.0.0"}`, false},
		{"swagger 2", matchOpenAPI, `{"swagger":"2.0","paths":{"/a":{}}}`, true},
		{"catch-all json", matchOpenAPI, `{"status":"ok"}`, false},
		{"expvar", matchExpvar, `{"cmdline":["x"],"memstats":{}}`, true},
		{"expvar lookalike", matchExpvar, `{"cmdline":["x"]}`, false},
		{"apache listing", matchListing, "<html><head><title>Index of /static</title>", true},
		{"python listing", matchListing, "<title>Directory listing for /</title>", true},
		{"go listing", matchListing, "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n<a href=\"a\">a</a>\n</pre>\n", true},
		{"ordinary page", matchListing, "<html><title>Index</title>", false},
		{"git config", gitPaths[0].match, "[core]\n\trepositoryformatversion = 0\n", true},
		{"git head", gitPaths[1].match, "ref: refs/heads/main\n", true},
		{"git head soft 404", gitPaths[1].match, "<html>not found</html>", false},
		{"metrics", metricsPaths[0].match, "# HELP x y\n# TYPE x counter\nx 1\n", true},
		{"metrics lookalike", metricsPaths[0].match, "# TYPE of thing\n", false},
		{"stub_status", statusPaths[1].match, "Active connections: 1\nserver accepts handled requests\n 1 1 1\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.match([]byte(tt.body)) != ""; got != tt.hit {
				t.Errorf("match = %v, want %v", got, tt.hit)
			}
		})
	}
}

func TestMatchEnvWithholdsValues(t *testing.T) {
	d := matchEnv([]byte("SECRET_KEY=hunter2\nDB_PASSWORD=swordfish\n"))
	if strings.Contains(d, "hunter2") || strings.Contains(d, "swordfish") || !strings.Contains(d, "SECRET_KEY") {
		t.Errorf("description %q", d)
	}
}

func TestLeakIn(t *testing.T) {
	tests := []struct {
		body string
		want string // substring of the description, "" for none
	}{
		{`{"error":"not found"}`, ""},
		{"Traceback (most recent call last):\n  File \"/app/x.py\", line 3", "stack trace"},
		{"goroutine 1 [running]:\nmain.main()", "stack trace"},
		{"panic: runtime error: index out of range", "stack trace"},
		{"java.lang.NullPointerException\n\tat com.example.Foo.bar(Foo.java:42)", "stack trace"},
		{"<center>nginx/1.22.1</center>", "software version"},
		{"<hr><center>nginx</center>", "framework name"},
		{"<h1>Whitelabel Error Page</h1>", "framework name"},
		{"Server error, ask ops", ""},
	}
	for _, tt := range tests {
		got := leakIn([]byte(tt.body))
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("leakIn(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestHostileOrigins(t *testing.T) {
	o := &Options{Target: "https://api.example.com/", AllowedOrigins: []string{"https://app.example.com", "http://legacy.example.com:8080"}}
	got := hostileOrigins(o, "rvx")
	want := []string{
		"https://rvx.example", "null",
		"https://api.example.com.rvx.example", "https://rvxapi.example.com", "https://rvx.api.example.com", "http://api.example.com",
		"https://app.example.com.rvx.example", "https://rvxapp.example.com", "https://rvx.app.example.com", "http://app.example.com",
		"http://legacy.example.com.rvx.example:8080", "http://rvxlegacy.example.com:8080", "http://rvx.legacy.example.com:8080",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
	if n := len(hostileOrigins(o, "another")); n != len(got) {
		t.Errorf("the count depends on the label: %d vs %d", n, len(got))
	}
}

func TestScoreAndGrade(t *testing.T) {
	res := func(id string, sev Severity, st Status) Result { return Result{ID: id, Severity: sev, Status: st} }
	tests := []struct {
		name  string
		in    []Result
		score int
		grade string
	}{
		{"empty", nil, 100, "A+"},
		{"bonuses", []Result{res("HDR-004", SeverityMedium, StatusPass), res("WS-003", SeverityHigh, StatusPass)}, 110, "A+"},
		{"bonus withheld under 90", []Result{res("HDR-004", SeverityMedium, StatusPass), res("X", SeverityHigh, StatusFail)}, 80, "B+"},
		{"warn is half", []Result{res("X", SeverityMedium, StatusWarn)}, 95, "A"},
		{"skip and manual are free", []Result{res("X", SeverityCritical, StatusSkip), res("Y", SeverityCritical, StatusManual)}, 100, "A+"},
		{"floor", []Result{res("A", SeverityCritical, StatusFail), res("B", SeverityCritical, StatusFail), res("C", SeverityCritical, StatusFail)}, 0, "F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, g := Score(tt.in)
			if s != tt.score || g != tt.grade {
				t.Errorf("Score = %d %s, want %d %s", s, g, tt.score, tt.grade)
			}
		})
	}
	for score, want := range map[int]string{100: "A+", 99: "A", 85: "A-", 84: "B+", 70: "B", 65: "B-", 60: "C+", 50: "C", 45: "C-", 40: "D+", 30: "D", 25: "D-", 24: "F"} {
		if g := Grade(score); g != want {
			t.Errorf("Grade(%d) = %s, want %s", score, g, want)
		}
	}
}

func TestSeverityRoundTrip(t *testing.T) {
	for s := SeverityInfo; s <= SeverityCritical; s++ {
		got, err := ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("unknown severity accepted")
	}
}

// serverHello builds a ServerHello record for readServerHello tests.
func serverHello(version, suite uint16, sid int) []byte {
	m := binary.BigEndian.AppendUint16(nil, version)
	m = append(m, make([]byte, 32)...)
	m = append(m, byte(sid))
	m = append(m, make([]byte, sid)...)
	m = binary.BigEndian.AppendUint16(m, suite)
	m = append(m, 0)
	hs := append([]byte{2, 0, byte(len(m) >> 8), byte(len(m))}, m...)
	return append([]byte{22, 3, 3, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func TestReadServerHello(t *testing.T) {
	full := serverHello(wireTLS12, 0xc02f, 32)
	split := append([]byte{22, 3, 3, 0, 10}, full[5:15]...)
	split = append(split, 22, 3, 3, byte((len(full)-15)>>8), byte(len(full)-15))
	split = append(split, full[15:]...)
	tests := []struct {
		name    string
		in      []byte
		version uint16
		suite   uint16
		alert   byte
		err     bool
	}{
		{"hello", full, wireTLS12, 0xc02f, 0, false},
		{"hello split over records", split, wireTLS12, 0xc02f, 0, false},
		{"alert", []byte{21, 3, 3, 0, 2, 2, 70}, 0, 0, 70, false},
		{"closed", nil, 0, 0, 0, true},
		{"truncated", full[:20], 0, 0, 0, true},
		{"not a hello", []byte{22, 3, 3, 0, 4, 11, 0, 0, 0}, 0, 0, 0, true},
		{"application data", []byte{23, 3, 3, 0, 1, 0}, 0, 0, 0, true},
		{"huge record", []byte{22, 3, 3, 0xff, 0xff}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readServerHello(bytes.NewReader(tt.in))
			if (got.err != nil) != tt.err || got.version != tt.version || got.suite != tt.suite || got.alert != tt.alert {
				t.Errorf("got %+v", got)
			}
		})
	}
}

// The ClientHello is well formed: lengths add up and the offered suites and
// SNI are where a server looks for them.
func TestClientHelloLayout(t *testing.T) {
	rec := clientHello(wireTLS11, []uint16{0xc013, 0x002f}, "api.example.com", make([]byte, 32))
	if rec[0] != 22 || int(binary.BigEndian.Uint16(rec[3:])) != len(rec)-5 {
		t.Fatalf("record header %x", rec[:5])
	}
	hs := rec[5:]
	if hs[0] != 1 || int(hs[1])<<16|int(hs[2])<<8|int(hs[3]) != len(hs)-4 {
		t.Fatalf("handshake header %x", hs[:4])
	}
	body := hs[4:]
	if binary.BigEndian.Uint16(body) != wireTLS11 {
		t.Errorf("client version %x", body[:2])
	}
	if n := binary.BigEndian.Uint16(body[35:]); n != 4 || binary.BigEndian.Uint16(body[37:]) != 0xc013 {
		t.Errorf("suites %x", body[35:41])
	}
	if !bytes.Contains(rec, []byte("api.example.com")) {
		t.Error("no SNI")
	}
	if bytes.Contains(clientHello(wireTLS12, []uint16{1}, "127.0.0.1", make([]byte, 32)), []byte("127.0.0.1")) {
		t.Error("SNI sent for an IP address")
	}
}

func FuzzParseCSP(f *testing.F) {
	for _, s := range []string{"default-src 'none'", "script-src 'nonce-x' 'unsafe-inline'; object-src *", ";;", "frame-ancestors"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := parseCSP(s)
		cspProblems(p)
		frameAncestorsDenied(p)
	})
}

func FuzzParseHSTS(f *testing.F) {
	for _, s := range []string{"max-age=31536000; includeSubDomains", `max-age="1"`, "max-age=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := parseHSTS(s)
		if h.hasMaxAge && h.maxAge < 0 {
			t.Errorf("negative max-age from %q", s)
		}
	})
}

func FuzzReadServerHello(f *testing.F) {
	f.Add(serverHello(wireTLS12, 0xc02f, 0))
	f.Add([]byte{21, 3, 3, 0, 2, 2, 40})
	f.Add([]byte{22, 3, 3, 0, 4, 2, 0, 0, 40})
	f.Fuzz(func(t *testing.T, b []byte) {
		readServerHello(bytes.NewReader(b))
	})
}

func FuzzLeakAndExposureMatchers(f *testing.F) {
	for _, s := range []string{"A=1\nB=2", `{"openapi":"3","paths":{}}`, "goroutine 1 [running]", "<title>Index of /"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		leakIn(b)
		matchEnv(b)
		matchOpenAPI(b)
		matchExpvar(b)
		matchListing(b)
	})
}
