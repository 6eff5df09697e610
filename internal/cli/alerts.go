package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rampart-security/rampart/internal/metrics"
	"github.com/spf13/cobra"
)

// alertThresholds supplies the thresholds the alerts command starts from,
// before flags override them. The composition of the CLI can replace it with
// one that reads the configuration file.
type alertThresholds func(cmd *cobra.Command) (metrics.Thresholds, error)

func newAlertsCmd() *cobra.Command {
	return newAlertsCmdWith(func(*cobra.Command) (metrics.Thresholds, error) {
		return metrics.DefaultThresholds(), nil
	})
}

// newAlertsCmdWith builds `rampart alerts` with base thresholds from base;
// flags given on the command line win.
func newAlertsCmdWith(base alertThresholds) *cobra.Command {
	var (
		format, out, promConfig string
		flagT                   = metrics.DefaultThresholds()
	)
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Write alert rules for the checklists' alarms (Prometheus or CloudWatch)",
		Long: `Write alerting rules for Rampart's metrics.

  --format prometheus        a Prometheus rule file (promtool check rules passes)
  --format cloudwatch        a CloudFormation template of AWS::CloudWatch::Alarm resources
  --format cloudwatch-agent  the CloudWatch agent configuration that publishes the
                             metrics those alarms use

Thresholds default to the checklists' numbers; see docs/alerts.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := base(cmd)
			if err != nil {
				return err
			}
			applyThresholdFlags(cmd, &t, flagT)
			var b []byte
			switch format {
			case "prometheus":
				b, err = metrics.PrometheusRules(t)
			case "cloudwatch":
				b, err = metrics.CloudWatchAlarms(t)
			case "cloudwatch-agent":
				b, err = metrics.CloudWatchAgentConfig(t, promConfig)
			default:
				return withExitCode(2, fmt.Errorf("--format %q: want prometheus, cloudwatch or cloudwatch-agent", format))
			}
			if err != nil {
				return withExitCode(2, err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return writeAlertsFile(out, b)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "prometheus", "output: prometheus, cloudwatch or cloudwatch-agent")
	f.StringVarP(&out, "out", "o", "", "write to this file instead of standard output")
	f.StringVar(&promConfig, "prometheus-config", "/opt/aws/amazon-cloudwatch-agent/etc/prometheus.yaml",
		"cloudwatch-agent: path of the agent's Prometheus scrape configuration")
	d := metrics.DefaultThresholds()
	f.Float64Var(&flagT.ErrorRate, "error-rate", d.ErrorRate, "5xx share of requests that alarms (0.01 = 1%)")
	f.DurationVar(&flagT.ErrorRateFor, "error-rate-for", d.ErrorRateFor, "how long the 5xx share must hold")
	f.DurationVar(&flagT.LatencyP99, "latency-p99", d.LatencyP99, "p99 latency that alarms")
	f.DurationVar(&flagT.LatencyFor, "latency-for", d.LatencyFor, "how long the p99 must hold")
	f.Float64Var(&flagT.AuthFailuresPerMinute, "auth-failures-per-minute", d.AuthFailuresPerMinute, "authentication failures a minute that alarm")
	f.Float64Var(&flagT.WSDisconnectsPerMinute, "ws-disconnects-per-minute", d.WSDisconnectsPerMinute, "WebSocket disconnects a minute that alarm")
	f.Float64Var(&flagT.RateLimitRejectRatio, "ratelimit-reject-ratio", d.RateLimitRejectRatio, "share of requests refused by rate limits that alarms")
	f.DurationVar(&flagT.RateLimitFor, "ratelimit-for", d.RateLimitFor, "how long the rate-limit share must hold")
	f.Float64Var(&flagT.CertExpiryDays, "cert-expiry-days", d.CertExpiryDays, "alarm when a certificate has fewer days left")
	f.Float64Var(&flagT.AuditQueueSaturation, "audit-queue-saturation", d.AuditQueueSaturation, "audit queue fill ratio that alarms (0.8 = 80%)")
	f.DurationVar(&flagT.AuditQueueFor, "audit-queue-for", d.AuditQueueFor, "how long the audit queue fill must hold")
	f.DurationVar(&flagT.RateLimitDegradedFor, "ratelimit-degraded-for", d.RateLimitDegradedFor, "how long rate limiting may run degraded")
	f.DurationVar(&flagT.RateWindow, "rate-window", d.RateWindow, "PromQL range for rates (at least two scrape intervals)")
	f.StringVar(&flagT.Job, "job", d.Job, "cloudwatch: Prometheus job name kept as the alarm dimension")
	f.StringVar(&flagT.CloudWatchNamespace, "cloudwatch-namespace", d.CloudWatchNamespace, "cloudwatch: metric namespace the agent publishes to")
	return cmd
}

// applyThresholdFlags copies into t the fields whose flags were given.
func applyThresholdFlags(cmd *cobra.Command, t *metrics.Thresholds, f metrics.Thresholds) {
	set := func(name string, apply func()) {
		if cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("error-rate", func() { t.ErrorRate = f.ErrorRate })
	set("error-rate-for", func() { t.ErrorRateFor = f.ErrorRateFor })
	set("latency-p99", func() { t.LatencyP99 = f.LatencyP99 })
	set("latency-for", func() { t.LatencyFor = f.LatencyFor })
	set("auth-failures-per-minute", func() { t.AuthFailuresPerMinute = f.AuthFailuresPerMinute })
	set("ws-disconnects-per-minute", func() { t.WSDisconnectsPerMinute = f.WSDisconnectsPerMinute })
	set("ratelimit-reject-ratio", func() { t.RateLimitRejectRatio = f.RateLimitRejectRatio })
	set("ratelimit-for", func() { t.RateLimitFor = f.RateLimitFor })
	set("cert-expiry-days", func() { t.CertExpiryDays = f.CertExpiryDays })
	set("audit-queue-saturation", func() { t.AuditQueueSaturation = f.AuditQueueSaturation })
	set("audit-queue-for", func() { t.AuditQueueFor = f.AuditQueueFor })
	set("ratelimit-degraded-for", func() { t.RateLimitDegradedFor = f.RateLimitDegradedFor })
	set("rate-window", func() { t.RateWindow = f.RateWindow })
	set("job", func() { t.Job = f.Job })
	set("cloudwatch-namespace", func() { t.CloudWatchNamespace = f.CloudWatchNamespace })
}

// writeAlertsFile writes b to path through a temporary file in the same
// directory, so a reader never sees half a rule file.
func writeAlertsFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
