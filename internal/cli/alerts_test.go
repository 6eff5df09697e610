package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rampart-security/rampart/internal/metrics"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAlertsCmd(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{
			name: "prometheus defaults",
			args: []string{"alerts"},
			want: []string{"alert: RampartHigh5xxRate", "sum by (job) (rate(rampart_auth_failures_total[2m])) * 60 > 50", "for: 5m"},
		},
		{
			name: "threshold flags",
			args: []string{"alerts", "--format", "prometheus", "--auth-failures-per-minute", "20", "--error-rate", "0.02",
				"--latency-p99", "1s", "--rate-window", "5m", "--ws-disconnects-per-minute", "300"},
			want: []string{"rampart_auth_failures_total[5m])) * 60 > 20", "> 0.02", "> 1\n", "* 60 > 300"},
		},
		{
			name: "cloudwatch",
			args: []string{"alerts", "--format", "cloudwatch", "--cloudwatch-namespace", "Rideshare/API", "--job", "gw"},
			want: []string{"Type: AWS::CloudWatch::Alarm", "Namespace: Rideshare/API", "Value: gw", "MetricName: rampart_auth_failures_total"},
		},
		{
			name: "cloudwatch agent",
			args: []string{"alerts", "--format", "cloudwatch-agent", "--prometheus-config", "/etc/cwagent/prom.yaml"},
			want: []string{`"prometheus_config_path": "/etc/cwagent/prom.yaml"`, `"metric_namespace": "Rampart"`},
		},
		{
			name: "unknown format", args: []string{"alerts", "--format", "nagios"},
			wantCode: 2, wantErr: "nagios",
		},
		{
			name: "invalid threshold", args: []string{"alerts", "--error-rate", "3"},
			wantCode: 2, wantErr: "error rate",
		},
		{
			name: "stray argument", args: []string{"alerts", "extra"},
			wantCode: 1, wantErr: "unknown command",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantErr)
			}
		})
	}
}

func TestAlertsCmdOut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "alerts", "--out", path)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := metrics.PrometheusRules(metrics.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("file differs from PrometheusRules(DefaultThresholds())")
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Errorf("output is not YAML: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	code, _, stderr = runCLI(t, "alerts", "--out", filepath.Join(dir, "missing", "rules.yml"))
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("writing into a missing directory: exit %d, %q", code, stderr)
	}
}

// TestAlertsCmdBase shows how configuration feeds the command: the base
// thresholds come from a function, and only flags given override them.
func TestAlertsCmdBase(t *testing.T) {
	base := func(*cobra.Command) (metrics.Thresholds, error) {
		th := metrics.DefaultThresholds()
		th.AuthFailuresPerMinute = 5
		th.ErrorRate = 0.03
		return th, nil
	}
	cmd := newAlertsCmdWith(base)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--error-rate", "0.04"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"* 60 > 5\n", "> 0.04\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}

	failing := newAlertsCmdWith(func(*cobra.Command) (metrics.Thresholds, error) {
		return metrics.Thresholds{}, errors.New("load config: boom")
	})
	failing.SetOut(&out)
	failing.SetErr(&out)
	failing.SetArgs(nil)
	if err := failing.Execute(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("base error = %v", err)
	}
}
