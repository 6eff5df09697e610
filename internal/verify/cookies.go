package verify

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// sessionCookieRe recognises cookies that carry a session or credential.
var sessionCookieRe = regexp.MustCompile(`(?i)sess|sid|auth|token|jwt|login|remember|csrf|xsrf|refresh|access`)

// seenCookie is one Set-Cookie, described without its value.
type seenCookie struct {
	c    *http.Cookie
	from string
	desc string
}

func describeCookie(c *http.Cookie) string {
	parts := []string{c.Name + "=<value>"}
	if c.Path != "" {
		parts = append(parts, "Path="+c.Path)
	}
	if c.Domain != "" {
		parts = append(parts, "Domain="+c.Domain)
	}
	if c.Secure {
		parts = append(parts, "Secure")
	}
	if c.HttpOnly {
		parts = append(parts, "HttpOnly")
	}
	switch c.SameSite {
	case http.SameSiteLaxMode:
		parts = append(parts, "SameSite=Lax")
	case http.SameSiteStrictMode:
		parts = append(parts, "SameSite=Strict")
	case http.SameSiteNoneMode:
		parts = append(parts, "SameSite=None")
	}
	return strings.Join(parts, "; ")
}

func collectCookies(ex *exchange, from string, into []seenCookie) []seenCookie {
	if ex.err != nil {
		return into
	}
	for _, line := range ex.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		into = append(into, seenCookie{c: c, from: from, desc: describeCookie(c)})
	}
	return into
}

func cookieChecks(ctx context.Context, r *runner) []Result {
	s := r.session(defCookieSecure)
	cookies := collectCookies(r.base.https, "GET "+r.target.String(), nil)
	for _, p := range r.opts.CookiePaths {
		ex := s.get(ctx, p, false, nil)
		cookies = collectCookies(ex, "GET "+r.resolve(p), cookies)
	}
	httpOnly, sameSite, host := r.session(defCookieHTTPOnly), r.session(defCookieSameSite), r.session(defCookieHost)
	if len(cookies) == 0 {
		reason := "no cookies were set by the target"
		if len(r.opts.CookiePaths) == 0 {
			reason += " (name pages that set cookies with --cookie-path)"
		}
		return []Result{s.skip("%s", reason), httpOnly.skip("%s", reason), sameSite.skip("%s", reason), host.skip("%s", reason)}
	}
	var sessions []seenCookie
	for _, c := range cookies {
		if sessionCookieRe.MatchString(c.c.Name) {
			sessions = append(sessions, c)
		}
	}
	judge := func(s *session, list []seenCookie, ok func(*http.Cookie) bool, what string, empty string) Result {
		if len(list) == 0 {
			return s.skip("%s", empty)
		}
		var bad []string
		for _, c := range list {
			s.note(c.from, "Set-Cookie: "+c.desc)
			if !ok(c.c) {
				bad = append(bad, c.c.Name)
			}
		}
		if len(bad) > 0 {
			return s.fail("%s: %s", what, strings.Join(bad, ", "))
		}
		return s.pass("all %d cookie(s) pass", len(list))
	}
	noSession := "no session cookie seen (names with sess, sid, auth, token, jwt…)"
	return []Result{
		judge(s, cookies, func(c *http.Cookie) bool { return c.Secure }, "cookies without Secure", ""),
		judge(httpOnly, sessions, func(c *http.Cookie) bool { return c.HttpOnly }, "session cookies readable by scripts (no HttpOnly)", noSession),
		judge(sameSite, cookies, func(c *http.Cookie) bool {
			return c.SameSite == http.SameSiteLaxMode || c.SameSite == http.SameSiteStrictMode ||
				(c.SameSite == http.SameSiteNoneMode && c.Secure)
		}, "cookies without a SameSite attribute (or None without Secure)", ""),
		judge(host, sessions, func(c *http.Cookie) bool {
			return strings.HasPrefix(c.Name, "__Host-") && c.Secure && c.Path == "/" && c.Domain == ""
		}, fmt.Sprintf("session cookies without a valid %s prefix", "__Host-"), noSession),
	}
}
