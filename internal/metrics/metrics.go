package metrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. Alert rules, CloudWatch alarms and the Grafana dashboard use
// exactly these.
const (
	NameRequests        = "rampart_http_requests_total"
	NameRequestDuration = "rampart_http_request_duration_seconds"
	NameSlowRequests    = "rampart_http_slow_requests_total"
	NameUpstreamErrors  = "rampart_upstream_errors_total"
	NameAuthFailures    = "rampart_auth_failures_total"
	NameRateLimited     = "rampart_ratelimit_rejections_total"
	NameWSConnections   = "rampart_websocket_connections"
	NameWSDisconnects   = "rampart_websocket_disconnects_total"
	NameAuditQueueDepth = "rampart_audit_queue_depth"
	NameAuditQueueCap   = "rampart_audit_queue_capacity"
	NameAuditEvents     = "rampart_audit_events_total"
	NameAuditRejections = "rampart_audit_rejections_total"
	NameAuditGroups     = "rampart_audit_group_commits_total"
	NameCertExpiryDays  = "rampart_tls_certificate_expiry_days"
)

// Metrics other packages register on the same registry; the alarms and the
// dashboard use them, [New] does not register them.
const (
	// NameRateLimitDegraded is package ratelimit's gauge: 1 while the shared
	// limiter store is unreachable and the fallback decides.
	NameRateLimitDegraded = "rampart_ratelimit_degraded"
	// NameSecretRotations is package secrets' counter of secrets whose
	// current version changed, by secret.
	NameSecretRotations = "rampart_secret_rotations_total"
	// NameSecretRefreshFailures is package secrets' counter of failed
	// refreshes (the last good value was kept), by secret.
	NameSecretRefreshFailures = "rampart_secret_refresh_failures_total"
)

// ExternalNames lists the metric names other packages register (see
// NameRateLimitDegraded and the secrets names).
func ExternalNames() []string {
	return []string{NameRateLimitDegraded, NameSecretRotations, NameSecretRefreshFailures}
}

// Label values used when the caller has nothing better.
const (
	RouteUnmatched = "unmatched" // request matched no route
	MethodOther    = "OTHER"     // a method outside the standard set
)

// DefaultSlowRequestThreshold is the latency above which a request counts as
// slow; it matches the checklists' p99 alarm (2 s).
const DefaultSlowRequestThreshold = 2 * time.Second

// DurationBuckets returns the request duration histogram's upper bounds in
// seconds, chosen for a gateway: from 5 ms (a cached or refused request) to
// 30 s (a slow upstream), with 2 s (the p99 alarm) as an exact bound. [New]
// adds the slow-request threshold when it is not one of them.
func DurationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30}
}

// Option adjusts [New].
type Option func(*options)

type options struct {
	now  func() time.Time
	slow time.Duration
}

// WithClock sets the clock used to time requests and count down certificate
// expiry. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSlowRequestThreshold sets the latency above which a request is counted
// in rampart_http_slow_requests_total and made a histogram bucket bound. Pass
// the same value as [Thresholds].LatencyP99 so the Prometheus and CloudWatch
// latency alarms agree.
func WithSlowRequestThreshold(d time.Duration) Option { return func(o *options) { o.slow = d } }

// Metrics holds Rampart's collectors. Its methods are safe for concurrent
// use, and a nil *Metrics is a valid no-op, so features can be built without
// metrics in tests.
type Metrics struct {
	now  func() time.Time
	slow time.Duration

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	slowRequests   *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	wsConnections  prometheus.Gauge
	wsDisconnects  *prometheus.CounterVec

	audit *auditCollector

	certs *certCollector
}

// New builds the collectors and registers them on reg. It never touches the
// default registry; a registration error (for example a second New on the
// same registry) is returned and nothing stays registered.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	o := options{now: time.Now, slow: DefaultSlowRequestThreshold}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		return nil, errors.New("metrics: nil clock")
	}
	if o.slow <= 0 {
		return nil, fmt.Errorf("metrics: slow request threshold %s: must be positive", o.slow)
	}
	m := &Metrics{now: o.now, slow: o.slow}

	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameRequests,
		Help: "HTTP requests by route (from the route table), method and status class.",
	}, []string{"route", "method", "status_class"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    NameRequestDuration,
		Help:    "Time from the request reaching the gateway to the handler returning (WebSocket: to the upgrade), by route.",
		Buckets: buckets(o.slow),
	}, []string{"route"})
	m.slowRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameSlowRequests,
		Help: "Requests slower than the slow-request threshold, by route; for backends that drop histograms (CloudWatch).",
	}, []string{"route"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameUpstreamErrors,
		Help: "Failed calls to the upstream API by kind (timeout, refused, dns, tls, reset, canceled, other).",
	}, []string{"kind"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameAuthFailures,
		Help: "Refused authentication attempts by reason.",
	}, []string{"reason"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameRateLimited,
		Help: "Requests refused by a rate limit, by rule.",
	}, []string{"rule"})
	m.wsConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: NameWSConnections,
		Help: "Open WebSocket connections relayed by this instance.",
	})
	m.wsDisconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameWSDisconnects,
		Help: "Closed WebSocket connections by reason.",
	}, []string{"reason"})
	m.audit = newAuditCollector()
	m.certs = newCertCollector(o.now)

	cs := []prometheus.Collector{
		m.requests, m.duration, m.slowRequests, m.upstreamErrors, m.authFailures,
		m.rateLimited, m.wsConnections, m.wsDisconnects, m.audit, m.certs,
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

func buckets(slow time.Duration) []float64 {
	b := DurationBuckets()
	if s := slow.Seconds(); !slices.Contains(b, s) {
		b = append(b, s)
		slices.Sort(b)
	}
	return b
}

// SlowRequestThreshold returns the threshold set by [WithSlowRequestThreshold].
func (m *Metrics) SlowRequestThreshold() time.Duration {
	if m == nil {
		return DefaultSlowRequestThreshold
	}
	return m.slow
}

// UpstreamError counts a failed upstream call; kind should come from
// [UpstreamErrorKind] so the label stays bounded.
func (m *Metrics) UpstreamError(kind string) {
	if m == nil {
		return
	}
	m.upstreamErrors.WithLabelValues(kind).Inc()
}

// AuthFailure counts a refused credential. reason is a fixed machine word
// such as "missing", "invalid", "revoked", "expired", "mfa_failed".
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// RateLimited counts a request refused by the rate-limit rule named rule.
func (m *Metrics) RateLimited(rule string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(rule).Inc()
}

// WSConnect counts a WebSocket connection opening.
func (m *Metrics) WSConnect() {
	if m == nil {
		return
	}
	m.wsConnections.Inc()
}

// WSDisconnect counts a WebSocket connection closing for reason (for example
// "client_closed", "idle", "revoked", "message_too_big", "upstream_closed",
// "shutdown"). Call it once per [Metrics.WSConnect].
func (m *Metrics) WSDisconnect(reason string) {
	if m == nil {
		return
	}
	m.wsConnections.Dec()
	m.wsDisconnects.WithLabelValues(reason).Inc()
}

// AuditStats is what the audit logger reports at each scrape.
type AuditStats struct {
	Queued   int    // events accepted and not yet durable (queue depth)
	Capacity int    // queue size
	Written  uint64 // events durably written, since start
	Failed   uint64 // events whose group commit the sink refused, since start
	Rejected uint64 // requests refused because the queue stayed full, since start
	Groups   uint64 // group commits, since start
}

// AuditStatsFunc makes the audit metrics read stats at every scrape, for
// example an adapter around the audit logger's Stats method. Until it is
// called (audit off) no audit series are exported; nil switches them off.
func (m *Metrics) AuditStatsFunc(stats func() AuditStats) {
	if m == nil {
		return
	}
	if stats == nil {
		m.audit.stats.Store(nil)
		return
	}
	m.audit.stats.Store(&stats)
}

// auditCollector exports the audit logger's own counters at scrape time.
type auditCollector struct {
	stats                              atomic.Pointer[func() AuditStats]
	depth, capacity, events, rej, grps *prometheus.Desc
}

func newAuditCollector() *auditCollector {
	return &auditCollector{
		depth:    prometheus.NewDesc(NameAuditQueueDepth, "Audit events accepted and not yet durable.", nil, nil),
		capacity: prometheus.NewDesc(NameAuditQueueCap, "Capacity of the audit queue.", nil, nil),
		events: prometheus.NewDesc(NameAuditEvents,
			"Audit events by result: written (durable) or failed (the sink refused the group commit).", []string{"result"}, nil),
		rej:  prometheus.NewDesc(NameAuditRejections, "Requests refused with 503 because the audit queue stayed full.", nil, nil),
		grps: prometheus.NewDesc(NameAuditGroups, "Audit group commits (one fsync each for the file sink).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.capacity, c.events, c.rej, c.grps} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.stats.Load()
	if f == nil {
		return
	}
	s := (*f)()
	for _, mt := range []struct {
		desc  *prometheus.Desc
		typ   prometheus.ValueType
		v     float64
		label []string
	}{
		{c.depth, prometheus.GaugeValue, float64(s.Queued), nil},
		{c.capacity, prometheus.GaugeValue, float64(s.Capacity), nil},
		{c.events, prometheus.CounterValue, float64(s.Written), []string{"written"}},
		{c.events, prometheus.CounterValue, float64(s.Failed), []string{"failed"}},
		{c.rej, prometheus.CounterValue, float64(s.Rejected), nil},
		{c.grps, prometheus.CounterValue, float64(s.Groups), nil},
	} {
		m, err := prometheus.NewConstMetric(mt.desc, mt.typ, mt.v, mt.label...)
		if err != nil {
			m = prometheus.NewInvalidMetric(mt.desc, err)
		}
		ch <- m
	}
}

// SetCertExpiry records that the certificate called name expires at
// notAfter, as seen at now on the caller's clock. The gauge reports the days
// left at scrape time: it keeps counting down on the Metrics clock, so it
// stays current even when the TLS code only calls this when it loads a
// certificate.
func (m *Metrics) SetCertExpiry(name string, notAfter, now time.Time) {
	if m == nil {
		return
	}
	m.certs.set(name, notAfter.Sub(now))
}

// RemoveCert drops the expiry gauge of a certificate that is no longer served.
func (m *Metrics) RemoveCert(name string) {
	if m == nil {
		return
	}
	m.certs.remove(name)
}

// certCollector reports days to expiry computed at scrape time.
type certCollector struct {
	now  func() time.Time
	desc *prometheus.Desc

	mu      sync.Mutex
	expires map[string]time.Time // on the Metrics clock
}

func newCertCollector(now func() time.Time) *certCollector {
	return &certCollector{
		now: now,
		desc: prometheus.NewDesc(NameCertExpiryDays,
			"Days until the TLS certificate expires (negative once expired), by certificate name.",
			[]string{"name"}, nil),
		expires: map[string]time.Time{},
	}
}

func (c *certCollector) set(name string, left time.Duration) {
	at := c.now().Add(left)
	c.mu.Lock()
	c.expires[name] = at
	c.mu.Unlock()
}

func (c *certCollector) remove(name string) {
	c.mu.Lock()
	delete(c.expires, name)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, at := range c.expires {
		days := at.Sub(now).Hours() / 24
		mt, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, days, name)
		if err != nil {
			mt = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- mt
	}
}
