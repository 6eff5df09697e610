package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	badReportOnce sync.Once
	badReport     *Report
	badReportErr  error
)

// sampleReports returns a real report from the bad Go target and a
// synthetic one with every status, severity and awkward characters.
func sampleReports(t *testing.T) map[string]*Report {
	t.Helper()
	badReportOnce.Do(func() {
		srv, plain := startBad(t)
		badReport, badReportErr = Run(context.Background(), Options{
			Target: srv.URL + "/", HTTPURL: plain.URL + "/", ProtectedPaths: []string{"/api/private"},
			WSPaths: []string{"/ws"}, RateLimit: RateLimit{Path: "/limited", Limit: 3}, Key: goodKey, RootCAs: rootsOf(srv),
		})
	})
	if badReportErr != nil {
		t.Fatal(badReportErr)
	}
	var results []Result
	statuses := []Status{StatusPass, StatusFail, StatusWarn, StatusSkip, StatusManual}
	for i, d := range catalog {
		results = append(results, Result{
			ID: d.ID, Title: d.Title, Area: d.Area, Severity: d.Severity, Status: statuses[i%len(statuses)],
			Message:     "message with <xml> & \"quotes\" | pipes\nand a second line ]]> ```",
			Evidence:    []Evidence{{Request: "GET https://x/ \x1b[31m", Response: "HTTP/1.1 200 OK\n\n{\"a\":1}"}},
			Remediation: d.Remediation, Checklist: d.Checklist, MaxRequests: 2, Requests: 1,
		})
	}
	synth := &Report{Target: "https://example.test/", StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Duration: 1500 * time.Millisecond, DurationMS: 1500, Requests: 10, BaselineRequests: 2, Results: results}
	for _, r := range results {
		synth.Counts.add(r.Status)
	}
	synth.Score, synth.Grade = Score(results)
	return map[string]*Report{"bad-go-server": badReport, "synthetic": synth}
}

func compileSchema(t *testing.T, url string, doc []byte) *jsonschema.Schema {
	t.Helper()
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, parsed); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, out []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("output does not validate: %v", err)
	}
}

// The official OASIS SARIF 2.1.0 schema (errata 01), shipped by the Go
// module github.com/securego/gosec/v2@v2.30.0 as
// report/sarif/testdata/sarif-schema-2.1.0.json and copied verbatim.
func TestSARIFValidatesAgainstOfficialSchema(t *testing.T) {
	doc, err := os.ReadFile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	schema := compileSchema(t, SARIFSchemaURI, doc)
	for name, rep := range sampleReports(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, rep); err != nil {
				t.Fatal(err)
			}
			validate(t, schema, buf.Bytes())
			var log sarifLog
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			if got := len(log.Runs[0].Results); got != len(rep.Results) {
				t.Errorf("%d SARIF results for %d checks", got, len(rep.Results))
			}
			for _, r := range log.Runs[0].Results {
				if rule := log.Runs[0].Tool.Driver.Rules[r.RuleIndex]; rule.ID != r.RuleID {
					t.Errorf("result %s points at rule %s", r.RuleID, rule.ID)
				}
			}
		})
	}
}

// The schema must itself be the official one: a broken SARIF document
// must not validate.
func TestSARIFSchemaRejectsBrokenLog(t *testing.T) {
	doc, err := os.ReadFile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	schema := compileSchema(t, SARIFSchemaURI, doc)
	for name, bad := range map[string]string{
		"wrong version":   `{"version":"2.0.0","runs":[]}`,
		"result kind":     `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"kind":"bogus"}]}]}`,
		"missing message": `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"A"}]}]}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if schema.Validate(inst) == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

// junitDoc is an independent reading of the JUnit XML layout.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			ClassName string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnitParses(t *testing.T) {
	for name, rep := range sampleReports(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJUnit(&buf, rep); err != nil {
				t.Fatal(err)
			}
			var doc junitDoc
			if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("not JUnit XML: %v\n%s", err, buf.String())
			}
			if doc.Tests != len(rep.Results) || doc.Failures != rep.Counts.Fail || doc.Skipped != rep.Counts.Skip+rep.Counts.Manual {
				t.Errorf("tests=%d failures=%d skipped=%d, want %d %d %d", doc.Tests, doc.Failures, doc.Skipped,
					len(rep.Results), rep.Counts.Fail, rep.Counts.Skip+rep.Counts.Manual)
			}
			cases, failures := 0, 0
			for _, s := range doc.Suites {
				for _, c := range s.Cases {
					cases++
					if c.Failure != nil {
						failures++
						if c.Failure.Message == "" || c.Failure.Type == "" {
							t.Errorf("%s: failure without message or type", c.Name)
						}
					}
				}
			}
			if cases != len(rep.Results) || failures != rep.Counts.Fail {
				t.Errorf("%d cases, %d failures; want %d, %d", cases, failures, len(rep.Results), rep.Counts.Fail)
			}
		})
	}
}

var schemaBlockRe = regexp.MustCompile("(?s)<!-- json-schema:start -->\\s*```json\\n(.*?)```\\s*<!-- json-schema:end -->")

// The JSON output validates against the schema documented in
// docs/verify.md, so the documentation cannot drift from the output.
func TestJSONMatchesDocumentedSchema(t *testing.T) {
	md, err := os.ReadFile("../../docs/verify.md")
	if err != nil {
		t.Fatal(err)
	}
	m := schemaBlockRe.FindSubmatch(md)
	if m == nil {
		t.Fatal("docs/verify.md has no json-schema block")
	}
	schema := compileSchema(t, "https://rampart.invalid/verify-report.schema.json", m[1])
	for name, rep := range sampleReports(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJSON(&buf, rep); err != nil {
				t.Fatal(err)
			}
			validate(t, schema, buf.Bytes())
			var back Report
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if len(back.Results) != len(rep.Results) || back.Results[0].Severity != rep.Results[0].Severity {
				t.Error("JSON does not round-trip")
			}
		})
	}
}

// Every check is documented in docs/verify.md with its title and severity.
func TestDocsListEveryCheck(t *testing.T) {
	md, err := os.ReadFile("../../docs/verify.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Catalog(Options{}) {
		row := "| " + c.ID + " | " + c.Title + " | " + c.Severity.String() + " |"
		if !bytes.Contains(md, []byte(row)) {
			t.Errorf("docs/verify.md lacks the row %q", row)
		}
	}
}

func TestTextAndMarkdown(t *testing.T) {
	rep := sampleReports(t)["synthetic"]
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  []string
		never []string
	}{
		{"text plain", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{}) },
			[]string{"rampart verify https://example.test/", "TLS\n", "Manual confirmation\n", "fix: ", "grade " + rep.Grade}, []string{"\x1b[32m"}},
		{"text colour", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{Color: true}) },
			[]string{"\x1b[31mFAIL"}, nil},
		{"summary", func(b *bytes.Buffer) error { return WriteSummary(b, rep, false) },
			[]string{"verify https://example.test/: score", "FAIL"}, []string{"PASS", "MANUAL"}},
		{"markdown", func(b *bytes.Buffer) error { return WriteMarkdown(b, rep) },
			[]string{"# rampart verify: https://example.test/", "## CORS", "| ❌ fail |", `\|`, "&lt;xml&gt;"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q", w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(b.String(), n) {
					t.Errorf("contains %q", n)
				}
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"text": FormatText, "JSON": FormatJSON, "sarif": FormatSARIF, "junit": FormatJUnit, "md": FormatMarkdown, "markdown": FormatMarkdown} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
}
