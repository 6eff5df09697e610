package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
)

// keysCLI runs rampart with a fresh SQLite store and a pepper file.
type keysCLI struct {
	store, pepper string
}

func newKeysCLI(t *testing.T) *keysCLI {
	t.Helper()
	dir := t.TempDir()
	pepper := filepath.Join(dir, "pepper")
	if err := os.WriteFile(pepper, []byte(strings.Repeat("p3pper", 8)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RAMPART_PEPPER", "")
	t.Setenv("RAMPART_STORE_URL", "")
	return &keysCLI{store: "sqlite://" + filepath.Join(dir, "keys.db"), pepper: pepper}
}

func (c *keysCLI) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	// args are "keys", subcommand, rest; the store and pepper go after the subcommand.
	full := append([]string{args[0], args[1], "--store", c.store, "--pepper-file", c.pepper}, args[2:]...)
	code := Run(context.Background(), full, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeysCLILifecycle(t *testing.T) {
	c := newKeysCLI(t)
	code, out, errOut := c.run(t, "keys", "create", "--name", "billing", "--permissions", "read,write", "--expires", "90d")
	if code != 0 {
		t.Fatalf("create exit %d: %s", code, errOut)
	}
	secret := strings.TrimSpace(out)
	k, err := apikey.Parse(secret)
	if err != nil {
		t.Fatalf("create printed %q: %v", out, err)
	}
	if !strings.Contains(errOut, "shown only once") || strings.Contains(errOut, secret) {
		t.Fatalf("create stderr: %s", errOut)
	}
	secrets := []string{secret}

	_, out, _ = c.run(t, "keys", "create", "--name", "ops", "--permissions", "admin")
	secrets = append(secrets, strings.TrimSpace(out))

	var outputs []string
	for _, args := range [][]string{
		{"keys", "list"},
		{"keys", "list", "--json"},
		{"keys", "show", k.ID()},
		{"keys", "show", k.ID(), "--json"},
		{"keys", "show", secret}, // a pasted key is reduced to its ID
		{"keys", "review"},
		{"keys", "review", "--json"},
	} {
		code, out, errOut := c.run(t, args...)
		if code != 0 {
			t.Fatalf("%v exit %d: %s", args, code, errOut)
		}
		if !strings.Contains(out, k.ID()) && args[1] != "review" {
			t.Fatalf("%v output lacks the key ID:\n%s", args, out)
		}
		outputs = append(outputs, out+errOut)
	}
	if !strings.Contains(outputs[0], "read,write") || !strings.Contains(outputs[0], "active") || !strings.Contains(outputs[0], "never") {
		t.Fatalf("list lacks permissions/state/last use:\n%s", outputs[0])
	}
	var listed struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(outputs[1]), &listed); err != nil || len(listed.Keys) != 2 {
		t.Fatalf("list --json: %v %s", err, outputs[1])
	}

	// Rotate prints the successor once; the old key is in grace.
	code, out, errOut = c.run(t, "keys", "rotate", k.ID(), "--grace", "2h")
	if code != 0 {
		t.Fatalf("rotate exit %d: %s", code, errOut)
	}
	next, err := apikey.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("rotate printed %q", out)
	}
	secrets = append(secrets, next.Reveal())
	if !strings.Contains(errOut, "keeps working until") {
		t.Fatalf("rotate stderr: %s", errOut)
	}
	_, out, _ = c.run(t, "keys", "show", k.ID())
	if !strings.Contains(out, "grace") {
		t.Fatalf("old key state after rotate:\n%s", out)
	}
	outputs = append(outputs, out)
	if code, _, _ := c.run(t, "keys", "rotate", k.ID()); code == 0 {
		t.Fatal("second rotation of the same key succeeded")
	}

	code, out, errOut = c.run(t, "keys", "revoke", next.ID())
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke exit %d: %s %s", code, out, errOut)
	}
	outputs = append(outputs, out)
	_, out, _ = c.run(t, "keys", "list")
	outputs = append(outputs, out)
	if !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke:\n%s", out)
	}

	for _, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o, s) || strings.Contains(o, s[21:64]) {
				t.Fatalf("output contains a secret:\n%s", o)
			}
		}
	}
}

func TestKeysCLIReviewFail(t *testing.T) {
	c := newKeysCLI(t)
	if code, _, errOut := c.run(t, "keys", "review", "--fail"); code != 0 {
		t.Fatalf("empty store review --fail exit %d: %s", code, errOut)
	}
	c.run(t, "keys", "create", "--name", "forever", "--permissions", "read")
	code, out, _ := c.run(t, "keys", "review", "--fail")
	if code != 1 || !strings.Contains(out, "no_expiry") {
		t.Fatalf("review --fail with findings: exit %d\n%s", code, out)
	}
	if code, _, _ := c.run(t, "keys", "review", "--unused-days", "-1"); code != 2 {
		t.Fatalf("negative days exit %d, want 2", code)
	}
}

func TestKeysCLIErrors(t *testing.T) {
	c := newKeysCLI(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"bad permission", []string{"keys", "create", "--name", "x", "--permissions", "root"}, 2},
		{"bad expiry", []string{"keys", "create", "--name", "x", "--expires", "soon"}, 2},
		{"past expiry", []string{"keys", "create", "--name", "x", "--expires", "2001-01-01"}, 2},
		{"missing name", []string{"keys", "create"}, 1},
		{"unknown key", []string{"keys", "show", "AAAAAAAAAAAA"}, 1},
		{"revoke unknown", []string{"keys", "revoke", "AAAAAAAAAAAA"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := c.run(t, tt.args...); code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errOut)
			}
		})
	}
	// create needs a pepper; list does not.
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"keys", "create", "--store", c.store, "--name", "x"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "pepper") {
		t.Fatalf("create without pepper: exit %d %s", code, errb.String())
	}
	if code := Run(context.Background(), []string{"keys", "list", "--store", c.store}, &out, &errb); code != 0 {
		t.Fatalf("list without pepper: exit %d %s", code, errb.String())
	}
	t.Setenv("RAMPART_PEPPER", "short")
	if code := Run(context.Background(), []string{"keys", "create", "--store", c.store, "--name", "x"}, &out, &errb); code != 2 {
		t.Fatalf("short pepper accepted: exit %d", code)
	}
}

func TestMigrateCmd(t *testing.T) {
	c := newKeysCLI(t)
	for range 2 {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), []string{"migrate", "--store", c.store}, &out, &errb); code != 0 || !strings.Contains(out.String(), "sqlite") {
			t.Fatalf("migrate exit %d: %s %s", code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"migrate"}, &out, &errb); code != 2 {
		t.Fatalf("migrate without store exit %d", code)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"never", time.Time{}, true},
		{"90d", now.Add(90 * 24 * time.Hour), true},
		{"36h", now.Add(36 * time.Hour), true},
		{"2026-12-31", time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), true},
		{"2026-12-31T10:00:00Z", time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC), true},
		{"-1h", time.Time{}, false},
		{"0d", time.Time{}, false},
		{"1.5d", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseExpiry(tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseExpiry(%q) = %v, %v", tt.in, got, err)
		}
	}
}
