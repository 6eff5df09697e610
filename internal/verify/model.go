package verify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Severity ranks how much a failed check matters.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String returns the lowercase name of s.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a severity name as written by String.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high or critical)", name)
}

// MarshalJSON writes s as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Status is the outcome of one check.
type Status string

// Statuses.
const (
	// StatusPass: the target does what the checklist asks.
	StatusPass Status = "pass"
	// StatusFail: the target was seen doing what the checklist forbids.
	StatusFail Status = "fail"
	// StatusWarn: a weaker form of the requirement, or a result that could
	// not be confirmed either way.
	StatusWarn Status = "warn"
	// StatusSkip: the check did not apply or lacked an input; the message
	// says which.
	StatusSkip Status = "skip"
	// StatusManual: cannot be seen from outside; the message says exactly
	// what a person must confirm.
	StatusManual Status = "manual"
)

// Area groups checks in reports.
type Area string

// Areas in report order.
const (
	AreaTLS       Area = "tls"
	AreaHTTPS     Area = "https"
	AreaHeaders   Area = "headers"
	AreaCORS      Area = "cors"
	AreaCookies   Area = "cookies"
	AreaAuth      Area = "auth"
	AreaWebSocket Area = "websocket"
	AreaRateLimit Area = "ratelimit"
	AreaLimits    Area = "limits"
	AreaExposure  Area = "exposure"
	AreaManual    Area = "manual"
)

// Areas lists every area in report order.
func Areas() []Area {
	return []Area{AreaTLS, AreaHTTPS, AreaHeaders, AreaCORS, AreaCookies, AreaAuth,
		AreaWebSocket, AreaRateLimit, AreaLimits, AreaExposure, AreaManual}
}

// Title is the human name of the area.
func (a Area) Title() string {
	switch a {
	case AreaTLS:
		return "TLS"
	case AreaHTTPS:
		return "HTTPS redirect and HSTS"
	case AreaHeaders:
		return "Security headers"
	case AreaCORS:
		return "CORS"
	case AreaCookies:
		return "Cookies"
	case AreaAuth:
		return "Authentication"
	case AreaWebSocket:
		return "WebSocket"
	case AreaRateLimit:
		return "Rate limiting"
	case AreaLimits:
		return "Request limits"
	case AreaExposure:
		return "Exposure"
	case AreaManual:
		return "Manual confirmation"
	}
	return string(a)
}

// Evidence is one exchange that supports a result: what was sent and the
// relevant part of the answer. Keys are never written into evidence.
type Evidence struct {
	Request  string `json:"request"`
	Response string `json:"response,omitempty"`
}

// Result is the outcome of one check against one target.
type Result struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Area        Area       `json:"area"`
	Severity    Severity   `json:"severity"`
	Status      Status     `json:"status"`
	Message     string     `json:"message"`
	Evidence    []Evidence `json:"evidence"`
	Remediation string     `json:"remediation"`
	Checklist   []string   `json:"checklist"`
	MaxRequests int        `json:"max_requests"`
	Requests    int        `json:"requests"`
}

// Report is the outcome of one Run.
type Report struct {
	Target    string    `json:"target"`
	StartedAt time.Time `json:"started_at"`
	// Duration of the whole run; DurationMS repeats it in milliseconds for
	// JSON readers.
	Duration   time.Duration `json:"-"`
	DurationMS int64         `json:"duration_ms"`
	// Requests counts every HTTP request and TLS handshake sent, including
	// the baseline.
	Requests int `json:"requests"`
	// BaselineRequests are the requests made once before the checks (the
	// HTTPS GET of the target and the plain-HTTP GET for the redirect);
	// checks that only read those responses state max_requests 0.
	BaselineRequests int      `json:"baseline_requests"`
	Score            int      `json:"score"`
	Grade            string   `json:"grade"`
	Counts           Counts   `json:"counts"`
	Results          []Result `json:"results"`
}

// Counts tallies results by status.
type Counts struct {
	Pass   int `json:"pass"`
	Fail   int `json:"fail"`
	Warn   int `json:"warn"`
	Skip   int `json:"skip"`
	Manual int `json:"manual"`
}

func (c *Counts) add(s Status) {
	switch s {
	case StatusPass:
		c.Pass++
	case StatusFail:
		c.Fail++
	case StatusWarn:
		c.Warn++
	case StatusSkip:
		c.Skip++
	case StatusManual:
		c.Manual++
	}
}

// Failed reports whether any result failed at severity min or above.
func (r *Report) Failed(min Severity) bool {
	for _, res := range r.Results {
		if res.Status == StatusFail && res.Severity >= min {
			return true
		}
	}
	return false
}

// Result returns the result with the given ID.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}
