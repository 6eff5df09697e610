package check

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Severity orders findings.
type Severity int

// Severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

var severityNames = map[Severity]string{Low: "low", Medium: "medium", High: "high", Critical: "critical"}

func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the lowercase name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a lowercase name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses low, medium, high or critical.
func ParseSeverity(s string) (Severity, error) {
	for k, n := range severityNames {
		if strings.EqualFold(s, n) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (low, medium, high, critical)", s)
}

// Finding is one problem in one file.
type Finding struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix"`
	Ref      string   `json:"checklist"`
}

// Rule describes one check ID.
type Rule struct {
	ID       string
	Title    string
	Severity Severity // default; a finding may be raised or lowered
	Ref      string   // checklist items
	Fix      string
}

// Check IDs.
const (
	IDDefaultSecret    = "RC001"
	IDWeakSecret       = "RC002"
	IDSecretInEnv      = "RC003"
	IDDebug            = "RC004"
	IDDebugLogLevel    = "RC005"
	IDCORSWildcard     = "RC006"
	IDCORSLocalhost    = "RC007"
	IDDatabaseTLS      = "RC008"
	IDRedisTLS         = "RC009"
	IDRedisPassword    = "RC010"
	IDMemoryRateLimit  = "RC011"
	IDComposeDefault   = "RC012"
	IDDatastorePort    = "RC013"
	IDAWSStaticKeys    = "RC014"
	IDSecretInManifest = "RC015"
	IDUnpinnedPython   = "RC016"
	IDUnpinnedNPM      = "RC017"
	IDInlineConfig     = "RC018"
	IDDevelopmentMode  = "RC019"
	IDJWTAlgNone       = "RC020"
	IDAuditLogDisabled = "RC021"
)

// Rules lists every check, in ID order.
var rules = []Rule{
	{IDDefaultSecret, "default-secret", Critical, "rideshare P0-1, optibid §1, optibid §18", "Replace it with a random value (`rampart secrets generate`) kept in a secrets manager."},
	{IDWeakSecret, "weak-secret", High, "optibid §1, optibid §6", "Use at least 32 random bytes: `rampart secrets generate --bytes 32`."},
	{IDSecretInEnv, "secret-in-env", Medium, "rideshare P0-4, optibid §12", "Load it from a secrets manager (AWS Secrets Manager, Vault) or a mounted secret file (Docker/Kubernetes secrets, NAME_FILE=/run/secrets/name) instead of a plain environment variable."},
	{IDDebug, "debug-enabled", High, "optibid §18", "Set it to false in production."},
	{IDDebugLogLevel, "debug-log-level", Medium, "optibid §9", "Use LOG_LEVEL=INFO or WARNING in production; debug logs leak request data."},
	{IDCORSWildcard, "cors-wildcard", High, "optibid §2", "List the exact production origins (https://app.example.com); never *."},
	{IDCORSLocalhost, "cors-localhost", Medium, "optibid §2", "Remove localhost, 127.0.0.1 and 0.0.0.0 origins from the production list."},
	{IDDatabaseTLS, "database-without-tls", High, "optibid §6, rideshare P1-9", "Add sslmode=require (better verify-full with the CA) to the connection URL."},
	{IDRedisTLS, "redis-without-tls", Medium, "optibid §10, optibid §13", "Use rediss:// (TLS) for Redis off the local host."},
	{IDRedisPassword, "redis-without-password", High, "optibid §13, rideshare P0-4", "Require a password (requirepass or an ACL user) and put it in the URL from a secrets manager."},
	{IDMemoryRateLimit, "memory-rate-limit", Medium, "optibid §4", "Set ENABLE_REDIS=true with a production REDIS_URL: in-memory counters are per process and reset on restart."},
	{IDComposeDefault, "compose-secret-default", High, "rideshare P0-1", "Remove the default from the compose file (${VAR:?VAR is required}) and supply the secret from a secrets manager or Docker secrets."},
	{IDDatastorePort, "datastore-port-published", Medium, "rideshare P0-6, optibid §13", "Do not publish database, cache or broker ports; keep them on the internal network (or bind 127.0.0.1 for local work)."},
	{IDAWSStaticKeys, "aws-static-credentials", High, "rideshare P0-5, optibid §11", "Use an IAM role (ECS task role, EKS IRSA, instance profile) instead of static access keys."},
	{IDSecretInManifest, "secret-in-manifest", High, "optibid §1, rideshare P0-4", "Do not commit Secret manifests; create them from a secrets manager (External Secrets, Secrets Store CSI, sealed-secrets)."},
	{IDUnpinnedPython, "unpinned-python-dependency", Medium, "optibid §14", "Pin with == (pip-compile or pip freeze), ideally with --hash."},
	{IDUnpinnedNPM, "unpinned-npm-dependency", Medium, "optibid §14", "Pin the exact version (npm config set save-exact true) and commit the lock file."},
	{IDInlineConfig, "inline-secret-in-config", High, "rideshare P0-4, optibid §12", "Use env:NAME, file:/path, aws-sm:NAME or vault:MOUNT/PATH#field; inline secrets are refused in production mode."},
	{IDDevelopmentMode, "development-mode", High, "optibid §18", "Use production mode for a production deployment."},
	{IDJWTAlgNone, "jwt-algorithm-none", Critical, "optibid §1", "Set JWT_ALGORITHM=HS256 (or an asymmetric algorithm); none disables signatures."},
	{IDAuditLogDisabled, "audit-log-disabled", Medium, "optibid §9, rideshare P1-10", "Set AUDIT_LOG_ENABLED=true and AUDIT_LOG_ENCRYPTED=true."},
}

var ruleByID = func() map[string]Rule {
	m := make(map[string]Rule, len(rules))
	for _, r := range rules {
		m[r.ID] = r
	}
	return m
}()

// Rules returns every rule in ID order.
func Rules() []Rule { return slices.Clone(rules) }

// newFinding fills title, default severity, fix and ref from the rule.
func newFinding(id, file string, line int, msg string) Finding {
	r := ruleByID[id]
	return Finding{ID: id, Title: r.Title, Severity: r.Severity, File: file, Line: line, Message: msg, Fix: r.Fix, Ref: r.Ref}
}

// Sort orders findings by file, line and ID and drops exact duplicates
// (a YAML anchor merged into several services reports once).
func Sort(fs []Finding) []Finding {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(fs)
}

// AtOrAbove reports whether any finding has severity >= min.
func AtOrAbove(fs []Finding, min Severity) bool {
	for _, f := range fs {
		if f.Severity >= min {
			return true
		}
	}
	return false
}

// Counts tallies findings by severity name.
func Counts(fs []Finding) map[string]int {
	c := map[string]int{"critical": 0, "high": 0, "medium": 0, "low": 0}
	for _, f := range fs {
		c[f.Severity.String()]++
	}
	return c
}

// WriteText writes one block per finding and a summary line.
func WriteText(w io.Writer, fs []Finding) error {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s:%d: %s %s %s: %s\n", f.File, f.Line, strings.ToUpper(f.Severity.String()), f.ID, f.Title, f.Message)
		fmt.Fprintf(&b, "    fix: %s\n    checklist: %s\n", f.Fix, f.Ref)
	}
	if len(fs) == 0 {
		b.WriteString("no findings\n")
	} else {
		c := Counts(fs)
		fmt.Fprintf(&b, "%d findings: %d critical, %d high, %d medium, %d low\n", len(fs), c["critical"], c["high"], c["medium"], c["low"])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes {"findings": [...], "counts": {...}}.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Findings []Finding      `json:"findings"`
		Counts   map[string]int `json:"counts"`
	}{fs, Counts(fs)})
}
