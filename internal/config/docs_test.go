package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsCoverEveryKey keeps docs/configuration.md and
// examples/rampart.yaml in step with the Config struct: every key is
// documented, and the example is a valid production configuration that
// shows every section.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/rampart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	index := regexp.MustCompile(`\[\d+\]`)
	for key := range Flatten(Default()) {
		if !strings.Contains(string(doc), "`"+index.ReplaceAllString(key, "[]")) && !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/configuration.md does not document %s", key)
		}
	}
	for _, r := range []string{"routes[].name", "routes[].path", "routes[].auth", "routes[].websocket", "rate_limits.rules[].limit", "rate_limits.rules[].key"} {
		if !strings.Contains(string(doc), "`"+r+"`") {
			t.Errorf("docs/configuration.md does not document %s", r)
		}
	}
	cfg, err := Parse(example)
	if err != nil {
		t.Fatalf("examples/rampart.yaml: %v", err)
	}
	if warnings, err := cfg.Validate(); err != nil || len(warnings) > 0 || !cfg.Production() {
		t.Fatalf("examples/rampart.yaml is not a valid production config: %v %v", err, warnings)
	}
	others, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(others) < 2 {
		t.Fatalf("examples: %v %v", others, err)
	}
	for _, path := range others {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if warnings, err := c.Validate(); err != nil || len(warnings) > 0 || !c.Production() {
			t.Errorf("%s is not a valid production config: %v %v", path, err, warnings)
		}
	}
	for key := range Flatten(Default()) {
		section, _, _ := strings.Cut(key, ".")
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(section) + `:`).Match(example) {
			t.Errorf("examples/rampart.yaml lacks the %s section", section)
		}
	}
}
