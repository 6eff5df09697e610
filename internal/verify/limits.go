package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

var rateHeaders = []string{"RateLimit-Policy", "RateLimit", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
	"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"}

func hasRateHeaders(h http.Header) bool {
	for _, n := range rateHeaders[:8] {
		if h.Get(n) != "" {
			return true
		}
	}
	return false
}

func validRetryAfter(v string) bool {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return n >= 0
	}
	_, err := http.ParseTime(v)
	return err == nil
}

func rateLimitChecks(ctx context.Context, r *runner) []Result {
	rl := r.opts.RateLimit
	if rl.Limit <= 0 || rl.Path == "" {
		return r.skipAll("no rate limit known: give --rate-limit-path and --rate-limit (or a route limit in the config)", defRateLimit, defRetryAfter, defRateHeaders)
	}
	s := r.session(defRateLimit)
	keyed := r.opts.Key != "" && r.base.trustedOK
	n := s.max
	var (
		limited  *exchange
		withHdr  *exchange
		refused  int
		sent     int
		firstHit int
	)
	for i := range n {
		req, err := r.newRequest(ctx, http.MethodGet, r.resolve(rl.Path), nil)
		if err != nil {
			return []Result{s.warn("%v", err)}
		}
		if keyed {
			r.setKey(req.Header, r.opts.Key)
		}
		ex := s.do(req, keyed)
		sent++
		if ex.err != nil {
			s.noteEx(ex, nil, 0)
			res := s.warn("request %d failed: %v", i+1, ex.err)
			return []Result{res, r.session(defRetryAfter).skip("no 429 seen"), r.session(defRateHeaders).skip("no answer to inspect")}
		}
		if withHdr == nil && hasRateHeaders(ex.header) {
			withHdr = ex
		}
		if ex.status == http.StatusUnauthorized || ex.status == http.StatusForbidden {
			refused++
		}
		if ex.status == http.StatusTooManyRequests {
			limited, firstHit = ex, i+1
			break
		}
		if i == 0 {
			s.noteEx(ex, nil, 0, rateHeaders...)
		}
	}
	var out []Result
	switch {
	case limited != nil:
		s.noteEx(limited, nil, 120, rateHeaders...)
		out = append(out, s.pass("429 after %d request(s) (limit %d)", firstHit, rl.Limit))
	case refused == sent:
		out = append(out, s.warn("all %d requests were refused with 401/403; a limiter that does not count refused requests is never reached (give --key-file)", sent))
	case sent < rl.Limit+1:
		out = append(out, s.warn("no 429 in %d requests, but limit+1 = %d exceeds --max-requests", sent, rl.Limit+1))
	default:
		out = append(out, s.fail("no 429 after %d requests to %s with a limit of %d", sent, rl.Path, rl.Limit))
	}

	ra := r.session(defRetryAfter)
	if limited == nil {
		out = append(out, ra.skip("no 429 seen (see RL-001)"))
	} else {
		ra.noteEx(limited, nil, 0, "Retry-After")
		if v := limited.header.Get("Retry-After"); validRetryAfter(v) {
			out = append(out, ra.pass("Retry-After: %s", v))
		} else {
			out = append(out, ra.fail("the 429 has no valid Retry-After (%q)", v))
		}
	}

	rh := r.session(defRateHeaders)
	switch {
	case limited != nil && hasRateHeaders(limited.header):
		rh.noteEx(limited, nil, 0, rateHeaders[:8]...)
		out = append(out, rh.pass("rate-limit headers on the 429"))
	case withHdr != nil:
		rh.noteEx(withHdr, nil, 0, rateHeaders[:8]...)
		out = append(out, rh.pass("rate-limit headers sent"))
	default:
		out = append(out, rh.fail("no RateLimit-Policy/RateLimit or X-RateLimit-* headers in %d answers", sent))
	}
	return out
}

// fillReader yields n bytes of 'a'.
type fillReader struct{ n int64 }

func (f *fillReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 'a'
	}
	f.n -= int64(len(p))
	return len(p), nil
}

func limitChecks(ctx context.Context, r *runner) []Result {
	var out []Result
	target := r.target.String()

	s := r.session(defBodyLimit)
	size := int64(r.opts.BodyProbeBytes)
	req, err := r.newRequest(ctx, http.MethodPost, target, &fillReader{n: size})
	if err != nil {
		out = append(out, s.warn("%v", err))
	} else {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		ex := s.do(req, false)
		s.note(fmt.Sprintf("POST %s with a %d-byte body (Content-Length: %d)", target, size, size), ex.answer(0))
		switch {
		case ex.err != nil:
			out = append(out, s.warn("no answer to a %d-byte body: %v", size, ex.err))
		case ex.status == http.StatusRequestEntityTooLarge:
			out = append(out, s.pass("413 for a %d-byte body", size))
		case ex.status >= 200 && ex.status < 300, ex.status >= 500:
			out = append(out, s.fail("a %d-byte body got %d instead of 413", size, ex.status))
		default:
			out = append(out, s.warn("a %d-byte body got %d, not 413: the size limit was not shown", size, ex.status))
		}
	}

	s = r.session(defHeaderLimit)
	n := r.opts.HeaderProbeBytes
	ex := s.get(ctx, r.target.RequestURI(), false, map[string]string{"X-Rampart-Probe": strings.Repeat("a", n)})
	s.note(fmt.Sprintf("GET %s with a %d-byte X-Rampart-Probe header", target, n), ex.answer(0))
	switch {
	case ex.err != nil:
		out = append(out, s.warn("no answer to a %d-byte header: %v", n, ex.err))
	case ex.status == http.StatusRequestHeaderFieldsTooLarge:
		out = append(out, s.pass("431 for a %d-byte header", n))
	case ex.status >= 200 && ex.status < 300, ex.status >= 500:
		out = append(out, s.fail("a %d-byte header got %d instead of 431", n, ex.status))
	default:
		out = append(out, s.warn("a %d-byte header was refused with %d instead of 431", n, ex.status))
	}
	return out
}
