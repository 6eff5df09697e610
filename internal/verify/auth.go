package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// defaultKeys are the default API keys and secrets named by the checklists
// (rideshare P0.1, OptiBid §1) and the most common placeholder.
var defaultKeys = []string{
	"dev-api-key-change-in-production",
	"your-secret-key-here-change-in-production",
	"changeme",
}

// defaultJWTSecrets sign a token with each default secret: a server that
// accepts it still runs with the default SECRET_KEY / JWT_SECRET_KEY.
var defaultJWTSecrets = []string{
	"your-secret-key-here-change-in-production",
	"dev-api-key-change-in-production",
}

var (
	stackTraceRe  = regexp.MustCompile(`Traceback \(most recent call last\)|goroutine \d+ \[|panic: |\bat [\w$.]+\([\w]+\.java:\d+\)|Exception in thread|at [^\n]+ \([^\n]+\.js:\d+:\d+\)|File "[^"]+", line \d+|\n\s+at [\w.]+\.[\w<>]+\(`)
	versionLeakRe = regexp.MustCompile(`(?i)\b(nginx|apache|openresty|microsoft-iis|jetty|tomcat|uvicorn|gunicorn|werkzeug|express|php|python|node\.js|asp\.net|django|flask|fastapi|starlette|rails|laravel|spring|go)[/ ]v?\d+(\.\d+)+`)
	frameworkRe   = regexp.MustCompile(`(?i)\b(nginx|apache|openresty|microsoft-iis|jetty|tomcat|uvicorn|gunicorn|werkzeug|django|flask|laravel|symfony|whitelabel error page|powered by)\b`)
)

// leakIn describes what an error body leaks, or "".
func leakIn(body []byte) string {
	b := string(body)
	if m := stackTraceRe.FindString(b); m != "" {
		return fmt.Sprintf("stack trace (%q)", strings.TrimSpace(m))
	}
	if m := versionLeakRe.FindString(b); m != "" {
		return fmt.Sprintf("software version (%q)", m)
	}
	if m := frameworkRe.FindString(b); m != "" {
		return fmt.Sprintf("framework name (%q)", m)
	}
	return ""
}

// refusal classifies a status for a request that must be refused.
func refusal(status int) Status {
	switch {
	case status == http.StatusUnauthorized:
		return StatusPass
	case status >= 200 && status < 300, status >= 500:
		return StatusFail
	}
	return StatusWarn
}

func authChecks(ctx context.Context, r *runner) []Result {
	var out []Result
	var errBodies []*exchange
	keep := func(ex *exchange) {
		if ex.err == nil && ex.status >= 400 {
			errBodies = append(errBodies, ex)
		}
	}
	paths := r.opts.ProtectedPaths
	if len(paths) == 0 {
		out = r.skipAll("no protected paths given (--protected PATH or routes in the config)", defAuthNone, defAuthGarbage, defAuthDefault, defAuthQuery)
	} else {
		// AUTH-001
		s := r.session(defAuthNone)
		refusedPath := ""
		var worst Status = StatusPass
		var msgs []string
		for _, p := range paths {
			ex := s.get(ctx, p, false, nil)
			keep(ex)
			s.noteEx(ex, nil, 160, "WWW-Authenticate")
			st := StatusWarn
			if ex.err == nil {
				st = refusal(ex.status)
			}
			if st == StatusPass && refusedPath == "" {
				refusedPath = p
			}
			if st != StatusPass {
				msgs = append(msgs, fmt.Sprintf("%s answered %s", p, statusOrErr(ex)))
			}
			worst = worse(worst, st)
		}
		out = append(out, conclude(s, worst, msgs, fmt.Sprintf("all %d path(s) answered 401 without credentials", len(paths))))

		// AUTH-002
		s = r.session(defAuthGarbage)
		worst, msgs = StatusPass, nil
		garbage := randomLabel(r.opts.Rand) + "-not-a-key"
		for _, p := range paths {
			ex := s.get(ctx, p, false, map[string]string{"Authorization": "Bearer " + garbage, "X-API-Key": garbage})
			keep(ex)
			s.noteEx(ex, []string{"Authorization", "X-API-Key"}, 160)
			st := StatusWarn
			if ex.err == nil {
				st = refusal(ex.status)
			}
			if st != StatusPass {
				msgs = append(msgs, fmt.Sprintf("%s answered %s", p, statusOrErr(ex)))
			}
			worst = worse(worst, st)
		}
		out = append(out, conclude(s, worst, msgs, fmt.Sprintf("all %d path(s) answered 401 to garbage credentials", len(paths))))

		// AUTH-003
		s = r.session(defAuthDefault)
		if refusedPath == "" {
			out = append(out, s.warn("no protected path refused anonymous requests with 401, so accepting a default key would prove nothing"))
		} else {
			var accepted []string
			try := func(label string, hdr map[string]string) {
				ex := s.get(ctx, refusedPath, false, hdr)
				keep(ex)
				if ex.err == nil && ex.status >= 200 && ex.status < 300 {
					s.noteEx(ex, []string{"Authorization", "X-API-Key"}, 160)
					accepted = append(accepted, label)
				}
			}
			for _, k := range defaultKeys {
				try(fmt.Sprintf("%q in X-API-Key", k), map[string]string{"X-API-Key": k})
				try(fmt.Sprintf("%q as Bearer", k), map[string]string{"Authorization": "Bearer " + k})
			}
			now := r.opts.Now()
			for _, secret := range defaultJWTSecrets {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
					"sub": "admin", "type": "access", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
				}).SignedString([]byte(secret))
				if err != nil {
					continue
				}
				try(fmt.Sprintf("JWT signed with %q", secret), map[string]string{"Authorization": "Bearer " + tok})
			}
			if len(accepted) > 0 {
				out = append(out, s.fail("%s accepted %s", refusedPath, strings.Join(accepted, ", ")))
			} else {
				s.note(fmt.Sprintf("GET %s with %d default keys (X-API-Key and Bearer) and %d JWTs signed with default secrets",
					r.resolve(refusedPath), len(defaultKeys), len(defaultJWTSecrets)), "none answered 2xx")
				out = append(out, s.pass("%d default keys and %d default-secret JWTs refused", len(defaultKeys), len(defaultJWTSecrets)))
			}
		}

		// AUTH-004
		s = r.session(defAuthQuery)
		switch {
		case r.opts.Key == "":
			out = append(out, s.skip("no key given (--key-file): cannot test whether a valid key is accepted in the query string"))
		case !r.base.trustedOK:
			out = append(out, s.skip("the certificate is not trusted, so the key is withheld (use --ca-file, or --insecure for a self-signed target)"))
		case refusedPath == "":
			out = append(out, s.warn("no protected path refused anonymous requests, so a key in the query would prove nothing"))
		default:
			out = append(out, r.queryKey(ctx, s, refusedPath, keep))
		}
	}

	// AUTH-005
	s := r.session(defAuthLeak)
	ex := s.get(ctx, "/"+randomLabel(r.opts.Rand)+"-does-not-exist", false, nil)
	keep(ex)
	var leaks []string
	for _, e := range errBodies {
		if l := leakIn(e.body); l != "" {
			s.noteEx(e, nil, 300)
			leaks = append(leaks, fmt.Sprintf("%s %s: %s", e.method, r.redact(e.url), l))
		}
	}
	switch {
	case len(leaks) > 0:
		out = append(out, s.fail("%s", strings.Join(leaks, "; ")))
	case len(errBodies) == 0:
		s.noteEx(ex, nil, 160)
		out = append(out, s.warn("no error response was seen to inspect"))
	default:
		s.noteEx(ex, nil, 160)
		out = append(out, s.pass("%d error bodies leak no stack trace, framework or version", len(errBodies)))
	}
	return out
}

// queryKey checks the key works in the header, then that it is refused in
// the query string.
func (r *runner) queryKey(ctx context.Context, s *session, path string, keep func(*exchange)) Result {
	req, err := r.newRequest(ctx, http.MethodGet, r.resolve(path), nil)
	if err != nil {
		return s.warn("%v", err)
	}
	r.setKey(req.Header, r.opts.Key)
	ctl := s.do(req, true)
	s.noteEx(ctl, []string{"Authorization", "X-API-Key", r.opts.KeyHeader}, 0)
	if ctl.err != nil || ctl.status < 200 || ctl.status > 299 {
		return s.warn("the supplied key was not accepted in a header either (%s), so the query test proves nothing", statusOrErr(ctl))
	}
	k := r.opts.Key
	q := fmt.Sprintf("api_key=%[1]s&apikey=%[1]s&key=%[1]s&token=%[1]s&access_token=%[1]s&x-api-key=%[1]s", url.QueryEscape(k))
	u := r.resolve(path)
	if strings.Contains(u, "?") {
		u += "&" + q
	} else {
		u += "?" + q
	}
	ex := s.request(ctx, http.MethodGet, u, true, nil)
	keep(ex)
	s.noteEx(ex, nil, 0)
	if ex.err == nil && ex.status >= 200 && ex.status < 300 {
		return s.fail("a valid key in the query string was accepted (%d): it will be written to access logs and proxies", ex.status)
	}
	return s.pass("the key in the query string was refused (%s)", statusOrErr(ex))
}

func statusOrErr(ex *exchange) string {
	if ex.err != nil {
		return "error: " + ex.err.Error()
	}
	return fmt.Sprintf("%d", ex.status)
}

func worse(a, b Status) Status {
	rank := map[Status]int{StatusPass: 0, StatusSkip: 1, StatusWarn: 2, StatusFail: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func conclude(s *session, st Status, msgs []string, passMsg string) Result {
	if st == StatusPass {
		return s.pass("%s", passMsg)
	}
	return s.result(st, "%s", strings.Join(msgs, "; "))
}
