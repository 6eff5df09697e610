package check

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"SECRET_KEY": true, "JWT_SECRET_KEY": true, "API_KEY": true, "TWILIO_AUTH_TOKEN": true, "DB_PASS": true,
		"KAFKA_SASL_PASSWORD": true, "STRIPE_KEY": true, "AWS_SECRET_ACCESS_KEY": true, "GITHUB_TOKEN": true,
		"AWS_ACCESS_KEY_ID": false, "ACCESS_TOKEN_EXPIRE_MINUTES": false, "REFRESH_TOKEN_EXPIRE_DAYS": false,
		"SECRET_KEY_FILE": false, "API_KEY_SECRET_ID": false, "JWT_ALGORITHM": false, "TWILIO_ACCOUNT_SID": false,
		"PUBLIC_KEY": false, "MFA_BACKUP_CODES_COUNT": false, "LOG_LEVEL": false, "BYPASS_CACHE": false,
		"PASSWORD_MIN_LENGTH": false, "POSTGRES_USER": false, "api_key_pepper": true, "key_file": false,
	} {
		if got := isSecretKey(strings.ToUpper(k)); got != want {
			t.Errorf("isSecretKey(%s) = %v, want %v", k, got, want)
		}
	}
}

func TestNPMPinned(t *testing.T) {
	for spec, want := range map[string]bool{
		"1.2.3": true, "=1.2.3": true, "v1.2.3": true, "1.2.3-beta.1": true, "file:../x": true, "workspace:*": true,
		"npm:react@18.2.0": true, "github:o/r#3f2c9a1b7e5d4c6a8b0e2f4d6c8a1b3e5f7d9c0a": true,
		"https://example.com/x-1.0.0.tgz": true,
		"^1.2.3":                          false, "~1.2.3": false, "*": false, "": false, "latest": false, "1.x": false, ">=1 <2": false,
		"1.2.3 || 2.0.0": false, "github:o/r": false, "o/r": false, "npm:react@^18": false, "git+https://g.com/o/r.git": false,
	} {
		if got := npmPinned(spec); got != want {
			t.Errorf("npmPinned(%q) = %v, want %v", spec, got, want)
		}
	}
}

func TestRequirementsEdgeCases(t *testing.T) {
	in := "-r base.txt\n--index-url https://pypi.org/simple\nx==1.0 \\\n    --hash=sha256:abc\ny===2\nz==1.*\nw>=1,<2\nhttps://example.com/pkg.whl\n"
	got, err := Requirements("requirements.txt", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[int]bool{}
	for _, f := range got {
		lines[f.Line] = true
	}
	for _, l := range []int{6, 7, 8} {
		if !lines[l] {
			t.Errorf("line %d not reported: %v", l, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("findings = %v", got)
	}
}

func TestURLChecks(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"postgresql://u@db:5432/x", []string{IDDatabaseTLS}},
		{"postgresql+asyncpg://u@db/x?ssl=require", nil},
		{"postgres://u@db/x?sslmode=prefer", []string{IDDatabaseTLS}},
		{"postgres://u@localhost/x", nil},
		{"postgres://u@127.0.0.1/x?sslmode=disable", nil},
		{"redis://localhost:6379", nil},
		{"redis://:Tq8vZr2LmX5wKp9bNc4h@cache:6379", []string{IDRedisTLS, IDSecretInEnv}},
		{"rediss://cache:6380", []string{IDRedisPassword}},
		{"rediss://default:Tq8vZr2LmX5wKp9bNc4h@cache:6380", []string{IDSecretInEnv}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			f := &findings{file: ".env"}
			f.envVar(fromDotEnv, "URL", tt.value, 1)
			var ids []string
			for _, x := range f.list {
				ids = append(ids, x.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ids = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestOutput(t *testing.T) {
	fs := Sort([]Finding{
		newFinding(IDDebug, "b.env", 3, "DEBUG=true enables debug mode"),
		newFinding(IDDefaultSecret, "a.env", 7, "API_KEY is a known default or placeholder value"),
		newFinding(IDDefaultSecret, "a.env", 7, "API_KEY is a known default or placeholder value"),
	})
	if len(fs) != 2 || fs[0].File != "a.env" {
		t.Fatalf("Sort = %v", fs)
	}
	var text bytes.Buffer
	if err := WriteText(&text, fs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a.env:7: CRITICAL RC001 default-secret: API_KEY", "fix: Replace it", "checklist: rideshare P0-1", "2 findings: 1 critical, 1 high, 0 medium, 0 low"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, fs); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []Finding      `json:"findings"`
		Counts   map[string]int `json:"counts"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 2 || doc.Findings[0].Severity != Critical || doc.Findings[0].Ref == "" || doc.Counts["high"] != 1 {
		t.Errorf("json = %s", js.String())
	}
	if !strings.Contains(js.String(), `"severity": "critical"`) {
		t.Errorf("severity not a name: %s", js.String())
	}
	js.Reset()
	_ = WriteJSON(&js, nil)
	if !strings.Contains(js.String(), `"findings": []`) {
		t.Errorf("empty json = %s", js.String())
	}
	if !AtOrAbove(fs, High) || AtOrAbove(fs[1:], Critical) {
		t.Error("AtOrAbove wrong")
	}
	if s, err := ParseSeverity("HIGH"); err != nil || s != High {
		t.Errorf("ParseSeverity = %v %v", s, err)
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error("ParseSeverity accepted urgent")
	}
}

func TestRulesDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] || r.Title == "" || r.Fix == "" || r.Ref == "" || r.Severity == 0 {
			t.Errorf("rule %+v incomplete or duplicated", r)
		}
		seen[r.ID] = true
	}
}
