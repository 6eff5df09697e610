package verify

import "context"

// manualItem is a checklist item nobody can see from outside, with the
// exact thing a person must confirm.
type manualItem struct {
	def     *checkDef
	confirm string
}

var manualItems = []manualItem{
	{&checkDef{ID: "MAN-001", Title: "Secrets come from a secrets manager", Severity: SeverityHigh,
		Checklist:   []string{"rideshare:P0.4", "rideshare:VC.4", "optibid:1", "optibid:12"},
		Remediation: "Reference secrets as aws-sm://… or vault://… in rampart.yaml; run rampart check on the deployed config and env files."},
		"Confirm the API keys, JWT secret, database and Redis passwords are loaded at start from AWS Secrets Manager or Vault, not from environment variables, task definitions or files in the image; run `rampart check -c rampart.yaml` against the deployed configuration."},
	{&checkDef{ID: "MAN-002", Title: "IAM roles grant least privilege", Severity: SeverityHigh,
		Checklist:   []string{"rideshare:P0.5", "rideshare:VC.5", "optibid:12"},
		Remediation: "Give each service its own task role limited to secretsmanager:GetSecretValue on its own secrets and logs:PutLogEvents."},
		"Confirm in IAM that each service's task role allows only secretsmanager:GetSecretValue on arn:…:secret:<service>/* and CloudWatch Logs writes, has no wildcard actions, and that no long-lived access keys are baked into containers."},
	{&checkDef{ID: "MAN-003", Title: "Network is isolated (VPC, private subnets, security groups)", Severity: SeverityHigh,
		Checklist:   []string{"rideshare:P0.6", "rideshare:VC.6", "optibid:13"},
		Remediation: "Place tasks, databases and Redis in private subnets; allow 443 from the internet to the load balancer only."},
		"Confirm the VPC has private subnets for the API tasks, PostgreSQL and Redis; that security groups allow 443 from the internet to the load balancer only, app ports from the load balancer only, and database/Redis ports from the app only; and that VPC flow logs are on."},
	{&checkDef{ID: "MAN-004", Title: "Backups run and a restore was tested", Severity: SeverityHigh,
		Checklist:   []string{"optibid:11", "optibid:18", "rideshare:P1.9"},
		Remediation: "Enable automated backups with retention and cross-region copies; restore one into a scratch instance every quarter."},
		"Confirm automated database backups exist with the intended retention (e.g. 7 days) and cross-region replication, and that a backup was restored into a scratch instance and the application started against it within the RTO/RPO."},
	{&checkDef{ID: "MAN-005", Title: "Audit logging is active and retained", Severity: SeverityMedium,
		Checklist:   []string{"rideshare:P1.10", "rideshare:VC.8", "optibid:9"},
		Remediation: "Enable the audit log, ship it to central storage and set retention (90 days rideshare, 2555 days OptiBid)."},
		"Confirm authentication successes and failures, key changes and configuration changes appear in the audit log for this run's requests (`rampart audit tail`), that `rampart audit verify` reports an intact chain, and that retention is set (90 or 2555 days)."},
	{&checkDef{ID: "MAN-006", Title: "Monitoring alarms are configured", Severity: SeverityMedium,
		Checklist:   []string{"rideshare:P1.11", "rideshare:VC.9", "optibid:9"},
		Remediation: "Load the rules from `rampart alerts --format prometheus|cloudwatch` and route them to on-call."},
		"Confirm alarms exist and reach on-call for: 5xx rate > 1% for 5 min, p99 latency > 2 s for 5 min, auth failures > 50/min, WebSocket disconnects > 100/min (generate them with `rampart alerts`)."},
	{&checkDef{ID: "MAN-007", Title: "Container images and dependencies are scanned", Severity: SeverityMedium,
		Checklist:   []string{"rideshare:P2.14", "rideshare:VC.10", "optibid:14"},
		Remediation: "Scan images on push (ECR, Trivy) and dependencies in CI (govulncheck, pip-audit); block CRITICAL/HIGH."},
		"Confirm the deployed image digest was scanned on push with no unresolved CRITICAL or HIGH findings, and that dependency scanning (pip-audit, govulncheck, Dependabot) runs in CI."},
	{&checkDef{ID: "MAN-008", Title: "Penetration test completed", Severity: SeverityLow,
		Checklist:   []string{"rideshare:VC.12", "optibid:15"},
		Remediation: "Commission a penetration test covering authentication and authorization bypass before go-live."},
		"Confirm a penetration test (or OWASP ZAP / Burp active scan) covering authentication bypass, authorization bypass, injection and CSRF was run against this release and its findings are closed or accepted."},
	{&checkDef{ID: "MAN-009", Title: "Database connections use TLS and data is encrypted at rest", Severity: SeverityHigh,
		Checklist:   []string{"optibid:6", "optibid:10", "rideshare:P1.9"},
		Remediation: "Use sslmode=require (or verify-full) and enable storage encryption (KMS)."},
		"Confirm DATABASE_URL uses sslmode=require or verify-full, that the database storage and its backups are encrypted with KMS, and that the database accepts connections from the application subnets only."},
	{&checkDef{ID: "MAN-010", Title: "Secrets are rotated on schedule", Severity: SeverityMedium,
		Checklist:   []string{"rideshare:P2.15", "optibid:8", "optibid:12"},
		Remediation: "Rotate API keys every 90 days with an overlap window (rampart keys rotate) and database passwords every 30 days."},
		"Confirm rotation is scheduled (API keys 90 days, database password 30 days, Kafka credentials 90 days) and `rampart keys review` shows no key older than the policy."},
	{&checkDef{ID: "MAN-011", Title: "SOC 2 and GDPR controls are in place", Severity: SeverityLow,
		Checklist:   []string{"rideshare:P3.16", "rideshare:P3.17", "optibid:10"},
		Remediation: "Keep the access-review, change-management, incident-response and data-subject-request procedures current."},
		"Confirm the quarterly access review happened (`rampart keys review`, `rampart users list`), change management and incident response plans are documented, and data export/erasure (`rampart users export/delete`) was exercised once."},
	{&checkDef{ID: "MAN-012", Title: "Incident response and security contacts are ready", Severity: SeverityLow,
		Checklist:   []string{"optibid:16", "optibid:17"},
		Remediation: "Publish security contacts and an escalation path; rehearse the incident plan."},
		"Confirm a security contact (e.g. security@ mailbox) and on-call escalation exist, the incident response plan names roles and channels, and it was rehearsed."},
}

// manualDefs are the check definitions of manualItems, for the catalog.
var manualDefs = func() []*checkDef {
	out := make([]*checkDef, len(manualItems))
	for i, m := range manualItems {
		m.def.Area = AreaManual
		out[i] = m.def
	}
	return out
}()

func manualChecks(_ context.Context, r *runner) []Result {
	out := make([]Result, 0, len(manualItems))
	for _, m := range manualItems {
		out = append(out, r.session(m.def).manual("%s", m.confirm))
	}
	return out
}
