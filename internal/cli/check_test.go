package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	bad := filepath.Join("..", "check", "testdata", "optibid", "bad")
	clean := filepath.Join("..", "check", "testdata", "optibid", "clean")
	cfg := filepath.Join("..", "check", "testdata", "rampart-bad.yaml")

	code, out, errOut := runRampart(t, "check", clean)
	if code != 0 || !strings.Contains(out, "no findings") {
		t.Fatalf("clean: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runRampart(t, "check", bad)
	if code != 1 || !strings.Contains(out, ".env:2: CRITICAL RC001 default-secret: SECRET_KEY") {
		t.Fatalf("bad: exit %d\n%s", code, out)
	}
	// Only low findings (devDependency ranges) stay under --fail-on medium.
	pkg := filepath.Join(bad, "package.json")
	if code, out, _ := runRampart(t, "check", "--fail-on", "high", pkg); code != 0 {
		t.Errorf("--fail-on high on medium findings: exit %d\n%s", code, out)
	}
	if code, _, _ := runRampart(t, "check", "--fail-on", "medium", pkg); code != 1 {
		t.Errorf("--fail-on medium: exit %d", code)
	}
	if code, _, _ := runRampart(t, "check", "--fail-on", "none", bad); code != 0 {
		t.Errorf("--fail-on none: exit %d", code)
	}

	code, out, _ = runRampart(t, "check", "--format", "json", "-c", cfg)
	if code != 1 {
		t.Fatalf("config: exit %d", code)
	}
	var doc struct {
		Findings []struct {
			ID, Severity, File, Checklist string
			Line                          int
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	found := false
	for _, f := range doc.Findings {
		if f.ID == "RC019" && f.Line == 1 && f.Severity == "high" && f.Checklist == "optibid §18" {
			found = true
		}
	}
	if !found {
		t.Errorf("mode: development not reported: %s", out)
	}

	for _, args := range [][]string{
		{"check", "--fail-on", "urgent", clean},
		{"check", "--format", "xml", clean},
		{"check", filepath.Join(clean, "missing.env")},
	} {
		if code, _, _ := runRampart(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
