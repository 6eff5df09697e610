// Package metrics exposes Rampart's Prometheus metrics and turns the
// checklists' alarms into code.
//
// [New] registers every collector on a registry the caller owns (never the
// process-wide default), [Metrics.Middleware] counts and times requests by
// route from the route table (never the raw path, so label cardinality stays
// bounded), and the other features report through small methods such as
// [Metrics.AuthFailure], [Metrics.RateLimited] and [Metrics.SetCertExpiry].
// [Handler] serves the registry at /metrics on the admin listener.
//
// [Thresholds] holds the alarm settings; [PrometheusRules] writes them as a
// Prometheus rule group and [CloudWatchAlarms] as CloudFormation
// AWS::CloudWatch::Alarm resources over the same metrics, which the
// CloudWatch agent scrapes with the configuration [CloudWatchAgentConfig]
// writes.
package metrics
