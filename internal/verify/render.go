package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Format names an output format.
type Format string

// Formats.
const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatSARIF    Format = "sarif"
	FormatJUnit    Format = "junit"
	FormatMarkdown Format = "markdown"
)

// ParseFormat parses a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatText, FormatJSON, FormatSARIF, FormatJUnit, FormatMarkdown:
		return f, nil
	case "md":
		return FormatMarkdown, nil
	}
	return "", fmt.Errorf("unknown format %q (want text, json, sarif, junit or markdown)", s)
}

// TextOptions tune the text renderer.
type TextOptions struct {
	// Color adds ANSI colours (for a terminal).
	Color bool
	// Verbose prints evidence for every result, not only fails and warns.
	Verbose bool
}

// Write renders rep in format f.
func Write(w io.Writer, rep *Report, f Format, text TextOptions) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, rep)
	case FormatSARIF:
		return WriteSARIF(w, rep)
	case FormatJUnit:
		return WriteJUnit(w, rep)
	case FormatMarkdown:
		return WriteMarkdown(w, rep)
	}
	return WriteText(w, rep, text)
}

// WriteJSON writes the report as indented JSON (schema in docs/verify.md).
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

func statusColor(s Status) string {
	switch s {
	case StatusPass:
		return ansiGreen
	case StatusFail:
		return ansiRed
	case StatusWarn:
		return ansiYellow
	case StatusManual:
		return ansiCyan
	}
	return ansiDim
}

type painter bool

func (p painter) paint(code, s string) string {
	if !p {
		return s
	}
	return code + s + ansiReset
}

// headline is the one-line verdict shared by the text renderers.
func headline(rep *Report) string {
	return fmt.Sprintf("score %d, grade %s · %d pass, %d fail, %d warn, %d skip, %d manual · %d requests in %s",
		rep.Score, rep.Grade, rep.Counts.Pass, rep.Counts.Fail, rep.Counts.Warn, rep.Counts.Skip, rep.Counts.Manual,
		rep.Requests, rep.Duration.Round(time.Millisecond))
}

// WriteText writes the report grouped by area.
func WriteText(w io.Writer, rep *Report, o TextOptions) error {
	p := painter(o.Color)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n%s\n", p.paint(ansiBold, "rampart verify"), rep.Target, headline(rep))
	for _, area := range Areas() {
		first := true
		for _, r := range rep.Results {
			if r.Area != area {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n%s\n", p.paint(ansiBold, area.Title()))
				first = false
			}
			tag := fmt.Sprintf("%-6s", strings.ToUpper(string(r.Status)))
			fmt.Fprintf(&b, "  %s %-10s %s", p.paint(statusColor(r.Status), tag), r.ID, r.Title)
			if r.Status == StatusFail || r.Status == StatusWarn {
				fmt.Fprintf(&b, " [%s]", r.Severity)
			}
			b.WriteString("\n")
			if r.Message != "" {
				fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", 20), indent(r.Message, 20))
			}
			if r.Status == StatusFail || r.Status == StatusWarn || o.Verbose {
				for i, e := range r.Evidence {
					if i == 3 && !o.Verbose {
						fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", 20), p.paint(ansiDim, fmt.Sprintf("(+%d more exchanges)", len(r.Evidence)-3)))
						break
					}
					fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", 20), p.paint(ansiDim, "> "+indent(e.Request, 22)))
					if e.Response != "" {
						fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", 20), p.paint(ansiDim, "< "+indent(e.Response, 22)))
					}
				}
			}
			if r.Status == StatusFail || r.Status == StatusWarn {
				fmt.Fprintf(&b, "%sfix: %s\n", strings.Repeat(" ", 20), indent(r.Remediation, 25))
			}
		}
	}
	fmt.Fprintf(&b, "\n%s\n", headline(rep))
	_, err := io.WriteString(w, b.String())
	return err
}

func indent(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}

// WriteSummary writes a short verdict: the headline and every fail and warn
// on one line each. rampart demo prints it after verifying itself.
func WriteSummary(w io.Writer, rep *Report, color bool) error {
	p := painter(color)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", p.paint(ansiBold, "verify"), rep.Target, headline(rep))
	for _, r := range rep.Results {
		if r.Status != StatusFail && r.Status != StatusWarn {
			continue
		}
		tag := fmt.Sprintf("%-4s", strings.ToUpper(string(r.Status)))
		fmt.Fprintf(&b, "  %s %-10s %s: %s\n", p.paint(statusColor(r.Status), tag), r.ID, r.Title, firstLine(r.Message))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteMarkdown writes the report as GitHub-flavoured Markdown.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	icon := map[Status]string{StatusPass: "✅ pass", StatusFail: "❌ fail", StatusWarn: "⚠️ warn", StatusSkip: "⏭️ skip", StatusManual: "📝 manual"}
	fmt.Fprintf(&b, "# rampart verify: %s\n\n**Grade %s** (score %d) · %d pass · %d fail · %d warn · %d skip · %d manual · %d requests in %s\n",
		mdEscape(rep.Target), rep.Grade, rep.Score, rep.Counts.Pass, rep.Counts.Fail, rep.Counts.Warn, rep.Counts.Skip,
		rep.Counts.Manual, rep.Requests, rep.Duration.Round(time.Millisecond))
	for _, area := range Areas() {
		var rows []Result
		for _, r := range rep.Results {
			if r.Area == area {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n| Result | ID | Check | Severity | Details | Checklist |\n|---|---|---|---|---|---|\n", area.Title())
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", icon[r.Status], r.ID, mdEscape(r.Title), r.Severity,
				mdEscape(r.Message), mdEscape(strings.Join(r.Checklist, ", ")))
		}
		for _, r := range rows {
			if r.Status != StatusFail && r.Status != StatusWarn {
				continue
			}
			fmt.Fprintf(&b, "\n### %s %s\n\n%s\n\n**Fix:** %s\n", r.ID, mdEscape(r.Title), mdEscape(r.Message), mdEscape(r.Remediation))
			for _, e := range r.Evidence {
				fmt.Fprintf(&b, "\n```\n> %s\n< %s\n```\n", strings.ReplaceAll(e.Request, "```", "'''"), strings.ReplaceAll(e.Response, "```", "'''"))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", "<br>", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
