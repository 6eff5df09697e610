package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// Header names written by [WriteHeaders].
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderLimit      = "X-RateLimit-Limit"
	HeaderRemaining  = "X-RateLimit-Remaining"
	HeaderReset      = "X-RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// WriteHeaders sets the rate-limit response headers for the rules that were
// checked and their results (same order). Following
// draft-ietf-httpapi-ratelimit-headers (revisions 08 to 11, structured-field
// lists with one item per rule, named by the rule):
//
//	RateLimit-Policy: "per-key";q=60;w=60, "per-ip";q=100;w=60
//	RateLimit: "per-key";r=0;t=60, "per-ip";r=97;t=2
//
// q is the limit's Count and w its Period in seconds; r is the remaining
// quota (Result.Remaining, never above q, 0 after the last admitted request)
// and t the seconds, rounded up, until the quota is full again
// (Result.ResetAfter). The widespread X-RateLimit-Limit, X-RateLimit-Remaining
// and X-RateLimit-Reset (seconds until full, not a timestamp) describe the
// single most restrictive rule: on a rejection the rejecting rule with the
// longest wait, otherwise the rule with the least remaining quota (ties: the
// longest reset). Retry-After is set by the 429 response, not here.
func WriteHeaders(h http.Header, rules []Rule, results []Result) {
	if len(rules) == 0 {
		return
	}
	var pbuf, rbuf [128]byte
	p, r := pbuf[:0], rbuf[:0]
	for i := range rules {
		if i > 0 {
			p = append(p, ", "...)
			r = append(r, ", "...)
		}
		p = appendSFString(p, rules[i].Name)
		p = append(p, ";q="...)
		p = strconv.AppendInt(p, int64(results[i].Limit.Count), 10)
		p = append(p, ";w="...)
		p = strconv.AppendInt(p, int64(results[i].Limit.Period/time.Second), 10)
		r = appendSFString(r, rules[i].Name)
		r = append(r, ";r="...)
		r = strconv.AppendInt(r, int64(results[i].Remaining), 10)
		r = append(r, ";t="...)
		r = strconv.AppendInt(r, ceilSeconds(results[i].ResetAfter), 10)
	}
	h.Set(HeaderPolicy, string(p))
	h.Set(HeaderRateLimit, string(r))
	m := results[mostRestrictive(results[:len(rules)])]
	h.Set(HeaderLimit, strconv.Itoa(m.Limit.Count))
	h.Set(HeaderRemaining, strconv.Itoa(m.Remaining))
	h.Set(HeaderReset, strconv.FormatInt(ceilSeconds(m.ResetAfter), 10))
}

// mostRestrictive picks the result the X-RateLimit-* headers describe.
func mostRestrictive(rs []Result) int {
	best := 0
	for i := 1; i < len(rs); i++ {
		a, b := rs[i], rs[best]
		switch {
		case a.Allowed != b.Allowed:
			if !a.Allowed {
				best = i
			}
		case !a.Allowed:
			if a.RetryAfter > b.RetryAfter {
				best = i
			}
		case a.Remaining < b.Remaining || a.Remaining == b.Remaining && a.ResetAfter > b.ResetAfter:
			best = i
		}
	}
	return best
}

// RetryAfter is the wait before a rejected decision could pass: the longest
// RetryAfter among the results (time only adds quota and a rejection charges
// nothing, so after it every check admits the request).
func RetryAfter(results []Result) time.Duration {
	var d time.Duration
	for _, r := range results {
		d = max(d, r.RetryAfter)
	}
	return d
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendSFString appends s as an RFC 8941 sf-string: printable ASCII only,
// with '"' and '\' escaped; other bytes are replaced by '?'.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
