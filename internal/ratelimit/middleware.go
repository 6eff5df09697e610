package ratelimit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Outcomes set on reqinfo.Info by the middleware.
const (
	OutcomeRateLimited = "rate_limited"
	OutcomeUnavailable = "rate_limit_unavailable"
)

// Options configures the middleware built by [New].
type Options struct {
	// Limiter decides; required. Usually a [Fallback] around the Redis
	// limiter, or a [Memory].
	Limiter Limiter
	// Rules returns the rules that apply to a request; required. It runs
	// after the route is matched (reqinfo.Info.Route is set) and, for the
	// instance after authentication, once the principal is known. Returning
	// nil leaves the request unlimited. See [PreAuthRules] for the instance
	// that runs before authentication.
	Rules func(*http.Request) []Rule
	// OnReject, if set, is called for every rejected request with the rule
	// the response headers describe (for metrics and audit). It must not
	// write to the response.
	OnReject func(r *http.Request, rule Rule, res Result)
	// Logger receives limiter errors other than store unavailability
	// (which [Fallback] reports once per switch); default discards.
	Logger *slog.Logger
}

type middleware struct {
	lim      Limiter
	rules    func(*http.Request) []Rule
	onReject func(*http.Request, Rule, Result)
	log      *slog.Logger
}

// applied is what earlier instances of the middleware decided for this
// request, so the innermost one writes headers covering every rule.
type applied struct {
	rules   []Rule
	results []Result
}

type appliedKey struct{}

// New returns the rate-limit middleware. Every request for which Rules
// returns rules is decided by the limiter with one atomic call; the response
// carries the headers described on [WriteHeaders] for all rules applied so
// far (several instances of the middleware, e.g. one before authentication
// keyed by IP and one after keyed by API key, add up). A rejected request
// gets 429 with Retry-After and the JSON body
//
//	{"error":"rate_limited","rule":"<name>","retry_after":<seconds>}
//
// and its reqinfo Outcome is "rate_limited". When the limiter fails the
// request gets 503 with {"error":"rate_limit_unavailable"}. The subject of
// each rule comes from reqinfo.From: Principal.ID for api_key and user rules,
// ClientIP for ip rules; the middleware must run inside reqinfo.Middleware.
//
// Within one instance a rejected request charges none of its rules. An
// instance placed before authentication decides on its own, before the later
// instance runs, so its rules count every request that reaches it; that is
// the point of a pre-auth limit.
func New(opts Options) (func(http.Handler) http.Handler, error) {
	var errs []error
	if opts.Limiter == nil {
		errs = append(errs, errors.New("ratelimit: Limiter is required"))
	}
	if opts.Rules == nil {
		errs = append(errs, errors.New("ratelimit: Rules is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &middleware{lim: opts.Limiter, rules: opts.Rules, onReject: opts.OnReject, log: opts.Logger}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(next, w, r) })
	}, nil
}

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info := reqinfo.From(ctx)
	if info == nil {
		m.log.LogAttrs(ctx, slog.LevelError, "rate limit middleware outside reqinfo")
		writeError(w, http.StatusInternalServerError, []byte(`{"error":"internal"}`), 0)
		return
	}
	rules := m.rules(r)
	if len(rules) == 0 {
		next.ServeHTTP(w, r)
		return
	}
	var cbuf [4]Check
	checks := cbuf[:0]
	mine := make([]Rule, 0, len(rules))
	for _, rule := range rules {
		s, ok := subject(rule.Key, info)
		if !ok {
			continue
		}
		checks = append(checks, Check{Rule: rule.Name, Subject: s, Limit: rule.Limit})
		mine = append(mine, rule)
	}
	if len(checks) == 0 {
		next.ServeHTTP(w, r)
		return
	}
	results := make([]Result, len(checks))
	ok, err := m.lim.Allow(ctx, checks, results)
	if err != nil {
		info.Outcome = OutcomeUnavailable
		if !errors.Is(err, ErrUnavailable) {
			m.log.LogAttrs(ctx, slog.LevelError, "rate limit decision", slog.String("request_id", info.ID), slog.String("error", err.Error()))
		}
		writeError(w, http.StatusServiceUnavailable, []byte(`{"error":"rate_limit_unavailable"}`), 1)
		return
	}

	all := &applied{rules: mine, results: results}
	if prev, _ := ctx.Value(appliedKey{}).(*applied); prev != nil {
		all.rules = append(append([]Rule(nil), prev.rules...), mine...)
		all.results = append(append([]Result(nil), prev.results...), results...)
	}
	if !unlimited(all.results) {
		WriteHeaders(w.Header(), all.rules, all.results)
	}
	if !ok {
		info.Outcome = OutcomeRateLimited
		i := mostRestrictive(results)
		if m.onReject != nil {
			m.onReject(r, mine[i], results[i])
		}
		retry := max(1, ceilSeconds(RetryAfter(results)))
		body := make([]byte, 0, 96)
		body = append(body, `{"error":"rate_limited","rule":`...)
		body = appendSFString(body, mine[i].Name) // rule names are validated tokens, so this is valid JSON
		body = append(body, `,"retry_after":`...)
		body = strconv.AppendInt(body, retry, 10)
		body = append(body, "}\n"...)
		writeError(w, http.StatusTooManyRequests, body, retry)
		return
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, appliedKey{}, all)))
}

func writeError(w http.ResponseWriter, code int, body []byte, retryAfter int64) {
	h := w.Header()
	if retryAfter > 0 {
		h.Set(HeaderRetryAfter, strconv.FormatInt(retryAfter, 10))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func unlimited(rs []Result) bool {
	for _, r := range rs {
		if r.Unlimited {
			return true
		}
	}
	return false
}
