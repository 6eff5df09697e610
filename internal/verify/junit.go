package verify

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML in the shape Jenkins, GitLab and GitHub test reporters read:
// one testsuite per area, one testcase per check; fail is <failure>, skip
// and manual are <skipped>, warn passes with its message in <system-out>.

// JUnitTestSuites is the document root.
type JUnitTestSuites struct {
	XMLName  xml.Name         `xml:"testsuites"`
	Name     string           `xml:"name,attr"`
	Tests    int              `xml:"tests,attr"`
	Failures int              `xml:"failures,attr"`
	Errors   int              `xml:"errors,attr"`
	Skipped  int              `xml:"skipped,attr"`
	Time     string           `xml:"time,attr"`
	Suites   []JUnitTestSuite `xml:"testsuite"`
}

// JUnitTestSuite groups the checks of one area.
type JUnitTestSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []JUnitProperty `xml:"properties>property,omitempty"`
	Cases      []JUnitTestCase `xml:"testcase"`
}

// JUnitProperty is a name/value pair.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitTestCase is one check.
type JUnitTestCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitFailure `xml:"failure,omitempty"`
	Skipped   *JUnitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure marks a failed check.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnitSkipped marks a skipped or manual check.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

func evidenceText(r Result) string {
	var b strings.Builder
	for _, e := range r.Evidence {
		fmt.Fprintf(&b, "> %s\n", e.Request)
		if e.Response != "" {
			fmt.Fprintf(&b, "< %s\n", e.Response)
		}
	}
	fmt.Fprintf(&b, "fix: %s\nchecklist: %s\n", r.Remediation, strings.Join(r.Checklist, ", "))
	return b.String()
}

// WriteJUnit writes the report as JUnit XML.
func WriteJUnit(w io.Writer, rep *Report) error {
	doc := JUnitTestSuites{Name: "rampart verify " + rep.Target, Time: fmt.Sprintf("%.3f", rep.Duration.Seconds())}
	ts := rep.StartedAt.UTC().Format("2006-01-02T15:04:05")
	for _, area := range Areas() {
		suite := JUnitTestSuite{Name: string(area), Time: "0", Timestamp: ts,
			Properties: []JUnitProperty{{Name: "target", Value: rep.Target}}}
		for _, r := range rep.Results {
			if r.Area != area {
				continue
			}
			tc := JUnitTestCase{Name: r.ID + " " + r.Title, ClassName: "rampart.verify." + string(area), Time: "0"}
			switch r.Status {
			case StatusFail:
				tc.Failure = &JUnitFailure{Message: r.Message, Type: r.Severity.String(), Text: evidenceText(r)}
				suite.Failures++
			case StatusSkip:
				tc.Skipped = &JUnitSkipped{Message: r.Message}
				suite.Skipped++
			case StatusManual:
				tc.Skipped = &JUnitSkipped{Message: "manual: " + r.Message}
				suite.Skipped++
			case StatusWarn:
				tc.SystemOut = "warn: " + r.Message + "\n" + evidenceText(r)
			}
			suite.Tests++
			suite.Cases = append(suite.Cases, tc)
		}
		if suite.Tests == 0 {
			continue
		}
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Skipped += suite.Skipped
		doc.Suites = append(doc.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
