package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// SARIFSchemaURI is the schema the SARIF output declares: OASIS SARIF 2.1.0
// errata 01.
const SARIFSchemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc"`
	EndTimeUTC          string `json:"endTimeUtc"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Kind       string          `json:"kind"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

func sarifLevel(s Severity) string {
	switch s {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

func securitySeverity(s Severity) string {
	return [...]string{"0.0", "3.0", "5.5", "8.0", "9.5"}[s]
}

// WriteSARIF writes the report as a SARIF 2.1.0 log: one rule per check,
// one result per check with kind pass, fail (fail and warn), review
// (manual) or notApplicable (skip).
func WriteSARIF(w io.Writer, rep *Report) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "rampart verify", InformationURI: "https://github.com/rampart-security/rampart"}},
		Invocations: []sarifInvocation{{
			ExecutionSuccessful: true,
			StartTimeUTC:        rep.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			EndTimeUTC:          rep.StartedAt.Add(rep.Duration).UTC().Format("2006-01-02T15:04:05.000Z"),
		}},
		Results:    []sarifResult{},
		Properties: map[string]any{"target": rep.Target, "score": rep.Score, "grade": rep.Grade, "requests": rep.Requests},
	}
	index := map[string]int{}
	for _, r := range rep.Results {
		if _, ok := index[r.ID]; ok {
			continue
		}
		index[r.ID] = len(run.Tool.Driver.Rules)
		refs := make([]string, len(r.Checklist))
		for i, c := range r.Checklist {
			refs[i] = c + " " + ChecklistItems[c]
		}
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID:                   r.ID,
			Name:                 ruleName(r.Title),
			ShortDescription:     sarifText{Text: r.Title},
			FullDescription:      sarifText{Text: r.Title + ". Checklist: " + strings.Join(refs, "; ")},
			Help:                 sarifText{Text: r.Remediation, Markdown: "**Fix:** " + r.Remediation},
			DefaultConfiguration: sarifConfig{Level: sarifLevel(r.Severity)},
			Properties: map[string]any{
				"tags":              append([]string{"security", string(r.Area)}, r.Checklist...),
				"security-severity": securitySeverity(r.Severity),
				"severity":          r.Severity.String(),
			},
		})
	}
	for _, r := range rep.Results {
		res := sarifResult{
			RuleID: r.ID, RuleIndex: index[r.ID], Level: "none",
			Message:    sarifText{Text: fmt.Sprintf("%s: %s", r.Title, r.Message)},
			Locations:  []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: rep.Target}}}},
			Properties: map[string]any{"status": r.Status, "evidence": r.Evidence, "maxRequests": r.MaxRequests, "requests": r.Requests},
		}
		switch r.Status {
		case StatusPass:
			res.Kind = "pass"
		case StatusFail:
			res.Kind, res.Level = "fail", sarifLevel(r.Severity)
		case StatusWarn:
			res.Kind, res.Level = "fail", "note"
			if r.Severity >= SeverityMedium {
				res.Level = "warning"
			}
		case StatusManual:
			res.Kind = "review"
		default:
			res.Kind = "notApplicable"
		}
		run.Results = append(run.Results, res)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sarifLog{Schema: SARIFSchemaURI, Version: "2.1.0", Runs: []sarifRun{run}}); err != nil {
		return fmt.Errorf("write sarif: %w", err)
	}
	return nil
}

// ruleName turns a title into SARIF's PascalCase rule name.
func ruleName(title string) string {
	var b strings.Builder
	for _, f := range strings.FieldsFunc(title, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(f[:1]) + f[1:])
	}
	return b.String()
}
