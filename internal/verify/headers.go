package verify

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// cspPolicy is one parsed Content-Security-Policy: directive name
// (lowercase) to its source list. The first occurrence of a directive wins,
// as in browsers.
type cspPolicy map[string][]string

// parseCSP parses one policy. It never fails: unparsable parts are ignored
// the way browsers ignore them.
func parseCSP(v string) cspPolicy {
	p := cspPolicy{}
	for part := range strings.SplitSeq(v, ";") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			continue
		}
		name := strings.ToLower(fields[0])
		if _, dup := p[name]; dup {
			continue
		}
		p[name] = fields[1:]
	}
	return p
}

// effective returns the source list that governs directive, falling back
// to default-src, and whether any was set.
func (p cspPolicy) effective(directive string) ([]string, bool) {
	if v, ok := p[directive]; ok {
		return v, true
	}
	v, ok := p["default-src"]
	return v, ok
}

// cspProblems lists what makes a policy unsafe: strong problems (scripts or
// plugins can run from anywhere) and weak ones (inline styles).
func cspProblems(p cspPolicy) (strong, weak []string) {
	script, ok := p.effective("script-src")
	if !ok {
		strong = append(strong, "no script-src or default-src: scripts may load from anywhere")
	} else {
		strong = append(strong, sourceProblems("script-src", script, true)...)
	}
	if obj, ok := p.effective("object-src"); !ok {
		strong = append(strong, "no object-src or default-src: plugins may load from anywhere")
	} else {
		strong = append(strong, sourceProblems("object-src", obj, false)...)
	}
	if style, ok := p.effective("style-src"); ok {
		weak = append(weak, sourceProblems("style-src", style, true)...)
	}
	return strong, weak
}

// sourceProblems flags unsafe keywords, wildcards and insecure schemes.
func sourceProblems(directive string, sources []string, inline bool) []string {
	var out []string
	lower := make([]string, len(sources))
	for i, s := range sources {
		lower[i] = strings.ToLower(s)
	}
	hasNonceOrHash := slices.ContainsFunc(lower, func(s string) bool {
		return strings.HasPrefix(s, "'nonce-") || strings.HasPrefix(s, "'sha256-") ||
			strings.HasPrefix(s, "'sha384-") || strings.HasPrefix(s, "'sha512-")
	})
	for _, s := range lower {
		switch {
		case s == "'unsafe-inline'" && inline && !hasNonceOrHash:
			out = append(out, directive+" allows 'unsafe-inline'")
		case s == "'unsafe-eval'":
			out = append(out, directive+" allows 'unsafe-eval'")
		case s == "*":
			out = append(out, directive+" allows any host (*)")
		case s == "http:" || s == "https:" || s == "data:" || s == "blob:":
			out = append(out, directive+" allows the whole "+s+" scheme")
		case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "ws://"):
			out = append(out, directive+" allows an insecure source "+s)
		case strings.HasPrefix(s, "*.") || strings.Contains(s, "://*."):
			out = append(out, directive+" allows a wildcard host "+s)
		}
	}
	return out
}

// frameAncestorsDenied reports whether the policy forbids framing by other
// sites.
func frameAncestorsDenied(p cspPolicy) (set, denied bool) {
	fa, ok := p["frame-ancestors"]
	if !ok {
		return false, false
	}
	for _, s := range fa {
		s = strings.ToLower(s)
		if s != "'none'" && s != "'self'" {
			return true, false
		}
	}
	return true, true
}

var versionRe = regexp.MustCompile(`\d+\.\d+`)

func headerChecks(_ context.Context, r *runner) []Result {
	ex := r.base.https
	h := ex.header
	var out []Result

	s := r.session(defNoSniff)
	s.noteEx(ex, nil, 0, "X-Content-Type-Options")
	switch v := h.Get("X-Content-Type-Options"); {
	case strings.EqualFold(strings.TrimSpace(v), "nosniff"):
		out = append(out, s.pass("nosniff"))
	case v == "":
		out = append(out, s.fail("X-Content-Type-Options is missing"))
	default:
		out = append(out, s.fail("X-Content-Type-Options is %q, not nosniff", v))
	}

	var policies []cspPolicy
	for _, v := range h.Values("Content-Security-Policy") {
		policies = append(policies, parseCSP(v))
	}

	s = r.session(defFraming)
	s.noteEx(ex, nil, 0, "X-Frame-Options", "Content-Security-Policy")
	faDenied := false
	for _, p := range policies {
		if set, denied := frameAncestorsDenied(p); set && denied {
			faDenied = true
		}
	}
	xfo := strings.ToUpper(strings.TrimSpace(h.Get("X-Frame-Options")))
	switch {
	case faDenied:
		out = append(out, s.pass("CSP frame-ancestors forbids framing"))
	case xfo == "DENY" || xfo == "SAMEORIGIN":
		out = append(out, s.pass("X-Frame-Options: %s", xfo))
	case xfo != "":
		out = append(out, s.fail("X-Frame-Options %q does not forbid framing (use DENY)", xfo))
	default:
		out = append(out, s.fail("neither X-Frame-Options nor CSP frame-ancestors forbid framing: clickjacking is possible"))
	}

	s = r.session(defCSP)
	safe := r.session(defCSPSafe)
	s.noteEx(ex, nil, 0, "Content-Security-Policy")
	if len(policies) == 0 {
		msg := "no Content-Security-Policy"
		if h.Get("Content-Security-Policy-Report-Only") != "" {
			msg += " (only Report-Only, which enforces nothing)"
		}
		out = append(out, s.fail("%s", msg), safe.skip("no Content-Security-Policy to analyse (see HDR-003)"))
	} else {
		out = append(out, s.pass("%d polic(y/ies) set", len(policies)))
		safe.noteEx(ex, nil, 0, "Content-Security-Policy")
		// With several policies a source must pass all of them, so the
		// policy is safe when any one of them is.
		var strong, weak []string
		anySafe := false
		for _, p := range policies {
			st, wk := cspProblems(p)
			if len(st) == 0 {
				anySafe = true
			}
			strong = append(strong, st...)
			weak = append(weak, wk...)
		}
		switch {
		case !anySafe:
			out = append(out, safe.fail("%s", strings.Join(strong, "; ")))
		case len(weak) > 0:
			out = append(out, safe.warn("%s", strings.Join(weak, "; ")))
		default:
			out = append(out, safe.pass("no unsafe keywords, wildcards or insecure schemes for scripts, plugins and styles"))
		}
	}

	s = r.session(defReferrer)
	s.noteEx(ex, nil, 0, "Referrer-Policy")
	rp := lastReferrerPolicy(h.Values("Referrer-Policy"))
	switch rp {
	case "no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin":
		out = append(out, s.pass("%s", rp))
	case "origin", "origin-when-cross-origin":
		out = append(out, s.warn("%s sends the origin even from HTTPS to HTTP", rp))
	case "unsafe-url", "no-referrer-when-downgrade":
		out = append(out, s.fail("%s leaks full URLs (paths, query strings) to other sites", rp))
	default:
		out = append(out, s.fail("no valid Referrer-Policy"))
	}

	s = r.session(defPermissions)
	s.noteEx(ex, nil, 0, "Permissions-Policy")
	if v := strings.TrimSpace(h.Get("Permissions-Policy")); v != "" {
		out = append(out, s.pass("%s", v))
	} else {
		out = append(out, s.fail("no Permissions-Policy"))
	}

	s = r.session(defCORP)
	s.noteEx(ex, nil, 0, "Cross-Origin-Resource-Policy")
	switch v := strings.ToLower(strings.TrimSpace(h.Get("Cross-Origin-Resource-Policy"))); v {
	case "same-origin", "same-site":
		out = append(out, s.pass("%s", v))
	case "cross-origin":
		out = append(out, s.warn("cross-origin lets any site embed the responses"))
	case "":
		out = append(out, s.fail("no Cross-Origin-Resource-Policy"))
	default:
		out = append(out, s.fail("invalid Cross-Origin-Resource-Policy %q", v))
	}

	s = r.session(defBanner)
	banners := []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Generator", "X-Runtime-Version", "X-Version"}
	s.noteEx(ex, nil, 0, banners...)
	var leaks []string
	for _, name := range banners {
		v := h.Get(name)
		if v == "" {
			continue
		}
		if name == "Server" && !versionRe.MatchString(v) {
			continue
		}
		leaks = append(leaks, fmt.Sprintf("%s: %s", name, v))
	}
	if len(leaks) > 0 {
		out = append(out, s.fail("%s", strings.Join(leaks, "; ")))
	} else {
		out = append(out, s.pass("no version or framework banners"))
	}
	return out
}

// lastReferrerPolicy returns the last recognised token, as browsers do.
func lastReferrerPolicy(values []string) string {
	known := []string{"no-referrer", "no-referrer-when-downgrade", "same-origin", "origin",
		"strict-origin", "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"}
	last := ""
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.ToLower(strings.TrimSpace(tok))
			if slices.Contains(known, tok) {
				last = tok
			}
		}
	}
	return last
}
