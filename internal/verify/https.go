package verify

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// hsts is a parsed Strict-Transport-Security header.
type hsts struct {
	maxAge            int64
	hasMaxAge         bool
	includeSubDomains bool
	preload           bool
}

// parseHSTS parses the first Strict-Transport-Security value (browsers use
// the first). Unknown directives are ignored; a malformed max-age leaves
// hasMaxAge false.
func parseHSTS(v string) hsts {
	var h hsts
	for part := range strings.SplitSeq(v, ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "max-age":
			val = strings.Trim(strings.TrimSpace(val), `"`)
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				h.maxAge, h.hasMaxAge = n, true
			}
		case "includesubdomains":
			h.includeSubDomains = true
		case "preload":
			h.preload = true
		}
	}
	return h
}

const oneYear = 31536000

func httpsChecks(_ context.Context, r *runner) []Result {
	var out []Result
	base := r.base.https

	// HTTPS-001: redirect.
	s := r.session(defRedirect)
	switch ex := r.base.http; {
	case r.base.httpURL == "":
		out = append(out, s.skip("no plain-HTTP address known for a target on a non-default port; give it with --http-url"))
	case ex.err != nil:
		s.noteEx(ex, nil, 0)
		if errors.Is(ex.err, syscall.ECONNREFUSED) {
			out = append(out, s.warn("nothing answers on %s: users who type the bare host get an error instead of a redirect to HTTPS", r.base.httpURL))
		} else {
			out = append(out, s.warn("request to %s failed: %v", r.base.httpURL, ex.err))
		}
	default:
		s.noteEx(ex, nil, 0, "Location")
		loc := ex.header.Get("Location")
		lu, err := url.Parse(loc)
		switch {
		case ex.status < 300 || ex.status > 399 || loc == "":
			out = append(out, s.fail("plain HTTP answered %d instead of redirecting to https://", ex.status))
		case err != nil || lu.Scheme != "https":
			out = append(out, s.fail("the first redirect goes to %q, not to https://", loc))
		case !strings.EqualFold(lu.Hostname(), r.target.Hostname()):
			out = append(out, s.fail("the first redirect changes host to %s; HSTS for %s is then never set", lu.Hostname(), r.target.Hostname()))
		case ex.status == 302 || ex.status == 303 || ex.status == 307:
			out = append(out, s.pass("redirects with %d to %s (301 or 308 lets clients cache it)", ex.status, loc))
		default:
			out = append(out, s.pass("redirects with %d to %s", ex.status, loc))
		}
	}

	// HTTPS-002 and -003: HSTS on the HTTPS answer.
	s = r.session(defHSTS)
	sub := r.session(defHSTSSub)
	if r.target.Scheme != "https" {
		out = append(out, s.fail("the target is plain HTTP, so HSTS cannot apply"), sub.skip("the target is plain HTTP"))
	} else {
		s.noteEx(base, nil, 0, "Strict-Transport-Security")
		sub.noteEx(base, nil, 0, "Strict-Transport-Security")
		raw := base.header.Get("Strict-Transport-Security")
		h := parseHSTS(raw)
		switch {
		case raw == "":
			out = append(out, s.fail("no Strict-Transport-Security header"), sub.skip("no Strict-Transport-Security header (see HTTPS-002)"))
		case !h.hasMaxAge:
			out = append(out, s.fail("Strict-Transport-Security has no valid max-age: %q", raw))
		case h.maxAge < oneYear:
			out = append(out, s.fail("max-age=%d is under one year (31536000)", h.maxAge))
		default:
			out = append(out, s.pass("max-age=%d", h.maxAge))
		}
		if raw != "" {
			if h.includeSubDomains {
				out = append(out, sub.pass("includeSubDomains is set"))
			} else {
				out = append(out, sub.fail("includeSubDomains is missing: %q", raw))
			}
		}
	}

	// HTTPS-004: no HSTS over plain HTTP.
	s = r.session(defHSTSPlain)
	plain := r.base.http
	if r.target.Scheme == "http" {
		plain = base
	}
	switch {
	case plain == nil:
		out = append(out, s.skip("no plain-HTTP answer to inspect"))
	case plain.err != nil:
		out = append(out, s.skip("no plain-HTTP answer to inspect (%v)", plain.err))
	default:
		s.noteEx(plain, nil, 0, "Strict-Transport-Security")
		if v := plain.header.Get("Strict-Transport-Security"); v != "" {
			out = append(out, s.fail("plain HTTP sends Strict-Transport-Security: %s", v))
		} else {
			out = append(out, s.pass("no Strict-Transport-Security over plain HTTP"))
		}
	}
	return out
}
