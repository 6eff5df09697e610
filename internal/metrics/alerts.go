package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Thresholds are the alarm settings. [DefaultThresholds] gives the
// checklists' numbers; the config layer fills the struct from rampart.yaml.
type Thresholds struct {
	// ErrorRate is the share of requests answered 5xx (0.01 = 1 %) above
	// which RampartHigh5xxRate fires once it has held for ErrorRateFor.
	ErrorRate    float64
	ErrorRateFor time.Duration

	// LatencyP99 is the 99th percentile request duration above which
	// RampartHighLatencyP99 fires once it has held for LatencyFor. Use one
	// of [DurationBuckets] (or the slow-request threshold given to [New]) so
	// the Prometheus rule is exact, and the same value as the slow-request
	// threshold so the CloudWatch alarm agrees.
	LatencyP99 time.Duration
	LatencyFor time.Duration

	// AuthFailuresPerMinute fires RampartAuthFailureSpike.
	AuthFailuresPerMinute float64
	// WSDisconnectsPerMinute fires RampartWebSocketDisconnectSpike.
	WSDisconnectsPerMinute float64

	// RateLimitRejectRatio is the share of requests refused by rate limits
	// above which RampartRateLimitSaturation fires after RateLimitFor.
	RateLimitRejectRatio float64
	RateLimitFor         time.Duration

	// CertExpiryDays fires RampartCertificateExpiring when a served
	// certificate has fewer days left.
	CertExpiryDays float64

	// AuditQueueSaturation is the audit queue fill ratio (0.8 = 80 %) above
	// which RampartAuditQueueSaturated fires after AuditQueueFor.
	AuditQueueSaturation float64
	AuditQueueFor        time.Duration

	// RateLimitDegradedFor is how long the limiter may run on its fallback
	// (shared store unreachable) before RampartRateLimitDegraded fires.
	RateLimitDegradedFor time.Duration

	// RateWindow is the PromQL range for rates and ratios. It must hold at
	// least two scrapes; 2m suits scrape intervals up to 1m.
	RateWindow time.Duration

	// Job is the Prometheus job label the CloudWatch agent keeps as the
	// alarm dimension, and CloudWatchNamespace the namespace it publishes
	// to. Only the CloudWatch outputs use them.
	Job                 string
	CloudWatchNamespace string
}

// DefaultThresholds returns the checklists' alarm numbers: 5xx over 1 % for
// 5 minutes, p99 over 2 s for 5 minutes, more than 50 authentication
// failures or 100 WebSocket disconnects a minute, plus a tenth of requests
// rate limited for 5 minutes, a certificate expiring within 14 days, the
// audit queue 80 % full for a minute and rate limiting degraded for a minute.
func DefaultThresholds() Thresholds {
	return Thresholds{
		ErrorRate:              0.01,
		ErrorRateFor:           5 * time.Minute,
		LatencyP99:             2 * time.Second,
		LatencyFor:             5 * time.Minute,
		AuthFailuresPerMinute:  50,
		WSDisconnectsPerMinute: 100,
		RateLimitRejectRatio:   0.10,
		RateLimitFor:           5 * time.Minute,
		CertExpiryDays:         14,
		AuditQueueSaturation:   0.8,
		AuditQueueFor:          time.Minute,
		RateLimitDegradedFor:   time.Minute,
		RateWindow:             2 * time.Minute,
		Job:                    "rampart",
		CloudWatchNamespace:    "Rampart",
	}
}

// Validate reports every unusable setting.
func (t Thresholds) Validate() error {
	var errs []error
	ratio := func(name string, v float64) {
		if !(v > 0 && v <= 1) {
			errs = append(errs, fmt.Errorf("%s %v: must be in (0, 1]", name, v))
		}
	}
	positive := func(name string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: must be a positive number", name, v))
		}
	}
	duration := func(name string, d time.Duration, min time.Duration) {
		if d < min || d%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be whole seconds, at least %s", name, d, min))
		}
	}
	ratio("error rate", t.ErrorRate)
	duration("error rate for", t.ErrorRateFor, 0)
	if t.LatencyP99 <= 0 || t.LatencyP99%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("latency p99 %s: must be positive whole milliseconds", t.LatencyP99))
	}
	duration("latency for", t.LatencyFor, 0)
	positive("auth failures per minute", t.AuthFailuresPerMinute)
	positive("websocket disconnects per minute", t.WSDisconnectsPerMinute)
	ratio("rate limit reject ratio", t.RateLimitRejectRatio)
	duration("rate limit for", t.RateLimitFor, 0)
	positive("certificate expiry days", t.CertExpiryDays)
	ratio("audit queue saturation", t.AuditQueueSaturation)
	duration("audit queue for", t.AuditQueueFor, 0)
	duration("rate limit degraded for", t.RateLimitDegradedFor, 0)
	duration("rate window", t.RateWindow, 30*time.Second)
	if !validLabelValue(t.Job) {
		errs = append(errs, fmt.Errorf("job %q: must be non-empty printable text without quotes or backslashes", t.Job))
	}
	if !validLabelValue(t.CloudWatchNamespace) || strings.HasPrefix(t.CloudWatchNamespace, "AWS/") || len(t.CloudWatchNamespace) > 255 {
		errs = append(errs, fmt.Errorf("cloudwatch namespace %q: must be 1-255 printable characters and not start with AWS/", t.CloudWatchNamespace))
	}
	return errors.Join(errs...)
}

func validLabelValue(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// Alarm names, shared by both generators and docs/alerts.md.
const (
	Alarm5xxRate           = "RampartHigh5xxRate"
	AlarmLatencyP99        = "RampartHighLatencyP99"
	AlarmAuthFailures      = "RampartAuthFailureSpike"
	AlarmWSDisconnects     = "RampartWebSocketDisconnectSpike"
	AlarmRateLimitSat      = "RampartRateLimitSaturation"
	AlarmCertExpiring      = "RampartCertificateExpiring"
	AlarmAuditQueue        = "RampartAuditQueueSaturated"
	AlarmRateLimitDegraded = "RampartRateLimitDegraded"
)

// AlarmNames lists every alarm the generators write, in output order.
func AlarmNames() []string {
	return []string{Alarm5xxRate, AlarmLatencyP99, AlarmAuthFailures, AlarmWSDisconnects,
		AlarmRateLimitSat, AlarmCertExpiring, AlarmAuditQueue, AlarmRateLimitDegraded}
}

// alarm is one alarm in both dialects.
type alarm struct {
	name     string
	severity string // critical | warning
	action   string // what the checklist says to do
	summary  string
	runbook  string
	promExpr string
	promFor  time.Duration
	ratio    bool // the expression's value is a ratio: show it as a percentage
	cw       cwAlarm
}

// cwAlarm is the CloudWatch side: either one metric with a statistic, or
// metric math over several.
type cwAlarm struct {
	metric    string // single-metric alarm
	stat      string
	dims      map[string]string
	math      []cwQuery // metric-math alarm when set
	threshold float64
	op        string
	periods   int
	period    int // seconds
}

type cwQuery struct {
	id, metric, stat, expr string
	dims                   map[string]string
}

// alarms builds the alarm table from t; t must be valid.
func alarms(t Thresholds) []alarm {
	w := promDuration(t.RateWindow)
	num := formatFloat
	pct := func(r float64) string { return num(percent(r)) + " %" }
	minutes := func(d time.Duration) int { return max(1, int(math.Ceil(d.Minutes()))) }
	return []alarm{{
		name:     Alarm5xxRate,
		ratio:    true,
		severity: "critical",
		action:   "page the on-call engineer (PagerDuty)",
		summary:  "More than " + pct(t.ErrorRate) + " of requests answered 5xx",
		runbook:  "Check rampart_upstream_errors_total by kind and the upstream's health; a 503 wave with rampart_audit_rejections_total rising means the audit sink is stuck.",
		promExpr: fmt.Sprintf(`sum by (job) (rate(%s{status_class="5xx"}[%s])) / sum by (job) (rate(%s[%s])) > %s`,
			NameRequests, w, NameRequests, w, num(t.ErrorRate)),
		promFor: t.ErrorRateFor,
		cw: cwAlarm{
			math: []cwQuery{
				{id: "errors", metric: NameRequests, stat: "Sum", dims: map[string]string{"status_class": "5xx"}},
				{id: "requests", metric: NameRequests, stat: "Sum"},
				{id: "ratio", expr: "100 * FILL(errors, 0) / requests"},
			},
			threshold: percent(t.ErrorRate), op: "GreaterThanThreshold", periods: minutes(t.ErrorRateFor), period: 60,
		},
	}, {
		name:     AlarmLatencyP99,
		severity: "warning",
		action:   "notify the team channel (Slack)",
		summary:  "p99 request latency above " + t.LatencyP99.String(),
		runbook:  "Find the slow route in the latency-by-route panel, then check the upstream; if every route is slow, check the gateway's CPU and the shared stores (Redis, PostgreSQL).",
		promExpr: fmt.Sprintf(`histogram_quantile(0.99, sum by (job, le) (rate(%s_bucket[%s]))) > %s`,
			NameRequestDuration, w, num(t.LatencyP99.Seconds())),
		promFor: t.LatencyFor,
		cw: cwAlarm{
			math: []cwQuery{
				{id: "slow", metric: NameSlowRequests, stat: "Sum"},
				{id: "requests", metric: NameRequests, stat: "Sum"},
				{id: "slowpct", expr: "100 * FILL(slow, 0) / requests"},
			},
			// p99 above the threshold means more than 1 % of requests slower.
			threshold: 1, op: "GreaterThanThreshold", periods: minutes(t.LatencyFor), period: 60,
		},
	}, {
		name:     AlarmAuthFailures,
		severity: "critical",
		action:   "raise a security alert",
		summary:  "More than " + num(t.AuthFailuresPerMinute) + " authentication failures a minute",
		runbook:  "Look up the failing sources in the audit log (rampart audit tail, event_type auth.failure) and block or rate-limit them; a spike of one reason after a deploy is usually a rotated or expired key.",
		promExpr: fmt.Sprintf(`sum by (job) (rate(%s[%s])) * 60 > %s`, NameAuthFailures, w, num(t.AuthFailuresPerMinute)),
		cw: cwAlarm{
			metric: NameAuthFailures, stat: "Sum",
			threshold: t.AuthFailuresPerMinute, op: "GreaterThanThreshold", periods: 1, period: 60,
		},
	}, {
		name:     AlarmWSDisconnects,
		severity: "warning",
		action:   "investigate",
		summary:  "More than " + num(t.WSDisconnectsPerMinute) + " WebSocket disconnects a minute",
		runbook:  "Read the disconnect reasons panel: idle or upstream_closed points at the upstream, revoked at key revocation, shutdown at a deploy, message_too_big at a client.",
		promExpr: fmt.Sprintf(`sum by (job) (rate(%s[%s])) * 60 > %s`, NameWSDisconnects, w, num(t.WSDisconnectsPerMinute)),
		cw: cwAlarm{
			metric: NameWSDisconnects, stat: "Sum",
			threshold: t.WSDisconnectsPerMinute, op: "GreaterThanThreshold", periods: 1, period: 60,
		},
	}, {
		name:     AlarmRateLimitSat,
		ratio:    true,
		severity: "warning",
		action:   "investigate",
		summary:  "More than " + pct(t.RateLimitRejectRatio) + " of requests refused by rate limits",
		runbook:  "Check rampart_ratelimit_rejections_total by rule and the audit log's ratelimit.violation events by subject: one subject is abuse (revoke or block it), many subjects mean the limit is too low for real traffic.",
		promExpr: fmt.Sprintf(`sum by (job) (rate(%s[%s])) / sum by (job) (rate(%s[%s])) > %s`,
			NameRateLimited, w, NameRequests, w, num(t.RateLimitRejectRatio)),
		promFor: t.RateLimitFor,
		cw: cwAlarm{
			math: []cwQuery{
				{id: "limited", metric: NameRateLimited, stat: "Sum"},
				{id: "requests", metric: NameRequests, stat: "Sum"},
				{id: "limitedpct", expr: "100 * FILL(limited, 0) / requests"},
			},
			threshold: percent(t.RateLimitRejectRatio), op: "GreaterThanThreshold", periods: minutes(t.RateLimitFor), period: 60,
		},
	}, {
		name:     AlarmCertExpiring,
		severity: "warning",
		action:   "renew the certificate",
		summary:  "A TLS certificate expires in less than " + num(t.CertExpiryDays) + " days",
		runbook:  "Renew the certificate named in the alert (ACME renewal or a new file) and reload; check that automatic renewal is running.",
		promExpr: fmt.Sprintf(`min by (job, name) (%s) < %s`, NameCertExpiryDays, num(t.CertExpiryDays)),
		promFor:  10 * time.Minute,
		cw: cwAlarm{
			metric: NameCertExpiryDays, stat: "Minimum",
			threshold: t.CertExpiryDays, op: "LessThanThreshold", periods: 1, period: 300,
		},
	}, {
		name:     AlarmAuditQueue,
		ratio:    true,
		severity: "critical",
		action:   "page the on-call engineer: audited requests start failing with 503",
		summary:  "The audit queue is more than " + pct(t.AuditQueueSaturation) + " full",
		runbook:  "The audit sink cannot keep up: check disk space and fsync latency of the audit directory, or PostgreSQL when the sink is a table; rampart_audit_rejections_total counts requests already refused.",
		promExpr: fmt.Sprintf(`max by (job, instance) (%s / %s) > %s`, NameAuditQueueDepth, NameAuditQueueCap, num(t.AuditQueueSaturation)),
		promFor:  t.AuditQueueFor,
		cw: cwAlarm{
			math: []cwQuery{
				{id: "depth", metric: NameAuditQueueDepth, stat: "Maximum"},
				{id: "capacity", metric: NameAuditQueueCap, stat: "Maximum"},
				{id: "fillpct", expr: "100 * depth / capacity"},
			},
			threshold: percent(t.AuditQueueSaturation), op: "GreaterThanThreshold", periods: minutes(t.AuditQueueFor), period: 60,
		},
	}, {
		name:     AlarmRateLimitDegraded,
		severity: "critical",
		action:   "page the on-call engineer: limits are per instance (fail open) or refusing traffic (fail closed)",
		summary:  "Rate limiting is running on its fallback: the shared store is unreachable",
		runbook:  "Restore Redis (connectivity, memory, failover); until then limits are not global across instances, or requests are refused if the policy fails closed.",
		promExpr: fmt.Sprintf(`max by (job, instance) (%s) > 0`, NameRateLimitDegraded),
		promFor:  t.RateLimitDegradedFor,
		cw: cwAlarm{
			metric: NameRateLimitDegraded, stat: "Maximum",
			threshold: 0, op: "GreaterThanThreshold", periods: minutes(t.RateLimitDegradedFor), period: 60,
		},
	}}
}

// promDuration renders d in Prometheus duration syntax, e.g. "1m30s".
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.s)
			d -= n * u.d
		}
	}
	return b.String()
}

// percent converts a ratio to a percentage without float noise (0.07 -> 7).
func percent(r float64) float64 { return math.Round(r*100*1e9) / 1e9 }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

type promRuleFile struct {
	Groups []promGroup `yaml:"groups"`
}

type promGroup struct {
	Name  string     `yaml:"name"`
	Rules []promRule `yaml:"rules"`
}

type promRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// PrometheusRules renders the alarms as a Prometheus rule file with one
// group, "rampart", whose expressions use the metric names this package
// registers (plus rampart_ratelimit_degraded from package ratelimit).
func PrometheusRules(t Thresholds) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("thresholds: %w", err)
	}
	g := promGroup{Name: "rampart"}
	for _, a := range alarms(t) {
		value := "{{ $value | humanize }}"
		if a.ratio {
			value = "{{ $value | humanizePercentage }}"
		}
		r := promRule{
			Alert:  a.name,
			Expr:   a.promExpr,
			Labels: map[string]string{"severity": a.severity},
			Annotations: map[string]string{
				"summary":     a.summary,
				"description": a.summary + " (now " + value + "); action: " + a.action + ".",
				"runbook":     a.runbook,
			},
		}
		if a.promFor > 0 {
			r.For = promDuration(a.promFor)
		}
		g.Rules = append(g.Rules, r)
	}
	return marshalYAML("# Rampart alerting rules, generated by `rampart alerts --format prometheus`.\n# Runbooks: docs/alerts.md.\n", promRuleFile{Groups: []promGroup{g}})
}

func marshalYAML(header string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return buf.Bytes(), nil
}
