package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errBudget is returned when a check tries to send more requests than it
// stated; it is a bug in the check, and tests assert it never happens.
var errBudget = errors.New("request budget exhausted")

const userAgent = "rampart-verify/1"

// runner holds the state shared by every check of one Run.
type runner struct {
	opts   Options
	target *url.URL
	sem    chan struct{}
	total  atomic.Int64

	anon  *http.Client // never verifies certificates: the checks audit, they do not trust
	keyed *http.Client // verifies unless Insecure: the key is only sent here

	base baseline

	mu       sync.Mutex
	done     int
	totalChk int
}

// baseline are the responses fetched once before the checks.
type baseline struct {
	https     *exchange
	tls       *tls.ConnectionState
	chainErr  error // nil when the chain verified against RootCAs
	httpURL   string
	http      *exchange // nil when no plain-HTTP address is known
	requests  int
	trustedOK bool // the key may be sent
}

// limitedTransport bounds requests in flight and counts them.
type limitedTransport struct {
	next http.RoundTripper
	r    *runner
}

func (l *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	release, err := l.r.acquire(req.Context())
	if err != nil {
		return nil, err
	}
	defer release()
	l.r.total.Add(1)
	return l.next.RoundTrip(req)
}

func (r *runner) acquire(ctx context.Context) (func(), error) {
	select {
	case r.sem <- struct{}{}:
		return func() { <-r.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func newRunner(opts Options, target *url.URL) *runner {
	r := &runner{opts: opts, target: target, sem: make(chan struct{}, opts.Concurrency)}
	mk := func(cfg *tls.Config) *http.Client {
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: opts.Timeout,
			MaxIdleConnsPerHost: opts.Concurrency,
			DisableCompression:  true,
		}
		return &http.Client{
			Transport:     &limitedTransport{next: tr, r: r},
			Timeout:       opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	r.anon = mk(&tls.Config{InsecureSkipVerify: true, ServerName: target.Hostname()}) //nolint:gosec // the scanner inspects untrusted chains itself
	if opts.Insecure {
		r.keyed = r.anon
	} else {
		r.keyed = mk(&tls.Config{RootCAs: opts.RootCAs, ServerName: target.Hostname(), MinVersion: tls.VersionTLS12})
	}
	return r
}

// Run audits opts.Target and returns the report. An error means the run
// itself could not proceed (bad options, target unreachable); findings are
// never errors.
func Run(ctx context.Context, opts Options) (*Report, error) {
	target, err := opts.validate()
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	start := opts.Now()
	wall := time.Now()
	r := newRunner(opts, target)
	if err := r.fetchBaseline(ctx); err != nil {
		return nil, err
	}

	areas := []func(context.Context, *runner) []Result{
		tlsChecks, httpsChecks, headerChecks, corsChecks, cookieChecks, authChecks,
		wsChecks, rateLimitChecks, limitChecks, exposureChecks, manualChecks,
	}
	r.totalChk = len(catalog)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []Result
	)
	for _, area := range areas {
		wg.Go(func() {
			res := area(ctx, r)
			mu.Lock()
			results = append(results, res...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", opts.Target, err)
	}
	order := map[string]int{}
	for i, d := range catalog {
		order[d.ID] = i
	}
	sort.SliceStable(results, func(i, j int) bool { return order[results[i].ID] < order[results[j].ID] })

	rep := &Report{
		Target:           opts.Target,
		StartedAt:        start.UTC(),
		Duration:         time.Since(wall),
		Requests:         int(r.total.Load()),
		BaselineRequests: r.base.requests,
		Results:          results,
	}
	rep.DurationMS = rep.Duration.Milliseconds()
	for _, res := range results {
		rep.Counts.add(res.Status)
	}
	rep.Score, rep.Grade = Score(results)
	return rep, nil
}

func (r *runner) fetchBaseline(ctx context.Context) error {
	req, err := r.newRequest(ctx, http.MethodGet, r.target.String(), nil)
	if err != nil {
		return err
	}
	ex := r.send(r.anon, req)
	r.base.requests++
	if ex.err != nil {
		return fmt.Errorf("fetch %s: %w", r.target.Redacted(), ex.err)
	}
	r.base.https = ex
	if ex.tls != nil {
		r.base.tls = ex.tls
		r.base.chainErr = verifyChain(ex.tls, r.target.Hostname(), r.opts.RootCAs, r.opts.Now())
	}
	r.base.trustedOK = r.opts.Insecure || r.target.Scheme == "http" || r.base.chainErr == nil
	if u := r.opts.httpURL(r.target); u != "" {
		r.base.httpURL = u
		req, err := r.newRequest(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		r.base.http = r.send(r.anon, req)
		r.base.requests++
	}
	return nil
}

// verifyChain verifies the presented chain for host against roots.
func verifyChain(cs *tls.ConnectionState, host string, roots *x509.CertPool, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: host, CurrentTime: now,
	})
	return err
}

// newRequest builds a request with the scanner's User-Agent.
func (r *runner) newRequest(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, r.redact(rawURL), err)
	}
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// resolve returns the absolute URL of path on the target.
func (r *runner) resolve(path string) string {
	u := *r.target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = path[:i], path[i+1:]
	} else {
		u.Path, u.RawQuery = path, ""
	}
	u.RawPath = ""
	u.Fragment = ""
	return u.String()
}

// redact removes the key from s.
func (r *runner) redact(s string) string {
	if r.opts.Key == "" {
		return s
	}
	s = strings.ReplaceAll(s, r.opts.Key, "<key>")
	return strings.ReplaceAll(s, url.QueryEscape(r.opts.Key), "<key>")
}

// setKey attaches the key as configured.
func (r *runner) setKey(h http.Header, key string) {
	switch {
	case r.opts.KeyHeader == "":
		h.Set("Authorization", "Bearer "+key)
		h.Set("X-API-Key", key)
	case strings.EqualFold(r.opts.KeyHeader, "Authorization"):
		h.Set("Authorization", "Bearer "+key)
	default:
		h.Set(r.opts.KeyHeader, key)
	}
}

// exchange is one request and the part of its answer the checks read.
type exchange struct {
	method string
	url    string
	sent   http.Header
	status int
	proto  string
	header http.Header
	body   []byte
	tls    *tls.ConnectionState
	err    error
}

// send performs req and reads at most maxResponseBodyRead bytes of the body.
func (r *runner) send(c *http.Client, req *http.Request) *exchange {
	ex := &exchange{method: req.Method, url: req.URL.String(), sent: req.Header.Clone()}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		ex.err = err
		return ex
	}
	defer resp.Body.Close()
	ex.status, ex.proto, ex.header, ex.tls = resp.StatusCode, resp.Proto, resp.Header, resp.TLS
	if resp.StatusCode != http.StatusSwitchingProtocols {
		ex.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponseBodyRead))
	}
	return ex
}

// requestLine describes what was sent, without the key.
func (r *runner) describe(ex *exchange, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", ex.method, r.redact(ex.url))
	for _, h := range headers {
		for _, v := range ex.sent.Values(h) {
			if strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "X-API-Key") ||
				(r.opts.KeyHeader != "" && strings.EqualFold(h, r.opts.KeyHeader)) {
				v = r.redact(v)
			}
			if len(v) > 120 {
				v = fmt.Sprintf("%s… (%d bytes)", v[:40], len(v))
			}
			fmt.Fprintf(&b, "\n%s: %s", h, v)
		}
	}
	return b.String()
}

// answer describes the status, the named headers and, when bodyChars > 0, the
// start of the body.
func (ex *exchange) answer(bodyChars int, headers ...string) string {
	if ex.err != nil {
		return "error: " + ex.err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d %s", ex.proto, ex.status, http.StatusText(ex.status))
	for _, h := range headers {
		for _, v := range ex.header.Values(h) {
			fmt.Fprintf(&b, "\n%s: %s", http.CanonicalHeaderKey(h), v)
		}
	}
	if bodyChars > 0 && len(ex.body) > 0 {
		body := ex.body
		if len(body) > bodyChars {
			body = body[:bodyChars]
		}
		fmt.Fprintf(&b, "\n\n%s", strings.ToValidUTF8(string(bytes.TrimSpace(body)), "?"))
		if len(ex.body) > bodyChars {
			b.WriteString("…")
		}
	}
	return b.String()
}

// session is one check in progress: its budget, its evidence, its result.
type session struct {
	r    *runner
	def  *checkDef
	max  int
	used atomic.Int64

	mu       sync.Mutex
	evidence []Evidence
}

func (r *runner) session(def *checkDef) *session {
	return &session{r: r, def: def, max: def.maxRequests(&r.opts)}
}

// spend reserves one request of the budget.
func (s *session) spend() error {
	if int(s.used.Add(1)) > s.max {
		s.used.Add(-1)
		return fmt.Errorf("%s: %w (max %d)", s.def.ID, errBudget, s.max)
	}
	return nil
}

// do sends req through the anonymous client, or the verified one when keyed.
func (s *session) do(req *http.Request, keyed bool) *exchange {
	if err := s.spend(); err != nil {
		return &exchange{method: req.Method, url: req.URL.String(), sent: req.Header, err: err}
	}
	c := s.r.anon
	if keyed {
		c = s.r.keyed
	}
	return s.r.send(c, req)
}

// get is do for a GET of path with the given extra headers.
func (s *session) get(ctx context.Context, path string, keyed bool, hdr map[string]string) *exchange {
	return s.request(ctx, http.MethodGet, s.r.resolve(path), keyed, hdr)
}

func (s *session) request(ctx context.Context, method, rawURL string, keyed bool, hdr map[string]string) *exchange {
	req, err := s.r.newRequest(ctx, method, rawURL, nil)
	if err != nil {
		return &exchange{method: method, url: rawURL, err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return s.do(req, keyed)
}

// note records evidence for the result.
func (s *session) note(req, resp string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evidence = append(s.evidence, Evidence{Request: req, Response: resp})
}

// noteEx records an exchange with the named request and response headers.
func (s *session) noteEx(ex *exchange, sentHeaders []string, bodyChars int, gotHeaders ...string) {
	s.note(s.r.describe(ex, sentHeaders...), ex.answer(bodyChars, gotHeaders...))
}

func (s *session) result(st Status, format string, args ...any) Result {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	s.mu.Lock()
	ev := slices.Clone(s.evidence)
	s.mu.Unlock()
	if ev == nil {
		ev = []Evidence{}
	}
	res := Result{
		ID: s.def.ID, Title: s.def.Title, Area: s.def.Area, Severity: s.def.Severity,
		Status: st, Message: s.r.redact(msg), Evidence: ev, Remediation: s.def.Remediation,
		Checklist: slices.Clone(s.def.Checklist), MaxRequests: s.max, Requests: int(s.used.Load()),
	}
	s.r.progress(res)
	return res
}

func (s *session) pass(f string, a ...any) Result   { return s.result(StatusPass, f, a...) }
func (s *session) fail(f string, a ...any) Result   { return s.result(StatusFail, f, a...) }
func (s *session) warn(f string, a ...any) Result   { return s.result(StatusWarn, f, a...) }
func (s *session) skip(f string, a ...any) Result   { return s.result(StatusSkip, f, a...) }
func (s *session) manual(f string, a ...any) Result { return s.result(StatusManual, f, a...) }

func (r *runner) progress(res Result) {
	if r.opts.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	r.opts.Progress(r.done, r.totalChk, res)
}

// skipAll skips every check of defs with the same reason.
func (r *runner) skipAll(reason string, defs ...*checkDef) []Result {
	out := make([]Result, 0, len(defs))
	for _, d := range defs {
		out = append(out, r.session(d).skip("%s", reason))
	}
	return out
}
