package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/secrets"
)

// registeredNames returns every metric family name on a registry shared by
// a fresh Metrics and the packages that own the external names (ratelimit's
// fallback, the secrets manager), as the server wires them; it fails the
// test if an external name is not actually registered by its owner.
func registeredNames(t *testing.T) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	clock := newFakeClock()
	m, err := New(reg, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ratelimit.NewFallback(ratelimit.NewMemory(ratelimit.MemoryOptions{}), ratelimit.FallbackOptions{Registerer: reg}); err != nil {
		t.Fatalf("ratelimit fallback on the shared registry: %v", err)
	}
	if _, err := secrets.Open(context.Background(), nil, secrets.Options{Registerer: reg, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("secrets manager on the shared registry: %v", err)
	}
	observeAll(t, m, clock)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, mf := range mfs {
		names[mf.GetName()] = strings.ToLower(mf.GetType().String())
	}
	for _, n := range ExternalNames() {
		if !nameRegistered(reg, n) {
			t.Errorf("%s: no package registers it", n)
		}
		if _, ok := names[n]; !ok {
			names[n] = "external" // a vector without series yet
		}
	}
	return names
}

// nameRegistered reports whether a collector on reg already describes name:
// registering a different metric under the same name then fails.
func nameRegistered(reg *prometheus.Registry, name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

func TestNameRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	if !nameRegistered(reg, NameAuthFailures) || nameRegistered(reg, "rampart_no_such_metric") {
		t.Error("nameRegistered does not tell registered names apart")
	}
}

var metricNameRE = regexp.MustCompile(`\brampart_[a-z0-9_]+`)

// checkMetricNames fails for every rampart_* name in text that is not a
// registered family (histogram series suffixes allowed).
func checkMetricNames(t *testing.T, what, text string, names map[string]string) (used []string) {
	t.Helper()
	for _, n := range metricNameRE.FindAllString(text, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(n, suf); ok && names[b] == "histogram" {
				base = b
			}
		}
		if _, ok := names[base]; !ok {
			t.Errorf("%s uses %s, which no collector registers", what, n)
		}
		used = append(used, base)
	}
	return used
}

func TestRegisteredNamesMatchConstants(t *testing.T) {
	names := registeredNames(t)
	consts := []string{NameRequests, NameRequestDuration, NameSlowRequests, NameUpstreamErrors, NameAuthFailures,
		NameRateLimited, NameWSConnections, NameWSDisconnects, NameAuditQueueDepth, NameAuditQueueCap,
		NameAuditEvents, NameAuditRejections, NameAuditGroups, NameCertExpiryDays, NameSecretRotations, NameRateLimitDegraded,
		NameSecretRefreshFailures}
	got := slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
	slices.Sort(consts)
	if !cmp.Equal(got, consts) {
		t.Errorf("registered names differ from the Name constants:\n%s", cmp.Diff(consts, got))
	}
}

func TestThresholdsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Thresholds)
		want   string // substring of the error; empty for valid
	}{
		{"defaults", func(*Thresholds) {}, ""},
		{"error rate zero", func(t *Thresholds) { t.ErrorRate = 0 }, "error rate"},
		{"error rate above one", func(t *Thresholds) { t.ErrorRate = 1.5 }, "error rate"},
		{"latency zero", func(t *Thresholds) { t.LatencyP99 = 0 }, "latency p99"},
		{"latency sub-millisecond", func(t *Thresholds) { t.LatencyP99 = 1500 * time.Microsecond }, "latency p99"},
		{"negative for", func(t *Thresholds) { t.LatencyFor = -time.Second }, "latency for"},
		{"fractional seconds", func(t *Thresholds) { t.ErrorRateFor = 1500 * time.Millisecond }, "error rate for"},
		{"auth per minute zero", func(t *Thresholds) { t.AuthFailuresPerMinute = 0 }, "auth failures"},
		{"ws per minute negative", func(t *Thresholds) { t.WSDisconnectsPerMinute = -1 }, "websocket"},
		{"reject ratio", func(t *Thresholds) { t.RateLimitRejectRatio = 2 }, "rate limit reject ratio"},
		{"cert days", func(t *Thresholds) { t.CertExpiryDays = 0 }, "certificate"},
		{"audit saturation", func(t *Thresholds) { t.AuditQueueSaturation = 0 }, "audit queue saturation"},
		{"rate window too short", func(t *Thresholds) { t.RateWindow = 10 * time.Second }, "rate window"},
		{"job with quote", func(t *Thresholds) { t.Job = `a"b` }, "job"},
		{"empty namespace", func(t *Thresholds) { t.CloudWatchNamespace = "" }, "namespace"},
		{"aws namespace", func(t *Thresholds) { t.CloudWatchNamespace = "AWS/EC2" }, "namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThresholds()
			tc.change(&th)
			err := th.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error about %q", err, tc.want)
			}
			if tc.want != "" {
				if _, err := PrometheusRules(th); err == nil {
					t.Error("PrometheusRules accepted invalid thresholds")
				}
				if _, err := CloudWatchAlarms(th); err == nil {
					t.Error("CloudWatchAlarms accepted invalid thresholds")
				}
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		err := Thresholds{}.Validate()
		if err == nil || strings.Count(err.Error(), "\n") < 8 {
			t.Errorf("zero Thresholds: %v", err)
		}
	})
}

func TestPromDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {30 * time.Second, "30s"}, {5 * time.Minute, "5m"}, {90 * time.Second, "1m30s"},
		{2*time.Hour + 3*time.Second, "2h3s"}, {1500 * time.Millisecond, "1s500ms"},
	}
	for _, tc := range tests {
		if got := promDuration(tc.in); got != tc.want {
			t.Errorf("promDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrometheusRules(t *testing.T) {
	b, err := PrometheusRules(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	var f promRuleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Groups) != 1 {
		t.Fatalf("%d groups", len(f.Groups))
	}
	var alerts []string
	names := registeredNames(t)
	for _, r := range f.Groups[0].Rules {
		alerts = append(alerts, r.Alert)
		if used := checkMetricNames(t, r.Alert, r.Expr, names); len(used) == 0 {
			t.Errorf("%s: expression %q uses no rampart metric", r.Alert, r.Expr)
		}
		if r.Labels["severity"] == "" || r.Annotations["runbook"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("%s: missing severity, summary or runbook", r.Alert)
		}
	}
	if !cmp.Equal(alerts, AlarmNames()) {
		t.Errorf("alerts %v, want %v", alerts, AlarmNames())
	}

	// Custom thresholds reach the expressions.
	th := DefaultThresholds()
	th.AuthFailuresPerMinute = 7
	th.ErrorRate = 0.05
	th.LatencyP99 = 1500 * time.Millisecond
	th.RateWindow = 5 * time.Minute
	th.ErrorRateFor = 10 * time.Minute
	b, err = PrometheusRules(th)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sum by (job) (rate(rampart_auth_failures_total[5m])) * 60 > 7",
		`status_class="5xx"}[5m])) / sum by (job) (rate(rampart_http_requests_total[5m])) > 0.05`,
		"> 1.5\n", "for: 10m",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("custom rules lack %q:\n%s", want, b)
		}
	}
}

// TestDeployedRulesUpToDate keeps deploy/prometheus/rampart-rules.yml equal
// to the generator's output for the default thresholds.
func TestDeployedRulesUpToDate(t *testing.T) {
	b, err := PrometheusRules(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("..", "..", "deploy", "prometheus", "rampart-rules.yml"), b)
}

// promtool returns the promtool binary, or skips (fails when services are
// required).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("promtool not found and RAMPART_TEST_REQUIRE_SERVICES=1 (apt-get install prometheus)")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	return p
}

// TestPromtool runs the real promtool: the rules pass `check rules`, and the
// unit tests in testdata/promtool_test.yml show the 5xx, authentication
// failure, latency, certificate, audit queue and degraded alarms firing on
// synthetic series and staying quiet below threshold.
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	rules, err := PrometheusRules(DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join("testdata", "promtool_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "promtool_test.yml"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("check", "rules", "rules.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	} else if !strings.Contains(out, "SUCCESS: 8 rules found") {
		t.Errorf("promtool check rules: %s", out)
	}
	if out, err := run("test", "rules", "promtool_test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// The same unit tests fail against rules with a higher auth threshold:
	// the test file really exercises the thresholds.
	th := DefaultThresholds()
	th.AuthFailuresPerMinute = 70
	rules, err = PrometheusRules(th)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("test", "rules", "promtool_test.yml")
	if err == nil || !strings.Contains(out, "RampartAuthFailureSpike") {
		t.Errorf("promtool test rules passed with a 70/min threshold; output:\n%s", out)
	}
}

func TestCloudWatchAlarms(t *testing.T) {
	th := DefaultThresholds()
	b, err := CloudWatchAlarms(th)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AWSTemplateFormatVersion string                    `yaml:"AWSTemplateFormatVersion"`
		Parameters               map[string]map[string]any `yaml:"Parameters"`
		Conditions               map[string]any            `yaml:"Conditions"`
		Resources                map[string]struct {
			Type       string   `yaml:"Type"`
			Properties cfnAlarm `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AWSTemplateFormatVersion != "2010-09-09" || doc.Parameters[cfnTopicParam] == nil || doc.Conditions[cfnHasTopic] == nil {
		t.Errorf("template header: %+v", doc)
	}
	names := registeredNames(t)
	agent := agentDimensions(t, th)
	var got []string
	for id, r := range doc.Resources {
		got = append(got, id)
		p := r.Properties
		if r.Type != "AWS::CloudWatch::Alarm" {
			t.Errorf("%s: type %s", id, r.Type)
		}
		if p.EvaluationPeriods < 1 || p.DatapointsToAlarm > p.EvaluationPeriods || p.TreatMissingData != "notBreaching" {
			t.Errorf("%s: periods %d/%d missing %q", id, p.DatapointsToAlarm, p.EvaluationPeriods, p.TreatMissingData)
		}
		if !slices.Contains([]string{"GreaterThanThreshold", "LessThanThreshold"}, p.ComparisonOperator) {
			t.Errorf("%s: operator %q", id, p.ComparisonOperator)
		}
		if len(p.AlarmDescription) > 1024 {
			t.Errorf("%s: description longer than CloudWatch allows", id)
		}
		// metric names and the dimensions the agent publishes
		check := func(ns, metric string, dims []cfnDimension, period int) {
			t.Helper()
			checkMetricNames(t, id, metric, names)
			if ns != th.CloudWatchNamespace {
				t.Errorf("%s: namespace %q", id, ns)
			}
			if period < 60 || period%60 != 0 || period*p.EvaluationPeriods > 86400 {
				t.Errorf("%s: period %d × %d", id, period, p.EvaluationPeriods)
			}
			var keys []string
			for _, d := range dims {
				keys = append(keys, d.Name)
				if d.Name == "job" && d.Value != th.Job {
					t.Errorf("%s: job dimension %q", id, d.Value)
				}
			}
			if !slices.Contains(agent[metric], strings.Join(keys, ",")) {
				t.Errorf("%s: %s with dimensions %v, which the agent config does not publish (%v)", id, metric, keys, agent[metric])
			}
		}
		if len(p.Metrics) == 0 {
			if p.MetricName == "" || p.Statistic == "" {
				t.Errorf("%s: neither a metric nor metric math", id)
			}
			check(p.Namespace, p.MetricName, p.Dimensions, p.Period)
			continue
		}
		if p.MetricName != "" || p.Statistic != "" {
			t.Errorf("%s: both a metric and metric math", id)
		}
		ids := map[string]bool{}
		returned := 0
		for _, q := range p.Metrics {
			if q.ReturnData {
				returned++
			}
			switch {
			case q.MetricStat != nil:
				ids[q.ID] = true
				check(q.MetricStat.Metric.Namespace, q.MetricStat.Metric.MetricName, q.MetricStat.Metric.Dimensions, q.MetricStat.Period)
			case q.Expression != "":
				for _, ref := range regexp.MustCompile(`[a-z][a-zA-Z0-9_]*`).FindAllString(q.Expression, -1) {
					if ref != "FILL" && !ids[ref] {
						t.Errorf("%s: expression %q refers to %q, not defined before it", id, q.Expression, ref)
					}
				}
			default:
				t.Errorf("%s: query %s has neither MetricStat nor Expression", id, q.ID)
			}
		}
		if returned != 1 || !p.Metrics[len(p.Metrics)-1].ReturnData {
			t.Errorf("%s: %d queries return data, want exactly the last", id, returned)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(AlarmNames()))
	if !cmp.Equal(got, want) {
		t.Errorf("resources %v, want %v", got, want)
	}

	// Checklist numbers reach the template: 50 auth failures in one 60 s
	// period (the checklist's own CloudWatch example), 5 × 60 s for 5xx.
	auth := doc.Resources[AlarmAuthFailures].Properties
	if auth.Threshold != 50 || auth.Period != 60 || auth.EvaluationPeriods != 1 || auth.Statistic != "Sum" {
		t.Errorf("auth alarm %+v", auth)
	}
	if e := doc.Resources[Alarm5xxRate].Properties; e.Threshold != 1 || e.EvaluationPeriods != 5 {
		t.Errorf("5xx alarm %+v", e)
	}
}

// agentDimensions parses CloudWatchAgentConfig into metric -> dimension sets
// ("job,status_class").
func agentDimensions(t *testing.T, th Thresholds) map[string][]string {
	t.Helper()
	b, err := CloudWatchAgentConfig(th, "/etc/prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Logs struct {
			MetricsCollected struct {
				Prometheus struct {
					ConfigPath   string `json:"prometheus_config_path"`
					EMFProcessor struct {
						Namespace    string `json:"metric_namespace"`
						Declarations []struct {
							SourceLabels    []string   `json:"source_labels"`
							LabelMatcher    string     `json:"label_matcher"`
							Dimensions      [][]string `json:"dimensions"`
							MetricSelectors []string   `json:"metric_selectors"`
						} `json:"metric_declaration"`
					} `json:"emf_processor"`
				} `json:"prometheus"`
			} `json:"metrics_collected"`
		} `json:"logs"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Logs.MetricsCollected.Prometheus
	if p.ConfigPath != "/etc/prometheus.yaml" || p.EMFProcessor.Namespace != th.CloudWatchNamespace {
		t.Errorf("agent config: %+v", p)
	}
	out := map[string][]string{}
	for _, d := range p.EMFProcessor.Declarations {
		if !regexp.MustCompile(d.LabelMatcher).MatchString(th.Job) || !cmp.Equal(d.SourceLabels, []string{"job"}) {
			t.Errorf("declaration does not select job %q: %+v", th.Job, d)
		}
		for _, sel := range d.MetricSelectors {
			name := strings.TrimSuffix(strings.TrimPrefix(sel, "^"), "$")
			if !regexp.MustCompile(sel).MatchString(name) {
				t.Errorf("selector %q", sel)
			}
			for _, ds := range d.Dimensions {
				out[name] = append(out[name], strings.Join(ds, ","))
			}
		}
	}
	return out
}

func TestCloudWatchAgentConfigRejects(t *testing.T) {
	if _, err := CloudWatchAgentConfig(DefaultThresholds(), ""); err == nil {
		t.Error("empty prometheus config path accepted")
	}
}

// TestDocsCoverAlarms keeps docs/alerts.md in step with the generator: a
// section per alarm carrying its runbook line, and every metric described.
func TestDocsCoverAlarms(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	for _, a := range alarms(DefaultThresholds()) {
		if !strings.Contains(doc, "### "+a.name+" ") {
			t.Errorf("docs/alerts.md has no section for %s", a.name)
		}
		if !strings.Contains(doc, "**Runbook:** "+strings.Join(strings.Fields(a.runbook), " ")) {
			t.Errorf("docs/alerts.md lacks the runbook line of %s: %q", a.name, a.runbook)
		}
	}
	for n := range registeredNames(t) {
		if !strings.Contains(doc, "| `"+n+"` |") {
			t.Errorf("docs/alerts.md does not describe %s", n)
		}
	}
}
